"""The shipped tokenizer covers every task's text, rebuilding it changes nothing, and its
ids are an append-only ledger: a family's new word changes no other env and keeps the
shipped model working."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import textgym
from agents.lm.default_model import DEFAULT_MODEL_DIR
from agents.lm.policy import LMPolicy, ModelMismatchError
from textgym.tokenizer import (
    RESERVED,
    VOCAB_SIZE,
    WORDS_DIR,
    VocabularyFullError,
    build_tokenizer,
    corpus,
    rebuild,
    spare_ids,
    vocabulary_words,
)


def test_rebuild_gives_the_shipped_vocabulary() -> None:
    shipped = textgym.default_tokenizer().get_vocab()
    assert rebuild().get_vocab() == shipped, "run `python -m textgym.tokenizer` and commit it"


def test_corpus_has_no_unknown_words() -> None:
    tok = textgym.default_tokenizer()
    for text in corpus():
        assert tok.unk_token_id not in tok.encode(text, add_special_tokens=False), text


def test_each_family_owns_a_words_file() -> None:
    from textgym.tasks import TASKS

    for name, cls in TASKS.items():  # open-text tasks bring their own tokenizer
        assert (WORDS_DIR / f"{name}.txt").is_file() != cls.open_text, name
    assert set(vocabulary_words(["copy"])) >= {"copy", "repeat"}
    assert "refund" not in vocabulary_words(["copy"])  # customer service's, not copy's


def test_every_env_has_the_fixed_action_space_and_masks_no_spare_id() -> None:
    tok = textgym.default_tokenizer()
    spare = spare_ids(tok)
    assert len(tok) == VOCAB_SIZE and len(spare) > 0
    assert tok.convert_ids_to_tokens(spare[0]) == RESERVED.format(0)
    for env_id in textgym.env_ids(standalone=True):
        env = gym.make(env_id)
        if env.unwrapped.task.open_text:  # open text: the open BPE, a vocabulary of its own
            continue
        assert env.action_space == gym.spaces.Discrete(VOCAB_SIZE), env_id
        assert not env.unwrapped.action_masks()[spare].any(), env_id
        env.close()


def test_no_text_encodes_to_a_spare_id() -> None:
    tok = textgym.default_tokenizer()
    text = " ".join(RESERVED.format(k) for k in range(3)) + " <reserved_0>apples"
    assert set(tok.encode(text, add_special_tokens=False)).isdisjoint(spare_ids(tok))


def _with_new_copy_word(word: str = "zebra") -> object:
    """The default tokenizer rebuilt as if the Copy family had gained ``word``."""
    shipped = textgym.default_tokenizer().get_vocab()
    assert "\u2581" + word not in shipped
    return build_tokenizer(corpus(), [*vocabulary_words(), word], shipped)


def _episode(env_id: str, tokenizer: object, seed: int = 3) -> tuple[list[int], list[float]]:
    """Token ids and rewards of an oracle episode, at the shipped budgets."""
    shipped = gym.make(env_id).unwrapped
    env = gym.make(
        env_id,
        tokenizer=tokenizer,
        max_length=shipped.max_length,
        max_new_tokens=shipped.max_new_tokens,
    ).unwrapped
    obs, _ = env.reset(seed=seed)
    rewards, done = [], False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(env.oracle_action())
        rewards.append(float(reward))
        done = terminated or truncated
    return obs["input_ids"][obs["attention_mask"].astype(bool)].tolist(), rewards


def test_a_new_word_takes_a_spare_id_and_changes_no_other_env() -> None:
    shipped = textgym.default_tokenizer()
    grown = _with_new_copy_word()
    vocab, old = grown.get_vocab(), shipped.get_vocab()
    assert len(grown) == len(shipped) == VOCAB_SIZE
    assert vocab["\u2581zebra"] in spare_ids(shipped) and vocab["zebra"] in spare_ids(shipped)
    assert all(vocab[t] == i for t, i in old.items() if i not in spare_ids(shipped))
    for env_id in ("textgym/Reasoning-v0", "textgym/Dialogue-v0", "textgym/CustomerService-v0"):
        assert gym.make(env_id, tokenizer=grown).action_space == gym.make(env_id).action_space
        assert _episode(env_id, grown) == _episode(env_id, shipped), env_id


def test_the_shipped_model_still_acts_after_a_new_word() -> None:
    grown = _with_new_copy_word()
    obs = {}
    logits = []
    for tokenizer in (textgym.default_tokenizer(), grown):
        env = gym.make("textgym/Reasoning-v0", tokenizer=tokenizer)
        obs, _ = env.reset(seed=0)
        policy = LMPolicy.for_env(DEFAULT_MODEL_DIR, env)
        assert policy.vocab_size == policy.model_vocab_size < len(tokenizer)
        import torch

        ids = torch.as_tensor(obs["input_ids"])[None]
        mask = torch.as_tensor(obs["attention_mask"]).long()[None]
        with torch.no_grad():
            logits.append(policy(ids, mask).logits)
    np.testing.assert_array_equal(logits[0].numpy(), logits[1].numpy())


def test_a_model_built_before_a_new_word_refuses_to_read_it() -> None:
    import torch

    from agents.lm.policy import TokenBeyondModelError

    grown = _with_new_copy_word()
    env = gym.make("textgym/Copy-v0", tokenizer=grown)
    policy = LMPolicy.for_env(DEFAULT_MODEL_DIR, env)  # it plays every env without the word
    ids = torch.as_tensor([grown.encode(" copy zebra", add_special_tokens=False)])
    with pytest.raises(TokenBeyondModelError, match=r"beyond the model's 1358 embeddings.*resize"):
        policy(ids, torch.ones_like(ids))


def test_a_smaller_model_for_another_tokenizer_is_refused() -> None:
    from foreign import chatml_bpe
    from transformers import GPT2Config, GPT2LMHeadModel

    env = gym.make("textgym/Copy-v0", tokenizer=chatml_bpe())
    model = GPT2LMHeadModel(GPT2Config(vocab_size=8, n_layer=1, n_head=1, n_embd=8))
    with pytest.raises(ModelMismatchError, match="different tokenizer"):
        LMPolicy(model, 8).check_env(env)


def test_a_full_ledger_names_the_way_out() -> None:
    shipped = textgym.default_tokenizer().get_vocab()
    extra = [f"word{k}" for k in range(VOCAB_SIZE)]
    with pytest.raises(VocabularyFullError, match="VOCAB_SIZE.*build_default_model"):
        build_tokenizer(corpus(), extra, shipped)


def test_the_default_model_survives_a_new_word_but_not_a_renumbering(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agents.lm import default_model

    monkeypatch.setattr(default_model, "default_tokenizer", _with_new_copy_word)
    assert default_model.default_model_path() == DEFAULT_MODEL_DIR
    shipped = textgym.default_tokenizer().get_vocab()
    swapped = dict(shipped)
    swapped["\u2581apple"], swapped["\u2581apples"] = (
        shipped["\u2581apples"],
        shipped["\u2581apple"],
    )
    renumbered = build_tokenizer(corpus(), vocabulary_words(), swapped)
    monkeypatch.setattr(default_model, "default_tokenizer", lambda: renumbered)
    with pytest.raises(default_model.DefaultModelError, match="renumbered.*build_default_model"):
        default_model.default_model_path()
