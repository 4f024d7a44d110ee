"""Held-out splits: every problem belongs to exactly one of ``train`` and ``test``.

A problem's split is a pure function of a canonical key (its content with surface wording
left out, e.g. the arithmetic of a word problem), so the two splits never share a problem
and test problems differ from every training problem in substance, not only in names.
Tasks draw from the env's RNG and resample until the drawn problem is in the asked split.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Literal, TypeVar

import numpy as np

from textgym.errors import ConfigError

Split = Literal["train", "test"]
SPLITS: tuple[Split, ...] = ("train", "test")
#: Share of the problem space held out for ``split="test"``.
TEST_FRACTION = 0.2

T = TypeVar("T")


def check_split(split: str) -> Split:
    """Validate a ``split`` argument, with a message that says what is accepted."""
    if not isinstance(split, str) or split not in SPLITS:
        raise ConfigError(f"split must be 'train' or 'test', got {split!r}.")
    return split  # type: ignore[return-value]


def split_of(key: str, test_fraction: float = TEST_FRACTION) -> Split:
    """The split a canonical problem key belongs to (stable across runs and platforms)."""
    # crc32, not hash(): Python's str hash is salted per process.
    bucket = zlib.crc32(key.encode("utf-8")) % 10_000
    return "test" if bucket < test_fraction * 10_000 else "train"


def sample_in_split(
    draw: Callable[[np.random.Generator], T],
    key: Callable[[T], str],
    split: Split,
    rng: np.random.Generator,
    max_tries: int = 10_000,
) -> T:
    """Draw until the item's key falls in ``split``; all randomness comes from ``rng``.

    Raises:
        RuntimeError: ``max_tries`` draws found nothing in the split, which means the
            generator's problem space is too small for a held-out split.
    """
    for _ in range(max_tries):
        item = draw(rng)
        if split_of(key(item)) == split:
            return item
    raise RuntimeError(
        f"No problem in split {split!r} after {max_tries} draws: the problem space is too "
        "small to hold out a split. Widen the generator's ranges (numbers, steps)."
    )
