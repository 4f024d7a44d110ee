"""Scripted users survive anything an agent says and still answer sensibly."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import textgym
from textgym.tasks.base import Turn
from textgym.tasks.customer_service import CustomerServiceTask, detect_intent

MULTI_TURN = [i for i in textgym.env_ids() if gym.make(i).unwrapped.task.multi_turn]

NASTY = [
    "",
    "   ",
    "<unk> <unk> <pad>",
    "[[[[ ]]] [refund] [= =] order= amount",
    "asdf qwer zxcv 1234 !!! ??? ...",
    "please " * 2000,
    "\x00\x01 emoji \u2603 \ud83d\ude00",
]


def fresh(env_id: str, seed: int = 0):
    env = gym.make(env_id).unwrapped
    env.reset(seed=seed)
    responder = env.task.responder()
    responder.reset(env.problem, np.random.default_rng(seed))
    return env, responder


@pytest.mark.parametrize("env_id", MULTI_TURN)
@pytest.mark.parametrize("text", NASTY)
def test_survives_garbage(env_id: str, text: str) -> None:
    env, responder = fresh(env_id)
    reply = responder.respond((Turn("user", env.problem.prompt), Turn("agent", text)))
    assert isinstance(reply.text, str) and reply.text.strip()
    assert env.tokenizer.unk_token_id not in env.tokenizer.encode(reply.text)


@pytest.mark.parametrize("env_id", MULTI_TURN)
def test_repeated_turns_end_the_conversation(env_id: str) -> None:
    env, responder = fresh(env_id)
    turns = [Turn("user", env.problem.prompt)]
    n = 0
    for n in range(1, 51):  # noqa: B007  (n is read after the loop)
        turns.append(Turn("agent", "hmm"))
        reply = responder.respond(tuple(turns))
        turns.append(Turn("user", reply.text))
        if reply.done:
            break
    assert reply.done and n < 20  # impatience ends it


@pytest.mark.parametrize("env_id", MULTI_TURN)
def test_still_sensible_after_garbage(env_id: str) -> None:
    """After garbage the user still answers a good turn as it would have at the start."""
    env, responder = fresh(env_id, seed=4)
    turns = [Turn("user", env.problem.prompt)]
    for text in NASTY[:2]:
        turns.append(Turn("agent", text))
        turns.append(Turn("user", responder.respond(tuple(turns)).text))
    good = env.task.oracle(env.problem, turns)
    turns.append(Turn("agent", good))
    reply = responder.respond(tuple(turns))
    assert reply.outcome.get("understood") or reply.outcome.get("answered")


def test_customer_rephrases_when_misunderstood() -> None:
    task = CustomerServiceTask(ambiguous_rate=0.0)
    problem = task.sample(np.random.default_rng(1))
    responder = task.responder()
    responder.reset(problem, np.random.default_rng(1))
    turns = [Turn("user", problem.prompt)]
    replies = []
    for _ in range(2):
        turns.append(Turn("agent", "blue green"))
        reply = responder.respond(tuple(turns))
        turns.append(Turn("user", reply.text))
        replies.append(reply.text)
        assert detect_intent(reply.text) == problem.metadata["intent"]
        assert not reply.outcome["understood"]
    assert replies[0] != replies[1]  # a different wording each time


def test_customer_answers_every_slot_asked() -> None:
    task = CustomerServiceTask()
    problem = task.sample(np.random.default_rng(2))
    responder = task.responder()
    responder.reset(problem, np.random.default_rng(2))
    reply = responder.respond(
        (Turn("user", problem.prompt), Turn("agent", "your order number, email and zip code?"))
    )
    slots = problem.metadata
    for slot in ("order", "email", "zip"):
        assert str(slots[slot]) in reply.text
    assert reply.outcome["understood"] and not reply.done


def test_respond_before_reset_is_an_error() -> None:
    responder = CustomerServiceTask().responder()
    with pytest.raises(RuntimeError, match="reset"):
        responder.respond((Turn("agent", "hi"),))
