"""Reasoning family: generation, splits, oracle, reward order, demonstrations, and v1's
balanced answers."""

from __future__ import annotations

import json
from collections import Counter

import gymnasium as gym
import numpy as np
import pytest

import textgym
from tests.helpers import (
    assert_splits_disjoint,
    make_ctx,
    oracle_success_rate,
    random_success_rate,
    say,
)
from textgym.envs.reasoning import ReasoningTask, extract_answer
from textgym.errors import ConfigError
from textgym.rewards.verifiable import is_abstention
from textgym.tasks.demonstrations import export_demonstrations, generate_demonstrations

#: The family's ids (not ReasoningGym's, another family with its own tests).
IDS = [i for i in textgym.env_ids() if gym.spec(i).kwargs["task"] == "reasoning"]


def test_family_is_registered() -> None:
    assert set(IDS) >= {
        "textgym/Reasoning-v0",
        "textgym/Reasoning-Easy-v0",
        "textgym/Reasoning-Hard-v0",
        "textgym/Reasoning-Tiny-v0",
        "textgym/Reasoning-v1",
        "textgym/Reasoning-Easy-v1",
        "textgym/Reasoning-Hard-v1",
    }
    for name in ("Reasoning", "Reasoning-Hard"):  # v1 changes only the answer distribution
        v0, v1 = gym.spec(f"textgym/{name}-v0").kwargs, gym.spec(f"textgym/{name}-v1").kwargs
        assert v1 == {**v0, "balance_answers": True}
    assert "textgym/Reasoning-Tiny-v1" not in IDS  # a pool of 10 repeats an answer anyway


@pytest.mark.parametrize("env_id", IDS)
def test_oracle_solves_test_split(env_id: str) -> None:
    assert oracle_success_rate(env_id, 200) >= 0.99


@pytest.mark.parametrize("env_id", IDS)
def test_random_policy_is_near_chance(env_id: str) -> None:
    # Tiny: "▁", a digit, end of turn among 12 masked tokens ~ 1/12 * 1/12 * 1/12 ... < 5%.
    assert random_success_rate(env_id, 200) < 0.05


@pytest.mark.parametrize("env_id", IDS)
def test_splits_are_disjoint(env_id: str) -> None:
    drawn = assert_splits_disjoint(env_id, 300)
    keys = {split: {p.metadata["arithmetic"] for p in probs} for split, probs in drawn.items()}
    assert not keys["train"] & keys["test"]  # not even the same arithmetic


@pytest.mark.parametrize("env_id", IDS)
def test_same_seed_same_problem(env_id: str) -> None:
    a, b = gym.make(env_id).unwrapped, gym.make(env_id).unwrapped
    for seed in range(10):
        a.reset(seed=seed)
        b.reset(seed=seed)
        assert a.problem == b.problem


def test_tiny_pool_is_small_fixed_and_masked() -> None:
    env = gym.make("textgym/Reasoning-Tiny-v0").unwrapped
    prompts = set()
    for seed in range(300):
        env.reset(seed=seed)
        prompts.add(env.problem.prompt)
        assert 0 <= int(env.problem.answer) <= 9
    assert len(prompts) == 10
    mask = env.action_masks()
    assert mask.sum() == 12  # "▁", ten digits, end of turn
    oracle_ids = env.encode_turn(env.task.oracle(env.problem, env.turns))
    assert all(mask[oracle_ids]) and len(oracle_ids) <= env.max_new_tokens


def test_oracle_chain_of_thought_is_short_and_correct() -> None:
    env = gym.make("textgym/Reasoning-v0").unwrapped
    lengths = []
    for seed in range(200):
        env.reset(seed=seed)
        text = env.task.oracle(env.problem, env.turns)
        assert extract_answer(text) == env.problem.answer
        for eq in text.split(". answer")[0].split(", "):
            lhs, rhs = eq.split("=")
            assert eval(lhs) == int(rhs)  # noqa: S307  (digits and one operator)
        lengths.append(len(env.encode_turn(text)))
        assert 2 <= env.problem.metadata["n_steps"] <= 3
    assert np.mean(lengths) <= 30 and max(lengths) <= env.max_new_tokens


@pytest.mark.parametrize("bare", [False, True], ids=["tagged", "bare"])
def test_reward_orders_right_abstain_wrong(bare: bool) -> None:
    reward = ReasoningTask(bare_answer=bare).default_reward()
    right_text = "16" if bare else "8*2=16. answer: 16"

    def score(text: str, truncated: bool = False) -> float:
        return reward(make_ctx(text, answer="16", truncated=truncated))

    right, abstain, wrong = score(right_text), score("i don't know"), score("answer: 15")
    missing = score("blue green")
    assert right > abstain > wrong >= missing
    # A truncated turn never gave its answer, however right the text so far.
    assert score(right_text, truncated=True) == missing
    assert score("i don't know", truncated=True) == missing
    total, parts = reward.score(make_ctx("answer: 15", answer="16"))
    assert parts == {"correctness": -0.5, "format": 1.0} and total == pytest.approx(-0.4)


@pytest.mark.parametrize("bare", [False, True], ids=["tagged", "bare"])
def test_success_is_full_correctness(bare: bool) -> None:
    task = ReasoningTask(bare_answer=bare)
    reward = task.default_reward()
    for text in ["answer: 16", "16", "i don't know", "answer: 15", "", "16 answer: 7"]:
        for truncated in (False, True):
            ctx = make_ctx(text, answer="16", truncated=truncated)
            assert task.success(ctx) == (reward.score(ctx)[1]["correctness"] == 1.0)


def test_abstention_in_the_env() -> None:
    env = gym.make("textgym/Reasoning-v0").unwrapped
    env.reset(seed=0)
    r, _, info = say(env, "i don't know")
    assert info["success"] is False and r == pytest.approx(0.1)
    assert env.tokenizer.unk_token_id not in env.context_ids


def test_bad_arguments_say_what_to_do() -> None:
    with pytest.raises(ValueError, match="min_steps"):
        ReasoningTask(min_steps=3, max_steps=2)
    with pytest.raises(ValueError, match="split"):
        ReasoningTask(split="validation")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="operations"):
        ReasoningTask(operations=("pow",))
    with pytest.raises(ValueError, match="pool_size"):
        ReasoningTask(min_steps=1, max_steps=1, max_value=9, max_start=9, pool_size=500)


@pytest.mark.parametrize("env_id", IDS)
def test_prompts_and_oracle_use_no_unknown_tokens(env_id: str) -> None:
    env = gym.make(env_id).unwrapped
    unk = env.tokenizer.unk_token_id
    for seed in range(100):
        env.reset(seed=seed)
        say(env, env.task.oracle(env.problem, env.turns))
        assert unk not in env.context_ids


def test_demonstrations_replay_the_env(tmp_path) -> None:
    path = export_demonstrations("textgym/Reasoning-v0", 50, tmp_path / "d.jsonl", seed=3)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(records) == 50 and all(r["success"] for r in records)
    assert set(records[0]) >= {"prompt", "turns", "response", "answer", "success", "noisy"}
    assert records[0]["turns"][0] == {"role": "user", "text": records[0]["prompt"]}
    # The same seed gives the same file.
    again = export_demonstrations("textgym/Reasoning-v0", 50, tmp_path / "e.jsonl", seed=3)
    assert again.read_text() == path.read_text()


def test_demonstration_noise_rate() -> None:
    records = list(generate_demonstrations("textgym/Reasoning-v0", 400, noise=0.25, seed=0))
    noisy = [r for r in records if r["noisy"]]
    assert 0.17 < len(noisy) / 400 < 0.33
    assert not any(r["success"] for r in noisy)
    assert all(r["success"] for r in records if not r["noisy"])
    # A slip is a wrong number, still in the answer format.
    assert all(extract_answer(r["response"]) is not None for r in noisy)


def test_demonstration_abstentions_are_a_share_of_the_slips() -> None:
    records = list(generate_demonstrations("textgym/Reasoning-v0", 400, 0.25, 0, abstain=0.5))
    abstained = [r for r in records if is_abstention(r["response"])]
    # About half the ~100 slips abstain; the rest stay wrong numbers; clean turns stay clean.
    assert 30 < len(abstained) < 70
    assert all(r["noisy"] and not r["success"] for r in abstained)
    wrong = [r for r in records if r["noisy"] and r not in abstained]
    assert len(wrong) > 30 and all(extract_answer(r["response"]) is not None for r in wrong)
    # The reward prices an abstention between a wrong answer and a right one.
    assert max(r["return"] for r in wrong) < min(r["return"] for r in abstained)
    assert all(r["success"] for r in records if not r["noisy"])
    # abstain=1: every slip abstains.
    every = list(generate_demonstrations("textgym/Reasoning-v0", 200, 0.25, 0, abstain=1.0))
    assert all(is_abstention(r["response"]) == r["noisy"] for r in every)
    with pytest.raises(ConfigError, match="abstain"):
        next(generate_demonstrations("textgym/Reasoning-v0", 1, abstain=1.5))


def test_demonstrations_on_test_split_differ_from_train() -> None:
    train = {r["problem_id"] for r in generate_demonstrations("textgym/Reasoning-v0", 100)}
    test = {
        r["problem_id"] for r in generate_demonstrations("textgym/Reasoning-v0", 100, split="test")
    }
    assert not train & test


# -- v1: balanced answers -----------------------------------------------------------------

V0_V1 = [("Reasoning-v0", "Reasoning-v1"), ("Reasoning-Easy-v0", "Reasoning-Easy-v1"),
         ("Reasoning-Hard-v0", "Reasoning-Hard-v1")]  # fmt: skip


def answer_counts(env_id: str, split: str, n: int, seed: int = 0) -> Counter[int]:
    task = gym.make(f"textgym/{env_id}", split=split).unwrapped.task
    rng = np.random.default_rng(seed)
    return Counter(int(task.sample(rng).answer) for _ in range(n))


@pytest.mark.parametrize(("v0", "v1"), V0_V1, ids=[v1 for _, v1 in V0_V1])
def test_v1_answers_are_balanced_where_v0_favours_small_ones(v0: str, v1: str) -> None:
    values = gym.make(f"textgym/{v1}").unwrapped.task.max_value
    n = max(1500, 20 * values)  # at least 20 problems per answer, for a fair count
    for split in ("train", "test"):
        old, new = answer_counts(v0, split, 1500), answer_counts(v1, split, n)
        # v0's most common answer is a small count, at well over 5% of problems.
        top, share = old.most_common(1)[0]
        assert top <= 2 and share / 1500 > 0.06, (v0, split, old.most_common(3))
        # v1: every count 1..max_value is an answer, none near twice its fair share.
        assert set(new) == set(range(1, values + 1)), (v1, split)
        assert max(new.values()) / n < 1.8 / values, (v1, split, new.most_common(3))


@pytest.mark.parametrize("v1", [v1 for _, v1 in V0_V1])
def test_v1_the_commonest_training_answer_is_rarely_right_on_test(v1: str) -> None:
    # The `repeat` probe's constant: below the 5 points the probe rule allows.
    prior = answer_counts(v1, "train", 2000).most_common(1)[0][0]
    assert answer_counts(v1, "test", 1500, seed=1)[prior] / 1500 < 0.05


@pytest.mark.parametrize("v1", [v1 for _, v1 in V0_V1])
def test_v1_problems_keep_the_ranges_and_the_split(v1: str) -> None:
    env = gym.make(f"textgym/{v1}", split="test").unwrapped
    task = env.task
    for seed in range(100):
        env.reset(seed=seed)
        p = env.problem
        assert p.metadata["split"] == "test" and 2 <= p.metadata["start"] <= task.max_start
        assert task.min_steps <= p.metadata["n_steps"] <= task.max_steps
        value = p.metadata["start"]
        for op, k in p.metadata["steps"]:
            assert op in task.operations
            assert k <= (task.max_operand if op in ("add", "sub") else task.max_factor)
            assert op != "div" or value % k == 0  # "splits them into k equal groups"
            value = {"add": value + k, "sub": value - k, "mul": value * k}.get(op, value // k)
            assert 1 <= value <= task.max_value
        assert str(value) == p.answer


def test_balanced_pool_and_bad_settings() -> None:
    kwargs = {"min_steps": 1, "max_steps": 1, "max_start": 9, "max_operand": 8, "max_value": 9,
              "operations": ("add", "sub"), "pool_size": 10}  # fmt: skip
    pool = ReasoningTask(**kwargs, balance_answers=True).pool
    assert pool is not None and len({p.metadata["arithmetic"] for p in pool}) == 10
    with pytest.raises(TypeError, match="balance_answers"):
        ReasoningTask(balance_answers=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="add operations or raise max_value"):
        ReasoningTask(operations=("mul",), max_start=2, max_value=3, balance_answers=True)
