"""Rewards by name: the registry that reward specs and ``make_reward`` draw on.

``REWARDS`` maps each name to its factory; :func:`register_reward` adds your own, so that
:func:`~textgym.rewards.spec.parse_reward` (the spec language) and ``gym.make(...,
reward="...")`` can use it. Model rewards are imported on first use (torch, transformers).
The families register their own rewards (``satisfaction``, ``resolution``, ...) beside their
tasks in :mod:`textgym.envs`, so each task's ``reward_spec`` can name them.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any

from textgym.errors import ConfigError, UserError, did_you_mean
from textgym.rewards.base import (
    Constant,
    Reward,
    RewardTypeError,
    as_reward,
)
from textgym.rewards.combinators import Clip, LengthCost, Normalize
from textgym.rewards.text import BannedWords, Concision, Politeness, Relevance, Repetition
from textgym.rewards.verifiable import (
    Abstention,
    AnswerFormat,
    Correctness,
    ExactMatch,
    NumericMatch,
)


class UnknownRewardError(UserError, KeyError):
    """:func:`make_reward` was given a name that is not registered."""

    def __str__(self) -> str:
        # KeyError's own __str__ would print the message in quotes.
        return str(self.args[0])


def _model_factory(module: str, cls_name: str) -> Callable[..., Reward]:
    def factory(*args: Any, **kwargs: Any) -> Reward:
        # Imported on use: model rewards pull in torch and transformers.
        return getattr(importlib.import_module(module), cls_name)(*args, **kwargs)

    factory.__name__ = cls_name
    return factory


REWARDS: dict[str, Callable[..., Reward]] = {
    "exact_match": ExactMatch,
    "numeric_match": NumericMatch,
    "format": AnswerFormat,
    "correctness": Correctness,
    "abstention": Abstention,
    "politeness": Politeness,
    "relevance": Relevance,
    "repetition": Repetition,
    "concision": Concision,
    "banned_words": BannedWords,
    "length_cost": LengthCost,
    "constant": Constant,
    "clip": Clip,
    "normalize": Normalize,
    "reward_model": _model_factory("textgym.rewards.models", "RewardModel"),
    "embedding_similarity": _model_factory("textgym.rewards.models", "EmbeddingSimilarity"),
    "lm_judge": _model_factory("textgym.rewards.judge", "LMJudge"),
}

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: The spec's flag literals (``correctness(bare=True)``): taken, never reward names.
TRUTH_VALUES = {"True": True, "False": False}


def register_reward(name: str, factory: Callable[..., Reward], *, overwrite: bool = False) -> None:
    """Make ``factory`` available as ``name`` in reward specs.

    Args:
        name: An identifier (letters, digits, underscores; not starting with a digit).
        factory: Called with the spec's arguments (none for a bare name); returns a
            :class:`Reward` or a function ``ctx -> float``.
        overwrite: Replace an existing registration instead of raising.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(
            f"Reward name {name!r} is not an identifier; use letters, digits and underscores, "
            "e.g. 'my_reward'."
        )
    if name in TRUTH_VALUES:
        raise ConfigError(
            f"{name!r} is a truth value in reward specs (e.g. correctness(bare={name})), not "
            "a reward name; choose another name."
        )
    if not callable(factory):
        raise RewardTypeError(
            f"register_reward({name!r}, ...) needs a callable factory, got {factory!r}."
        )
    if name in REWARDS and not overwrite:
        raise ConfigError(
            f"A reward named {name!r} is already registered ({REWARDS[name]!r}); pass "
            "overwrite=True to replace it."
        )
    REWARDS[name] = factory


def reward_names() -> list[str]:
    """Every registered reward name, sorted."""
    return sorted(REWARDS)


def make_reward(name: str, *args: Any, **kwargs: Any) -> Reward:
    """Build the registered reward ``name`` with ``args`` and ``kwargs``."""
    if not isinstance(name, str) or name not in REWARDS:
        hint = did_you_mean(name, REWARDS) if isinstance(name, str) else ""
        raise UnknownRewardError(f"Unknown reward {name!r}.{hint} Known rewards: {reward_names()}.")
    return as_reward(REWARDS[name](*args, **kwargs))


__all__ = [
    "REWARDS",
    "TRUTH_VALUES",
    "UnknownRewardError",
    "make_reward",
    "register_reward",
    "reward_names",
]
