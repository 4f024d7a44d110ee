"""The one run directory of every learner, and tabular training through ``textgym train``.

* ``textgym train --algo qlearning|sarsa`` writes the run format (``config.json``,
  ``progress.csv``, ``checkpoint.safetensors``, last ``report.json``), learns Copy-Tiny-v0
  far above chance, resumes a killed run exactly, and refuses what the LM trainer refuses: a
  finished run, a fresh run in a used directory, a locked directory, a torn config, a
  tampered or pickled checkpoint. Each refusal is one ``textgym train: error:`` line.
* Supervised fine-tuning writes the same format and resumes to the uninterrupted weights.
* :mod:`textgym.runs` on its own: a failed start leaves nothing, strict JSON, the rules of
  a run without checkpoints.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from test_agents_lm import tiny_gpt2
from test_safety_runs import MARKER_NAME, Evil
from test_tabular import rewrite_checkpoint

from agents.baselines import RandomAgent
from agents.common import read_log
from agents.lm.supervised import SFTConfig, sft
from agents.tabular import SARSA, QLearning, load
from agents.tabular.run import QLearningRun, TabularConfig
from agents.train import main as train_main
from agents.train import parse_args
from tests.helpers import locked_by_another_process
from textgym import runs
from textgym.errors import ConfigError
from textgym.files import DirectoryInUseError

ENV = "textgym/Copy-Tiny-v0"
RUN_FILES = {".lock", "config.json", "progress.csv", "checkpoint.safetensors", "report.json"}


def train(run: Path, *flags: str, algo: str = "qlearning") -> int:
    """``textgym train`` with a tabular algorithm, quiet and small unless ``flags`` say."""
    argv = ["--algo", algo, "--run-dir", str(run), "--no-progress", "--no-tensorboard"]
    return train_main([*argv, *flags])


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("textgym train: error: "), err
    assert "Traceback" not in err
    return lines[0]


# -- tabular runs through textgym train -----------------------------------------------------


@pytest.mark.parametrize("algo", ["qlearning", "sarsa"])
def test_a_tabular_run_writes_every_file_and_learns_copy_tiny(
    algo: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert train(run, "--env", ENV, "--total-timesteps", "2000", "--seed", "0", algo=algo) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{algo} on {ENV} (seed 0): 2000 timesteps")
    assert {p.name for p in run.iterdir()} == RUN_FILES
    config = json.loads((run / "config.json").read_text())
    assert config["algo"] == algo and config["total_timesteps"] == 2000
    report = json.loads((run / "report.json").read_text())
    assert report["timesteps"] == 2000 and report["run_dir"] == str(run)
    # Far above chance (~1/16 on Copy-Tiny) with a 2,000-step, fixed-seed budget.
    chance = RandomAgent(ENV, seed=0).evaluate(n_episodes=200, seed=10_000).success_rate
    assert chance < 0.15 and report["after"]["eval/success_rate"] >= 0.95, report
    # The curve, the evaluations at both ends, and the checkpoint that is the agent.
    log = read_log(run)
    assert [s for s, _, _ in log["eval/success_rate"]] == [0, 2000]
    assert "charts/episodic_return" in log and "tabular/states" in log
    agent = load(run)
    assert isinstance(agent, QLearning if algo == "qlearning" else SARSA)
    assert agent.num_timesteps == 2000 and len(agent.table) == report["states"]


def test_the_flags_come_from_the_config_dataclass(capsys: pytest.CaptureFixture[str]) -> None:
    cls, config = parse_args(
        ["--algo", "sarsa", "--env", ENV, "--epsilon-decay", "exponential", "--gamma", "0.9",
         "--features", "prompt_last_k", "--no-bootstrap-truncated"]
    )  # fmt: skip
    assert cls.config_class is TabularConfig and isinstance(config, TabularConfig)
    assert (config.epsilon_decay, config.gamma, config.features) == (
        "exponential",
        0.9,
        "prompt_last_k",
    )
    assert config.bootstrap_truncated is False
    with pytest.raises(SystemExit):
        parse_args(["--algo", "qlearning", "--help"])
    help_text = capsys.readouterr().out
    # Each field's docstring is its help.
    assert "--total-timesteps TOTAL_TIMESTEPS" in help_text
    assert "env steps (token actions) to train for" in help_text
    assert "{linear,exponential}" in help_text


def test_bad_tabular_flags_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert train(run, "--learning-rate", "2") == 2
    assert "--learning-rate (learning_rate) got 2.0; it must be" in one_error_line(capsys)
    assert train(run, "--env", "textgym/Copy-Tiy-v0") == 2
    assert "Did you mean 'textgym/Copy-Tiny-v0'?" in one_error_line(capsys)
    assert train(run, "--total-updates", "3") == 2
    assert "Unknown flag --total-updates for --algo qlearning" in one_error_line(capsys)
    assert not run.exists()  # refused before the directory was made


def test_a_killed_tabular_run_resumes_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    budget = ["--env", ENV, "--total-timesteps", "3000", "--checkpoint-every", "500",
              "--learning-rate", "0.3"]  # fmt: skip
    whole = tmp_path / "whole"
    assert train(whole, *budget) == 0
    killed = tmp_path / "killed"
    on_episode_end = QLearningRun._on_episode_end

    def killed_after_1700(self: QLearningRun, agent: Any) -> bool:
        on_episode_end(self, agent)
        if agent.num_timesteps >= 1700:
            raise KeyboardInterrupt("kill -9")
        return True

    monkeypatch.setattr(QLearningRun, "_on_episode_end", killed_after_1700)
    with pytest.raises(KeyboardInterrupt):
        train(killed, *budget)
    monkeypatch.undo()
    assert not (killed / "report.json").exists()
    saved = load(killed).num_timesteps
    assert 1500 <= saved < 1700  # the last checkpoint, at an episode's end
    # Resumed with the run's own settings (read back from its config.json).
    assert train(killed, "--resume") == 0
    capsys.readouterr()
    a, b = load(whole), load(killed)
    assert b.num_timesteps == 3000 and b.num_episodes == a.num_episodes
    assert a.table.keys() == b.table.keys()
    assert all(np.array_equal(a.table[k][1], b.table[k][1]) for k in a.table)
    report = json.loads((killed / "report.json").read_text())
    assert report["timesteps"] == 3000 and report["episodes"] == a.num_episodes
    # The log goes on from the checkpoint to the end of the budget.
    assert max(s for s, _, _ in read_log(killed)["charts/episodic_return"]) > 2000
    assert read_log(killed)["eval/success_rate"][-1][0] == 3000


def test_a_finished_run_is_refused_and_a_larger_budget_continues_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert train(run, "--env", ENV, "--total-timesteps", "1000") == 0
    capsys.readouterr()
    assert train(run, "--resume") == 2
    assert one_error_line(capsys) == (
        f"textgym train: error: The run in {run} has already made 1000 of its "
        "--total-timesteps 1000; pass a larger --total-timesteps to continue it."
    )
    assert train(run, "--env", ENV) == 2
    assert "already holds a run (progress.csv). Pass --resume" in one_error_line(capsys)
    assert train(run, "--resume", "--algo", "sarsa") == 2
    assert "written by 'qlearning', not 'sarsa'" in one_error_line(capsys)
    assert train(run, "--resume", "--seed", "3") == 2
    assert "trained with seed=0 (now 3)" in one_error_line(capsys)
    assert train(run, "--resume", "--total-timesteps", "1500") == 0
    assert json.loads((run / "report.json").read_text())["timesteps"] == 1500
    assert json.loads((run / "config.json").read_text())["total_timesteps"] == 1500


def test_a_locked_run_dir_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    with locked_by_another_process(run) as pid:
        assert train(run, "--env", ENV, "--total-timesteps", "100") == 2
        line = one_error_line(capsys)
        assert f"in use by another process (pid {pid})" in line and "--run-dir" in line
        assert not (run / "progress.csv").exists()
    # In one process too: a run holds its directory from its constructor to learn()'s end.
    first = QLearningRun(TabularConfig(total_timesteps=100, run_dir=str(run), progress=False))
    with pytest.raises(DirectoryInUseError, match="--run-dir"):
        QLearningRun(TabularConfig(total_timesteps=100, run_dir=str(run), progress=False))
    first.learn()
    assert (run / "report.json").exists()


def test_a_torn_config_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert train(run, "--env", ENV, "--total-timesteps", "300") == 0
    capsys.readouterr()
    config = run / "config.json"
    config.write_text(config.read_text()[:40])  # a kill in the middle of a non-atomic write
    assert train(run, "--resume", "--total-timesteps", "600") == 2
    assert re.search(r"config\.json' is not a readable run config", one_error_line(capsys))


def test_tampered_and_pickled_checkpoints_are_refused_and_run_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert train(run, "--env", ENV, "--total-timesteps", "300") == 0
    capsys.readouterr()
    checkpoint = run / "checkpoint.safetensors"
    honest = checkpoint.read_bytes()
    marker = tmp_path / MARKER_NAME
    # A pickle under the checkpoint's name: refused by its content, never unpickled.
    checkpoint.write_bytes(pickle.dumps({"model": Evil(marker)}))
    assert train(run, "--resume", "--total-timesteps", "600") == 2
    assert "older textgym (a pickle" in one_error_line(capsys) and not marker.exists()
    # A header that would choose where textgym writes.
    checkpoint.write_bytes(honest)
    elsewhere = tmp_path / "elsewhere"

    def redirect(state: dict[str, Any]) -> None:
        state["agent"]["hyperparameters"]["log_dir"] = str(elsewhere)

    rewrite_checkpoint(checkpoint, checkpoint, redirect)
    assert train(run, "--resume", "--total-timesteps", "600") == 2
    assert "'log_dir' in its header; a checkpoint never decides" in one_error_line(capsys)
    # The env's RNG state is restored only as a PCG64 state, never a class the file names.
    checkpoint.write_bytes(honest)

    def other_generator(state: dict[str, Any]) -> None:
        state["run"]["env_rng"]["bit_generator"] = "MT19937"

    rewrite_checkpoint(checkpoint, checkpoint, other_generator)
    assert train(run, "--resume", "--total-timesteps", "600") == 2
    assert "is damaged" in one_error_line(capsys)
    assert not elsewhere.exists() and not marker.exists()
    # A pickled checkpoint.pt of an older textgym, with no checkpoint beside it.
    checkpoint.unlink()
    torch.save({"model": Evil(marker)}, run / "checkpoint.pt")
    assert train(run, "--resume", "--total-timesteps", "600") == 2
    assert "checkpoint.pt' is a checkpoint of an older textgym" in one_error_line(capsys)
    assert not marker.exists()


# -- supervised fine-tuning ------------------------------------------------------------------


def _sequences() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(24):
        ids = rng.integers(2, 16, size=int(rng.integers(4, 9)))
        mask = np.arange(ids.size) >= 2
        out.append((ids.astype(np.int64), mask))
    return out


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return tiny_gpt2(16)


def test_sft_writes_the_run_format_and_resumes_to_the_same_weights(tmp_path: Path) -> None:
    config = SFTConfig(steps=6, batch_size=4, warmup=2, learning_rate=1e-2, seed=0)
    whole = _model()
    sft(whole, _sequences(), config, pad_id=0, run_dir=tmp_path / "whole", checkpoint_every=2,
        log_every=1)  # fmt: skip
    run = tmp_path / "killed"
    assert {p.name for p in (tmp_path / "whole").iterdir()} == RUN_FILES | {"final_model"}

    def kill_at_5(step: int, metrics: dict[str, float]) -> None:
        if step == 5:
            raise KeyboardInterrupt("kill -9")

    with pytest.raises(KeyboardInterrupt):
        sft(_model(), _sequences(), config, pad_id=0, log=kill_at_5, log_every=1, run_dir=run,
            checkpoint_every=2)  # fmt: skip
    assert not (run / "report.json").exists() and not (run / "final_model").exists()
    with pytest.raises(ConfigError, match="already holds a run.*--resume"):
        sft(_model(), _sequences(), config, pad_id=0, run_dir=run)
    resumed = _model()  # fresh weights: the checkpoint of step 4 replaces them
    sft(resumed, _sequences(), config, pad_id=0, run_dir=run, resume=True, checkpoint_every=2,
        log_every=1)  # fmt: skip
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    report = json.loads((run / "report.json").read_text())
    assert report["algo"] == "sft" and report["steps"] == 6
    # Killed before step 5 reached the log; the resumed run logged 5 and 6.
    assert [s for s, _, _ in read_log(run)["sft/loss"]] == [1, 2, 3, 4, 5, 6]
    assert (run / "final_model" / "config.json").exists()
    with pytest.raises(ConfigError, match="already made 6 of its --steps 6"):
        sft(_model(), _sequences(), config, pad_id=0, run_dir=run, resume=True)
    bigger = SFTConfig(steps=6, batch_size=8, warmup=2, learning_rate=1e-2, seed=0)
    with pytest.raises(ConfigError, match=r"batch_size=4 \(now 8\)"):
        sft(_model(), _sequences(), bigger, pad_id=0, run_dir=run, resume=True)


# -- textgym.runs on its own ----------------------------------------------------------------


def test_a_failed_start_leaves_no_directory_and_no_lock(tmp_path: Path) -> None:
    run = tmp_path / "new"
    with pytest.raises(RuntimeError, match="boom"), runs.claimed(run):
        raise RuntimeError("boom")
    assert not run.exists()
    with runs.claimed(run) as held:  # and nothing is held
        runs.write_config(held, {"a": 1})
    with pytest.raises(runs.CheckpointError, match="No checkpoint at"), runs.claimed(run, True):
        pass
    assert (run / "config.json").exists()  # an existing directory is left as it was


def test_reports_are_strict_json_and_mark_the_run_finished(tmp_path: Path) -> None:
    assert not runs.is_finished(tmp_path)
    runs.write_report(tmp_path, {"updates": 3, "accuracy": float("nan")})
    text = (tmp_path / "report.json").read_text()
    assert json.loads(text)["accuracy"] is None and "NaN" not in text
    assert runs.is_finished(tmp_path, final_model=False, updates=3)
    assert not runs.is_finished(tmp_path, final_model=False, updates=4)
    assert not runs.is_finished(tmp_path, updates=3)  # no final_model/ yet
    assert runs.final_model_dir(tmp_path) == tmp_path  # nothing to load there yet
    runs.write_final_model(tmp_path, lambda d: (d / "weights").write_text("w"))
    assert runs.is_finished(tmp_path, updates=3)
    assert runs.final_model_dir(tmp_path) == tmp_path / "final_model"
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="not a run config"):
        runs.read_config(tmp_path)


def test_a_run_without_checkpoints_is_replaced_by_the_next(tmp_path: Path) -> None:
    (tmp_path / "progress.csv").write_text("step,wall_time,key,value\n")
    runs.write_report(tmp_path, {"epochs": 1})
    runs.check_start(tmp_path, resume=False, flag="--out", resumable=False)
    assert not (tmp_path / "report.json").exists() and not (tmp_path / "progress.csv").exists()
    # A resumable learner's finished run is refused instead.
    (tmp_path / "progress.csv").write_text("step,wall_time,key,value\n")
    runs.write_report(tmp_path, {"epochs": 1})
    with pytest.raises(ConfigError, match="--out .* already holds a run"):
        runs.check_start(tmp_path, resume=False, flag="--out")
