"""The reward protocol and its algebra: how the env asks "how good was this turn?".

A reward is any object with ``__call__(ctx) -> float`` (a plain function works too). The env
calls it at every turn end with a :class:`RewardContext`. Subclassing :class:`Reward` adds
batching (:meth:`Reward.batch`, one call for all episodes that end together in a vector env),
named components for multi-objective rewards (:meth:`Reward.score`), per-token shaping
(:meth:`Reward.token_rewards`, looked up in O(1) at every step), and the algebra
``a + b``, ``a - b``, ``w * a``, ``-a`` and ``a / w``, which builds a :class:`Weighted` sum
with named, inspectable components (nested sums are flattened, so ``0.5 * (a + b)`` is
``Weighted({a: 0.5, b: 0.5})``; a plain function may appear on either side of ``+``).

The algebra lives here, beside the protocol, because each needs the other: the operators
build sums, and a sum is a reward. The other combinators (clipping, normalisation, per-token
shaping) are in :mod:`textgym.rewards.combinators`; the checks every reward shares are in
:mod:`textgym.rewards.checks`.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from textgym.errors import ConfigError
from textgym.rewards.checks import (
    RewardError,
    RewardTypeError,
    check_table,
    check_value,
    int_arg,
    number_arg,
)
from textgym.types import RewardContext

Result = tuple[float, dict[str, float]]


def _checked_token_rewards(method: Callable[..., Any]) -> Callable[..., np.ndarray | None]:
    """Wrap a subclass's ``token_rewards`` so that whatever it returns is validated."""

    @functools.wraps(method)
    def token_rewards(self: Reward, vocab_size: int) -> np.ndarray | None:
        return check_table(method(self, vocab_size), vocab_size, getattr(self, "name", "reward"))

    token_rewards._textgym_checked = True  # type: ignore[attr-defined]
    return token_rewards


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
    # The operators build a Weighted sum (below). A number on either side of ``+`` becomes
    # a constant term; a plain function becomes a FunctionReward.

    def __add__(self, other: Any) -> Reward:
        return add(self, other)

    def __radd__(self, other: Any) -> Reward:
        # ``sum(rewards)`` starts from 0; adding 0 must not create a constant term.
        if isinstance(other, numbers.Real) and not isinstance(other, bool) and other == 0:
            return add(self, None)
        return add(other, self)

    def __sub__(self, other: Any) -> Reward:
        return add(self, scale(other, -1.0))

    def __rsub__(self, other: Any) -> Reward:
        return add(other, scale(self, -1.0))

    def __mul__(self, other: Any) -> Reward:
        return scale(self, other)

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> Reward:
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


def evaluate(
    reward: Reward, ctxs: Sequence[RewardContext], name: str | None = None
) -> list[tuple[float, dict[str, float]]]:
    """Score ``ctxs`` with one batched call, validating every total and component.

    Errors name the reward as ``name`` (default ``reward.name``); combinators pass the name
    of the child so that a NaN deep inside a sum is reported where it came from.
    """
    name = reward.name if name is None else name
    results = reward.batch(ctxs)
    if type(reward).batch is Weighted.batch:
        # A weighted sum (every task's default reward) has checked each term's value and
        # each total itself: checking them again would cost a turn end a few µs for nothing.
        return results
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


# -- the algebra: weighted sums of rewards ---------------------------------------------------


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


__all__ = [
    "Constant",
    "FunctionReward",
    "Result",
    "Reward",
    "RewardContext",
    "RewardError",
    "RewardTypeError",
    "Weighted",
    "add",
    "as_reward",
    "check_table",
    "check_value",
    "evaluate",
    "int_arg",
    "number_arg",
    "scale",
]
