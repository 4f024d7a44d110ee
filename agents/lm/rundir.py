"""An LM run's directory: its lock, config.json, final model, report, and whether it is done.

A run directory holds ``config.json`` (written when a fresh run starts), ``progress.csv`` and
the TensorBoard files (:class:`agents.common.logger.Logger`), the checkpoint
(:mod:`agents.common.checkpoint`), and, once the run is finished, ``final_model/`` and then
``report.json``, each written atomically and in that order: ``report.json`` is what marks
the run finished (:func:`outputs_complete`). One process at a time works in a run directory
(:func:`run_lock`); a killed write leaves only temporary files, removed when the next process
takes the directory (:func:`clean_temporaries`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from agents.common.checkpoint import checkpoint_path, load_checkpoint
from agents.lm.config import TrainConfig
from agents.lm.policy import LMPolicy
from textgym.errors import ConfigError
from textgym.files import DirectoryLock, atomic_write, clean_temporary_files, write_error

#: What a finished run leaves in its run directory besides its log and checkpoint.
FINAL_MODEL_NAME = "final_model"
REPORT_NAME = "report.json"
CONFIG_NAME = "config.json"
#: The learning curve a run appends to (written by the logger).
PROGRESS_NAME = "progress.csv"
#: Config fields a resumed run must share with its checkpoint.
RUN_IDENTITY = ("env_id", "model", "tokenizer", "num_envs", "seed")


def default_run_dir(env_id: str, algo: str, seed: int) -> str:
    """``runs/<env>__<algo>__<seed>__<unix time>``, the run directory when none is given."""
    env = env_id.replace("/", "_")
    return f"runs/{env}__{algo}__{seed}__{int(time.time())}"


def run_lock(run_dir: Path) -> DirectoryLock:
    """The lock that makes ``run_dir`` one process's (not yet acquired).

    A second process on a run directory would interleave its log and overwrite its
    checkpoint; the main process holds the lock for all of an ``accelerate launch``'s
    processes.
    """
    return DirectoryLock(
        run_dir,
        what="run directory",
        hint="wait for that run to finish, or choose another --run-dir",
    )


def remove_if_only_lock(directory: Path) -> None:
    """Remove a run directory that a failed start created and left holding only its lock."""
    try:
        if [p.name for p in directory.iterdir()] == [".lock"]:
            shutil.rmtree(directory)
    except OSError:
        pass  # best effort: a left-over empty directory is harmless


def check_start(run_dir: Path, resume: bool) -> None:
    """Fail before the model and envs are loaded if the run cannot start in ``run_dir``.

    Raises:
        CheckpointError: ``resume`` without a checkpoint to resume from.
        ConfigError: a fresh run in a directory that already holds one.
    """
    if resume and not checkpoint_path(run_dir).exists():
        load_checkpoint(run_dir)  # raises, saying what is missing and how to start instead
    progress = run_dir / PROGRESS_NAME
    unresumable = not checkpoint_path(run_dir).exists() and not (run_dir / REPORT_NAME).exists()
    if not resume and progress.exists() and unresumable:
        # Killed before its first checkpoint: nothing can resume it, so a fresh start
        # replaces its log (else --resume and a fresh start would each send the user to
        # the other).
        progress.unlink()
        for events in run_dir.glob("events.out.tfevents.*"):
            events.unlink()
    if not resume and progress.exists():
        # Appending a fresh run to an old log would mix two learning curves.
        raise ConfigError(
            f"run_dir {str(run_dir)!r} already holds a run ({PROGRESS_NAME}). Pass "
            "--resume to continue it, or choose another --run-dir (or delete this one)."
        )


def check_same_run(run_dir: Path, saved: dict[str, Any], now: dict[str, Any]) -> None:
    """Refuse to resume the checkpoint's run (config ``saved``) with the settings ``now``
    if they differ in the algorithm or in what was trained on (:data:`RUN_IDENTITY`).

    Raises:
        ConfigError: naming each setting that differs and how to resume instead.
    """
    if saved.get("algo") != now["algo"]:
        raise ConfigError(
            f"The checkpoint in {str(run_dir)!r} was written by {saved.get('algo')!r}, not "
            f"{now['algo']!r}; resume with --algo {saved.get('algo')}."
        )
    # Settings that define what was trained on: a resume with others would silently
    # continue a different experiment.
    changed = [k for k in RUN_IDENTITY if k in saved and saved[k] != now.get(k)]
    if changed:
        diff = ", ".join(f"{k}={saved[k]!r} (now {now.get(k)!r})" for k in changed)
        raise ConfigError(
            f"The checkpoint in {str(run_dir)!r} was trained with {diff}. Resume with the "
            "run's own settings (`textgym train --algo ... --run-dir DIR --resume` reads them "
            "from DIR/config.json) or start a new run in another --run-dir."
        )


def check_budget_left(
    run_dir: Path, config: TrainConfig, updates: int, train_seconds: float
) -> None:
    """A finished run resumed with nothing left to do names the flag that gives it more
    (its own settings are restored on resume, so its finished budget would be too).

    Raises:
        ConfigError: ``updates`` reached ``--total-updates``, or ``train_seconds`` the
            ``--time-budget``.
    """
    if updates >= config.total_updates:
        raise ConfigError(
            f"The run in {run_dir} has already made {updates} of its "
            f"--total-updates {config.total_updates}; pass a larger --total-updates to "
            "continue it."
        )
    if config.time_budget and train_seconds >= config.time_budget:
        raise ConfigError(
            f"The run in {run_dir} has already used its time budget "
            f"({train_seconds:.0f} s of --time-budget {config.time_budget:g}); pass a "
            "larger --time-budget, or --time-budget 0 for no limit, to continue it."
        )


def clean_temporaries(run_dir: Path) -> None:
    """Remove what killed writes left: temporary files and temporary model directories."""
    clean_temporary_files(run_dir)
    for leftover in run_dir.glob(f".{FINAL_MODEL_NAME}.*.tmp"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    """``config.json``: the run's settings, which ``textgym train --resume`` reads back."""
    atomic_write(run_dir / CONFIG_NAME, json.dumps(config, indent=2))


def write_report(run_dir: Path, report: dict[str, Any]) -> None:
    """``report.json``, the last thing a run writes: its presence marks the run finished."""
    atomic_write(run_dir / REPORT_NAME, json.dumps(report, indent=2))


def outputs_complete(run_dir: Path, updates: int) -> bool:
    """Whether ``final_model/`` and a ``report.json`` of ``updates`` updates both exist."""
    try:
        report = json.loads((run_dir / REPORT_NAME).read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(report, dict)
        and report.get("updates") == updates
        and (run_dir / FINAL_MODEL_NAME).is_dir()
    )


def write_final_model(policy: LMPolicy, run_dir: Path) -> None:
    """``final_model/``, all or nothing: written to a temporary directory, fsynced, and
    renamed into place (an older one, from before a resume, is replaced).

    Raises:
        WriteError: the run directory cannot be written.
    """
    final = run_dir / FINAL_MODEL_NAME
    tmp: Path | None = None
    old: Path | None = None
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{FINAL_MODEL_NAME}.", suffix=".tmp", dir=run_dir))
        policy.save_pretrained(tmp)
        _fsync_tree(tmp)
        if final.exists():
            # A directory cannot be replaced over a non-empty one: move the old aside.
            old = tmp.with_name(f".{FINAL_MODEL_NAME}.old.tmp")
            if old.exists():
                shutil.rmtree(old)
            os.replace(final, old)
        os.replace(tmp, final)
        tmp = None
        _fsync_dir(run_dir)
    except OSError as exc:
        raise write_error(final, exc, "final model", "then resume with --resume") from exc
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def format_report(report: dict[str, Any]) -> str:
    """The report in a few lines for the terminal: budget, throughput, before -> after."""
    before, after = report["before"], report["after"]
    lines = [
        f"{report['algo']} on {report['env_id']} (seed {report['seed']}): "
        f"{report['updates']} updates, {report['episodes']} episodes, "
        f"{report['train_seconds']:.0f}s, {report['tokens_per_second']:.0f} tokens/s",
    ]
    for key in ("eval/success_rate", "eval/episodic_return"):
        if key in before and key in after:
            lines.append(
                f"  {key} on {report['split']}: {before[key]:.3f} -> {after[key]:.3f} "
                f"({after[key] - before[key]:+.3f})"
            )
    lines.append(f"  run directory: {report['run_dir']}")
    return "\n".join(lines)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(directory: Path) -> None:
    """fsync every file under ``directory`` and the directories themselves (so a rename
    of ``directory`` never publishes files whose data is not on disk yet)."""
    for root, _dirs, files in os.walk(directory):
        for name in files:
            with open(Path(root) / name, "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(Path(root))
