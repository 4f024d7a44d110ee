"""LM agents end to end with tiny budgets: learning, resume, errors, accelerate.

The synthetic env is Copy with a one-word pool and a tiny tokenizer (~90 tokens), rewarded
for every ``▁red`` token the agent writes: a random tiny GPT-2 finds the reward at once and
every algorithm must raise it within a few dozen updates of a second or less.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

import textgym
from agents.grpo import GRPO, GRPOConfig
from agents.lm.policy import LMPolicy
from agents.ppo import PPO, PPOConfig
from agents.reinforce import Reinforce, ReinforceConfig
from agents.train import main as train_main
from textgym.tokenizer import build_tokenizer

SYNTH_ID = "textgym_test/RedTokens-v0"
ALGOS = {
    "reinforce": (Reinforce, ReinforceConfig),
    "ppo": (PPO, PPOConfig),
    "grpo": (GRPO, GRPOConfig),
}


def red_reward(ctx: textgym.RewardContext) -> float:
    """Fraction of the turn's tokens that are ``▁red`` (dense, so a random policy finds it)."""
    red = RED_ID[0]
    return float(np.sum(ctx.token_ids == red)) / 3.0


RED_ID = [-1]


def tiny_gpt2(vocab_size: int, n_positions: int = 64) -> GPT2LMHeadModel:
    """A 1-layer, 32-wide GPT-2 (pad 0, eos 1), built from torch's current RNG state."""
    cfg = GPT2Config(
        vocab_size=vocab_size, n_positions=n_positions, n_embd=32, n_layer=1, n_head=2,
        bos_token_id=1, eos_token_id=1, pad_token_id=0,
    )  # fmt: skip
    return GPT2LMHeadModel(cfg)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("synth")
    tok = build_tokenizer(["copy: red blue green", "red blue green"])
    tok.save_pretrained(str(root / "tokenizer"))
    RED_ID[0] = tok.get_vocab()["\u2581red"]
    if SYNTH_ID not in gym.registry:
        gym.register(
            id=SYNTH_ID,
            entry_point="textgym.core:TextEnv",
            vector_entry_point="textgym.vector:TextVectorEnv",
            kwargs={
                "task": "copy",
                "length": 1,
                "n_words": 3,
                "tokenizer": str(root / "tokenizer"),
                "reward": red_reward,
            },
        )
    torch.manual_seed(0)
    tiny_gpt2(len(tok), n_positions=32).save_pretrained(str(root / "model"))
    tiny_gpt2(len(textgym.default_tokenizer())).save_pretrained(str(root / "default_vocab_model"))
    return {"model": str(root / "model"), "default_vocab_model": str(root / "default_vocab_model")}


def make(algo: str, synth: dict[str, str], run_dir: Path, **overrides):  # noqa: ANN201
    cls, config_cls = ALGOS[algo]
    kwargs = dict(
        env_id=SYNTH_ID, model=synth["model"], seed=0, num_envs=32, total_updates=30,
        learning_rate=1e-2, eval_every=0, eval_episodes=32, checkpoint_every=0,
        run_dir=str(run_dir), progress=False, tensorboard=False, threads=1,
    )  # fmt: skip
    if algo == "grpo":
        kwargs["group_size"] = 4
    kwargs.update(overrides)
    return cls(config_cls(**kwargs))


def red_nll(policy: LMPolicy, trainer) -> float:  # noqa: ANN001
    """Cross-entropy of the rewarded token at the first decision of an episode."""
    envs = trainer.eval_envs
    obs, _ = envs.reset(seed=0)
    ids = torch.as_tensor(obs["input_ids"][:1].copy())
    mask = torch.as_tensor(obs["attention_mask"][:1].astype(np.int64))
    with torch.no_grad():
        logits = policy(ids, mask).logits[0, int(mask.sum()) - 1]
    return float(-torch.log_softmax(logits, -1)[RED_ID[0]])


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_loss_falls_and_reward_rises_on_synthetic_env(algo: str, synth, tmp_path: Path) -> None:
    trainer = make(algo, synth, tmp_path)
    nll_before = red_nll(trainer.policy, trainer)
    trainer.learn()
    returns = [
        h["charts/episodic_return"] for h in trainer.history if "charts/episodic_return" in h
    ]
    assert len(returns) == 30
    assert np.mean(returns[-5:]) > np.mean(returns[:5]) + 0.3, returns
    assert red_nll(trainer.policy, trainer) < nll_before - 1.0
    # Greedy evaluation at the end writes only red.
    assert trainer.extra_state["final_eval"]["eval/episodic_return"] > 0.6
    assert (tmp_path / "progress.csv").exists() and (tmp_path / "report.json").exists()
    assert (tmp_path / "final_model" / "config.json").exists()


def test_clip_higher_widens_only_the_upper_bound() -> None:
    from agents.grpo import clipped_surrogate

    ratio = torch.tensor([1.25, 1.25, 0.7, 0.7])
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0])
    symmetric = clipped_surrogate(ratio, adv, 0.8, 1.2)
    higher = clipped_surrogate(ratio, adv, 0.8, 1.28)
    # A token that paid off keeps its ratio up to 1.28 instead of 1.2; the rest is unchanged.
    assert torch.allclose(symmetric, torch.tensor([1.2, -1.25, 0.7, -0.8]))
    assert torch.allclose(higher, torch.tensor([1.25, -1.25, 0.7, -0.8]))


def test_grpo_clips_the_loss_and_counts_clipping_at_both_bounds(
    synth, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agents.grpo

    bounds: list[tuple[float, float]] = []
    surrogate = agents.grpo.clipped_surrogate

    def recorded(ratio, advantage, low, high):  # noqa: ANN001, ANN202
        bounds.append((low, high))
        return surrogate(ratio, advantage, low, high)

    monkeypatch.setattr(agents.grpo, "clipped_surrogate", recorded)
    # Off-policy passes (num_iterations 3, lr 1e-2) move the ratio past 1.2 but rarely 1.9.
    wide = make("grpo", synth, tmp_path / "a", total_updates=2, num_iterations=3,
                clip_coef_high=0.9)  # fmt: skip
    wide.learn()
    assert bounds and all(b == pytest.approx((0.8, 1.9)) for b in bounds)  # the loss's bounds
    bounds.clear()
    narrow = make("grpo", synth, tmp_path / "b", total_updates=2, num_iterations=3)
    narrow.learn()
    assert bounds and all(b == pytest.approx((0.8, 1.2)) for b in bounds)
    clip = [
        [h["losses/clipfrac"] for h in t.history if "losses/clipfrac" in h] for t in (wide, narrow)
    ]
    assert sum(clip[1]) > 0 and sum(clip[0]) < sum(clip[1])


def test_ppo_kl_penalty_is_zero_at_first_update(synth, tmp_path: Path) -> None:
    trainer = make("ppo", synth, tmp_path, total_updates=1, kl_coef=0.5)
    trainer.learn()
    first = next(h for h in trainer.history if "charts/kl_to_reference" in h)
    assert abs(first["charts/kl_to_reference"]) < 1e-5


def test_resume_after_interrupted_run_continues_from_checkpoint(synth, tmp_path: Path) -> None:
    overrides = dict(
        total_updates=4, checkpoint_every=2, kl_coef=0.1, adaptive_kl=True, eval_every=2
    )
    full = make("ppo", synth, tmp_path / "full", **overrides).learn()

    crashing = make("ppo", synth, tmp_path / "crash", **overrides)
    original = crashing.update

    def update_then_die(batch, episodes):  # noqa: ANN001, ANN202
        if crashing.update_count == 3:
            raise KeyboardInterrupt("killed mid-run")
        return original(batch, episodes)

    crashing.update = update_then_die  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        crashing.learn()
    # Updates 1-3 ran; the checkpoint holds update 2.
    resumed = make("ppo", synth, tmp_path / "crash", **overrides, resume=True)
    assert resumed.update_count == 2
    resumed.learn()
    assert resumed.update_count == 4
    for a, b in zip(
        full.policy.state_dict().values(), resumed.policy.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    assert resumed.extra_state["kl_coef"] == pytest.approx(full.extra_state["kl_coef"])


def test_resuming_a_finished_run_names_the_flag_to_raise(synth, tmp_path: Path) -> None:
    from agents.lm.trainer import ConfigError

    make("reinforce", synth, tmp_path / "n", total_updates=1).learn()
    with pytest.raises(ConfigError, match="already made 1 of its --total-updates 1.*larger"):
        make("reinforce", synth, tmp_path / "n", total_updates=1, resume=True)
    # A run stopped by its time budget: resuming with the same budget cannot train more.
    trainer = make("reinforce", synth, tmp_path / "t", total_updates=5, time_budget=1e-9)
    trainer.learn()
    assert trainer.update_count == 1
    with pytest.raises(ConfigError, match="already used its time budget.*--time-budget 0"):
        make("reinforce", synth, tmp_path / "t", total_updates=5, time_budget=1e-9, resume=True)
    resumed = make("reinforce", synth, tmp_path / "t", total_updates=2, resume=True)
    assert resumed.learn().update_count == 2


def test_resume_finishes_a_run_killed_during_its_final_evaluation(synth, tmp_path: Path) -> None:
    settings = dict(total_updates=2, checkpoint_every=1)
    trainer = make("reinforce", synth, tmp_path, **settings)
    evaluate = trainer._evaluate_and_log
    calls: list[int] = []

    def killed_at_the_final_evaluation(logger):  # noqa: ANN001, ANN202
        calls.append(1)
        if len(calls) == 2:  # the first is the evaluation before training
            raise KeyboardInterrupt("killed")
        return evaluate(logger)

    trainer._evaluate_and_log = killed_at_the_final_evaluation  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        trainer.learn()
    assert not (tmp_path / "final_model").exists()
    # The checkpoint holds the last update but no final evaluation: the run is not finished.
    resumed = make("reinforce", synth, tmp_path, **settings, resume=True).learn()
    assert resumed.update_count == 2 and (tmp_path / "final_model").exists()


def test_the_last_updates_evaluation_is_the_final_one(synth, tmp_path: Path) -> None:
    # --eval-every dividing the update count evaluates the last update once, not twice.
    trainer = make("reinforce", synth, tmp_path, total_updates=4, eval_every=2)
    evaluate = trainer._evaluate_and_log
    calls: list[int] = []

    def counted(logger):  # noqa: ANN001, ANN202
        calls.append(trainer.update_count)
        return evaluate(logger)

    trainer._evaluate_and_log = counted  # type: ignore[method-assign]
    trainer.learn()
    assert calls == [0, 2, 4]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["after"] == trainer.extra_state["final_eval"] and report["updates"] == 4
    assert [h["update"] for h in trainer.history if "eval/success_rate" in h] == [0, 2, 4]


def test_a_fresh_run_refuses_a_run_dir_that_holds_a_run(synth, tmp_path: Path) -> None:
    make("reinforce", synth, tmp_path, total_updates=1).learn()
    lines = (tmp_path / "progress.csv").read_text()
    with pytest.raises(ValueError, match="already holds a run.*--resume"):
        make("reinforce", synth, tmp_path, total_updates=1)
    assert (tmp_path / "progress.csv").read_text() == lines  # the old log is untouched


def test_resume_keeps_the_runs_own_settings(synth, tmp_path: Path) -> None:
    from agents.lm.trainer import ConfigError
    from agents.train import parse_args

    make("ppo", synth, tmp_path, total_updates=2, checkpoint_every=1, num_envs=8).learn()
    # The CLI reads the run's config.json: only the flags given now differ.
    _, cfg = parse_args(
        ["--algo", "ppo", "--run-dir", str(tmp_path), "--resume", "--total-updates", "3"]
    )
    assert (cfg.env_id, cfg.model, cfg.num_envs, cfg.learning_rate) == (
        SYNTH_ID, synth["model"], 8, 1e-2,
    )  # fmt: skip
    assert cfg.total_updates == 3 and cfg.resume
    # The Python API refuses a checkpoint trained with other settings.
    with pytest.raises(ConfigError, match=r"num_envs=8 \(now 16\)"):
        make("ppo", synth, tmp_path, num_envs=16, resume=True)


def test_checkpoint_is_written_atomically(tmp_path: Path) -> None:
    from agents.common.checkpoint import load_checkpoint, save_checkpoint

    path = tmp_path / "checkpoint.safetensors"
    save_checkpoint(path, {"model": {"w": torch.ones(2)}, "update": 1})
    save_checkpoint(path, {"model": {"w": torch.zeros(2)}, "update": 2})
    assert load_checkpoint(tmp_path)["update"] == 2
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp files left


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--algo", "ppx"], "Unknown algorithm 'ppx'. Did you mean 'ppo'?"),
        (
            ["--algo", "ppo", "--lr", "1e-3"],
            "Unknown flag --lr for --algo ppo. Did you mean --learning-rate?",
        ),
        (["--algo", "grpo", "--time-budgt", "5"], "Did you mean --time-budget?"),
        (
            ["--algo", "grpo", "--env", "textgym/Reasoning-v9"],
            "Did you mean 'textgym/Reasoning-v1'?",
        ),
        (
            ["--algo", "ppo", "--env", "textgym/Copy-v0", "--run-dir", "{tmp}/none", "--resume"],
            "No checkpoint at",
        ),
        (
            ["--algo", "ppo", "--env", "textgym/Copy-v0", "--model", "{tmp}/missing"],
            "does not exist",
        ),
        (
            ["--algo", "ppo", "--env", "textgym/Copy-v0", "--model", "{model}"],
            "different tokenizer",
        ),
        (
            ["--algo", "grpo", "--env", "textgym/Copy-v0", "--num-envs", "6", "--group-size", "4"],
            "multiple of group_size",
        ),
    ],
)
def test_bad_input_fails_before_training(args, message, synth, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    argv = [a.format(tmp=tmp_path, model=synth["model"]) for a in args]
    assert (
        train_main(
            [*argv, "--run-dir", str(tmp_path / "run"), "--no-progress"]
            if "--run-dir" not in argv
            else [*argv, "--no-progress"]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert message in err
    assert not (tmp_path / "run" / "progress.csv").exists()


def test_cli_flags_come_from_the_config_dataclass(synth, tmp_path: Path) -> None:
    from agents.train import parse_args

    cls, cfg = parse_args(
        [
            "--algo",
            "ppo",
            "--env",
            "textgym/Copy-v0",
            "--kl-coef",
            "0.3",
            "--no-norm-adv",
            "--target-kl",
            "none",
        ]
    )
    assert cls is PPO and cfg.env_id == "textgym/Copy-v0" and cfg.kl_coef == 0.3
    assert cfg.norm_adv is False and cfg.target_kl is None
    _, gcfg = parse_args(["--algo", "grpo", "--loss-type", "grpo", "--scale-rewards"])
    assert gcfg.loss_type == "grpo" and gcfg.scale_rewards is True


def test_sft_loss_falls(tmp_path: Path) -> None:
    from agents.lm.supervised import SFTConfig, encode_demonstration, sft
    from textgym.tasks.demonstrations import generate_demonstrations

    tok = textgym.default_tokenizer()
    records = list(generate_demonstrations("textgym/Copy-v0", 64, noise=0.3, seed=0))
    seqs = [encode_demonstration(r, tok, 64) for r in records]
    ids, mask = seqs[0]
    # Agent tokens are exactly the turn and its <eot>.
    assert (
        tok.decode(ids[mask].tolist(), skip_special_tokens=True).strip() == records[0]["response"]
    )
    torch.manual_seed(0)
    model = tiny_gpt2(len(tok))
    losses: list[float] = []
    sft(model, seqs, SFTConfig(steps=60, batch_size=16, learning_rate=1e-2, warmup=5), pad_id=0,
        log=lambda step, m: losses.append(m["sft/loss"]), log_every=10)  # fmt: skip
    assert losses[-1] < 0.4 * losses[0], losses


@pytest.mark.slow
# accelerate is a runtime dependency: its CLI must be there, so no skip.
def test_accelerate_launch_two_cpu_processes(synth, tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    # A free port, not accelerate's fixed 29500: two test runs at once would collide on it.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [
        # accelerate 1.x: `--cpu` selects its single-process launcher; `--multi_gpu` is the
        # torchrun launcher, which on a machine without GPUs runs DDP over gloo (MULTI_CPU).
        # Our own --cpu keeps the processes on the CPU even when GPUs are present.
        # accelerate's CLI through this interpreter, not PATH: a venv run as
        # /path/to/venv/bin/python -m pytest without activation has no `accelerate` on PATH.
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--main_process_port", str(port), "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "agents.train",
        "--algo", "grpo", "--env", "textgym/Copy-v0", "--model", synth["default_vocab_model"],
        "--num-envs", "8", "--group-size", "4", "--total-updates", "2", "--eval-episodes", "8",
        "--threads", "1", "--run-dir", str(run), "--no-progress", "--no-tensorboard", "--cpu",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env=env, cwd=Path(__file__).parents[1]
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((run / "report.json").read_text())
    # Two processes each collected 8 episodes per update.
    assert report["episodes"] == 2 * 2 * 8
    assert (run / "checkpoint.safetensors").exists()


def test_lm_accuracy_eval_only_trains_nothing(synth, tmp_path: Path) -> None:
    from benchmarks.lm_accuracy import run_one

    report = run_one(
        "grpo", SYNTH_ID, seed=0, time_budget=60.0, eval_every=0, threads=1,
        run_root=tmp_path, model=synth["model"], total_updates=0,
    )  # fmt: skip
    assert report["algo"] == "eval-only" and report["updates"] == 0
    assert report["before"] == report["after"]
    assert {p["update"] for p in report["curve"]} == {0}
    assert report["curve"][0]["success_rate"] == report["before"]["eval/success_rate"]


def test_ppo_takes_values_from_the_rollout_and_final_values_on_demand(
    synth, tmp_path: Path
) -> None:
    trainer = make("ppo", synth, tmp_path, num_envs=6, bootstrap_truncated=True)
    torch.nn.init.normal_(trainer.policy.value_head.weight)  # non-zero values to compare
    episodes = trainer.collect()
    assert all(e.values is not None for e in episodes)
    from agents.common.rollout import make_batch

    batch = make_batch(episodes, pad_id=0, eot_id=1)
    with torch.no_grad():
        full = trainer.policy(batch.input_ids, batch.attention_mask).values
        want = full.gather(1, batch.last_index[:, None]).squeeze(1)
        needed = torch.zeros_like(batch.truncated)
        needed[::2] = True
        got = trainer._final_values(batch, needed)
    torch.testing.assert_close(got[needed], want[needed], atol=1e-5, rtol=1e-5)
    assert (got[~needed] == 0).all()
