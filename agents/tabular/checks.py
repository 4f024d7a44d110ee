"""The argument checks of tabular learners: each error names the argument and its range.

Numbers out of range are :class:`~textgym.errors.ConfigError` (a ``ValueError``); an
unknown hyper-parameter or an env the learners cannot act in is a ``TypeError`` that names
what is accepted.
"""

from __future__ import annotations

import inspect
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

import textgym  # noqa: F401 - registers the textgym/* ids that learners accept by name
from textgym.errors import ConfigError, did_you_mean

__all__ = [
    "MAX_SEED",
    "check_env",
    "check_int",
    "check_unit",
    "keyword_parameters",
    "reject_unknown",
]

#: The largest seed (numpy seeds with 32 bits; Gymnasium refuses larger seeds too).
MAX_SEED = 2**32 - 1


def check_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> None:
    """Refuse anything but an int (not a bool) in ``[minimum, maximum]``."""
    ok = not isinstance(value, bool) and isinstance(value, (int, np.integer)) and value >= minimum
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok:
        bound = f"in [{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
        raise ConfigError(f"{name} must be an int {bound}, got {value!r}.")


def check_unit(name: str, value: Any, low_open: bool = False) -> float:
    """``value`` as a float in [0, 1] (or (0, 1] with ``low_open``), else a ConfigError."""
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    if ok:
        value = float(value)
        ok = (value > 0.0 if low_open else value >= 0.0) and value <= 1.0
    if not ok:
        interval = "(0, 1]" if low_open else "[0, 1]"
        raise ConfigError(f"{name} must be a number in {interval}, got {value!r}.")
    return value


def check_env(env: gym.Env | str, agent: str) -> gym.Env:
    """``env`` (made from its id if a string), if it is one env with a ``Discrete`` action space."""
    if isinstance(env, str):
        env = gym.make(env)
    if not isinstance(env, gym.Env):
        raise TypeError(
            f"{agent} needs a gymnasium.Env or a registered env id, got {type(env).__name__}. "
            "Vector envs are not supported by tabular agents: pass a single env."
        )
    if not isinstance(env.action_space, spaces.Discrete):
        raise TypeError(
            f"{agent} needs a Discrete action space (one token id per step), but the env has "
            f"{env.action_space}. Tabular agents cannot act in continuous or composite spaces."
        )
    return env


def keyword_parameters(cls: type) -> list[str]:
    """The keyword-only constructor arguments of ``cls`` and its bases, subclass first."""
    names: list[str] = []
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            for p in inspect.signature(klass.__init__).parameters.values():
                if p.kind is p.KEYWORD_ONLY and p.name not in names:
                    names.append(p.name)
    return names


def reject_unknown(cls: type, kwargs: dict[str, Any]) -> None:
    """Refuse the first of ``kwargs`` that no constructor of ``cls`` takes, with the closest
    known name as a hint (learners call it before checking any value)."""
    known = keyword_parameters(cls)
    unknown = sorted(k for k in kwargs if k not in known)
    if not unknown:
        return
    hint = did_you_mean(unknown[0], known)
    raise TypeError(
        f"{cls.__name__} got an unknown hyper-parameter {unknown[0]!r}.{hint} Accepted: {known}."
    )
