"""Bad input to rewards gets a clear error, and non-finite values never pass (issue 14).

``BAD`` is the sweep: one row per input (reward specs, constructor arguments, callables that
return bad values, non-finite per-token tables, combinator overflow), each with the error
type it must raise and a fragment of the message. Every error must also be a
:class:`~textgym.errors.UserError`, so the command line prints it in one line. ``GOOD`` lists
inputs near the edge that must still be accepted.

The rows use only names that existed before the fix (built-in error types, ``UserError``), so
the same table can be run against the old code to classify how it behaved.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import textgym  # noqa: F401  (registers the env ids)
from textgym.errors import UserError
from textgym.rewards import (
    AnswerFormat,
    BannedWords,
    Clip,
    Concision,
    Constant,
    Correctness,
    ExactMatch,
    LengthCost,
    Normalize,
    NumericMatch,
    Politeness,
    Relevance,
    Repetition,
    Reward,
    RewardContext,
    RewardError,
    RewardSpecError,
    TokenTable,
    Weighted,
    as_reward,
    evaluate,
    make_reward,
    parse_reward,
    register_reward,
    tradeoff,
)
from textgym.tasks.base import Problem, Turn
from textgym.tasks.copy import CopyTask

VOCAB = 7
TASK = CopyTask()
NAN, INF = math.nan, math.inf


def ctx(text: str = "red") -> RewardContext:
    problem = Problem(prompt="copy: red", answer="red")
    return RewardContext(
        problem=problem,
        turns=(Turn("user", problem.prompt), Turn("agent", text)),
        text=text,
        token_ids=np.arange(len(text.split())),
    )


class Fixed(Reward):
    """A reward with a fixed value and an optional per-token table."""

    def __init__(self, name: str, value: Any = 0.0, table: Any = None) -> None:
        self.name, self.value, self.table = name, value, table

    def __call__(self, ctx: RewardContext) -> float:
        return self.value

    def token_rewards(self, vocab_size: int) -> Any:
        return self.table(vocab_size) if callable(self.table) else self.table


class Alternating(Reward):
    """Returns +value, -value, +value, ... (to overflow a running variance)."""

    name = "alternating"

    def __init__(self, value: float) -> None:
        self.value, self.sign = value, 1.0

    def __call__(self, ctx: RewardContext) -> float:
        self.sign = -self.sign
        return self.sign * self.value


class BadBatch(Reward):
    """A reward whose batch (or score) returns the wrong structure."""

    name = "bad_batch"

    def __init__(self, result: Any) -> None:
        self.result = result

    def __call__(self, ctx: RewardContext) -> float:
        return 0.0

    def batch(self, ctxs: Any) -> Any:
        return self.result


def returning(value: Any) -> Callable[[], Any]:
    """Evaluate a plain function reward named ``user_fn`` that returns ``value``."""

    def user_fn(ctx: RewardContext) -> Any:
        return value

    return lambda: evaluate(as_reward(user_fn), [ctx()])


def nan_table(vocab_size: int) -> np.ndarray:
    return np.full(vocab_size, NAN)


def inf_at_3(vocab_size: int) -> np.ndarray:
    table = np.zeros(vocab_size)
    table[3] = INF
    return table


def run_env(reward: Any) -> float:
    """Build Copy-v0 with ``reward`` and take one oracle step; the step's reward."""
    env = gym.make("textgym/Copy-v0", reward=reward)
    env.reset(seed=0)
    _, r, *_ = env.step(env.unwrapped.oracle_action())
    return float(r)


def load_state(state: Any) -> Callable[[], None]:
    return lambda: Normalize(ExactMatch()).load_state_dict(state)


@dataclass(frozen=True)
class Bad:
    id: str
    run: Callable[[], Any]
    error: type[Exception]
    fragment: str


def spec(text: str, fragment: str, *, id: str | None = None) -> Bad:
    return Bad(id or f"spec {text[:40]!r}", lambda: parse_reward(text), RewardSpecError, fragment)


BAD: list[Bad] = [
    # -- reward specs ---------------------------------------------------------------------
    spec("exact_match(", "to close the '(' of exact_match at position 11"),
    spec("clip(format,", "to close the '(' of clip at position 4"),
    spec("clip(format, -1", "expected ',' or ')'"),
    spec("0.1*", "found the end of the spec"),
    spec("exact_match + + format", "two '+' signs in a row"),
    spec("exact_match - -format", "two '-' signs in a row"),
    spec("((format)", "expected ')' to close the '(' at position 0"),
    spec("format)", "unexpected ')'"),
    spec("(", "found the end of the spec"),
    spec("()", "empty parentheses"),
    spec("", "empty"),
    spec("bogus_reward", "unknown reward name 'bogus_reward'"),
    spec("exact_mach + format", "did you mean 'exact_match'"),
    spec("__import__('os')", "unknown reward name"),
    spec("1e999", "too large"),
    spec("1e999*format", "too large"),
    spec("1e-999*format", "too small"),
    spec("1e300*1e300*format", "overflows to inf"),
    spec("1e200*(1e200*format)", "overflows to inf"),
    spec("constant(1e308) + constant(1e308)", "add up to inf"),
    spec("(" * 1000 + "format" + ")" * 1000, "nests more than 100 levels", id="spec 1000 '('"),
    spec("+-" * 600 + "format", "nests more than 100 levels", id="spec 1200 signs"),
    spec("clip(" * 400 + "format" + ")" * 400, "nests more than 100 levels", id="spec 400 clip("),
    spec("normalize(format, eps=0)", "eps must be > 0"),
    spec("normalize(format, eps=-1e-8)", "eps must be > 0"),
    spec("normalize(format, clip=-1)", "clip must be > 0"),
    spec("normalize(format, eps=1e999)", "too large"),
    spec("clip(format, 1, -1)", "low < high"),
    spec("clip(format, hgh=1)", "did you mean 'high'"),
    spec("clip", "missing a required argument: 'reward'"),
    spec("format(1)", "too many positional arguments"),
    spec("concision(target=3, 4)", "positional argument after a keyword"),
    spec("concision(target=1, target=2)", "'target' is given twice"),
    spec("concision(target=2.5)", "whole number"),
    spec("concision(format)", "whole number"),
    spec("concision(target='ten')", "whole number"),
    spec("relevance(key='topic)", "unterminated string"),
    spec("2format", "is an operator (+, - or *) missing"),
    spec("format / 2", "division is not supported"),
    spec("clip('format')", "without quotes"),
    spec("exact_match * format", "cannot multiply two rewards"),
    spec("format, format", "unexpected ','"),
    spec("length_cost(-0.01)", "must be >= 0"),
    spec("correctness(correct='yes')", "must be a number"),
    spec("correctness(wrong=1)", "wrong < abstain < correct"),
    spec("repetition(n=0)", "must be >= 1"),
    spec("banned_words(per_hit=-1)", "must be >= 0"),
    spec("numeric_match(tol=-1)", "must be >= 0"),
    spec("politeness(bonus=-0.25)", "must be >= 0"),
    Bad("spec not a string", lambda: parse_reward(42), TypeError, "takes a string"),  # type: ignore[arg-type]
    Bad(
        "spec through gym.make",
        lambda: gym.make("textgym/Copy-v0", reward="exact_match("),
        RewardSpecError,
        "position 12",
    ),
    # -- constructor arguments ------------------------------------------------------------
    Bad("Normalize eps=0", lambda: Normalize(ExactMatch(), eps=0), ValueError, "eps must be > 0"),
    Bad("Normalize eps=nan", lambda: Normalize(ExactMatch(), eps=NAN), ValueError, "finite"),
    Bad("Normalize eps str", lambda: Normalize(ExactMatch(), eps="small"), TypeError, "number"),
    Bad("Normalize clip<0", lambda: Normalize(ExactMatch(), clip=-1.0), ValueError, "clip"),
    Bad("Normalize clip=inf", lambda: Normalize(ExactMatch(), clip=INF), ValueError, "finite"),
    Bad("Clip low=nan", lambda: Clip(ExactMatch(), NAN, 1), ValueError, "finite"),
    Bad("Clip low str", lambda: Clip(ExactMatch(), "0", 1), TypeError, "must be a number"),
    Bad("Clip low>high", lambda: Clip(ExactMatch(), 1, 0), ValueError, "low < high"),
    Bad(
        "Weighted weight=inf",
        lambda: Weighted({"a": (ExactMatch(), INF)}),
        ValueError,
        "finite number",
    ),
    Bad(
        "Weighted weight str",
        lambda: Weighted({"a": (ExactMatch(), "0.5")}),
        TypeError,
        "finite number",
    ),
    Bad(
        "Weighted weight bool",
        lambda: Weighted({"a": (ExactMatch(), True)}),
        TypeError,
        "finite number",
    ),
    Bad("Weighted empty", lambda: Weighted({}), ValueError, "at least one term"),
    Bad("Weighted list", lambda: Weighted([ExactMatch()]), TypeError, "needs a dict"),  # type: ignore[arg-type]
    Bad("reward * inf", lambda: ExactMatch() * INF, ValueError, "finite number"),
    Bad("reward * nan", lambda: ExactMatch() * NAN, ValueError, "finite number"),
    Bad("reward / 1e-320", lambda: ExactMatch() / 1e-320, ValueError, "infinite weight"),
    Bad("reward / str", lambda: ExactMatch() / "2", TypeError, "non-zero number"),
    Bad("reward / 0", lambda: ExactMatch() / 0, TypeError, "non-zero number"),
    Bad("Constant nan", lambda: Constant(NAN), ValueError, "finite"),
    Bad("Constant str", lambda: Constant("1"), TypeError, "must be a number"),
    Bad("LengthCost str", lambda: LengthCost("0.1"), TypeError, "must be a number"),
    Bad("LengthCost < 0", lambda: LengthCost(-0.1), ValueError, "must be >= 0"),
    Bad("LengthCost inf", lambda: LengthCost(INF), ValueError, "finite"),
    Bad("TokenTable str id", lambda: TokenTable({"a": 1.0}), TypeError, "token id"),
    Bad("TokenTable id<0", lambda: TokenTable({-1: 1.0}), ValueError, "must be >= 0"),
    Bad("TokenTable value nan", lambda: TokenTable({1: NAN}), ValueError, "finite"),
    Bad("TokenTable value str", lambda: TokenTable({1: "x"}), TypeError, "must be a number"),
    Bad("TokenTable default inf", lambda: TokenTable({}, default=INF), ValueError, "finite"),
    Bad("TokenTable values int", lambda: TokenTable(5), TypeError, "dict"),  # type: ignore[arg-type]
    Bad("Concision target str", lambda: Concision(target="20"), TypeError, "whole number"),
    Bad("Concision target nan", lambda: Concision(target=NAN), TypeError, "whole number"),
    Bad("Concision min>target", lambda: Concision(5, 6), ValueError, "min_words <= target"),
    Bad("Repetition n=1.5", lambda: Repetition(n=1.5), TypeError, "whole number"),
    Bad("Repetition n str", lambda: Repetition(n="2"), TypeError, "whole number"),
    Bad("Politeness bonus nan", lambda: Politeness(bonus=NAN), ValueError, "finite"),
    Bad("Politeness penalty str", lambda: Politeness(penalty="high"), TypeError, "number"),
    Bad("Politeness penalty<0", lambda: Politeness(penalty=-1), ValueError, ">= 0"),
    Bad("BannedWords per_hit inf", lambda: BannedWords(per_hit=INF), ValueError, "finite"),
    Bad("BannedWords ints", lambda: BannedWords([1, 2]), TypeError, "must be strings"),  # type: ignore[list-item]
    Bad("BannedWords int", lambda: BannedWords(5), TypeError, "list of words"),  # type: ignore[arg-type]
    Bad("BannedWords str", lambda: BannedWords("damn"), TypeError, "list of words"),
    Bad("NumericMatch tol nan", lambda: NumericMatch(tol=NAN), ValueError, "finite"),
    Bad("NumericMatch tol str", lambda: NumericMatch(tol="0.1"), TypeError, "number"),
    Bad("NumericMatch tol<0", lambda: NumericMatch(tol=-1), ValueError, ">= 0"),
    Bad("Correctness inf", lambda: Correctness(correct=INF), ValueError, "finite"),
    Bad("Correctness str", lambda: Correctness(correct="1"), TypeError, "must be a number"),
    Bad("Correctness order", lambda: Correctness(0, 1, 2), ValueError, "wrong < abstain"),
    Bad("Relevance key int", lambda: Relevance(key=3), TypeError, "key must be"),  # type: ignore[arg-type]
    Bad("Relevance fallback", lambda: Relevance(fallback="x"), ValueError, "fallback"),
    Bad("as_reward str", lambda: as_reward("exact_match"), TypeError, "parse_reward"),
    Bad("as_reward class", lambda: as_reward(ExactMatch), TypeError, "ExactMatch()"),
    Bad("as_reward int", lambda: as_reward(3), TypeError, "function ctx -> float"),
    Bad("reward fn, no args", lambda: as_reward(lambda: 1.0), TypeError, "one argument"),
    Bad(
        "reward fn, two args",
        lambda: as_reward(lambda ctx, other: 1.0),
        TypeError,
        "one argument",
    ),
    Bad("make_reward unknown", lambda: make_reward("nope"), KeyError, "Unknown reward 'nope'"),
    Bad(
        "register_reward name",
        lambda: register_reward("two words", ExactMatch),
        ValueError,
        "identifier",
    ),
    Bad(
        "register_reward factory",
        lambda: register_reward("fine_name", 3),  # type: ignore[arg-type]
        TypeError,
        "callable factory",
    ),
    Bad("load_state missing", load_state({"count": 1}), ValueError, "'count', 'mean' and 'm2'"),
    Bad(
        "load_state count<0",
        load_state({"count": -1, "mean": 0.0, "m2": 0.0}),
        ValueError,
        ">= 0",
    ),
    Bad("load_state nan", load_state({"count": 2, "mean": NAN, "m2": 0.0}), ValueError, "finite"),
    Bad("tradeoff nan", lambda: tradeoff([{"a": NAN}, {"a": 1.0}]), ValueError, "finite"),
    Bad("tradeoff str value", lambda: tradeoff([{"a": "x"}]), TypeError, "a='x' in record 0"),
    Bad(
        "tradeoff components str",
        lambda: tradeoff([{"ab": 1.0}], components="ab"),
        TypeError,
        "list of names",
    ),
    Bad("tradeoff records str", lambda: tradeoff("abc"), TypeError, "list of"),  # type: ignore[arg-type]
    # -- callables returning bad values ---------------------------------------------------
    Bad("fn returns None", returning(None), RewardError, "'user_fn' returned None"),
    Bad("fn returns str", returning("1.0"), RewardError, "'user_fn' returned '1.0'"),
    Bad("fn returns nan", returning(NAN), RewardError, "'user_fn' returned nan"),
    Bad("fn returns inf", returning(-INF), RewardError, "'user_fn' returned -inf"),
    Bad("fn returns np nan", returning(np.float32("nan")), RewardError, "'user_fn' returned nan"),
    Bad("fn returns array", returning(np.array([1.0, 2.0])), RewardError, ".item()"),
    Bad("fn returns list", returning([1.0]), RewardError, "finite number"),
    Bad("fn returns complex", returning(1j), RewardError, "finite number"),
    Bad(
        "batch wrong length",
        lambda: evaluate(BadBatch([(1.0, {})] * 3), [ctx()]),
        RewardError,
        "3 results for 1",
    ),
    Bad(
        "batch returns None",
        lambda: evaluate(BadBatch(None), [ctx()]),
        RewardError,
        "'bad_batch'.batch returned NoneType",
    ),
    Bad(
        "batch item not a pair",
        lambda: evaluate(BadBatch([1.0]), [ctx()]),
        RewardError,
        "must be a pair",
    ),
    Bad(
        "batch components None",
        lambda: evaluate(BadBatch([(1.0, None)]), [ctx()]),
        RewardError,
        "must be a pair",
    ),
    Bad(
        "nan child in a sum",
        lambda: evaluate(ExactMatch() + Fixed("child", NAN), [ctx()]),
        RewardError,
        "'child' returned nan",
    ),
    # -- combinator overflow --------------------------------------------------------------
    Bad(
        "sum overflows",
        lambda: evaluate(Fixed("big", 1e308) + Fixed("bigger", 1e308), [ctx()]),
        RewardError,
        "adding term 'bigger'",
    ),
    Bad(
        "weight * value overflows",
        lambda: evaluate(1e300 * Fixed("big", 1e10), [ctx()]),
        RewardError,
        "term 'big': weight 1e+300 * value 1e+10 = inf",
    ),
    Bad(
        "inf - inf in a sum",
        lambda: evaluate(1e300 * Fixed("a", 1e10) - 1e300 * Fixed("b", 1e10), [ctx()]),
        RewardError,
        "overflowed",
    ),
    Bad(
        "clip of an overflowing sum",
        lambda: evaluate(Clip(Fixed("big", 1e308) + Fixed("bigger", 1e308)), [ctx()]),
        RewardError,
        "overflowed",
    ),
    Bad(
        "normalize overflows",
        lambda: evaluate(Normalize(Alternating(1e308)), [ctx(), ctx()]),
        RewardError,
        "'normalize(alternating)' overflowed",
    ),
    Bad(
        "normalize(clip=None) overflows",
        lambda: evaluate(Normalize(Alternating(1e308), clip=None), [ctx(), ctx()]),
        RewardError,
        "overflowed",
    ),
    # -- per-token tables -----------------------------------------------------------------
    Bad(
        "nan table",
        lambda: Fixed("shaper", table=nan_table).token_rewards(VOCAB),
        RewardError,
        "'shaper'.token_rewards contains nan at token id 0",
    ),
    Bad(
        "inf at one token",
        lambda: Fixed("shaper", table=inf_at_3).token_rewards(VOCAB),
        RewardError,
        "inf at token id 3",
    ),
    Bad(
        "table of strings",
        lambda: Fixed("shaper", table=["a"] * VOCAB).token_rewards(VOCAB),
        RewardError,
        "not an array of numbers",
    ),
    Bad(
        "table wrong shape",
        lambda: Fixed("shaper", table=np.zeros(3)).token_rewards(VOCAB),
        RewardError,
        "shape (3,)",
    ),
    Bad(
        "nan table through gym.make",
        lambda: run_env(Fixed("shaper", table=nan_table)),
        RewardError,
        "'shaper'.token_rewards contains nan",
    ),
    Bad(
        "short table through gym.make",
        lambda: run_env(Fixed("shaper", table=np.zeros(3))),
        RewardError,
        "shape (3,)",
    ),
    Bad(
        "nan TokenTable function through gym.make",
        lambda: run_env(TokenTable(nan_table, name="fn_table")),
        RewardError,
        "'fn_table'",
    ),
    Bad(
        "nan table under Clip",
        lambda: Clip(Fixed("shaper", table=nan_table)).token_rewards(VOCAB),
        RewardError,
        "'shaper'",
    ),
    Bad(
        "nan table under Normalize through gym.make",
        lambda: run_env(Normalize(Fixed("shaper", table=nan_table))),
        RewardError,
        "'shaper'",
    ),
    Bad(
        "tables overflow in a sum",
        lambda: (
            Fixed("a", table=np.full(VOCAB, 1e308)) + Fixed("b", table=np.full(VOCAB, 1e308))
        ).token_rewards(VOCAB),
        RewardError,
        "overflowed at token id 0: term 'b'",
    ),
    Bad(
        "weighted table overflows",
        lambda: (1e300 * LengthCost(1e10)).token_rewards(VOCAB),
        RewardError,
        "overflowed",
    ),
    Bad(
        "TokenTable id outside vocabulary",
        lambda: TokenTable({10**9: 1.0}).token_rewards(VOCAB),
        RewardError,
        "outside the vocabulary",
    ),
]


@pytest.mark.parametrize("row", BAD, ids=[r.id for r in BAD])
def test_bad_input_gets_a_clear_error(row: Bad) -> None:
    with pytest.raises(row.error) as info:
        row.run()
    assert isinstance(info.value, UserError), f"{type(info.value).__name__} is no UserError"
    assert row.fragment in str(info.value)


class CallableReward:
    """A plain (non-Reward) callable object."""

    def __call__(self, ctx: RewardContext) -> float:
        return 0.25


def scaled(ctx: RewardContext, factor: float = 2.0) -> float:
    return factor * float(ctx.text == "red")


def _value(reward: Any) -> float:
    [(total, _)] = evaluate(as_reward(reward), [ctx()])
    return total


GOOD: list[tuple[str, Callable[[], Any], Any]] = [
    ("spec plus a negative", lambda: _value(parse_reward("exact_match + -0.5")), 0.5),
    ("spec times a negative", lambda: _value(parse_reward("0.1*-format")), -0.0),
    ("spec -(-x)", lambda: _value(parse_reward("exact_match - (-0.5)")), 1.5),
    ("spec integral float arg", lambda: parse_reward("concision(target=3.0)").target, 3),
    ("spec tiny weight", lambda: parse_reward("1e-300*format").weights["format"], 1e-300),
    ("spec zero weight", lambda: parse_reward("0*format").weights["format"], 0.0),
    ("spec zero length cost", lambda: parse_reward("length_cost(0)").cost, 0.0),
    ("spec normalize clip", lambda: parse_reward("normalize(format, clip=1)").clip, 1.0),
    (
        "spec 99 nested parentheses",
        lambda: _value(parse_reward("(" * 98 + "exact_match" + ")" * 98)),
        1.0,
    ),
    (
        "spec with 2000 distinct terms",
        lambda: len(parse_reward("+".join(f"concision({i})" for i in range(1, 2001))).terms),
        2000,
    ),
    ("spec with tabs and newlines", lambda: _value(parse_reward("exact_match\t+\n1")), 2.0),
    (
        "weight np.float32",
        lambda: Weighted({"a": (ExactMatch(), np.float32(0.5))}).weights,
        {"a": 0.5},
    ),
    ("reward / 2", lambda: (ExactMatch() / 2).weights, {"exact_match": 0.5}),
    ("sum() of rewards", lambda: _value(sum([ExactMatch(), AnswerFormat()])), 1.0),
    ("Clip int bounds", lambda: _value(Clip(ExactMatch(), 0, 1)), 1.0),
    ("Normalize clip None", lambda: Normalize(ExactMatch(), clip=None).clip, None),
    (
        "Normalize large finite",
        lambda: [z for z, _ in evaluate(Normalize(Alternating(1e150)), [ctx(), ctx()])],
        [-1.0, 1.0],
    ),
    ("Concision np.int64", lambda: Concision(target=np.int64(5)).target, 5),
    ("Repetition n=2.0", lambda: Repetition(n=2.0).n, 2),
    (
        "TokenTable numpy keys",
        lambda: TokenTable({np.int64(2): np.float32(0.5)}).token_rewards(4).tolist(),
        [0.0, 0.0, 0.5, 0.0],
    ),
    ("table as a list, in an env", lambda: run_env(Fixed("t", table=lambda v: [0.5] * v)), 0.5),
    ("BannedWords tuple", lambda: BannedWords(("damn",)).words, ("damn",)),
    ("fn returns int", lambda: _value(lambda ctx: 1), 1.0),
    ("fn returns np.float32", lambda: _value(lambda ctx: np.float32(0.5)), 0.5),
    ("fn returns 0-d array", lambda: _value(lambda ctx: np.array(0.5)), 0.5),
    ("fn with a default arg", lambda: _value(scaled), 2.0),
    ("functools.partial", lambda: _value(functools.partial(scaled, factor=3.0)), 3.0),
    ("callable object", lambda: _value(CallableReward()), 0.25),
    ("tradeoff numpy values", lambda: tradeoff([{"a": np.float32(1)}, {"a": 2}]).mean, {"a": 1.5}),
]


@pytest.mark.parametrize(("run", "expected"), [g[1:] for g in GOOD], ids=[g[0] for g in GOOD])
def test_valid_input_near_the_edge_is_accepted(run: Callable[[], Any], expected: Any) -> None:
    assert run() == expected


# -- the behaviour behind the rows ------------------------------------------------------


def test_spec_error_points_at_the_problem() -> None:
    with pytest.raises(RewardSpecError) as info:
        parse_reward("exact_match + 0.1*formt")
    err = info.value
    assert err.position == 18 and "unknown reward name 'formt'" in err.reason
    spec_line, caret_line = str(err).splitlines()[1:3]
    assert spec_line[caret_line.index("^") :].startswith("formt")


def test_spec_error_on_a_long_spec_shows_a_window_around_the_caret() -> None:
    text = "exact_match + " * 500 + "$"
    with pytest.raises(RewardSpecError) as info:
        parse_reward(text)
    spec_line, caret_line = str(info.value).splitlines()[1:3]
    assert len(spec_line) < 100
    assert spec_line[caret_line.index("^")] == "$"


def test_failed_normalize_batch_keeps_its_statistics() -> None:
    child = Fixed("child", 1.0)
    norm = Normalize(child)
    evaluate(norm, [ctx(), ctx()])
    before = norm.state_dict()
    child.value = 1e308
    with pytest.raises(RewardError, match="overflowed"):
        evaluate(norm, [ctx(), ctx(), ctx()])
    assert norm.state_dict() == before
    child.value = 1.0
    assert evaluate(norm, [ctx()])[0][0] == 0.0


def test_every_subclass_table_is_validated_once_defined() -> None:
    # A subclass of a subclass that overrides token_rewards again is checked too.
    class Shaper(Fixed):
        def token_rewards(self, vocab_size: int) -> Any:
            return [NAN] * vocab_size

    with pytest.raises(RewardError, match="'deep'.token_rewards contains nan"):
        Shaper("deep").token_rewards(VOCAB)
    # The check returns the table as float64, whatever it was built as.
    table = Fixed("ints", table=np.arange(VOCAB)).token_rewards(VOCAB)
    assert table.dtype == np.float64


def test_env_with_a_valid_table_still_shapes_every_step() -> None:
    env = gym.make("textgym/Copy-v0", reward=ExactMatch() + LengthCost(0.25))
    env.reset(seed=0)
    rewards = []
    while True:
        _, r, terminated, truncated, _ = env.step(env.unwrapped.oracle_action())
        rewards.append(r)
        if terminated or truncated:
            break
    assert all(r == -0.25 for r in rewards[:-1]) and rewards[-1] == 0.75


def test_parser_does_not_recurse_past_its_limit() -> None:
    # Deeper than MAX_DEPTH by far: a clear error, never RecursionError.
    for text in ["(" * 20000 + "format", "-(" * 5000 + "format", "clip(" * 5000]:
        with pytest.raises(RewardSpecError, match=re.escape("nests more than")):
            parse_reward(text)
