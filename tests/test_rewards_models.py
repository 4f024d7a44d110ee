"""Model-based rewards with tiny models built here and saved with save_pretrained (offline)."""

from __future__ import annotations

import functools
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    GPT2Config,
    GPT2LMHeadModel,
)

import textgym
from tests.helpers import make_ctx, run_oracle
from textgym.rewards import ExactMatch, parse_reward
from textgym.rewards.judge import LMJudge
from textgym.rewards.models import EmbeddingSimilarity, ModelLoadError, RewardModel


def bert_config(num_labels: int = 1) -> BertConfig:
    return BertConfig(
        vocab_size=len(textgym.default_tokenizer()),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=num_labels,
    )


def save(model: torch.nn.Module, path: Path) -> Path:
    model.save_pretrained(path)
    textgym.default_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("models")
    vocab = len(textgym.default_tokenizer())
    gpt2 = GPT2Config(vocab_size=vocab, n_embd=32, n_layer=1, n_head=2, n_positions=128)
    gpt2.eos_token_id = gpt2.bos_token_id = textgym.default_tokenizer().eos_token_id
    return {
        "rm": save(BertForSequenceClassification(bert_config()), root / "rm"),
        "rm2": save(BertForSequenceClassification(bert_config(num_labels=2)), root / "rm2"),
        "emb": save(BertModel(bert_config()), root / "emb"),
        "lm": save(GPT2LMHeadModel(gpt2), root / "lm"),
    }


#: Contexts on the problem "copy: red blue".
copy_ctx = functools.partial(make_ctx, prompt="copy: red blue", answer="red blue")


TEXTS = ["red blue", "green", "red blue green yellow black", ""]


class CountingModule(torch.nn.Module):
    """Counts forward calls of a wrapped model (to check batching)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner, self.calls, self.config = inner, [], inner.config

    def forward(self, **kwargs):  # type: ignore[no-untyped-def]
        self.calls.append(int(kwargs["input_ids"].shape[0]))
        return self.inner(**kwargs)


@pytest.mark.parametrize("kind", ["rm", "rm2", "emb", "lm"])
def test_batch_is_one_forward_pass_and_matches_single_calls(
    models: dict[str, Path], kind: str
) -> None:
    cls = {"rm": RewardModel, "rm2": RewardModel, "emb": EmbeddingSimilarity, "lm": LMJudge}[kind]
    reward = cls(models[kind])
    reward.model = CountingModule(reward.model)
    ctxs = [copy_ctx(t) for t in TEXTS]
    batched = reward.batch(ctxs)
    # One padded pass for every context (the embedding model adds the uncached reference).
    assert reward.model.calls == [len(TEXTS) + (kind == "emb")]
    singles = [reward(c) for c in ctxs]
    for (value, comps), single in zip(batched, singles, strict=True):
        assert value == pytest.approx(single, abs=1e-5)
        assert comps == {reward.name: value}
        assert np.isfinite(value)


def test_value_ranges(models: dict[str, Path]) -> None:
    ctxs = [copy_ctx(t) for t in TEXTS]
    probs = [v for v, _ in RewardModel(models["rm2"], label=0).batch(ctxs)]
    assert all(0.0 <= p <= 1.0 for p in probs)
    judge = [v for v, _ in LMJudge(models["lm"]).batch(ctxs)]
    assert all(0.0 < p < 1.0 for p in judge)
    sims = EmbeddingSimilarity(models["emb"], rescale=True).batch(ctxs)
    assert all(0.0 <= v <= 1.0 for v, _ in sims)


def test_embedding_similarity_uses_references(models: dict[str, Path]) -> None:
    emb = EmbeddingSimilarity(models["emb"])
    # Identical to the gold answer: cosine 1.
    assert emb(copy_ctx("red blue")) == pytest.approx(1.0, abs=1e-6)
    # Metadata references win over the answer; the best reference counts.
    ctx = copy_ctx("green", metadata={"references": ["yellow", "green"]})
    assert emb(ctx) == pytest.approx(1.0, abs=1e-6)
    assert emb(copy_ctx("green", metadata={"references": "yellow"})) < 1.0 - 1e-6
    # Reference embeddings are cached across calls.
    assert {"red blue", "yellow", "green"} <= set(emb._cache)


def test_lm_judge_rubric_and_tokens(models: dict[str, Path]) -> None:
    judge = LMJudge(models["lm"], rubric="{prompt} {response} correct ? answer :", yes="yes")
    assert judge.prompt_for(copy_ctx("red")) == "copy: red blue red correct ? answer :"
    with pytest.raises(ValueError, match="response"):
        LMJudge(models["lm"], rubric="{prompt} ok?")
    with pytest.raises(ValueError, match="same token"):
        LMJudge(models["lm"], yes=" yes", no=" yes")
    with pytest.raises(ValueError, match="only use"):
        LMJudge(models["lm"], rubric="{response} {bogus}")


def test_missing_model_fails_at_construction(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    for cls in (RewardModel, EmbeddingSimilarity, LMJudge):
        with pytest.raises(ModelLoadError, match="does not exist") as caught:
            cls(missing)
        # Only a reward model comes from `textgym train-rm`; the others must not say so.
        assert ("train-rm" in str(caught.value)) == (cls is RewardModel)
    # Through gym.make, before any episode starts.
    with pytest.raises(Exception, match="does not exist"):
        gym.make("textgym/Copy-v0", reward=f'exact_match + reward_model("{missing}")')


def test_model_rewards_in_a_vector_env_are_batched(models: dict[str, Path]) -> None:
    rm = RewardModel(models["rm"])
    rm.model = CountingModule(rm.model)
    envs = gym.make_vec(
        "textgym/Copy-v0",
        num_envs=3,
        vectorization_mode="vector_entry_point",
        reward=ExactMatch() + 0.5 * rm,
    )
    envs.reset(seed=0)
    _, rewards, terminated, _, infos = envs.step(np.full(3, envs.unwrapped.eot_id))
    assert terminated.all()
    assert rm.model.calls == [3]
    comps = infos["reward_components"]
    np.testing.assert_allclose(rewards, 0.5 * comps["reward_model"])


def test_reward_model_by_string_end_to_end(models: dict[str, Path]) -> None:
    reward = parse_reward(f'exact_match + 0.1*reward_model("{models["rm"]}")')
    r, info = run_oracle(gym.make("textgym/Copy-v0", reward=reward), seed=0)
    comps = info["reward_components"]
    assert comps["exact_match"] == 1.0
    assert r == pytest.approx(1.0 + 0.1 * comps["reward_model"])


def test_hub_names_are_asked_of_the_hub_and_classifiers_are_not_judges(
    models: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A name with a slash is a hub id, not a missing path; offline, the error says so."""
    import huggingface_hub.constants

    from textgym.errors import UserError
    from textgym.hub import HubError, NotCausalLMError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)
    for cls in (RewardModel, EmbeddingSimilarity, LMJudge):
        with pytest.raises(HubError, match="Hub could not be reached") as caught:
            cls("openai-community/gpt2-textgym-test")
        assert isinstance(caught.value, (ModelLoadError, UserError))
        assert "does not exist" not in str(caught.value)
    # A sequence classifier would load as a causal LM with a random head; it is refused.
    with pytest.raises(NotCausalLMError, match="not a causal language model"):
        LMJudge(models["rm"])


def test_embedding_similarity_loads_a_sentence_transformers_directory(
    models: dict[str, Path], tmp_path: Path
) -> None:
    # The `embeddings` extra's backend: a sentence-transformers directory (modules.json) is
    # loaded by SentenceTransformer itself, and scores the cosine of its own embeddings.
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as st_models

    word = st_models.Transformer(str(models["emb"]))
    pool = st_models.Pooling(bert_config().hidden_size, pooling_mode="mean")
    SentenceTransformer(modules=[word, pool], device="cpu").save(str(tmp_path / "st"))
    reward = EmbeddingSimilarity(tmp_path / "st")
    assert reward._st is not None  # not the plain-transformers fallback
    ctxs = [copy_ctx(t) for t in TEXTS[:3]]
    st = SentenceTransformer(str(tmp_path / "st"), device="cpu")
    refs = st.encode(["red blue"], convert_to_numpy=True)[0]
    for ctx, value in zip(ctxs, reward.batch(ctxs), strict=True):
        vec = st.encode([ctx.text], convert_to_numpy=True)[0]
        cosine = float(vec @ refs / (np.linalg.norm(vec) * np.linalg.norm(refs)))
        assert (value[0] if isinstance(value, tuple) else value) == pytest.approx(cosine, abs=1e-4)
