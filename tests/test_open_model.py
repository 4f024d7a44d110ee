"""The open default model: shipped, current, chosen for open-text envs, trainable, rebuildable.

``--model default`` on a ReasoningGym id loads ``agents/lm/open_model`` (the open
tokenizer's vocabulary), on the built-in ids ``agents/lm/default_model``; a missing or stale
model names ``python -m agents.lm.build_open_model``; GRPO and PPO run on it end to end;
a tiny build is deterministic.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gymnasium as gym
import pytest
from safetensors.torch import load_file

from agents.grpo import GRPO, GRPOConfig
from agents.lm import default_model
from agents.lm.build_open_model import _wide_pool, build
from agents.lm.config import TrainConfig
from agents.lm.default_model import (
    DEFAULT_MODEL_DIR,
    OPEN_MODEL_DIR,
    DefaultModelError,
    build_info,
    open_tokenizer,
    resolve_model,
)
from agents.lm.policy import LMPolicy
from agents.lm.supervised import SFTConfig
from agents.ppo import PPO, PPOConfig
from textgym.cli import main as textgym_main
from textgym.core import OPEN_TOKENIZER_PATH
from textgym.errors import ConfigError
from textgym.tasks.demonstrations import generate_demonstrations
from textgym.tokenizer import vocab_digest, words_size

ARITHMETIC = "textgym/ReasoningGym-Arithmetic-v0"
STRINGS = "textgym/ReasoningGym-Strings-v0"
LISTS = "textgym/ReasoningGym-Lists-v0"


def test_shipped_open_model_matches_the_open_tokenizer() -> None:
    config = json.loads((OPEN_MODEL_DIR / "config.json").read_text())
    tokenizer = open_tokenizer()
    info = build_info(OPEN_MODEL_DIR)
    assert config["vocab_size"] == words_size(tokenizer) == len(tokenizer) == 4096
    assert info["tokenizer_sha256"] == vocab_digest(tokenizer), (
        "The open tokenizer changed; rebuild with `python -m agents.lm.build_open_model`."
    )
    assert info["noise"] > 0 and info["vocab_size"] == config["vocab_size"]
    # It saw abstentions among the slips, so RL can sample one and teach it when to abstain.
    assert info["abstain"] > 0
    assert all(d["abstained"] > 0.02 for d in info["demonstrations"].values())
    # Its contexts fit the longest registered variant's (ReasoningGym-Mix-v0).
    assert config["n_positions"] >= max(info["contexts"].values())
    # Mediocre on purpose: RL has headroom on the variants the report names.
    for env_id in (LISTS, STRINGS):
        assert 0.1 < info["greedy_eval"][env_id]["success_rate"] < 0.8
    assert sum(p.stat().st_size for p in OPEN_MODEL_DIR.iterdir()) < 10_000_000
    # The model directory carries the open tokenizer and its ChatML template.
    shipped = (OPEN_TOKENIZER_PATH / "chat_template.jinja").read_text()
    assert (OPEN_MODEL_DIR / "chat_template.jinja").read_text() == shipped
    policy = LMPolicy.from_pretrained(resolve_model("default", env_id=ARITHMETIC), len(tokenizer))
    assert policy.vocab_size == 4096


def test_default_resolves_to_the_model_of_the_envs_tokenizer() -> None:
    assert resolve_model("default", env_id=ARITHMETIC) == str(OPEN_MODEL_DIR)
    assert resolve_model("default", env_id="textgym/Dataset-v0") == str(OPEN_MODEL_DIR)
    assert resolve_model("default", env_id="textgym/Reasoning-v0") == str(DEFAULT_MODEL_DIR)
    assert resolve_model("default") == str(DEFAULT_MODEL_DIR)  # callers without an env
    # The tokenizer the env is given decides over its task's own.
    open_tok = str(OPEN_TOKENIZER_PATH)
    assert resolve_model("default", "textgym/Reasoning-v0", open_tok) == str(OPEN_MODEL_DIR)
    assert resolve_model("./elsewhere", env_id=ARITHMETIC) == "./elsewhere"
    # A run's config records which one it is, and the trainer resolves that name.
    assert TrainConfig(env_id=ARITHMETIC).model == "default-open"
    assert TrainConfig(env_id="textgym/Reasoning-v0").model == "default"
    assert TrainConfig(env_id=ARITHMETIC).tokenizer is None  # the env's own tokenizer
    assert TrainConfig(env_id="textgym/NoSuchEnv-v0").model == "default"  # named later


def _copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    copy = tmp_path / "open_model"
    shutil.copytree(OPEN_MODEL_DIR, copy)
    monkeypatch.setattr(default_model, "OPEN_MODEL_DIR", copy)
    assert resolve_model("default-open") == str(copy)
    return copy


def test_a_missing_open_model_names_the_build_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = _copy(tmp_path, monkeypatch)
    (copy / "model.safetensors").unlink()
    with pytest.raises(DefaultModelError, match="missing.*python -m agents.lm.build_open_model"):
        resolve_model("default", env_id=ARITHMETIC)
    # The closed model is untouched by it.
    assert resolve_model("default", env_id="textgym/Reasoning-v0") == str(DEFAULT_MODEL_DIR)


def test_a_stale_open_model_names_the_build_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = _copy(tmp_path, monkeypatch)
    info = json.loads((copy / "build_info.json").read_text())
    (copy / "build_info.json").write_text(json.dumps({**info, "tokenizer_sha256": "0" * 16}))
    with pytest.raises(DefaultModelError, match="renumbered.*build_open_model"):
        resolve_model("default", env_id=ARITHMETIC)
    config = json.loads((copy / "config.json").read_text())
    (copy / "build_info.json").write_text(json.dumps(info))
    (copy / "config.json").write_text(json.dumps({**config, "vocab_size": 5000}))
    with pytest.raises(DefaultModelError, match="5000 tokens.*build_open_model"):
        default_model.open_model_path()


@pytest.mark.parametrize(
    ("cls", "config_cls", "extra"),
    [(GRPO, GRPOConfig, {"group_size": 4}), (PPO, PPOConfig, {})],
    ids=["grpo", "ppo"],
)
def test_one_update_on_the_open_default_model(cls, config_cls, extra, tmp_path: Path) -> None:  # noqa: ANN001
    config = config_cls(
        env_id=ARITHMETIC, seed=0, num_envs=8, total_updates=1, eval_every=0,
        eval_episodes=8, checkpoint_every=0, run_dir=str(tmp_path), progress=False,
        tensorboard=False, threads=1, **extra,
    )  # fmt: skip
    trainer = cls(config).learn()
    assert trainer.update_count == 1
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["updates"] == 1
    assert 0.0 <= report["after"]["eval/success_rate"] <= 1.0
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model"] == "default-open"
    assert (tmp_path / "final_model" / "model.safetensors").exists()


def test_a_tiny_build_is_complete_and_deterministic(tmp_path: Path) -> None:
    settings = dict(
        demonstrations=[(ARITHMETIC, 24), (STRINGS, 24)],
        sft_config=SFTConfig(steps=4, batch_size=8, warmup=1, seed=0),
        architecture={"n_embd": 32, "n_layer": 1, "n_head": 2, "n_positions": 256},
        evaluated=[ARITHMETIC],
        eval_episodes=8,
        verbose=False,
    )
    first = build(tmp_path / "a", **settings)
    second = build(tmp_path / "b", **settings)
    a = load_file(tmp_path / "a" / "model.safetensors")
    b = load_file(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    assert first["greedy_eval"] == second["greedy_eval"]
    for name in ("config.json", "tokenizer.json", "chat_template.jinja", "build_info.json"):
        assert (tmp_path / "a" / name).exists(), name
    info = json.loads((tmp_path / "a" / "build_info.json").read_text())
    assert info["demonstrations"][ARITHMETIC]["episodes"] == 24
    assert info["tokenizer_sha256"] == vocab_digest(open_tokenizer())
    assert info["sft"]["steps"] == 4 and info["parameters"] > 0 and info["build_seconds"] > 0
    assert set(info["greedy_eval"]) == {ARITHMETIC}
    # A context longer than the model's positions is refused before any work.
    short = {**settings, "architecture": {**settings["architecture"], "n_positions": 64}}
    with pytest.raises(Exception, match="n_positions=64"):
        build(tmp_path / "c", **short)
    assert not (tmp_path / "c").exists()


def test_the_wide_pool_holds_more_train_questions_and_no_test_one() -> None:
    with _wide_pool(STRINGS, 100_000) as wide:
        assert wide != STRINGS and wide in gym.registry
        train = [r["prompt"] for r in generate_demonstrations(wide, 150, seed=0)]
    assert wide not in gym.registry  # registered only while the build plays it
    test = {r["prompt"] for r in generate_demonstrations(STRINGS, 300, seed=0, split="test")}
    assert not test & set(train)
    own = [r["prompt"] for r in generate_demonstrations(STRINGS, 150, seed=0)]
    assert train != own  # indices beyond the env's 10,000 items are drawn too
    # A task without a generator index range is played as it is.
    with _wide_pool("textgym/Reasoning-v0", 100_000) as same:
        assert same == "textgym/Reasoning-v0"


def test_train_takes_the_envs_arguments_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    argv = [
        "train", "--algo", "grpo", "--env", "textgym/ReasoningGym-v0",
        "--env-kwargs", "dataset=spell_backward", "config={\"min_word_len\": 3}",
        "--num-envs", "4", "--group-size", "4", "--total-updates", "1", "--eval-every", "0",
        "--eval-episodes", "4", "--checkpoint-every", "0", "--threads", "1", "--no-progress",
        "--no-tensorboard", "--run-dir", str(run),
    ]  # fmt: skip
    assert textgym_main(argv) == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["env_kwargs"] == ["dataset=spell_backward", 'config={"min_word_len": 3}']
    assert saved["model"] == "default-open"
    config = TrainConfig(env_id="textgym/ReasoningGym-v0", env_kwargs=saved["env_kwargs"])
    assert config.env_options == {"dataset": "spell_backward", "config": {"min_word_len": 3}}
    # The envs a trainer plays are the generator asked for, not the id's own (chain_sum).
    fields = {k: v for k, v in saved.items() if k != "algo"}
    trainer = GRPO(GRPOConfig(**{**fields, "run_dir": str(tmp_path / "again")}))
    try:
        for envs in (trainer.envs, trainer.eval_envs):
            assert {e.task.dataset for e in envs.unwrapped.envs} == {"spell_backward"}
    finally:
        trainer.close()


@pytest.mark.parametrize(
    ("items", "named"),
    [
        (["dataset"], "KEY=VALUE"),
        (["=3"], "KEY=VALUE"),
        (["dataset=a", "dataset=b"], "'dataset' twice"),
        (["split=test"], "evaluates on the test split"),
        (["tokenizer=x"], "use --tokenizer"),
    ],
)
def test_bad_env_arguments_are_named(items: list[str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        TrainConfig(env_id="textgym/ReasoningGym-v0", env_kwargs=items)


def test_an_unknown_generator_fails_in_two_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "train", "--algo", "grpo", "--env", "textgym/ReasoningGym-v0",
        "--env-kwargs", "dataset=no_such_generator", "--num-envs", "4", "--group-size", "4",
        "--total-updates", "1", "--run-dir", str(tmp_path / "run"), "--no-progress",
    ]  # fmt: skip
    assert textgym_main(argv) != 0
    err = capsys.readouterr().err.strip()
    assert "no_such_generator" in err and len(err.splitlines()) <= 2, err
    assert "Traceback" not in err
