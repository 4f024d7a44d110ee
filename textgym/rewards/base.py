"""The reward protocol: how the env asks "how good was this turn?".

A reward is any object with ``__call__(ctx) -> float`` (a plain function works too). The env
calls it at every turn end with a :class:`RewardContext`. Subclassing :class:`Reward` adds
batching (:meth:`Reward.batch`, one call for all episodes that end together in a vector env),
named components for multi-objective rewards (:meth:`Reward.score`), and per-token shaping
(:meth:`Reward.token_rewards`, looked up in O(1) at every step), and the algebra
``a + b``, ``a - b``, ``w * a``, ``-a`` and ``a / w``, which builds the combinators of
:mod:`textgym.rewards.combinators` (a plain function may appear on either side of ``+``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from textgym.tasks.base import Problem, Task, Turn


class RewardError(ValueError):
    """A reward returned something that is not a finite number."""


@dataclass(frozen=True)
class RewardContext:
    """Everything a reward may look at when an agent turn ends.

    Attributes:
        task: The task the episode is about.
        problem: The task instance (prompt, gold answer, metadata).
        turns: The conversation so far, ending with this agent turn (the user's reply to it,
            if any, is in ``reply``).
        text: This agent turn, decoded (without the end-of-turn token).
        token_ids: This agent turn's token ids (without the end-of-turn token).
        turn_index: 0 for the agent's first turn, 1 for its second, ...
        episode_end: The episode ends with this turn (terminated or truncated).
        truncated: The turn or the context hit a length limit before it ended normally.
        reply: The responder's reply to this turn (multi-turn tasks), else ``None``.
    """

    task: Task
    problem: Problem
    turns: tuple[Turn, ...]
    text: str
    token_ids: np.ndarray
    turn_index: int = 0
    episode_end: bool = True
    truncated: bool = False
    reply: Any = None
    extras: Mapping[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        """The problem's opening message."""
        return self.problem.prompt

    @property
    def answer(self) -> str | None:
        """The gold answer, if the task has one."""
        return self.problem.answer

    @property
    def metadata(self) -> Mapping[str, Any]:
        """Task metadata (slots, intent, topic, gold answer, ...)."""
        return self.problem.metadata

    @property
    def outcome(self) -> Mapping[str, Any]:
        """The responder's verdict on this turn (empty for single-turn tasks)."""
        return getattr(self.reply, "outcome", None) or {}


class Reward:
    """Base class for rewards. Subclasses implement :meth:`__call__`.

    Attributes:
        name: Shown as the component key in ``info["reward_components"]``.
    """

    name: str = "reward"

    def __call__(self, ctx: RewardContext) -> float:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(ctx) -> float")

    def score(self, ctx: RewardContext) -> tuple[float, dict[str, float]]:
        """The total and its named components (one component for a simple reward)."""
        value = self(ctx)
        return value, {self.name: value}

    def batch(self, ctxs: Sequence[RewardContext]) -> list[tuple[float, dict[str, float]]]:
        """Score many turns at once. Model-based rewards override this to run one batch."""
        return [self.score(c) for c in ctxs]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def token_rewards(self, vocab_size: int) -> np.ndarray | None:
        """Per-token shaping: a float array indexed by token id, added at each agent step.

        ``None`` (the default) means no shaping. A table keeps shaping O(1) per step.
        """
        return None

    # -- algebra: ``a + b``, ``a - b``, ``w * a``, ``-a``, ``a / w`` -------------------------
    # The operators build combinators (textgym.rewards.combinators), imported lazily because
    # that module builds on this one. A number on either side of ``+`` becomes a constant
    # term; a plain function becomes a FunctionReward.

    def __add__(self, other: Any) -> Reward:
        from textgym.rewards.combinators import add

        return add(self, other)

    def __radd__(self, other: Any) -> Reward:
        from textgym.rewards.combinators import add

        # ``sum(rewards)`` starts from 0; adding 0 must not create a constant term.
        if isinstance(other, numbers.Real) and not isinstance(other, bool) and other == 0:
            return add(self, None)
        return add(other, self)

    def __sub__(self, other: Any) -> Reward:
        from textgym.rewards.combinators import add, scale

        return add(self, scale(other, -1.0))

    def __rsub__(self, other: Any) -> Reward:
        from textgym.rewards.combinators import add, scale

        return add(other, scale(self, -1.0))

    def __mul__(self, other: Any) -> Reward:
        from textgym.rewards.combinators import scale

        return scale(self, other)

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> Reward:
        from textgym.rewards.combinators import scale

        if isinstance(other, Reward) or not isinstance(other, numbers.Real) or other == 0:
            raise TypeError(
                f"A reward can only be divided by a non-zero number, got {other!r}. "
                "Write (1 / w) * reward for a weight."
            )
        return scale(self, 1.0 / float(other))

    def __neg__(self) -> Reward:
        from textgym.rewards.combinators import scale

        return scale(self, -1.0)


class FunctionReward(Reward):
    """Wraps a plain ``f(ctx) -> float`` so it can be used wherever a reward is."""

    def __init__(self, fn: Callable[[RewardContext], float], name: str | None = None) -> None:
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "reward")

    def __call__(self, ctx: RewardContext) -> float:
        return self.fn(ctx)

    def __repr__(self) -> str:
        return f"FunctionReward({self.name})"


def as_reward(obj: Any) -> Reward:
    """Accept a :class:`Reward` or any callable taking a :class:`RewardContext`."""
    if isinstance(obj, Reward):
        return obj
    if callable(obj):
        return FunctionReward(obj)
    raise TypeError(
        f"reward must be a textgym Reward or a function ctx -> float, got {type(obj).__name__} "
        f"({obj!r}). Example: reward=lambda ctx: float(ctx.text == ctx.answer)."
    )


def check_value(value: Any, name: str) -> float:
    """Return ``value`` as a float, or raise :class:`RewardError` naming the reward."""
    if type(value) is float and math.isfinite(value):  # the common case, without ABC checks
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "iuf":
            value = value.item()
        else:
            raise RewardError(
                f"Reward {name!r} returned {value!r} ({type(value).__name__}); a reward must "
                "return a finite number (int or float). Check its return statement."
            )
    value = float(value)
    if not math.isfinite(value):
        raise RewardError(
            f"Reward {name!r} returned {value}; a reward must be finite. Guard divisions and "
            "logs (e.g. clip probabilities) so it never produces NaN or inf."
        )
    return value


def evaluate(
    reward: Reward, ctxs: Sequence[RewardContext], name: str | None = None
) -> list[tuple[float, dict[str, float]]]:
    """Score ``ctxs`` with one batched call, validating every total and component.

    Errors name the reward as ``name`` (default ``reward.name``); combinators pass the name
    of the child so that a NaN deep inside a sum is reported where it came from.
    """
    name = reward.name if name is None else name
    results = reward.batch(ctxs)
    if len(results) != len(ctxs):
        raise RewardError(
            f"Reward {name!r}.batch returned {len(results)} results for {len(ctxs)} "
            "contexts; it must return one (total, components) pair per context."
        )
    checked = []
    for total, components in results:
        # The total first, so a simple reward's NaN is reported under its own name.
        total = check_value(total, name)
        comps = {
            k: check_value(v, name if k == name else f"{name}:{k}") for k, v in components.items()
        }
        checked.append((total, comps))
    return checked
