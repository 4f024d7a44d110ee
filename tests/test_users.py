"""Scripted users survive anything an agent says and still answer sensibly."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import textgym
from textgym.tasks.base import Turn
from textgym.tasks.customer_service import CustomerServiceTask, detect_intent

MULTI_TURN = [
    i
    for i in textgym.env_ids(standalone=True)
    if gym.make(i).unwrapped.task.responder() is not None
]

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


# -- LMResponder ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny random GPT-2 with textgym's default tokenizer, saved locally."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = textgym.default_tokenizer()
    config = GPT2Config(
        vocab_size=len(tok), n_positions=256, n_embd=32, n_layer=1, n_head=2,
        bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny_lm")
    GPT2LMHeadModel(config).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def lm_episode(env_id: str, user, seed: int = 0) -> tuple[list, dict]:
    env = gym.make(env_id, user=user).unwrapped
    env.reset(seed=seed)
    done, info = False, {}
    while not done:
        _, _, term, trunc, info = env.step(env.oracle_action())
        done = term or trunc
    return list(env.turns), info


@pytest.mark.parametrize("env_id", ["textgym/Dialogue-v0", "textgym/CustomerService-v0"])
def test_lm_responder_plays_the_user(env_id: str, tiny_lm: str) -> None:
    from textgym.users.lm import LMResponder

    user = LMResponder.factory(tiny_lm, max_new_tokens=6)
    turns, info = lm_episode(env_id, user)
    replies = [t.text for t in turns[1:] if t.role == "user"]
    assert replies and all(isinstance(r, str) and r for r in replies)
    assert "success" in info and "reward_components" in info
    # Greedy decoding: the same seed gives the same conversation.
    assert lm_episode(env_id, user)[0] == turns


def test_lm_responder_factory_pickles_and_samples_reproducibly(tiny_lm: str) -> None:
    import pickle

    from textgym.users.lm import LMResponder

    user = pickle.loads(pickle.dumps(LMResponder.factory(tiny_lm, temperature=1.0)))
    a = lm_episode("textgym/Dialogue-v0", user, seed=3)[0]
    assert lm_episode("textgym/Dialogue-v0", user, seed=3)[0] == a


def test_lm_responder_without_judge_ends_after_max_turns(tiny_lm: str) -> None:
    from textgym.users.lm import LMResponder

    responder = LMResponder(tiny_lm, max_turns=2, max_new_tokens=4)
    problem = textgym.Problem(prompt="hi! how are you?")
    responder.reset(problem, np.random.default_rng(0))
    turns = [Turn("user", problem.prompt), Turn("agent", "fine")]
    first = responder.respond(tuple(turns))
    turns += [Turn("user", first.text), Turn("agent", "" * 3)]
    assert not first.done and responder.respond(tuple(turns)).done


def test_lm_responder_needs_a_tokenizer_for_a_model_object(tiny_lm: str) -> None:
    from transformers import AutoModelForCausalLM

    from textgym.users.lm import LMResponder

    with pytest.raises(ValueError, match="tokenizer"):
        LMResponder(AutoModelForCausalLM.from_pretrained(tiny_lm))


def test_lm_responder_missing_model_fails_when_the_env_is_made(tmp_path: Path) -> None:
    from textgym.rewards.models import ModelLoadError
    from textgym.users.lm import LMResponder

    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelLoadError, match="No responder model at .*does not exist"):
        LMResponder(missing)
    with pytest.raises(ModelLoadError, match="No responder model at .*does not exist"):
        gym.make("textgym/Dialogue-v0", user=LMResponder.factory(missing))
