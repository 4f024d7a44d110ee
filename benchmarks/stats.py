"""Aggregation over seeds: grouping, bootstrap confidence intervals, the interquartile mean."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TypeVar

import numpy as np
from scipy import stats

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


def group_by(items: Iterable[T], key: Callable[[T], K]) -> dict[K, list[T]]:
    """``items`` grouped by ``key``, groups and members in the order first seen."""
    groups: dict[K, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


def bootstrap_ci(scores: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap CI of the mean over runs (degenerate with one run)."""
    if len(scores) < 2 or np.all(scores == scores[0]):
        return float(scores.mean()), float(scores.mean())
    res = stats.bootstrap(
        (scores,),
        np.mean,
        n_resamples=reps,
        confidence_level=0.95,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def mean_ci(values: Iterable[float | None]) -> dict[str, float | int | None]:
    """The mean over runs with its 95% bootstrap CI, JSON-ready, ``None`` values left out.

    Returns:
        ``{"mean", "ci_low", "ci_high", "n"}``; the bounds are ``None`` below two runs (one
        run says nothing about the spread) and the mean too for none.
    """
    x = np.asarray([v for v in values if v is not None], dtype=float)
    if x.size == 0:
        return {"mean": None, "ci_low": None, "ci_high": None, "n": 0}
    low, high = bootstrap_ci(x) if x.size >= 2 else (None, None)
    return {"mean": float(x.mean()), "ci_low": low, "ci_high": high, "n": int(x.size)}


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% of runs (Agarwal et al., 2021)."""
    return float(stats.trim_mean(scores, 0.25))


def mean(values: Iterable[float]) -> float:
    """The mean as a plain float (JSON-ready)."""
    return float(np.mean(list(values)))


def median_or_none(values: Sequence[float]) -> float | None:
    """The median as a plain float, or ``None`` for no values (nothing to summarise)."""
    return float(np.median(values)) if values else None
