"""Safety of training runs: files that cannot run code, faults survived, bad input refused.

* Checkpoints cannot carry code: a pickle that would create a marker file is refused and the
  marker never appears; the safetensors format round-trips every state exactly.
* A tabular file's header never decides where textgym writes; tabular saves are atomic; an
  old ``.npz`` (which could hold pickled arrays) is refused without being opened.
* ``textgym train`` survives faults with nothing lost: a second process on a run directory is
  refused, a kill between the final model and the report is finished on resume, leftovers of
  killed writes are cleaned, a read-only directory or a full disk is a clear error, and the
  logger's files are closed on every path.
* A parametrised sweep (one row per bad input: ``textgym train`` flags, Python configs,
  tabular arguments, bad checkpoint and tabular files) asserts the error type and message.
  :func:`outcome` runs one row and is deliberately independent of the new APIs, so the same
  rows can be classified on an older checkout of textgym.
"""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import test_agents_lm
import torch
from test_agents_lm import SYNTH_ID, make, tiny_gpt2
from test_tabular import rewrite_checkpoint

from agents.common.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from agents.tabular import CheckpointError as TabularCheckpointError
from agents.tabular import QLearning
from agents.tabular import load as load_tabular
from agents.train import main as train_main
from tests.helpers import locked_by_another_process
from textgym.errors import ConfigError, UserError

MARKER_NAME = "CODE_RAN"
#: The tiny synthetic env and GPT-2 of the LM agent tests (a module-scoped fixture).
synth = test_agents_lm.synth


class Evil:
    """Unpickling this object creates a marker file: proof that a loader ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


def write_evil_pickles(directory: Path) -> dict[str, Path]:
    """A torch.save zip and a bare pickle, each carrying :class:`Evil` under a 'model' key."""
    directory.mkdir(parents=True, exist_ok=True)
    marker = directory / MARKER_NAME
    zipped = directory / "checkpoint.pt"
    torch.save({"model": Evil(marker), "update": 1}, zipped)
    bare = directory / "bare.pkl"
    bare.write_bytes(pickle.dumps({"model": Evil(marker)}))
    return {"zip": zipped, "bare": bare, "marker": marker}


# -- checkpoints --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["zip", "bare"])
def test_a_malicious_pickle_checkpoint_is_refused_and_runs_nothing(tmp_path: Path, kind) -> None:  # noqa: ANN001
    files = write_evil_pickles(tmp_path / "run")
    with pytest.raises(CheckpointError, match="older textgym.*pickle.*not opened"):
        load_checkpoint(files[kind])
    # Under the new name too: the content decides, and safetensors never unpickles.
    disguised = tmp_path / "run" / "checkpoint.safetensors"
    disguised.write_bytes(files[kind].read_bytes())
    with pytest.raises(CheckpointError, match=str(disguised)):
        load_checkpoint(disguised)
    assert not files["marker"].exists()


def test_resume_from_a_run_dir_with_a_malicious_checkpoint_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = write_evil_pickles(tmp_path / "run")
    code = train_main(
        ["--algo", "ppo", "--env", "textgym/Copy-Tiny-v0", "--run-dir", str(tmp_path / "run"),
         "--resume", "--no-progress"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "older textgym" in err and "checkpoint.pt" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not files["marker"].exists()


def test_an_old_format_checkpoint_gets_a_clear_message(tmp_path: Path) -> None:
    # What textgym wrote before: a plain torch.save of tensors and numbers.
    torch.save({"model": {"w": torch.ones(2)}, "update": 3}, tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt.*older textgym.*new run"):
        load_checkpoint(tmp_path)


def test_damaged_and_foreign_checkpoints_name_the_file_and_the_reason(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    good = save_checkpoint(tmp_path / "good.safetensors", {"model": {"w": torch.ones(4)}})
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[:40])
    with pytest.raises(CheckpointError, match="cut.safetensors.*not a readable"):
        load_checkpoint(cut)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.ones(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="foreign.safetensors.*not a textgym checkpoint"):
        load_checkpoint(foreign)
    # A header whose JSON points at a tensor the file does not hold.
    tampered = tmp_path / "tampered.safetensors"
    save_file(
        {"t0": torch.ones(1)},
        str(tampered),
        metadata={"format": "textgym-lm-checkpoint", "version": "1",
                  "state": json.dumps({"model": {"__tensor__": "t9"}})},
    )  # fmt: skip
    with pytest.raises(CheckpointError, match="tampered.safetensors.*damaged"):
        load_checkpoint(tampered)


def test_the_checkpoint_format_round_trips_every_kind_of_state(tmp_path: Path) -> None:
    import random

    from agents.common.checkpoint import rng_state

    shared = torch.arange(6.0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    state = {
        "model": {"a": shared, "tied": shared, "view": shared[2:4]},
        "optimizer": opt.state_dict(),
        "rng": [rng_state()],
        "seed_rng": np.random.default_rng(3).bit_generator.state,
        "counts": (1, 2.5, None, "x", True),
        "inf": float("inf"),
    }
    save_checkpoint(tmp_path / "c.safetensors", state)
    back = load_checkpoint(tmp_path / "c.safetensors")
    assert torch.equal(back["model"]["view"], shared[2:4]) and back["counts"] == state["counts"]
    assert back["model"]["a"] is back["model"]["tied"]  # stored once, as torch ties them
    assert back["seed_rng"] == state["seed_rng"] and back["inf"] == float("inf")
    # Every RNG restored draws exactly what the saved one would have drawn.
    saved = state["rng"][0]
    random.setstate(back["rng"][0]["python"])
    after_restore = random.random()
    random.setstate(saved["python"])
    assert random.random() == after_restore
    np.random.set_state(back["rng"][0]["numpy"])
    assert isinstance(back["rng"][0]["numpy"], tuple)
    assert torch.equal(back["rng"][0]["torch"], saved["torch"])
    fresh = torch.optim.AdamW(model.parameters(), lr=1.0)
    fresh.load_state_dict(back["optimizer"])
    assert fresh.param_groups[0]["betas"] == (0.9, 0.95)
    for k, v in opt.state_dict()["state"][0].items():
        assert torch.equal(fresh.state_dict()["state"][0][k], v)


def test_a_checkpoint_write_on_a_full_disk_keeps_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from textgym.files import WriteError

    path = save_checkpoint(tmp_path / "checkpoint.safetensors", {"model": {}, "update": 1})

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(WriteError, match="disk is full"):
        save_checkpoint(path, {"model": {}, "update": 2})
    monkeypatch.undo()
    assert load_checkpoint(tmp_path)["update"] == 1
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


# -- tabular files ------------------------------------------------------------------------


def _rewrite_header(path: Path, out: Path, **changes: Any) -> Path:
    """A tabular checkpoint whose header's hyper-parameters say ``changes``."""

    def edit(state: dict[str, Any]) -> None:
        state["agent"]["hyperparameters"].update(changes)

    return rewrite_checkpoint(path, out, edit)


def test_a_tabular_header_never_decides_where_textgym_writes(tmp_path: Path) -> None:
    path = QLearning("textgym/Copy-Tiny-v0", seed=0).learn(200).save(tmp_path / "q")
    elsewhere = tmp_path / "elsewhere"
    evil = _rewrite_header(path, tmp_path / "evil.safetensors", log_dir=str(elsewhere))
    with pytest.raises(
        TabularCheckpointError, match="evil.safetensors.*'log_dir'.*never decides where"
    ):
        load_tabular(evil, env="textgym/Copy-Tiny-v0")
    with pytest.raises(TabularCheckpointError, match="'tensorboard'"):
        load_tabular(_rewrite_header(path, tmp_path / "tb.safetensors", tensorboard=True))
    assert not elsewhere.exists()
    # The caller decides: an honest file logs where load() is told to.
    mine = tmp_path / "mine"
    agent = load_tabular(path, env="textgym/Copy-Tiny-v0", log_dir=mine, tensorboard=False)
    agent.learn(1_100)
    assert (mine / "progress.csv").exists() and not elsewhere.exists()


def test_a_tabular_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from textgym.files import WriteError

    agent = QLearning("textgym/Copy-Tiny-v0", seed=0).learn(300)
    path = agent.save(tmp_path / "q")
    before = path.read_bytes()
    agent.learn(300, reset_num_timesteps=False)

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(WriteError, match="q.safetensors.*disk is full"):
        agent.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before  # the previous checkpoint, whole
    assert [p.name for p in tmp_path.iterdir()] == ["q.safetensors"]  # no temporary file left
    assert load_tabular(path).num_timesteps == 300


def test_tabular_learn_closes_its_log_when_it_fails(tmp_path: Path) -> None:
    agent = QLearning("textgym/Copy-Tiny-v0", seed=0, log_dir=tmp_path, tensorboard=False)

    def broken(*args: Any) -> None:
        raise RuntimeError("boom")

    agent._observe = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="boom"):
        agent.learn(100)
    assert agent._logger is None  # closed and dropped, not leaked


# -- faults in textgym train --------------------------------------------------------------


def test_a_second_process_on_a_run_dir_is_refused(
    synth,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],  # noqa: ANN001
) -> None:
    run = tmp_path / "run"
    with locked_by_another_process(run) as pid:
        code = train_main(
            ["--algo", "reinforce", "--env", SYNTH_ID, "--model", synth["model"],
             "--num-envs", "4", "--total-updates", "1", "--run-dir", str(run), "--no-progress",
             "--no-tensorboard"]
        )  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and "in use by another process" in err and f"pid {pid}" in err
        assert "Traceback" not in err and not (run / "progress.csv").exists()
    # In one process too: a trainer holds its run directory until learn() ends.
    first = make("reinforce", synth, run, num_envs=4, total_updates=1)
    from textgym.files import DirectoryInUseError

    with pytest.raises(DirectoryInUseError, match="--run-dir"):
        make("reinforce", synth, run, num_envs=4, total_updates=1)
    first.learn()
    assert (run / "report.json").exists()


def test_a_kill_between_the_final_model_and_the_report_is_finished_on_resume(
    synth,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
) -> None:
    from agents.lm.trainer import LMTrainer

    settings = dict(num_envs=4, total_updates=2, checkpoint_every=1)
    written = LMTrainer._write_final_model

    def model_then_killed(self: LMTrainer) -> None:
        written(self)
        raise KeyboardInterrupt("killed after the final model, before the report")

    monkeypatch.setattr(LMTrainer, "_write_final_model", model_then_killed)
    with pytest.raises(KeyboardInterrupt):
        make("reinforce", synth, tmp_path, **settings).learn()
    monkeypatch.undo()
    assert (tmp_path / "final_model").is_dir() and not (tmp_path / "report.json").exists()
    # Leftovers of a write that a kill -9 interrupted (atomic_write's and the model's).
    (tmp_path / ".checkpoint.safetensors.x1y2.tmp").write_bytes(b"half")
    (tmp_path / ".final_model.z3.tmp").mkdir()
    (tmp_path / ".final_model.z3.tmp" / "config.json").write_text("{")
    resumed = make("reinforce", synth, tmp_path, **settings, resume=True).learn()
    report = json.loads((tmp_path / "report.json").read_text())
    assert resumed.update_count == 2 and report["updates"] == 2
    assert not list(tmp_path.glob(".*.tmp"))
    # The final evaluation was kept from the checkpoint, not logged a second time.
    from agents.common import read_log

    finals = [s for s, _, _ in read_log(tmp_path)["eval/success_rate"] if s == 2]
    assert finals == [2]
    # Now it is finished, and a resume says so.
    with pytest.raises(ConfigError, match="already made 2 of its --total-updates 2"):
        make("reinforce", synth, tmp_path, **settings, resume=True)


def test_a_read_only_run_dir_is_a_clear_error(
    synth,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],  # noqa: ANN001
) -> None:
    run = tmp_path / "ro"
    run.mkdir()
    run.chmod(0o555)
    real_open = os.open

    def read_only(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        # root ignores permission bits: the read-only filesystem is simulated for it.
        if str(path).startswith(str(run)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args, **kwargs)

    if os.geteuid() == 0:
        monkeypatch.setattr(os, "open", read_only)
    try:
        code = train_main(
            ["--algo", "reinforce", "--env", SYNTH_ID, "--model", synth["model"],
             "--num-envs", "4", "--total-updates", "1", "--run-dir", str(run), "--no-progress"]
        )  # fmt: skip
    finally:
        monkeypatch.undo()
        run.chmod(0o755)
    err = capsys.readouterr().err
    assert code == 2 and "not writable" in err and str(run) in err and "Traceback" not in err


def test_the_logger_is_closed_when_training_fails(synth, tmp_path: Path) -> None:  # noqa: ANN001
    trainer = make("reinforce", synth, tmp_path, num_envs=4, total_updates=3)

    def crash(batch: Any, episodes: Any) -> dict[str, float]:
        raise RuntimeError("bug in an update")

    trainer.update = crash  # type: ignore[method-assign]
    opened: list[Any] = []
    import agents.lm.trainer as trainer_module

    class Recording(trainer_module.Logger):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            opened.append(self)

    original = trainer_module.Logger
    trainer_module.Logger = Recording  # type: ignore[misc]
    try:
        with pytest.raises(RuntimeError, match="bug in an update"):
            trainer.learn()
    finally:
        trainer_module.Logger = original  # type: ignore[misc]
    assert len(opened) == 1 and opened[0]._file is None  # closed
    # ...and the run directory was released: the next process may take it.
    from textgym.files import DirectoryLock

    DirectoryLock(tmp_path).acquire().release()


def test_logger_turns_a_full_disk_into_a_write_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agents.common import Logger
    from textgym.files import WriteError

    logger = Logger(tmp_path, tensorboard=False)
    logger.log(1, {"a": 1.0})

    class FullFile(io.StringIO):
        def flush(self) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

    real = logger._file
    monkeypatch.setattr(logger, "_file", FullFile())
    with pytest.raises(WriteError, match="progress.csv.*disk is full"):
        logger.log(2, {"a": 2.0})
    real.close()
    logger.close()
    assert logger._file is None


# -- the bad-input sweep ------------------------------------------------------------------

#: Flags every sweep row of `textgym train` adds first (tiny and fast, so that the few rows
#: an older textgym accepts finish in seconds); the row's own flags come after and win.
CLI_BASE = [
    "--env", "textgym/Copy-Tiny-v0", "--total-updates", "1", "--num-envs", "4",
    "--eval-episodes", "4", "--threads", "1", "--no-progress", "--no-tensorboard",
]  # fmt: skip


@dataclass(frozen=True)
class Row:
    """One input of the sweep.

    Attributes:
        name: The row's id.
        kind: ``cli`` (``textgym train`` flags), ``config`` (an LM config through the Python
            API), ``sft`` (SFTConfig), ``tabular`` (QLearning arguments), ``file`` (a bad
            file to load).
        payload: What the kind needs (see :func:`outcome`).
        error: The exception type expected (``None``: a valid input that must be accepted).
        fragment: Expected in the message (regular expression).
        field: The word a clear message names (used to classify an older textgym).
    """

    name: str
    kind: str
    payload: Any
    error: type[BaseException] | None
    fragment: str = ""
    field: str = ""


def _cli(algo: str, flags: list[str], fragment: str, field_name: str) -> Row:
    return Row(
        f"cli-{algo}-{'_'.join(f.strip('-') for f in flags)}",
        "cli",
        (algo, flags),
        UserError,
        fragment,
        field_name,
    )


def _cfg(algo: str, kwargs: dict[str, Any], fragment: str, field_name: str) -> Row:
    name = "_".join(f"{k}={v}" for k, v in kwargs.items())
    return Row(f"config-{algo}-{name}", "config", (algo, kwargs), ConfigError, fragment, field_name)


def _valid_cfg(name: str, algo: str, kwargs: dict[str, Any]) -> Row:
    """A valid config at the edges of the ranges: it must be accepted."""
    return Row(name, "config", (algo, kwargs), None)


ROWS: list[Row] = [
    # textgym train: every range the issue names, as the user types it.
    _cli("ppo", ["--max-grad-norm", "-2"], r"--max-grad-norm .*> 0", "grad"),
    _cli("ppo", ["--max-grad-norm", "0"], r"--max-grad-norm .*> 0", "grad"),
    _cli("ppo", ["--max-grad-norm", "inf"], r"--max-grad-norm .*finite", "grad"),
    _cli("ppo", ["--learning-rate", "nan"], r"--learning-rate .*\(0, 1\]", "learning"),
    _cli("ppo", ["--learning-rate", "0"], r"--learning-rate .*\(0, 1\]", "learning"),
    _cli("ppo", ["--learning-rate", "5"], r"--learning-rate .*\(0, 1\]", "learning"),
    _cli("ppo", ["--temperature", "0"], r"--temperature .*> 0", "temperature"),
    _cli("ppo", ["--temperature", "inf"], r"--temperature .*finite", "temperature"),
    _cli("ppo", ["--kl-coef", "-0.1"], r"--kl-coef .*>= 0", "kl"),
    _cli("ppo", ["--kl-coef", "nan"], r"--kl-coef .*finite", "kl"),
    _cli("ppo", ["--ent-coef", "-1"], r"--ent-coef .*>= 0", "ent"),
    _cli("ppo", ["--vf-coef", "nan"], r"--vf-coef .*>= 0", "vf"),
    _cli("ppo", ["--clip-coef", "0"], r"--clip-coef .*\(0, 1\]", "clip"),
    _cli("ppo", ["--clip-coef", "-0.2"], r"--clip-coef .*\(0, 1\]", "clip"),
    _cli("ppo", ["--vf-clip", "-1"], r"--vf-clip .*> 0", "vf_clip"),
    _cli("ppo", ["--gae-lambda", "1.5"], r"--gae-lambda .*\[0, 1\]", "lambda"),
    _cli("ppo", ["--gamma", "-1"], r"--gamma .*\[0, 1\]", "gamma"),
    _cli("ppo", ["--target-kl", "0"], r"--target-kl .*> 0, or None", "target_kl"),
    _cli("ppo", ["--kl-target", "0"], r"--kl-target .*> 0", "kl_target"),
    _cli("ppo", ["--kl-horizon", "0"], r"--kl-horizon .*>= 1", "horizon"),
    _cli("ppo", ["--update-epochs", "0"], r"--update-epochs .*>= 1", "epochs"),
    _cli("ppo", ["--num-minibatches", "0"], r"--num-minibatches .*>= 1", "minibatches"),
    _cli("ppo", ["--time-budget", "-5"], r"--time-budget .*>= 0", "time"),
    _cli("ppo", ["--time-budget", "nan"], r"--time-budget .*finite", "time"),
    _cli("ppo", ["--total-updates", "-1"], r"--total-updates .*>= 0", "total"),
    _cli("ppo", ["--num-envs", "0"], r"--num-envs .*>= 1", "num_envs"),
    _cli("ppo", ["--eval-episodes", "0"], r"--eval-episodes .*>= 1", "eval"),
    _cli("ppo", ["--eval-every", "-1"], r"--eval-every .*>= 0", "eval"),
    _cli("ppo", ["--checkpoint-every", "-1"], r"--checkpoint-every .*>= 0", "checkpoint"),
    _cli("ppo", ["--rounds-per-update", "0"], r"--rounds-per-update .*>= 1", "rounds"),
    _cli("ppo", ["--threads", "0"], r"--threads .*>= 1", "threads"),
    _cli("ppo", ["--seed", "-1"], r"--seed .*\[0, 4294967295\]", "seed"),
    _cli("ppo", ["--seed", "4294967296"], r"--seed .*\[0, 4294967295\]", "seed"),
    _cli("ppo", ["--seed", "abc"], r"--seed: invalid int value: 'abc'", "seed"),
    _cli("ppo", ["--learning-rate", "fast"], r"--learning-rate: invalid float", "learning"),
    _cli("grpo", ["--group-size", "1"], r"--group-size .*>= 2", "group_size"),
    _cli("grpo", ["--group-size", "3"], r"multiple of group_size=3", "group_size"),
    _cli("grpo", ["--num-iterations", "0"], r"--num-iterations .*>= 1", "iterations"),
    _cli("grpo", ["--loss-type", "mean"], r"--loss-type: invalid choice: 'mean'", "loss"),
    _cli("reinforce", ["--gamma", "2"], r"--gamma .*\[0, 1\]", "gamma"),
    _cli("reinforce", ["--num-envs", "1"], r"at least 2 episodes per update", "episodes"),
    # The Python API: the same checks, before any model is loaded.
    _cfg("ppo", {"max_grad_norm": -2.0}, r"--max-grad-norm \(max_grad_norm\) got -2", "grad"),
    _cfg("ppo", {"learning_rate": float("inf")}, r"--learning-rate", "learning"),
    _cfg("ppo", {"seed": 2**32}, r"--seed .*4294967295", "seed"),
    _cfg("ppo", {"seed": 1.5}, r"--seed .*an int", "seed"),
    _cfg("ppo", {"num_envs": True}, r"--num-envs .*an int", "num_envs"),
    _cfg("ppo", {"total_updates": 2.5}, r"--total-updates .*an int", "total"),
    _cfg("ppo", {"resume": "no"}, r"--resume .*True or False", "resume"),
    _cfg("ppo", {"vf_lr_scale": 0.0}, r"--vf-lr-scale .*> 0", "vf_lr"),
    _cfg("ppo", {"num_minibatches": 64}, r"--num-minibatches 64 exceeds", "minibatches"),
    _cfg("grpo", {"kl_coef": -1.0}, r"--kl-coef .*>= 0", "kl"),
    _cfg("grpo", {"clip_coef": float("nan")}, r"--clip-coef", "clip"),
    _cfg("grpo", {"num_minibatches": 99}, r"--num-minibatches 99 must be in \[1, 4\]", "minibatch"),
    _cfg("reinforce", {"temperature": -1.0}, r"--temperature .*> 0", "temperature"),
    _cfg("reinforce", {"missing_end_penalty": float("nan")}, r"--missing-end-penalty", "penalty"),
    Row("sft-max_grad_norm", "sft", {"max_grad_norm": -2.0}, ConfigError,
        r"--max-grad-norm .*> 0", "grad"),
    Row("sft-learning_rate", "sft", {"learning_rate": float("nan")}, ConfigError,
        r"--learning-rate .*\(0, 1\]", "learning"),
    Row("sft-steps", "sft", {"steps": 0}, ConfigError, r"--steps .*>= 1", "steps"),
    Row("sft-batch_size", "sft", {"batch_size": 0}, ConfigError, r"--batch-size .*>= 1", "batch"),
    Row("sft-warmup", "sft", {"warmup": -1}, ConfigError, r"--warmup .*>= 0", "warmup"),
    Row("sft-seed", "sft", {"seed": -3}, ConfigError, r"--seed .*\[0, 4294967295\]", "seed"),
    Row("sft-schedule", "sft", {"schedule": "linear"}, ConfigError, r"'constant', 'cosine'",
        "schedule"),
    # Tabular agents' arguments.
    Row("tabular-learning_rate-nan", "tabular", {"learning_rate": float("nan")}, ConfigError,
        r"learning_rate must be a number in \(0, 1\]", "learning_rate"),
    Row("tabular-gamma", "tabular", {"gamma": 1.5}, ConfigError, r"gamma .*\[0, 1\]", "gamma"),
    Row("tabular-epsilon", "tabular", {"epsilon_start": -0.1}, ConfigError,
        r"epsilon_start .*\[0, 1\]", "epsilon"),
    Row("tabular-initial_q", "tabular", {"initial_q": float("inf")}, ConfigError,
        r"initial_q must be a finite number", "initial_q"),
    Row("tabular-seed-big", "tabular", {"seed": 2**40}, ConfigError,
        r"seed must be an int in \[0, 4294967295\]", "seed"),
    Row("tabular-tensorboard", "tabular", {"tensorboard": "no"}, ConfigError,
        r"tensorboard must be True, False or None", "tensorboard"),
    # Files.
    Row("file-lm-evil-zip", "file", "lm_evil_zip", CheckpointError, r"older textgym", "pickle"),
    Row("file-lm-evil-bare", "file", "lm_evil_bare", CheckpointError, r"older textgym",
        "pickle"),
    Row("file-lm-cli-resume-evil", "file", "lm_cli_resume_evil", UserError, r"older textgym",
        "pickle"),
    Row("file-lm-truncated", "file", "lm_truncated", CheckpointError,
        r"not a readable textgym checkpoint", "readable"),
    Row("file-lm-garbage", "file", "lm_garbage", CheckpointError,
        r"not a readable textgym checkpoint", "readable"),
    Row("file-lm-cli-torn-config", "file", "lm_cli_torn_config", UserError,
        r"config.json.*not a readable run config", "config.json"),
    Row("file-tabular-log-dir", "file", "tabular_log_dir", TabularCheckpointError,
        r"'log_dir'.*never decides where", "log_dir"),
    Row("file-tabular-tensorboard", "file", "tabular_tensorboard", TabularCheckpointError,
        r"'tensorboard'", "tensorboard"),
    Row("file-tabular-unknown-key", "file", "tabular_unknown_key", TabularCheckpointError,
        r"unknown hyper-parameter 'surprise' in its header", "surprise"),
    Row("file-tabular-bad-value", "file", "tabular_bad_value", TabularCheckpointError,
        r"invalid hyper-parameters in its header: learning_rate", "learning_rate"),
    Row("file-tabular-pickled-npz", "file", "tabular_pickled_npz", TabularCheckpointError,
        r"bad\.npz.*older textgym.*does not open", "npz"),
    Row("file-tabular-disguised-pickle", "file", "tabular_disguised_pickle",
        TabularCheckpointError, r"older textgym.*not opened", "pickle"),
    # Valid inputs at the edges of the ranges: must be accepted.
    _valid_cfg("config-ppo-defaults", "ppo", {}),
    _valid_cfg("config-ppo-edges", "ppo", {"seed": 2**32 - 1, "max_grad_norm": 1e6,
               "time_budget": 0.0, "target_kl": None, "learning_rate": 1.0}),
    _valid_cfg("config-ppo-numpy-and-int-values", "ppo",
               {"seed": np.int64(7), "gamma": 1, "kl_coef": 0}),
    _valid_cfg("config-grpo-edges", "grpo",
               {"group_size": 2, "kl_coef": 0.0, "num_minibatches": 4}),
    Row("sft-defaults", "sft", {}, None),
    Row("tabular-edges", "tabular", {"learning_rate": 1.0, "gamma": 0.0, "seed": 2**32 - 1},
        None),
]  # fmt: skip


def build_file(what: str, tmp: Path, synth: dict[str, str]) -> tuple[Any, Path | None]:
    """Make a bad file for row ``what``; returns a callable that loads it and the marker
    file that must never appear (``None`` when there is none)."""
    if what.startswith("lm_evil") or what == "lm_cli_resume_evil":
        files = write_evil_pickles(tmp / "run")
        if what == "lm_cli_resume_evil":
            argv = ["--algo", "ppo", *CLI_BASE, "--run-dir", str(tmp / "run"), "--resume"]
            return (lambda: train_main(argv)), files["marker"]
        target = files["zip" if what == "lm_evil_zip" else "bare"]
        return (lambda: load_checkpoint(target)), files["marker"]
    if what == "lm_truncated":
        good = save_checkpoint(tmp / "good.ckpt", {"model": {"w": torch.ones(64)}, "update": 1})
        cut = tmp / "cut.ckpt"
        cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
        return (lambda: load_checkpoint(cut)), None
    if what == "lm_garbage":
        junk = tmp / "junk.ckpt"
        junk.write_bytes(bytes(range(256)) * 4)
        return (lambda: load_checkpoint(junk)), None
    if what == "lm_cli_torn_config":
        run = tmp / "run"
        run.mkdir()
        (run / "config.json").write_text('{"env_id": "textgym/Copy-Tiny-v0", "se')
        argv = ["--algo", "ppo", "--run-dir", str(run), "--resume", "--no-progress"]
        return (lambda: train_main(argv)), None
    if what.startswith("tabular"):
        path = QLearning("textgym/Copy-Tiny-v0", seed=0).learn(200).save(tmp / "q")
        marker = tmp / "elsewhere"
        if what == "tabular_pickled_npz":
            # An old-style .npz whose array unpickles to code: never opened.
            np.savez(tmp / "bad.npz", q=np.array([Evil(tmp / MARKER_NAME)], dtype=object))
            return (lambda: load_tabular(tmp / "bad.npz")), tmp / MARKER_NAME
        if what == "tabular_disguised_pickle":
            disguised = tmp / "bad.safetensors"
            disguised.write_bytes(pickle.dumps({"model": Evil(tmp / MARKER_NAME)}))
            return (lambda: load_tabular(disguised)), tmp / MARKER_NAME
        changes = {
            "tabular_log_dir": {"log_dir": str(marker)},
            "tabular_tensorboard": {"tensorboard": "yes", "log_dir": None},
            "tabular_unknown_key": {"surprise": 1},
            "tabular_bad_value": {"learning_rate": 7.0},
        }[what]
        bad = _rewrite_header(path, tmp / "bad.safetensors", **changes)

        def load_and_learn() -> Any:
            # An older textgym follows the header: learning then writes where it says.
            agent = load_tabular(bad, env="textgym/Copy-Tiny-v0")
            agent.log_interval = 10
            return agent.learn(50)

        return load_and_learn, marker if what == "tabular_log_dir" else None
    raise KeyError(what)


def outcome(row: Row, tmp: Path, synth: dict[str, str]) -> dict[str, Any]:
    """Run one row: ``{"raised": exc or None, "code": exit status or None, "err": stderr,
    "marker": whether a marker file appeared}`` (``err`` is captured by the caller)."""
    result: dict[str, Any] = {"raised": None, "code": None, "marker": False}
    marker: Path | None = None
    try:
        if row.kind == "cli":
            algo, flags = row.payload
            extra = ["--group-size", "2"] if algo == "grpo" else []
            argv = ["--algo", algo, *CLI_BASE, *extra, *flags, "--run-dir", str(tmp / "run")]
            result["code"] = train_main(argv)
        elif row.kind == "config":
            algo, kwargs = row.payload
            base = {"num_envs": 8, "total_updates": 1} | (
                {"group_size": 2} if algo == "grpo" else {}
            )
            trainer = make(algo, synth, tmp / "run", **{**base, **kwargs})
            getattr(trainer, "close", lambda: None)()
        elif row.kind == "sft":
            from agents.lm.supervised import SFTConfig, sft

            config = SFTConfig(**{"steps": 2, "batch_size": 2, "warmup": 1, **row.payload})
            ids = np.array([3, 4, 5, 6], dtype=np.int64)
            mask = np.array([False, True, True, True])
            torch.manual_seed(0)
            sft(tiny_gpt2(16), [(ids, mask)] * 4, config, pad_id=0)
        elif row.kind == "tabular":
            QLearning("textgym/Copy-Tiny-v0", **row.payload).learn(50)
        elif row.kind == "file":
            run, marker = build_file(row.payload, tmp, synth)
            value = run()
            if isinstance(value, int):
                result["code"] = value
        else:
            raise KeyError(row.kind)
    except SystemExit as exc:  # argparse's own exit, in an older textgym
        result["code"] = exc.code
    except Exception as exc:  # noqa: BLE001 - the row's outcome, classified by the caller
        result["raised"] = exc
    result["marker"] = marker is not None and marker.exists()
    return result


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_bad_input_sweep(
    row: Row,
    synth,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],  # noqa: ANN001
) -> None:
    got = outcome(row, tmp_path, synth)
    err = capsys.readouterr().err
    assert not got["marker"], "a loaded file ran code or redirected a write"
    if row.error is None:
        assert got["raised"] is None and got["code"] in (None, 0), (got, err)
        return
    if got["code"] is not None or row.kind == "cli":
        # The command line: one line, exit status 2, no traceback.
        assert got["raised"] is None, got["raised"]
        assert got["code"] == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("textgym train: error: "), err
        assert "Traceback" not in err
        assert re.search(row.fragment, lines[0]), lines[0]
        assert not (tmp_path / "run" / "progress.csv").exists()
        return
    assert isinstance(got["raised"], row.error), repr(got["raised"])
    assert isinstance(got["raised"], UserError), repr(got["raised"])
    assert re.search(row.fragment, str(got["raised"])), str(got["raised"])


def test_the_sweep_covers_every_kind_of_input() -> None:
    kinds = {r.kind for r in ROWS}
    assert kinds == {"cli", "config", "sft", "tabular", "file"}
    assert len({r.name for r in ROWS}) == len(ROWS)  # ids are unique
    assert sum(r.error is None for r in ROWS) >= 5  # valid edges are in the table too


def test_a_lock_on_a_full_disk_is_a_write_error_and_leaves_no_lock_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from textgym.files import DirectoryLock, WriteError

    def full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(WriteError, match="disk is full"):
        DirectoryLock(tmp_path).acquire()
    monkeypatch.undo()
    lock = DirectoryLock(tmp_path).acquire()  # the failed attempt left nothing held
    assert lock.held
    lock.release()


def test_a_run_killed_before_its_first_checkpoint_can_start_afresh(tmp_path: Path) -> None:
    from textgym import runs

    (tmp_path / "progress.csv").write_text("step,wall_time,key,value\n0,0.1,eval/x,1.0\n")
    with pytest.raises(CheckpointError, match="No checkpoint"):
        runs.check_start(tmp_path, resume=True)
    runs.check_start(tmp_path, resume=False)  # nothing to resume: a fresh start may go
    assert not (tmp_path / "progress.csv").exists()
    # With a checkpoint the old run is resumable, so a fresh start is still refused.
    (tmp_path / "progress.csv").write_text("step,wall_time,key,value\n")
    save_checkpoint(tmp_path / "checkpoint.safetensors", {"model": {}, "update": 1})
    with pytest.raises(ConfigError, match="already holds a run"):
        runs.check_start(tmp_path, resume=False)


def test_a_crafted_deep_header_or_a_directory_is_a_checkpoint_error(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from agents.common.checkpoint import CHECKPOINT_FORMAT, FORMAT_VERSION

    deep = tmp_path / "deep"
    deep.mkdir()
    header = {"format": CHECKPOINT_FORMAT, "version": str(FORMAT_VERSION)}
    header["state"] = "[" * 5000 + "]" * 5000  # deeper than json can recurse
    save_file({"w": torch.zeros(1)}, str(deep / "checkpoint.safetensors"), metadata=header)
    with pytest.raises(CheckpointError, match="is damaged"):
        load_checkpoint(deep)
    folder = tmp_path / "folder"
    (folder / "checkpoint.safetensors").mkdir(parents=True)
    with pytest.raises(CheckpointError, match="is not a file"):
        load_checkpoint(folder)


def test_the_logger_writes_tensorboard_events_when_asked(tmp_path: Path) -> None:
    # The `tensorboard` extra, installed by .ci/run: the same metrics reach the event file.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from agents.common import Logger

    with Logger(tmp_path, tensorboard=True) as logger:
        logger.log(3, {"charts/success_rate": 0.5})
    events = list(tmp_path.glob("events.out.tfevents.*"))
    assert events, list(tmp_path.iterdir())
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("charts/success_rate")] == [(3, 0.5)]


def test_an_atomic_write_gets_the_mode_of_a_new_file(tmp_path: Path) -> None:
    import os
    import stat

    from textgym.files import atomic_write

    written = atomic_write(tmp_path / "results.json", "{}")
    plain = tmp_path / "plain.json"
    plain.write_text("{}")
    assert stat.S_IMODE(os.stat(written).st_mode) == stat.S_IMODE(os.stat(plain).st_mode)
