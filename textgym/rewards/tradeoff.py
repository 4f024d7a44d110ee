"""Multi-objective reports: how reward components trade off over a set of episodes.

Collect ``info["reward_components"]`` at episode ends and call :func:`tradeoff`::

    records = []
    ...  # in the rollout loop, when an episode ends:
    records.append(info["reward_components"])
    print(tradeoff(records))

Two components that are negatively correlated pull the policy in opposite directions: their
weights decide which one wins. The Pareto front lists the episodes no other episode beats on
every component at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from textgym.errors import ConfigError
from textgym.rewards.base import RewardTypeError


@dataclass(frozen=True)
class TradeOff:
    """Per-component statistics over a set of episodes.

    Attributes:
        names: Component names, in column order.
        values: ``(n_episodes, n_components)`` array of the scores.
        mean, std: Per-component mean and standard deviation.
        correlation: ``(k, k)`` Pearson correlation matrix; NaN where a component is
            constant (its correlation is undefined).
        pareto_front: Indices of the non-dominated episodes (higher is better on every
            component), in increasing order.
    """

    names: tuple[str, ...]
    values: np.ndarray
    mean: dict[str, float]
    std: dict[str, float]
    correlation: np.ndarray
    pareto_front: tuple[int, ...]

    def corr(self, a: str, b: str) -> float:
        """The correlation between components ``a`` and ``b``."""
        return float(self.correlation[self.names.index(a), self.names.index(b)])

    def __str__(self) -> str:
        width = max(len("component"), *(len(n) for n in self.names))
        lines = [f"{len(self.values)} episodes, Pareto front: {len(self.pareto_front)} episode(s)"]
        lines.append(
            f"{'component':<{width}}    mean     std  "
            + " ".join(f"{n[:7]:>7}" for n in self.names)
        )
        for i, n in enumerate(self.names):
            corr = " ".join(f"{c:7.2f}" for c in self.correlation[i])
            lines.append(f"{n:<{width}} {self.mean[n]:7.3f} {self.std[n]:7.3f}  {corr}")
        return "\n".join(lines)


def _rows(records: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> list[Mapping[str, float]]:
    if isinstance(records, Mapping):
        # A vector env's info["reward_components"]: {name: array, "_name": mask}.
        cols = {
            k: np.atleast_1d(np.asarray(v)) for k, v in records.items() if not k.startswith("_")
        }
        lengths = {k: len(v) for k, v in cols.items()}
        if len(set(lengths.values())) > 1:
            raise ConfigError(
                f"tradeoff: the component arrays have different lengths {lengths}; pass one "
                "vector env's info['reward_components'] (one entry per sub-env)."
            )
        n = len(next(iter(cols.values()))) if cols else 0
        rows = []
        for i in range(n):
            rows.append(
                {
                    k: float(v[i])
                    for k, v in cols.items()
                    if records.get(f"_{k}", np.ones(n, bool))[i]
                }
            )
        return rows
    if isinstance(records, (str, bytes)) or not isinstance(records, Sequence):
        raise RewardTypeError(
            f"tradeoff takes a list of info['reward_components'] dicts, got "
            f"{type(records).__name__} ({records!r:.80})."
        )
    rows = list(records)
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise RewardTypeError(
                f"tradeoff: record {i} is {type(row).__name__} ({row!r:.80}); each record must "
                "be an info['reward_components'] dict."
            )
    return rows


def _first_non_number(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> str:
    for i, row in enumerate(rows):
        for n in names:
            try:
                float(row[n])
            except (TypeError, ValueError):
                return f"{n}={row[n]!r:.60} in record {i}"
    return "a value that is not a number"


def pareto_front(values: np.ndarray) -> tuple[int, ...]:
    """Indices of rows that no other row weakly beats everywhere and strictly somewhere."""
    values = np.asarray(values, dtype=np.float64)
    front = []
    for i, row in enumerate(values):
        dominated = np.any(np.all(values >= row, axis=1) & np.any(values > row, axis=1))
        if not dominated:
            front.append(i)
    return tuple(front)


def tradeoff(
    records: Sequence[Mapping[str, Any]] | Mapping[str, Any],
    components: Sequence[str] | None = None,
) -> TradeOff:
    """Summarise how reward components trade off.

    Args:
        records: One ``info["reward_components"]`` dict per episode (or a vector env's
            dict of arrays for one step).
        components: Which components to compare; default: those present in every record.

    Raises:
        ValueError: no records, or a requested component missing from some record.
    """
    rows = _rows(records)
    if not rows:
        raise ConfigError("tradeoff needs at least one record (an info['reward_components'] dict).")
    if components is None:
        common = set(rows[0]).intersection(*rows[1:])
        names = tuple(k for k in rows[0] if k in common)
        if not names:
            raise ConfigError("The records share no component; pass components=[...] explicitly.")
    else:
        if isinstance(components, str):
            raise RewardTypeError(
                f"tradeoff components must be a list of names, got the string {components!r}; "
                f"write components=[{components!r}]."
            )
        names = tuple(components)
        for i, row in enumerate(rows):
            missing = [n for n in names if n not in row]
            if missing:
                raise ConfigError(
                    f"Record {i} has no component(s) {missing}; it has {sorted(row)}."
                )
    try:
        values = np.array([[row[n] for n in names] for row in rows], dtype=np.float64)
    except (TypeError, ValueError):
        raise RewardTypeError(
            f"tradeoff: every component value must be a number; the records hold "
            f"{_first_non_number(rows, names)}."
        ) from None
    # A NaN would make every correlation and the Pareto front silently meaningless.
    if not np.isfinite(values).all():
        i, j = np.argwhere(~np.isfinite(values))[0]
        raise ConfigError(
            f"tradeoff: record {i} has {names[j]}={values[i, j]}; every component value must be "
            "finite."
        )
    std = values.std(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        centred = values - values.mean(axis=0)
        cov = centred.T @ centred / len(values)
        corr = cov / np.outer(std, std)
    constant = std == 0
    corr[constant, :] = np.nan
    corr[:, constant] = np.nan
    return TradeOff(
        names=names,
        values=values,
        mean={n: float(m) for n, m in zip(names, values.mean(axis=0), strict=True)},
        std={n: float(s) for n, s in zip(names, std, strict=True)},
        correlation=corr,
        pareto_front=pareto_front(values),
    )


__all__ = ["TradeOff", "pareto_front", "tradeoff"]
