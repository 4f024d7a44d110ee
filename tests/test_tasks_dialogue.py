"""Dialogue family: oracle, chance, splits, the user's reactions, reward components."""

from __future__ import annotations

import warnings

import gymnasium as gym
import pytest

import textgym
from tests.helpers import (
    assert_splits_disjoint,
    oracle_success_rate,
    random_success_rate,
    say,
)
from textgym.envs.dialogue.task import REWARD_SPEC, STRICT_REWARD_SPEC
from textgym.tasks.demonstrations import generate_demonstrations
from textgym.tasks.dialogue import REGULAR_TOPICS, TOPICS, DialogueTask, coverage, question

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


# -- v1: the strict user ------------------------------------------------------------------

V0, V1 = "textgym/Dialogue-v0", "textgym/Dialogue-v1"
#: What PPO learned on Dialogue-v0 (seed 7, 200 updates): an off-topic answer that shares
#: the word "water" with the first question, the same again, then a garbled answer whose
#: "week" is half of the second question's keywords. v0's user left satisfied.
PPO_TRANSCRIPT = (
    "water your plants when the soil feels dry.",
    "water your plants when the soil feels dry.",
    "eat some protein and fruit after the week",
)
PPO_GOAL = (("fitness", 1), ("fitness", 0))  # how much water..., how often should i exercise?


def _make(env_id: str, **kwargs: object) -> textgym.TextEnv:
    with warnings.catch_warnings():
        # v0 is made on purpose: Gymnasium's "out of date" notice is expected.
        warnings.filterwarnings("ignore", message=".*is out of date", category=DeprecationWarning)
        return gym.make(env_id, **kwargs).unwrapped


def _play(env: textgym.TextEnv, turns: tuple[str, ...]) -> list[dict]:
    infos = []
    for text in turns:
        _, done, info = say(env, text)
        infos.append(info)
        if done:
            break
    return infos


def test_v1_refuses_the_ppo_transcript_that_satisfied_v0() -> None:
    outcomes = {}
    for env_id in (V0, V1):
        env = _make(env_id)
        env.reset(seed=0, options={"problem": env.task.problem_for(PPO_GOAL)})
        outcomes[env_id] = _play(env, PPO_TRANSCRIPT)
    assert outcomes[V0][-1]["success"] and len(outcomes[V0]) == 3  # v0 as committed
    v1 = outcomes[V1]
    assert "does not answer" in v1[0]["user_reply"]
    assert v1[0]["reward_components"]["relevance"] == 0.0
    # The same turn again is the question's second and last attempt: the user leaves.
    assert len(v1) == 2 and not v1[-1]["success"] and "not helpful" in v1[-1]["user_reply"]


def _stuffed_turn(env: textgym.TextEnv) -> str:
    """One fixed turn with a keyword of every question of every topic that fits."""
    words = sorted({q.keywords[0] for t in REGULAR_TOPICS for q in TOPICS[t]})
    while len(env.encode_turn(" ".join(words))) > env.max_new_tokens:
        words.pop()
    return " ".join(words)


def test_a_repeated_keyword_stuffed_turn_satisfies_hard_v0_and_fails_hard_v1() -> None:
    wins = {}
    for env_id in ("textgym/Dialogue-Hard-v0", "textgym/Dialogue-Hard-v1"):
        env = _make(env_id, split="test")
        turn, wins[env_id] = _stuffed_turn(env), 0
        for seed in range(50):
            env.reset(seed=seed)
            wins[env_id] += _play(env, (turn,) * env.task.max_turns)[-1]["success"]
    assert wins == {"textgym/Dialogue-Hard-v0": 50, "textgym/Dialogue-Hard-v1": 0}


def test_v1_names_each_kind_of_non_answer() -> None:
    env = _make(V1)
    cases = {
        "stuffed": ("glasses water minutes week", "just words"),
        "echo": ("how much water should i drink", "my words back"),
        "off_topic": ("exercise for thirty minutes on most days of the week.", "something else"),
        "missed": ("i like trains.", "does not answer"),
        "empty": ("", "hello?"),
    }
    for verdict, (text, reply) in cases.items():
        env.reset(seed=0, options={"problem": env.task.problem_for(PPO_GOAL)})
        _, done, info = say(env, text)
        assert not done and reply in info["user_reply"], verdict
        assert "how many glasses of water a day?" in info["user_reply"] or verdict == "empty"
        assert info["reward_components"]["relevance"] == 0.0, verdict


def test_v1_calls_out_a_repeated_answer_even_after_it_counted() -> None:
    env = _make(V1)
    env.reset(seed=0, options={"problem": env.task.problem_for(PPO_GOAL)})
    answer = question(env.problem, 0).answer
    _, done, info = say(env, answer)
    assert not done and info["reward_components"]["relevance"] == 1.0
    _, done, info = say(env, answer)  # v0 counted a repeat that had the keywords
    assert not done and "already" in info["user_reply"]
    assert info["reward_components"]["relevance"] == 0.0


def test_v1_satisfaction_drops_with_each_rejected_turn() -> None:
    env = _make(V1)
    rewards = []
    for misses in (0, 1, 2):
        env.reset(seed=0, options={"problem": env.task.problem_for(PPO_GOAL)})
        for k in range(2):
            if k < misses:
                say(env, f"i like trains number {k}.")
            _, done, info = say(env, question(env.problem, k).answer)
        assert done and info["success"]
        rewards.append(info["reward_components"]["satisfaction"])
    assert rewards == [1.0, 0.75, 0.5]


def test_v0_and_v1_agree_on_the_oracle_and_v0_keeps_its_user() -> None:
    v0, v1 = _make(V0), _make(V1)
    for seed in range(20):
        for env in (v0, v1):
            env.reset(seed=seed)
            while not say(env, env.task.oracle(env.problem, env.turns))[1]:
                pass
        assert v0.turns == v1.turns
    assert gym.spec(V0).kwargs == {"task": "dialogue"}
    assert v0.task.judge == "keywords" and v0.task.reward_spec == REWARD_SPEC
    assert v1.task.reward_spec == STRICT_REWARD_SPEC != REWARD_SPEC


def test_strict_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="Did you mean 'strict'"):
        DialogueTask(judge="strct")
    with pytest.raises(TypeError, match="judge must be one of"):
        DialogueTask(judge=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="attempts"):
        DialogueTask(attempts=0)
    with pytest.raises(ValueError, match="one topic"):
        DialogueTask().problem_for((("pets", 0), ("travel", 1)))


@pytest.mark.parametrize("topic", REGULAR_TOPICS)
def test_v1_takes_the_reference_answer_after_a_miss_on_every_question(topic: str) -> None:
    # After a miss the user rephrases and says more words; the reference answer must still
    # count (it may repeat the rephrased question, and its facts beyond it are what count).
    env = _make(V1)
    for i in range(len(TOPICS[topic])):
        goal = ((topic, i), (topic, (i + 1) % len(TOPICS[topic])))
        env.reset(seed=i, options={"problem": env.task.problem_for(goal)})
        for k in range(2):
            say(env, f"i like trains number {k}.")
            _, done, info = say(env, question(env.problem, k).answer)
            assert info["reward_components"]["relevance"] == 1.0, (topic, i, k)
        assert done and info["success"]
