"""Combinators: build rewards out of rewards.

* :class:`Weighted` — a weighted sum with named, inspectable components; ``a + b``,
  ``a - b``, ``w * a`` and ``-a`` on any :class:`~textgym.rewards.base.Reward` build one
  (nested sums are flattened, so ``0.5 * (a + b)`` is ``Weighted({a: 0.5, b: 0.5})``).
* :class:`Clip` and :class:`Normalize` (running mean/std) transform a reward's total.
* :class:`LengthCost` and :class:`TokenTable` shape rewards per token, through
  :meth:`~textgym.rewards.base.Reward.token_rewards` tables, so a step stays O(1).

Every combinator forwards :meth:`~textgym.rewards.base.Reward.batch` to its children (one
batched call per child, so a model-based reward inside a sum still sees the whole batch) and
combines their ``token_rewards`` tables. Each child's values are validated with
:func:`~textgym.rewards.base.check_value` under the child's own name, so a NaN deep inside a
sum is reported as coming from the reward that produced it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from textgym.rewards.base import (
    Reward,
    RewardContext,
    RewardError,
    as_reward,
    check_value,
    evaluate,
)

Result = tuple[float, dict[str, float]]


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _weight(w: Any, where: str) -> float:
    if not _is_number(w) or not math.isfinite(float(w)):
        raise TypeError(
            f"{where}: a weight must be a finite number, got {w!r} ({type(w).__name__}). "
            "Rewards combine linearly: write w * reward with w a float."
        )
    return float(w)


def check_table(table: Any, vocab_size: int, name: str) -> np.ndarray | None:
    """A reward's ``token_rewards`` table as a float array of shape ``(vocab_size,)``."""
    if table is None:
        return None
    arr = np.asarray(table, dtype=np.float64)
    if arr.shape != (vocab_size,):
        raise RewardError(
            f"Reward {name!r}.token_rewards returned shape {arr.shape}; expected "
            f"({vocab_size},): one value per token id."
        )
    if not np.isfinite(arr).all():
        raise RewardError(
            f"Reward {name!r}.token_rewards contains NaN or inf; every per-token value must "
            "be finite."
        )
    return arr


class Constant(Reward):
    """The same value for every turn (``reward + 0.5`` adds one)."""

    name = "constant"

    def __init__(self, value: float) -> None:
        self.value = _weight(value, "Constant")

    def __call__(self, ctx: RewardContext) -> float:
        return self.value

    def __repr__(self) -> str:
        return f"Constant({self.value:g})"


class Weighted(Reward):
    """A weighted sum of rewards whose components are the (unweighted) child scores.

    ``total = sum(weight[k] * components[k])`` over the terms, and
    ``info["reward_components"]`` shows each term's own score under its name, so what each
    objective contributed stays visible.

    Args:
        terms: ``{"name": (reward, weight)}``; a bare reward (or function) means weight 1.
        name: The name of the sum itself (used in error messages).

    Example:
        >>> from textgym.rewards import Weighted, NumericMatch, AnswerFormat
        >>> r = Weighted({"correct": (NumericMatch(), 1.0), "format": (AnswerFormat(), 0.1)})
    """

    def __init__(
        self,
        terms: Mapping[str, tuple[Any, float] | Any],
        name: str = "weighted",
    ) -> None:
        if not isinstance(terms, Mapping) or not terms:
            raise TypeError(
                f"Weighted needs a non-empty dict {{name: (reward, weight)}}, got {terms!r}."
            )
        self.name = name
        self.terms: dict[str, tuple[Reward, float]] = {}
        for key, value in terms.items():
            if not isinstance(key, str) or not key:
                raise TypeError(f"Weighted term names must be non-empty strings, got {key!r}.")
            if isinstance(value, tuple):
                if len(value) != 2:
                    raise TypeError(
                        f"Weighted term {key!r} is {value!r}; expected (reward, weight)."
                    )
                reward, w = value
            else:
                reward, w = value, 1.0
            self.terms[key] = (as_reward(reward), _weight(w, f"Weighted term {key!r}"))

    @property
    def weights(self) -> dict[str, float]:
        """Each term's weight, keyed like the components."""
        return {k: w for k, (_, w) in self.terms.items()}

    def __call__(self, ctx: RewardContext) -> float:
        return self.score(ctx)[0]

    def score(self, ctx: RewardContext) -> Result:
        return self.batch([ctx])[0]

    def batch(self, ctxs: Sequence[RewardContext]) -> list[Result]:
        totals = [0.0] * len(ctxs)
        comps: list[dict[str, float]] = [{} for _ in ctxs]
        for key, (reward, w) in self.terms.items():
            kind = type(reward)
            if kind.batch is Reward.batch and kind.score is Reward.score:
                # A plain reward's total is its __call__: calling it directly skips the
                # (value, {name: value}) pairs that only this loop would unpack again.
                values = [check_value(reward(ctx), key) for ctx in ctxs]
            else:
                # One batched call per child: a model-based term sees every context at once.
                values = [value for value, _ in evaluate(reward, ctxs, key)]
            for i, value in enumerate(values):
                comps[i][key] = value
                totals[i] += w * value
        return list(zip(totals, comps, strict=True))

    def token_rewards(self, vocab_size: int) -> np.ndarray | None:
        out: np.ndarray | None = None
        for key, (reward, w) in self.terms.items():
            table = check_table(reward.token_rewards(vocab_size), vocab_size, key)
            if table is not None:
                out = w * table if out is None else out + w * table
        return out

    def __repr__(self) -> str:
        parts = [f"{w:g}*{r!r}" if w != 1.0 else repr(r) for r, w in self.terms.values()]
        return "(" + " + ".join(parts) + ")"


def _terms_of(x: Any) -> list[tuple[str, Reward, float]]:
    """The linear terms of ``x``: a Weighted is flattened, a number becomes a Constant."""
    if x is None:
        return []
    if isinstance(x, Weighted):
        return [(k, r, w) for k, (r, w) in x.terms.items()]
    if _is_number(x):
        return [("constant", Constant(float(x)), 1.0)]
    reward = as_reward(x)
    return [(reward.name, reward, 1.0)]


def _merge(terms: list[tuple[str, Reward, float]]) -> Weighted:
    merged: dict[str, tuple[Reward, float]] = {}
    constant = 0.0
    has_constant = False
    for key, reward, w in terms:
        if type(reward) is Constant:
            # Constants fold into one term, so 1 - a + 2 has a single "constant" component.
            constant += w * reward.value
            has_constant = True
            continue
        same = next((k for k, (r, _) in merged.items() if r is reward), None)
        if same is not None:
            # The same object twice (a + a) is one term with the weights added.
            merged[same] = (reward, merged[same][1] + w)
            continue
        name, n = key, 2
        while name in merged:
            name, n = f"{key}_{n}", n + 1
        merged[name] = (reward, w)
    if has_constant:
        name, n = "constant", 2
        while name in merged:
            name, n = f"constant_{n}", n + 1
        merged[name] = (Constant(constant), 1.0)
    return Weighted(merged)


def add(a: Any, b: Any) -> Weighted:
    """``a + b`` for rewards, functions and numbers (``b=None`` wraps ``a`` alone)."""
    if not any(isinstance(x, Reward) or (callable(x) and not _is_number(x)) for x in (a, b)):
        raise TypeError(f"add needs at least one reward, got {a!r} and {b!r}.")
    return _merge(_terms_of(a) + _terms_of(b))


def scale(a: Any, w: Any) -> Weighted | float:
    """``w * a``: every term of ``a`` with its weight multiplied by the number ``w``."""
    if isinstance(w, Reward) or callable(w) and not _is_number(w):
        raise TypeError(
            f"Cannot multiply two rewards ({a!r} * {w!r}): rewards combine linearly. "
            "Multiply a reward by a number, e.g. 0.1 * reward."
        )
    factor = _weight(w, "reward * w")
    if _is_number(a):
        return float(a) * factor
    return _merge([(k, r, wt * factor) for k, r, wt in _terms_of(a)])


class Clip(Reward):
    """Clip another reward's total into ``[low, high]``.

    Components are the child's, unclipped, so the raw signal stays visible. Per-token shaping
    passes through unchanged (clipping applies to the turn-end value).
    """

    def __init__(self, reward: Any, low: float = -1.0, high: float = 1.0) -> None:
        self.reward = as_reward(reward)
        self.low, self.high = _weight(low, "Clip low"), _weight(high, "Clip high")
        if not self.low < self.high:
            raise ValueError(f"Clip needs low < high, got low={low}, high={high}.")
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
        self.eps = eps
        self.clip = clip
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
        """Restore statistics saved by :meth:`state_dict`."""
        self.count, self.mean, self.m2 = int(state["count"]), state["mean"], state["m2"]

    def __call__(self, ctx: RewardContext) -> float:
        return self.score(ctx)[0]

    def score(self, ctx: RewardContext) -> Result:
        return self.batch([ctx])[0]

    def batch(self, ctxs: Sequence[RewardContext]) -> list[Result]:
        results = evaluate(self.reward, ctxs)
        if self.update:
            for total, _ in results:
                self.count += 1
                delta = total - self.mean
                self.mean += delta / self.count
                self.m2 += delta * (total - self.mean)
        scale_ = math.sqrt((self.m2 / self.count if self.count else 0.0) + self.eps)
        out = []
        for total, comps in results:
            z = (total - self.mean) / scale_
            if self.clip is not None:
                z = min(max(z, -self.clip), self.clip)
            out.append((z, comps))
        return out

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
        self.cost = _weight(cost, "LengthCost")

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
        self.values = values
        self.default = _weight(default, "TokenTable default")
        if name:
            self.name = name

    def __call__(self, ctx: RewardContext) -> float:
        return 0.0

    def token_rewards(self, vocab_size: int) -> np.ndarray:
        if callable(self.values):
            table = check_table(self.values(vocab_size), vocab_size, self.name)
            assert table is not None
            return table
        table = np.full(vocab_size, self.default, dtype=np.float64)
        for token, value in self.values.items():
            if not 0 <= int(token) < vocab_size:
                raise RewardError(
                    f"TokenTable {self.name!r} has token id {token}, outside the vocabulary "
                    f"[0, {vocab_size})."
                )
            table[int(token)] = _weight(value, f"TokenTable {self.name!r}[{token}]")
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
