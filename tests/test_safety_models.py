"""The KV cache on the current transformers API, and one model resolver for every loader.

Models are tiny random GPT-2 / BERT models saved in temporary directories; the hub is
never reached (hub names are tried in offline mode, ``HF_HUB_OFFLINE``).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import huggingface_hub.constants
import numpy as np
import pytest
import torch
import transformers
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    DynamicCache,
    GPT2Config,
    GPT2ForSequenceClassification,
    GPT2LMHeadModel,
)
from transformers.utils import logging as hf_logging

import textgym
from agents.common.rollout import RolloutCollector
from agents.lm.policy import (
    KVCacheError,
    KVSampler,
    LMPolicy,
    cache_kwarg,
    forward_with_cache,
    output_cache,
)
from tests.helpers import ChatTask
from textgym import hub
from textgym.errors import UserError
from textgym.hub import HubError, ModelLoadError, ModelPathError, NotCausalLMError
from textgym.rewards.judge import LMJudge
from textgym.rewards.models import EmbeddingSimilarity, RewardModel
from textgym.tokenizer import TokenizerError, TokenizerLoadError, load_tokenizer
from textgym.users.lm import LMResponder
from textgym.vector import TextVectorEnv

VOCAB = len(textgym.default_tokenizer())
ROOT = Path(__file__).resolve().parent.parent
HUB_NAMES = ["org/name", "openai-community/gpt2-textgym-test", "gpt2-textgym-test"]


def _save(model: torch.nn.Module, path: Path) -> Path:
    model.save_pretrained(str(path))
    textgym.default_tokenizer().save_pretrained(str(path))
    return path


def _bert(num_labels: int = 1) -> BertConfig:
    return BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128, num_labels=num_labels,
    )  # fmt: skip


def _gpt2() -> GPT2Config:
    return GPT2Config(
        vocab_size=VOCAB, n_positions=256, n_embd=32, n_layer=2, n_head=2,
        bos_token_id=1, eos_token_id=1, pad_token_id=0,
    )  # fmt: skip


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("safety_models")
    return {
        "lm": _save(GPT2LMHeadModel(_gpt2()), root / "lm"),
        "bert_cls": _save(BertForSequenceClassification(_bert()), root / "bert_cls"),
        "bert_mlm": _save(BertForMaskedLM(_bert()), root / "bert_mlm"),
        "gpt2_cls": _save(GPT2ForSequenceClassification(_gpt2()), root / "gpt2_cls"),
    }


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hub access off, as with ``HF_HUB_OFFLINE=1`` set before the process started
    (huggingface_hub reads the variable once, at import)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


# -- KV cache on the current API ----------------------------------------------------------


class _Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def no_deprecations() -> Iterator[_Captured]:
    """Deprecation / future warnings raise; transformers' logged warnings are collected.

    transformers reports most deprecations through ``logger.warning_once``, whose memo is
    cleared first, so a warning already logged earlier in the session is logged again.
    """
    hf_logging.warning_once.cache_clear()
    logger = hf_logging.get_logger("transformers")
    handler = _Captured()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)
            warnings.simplefilter("error", DeprecationWarning)
            yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _deprecations(handler: _Captured) -> list[str]:
    return [m for m in handler.messages if "deprecat" in m.lower() or "removed" in m.lower()]


def test_the_capture_sees_the_old_cache_api(models: dict[str, Path], no_deprecations) -> None:
    """The check below can fail: the old keyword is caught (as a logged or a raised warning)."""
    model = GPT2LMHeadModel.from_pretrained(str(models["lm"]))
    ids = torch.tensor([[5, 6, 7]])
    if hub.transformers_version() < (5, 24):
        # Before 5.24 the old keyword is the current one: the sampler must choose it, and
        # using it must warn nothing (so the floors run checks the fallback, not a skip).
        assert cache_kwarg(model) == "past_key_values"
        model(input_ids=ids, past_key_values=DynamicCache(), use_cache=True)
        assert not _deprecations(no_deprecations), no_deprecations.messages
        return
    try:
        model(input_ids=ids, past_key_values=DynamicCache(), use_cache=True)
    except FutureWarning:
        return
    assert _deprecations(no_deprecations), no_deprecations.messages


def test_sampler_warns_nothing_on_the_installed_transformers(
    models: dict[str, Path], no_deprecations
) -> None:
    policy = LMPolicy.from_pretrained(models["lm"], VOCAB, value_head=True)
    if hub.transformers_version() >= (5, 24):
        assert cache_kwarg(policy.model) == "cache"
    # Multi-turn: prefills, one-token steps, multi-token blocks (user replies) and retired
    # rows leaving the cache; values from the same passes.
    envs = TextVectorEnv(5, task=ChatTask(), copy=False)
    gen = torch.Generator().manual_seed(0)
    episodes = RolloutCollector(envs, policy, 1.0, gen, values=True).collect(list(range(5)))
    assert len(episodes) == 5
    assert not _deprecations(no_deprecations), no_deprecations.messages


def _full_logits(policy: LMPolicy, ids: np.ndarray, length: int) -> torch.Tensor:
    row = torch.as_tensor(ids[None, :length])
    with torch.no_grad():
        return policy(row, torch.ones_like(row)).logits[0, -1]


def test_cached_logits_equal_a_full_forward(models: dict[str, Path]) -> None:
    policy = LMPolicy.from_pretrained(models["lm"], VOCAB).eval()
    rng = np.random.default_rng(0)
    ids = rng.integers(5, VOCAB, size=(3, 40))
    sampler = KVSampler(policy, num_rows=3, max_cache=64)
    active = np.ones(3, dtype=bool)
    # Prefill, one token per row, uneven blocks, a reset row, and a row sitting out.
    schedule = [
        ([3, 5, 2], active),
        ([4, 6, 3], active),
        ([5, 9, 7], active),
        ([6, 10, 8], active),
        ([7, 10, 9], np.array([True, False, True])),
        ([8, 12, 10], active),
    ]
    for step, (lengths, act) in enumerate(schedule):
        lengths = np.array(lengths)
        if step == 3:
            sampler.forget(np.array([1]))
        rows, logits = sampler.logits(ids, lengths, act)
        assert rows.tolist() == np.flatnonzero(act).tolist()
        for k, r in enumerate(rows):
            torch.testing.assert_close(
                logits[k], _full_logits(policy, ids[r], int(lengths[r])), atol=1e-4, rtol=0
            )


def _swallowing(model: torch.nn.Module) -> None:
    """Simulate transformers after 5.40: forward takes ``**kwargs`` and drops the cache."""
    forward = model.forward

    def swallow(*args: Any, cache: Any = None, past_key_values: Any = None, **kw: Any) -> Any:
        return forward(*args, **kw)

    model.forward = swallow  # type: ignore[method-assign]


def test_an_ignored_cache_fails_loudly(models: dict[str, Path]) -> None:
    policy = LMPolicy.from_pretrained(models["lm"], VOCAB).eval()
    _swallowing(policy.model)
    ids = np.random.default_rng(1).integers(5, VOCAB, size=(2, 20))
    sampler = KVSampler(policy, num_rows=2, max_cache=64)
    active = np.ones(2, dtype=bool)
    with pytest.raises(KVCacheError, match="did not use the KV cache"):
        # The prefill may pass (the model builds a cache of the same length for itself, on
        # transformers 5); the next step cannot.
        sampler.logits(ids, np.array([4, 6]), active)
        sampler.logits(ids, np.array([5, 7]), active)


class _OldAPI(torch.nn.Module):
    """A model whose forward knows only ``past_key_values`` and returns it under that name
    (transformers before 5.24)."""

    def __init__(self, inner: GPT2LMHeadModel) -> None:
        super().__init__()
        self.inner = inner

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
        past_key_values: Any = None, use_cache: bool = False,
    ) -> dict[str, Any]:  # fmt: skip
        key = cache_kwarg(self.inner)
        out = self.inner(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
            use_cache=use_cache, **{key: past_key_values},
        )  # fmt: skip
        return {"logits": out.logits, "past_key_values": output_cache(out)}


def test_the_old_cache_keyword_is_the_fallback(
    models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    inner = GPT2LMHeadModel.from_pretrained(str(models["lm"])).eval()
    old = _OldAPI(inner)
    assert cache_kwarg(old) == "past_key_values"
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        _, cache = forward_with_cache(
            old, DynamicCache(), 3, input_ids=ids[:, :3], attention_mask=torch.ones(1, 3),
            position_ids=torch.arange(3)[None],
        )  # fmt: skip
        out, cache = forward_with_cache(
            old, cache, 4, input_ids=ids[:, 3:], attention_mask=torch.ones(1, 4),
            position_ids=torch.tensor([[3]]),
        )  # fmt: skip
        full = inner(input_ids=ids).logits[0, -1]
    torch.testing.assert_close(out["logits"][0, -1], full, atol=1e-5, rtol=0)
    # A forward with only **kwargs gets the installed transformers' name.

    class Wrapper(torch.nn.Module):
        def forward(self, **kwargs: Any) -> None: ...

    monkeypatch.setattr(hub, "transformers_version", lambda: (5, 23))
    assert cache_kwarg(Wrapper()) == "past_key_values"
    monkeypatch.setattr(hub, "transformers_version", lambda: (5, 24))
    assert cache_kwarg(Wrapper()) == "cache"


def test_dtype_keyword_follows_the_transformers_version(monkeypatch: pytest.MonkeyPatch) -> None:
    assert hub.dtype_kwargs(None) == {}
    monkeypatch.setattr(hub, "transformers_version", lambda: (4, 55))
    assert hub.dtype_kwargs(torch.float32) == {"torch_dtype": torch.float32}
    monkeypatch.setattr(hub, "transformers_version", lambda: (4, 56))
    assert hub.dtype_kwargs(torch.float32) == {"dtype": torch.float32}


# -- one resolver ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["gpt2", "openai-community/gpt2", "Qwen/Qwen2.5-0.5B", "org/model_v1.2"]
)
def test_hub_names_are_not_paths(name: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert not hub.looks_like_path(name)
    assert hub.resolve(name) == hub.Source(name, local=False)


@pytest.mark.parametrize(
    "name",
    ["./lm", "../lm", "/no/such/lm", "~/no-such-lm", "runs/a/final", "runs\\final", "my model",
     "org/--name", "a/"],
)  # fmt: skip
def test_local_looking_names_are_paths(name: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert hub.looks_like_path(name)
    with pytest.raises(ModelPathError, match="the path does not exist"):
        hub.resolve(name)


def test_a_hub_id_is_asked_of_the_hub_even_beside_a_local_org_folder(
    models: dict[str, Path], monkeypatch: pytest.MonkeyPatch, offline: None
) -> None:
    # `safety_models0/lmm` is a valid hub id whose first part happens to be a local folder
    # (as after `hf download org/a --local-dir org/a`): it is not a local path, so the hub
    # is asked, and offline the error says so.
    name = f"{models['lm'].parent.name}/lmm"
    monkeypatch.chdir(models["lm"].parent.parent)
    with pytest.raises(HubError, match="Hugging Face Hub could not be reached"):
        LMPolicy.from_pretrained(name, VOCAB)


def test_local_directories_load_by_any_spelling(
    models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(models["lm"].parent)
    monkeypatch.setenv("HOME", str(models["lm"].parent))
    for name in ("lm", "./lm", "~/lm", str(models["lm"]), models["lm"]):
        policy = LMPolicy.from_pretrained(name, VOCAB)
        assert policy.model_vocab_size == VOCAB
    assert len(load_tokenizer("./lm")) == VOCAB


def test_missing_local_paths_say_so_for_every_loader(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-model")
    loaders = [
        lambda: LMPolicy.from_pretrained(missing, VOCAB),
        lambda: load_tokenizer(missing),
        lambda: RewardModel(missing),
        lambda: LMJudge(missing),
        lambda: EmbeddingSimilarity(missing),
        lambda: LMResponder(missing),
        lambda: LMResponder.factory(missing),
    ]
    for load in loaders:
        with pytest.raises(ModelPathError, match="the path does not exist") as caught:
            load()
        assert isinstance(caught.value, UserError) and isinstance(caught.value, FileNotFoundError)
        assert "Hub" not in str(caught.value)


@pytest.mark.parametrize("name", HUB_NAMES)
def test_offline_hub_names_name_the_hub_for_every_loader(
    name: str, offline: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    loaders = [
        lambda: LMPolicy.from_pretrained(name, VOCAB),
        lambda: load_tokenizer(name),
        lambda: RewardModel(name),
        lambda: LMJudge(name),
        lambda: EmbeddingSimilarity(name),
        lambda: LMResponder(name),
    ]
    for load in loaders:
        with pytest.raises(HubError) as caught:
            load()
        message = str(caught.value)
        assert "Hugging Face Hub could not be reached" in message, message
        assert "HF_HUB_OFFLINE" in message and "local" in message and name in message
        assert "does not exist" not in message
        assert isinstance(caught.value, UserError)
    # The factory only checks paths; a hub name is accepted until the model loads.
    assert LMResponder.factory(name).model == name


def test_a_hub_name_is_tried_on_the_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hub names reach ``from_pretrained`` unchanged (today they are refused as paths)."""
    seen: list[str] = []

    class Fake:
        __name__ = "Fake"

        @staticmethod
        def from_pretrained(name: str, **kwargs: Any) -> str:
            seen.append(name)
            return "loaded"

    assert hub.from_pretrained(Fake, "Qwen/Qwen2.5-0.5B", "model") == "loaded"
    assert seen == ["Qwen/Qwen2.5-0.5B"]


def test_a_name_missing_from_the_hub_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    class NotFound:
        __name__ = "AutoModel"

        @staticmethod
        def from_pretrained(name: str, **kwargs: Any) -> None:
            raise OSError(
                f"{name} is not a local folder and is not a valid model identifier listed on "
                "'https://huggingface.co/models'"
            )

    with pytest.raises(HubError, match="There is no model 'org/typo' on the Hugging Face Hub"):
        hub.from_pretrained(NotFound, "org/typo", "model")


@pytest.mark.parametrize("kind", ["bert_cls", "bert_mlm", "gpt2_cls"])
def test_a_model_that_is_not_a_causal_lm_is_refused(models: dict[str, Path], kind: str) -> None:
    with pytest.raises(NotCausalLMError, match="is not a causal language model") as caught:
        LMPolicy.from_pretrained(models[kind], VOCAB)
    assert isinstance(caught.value, UserError)
    with pytest.raises(NotCausalLMError):
        LMJudge(models[kind])


def test_a_causal_lm_is_not_refused_by_model_type(models: dict[str, Path]) -> None:
    config = transformers.AutoConfig.from_pretrained(str(models["lm"]))
    hub.check_causal_lm(config, "lm")
    config.architectures = None  # judged by model type
    hub.check_causal_lm(config, "lm")
    config.architectures = ["GPT2ForTokenClassification"]
    with pytest.raises(NotCausalLMError, match="GPT2ForTokenClassification"):
        hub.check_causal_lm(config, "lm")


def test_tokenizer_loader_follows_the_rule(
    models: dict[str, Path], tmp_path: Path, offline: None
) -> None:
    assert len(load_tokenizer(models["lm"])) == VOCAB
    with pytest.raises(TokenizerLoadError, match="No tokenizer at .*the path does not exist"):
        load_tokenizer(tmp_path / "nope")
    with pytest.raises(TokenizerError, match="Hugging Face Hub could not be reached"):
        load_tokenizer("org/name")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelLoadError, match="Could not load the tokenizer from") as caught:
        load_tokenizer(empty)
    # One error, both families: TokenizerError (ValueError) and ModelLoadError (OSError).
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, OSError)
    assert "\n" not in str(caught.value)
    with pytest.raises(ModelPathError, match="is a file"):
        load_tokenizer(models["lm"] / "config.json")


def test_an_env_with_a_hub_tokenizer_offline_names_the_hub(offline: None) -> None:
    with pytest.raises(TokenizerError, match="Hub could not be reached"):
        gym.make("textgym/Copy-v0", tokenizer="org/name")


def test_offline_train_with_a_hub_model_names_the_hub(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable, "-m", "agents.train", "--algo", "grpo", "--env", "textgym/Copy-v0",
        "--model", "org/name", "--run-dir", str(tmp_path / "run"), "--num-envs", "2",
        "--group-size", "2",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Hugging Face Hub could not be reached" in proc.stderr, proc.stderr
    assert "org/name" in proc.stderr and "Traceback" not in proc.stderr
    assert "does not exist" not in proc.stderr


def test_a_transformers_5_tokenizer_loads_where_autotokenizer_cannot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """transformers 4 has no ``TokenizersBackend`` class, the one transformers 5 writes
    for textgym's default tokenizer: the files are read into a plain fast tokenizer."""
    import textgym.tokenizer as tk

    default = textgym.default_tokenizer()
    # The shipped files, as transformers 5 wrote them (whatever transformers runs the test).
    shutil.copytree(tk.DEFAULT_TOKENIZER_PATH, tmp_path / "tok")

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise ValueError("Tokenizer class TokenizersBackend does not exist or is not imported.")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", refuse)
    tk._load_cached.cache_clear()
    try:
        tok = load_tokenizer(tmp_path / "tok")
        text = "copy: red blue <eot> <agent> 12"
        assert tok.encode(text) == default.encode(text)
        assert (tok.pad_token_id, tok.eos_token_id) == (default.pad_token_id, default.eos_token_id)
        assert tok.padding_side == "right" and len(tok) == len(default)
        # Any other directory still gets transformers' error.
        (tmp_path / "tok" / "tokenizer_config.json").write_text('{"tokenizer_class": "Other"}')
        tk._load_cached.cache_clear()
        with pytest.raises(TokenizerLoadError, match="TokenizersBackend does not exist"):
            load_tokenizer(tmp_path / "tok")
    finally:
        tk._load_cached.cache_clear()
