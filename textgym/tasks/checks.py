"""Argument checks shared by the tasks and the env, with errors that say what is accepted.

Python's duck typing lets a wrong type slip through a constructor and fail much later (a
string ``"no"`` is a true ``copy`` flag, ``max_steps=2.5`` breaks at the first reset, a
``max_value`` of ``10**12`` builds a table for minutes). Each check runs once, when the
task or env is made, and raises an error naming the argument, what it got and the valid
range, so nothing here is on the step path.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from textgym.errors import ConfigError, ConfigTypeError, did_you_mean


def describe(value: Any) -> str:
    """``value`` as an error message shows it: its repr (shortened) and its type."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def check_bool(value: Any, name: str) -> bool:
    """``value`` as a bool; only ``True``/``False`` (or a numpy bool) are accepted.

    Strings are refused because ``bool("no")`` is True; ints because ``copy=2`` is more
    likely a slip than a flag.
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ConfigTypeError(f"{name} must be True or False, got {describe(value)}.")


def check_int(value: Any, name: str, low: int, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]`` (``high=None``: no upper bound).

    Numpy integers are accepted; bools and floats (even ``3.0``) are refused, since a
    float count or size is almost always a computed value that went wrong.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigTypeError(f"{name} must be an integer, got {describe(value)}.")
    number = int(value)
    if number < low or (high is not None and number > high):
        raise ConfigError(f"{name} must be an integer {_range(low, high)}, got {number}.")
    return number


def check_real(value: Any, name: str, low: float, high: float) -> float:
    """``value`` as a finite float in ``[low, high]`` (ints and numpy numbers accepted)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigTypeError(f"{name} must be a number, got {describe(value)}.")
    number = float(value)
    if not (math.isfinite(number) and low <= number <= high):
        raise ConfigError(f"{name} must be a number in [{low}, {high}], got {number}.")
    return number


def check_names(value: Any, name: str, known: Sequence[str]) -> tuple[str, ...]:
    """``value`` as a non-empty tuple of names from ``known``.

    A bare string is refused: iterating it would give its letters (``"add"`` reads as
    ``("a", "d", "d")``).
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ConfigTypeError(
            f"{name} must be a list or tuple of names from {list(known)}, got "
            f"{describe(value)}; for one name write ({value!r},)."
        )
    names = tuple(value)
    for item in names:
        if not isinstance(item, str) or item not in known:
            raise ConfigError(
                f"{name} must be a non-empty subset of {list(known)}; {item!r} is not one of "
                f"them.{did_you_mean(str(item), known)}"
            )
    if not names:
        raise ConfigError(f"{name} must be a non-empty subset of {list(known)}, got none.")
    return names


def check_callable(value: Any, name: str, example: str) -> Any:
    """``value`` if it is ``None`` or callable."""
    if value is not None and not callable(value):
        raise ConfigTypeError(
            f"{name} must be None or a callable, got {describe(value)}. Example: {example}."
        )
    return value


def _range(low: int, high: int | None) -> str:
    return f"in [{low}, {high}]" if high is not None else f">= {low}"
