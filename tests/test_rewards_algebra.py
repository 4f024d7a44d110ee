"""Property tests for the reward algebra: ``a + b``, ``w * a``, Weighted, token tables."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import make_ctx
from textgym.rewards import (
    Clip,
    LengthCost,
    Normalize,
    Reward,
    RewardContext,
    RewardError,
    Weighted,
    evaluate,
)

VOCAB = 7


class Affine(Reward):
    """A test reward: ``coef * len(text) + bias``, with an optional token table."""

    def __init__(self, name: str, coef: float, bias: float, table: list[float] | None) -> None:
        self.name, self.coef, self.bias = name, coef, bias
        self.table = None if table is None else np.array(table)
        self.batch_calls = 0

    def __call__(self, ctx: RewardContext) -> float:
        return self.coef * len(ctx.text) + self.bias

    def batch(self, ctxs):  # type: ignore[no-untyped-def]
        self.batch_calls += 1
        return super().batch(ctxs)

    def token_rewards(self, vocab_size: int) -> np.ndarray | None:
        return self.table


finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False)
# Weights away from 0: dividing by a subnormal weight overflows to inf, which Weighted rejects.
weights = st.floats(-5, 5, allow_nan=False, allow_infinity=False).filter(lambda w: abs(w) > 1e-3)
tables = st.one_of(st.none(), st.lists(finite, min_size=VOCAB, max_size=VOCAB))
names = st.sampled_from(["a", "b", "c", "d"])
atoms = st.builds(Affine, names, finite, finite, tables)
texts = st.text(alphabet="abc ", max_size=12)


def approx(x: float) -> object:
    return pytest.approx(x, rel=1e-9, abs=1e-9)


def table_or_zero(r: Reward) -> np.ndarray:
    t = r.token_rewards(VOCAB)
    return np.zeros(VOCAB) if t is None else np.asarray(t)


@settings(max_examples=60, deadline=None)
@given(atoms, atoms, texts)
def test_sum_is_pointwise(a: Affine, b: Affine, text: str) -> None:
    ctx = make_ctx(text)
    assert (a + b)(ctx) == approx(a(ctx) + b(ctx))
    assert (a - b)(ctx) == approx(a(ctx) - b(ctx))
    assert (-a)(ctx) == approx(-a(ctx))


@settings(max_examples=60, deadline=None)
@given(atoms, atoms, weights, texts)
def test_scaling_distributes(a: Affine, b: Affine, w: float, text: str) -> None:
    ctx = make_ctx(text)
    assert (w * (a + b))(ctx) == approx((w * a + w * b)(ctx))
    assert (w * a)(ctx) == approx(w * a(ctx))
    assert (a * w)(ctx) == approx((w * a)(ctx))
    assert (a / w)(ctx) == approx(a(ctx) / w)


@settings(max_examples=60, deadline=None)
@given(atoms, atoms, atoms, weights, weights, texts)
def test_components_sum_to_total(
    a: Affine, b: Affine, c: Affine, u: float, v: float, text: str
) -> None:
    r = u * a + (b - v * c) + 0.5
    assert isinstance(r, Weighted)
    total, comps = r.score(make_ctx(text))
    assert set(comps) == set(r.weights)
    assert total == approx(sum(r.weights[k] * comps[k] for k in comps))
    # Components are the unweighted child scores.
    for key, (child, _) in r.terms.items():
        assert comps[key] == approx(child(make_ctx(text)))


@settings(max_examples=60, deadline=None)
@given(atoms, atoms, weights)
def test_token_tables_add(a: Affine, b: Affine, w: float) -> None:
    r = a + w * b
    expected = table_or_zero(a) + w * table_or_zero(b)
    got = r.token_rewards(VOCAB)
    if a.table is None and b.table is None:
        assert got is None
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(atoms, atoms, st.lists(texts, min_size=1, max_size=5))
def test_batch_is_one_call_per_child_and_matches_score(
    a: Affine, b: Affine, batch: list[str]
) -> None:
    r = Clip(2 * (a + b), -50, 50)
    ctxs = [make_ctx(t) for t in batch]
    a.batch_calls = b.batch_calls = 0
    results = evaluate(r, ctxs)
    # a and b may be the same object (merged into one term): at most one call each.
    assert a.batch_calls == 1 and b.batch_calls == 1 or a is b and a.batch_calls == 1
    for ctx, (total, comps) in zip(ctxs, results, strict=True):
        assert (total, comps) == (approx(r.score(ctx)[0]), r.score(ctx)[1])
        assert -50 <= total <= 50


def test_same_object_merges_and_same_name_is_suffixed() -> None:
    a = Affine("a", 1, 0, None)
    assert (a + a).weights == {"a": 2.0}
    other = Affine("a", 0, 1, None)
    assert (a + other).weights == {"a": 1.0, "a_2": 1.0}
    assert sum([a, other]).weights == {"a": 1.0, "a_2": 1.0}


def test_functions_and_numbers_mix_with_rewards() -> None:
    a = Affine("a", 0, 2, None)
    r = a + (lambda ctx: 3.0) - 1
    total, comps = r.score(make_ctx("x"))
    assert total == 4.0
    assert comps == {"a": 2.0, "<lambda>": 3.0, "constant": -1.0}
    named = Weighted({"f": (lambda ctx: 1.5, 2.0), "a": a})
    assert named.score(make_ctx("x")) == (5.0, {"f": 1.5, "a": 2.0})


@pytest.mark.parametrize("bad", [float("nan"), math.inf, None, "1.0"])
def test_bad_child_value_names_the_child(bad: object) -> None:
    def broken(ctx: RewardContext) -> float:
        return bad  # type: ignore[return-value]

    r = Normalize(Clip(0.5 * (Affine("fine", 0, 1, None) + broken)))
    with pytest.raises(RewardError, match="'broken'"):
        evaluate(r, [make_ctx("x")])


def test_operator_errors_say_what_to_do() -> None:
    a, b = Affine("a", 1, 0, None), Affine("b", 1, 0, None)
    with pytest.raises(TypeError, match="linearly"):
        a * b
    with pytest.raises(TypeError, match="non-zero number"):
        a / 0
    # A NaN weight has the right type and the wrong value.
    with pytest.raises(ValueError, match="finite number"):
        a * float("nan")
    with pytest.raises(TypeError, match="finite number"):
        Weighted({"a": (a, "heavy")})
    with pytest.raises(RewardError, match="shape"):
        (a + Affine("t", 0, 0, [1.0, 2.0])).token_rewards(VOCAB)


def test_clip_and_normalize() -> None:
    a = Affine("a", 1, 0, [1.0] * VOCAB)
    clip = Clip(a, -1, 2)
    assert clip(make_ctx("abcde")) == 2.0
    assert clip.score(make_ctx("abcde"))[1] == {"a": 5.0}  # raw component stays visible
    np.testing.assert_array_equal(clip.token_rewards(VOCAB), np.ones(VOCAB))
    norm = Normalize(a)
    values = [len(t) for t in ["a", "abc", "abcde", "ab"]]
    results = evaluate(norm, [make_ctx(t) for t in ["a", "abc", "abcde", "ab"]])
    mean, std = np.mean(values), np.std(values)
    for v, (z, _) in zip(values, results, strict=True):
        assert z == pytest.approx((v - mean) / std, rel=1e-6)
    state = norm.state_dict()
    frozen = Normalize(a)
    frozen.load_state_dict(state)
    frozen.freeze()
    assert frozen(make_ctx("abcde")) == pytest.approx((5 - mean) / std, rel=1e-6)
    assert frozen.state_dict() == state


def test_length_cost_is_per_token() -> None:
    r = Affine("a", 0, 1, None) + LengthCost(0.25)
    np.testing.assert_array_equal(r.token_rewards(VOCAB), np.full(VOCAB, -0.25))
    assert r.score(make_ctx("x")) == (1.0, {"a": 1.0, "length_cost": 0.0})
