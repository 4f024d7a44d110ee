"""Dialogue family: oracle, chance, splits, the user's reactions, reward components."""

from __future__ import annotations

import gymnasium as gym
import pytest

import textgym
from tests.helpers import (
    assert_splits_disjoint,
    oracle_success_rate,
    random_success_rate,
    say,
)
from textgym.tasks.demonstrations import generate_demonstrations
from textgym.tasks.dialogue import TOPICS, DialogueTask, coverage, question

IDS = [i for i in textgym.env_ids() if "/Dialogue" in i]
COMPONENTS = {"relevance", "satisfaction", "politeness", "repetition", "concision", "banned_words"}


def test_family_is_registered() -> None:
    assert {"textgym/Dialogue-v0", "textgym/Dialogue-Tiny-v0"} <= set(IDS)


@pytest.mark.parametrize("env_id", IDS)
def test_oracle_satisfies_test_split(env_id: str) -> None:
    assert oracle_success_rate(env_id, 200) >= 0.99


@pytest.mark.parametrize("env_id", IDS)
def test_random_policy_is_near_chance(env_id: str) -> None:
    # Tiny: two right words among six, each followed by end of turn: ~ (1/7 * 1/7)^2.
    assert random_success_rate(env_id, 100) < 0.05


@pytest.mark.parametrize("env_id", IDS)
def test_splits_are_disjoint(env_id: str) -> None:
    assert_splits_disjoint(env_id, 200)


def test_every_component_is_reported() -> None:
    env = gym.make("textgym/Dialogue-v0").unwrapped
    env.reset(seed=0)
    _, _, info = say(env, env.task.oracle(env.problem, env.turns))
    assert set(info["reward_components"]) == COMPONENTS
    assert info["reward_components"]["relevance"] == 1.0


def test_user_rephrases_a_missed_question_and_moves_on_after_an_answer() -> None:
    env = gym.make("textgym/Dialogue-v0").unwrapped
    env.reset(seed=1)
    q0 = question(env.problem, 0)
    r_miss, done, info = say(env, "i like trains.")
    assert (
        not done and q0.rephrased in info["user_reply"] and "does not answer" in info["user_reply"]
    )
    assert info["reward_components"]["relevance"] == 0.0
    r_hit, done, info = say(env, q0.answer)
    assert not done and question(env.problem, 1).text in info["user_reply"]
    assert r_hit > r_miss + 0.9


def test_rudeness_annoys_and_ends_the_conversation() -> None:
    env = gym.make("textgym/Dialogue-v0").unwrapped
    env.reset(seed=2)
    q0 = question(env.problem, 0)
    _, done, info = say(env, f"{q0.answer} you idiot")
    assert not done and "rude" in info["user_reply"]
    assert info["reward_components"]["banned_words"] < 1.0
    _, done, info = say(env, "shut up, stupid")
    assert done and not info["success"] and "bye" in info["user_reply"]


def test_repetition_is_noticed_and_penalised() -> None:
    env = gym.make("textgym/Dialogue-v0").unwrapped
    env.reset(seed=3)
    say(env, "the weather is nice today.")
    _, _, info = say(env, "the weather is nice today.")
    assert "already" in info["user_reply"]
    assert info["reward_components"]["repetition"] == 0.0


def test_user_leaves_after_too_many_turns() -> None:
    env = gym.make("textgym/Dialogue-v0").unwrapped
    env.reset(seed=4)
    max_turns = env.problem.metadata["max_turns"]
    for i in range(max_turns):
        _, done, info = say(env, f"word number {i}")
        assert done == (i == max_turns - 1)
    assert not info["success"] and "not helpful" in info["user_reply"]


def test_same_seed_same_conversation() -> None:
    a, b = gym.make("textgym/Dialogue-v0").unwrapped, gym.make("textgym/Dialogue-v0").unwrapped
    for env in (a, b):
        env.reset(seed=9)
        while True:
            _, done, _ = say(env, env.task.oracle(env.problem, env.turns))
            if done:
                break
    assert a.turns == b.turns


def test_every_oracle_answer_answers_only_its_question_well() -> None:
    for qs in TOPICS.values():
        for q in qs:
            assert coverage(q.answer, q.keywords) == 1.0
            assert q.text != q.rephrased


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="topics"):
        DialogueTask(topics=("space",))
    with pytest.raises(ValueError, match="n_questions"):
        DialogueTask(n_questions=9)


def test_noisy_demonstrations() -> None:
    records = list(generate_demonstrations("textgym/Dialogue-v0", 60, noise=0.3, seed=1))
    assert all(r["success"] for r in records if not r["noisy"])
    assert any(r["noisy"] for r in records)
    assert len(records[0]["turns"]) >= 5  # prompt, answer, reply, answer, goodbye
