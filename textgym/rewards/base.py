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

import functools
import inspect
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from textgym.errors import ConfigError, UserError

if TYPE_CHECKING:
    from textgym.tasks.base import Problem, Task, Turn


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


def _checked_token_rewards(method: Callable[..., Any]) -> Callable[..., np.ndarray | None]:
    """Wrap a subclass's ``token_rewards`` so that whatever it returns is validated."""

    @functools.wraps(method)
    def token_rewards(self: Reward, vocab_size: int) -> np.ndarray | None:
        return check_table(method(self, vocab_size), vocab_size, getattr(self, "name", "reward"))

    token_rewards._textgym_checked = True  # type: ignore[attr-defined]
    return token_rewards


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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The env reads the table once and then indexes it at every step, so a NaN in it
        # would reach ``step`` unseen: every override is validated where it is defined, and
        # the env needs no check of its own.
        method = cls.__dict__.get("token_rewards")
        if callable(method) and not getattr(method, "_textgym_checked", False):
            cls.token_rewards = _checked_token_rewards(method)  # type: ignore[method-assign]

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

        if isinstance(other, (Reward, bool)) or not isinstance(other, numbers.Real) or other == 0:
            raise RewardTypeError(
                f"A reward can only be divided by a non-zero number, got {other!r}. "
                "Write (1 / w) * reward for a weight."
            )
        if not math.isfinite(1.0 / float(other)):
            raise ConfigError(
                f"Dividing a reward by {other!r} gives an infinite weight; divide by a "
                "number further from 0."
            )
        return scale(self, 1.0 / float(other))

    def __neg__(self) -> Reward:
        from textgym.rewards.combinators import scale

        return scale(self, -1.0)


class FunctionReward(Reward):
    """Wraps a plain ``f(ctx) -> float`` so it can be used wherever a reward is."""

    def __init__(self, fn: Callable[[RewardContext], float], name: str | None = None) -> None:
        if not callable(fn):
            raise RewardTypeError(
                f"FunctionReward needs a function ctx -> float, got {fn!r} ({type(fn).__name__})."
            )
        if name is not None and not (isinstance(name, str) and name):
            raise RewardTypeError(f"A reward name must be a non-empty string, got {name!r}.")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", None) or "reward"
        _check_takes_one_argument(fn, self.name)

    def __call__(self, ctx: RewardContext) -> float:
        # The value is validated by evaluate / check_value, under this reward's name.
        return self.fn(ctx)

    def __repr__(self) -> str:
        return f"FunctionReward({self.name})"


def _check_takes_one_argument(fn: Callable[..., Any], name: str) -> None:
    """Refuse, at construction, a function that cannot be called as ``fn(ctx)``.

    Otherwise the mistake shows up at the first turn end as a bare ``TypeError`` from deep
    inside the env, which does not say which reward it was.
    """
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins and C callables without a signature
        return
    try:
        sig.bind(None)
    except TypeError:
        raise RewardTypeError(
            f"Reward function {name!r} has the signature {name}{sig}; it must take exactly one "
            "argument, the RewardContext: def my_reward(ctx) -> float."
        ) from None


def as_reward(obj: Any) -> Reward:
    """Accept a :class:`Reward` or any callable taking a :class:`RewardContext`."""
    if isinstance(obj, Reward):
        return obj
    if isinstance(obj, type) and issubclass(obj, Reward):
        raise RewardTypeError(
            f"Got the class {obj.__name__}, not a reward object; write {obj.__name__}() "
            "(with its arguments)."
        )
    if callable(obj):
        return FunctionReward(obj)
    if isinstance(obj, str):
        raise RewardTypeError(
            f"Got the string {obj!r} where a reward object is needed; build one from a spec "
            f"with textgym.rewards.parse_reward({obj!r}) (inside a spec, write reward names "
            "without quotes)."
        )
    raise RewardTypeError(
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


def evaluate(
    reward: Reward, ctxs: Sequence[RewardContext], name: str | None = None
) -> list[tuple[float, dict[str, float]]]:
    """Score ``ctxs`` with one batched call, validating every total and component.

    Errors name the reward as ``name`` (default ``reward.name``); combinators pass the name
    of the child so that a NaN deep inside a sum is reported where it came from.
    """
    name = reward.name if name is None else name
    results = reward.batch(ctxs)
    try:
        n = len(results)
    except TypeError:
        n = -1
    if n != len(ctxs):
        got = f"{n} results" if n >= 0 else f"{type(results).__name__} {results!r:.80}"
        raise RewardError(
            f"Reward {name!r}.batch returned {got} for {len(ctxs)} "
            "contexts; it must return a list of one (total, components) pair per context."
        )
    checked = []
    for result in results:
        try:
            total, components = result
            items = components.items()
        except (TypeError, ValueError, AttributeError):
            raise RewardError(
                f"Reward {name!r}.batch (or .score) returned {result!r:.120} for a context; "
                "each result must be a pair (total, {component name: value})."
            ) from None
        # The total first, so a simple reward's NaN is reported under its own name.
        total = check_value(total, name)
        comps = {k: check_value(v, name if k == name else f"{name}:{k}") for k, v in items}
        checked.append((total, comps))
    return checked
