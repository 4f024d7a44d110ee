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

from textgym.errors import ConfigError
from textgym.rewards.base import (
    Reward,
    RewardContext,
    RewardError,
    RewardTypeError,
    as_reward,
    check_table,
    check_value,
    evaluate,
    int_arg,
    number_arg,
)

Result = tuple[float, dict[str, float]]


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _weight(w: Any, where: str) -> float:
    if not _is_number(w):
        raise RewardTypeError(
            f"{where}: a weight must be a finite number, got {w!r} ({type(w).__name__}). "
            "Rewards combine linearly: write w * reward with w a float."
        )
    if not math.isfinite(float(w)):
        raise ConfigError(
            f"{where}: a weight must be a finite number, got {w!r}. "
            "Rewards combine linearly: write w * reward with w a float."
        )
    return float(w)


def _overflow(name: str, terms: Sequence[tuple[str, float, float]]) -> RewardError:
    """The error for a weighted sum whose total is not finite, naming the term to blame.

    ``terms`` are ``(key, weight, value)`` in summation order; the blamed term is the first
    whose product, or whose addition to the running total, is not finite.
    """
    running = 0.0
    for key, w, value in terms:
        product = w * value
        running += product
        if not math.isfinite(product):
            detail = f"term {key!r}: weight {w:g} * value {value:g} = {product}"
            break
        if not math.isfinite(running):
            detail = f"adding term {key!r} ({w:g} * {value:g}) makes the sum {running}"
            break
    else:  # pragma: no cover - only reached if the caller's total was finite after all
        detail = "the sum"
    return RewardError(
        f"Reward {name!r} overflowed: {detail}. Scale the weights or the rewards down so "
        "that every product and the sum stay finite."
    )


class Constant(Reward):
    """The same value for every turn (``reward + 0.5`` adds one)."""

    name = "constant"

    def __init__(self, value: float) -> None:
        self.value = number_arg(value, "Constant value")

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
        if not isinstance(terms, Mapping):
            raise RewardTypeError(
                f"Weighted needs a dict {{name: (reward, weight)}}, got {terms!r:.120} "
                f"({type(terms).__name__})."
            )
        if not terms:
            raise ConfigError("Weighted needs at least one term: {name: (reward, weight)}.")
        if not isinstance(name, str) or not name:
            raise RewardTypeError(f"Weighted name must be a non-empty string, got {name!r}.")
        self.name = name
        self.terms: dict[str, tuple[Reward, float]] = {}
        for key, value in terms.items():
            if not isinstance(key, str) or not key:
                raise RewardTypeError(
                    f"Weighted term names must be non-empty strings, got {key!r}."
                )
            if isinstance(value, tuple):
                if len(value) != 2:
                    raise RewardTypeError(
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
        # Finite children with large weights can still overflow to inf (or inf - inf = NaN);
        # that must stop here, named, rather than reach the learner as a reward.
        if not all(map(math.isfinite, totals)):
            i = next(i for i, t in enumerate(totals) if not math.isfinite(t))
            raise _overflow(self.name, [(k, w, comps[i][k]) for k, (_, w) in self.terms.items()])
        return list(zip(totals, comps, strict=True))

    def token_rewards(self, vocab_size: int) -> np.ndarray | None:
        out: np.ndarray | None = None
        for key, (reward, w) in self.terms.items():
            table = check_table(reward.token_rewards(vocab_size), vocab_size, key)
            if table is not None:
                with np.errstate(over="ignore", invalid="ignore"):
                    term = w * table
                    total = term if out is None else out + term
                if not np.isfinite(total).all():
                    token = int(np.flatnonzero(~np.isfinite(total))[0])
                    before = 0.0 if out is None else float(out[token])
                    raise RewardError(
                        f"Reward {self.name!r}.token_rewards overflowed at token id {token}: "
                        f"term {key!r} adds {w:g} * {table[token]:g} to {before:g}. Scale the "
                        "weights or the per-token values down."
                    )
                out = total
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
    # Lookups by object identity and the next free suffix per name keep a merge linear, so
    # a spec or a ``sum`` of many terms does not take cubic time.
    by_id: dict[int, str] = {}
    next_suffix: dict[str, int] = {}
    constant = 0.0
    has_constant = False
    for key, reward, w in terms:
        if type(reward) is Constant:
            # Constants fold into one term, so 1 - a + 2 has a single "constant" component.
            constant += w * reward.value
            has_constant = True
            continue
        same = by_id.get(id(reward))
        if same is not None:
            # The same object twice (a + a) is one term with the weights added.
            merged[same] = (reward, merged[same][1] + w)
            continue
        name, n = key, next_suffix.get(key, 2)
        while name in merged:
            name, n = f"{key}_{n}", n + 1
        next_suffix[key] = n
        merged[name] = (reward, w)
        by_id[id(reward)] = name
    if has_constant:
        name, n = "constant", 2
        while name in merged:
            name, n = f"constant_{n}", n + 1
        if not math.isfinite(constant):
            raise ConfigError(
                f"The constant terms of a reward sum add up to {constant}; keep them finite."
            )
        merged[name] = (Constant(constant), 1.0)
    for name, (_, w) in merged.items():
        if not math.isfinite(w):
            raise ConfigError(
                f"The weight of term {name!r} overflows to {w} (a weight multiplied or added "
                "too many times); keep the weights of a reward sum finite."
            )
    return Weighted(merged)


def add(a: Any, b: Any) -> Weighted:
    """``a + b`` for rewards, functions and numbers (``b=None`` wraps ``a`` alone)."""
    if not any(isinstance(x, Reward) or (callable(x) and not _is_number(x)) for x in (a, b)):
        raise RewardTypeError(f"add needs at least one reward, got {a!r} and {b!r}.")
    return _merge(_terms_of(a) + _terms_of(b))


def scale(a: Any, w: Any) -> Weighted | float:
    """``w * a``: every term of ``a`` with its weight multiplied by the number ``w``."""
    if isinstance(w, Reward) or callable(w) and not _is_number(w):
        raise RewardTypeError(
            f"Cannot multiply two rewards ({a!r} * {w!r}): rewards combine linearly. "
            "Multiply a reward by a number, e.g. 0.1 * reward."
        )
    factor = _weight(w, "reward * w")
    if _is_number(a):
        product = float(a) * factor
        if not math.isfinite(product):
            raise ConfigError(f"{a!r} * {w!r} overflows to {product}; keep numbers finite.")
        return product
    return _merge([(k, r, wt * factor) for k, r, wt in _terms_of(a)])


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
