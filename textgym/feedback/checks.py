"""Argument checks of the feedback commands: an integer in range, or a ConfigError that
names the argument (and its flag) and the valid range."""

from __future__ import annotations

from typing import Any

import numpy as np

from textgym.errors import ConfigError

MAX_SEED = 2**63 - 1  # what torch.manual_seed and numpy both take


def check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    """Refuse a non-integer or out-of-range ``value`` with a :class:`ConfigError`."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if ok and value >= low and (high is None or value <= high):
        return
    bound = f"from {low} to {high}" if high is not None else f"{low} or more"
    raise ConfigError(f"{name} must be an integer {bound}, got {value!r}.")
