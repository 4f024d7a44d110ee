"""What every reward is checked against: its constructor arguments, its values, its tables.

The errors a reward raises live here too, so that the protocol (:mod:`textgym.rewards.base`)
and every built-in reward report a wrong argument or a non-finite value the same way.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from textgym.errors import ConfigError, UserError


class RewardError(UserError, ValueError):
    """A reward returned something that is not a finite number (or its arithmetic overflowed)."""


class RewardTypeError(UserError, TypeError):
    """A reward, or an argument of a reward's constructor, has the wrong type."""


# -- argument checks shared by every reward constructor ------------------------------------


def number_arg(
    value: Any,
    where: str,
    *,
    minimum: float | None = None,
    above: float | None = None,
) -> float:
    """``value`` as a finite float, or a clear error naming the argument ``where``.

    Args:
        value: What the user passed.
        where: How to name it in the error, e.g. ``"Politeness bonus"``.
        minimum: The smallest value allowed (inclusive), if any.
        above: A bound the value must exceed (exclusive), if any.

    Raises:
        RewardTypeError: ``value`` is not a real number (a bool or a string counts as not).
        ConfigError: ``value`` is NaN, infinite or out of range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise RewardTypeError(f"{where} must be a number, got {value!r} ({type(value).__name__}).")
    x = float(value)
    if not math.isfinite(x):
        raise ConfigError(f"{where} must be a finite number, got {value!r}.")
    if minimum is not None and x < minimum:
        raise ConfigError(f"{where} must be >= {minimum:g}, got {value!r}.")
    if above is not None and not x > above:
        raise ConfigError(f"{where} must be > {above:g}, got {value!r}.")
    return x


def int_arg(value: Any, where: str, *, minimum: int | None = None) -> int:
    """``value`` as an int (an integral float such as ``3.0`` counts), or a clear error.

    Raises:
        RewardTypeError: ``value`` is not an integer.
        ConfigError: ``value`` is below ``minimum``.
    """
    whole = isinstance(value, numbers.Integral) or (
        isinstance(value, numbers.Real)
        and math.isfinite(float(value))
        and float(value).is_integer()
    )
    if whole and not isinstance(value, bool):
        n = int(value)
    else:
        raise RewardTypeError(
            f"{where} must be a whole number, got {value!r} ({type(value).__name__})."
        )
    if minimum is not None and n < minimum:
        raise ConfigError(f"{where} must be >= {minimum}, got {value!r}.")
    return n


def bool_arg(value: Any, where: str) -> bool:
    """``value`` if it is ``True`` or ``False``, or a clear error naming the argument.

    A truthy string such as ``"false"`` or a number is refused rather than read as a flag:
    ``bool("false")`` is ``True``.

    Raises:
        RewardTypeError: ``value`` is not a bool.
    """
    if not isinstance(value, bool):
        raise RewardTypeError(
            f"{where} must be True or False, got {value!r} ({type(value).__name__})."
        )
    return value


def check_table(table: Any, vocab_size: int, name: str) -> np.ndarray | None:
    """A reward's ``token_rewards`` table as a finite float array of shape ``(vocab_size,)``.

    Runs once per env construction (not per step), so a full ``isfinite`` pass is cheap.

    Raises:
        RewardError: the table is not numeric, has the wrong shape, or holds NaN or inf.
    """
    if table is None:
        return None
    try:
        arr = np.asarray(table, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise RewardError(
            f"Reward {name!r}.token_rewards returned {type(table).__name__} that is not an "
            f"array of numbers ({exc}); return a float array with one value per token id, "
            "or None for no shaping."
        ) from None
    if arr.shape != (vocab_size,):
        raise RewardError(
            f"Reward {name!r}.token_rewards returned shape {arr.shape}; expected "
            f"({vocab_size},): one value per token id."
        )
    finite = np.isfinite(arr)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise RewardError(
            f"Reward {name!r}.token_rewards contains {arr[bad[0]]} at token id {bad[0]} "
            f"({bad.size} non-finite value(s) in all); every per-token value must be finite."
        )
    return arr


def check_value(value: Any, name: str) -> float:
    """Return ``value`` as a float, or raise :class:`RewardError` naming the reward."""
    if type(value) is float and math.isfinite(value):  # the common case, without ABC checks
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "iuf":
            value = value.item()
        else:
            hint = (
                " Call .item() on a one-element tensor or array."
                if hasattr(value, "item") and hasattr(value, "shape")
                else " Check its return statement."
            )
            raise RewardError(
                f"Reward {name!r} returned {value!r:.200} ({type(value).__name__}); a reward "
                f"must return a finite number (int or float).{hint}"
            )
    value = float(value)
    if not math.isfinite(value):
        raise RewardError(
            f"Reward {name!r} returned {value}; a reward must be finite. Guard divisions and "
            "logs (e.g. clip probabilities) so it never produces NaN or inf."
        )
    return value


__all__ = [
    "RewardError",
    "RewardTypeError",
    "bool_arg",
    "check_table",
    "check_value",
    "int_arg",
    "number_arg",
]
