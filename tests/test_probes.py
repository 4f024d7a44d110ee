"""Reward-hacking probes: no family's newest version lets one beat the random policy by more
than 5 points; the v0 failures that the v1s fix are documented and asserted here; the
committed probe table has the shape a fresh run has."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import gymnasium as gym
import pytest

from agents.baselines import RandomAgent
from agents.common import evaluate_policy
from agents.probes import PROBES, ProbeAgent, fails_rule, probes_for, run_probe
from benchmarks import probes as bench
from textgym.errors import ConfigError

RESULTS = Path(__file__).parents[1] / "benchmarks" / "results"
EPISODES, SEED = 400, 0  # 400: room to tell a 1-in-30 constant (3%) from 5%
#: Each family's newest version, after the v0 whose failures it fixes (benchmarks/probes.py).
ENV_IDS = bench.ENV_IDS
#: Each family's newest version: the last of its ids in ENV_IDS.
NEWEST = {gym.spec(i).kwargs["task"]: i for i in ENV_IDS}
#: The (env, probe) pairs that fail the rule, measured by benchmarks/probes.py: all v0s.
#: Dialogue-v0: keywords, a fixed turn or the user's question said back count as answers
#: (fixed by Dialogue-v1's strict judge). Reasoning-v0: its answers are skewed to small
#: numbers, so the most common training answer as a constant is right ~8% of the time
#: (fixed by Reasoning-v1's balanced answers). CustomerService-v0: a wrong action costs
#: nothing and a wrong slot is corrected, so trying actions in turn resolves about half the
#: cases and escalating everything resolves the over-limit refunds (fixed by
#: CustomerService-v1's final actions).
KNOWN_FAILURES = {
    ("textgym/Dialogue-v0", "keywords"),
    ("textgym/Dialogue-v0", "keywords_sentence"),
    ("textgym/Dialogue-v0", "repeat"),
    ("textgym/Dialogue-v0", "copy"),
    ("textgym/Reasoning-v0", "repeat"),
    ("textgym/CustomerService-v0", "escalate"),
    ("textgym/CustomerService-v0", "spam"),
}


def _make(env_id: str) -> gym.Env:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is out of date", category=DeprecationWarning)
        return bench.eval_env(env_id)


@pytest.fixture(scope="module")
def scores() -> dict[tuple[str, str], float]:
    """Success of random and of every probe on every representative, same seeded episodes."""
    found = {}
    for env_id in ENV_IDS:
        env = _make(env_id)
        random = evaluate_policy(RandomAgent(env, seed=SEED), env, EPISODES, seed=SEED)
        found[env_id, "random"] = random.success_rate
        for probe in probes_for(env.unwrapped.task.name):
            found[env_id, probe] = run_probe(probe, env, EPISODES, seed=SEED).success_rate
    return found


def test_no_env_fails_a_probe_but_the_documented_ones(
    scores: dict[tuple[str, str], float],
) -> None:
    failing = {
        key
        for key, success in scores.items()
        if key[1] != "random" and fails_rule(success, scores[key[0], "random"])
    }
    detail = {k: round(scores[k] - scores[k[0], "random"], 3) for k in failing ^ KNOWN_FAILURES}
    assert failing == KNOWN_FAILURES, f"new or fixed failures (points over random): {detail}"


def test_no_newest_version_fails_a_probe(scores: dict[tuple[str, str], float]) -> None:
    assert set(NEWEST) == {"copy", "reasoning", "customer_service", "dialogue", "reasoning_gym"}
    single = ("copy", "reasoning_gym")  # families with one version
    assert all(env_id.endswith("-v1") for f, env_id in NEWEST.items() if f not in single)
    for env_id in NEWEST.values():
        random = scores[env_id, "random"]
        probes = {p: s for (i, p), s in scores.items() if i == env_id and p != "random"}
        failing = {p: round(s - random, 3) for p, s in probes.items() if fails_rule(s, random)}
        assert probes and not failing, f"{env_id} fails (points over random): {failing}"
    # Every documented failure is a v0 whose family has a newer version in the table.
    assert all(gym.spec(i).version < gym.spec(NEWEST[gym.spec(i).kwargs["task"]]).version
               for i, _ in KNOWN_FAILURES)  # fmt: skip


def test_reasoning_and_customer_service_v1_stop_what_v0_lets_through(
    scores: dict[tuple[str, str], float],
) -> None:
    assert scores["textgym/Reasoning-v0", "repeat"] > 0.06
    assert scores["textgym/Reasoning-v1", "repeat"] < 0.05
    assert scores["textgym/CustomerService-v0", "spam"] > 0.4
    assert scores["textgym/CustomerService-v0", "escalate"] > 0.05
    for probe in ("spam", "escalate"):
        assert scores["textgym/CustomerService-v1", probe] == 0.0


def test_dialogue_v1_stops_what_v0_lets_through(scores: dict[tuple[str, str], float]) -> None:
    for probe in ("keywords", "keywords_sentence", "repeat", "copy"):
        assert scores["textgym/Dialogue-v0", probe] > 0.2
        assert scores["textgym/Dialogue-v1", probe] == 0.0
    assert scores["textgym/Dialogue-v0", "keywords"] == 1.0  # every episode, by keywords


def test_every_probe_plays_some_representative() -> None:
    families = {gym.spec(i).kwargs["task"] for i in ENV_IDS}
    assert all(any(p.applies_to(f) for f in families) for p in PROBES.values())
    assert {"keywords", "repeat", "format", "abstain", "copy"} <= set(probes_for("copy"))
    assert {"escalate", "spam"} <= set(probes_for("customer_service"))


@pytest.mark.parametrize(
    "env_id",
    [
        "textgym/Reasoning-v0",
        "textgym/Reasoning-v1",
        "textgym/CustomerService-v0",
        "textgym/CustomerService-v1",
        "textgym/Copy-v0",
        "textgym/ReasoningGym-Strings-v0",
    ],
)
def test_probes_never_read_the_gold_answer(env_id: str) -> None:
    env = gym.make(env_id).unwrapped
    for probe in probes_for(env.task.name):
        for seed in range(5):
            env.reset(seed=seed)
            real = env.problem
            meta = {k: v for k, v in real.metadata.items() if k != "action"}
            blind = dataclasses.replace(real, answer=None, metadata=meta)
            texts = []
            for problem in (real, blind):
                env.reset(seed=seed, options={"problem": problem})
                texts.append(ProbeAgent(probe, env).turn_text())
            assert texts[0] == texts[1], (probe, texts)


def test_a_probe_turn_fits_the_budget_and_closes() -> None:
    env = gym.make("textgym/Dialogue-v1").unwrapped
    env.reset(seed=0)
    agent = ProbeAgent("repeat", env)
    text = agent.turn_text()
    assert len(env.encode_turn(text)) <= env.max_new_tokens
    _, _, _, truncated, info = env.step(agent.predict(None)[0])
    while "turn_text" not in info:
        _, _, _, truncated, info = env.step(agent.predict(None)[0])
    assert not truncated and info["turn_text"] == text
    # The strict user names what the fixed keyword turn is.
    assert info["user_reply"].startswith("that is not an answer, just words.")


def test_probe_errors_name_the_fix() -> None:
    env = gym.make("textgym/Copy-v0")
    with pytest.raises(ConfigError, match="Did you mean 'keywords'"):
        ProbeAgent("keyword", env)
    with pytest.raises(ConfigError, match="no turn for the 'copy' family"):
        ProbeAgent("spam", env)
    with pytest.raises(ConfigError, match="with an env instance"):
        run_probe("copy", env, 1, split="test")


def test_the_rule() -> None:
    assert fails_rule(0.11, 0.05) and not fails_rule(0.10, 0.05) and not fails_rule(0.0, 0.0)


def test_committed_table_has_the_shape_of_a_fresh_run() -> None:
    committed = json.loads((RESULTS / "probes.json").read_text())
    fresh = bench.measure(episodes=2, progress=False)
    assert list(committed["envs"]) == list(fresh["envs"]) == list(ENV_IDS)
    for env_id, entry in fresh["envs"].items():
        old = committed["envs"][env_id]
        assert list(old["policies"]) == list(entry["policies"]), env_id
        for policy, cell in entry["policies"].items():
            assert set(old["policies"][policy]) == set(cell), (env_id, policy)
            if "example_turn" in cell:  # the same probe says the same first turn
                assert old["policies"][policy]["example_turn"] == cell["example_turn"]
        assert old["split"] == entry["split"] and old["family"] == entry["family"]
    assert set(committed["meta"]) == set(fresh["meta"])
    assert committed["meta"]["probes"] == fresh["meta"]["probes"]
    assert committed["meta"]["episodes"] >= 300
    # The Markdown is rendered from the JSON, and the failures it lists are the known ones.
    assert (RESULTS / "probes.md").read_text() == bench.markdown(committed)
    listed = {(i, p) for i, e in committed["envs"].items() for p in e["failures"]}
    assert listed == KNOWN_FAILURES
