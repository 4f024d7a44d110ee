"""Combinators: rewards that transform or shape other rewards.

* :class:`Clip` and :class:`Normalize` (running mean/std) transform a reward's total.
* :class:`LengthCost` and :class:`TokenTable` shape rewards per token, through
  :meth:`~textgym.rewards.base.Reward.token_rewards` tables, so a step stays O(1).
* :class:`Weighted`, :class:`Constant`, :func:`add` and :func:`scale` (what ``a + b``,
  ``a - b``, ``w * a`` and ``-a`` build) live with the protocol in
  :mod:`textgym.rewards.base` and are re-exported here.

Every combinator forwards :meth:`~textgym.rewards.base.Reward.batch` to its children (one
batched call per child, so a model-based reward inside a sum still sees the whole batch) and
combines their ``token_rewards`` tables. Each child's values are validated with
:func:`~textgym.rewards.base.check_value` under the child's own name, so a NaN deep inside a
sum is reported as coming from the reward that produced it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from textgym.errors import ConfigError
from textgym.rewards.base import (
    Constant,
    Result,
    Reward,
    RewardContext,
    RewardError,
    RewardTypeError,
    Weighted,
    add,
    as_reward,
    check_table,
    evaluate,
    int_arg,
    number_arg,
    scale,
)


class Clip(Reward):
    """Clip another reward's total into ``[low, high]``.

    Components are the child's, unclipped, so the raw signal stays visible. Per-token shaping
    passes through unchanged (clipping applies to the turn-end value).
    """

    def __init__(self, reward: Any, low: float = -1.0, high: float = 1.0) -> None:
        self.reward = as_reward(reward)
        self.low, self.high = number_arg(low, "Clip low"), number_arg(high, "Clip high")
        if not self.low < self.high:
            raise ConfigError(f"Clip needs low < high, got low={low}, high={high}.")
        self.name = f"clip({self.reward.name})"

    def __call__(self, ctx: RewardContext) -> float:
        return self.score(ctx)[0]

    def score(self, ctx: RewardContext) -> Result:
        return self.batch([ctx])[0]

    def batch(self, ctxs: Sequence[RewardContext]) -> list[Result]:
        return [
            (min(max(total, self.low), self.high), comps)
            for total, comps in evaluate(self.reward, ctxs)
        ]

    def token_rewards(self, vocab_size: int) -> np.ndarray | None:
        return self.reward.token_rewards(vocab_size)

    def __repr__(self) -> str:
        return f"Clip({self.reward!r}, {self.low:g}, {self.high:g})"


class Normalize(Reward):
    """Standardise another reward's total with a running mean and standard deviation.

    Statistics are updated with each batch before it is normalised (Welford's algorithm,
    exact for any batch size), then ``(x - mean) / sqrt(var + eps)`` is clipped to
    ``[-clip, clip]``. The first value normalises to 0. Call :meth:`freeze` for evaluation so
    the statistics stop moving; :meth:`state_dict` / :meth:`load_state_dict` checkpoint them.
    Components are the child's raw ones; per-token shaping passes through unchanged.

    Args:
        reward: The reward to normalise.
        eps: Added to the variance, so a constant reward gives 0, not a division by zero.
        clip: Bound on the normalised value (``None`` for none).
    """

    def __init__(self, reward: Any, eps: float = 1e-8, clip: float | None = 10.0) -> None:
        self.reward = as_reward(reward)
        # eps > 0 is what keeps a constant reward from dividing 0 by 0; a clip <= 0 would
        # flatten every value to 0.
        self.eps = number_arg(eps, "Normalize eps", above=0.0)
        self.clip = None if clip is None else number_arg(clip, "Normalize clip", above=0.0)
        self.update = True
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.name = f"normalize({self.reward.name})"

    @property
    def std(self) -> float:
        """The running standard deviation (population)."""
        return math.sqrt(self.m2 / self.count) if self.count else 0.0

    def freeze(self) -> Normalize:
        """Stop updating the statistics (for evaluation). Returns self."""
        self.update = False
        return self

    def state_dict(self) -> dict[str, float]:
        """The running statistics, for checkpoints."""
        return {"count": self.count, "mean": self.mean, "m2": self.m2}

    def load_state_dict(self, state: Mapping[str, float]) -> None:
        """Restore statistics saved by :meth:`state_dict`.

        Raises:
            ConfigError: ``state`` lacks a key, or holds a negative count or variance or a
                non-finite value (it would make every later reward NaN).
        """
        if not isinstance(state, Mapping) or not {"count", "mean", "m2"} <= set(state):
            raise ConfigError(
                f"Normalize.load_state_dict needs a dict with 'count', 'mean' and 'm2' (from "
                f"state_dict()), got {state!r:.120}."
            )
        count = int_arg(state["count"], "Normalize state 'count'", minimum=0)
        mean = number_arg(state["mean"], "Normalize state 'mean'")
        m2 = number_arg(state["m2"], "Normalize state 'm2'", minimum=0.0)
        self.count, self.mean, self.m2 = count, mean, m2

    def __call__(self, ctx: RewardContext) -> float:
        return self.score(ctx)[0]

    def score(self, ctx: RewardContext) -> Result:
        return self.batch([ctx])[0]

    def batch(self, ctxs: Sequence[RewardContext]) -> list[Result]:
        results = evaluate(self.reward, ctxs)
        count, mean, m2 = self.count, self.mean, self.m2
        if self.update:
            for total, _ in results:
                count += 1
                delta = total - mean
                mean += delta / count
                m2 += delta * (total - mean)
        var = m2 / count if count else 0.0
        # An infinite variance would make every value normalise to 0 without a word, and a
        # NaN one would fail inside math.sqrt: both mean the child's values are too large.
        if not (math.isfinite(mean) and math.isfinite(var)):
            raise self._overflow(results, mean, var)
        scale_ = math.sqrt(var + self.eps)
        out = []
        for total, comps in results:
            z = (total - mean) / scale_
            # Checked before clipping: min/max pass NaN through, and a clipped inf would
            # hide that the arithmetic overflowed.
            if not math.isfinite(z):
                raise self._overflow(results, mean, var)
            if self.clip is not None:
                z = min(max(z, -self.clip), self.clip)
            out.append((z, comps))
        # Committed only once every value is finite, so a failed batch leaves the
        # statistics as they were.
        self.count, self.mean, self.m2 = count, mean, m2
        return out

    def _overflow(self, results: list[Result], mean: float, var: float) -> RewardError:
        largest = max((total for total, _ in results), key=abs)
        return RewardError(
            f"Reward {self.name!r} overflowed: {self.reward.name!r} returned {largest:g}, and "
            f"the running statistics (mean {mean:g}, variance {var:g}) are no longer finite. "
            f"Scale {self.reward.name!r} down (e.g. Clip it) before normalising."
        )

    def token_rewards(self, vocab_size: int) -> np.ndarray | None:
        return self.reward.token_rewards(vocab_size)

    def __repr__(self) -> str:
        return f"Normalize({self.reward!r})"


class LengthCost(Reward):
    """Per-token length cost: ``-cost`` at every agent step (the end-of-turn token included).

    Paid per step through :meth:`token_rewards`, so the turn-end value (and its component) is
    0. Combine it with a turn-end reward: ``ExactMatch() + LengthCost(0.01)``.
    """

    name = "length_cost"

    def __init__(self, cost: float = 0.01) -> None:
        # A negative cost would silently turn the penalty into a bonus for long turns.
        self.cost = number_arg(cost, "LengthCost cost", minimum=0.0)

    def __call__(self, ctx: RewardContext) -> float:
        return 0.0

    def token_rewards(self, vocab_size: int) -> np.ndarray:
        return np.full(vocab_size, -self.cost, dtype=np.float64)

    def __repr__(self) -> str:
        return f"LengthCost({self.cost:g})"


class TokenTable(Reward):
    """Arbitrary per-token shaping: ``values[token_id]`` at every agent step.

    Args:
        values: ``{token_id: reward}`` (other tokens get ``default``), or a function
            ``vocab_size -> array`` for tables that depend on the vocabulary size.
        default: Reward for tokens not in ``values``.
    """

    name = "token_shaping"

    def __init__(
        self,
        values: Mapping[int, float] | Callable[[int], Any],
        default: float = 0.0,
        name: str | None = None,
    ) -> None:
        if name is not None:
            if not isinstance(name, str) or not name:
                raise RewardTypeError(f"TokenTable name must be a non-empty string, got {name!r}.")
            self.name = name
        self.default = number_arg(default, f"TokenTable {self.name!r} default")
        self.values = values
        # A mapping is checked now (ids and values), so a bad entry fails at construction
        # with its key, not when an env first asks for the table.
        self._ids: np.ndarray | None = None
        self._vals: np.ndarray | None = None
        if isinstance(values, Mapping):
            ids = [int_arg(t, f"TokenTable {self.name!r} token id", minimum=0) for t in values]
            vals = [number_arg(v, f"TokenTable {self.name!r}[{t}]") for t, v in values.items()]
            self._ids = np.asarray(ids, dtype=np.int64)
            self._vals = np.asarray(vals, dtype=np.float64)
        elif not callable(values):
            raise RewardTypeError(
                f"TokenTable values must be a dict {{token_id: reward}} or a function "
                f"vocab_size -> array, got {values!r:.120} ({type(values).__name__})."
            )

    def __call__(self, ctx: RewardContext) -> float:
        return 0.0

    def token_rewards(self, vocab_size: int) -> np.ndarray:
        if self._ids is None:
            return self.values(vocab_size)  # type: ignore[operator,no-any-return]
        if self._ids.size and int(self._ids.max()) >= vocab_size:
            raise RewardError(
                f"TokenTable {self.name!r} has token id {int(self._ids.max())}, outside the "
                f"vocabulary [0, {vocab_size})."
            )
        table = np.full(vocab_size, self.default, dtype=np.float64)
        table[self._ids] = self._vals
        return table


__all__ = [
    "Clip",
    "Constant",
    "LengthCost",
    "Normalize",
    "TokenTable",
    "Weighted",
    "add",
    "check_table",
    "scale",
]
