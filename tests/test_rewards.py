"""Built-in verifiable and heuristic rewards, the spec registry, and rewards through gym.make."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import textgym
from tests.helpers import make_ctx, run_oracle
from textgym.envs.copy import CopyTask
from textgym.rewards import (
    Abstention,
    AnswerFormat,
    BannedWords,
    Concision,
    Correctness,
    ExactMatch,
    NumericMatch,
    Politeness,
    Relevance,
    Repetition,
    Reward,
    RewardContext,
    RewardError,
    RewardSpecError,
    Weighted,
    parse_reward,
    register_reward,
    reward_names,
)
from textgym.rewards.registry import REWARDS

TASK = CopyTask()


# -- verifiable -------------------------------------------------------------------------


def test_copy_success_agrees_with_its_reward() -> None:
    # A tokenizer with capitals can write "Red"; the default reward pays it in full, so
    # the task must count it as solved too.
    for text in (" Red ", "red", "RED", "blue", "red red"):
        ctx = make_ctx(text)
        assert TASK.success(ctx) == (ExactMatch()(ctx) == 1.0), text


def test_verifiable_rewards() -> None:
    assert ExactMatch()(make_ctx(" Red ")) == 1.0
    assert ExactMatch()(make_ctx("blue")) == 0.0
    assert ExactMatch()(make_ctx("red", answer=None)) == 0.0
    assert NumericMatch()(make_ctx("so answer: 12.0", answer="12")) == 1.0
    assert NumericMatch()(make_ctx("answer: 13", answer="12")) == 0.0
    assert AnswerFormat()(make_ctx("answer: 4")) == 1.0
    assert AnswerFormat()(make_ctx("I don't know")) == 1.0
    assert AnswerFormat()(make_ctx("four")) == 0.0
    assert Abstention()(make_ctx("I don't know")) == 1.0
    assert Abstention()(make_ctx("I don't know, answer: 3")) == 0.0
    c = Correctness()
    assert [c(make_ctx(t, answer="3")) for t in ["answer: 3", "I don't know", "answer: 4"]] == [
        1.0,
        0.0,
        -0.5,
    ]


@pytest.mark.parametrize(
    ("reward", "unanswered"),
    [(NumericMatch(), 0.0), (AnswerFormat(), 0.0), (Abstention(), 0.0), (Correctness(), -0.5)],
    ids=["numeric_match", "format", "abstention", "correctness"],
)
@pytest.mark.parametrize("text", ["answer: 3", "I don't know"])
def test_a_truncated_turn_has_no_answer(reward: Reward, unanswered: float, text: str) -> None:
    assert reward(make_ctx(text, answer="3", truncated=True)) == unanswered
    assert reward(make_ctx("blue", answer="3")) == unanswered  # the same as no answer at all


def test_bare_answers_count_only_when_asked_for() -> None:
    for reward, right in [(NumericMatch, 1.0), (AnswerFormat, 1.0), (Correctness, 1.0)]:
        assert reward(bare=True)(make_ctx(" 3 ", answer="3")) == right
        assert reward()(make_ctx(" 3 ", answer="3")) < right
    assert parse_reward("correctness(bare=True)")(make_ctx("3", answer="3")) == 1.0
    assert parse_reward("correctness(bare=False)")(make_ctx("3", answer="3")) == -0.5
    with pytest.raises(TypeError, match="bare must be True or False"):
        Correctness(bare="yes")
    with pytest.raises(ValueError, match="truth value"):
        register_reward("True", ExactMatch)


@pytest.mark.parametrize("env_id", textgym.env_ids(standalone=True))
def test_each_default_reward_is_the_spec_the_docs_print(env_id: str) -> None:
    default = gym.make(env_id)
    # A registered reward= (Lists-Abstain-v0's) is the default, not the task's own spec.
    assert default.unwrapped.reward_spec == gym.spec(env_id).kwargs.get(
        "reward", default.unwrapped.task.reward_spec
    )
    spec = gym.make(env_id, reward=default.unwrapped.reward_spec)
    rng = np.random.default_rng(0)
    for seed in range(6):
        for env in (default, spec):
            env.reset(seed=seed)
        done = False
        while not done:  # half oracle, half random tokens (wrong and truncated turns)
            oracle = seed % 2 == 0
            action = default.unwrapped.oracle_action() if oracle else int(rng.integers(100))
            *got, terminated, truncated, info = default.step(action)
            *want, _, _, info_spec = spec.step(action)
            assert got[1] == want[1]
            assert info.get("reward_components") == info_spec.get("reward_components")
            done = terminated or truncated


# -- heuristic text ---------------------------------------------------------------------


TEXT_REWARDS = [Politeness(), Relevance(), Repetition(), Concision(), BannedWords()]


@pytest.mark.parametrize("reward", TEXT_REWARDS, ids=lambda r: r.name)
@pytest.mark.parametrize(
    "text", ["", "<unk> <pad>", "Hello!", "a " * 300, "ÜBER café 😀 ??", "answer: 3"]
)
def test_text_rewards_stay_in_unit_interval(reward: Reward, text: str) -> None:
    value = reward(make_ctx(text, earlier=("hello there",)))
    assert 0.0 <= value <= 1.0


def test_politeness_orders_polite_neutral_rude() -> None:
    p = Politeness()
    polite = p(make_ctx("Thank you! Could you please share the order number?"))
    neutral = p(make_ctx("share the order number"))
    rude = p(make_ctx("Shut up, that is a stupid question"))
    shouting = p(make_ctx("GIVE ME THE NUMBER"))
    assert polite == 1.0 and neutral == 0.5
    assert rude == 0.0 and shouting == 0.0
    # Repeating a marker does not pay: distinct markers count.
    assert p(make_ctx("please please please please")) == p(make_ctx("please"))


def test_relevance_is_keyword_coverage() -> None:
    meta = {"keywords": ["refund", "order number", "email"]}
    r = Relevance()
    assert r(make_ctx("I need your order number and email", metadata=meta)) == pytest.approx(2 / 3)
    assert r(make_ctx("Your REFUND, order number and email.", metadata=meta)) == 1.0
    assert r(make_ctx("order and number", metadata=meta)) == 0.0  # phrase words must be adjacent
    assert r(make_ctx("anything", metadata={"keywords": "a, b"})) == 0.0
    assert r(make_ctx("anything", metadata={"keywords": []})) == 1.0
    from textgym.users.base import Reply

    ctx = make_ctx("your refund", metadata=meta)
    per_turn = replace(ctx, reply=Reply("ok", outcome={"keywords": ["refund"]}))
    assert r(per_turn) == 1.0  # the responder's per-turn keywords come first
    topic = Relevance(key="topic")
    assert topic(make_ctx("about billing", metadata={"topic": "billing"})) == 1.0
    # Without the key: the prompt's content words (stopwords dropped).
    assert r(make_ctx("red and blue", prompt="the red and the blue")) == 1.0
    with pytest.raises(KeyError, match="topic"):
        Relevance(key="topic", fallback="error")(make_ctx("x", metadata={"intent": "refund"}))


def test_repetition_within_and_across_turns() -> None:
    r = Repetition()
    assert r(make_ctx("the cat sat on the mat")) == 1.0
    assert r(make_ctx("go go go go go")) == pytest.approx(1 / 4)
    assert r(make_ctx("hello there", earlier=("hello there",))) == 0.0
    assert r(make_ctx("hello there", earlier=("well hello",))) == 1.0
    assert r(make_ctx("red", earlier=("red",))) == 0.0  # one-word turns still count
    half = r(make_ctx("a b c d e", earlier=("b c d",)))
    assert 0.0 < half < 1.0
    # Contexts built without the current turn in ``turns`` are handled the same.
    ctx = make_ctx("hello there", earlier=("hello there",))
    trimmed = replace(ctx, turns=ctx.turns[:-1])
    assert r(trimmed) == 0.0


def test_concision() -> None:
    c = Concision(target=4, min_words=2)
    assert c(make_ctx("")) == 0.0
    assert c(make_ctx("one")) == 0.5
    assert c(make_ctx("one two three four")) == 1.0
    assert c(make_ctx("w " * 8)) == 0.5
    assert Concision(target=2, unit="tokens")(make_ctx("a b c d")) == 0.5
    with pytest.raises(ValueError, match="min_words"):
        Concision(target=2, min_words=5)


def test_banned_words() -> None:
    b = BannedWords()
    assert b(make_ctx("what a classy assistant")) == 1.0  # whole words only
    assert b(make_ctx("that is crap")) == 0.0
    assert b(make_ctx("please SHUT UP")) == 0.0
    custom = BannedWords(["refund"], per_hit=0.25)
    assert custom(make_ctx("refund refund")) == 0.5
    assert custom(make_ctx("crap")) == 1.0
    with pytest.raises(TypeError, match="list of words"):
        BannedWords("refund")  # type: ignore[arg-type]


# -- registry and specs ------------------------------------------------------------------


def test_parse_reward_builds_weighted_sums() -> None:
    r = parse_reward("exact_match + 0.1*format")
    assert isinstance(r, Weighted)
    assert r.weights == {"exact_match": 1.0, "format": 0.1}
    assert r.score(make_ctx("red")) == (1.0, {"exact_match": 1.0, "format": 0.0})
    r = parse_reward("2 * (politeness - 0.5) + -repetition")
    assert r.weights == {"politeness": 2.0, "repetition": -1.0, "constant": 1.0}
    assert r(make_ctx("please")) == pytest.approx(2 * 0.75 - 1.0 - 1.0)
    assert isinstance(parse_reward("exact_match"), ExactMatch)
    assert parse_reward("politeness + politeness").weights == {"politeness": 2.0}


def test_parse_reward_calls_with_arguments() -> None:
    r = parse_reward("concision(target=3) + relevance(key='topic') + banned_words(per_hit=0.5)")
    concision, relevance, banned = (t for t, _ in r.terms.values())
    assert (concision.target, relevance.key, banned.per_hit) == (3, "topic", 0.5)
    clipped = parse_reward("clip(exact_match - 0.5, -0.25, 0.25)")
    assert clipped(make_ctx("red")) == 0.25
    assert clipped(make_ctx("blue")) == -0.25
    assert parse_reward("length_cost(0.5)").token_rewards(3).tolist() == [-0.5] * 3


@pytest.mark.parametrize(
    ("spec", "position", "message"),
    [
        ("exact_match +", 13, "expected a reward name"),
        ("exact_mach + format", 0, "did you mean 'exact_match'"),
        ("exact_match $ 2", 12, "unexpected character"),
        ("exact_match * format", 12, "cannot multiply two rewards"),
        ("(exact_match", 12, "expected ')'"),
        ("", 0, "empty"),
        ("exact_match format", 12, "unexpected 'format'"),
        ("concision(bogus=1)", 10, "bogus"),
        ("__import__('os')", 0, "unknown reward name"),
    ],
)
def test_bad_specs_report_position_and_known_names(spec: str, position: int, message: str) -> None:
    with pytest.raises(RewardSpecError, match=re.escape(message)) as info:
        parse_reward(spec)
    assert info.value.position == position
    assert "exact_match" in str(info.value) and "politeness" in str(info.value)


def test_register_reward() -> None:
    register_reward("always_half", lambda: lambda ctx: 0.5)
    try:
        assert "always_half" in reward_names()
        r = parse_reward("exact_match + always_half")
        assert r(make_ctx("red")) == 1.5
        with pytest.raises(ValueError, match="already registered"):
            register_reward("always_half", ExactMatch)
        with pytest.raises(ValueError, match="identifier"):
            register_reward("two words", ExactMatch)
    finally:
        REWARDS.pop("always_half", None)


# -- end to end through gym.make ---------------------------------------------------------


def test_gym_make_with_reward_object_function_and_string() -> None:
    by_object = gym.make("textgym/Copy-v0", reward=ExactMatch() + 0.5 * Repetition())
    # Seeded: an unseeded prompt may repeat a word ("red red blue"), and then the oracle's
    # copy of it is penalised for repetition (a flake the floors run once drew).
    total, info = run_oracle(by_object, seed=0)
    assert info["reward_components"] == {"exact_match": 1.0, "repetition": 1.0}
    assert total == 1.5
    by_function = gym.make("textgym/Copy-v0", reward=lambda ctx: float(len(ctx.text.split())))
    assert run_oracle(by_function, seed=0)[0] == 3.0
    by_string = gym.make("textgym/Copy-v0", reward="exact_match + length_cost(0.1)")
    total, info = run_oracle(by_string, seed=0)
    # Three words and the end-of-turn token each cost 0.1.
    assert total == pytest.approx(1.0 - 0.4)
    assert info["reward_components"] == {"exact_match": 1.0, "length_cost": 0.0}
    with pytest.raises(RewardSpecError, match="position 13"):
        gym.make("textgym/Copy-v0", reward="exact_match +* format")


class CountingReward(Reward):
    """Counts batch calls, like a model-based reward would want to."""

    name = "counting"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, ctx: RewardContext) -> float:
        return 1.0

    def batch(self, ctxs):  # type: ignore[no-untyped-def]
        self.calls.append(len(ctxs))
        return super().batch(ctxs)


def test_vector_env_batches_children_of_a_sum() -> None:
    counting = CountingReward()
    envs = gym.make_vec(
        "textgym/Copy-v0",
        num_envs=4,
        vectorization_mode="vector_entry_point",
        reward=ExactMatch() + counting,
    )
    envs.reset(seed=0)
    eot = envs.unwrapped.eot_id
    _, rewards, terminated, _, infos = envs.step(np.full(4, eot))
    assert terminated.all()
    assert counting.calls == [4]  # one batched call for the four episodes that ended
    assert rewards.tolist() == [1.0] * 4  # empty turn: exact_match 0, counting 1
    comps = infos["reward_components"]
    assert comps["exact_match"].tolist() == [0.0] * 4
    assert comps["counting"].tolist() == [1.0] * 4


def test_nan_inside_a_sum_fails_naming_the_reward() -> None:
    def flaky(ctx: RewardContext) -> float:
        return float("nan")

    env = gym.make("textgym/Copy-v0", reward=ExactMatch() + flaky)
    with pytest.raises(RewardError, match="'flaky'"):
        run_oracle(env)


def test_textgym_exports() -> None:
    assert textgym.Reward is Reward


# -- trade-offs --------------------------------------------------------------------------


def test_tradeoff_means_correlation_and_pareto_front() -> None:
    from textgym.rewards import tradeoff

    records = [
        {"correct": 1.0, "polite": 0.0, "clean": 1.0},
        {"correct": 0.0, "polite": 1.0, "clean": 1.0},
        {"correct": 0.5, "polite": 0.5, "clean": 1.0},
        {"correct": 0.2, "polite": 0.2, "clean": 1.0},  # dominated by the third
    ]
    t = tradeoff(records)
    assert t.names == ("correct", "polite", "clean")
    assert t.mean["correct"] == pytest.approx(0.425)
    assert t.corr("correct", "polite") < 0  # the two objectives pull apart
    assert t.corr("correct", "correct") == pytest.approx(1.0)
    assert np.isnan(t.corr("clean", "correct"))  # a constant component has no correlation
    assert t.pareto_front == (0, 1, 2)
    assert "Pareto front: 3" in str(t)
    assert tradeoff(records, components=["polite"]).pareto_front == (1,)
    with pytest.raises(ValueError, match="no component"):
        tradeoff([{"a": 1.0}, {"b": 1.0}], components=["a"])
    with pytest.raises(ValueError, match="at least one"):
        tradeoff([])


def test_tradeoff_over_env_episodes() -> None:
    from textgym.rewards import tradeoff

    env = gym.make("textgym/Copy-v0", reward=ExactMatch() + Concision(target=2) + Repetition())
    rng = np.random.default_rng(0)
    records = []
    for seed in range(8):
        env.reset(seed=seed)
        while True:
            # Half oracle, half random tokens: a spread of outcomes.
            action = env.unwrapped.oracle_action() if seed % 2 else int(rng.integers(5, 40))
            _, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                records.append(info["reward_components"])
                break
    t = tradeoff(records)
    assert t.names == ("exact_match", "concision", "repetition")
    assert t.mean["exact_match"] == pytest.approx(0.5)


# -- the README section runs --------------------------------------------------------------

README = Path(__file__).resolve().parents[1] / "docs" / "readme" / "rewards.md"


def test_readme_snippets_run(capsys: pytest.CaptureFixture[str]) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert len(blocks) >= 2 and "Write your own reward" in README.read_text()
    try:
        for block in blocks:
            exec(compile(block, str(README), "exec"), {"__name__": "readme"})
    finally:
        REWARDS.pop("short_turns", None)
    printed = capsys.readouterr().out
    assert "{'exact_match': 1.0, 'starts_right': 1.0, 'short_turns': 1.0}" in printed
