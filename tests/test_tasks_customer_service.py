"""CustomerService family: oracle, chance, splits, policy, actions, rewards, and v1's final
actions against the probes that beat v0."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import textgym
from agents.probes import Probe, run_probe
from tests.helpers import (
    assert_splits_disjoint,
    oracle_success_rate,
    random_success_rate,
    say,
)
from textgym.envs.customer_service.customer import (
    STRICT_WRONG_ACTION,
    STRICT_WRONG_SLOT,
    ScriptedCustomer,
)
from textgym.tasks.customer_service import (
    Action,
    CustomerServiceTask,
    detect_intent,
    gold_action,
    parse_action,
)
from textgym.tasks.demonstrations import generate_demonstrations

IDS = [i for i in textgym.env_ids() if "/CustomerService" in i]


def test_family_is_registered() -> None:
    assert {"textgym/CustomerService-v0", "textgym/CustomerService-Tiny-v0"} <= set(IDS)
    for name in ("CustomerService", "CustomerService-Hard", "CustomerService-Tiny"):
        v0, v1 = gym.spec(f"textgym/{name}-v0").kwargs, gym.spec(f"textgym/{name}-v1").kwargs
        assert v1 == {**v0, "strict_actions": True}  # v1 changes only what a wrong action does


@pytest.mark.parametrize("env_id", IDS)
def test_oracle_resolves_test_split(env_id: str) -> None:
    assert oracle_success_rate(env_id, 200) >= 0.99


@pytest.mark.parametrize("env_id", IDS)
def test_random_policy_is_near_chance(env_id: str) -> None:
    assert random_success_rate(env_id, 100) < 0.1


@pytest.mark.parametrize("env_id", IDS)
def test_splits_are_disjoint(env_id: str) -> None:
    assert_splits_disjoint(env_id, 200)


def test_same_seed_same_conversation() -> None:
    a = gym.make("textgym/CustomerService-v0").unwrapped
    b = gym.make("textgym/CustomerService-v0").unwrapped
    for seed in range(5):
        for env in (a, b):
            env.reset(seed=seed)
            for text in ["hello", "what is your order number and email?", "[status order=1]"]:
                _, done, _ = say(env, text)
                if done:
                    break
        assert a.turns == b.turns


def find(env: textgym.TextEnv, pred, seeds=range(500)) -> None:
    for seed in seeds:
        env.reset(seed=seed)
        if pred(env.problem.metadata):
            return
    raise AssertionError("no problem matched")


def test_refund_over_limit_must_be_escalated() -> None:
    env = gym.make("textgym/CustomerService-v0").unwrapped
    over = lambda m: m["intent"] == "refund" and m["amount"] > 100  # noqa: E731
    find(env, over)
    s = env.problem.metadata
    r, done, info = say(env, f"[refund order={s['order']} amount={s['amount']}]")
    assert done and not info["success"]
    assert info["reward_components"]["policy"] == -1.0 and r < 0
    find(env, over)
    s = env.problem.metadata
    r, done, info = say(env, f"[escalate order={s['order']} amount={s['amount']}]")
    assert done and info["success"] and info["reward_components"]["policy"] == 0.0 and r > 1


def test_wrong_slot_is_corrected_and_wrong_action_rephrased() -> None:
    env = gym.make("textgym/CustomerService-v0").unwrapped
    find(env, lambda m: m["intent"] == "order_status")
    order = env.problem.metadata["order"]
    _, done, info = say(env, "[status order=1]")
    assert not done and str(order) in info["user_reply"] and "not right" in info["user_reply"]
    _, done, info = say(env, f"[cancel order={order}]")
    assert not done and "not what i want" in info["user_reply"]
    assert detect_intent(info["user_reply"]) == "order_status"
    _, done, info = say(env, f"[status order={order}]")
    assert done and info["success"]


def test_customer_leaves_after_patience() -> None:
    env = gym.make("textgym/CustomerService-v0").unwrapped
    env.reset(seed=0)
    patience = env.problem.metadata["patience"]
    for i in range(patience):
        _, done, info = say(env, "nice weather")
        assert done == (i == patience - 1)
    assert "goodbye" in info["user_reply"] and not info["success"]
    assert info["reward_components"]["resolution"] == 0.0


def test_parse_action() -> None:
    assert parse_action("ok. [refund order=12 amount=5]") == Action(
        "refund", {"order": "12", "amount": "5"}
    )
    assert parse_action("[status order=1] then [cancel order=2]") == Action(
        "cancel", {"order": "2"}
    )
    assert parse_action("[fly order=1]") is None
    assert parse_action("refund") is None
    assert parse_action(" refund ", bare=True) == Action("refund", {})
    assert parse_action("[reset email=ann@mail.com]").slots == {"email": "ann@mail.com"}


def test_gold_action_follows_policy() -> None:
    task = CustomerServiceTask()
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = task.sample(rng)
        gold = gold_action(p)
        if p.metadata["intent"] == "refund":
            over = p.metadata["amount"] > 100
            assert gold.name == ("escalate" if over else "refund")
        assert set(gold.slots) == set(p.metadata["required"])


def test_tiny_is_small_and_masked() -> None:
    env = gym.make("textgym/CustomerService-Tiny-v0").unwrapped
    prompts = set()
    for seed in range(300):
        env.reset(seed=seed)
        prompts.add(env.problem.prompt)
    assert len(prompts) <= 12
    mask = env.action_masks()
    assert mask.sum() == 9  # help, seven action words, end of turn
    env.reset(seed=0)
    assert all(mask[env.encode_turn(env.task.oracle(env.problem, env.turns))])


def test_oracle_asks_before_it_acts() -> None:
    env = gym.make("textgym/CustomerService-v0").unwrapped
    find(env, lambda m: m["ambiguous"])
    first = env.task.oracle(env.problem, env.turns)
    assert parse_action(first) is None and "help" in first
    _, _, info = say(env, first)
    assert detect_intent(info["user_reply"]) == env.problem.metadata["intent"]


def test_noisy_demonstrations_make_mistakes() -> None:
    records = list(generate_demonstrations("textgym/CustomerService-v0", 100, noise=0.3))
    clean = [r for r in records if not r["noisy"]]
    noisy = [r for r in records if r["noisy"]]
    assert all(r["success"] for r in clean) and noisy
    assert sum(r["success"] for r in noisy) < len(noisy)
    # Multi-turn demonstrations hold the customer's real replies.
    assert all(t["role"] == "user" for r in records for t in r["turns"][::2])


# -- v1: actions are final ----------------------------------------------------------------


def test_v1_wrong_slot_or_wrong_action_ends_the_case() -> None:
    env = gym.make("textgym/CustomerService-v1").unwrapped
    find(env, lambda m: m["intent"] == "order_status")
    order = env.problem.metadata["order"]
    _, done, info = say(env, "[status order=1]")
    assert done and not info["success"] and info["user_reply"] == STRICT_WRONG_SLOT
    assert str(order) not in info["user_reply"]  # no correction to guess from
    find(env, lambda m: m["intent"] == "order_status")
    _, done, info = say(env, f"[cancel order={env.problem.metadata['order']}]")
    assert done and not info["success"] and info["user_reply"] == STRICT_WRONG_ACTION
    assert info["reward_components"]["resolution"] == 0.0
    find(env, lambda m: m["intent"] == "order_status")
    _, done, info = say(env, f"[status order={env.problem.metadata['order']}]")
    assert done and info["success"]


@pytest.mark.parametrize(
    "case",
    [
        lambda m: m["intent"] == "complaint",  # escalation is right only for big refunds
        lambda m: m["intent"] == "refund" and m["amount"] <= 100,  # a refund within the limit
    ],
    ids=["other-intent", "refund-within-limit"],
)
def test_v1_escalating_with_the_right_slots_is_still_wrong(case) -> None:
    env = gym.make("textgym/CustomerService-v1").unwrapped
    find(env, case)
    m = env.problem.metadata
    _, done, info = say(env, f"[escalate order={m['order']} amount={m['amount']}]")
    assert done and not info["success"] and info["user_reply"] == STRICT_WRONG_ACTION


def test_v1_refund_over_limit_is_still_a_policy_breach_and_escalation_resolves() -> None:
    env = gym.make("textgym/CustomerService-v1").unwrapped
    over = lambda m: m["intent"] == "refund" and m["amount"] > 100  # noqa: E731
    find(env, over)
    m = env.problem.metadata
    r, done, info = say(env, f"[refund order={m['order']} amount={m['amount']}]")
    assert done and info["reward_components"]["policy"] == -1.0 and r < 0
    find(env, over)
    m = env.problem.metadata
    _, done, info = say(env, f"[escalate order={m['order']} amount={m['amount']}]")
    assert done and info["success"]


def test_v1_tiny_one_wrong_word_ends_the_case() -> None:
    plain = lambda m: m["intent"] != "refund" and not m["ambiguous"]  # noqa: E731
    for version in ("v0", "v1"):
        env = gym.make(f"textgym/CustomerService-Tiny-{version}").unwrapped
        find(env, plain)
        gold = gold_action(env.problem, with_slots=False).name
        _, done, info = say(env, "cancel" if gold == "status" else "status")
        assert done == (version == "v1") and not info.get("success")
        if version == "v0":  # v0 lets the agent try again
            _, done, info = say(env, gold)
            assert done and info["success"]


def test_strict_customer_reports_the_wrong_action() -> None:
    problem = CustomerServiceTask().sample(np.random.default_rng(0))
    for strict in (False, True):
        customer = ScriptedCustomer(strict_actions=strict)
        customer.reset(problem, np.random.default_rng(0))
        reply = customer.respond([textgym.Turn("agent", "[complaint order=0]")])
        assert reply.done == strict and reply.outcome.get("wrong_action") == (strict or None)
    with pytest.raises(TypeError, match="strict_actions"):
        CustomerServiceTask(strict_actions="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize("probe", ["spam", "escalate"])
def test_v1_stops_the_probes_that_beat_v0(probe: str) -> None:
    # Trying every action in turn resolved half of v0's cases; escalating everything
    # resolved the over-limit refunds. A v1 customer takes the first action as final.
    v0 = run_probe(probe, "textgym/CustomerService-v0", 100, seed=1, split="test")
    v1 = run_probe(probe, "textgym/CustomerService-v1", 100, seed=1, split="test")
    assert v0.success_rate > (0.4 if probe == "spam" else 0.04)
    assert v1.success_rate == 0.0


def test_v1_escalating_after_asking_wins_exactly_the_big_refunds() -> None:
    # What is left to a constant policy is its class's share: asking for every slot and
    # then escalating resolves the refunds over the limit (where escalating is right) and
    # nothing else.
    ask = "please tell me your order number and your order amount."

    def escalate(env: textgym.TextEnv, memo: dict) -> str:
        if len(env.turns) == 1:
            return ask
        m = env.problem.metadata  # the customer has just said both values
        assert str(m["order"]) in env.turns[-1].text and str(m["amount"]) in env.turns[-1].text
        return f"[escalate order={m['order']} amount={m['amount']}]"

    env = gym.make("textgym/CustomerService-v1", split="test")
    result = run_probe(Probe("ask-escalate", "", {"customer_service": escalate}), env, 150)
    big = 0
    for seed in range(150):
        env.reset(seed=seed)
        m = env.unwrapped.problem.metadata
        big += m["intent"] == "refund" and m["amount"] > m["refund_limit"]
    assert 0 < result.success_rate == big / 150 < 0.2
