"""One run directory for every learner: what it holds, in what order, and when it is finished.

::

    <run_dir>/
      .lock                   held by the one process working here (DirectoryLock)
      config.json             the run's settings, rewritten on every (re)start
      progress.csv            the learning curve (textgym.progress.Logger), + TensorBoard files
      checkpoint.safetensors  the state a resume continues from (agents.common.checkpoint)
      final_model/            the trained model, a save_pretrained directory renamed into place
      report.json             written last: its presence is what marks the run finished

Who writes what: ``textgym train`` with an LM algorithm (:mod:`agents.lm.trainer`) and
supervised fine-tuning (:mod:`agents.lm.supervised`) write all of it; ``textgym train`` with
a tabular algorithm (:mod:`agents.tabular.run`) writes no ``final_model/``, since its
checkpoint *is* the trained agent (``agents.tabular.load(run_dir)``); reward-model training
(``textgym train-rm``, :mod:`textgym.feedback.train`) writes no checkpoint, since it retrains
in seconds and its command has no ``--resume``: a new run in its ``--out`` replaces the run
there, killed or finished (``check_start(..., resumable=False)``).

Every file is written atomically (:mod:`textgym.files`), so a kill leaves the previous
version or the new one, and temporary leftovers that the next process on the directory
removes. A fresh run of a resumable learner refuses a directory that holds a run (rather
than mixing two curves in one log); ``--resume`` continues from the checkpoint with the
settings in ``config.json``; a finished run with nothing left to do is refused with the flag
that gives it more.

This module only knows paths and JSON: the checkpoint's format (safetensors with a JSON
header, never a pickle) is :mod:`agents.common.checkpoint`'s, which needs torch.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from textgym.errors import ConfigError, UserError
from textgym.files import DirectoryLock, atomic_write, atomic_write_dir, clean_temporary_files
from textgym.progress import PROGRESS_NAME

__all__ = [
    "CHECKPOINT_NAME",
    "CONFIG_NAME",
    "FINAL_MODEL_NAME",
    "LEGACY_CHECKPOINT_NAME",
    "PROGRESS_NAME",
    "REPORT_NAME",
    "CheckpointError",
    "check_budget_left",
    "check_same_run",
    "check_start",
    "checkpoint_path",
    "claimed",
    "clean_temporaries",
    "default_run_dir",
    "final_model_dir",
    "is_finished",
    "legacy_checkpoint_error",
    "missing_checkpoint_error",
    "read_config",
    "read_report",
    "remove_if_only_lock",
    "run_lock",
    "write_config",
    "write_final_model",
    "write_report",
]

CONFIG_NAME = "config.json"
CHECKPOINT_NAME = "checkpoint.safetensors"
#: What textgym releases before the safetensors format wrote (a pickle; never opened now).
LEGACY_CHECKPOINT_NAME = "checkpoint.pt"
FINAL_MODEL_NAME = "final_model"
REPORT_NAME = "report.json"


class CheckpointError(UserError, FileNotFoundError, ValueError):
    """A checkpoint is missing, unreadable, not in textgym's format, or does not fit.

    The one checkpoint error of every learner (re-exported by :mod:`agents.common.checkpoint`
    and :mod:`agents.tabular`): a ``FileNotFoundError`` for callers that catch a missing
    run, and a ``ValueError`` for those that catch a bad file.
    """


def checkpoint_path(run_dir: str | os.PathLike[str]) -> Path:
    """Where a run directory keeps its checkpoint."""
    return Path(run_dir) / CHECKPOINT_NAME


def missing_checkpoint_error(path: str | os.PathLike[str]) -> CheckpointError:
    """The error for a resume (or a load) with no checkpoint at ``path``."""
    return CheckpointError(
        f"No checkpoint at {str(path)!r}. Resume from a run directory that contains "
        f"{CHECKPOINT_NAME} (a run writes it every --checkpoint-every and at its end), or "
        "start a new run without --resume."
    )


def legacy_checkpoint_error(path: str | os.PathLike[str]) -> CheckpointError:
    """The error for a pickled checkpoint of an older textgym (refused without opening it)."""
    return CheckpointError(
        f"{str(path)!r} is a checkpoint of an older textgym (a pickle, which can run code when "
        f"loaded), so it is not opened. Start a new run in another --run-dir; a run of your "
        f"own can be finished with the textgym release that started it. Runs of this release "
        f"resume from {CHECKPOINT_NAME}."
    )


def default_run_dir(env_id: str, algo: str, seed: int) -> str:
    """``runs/<env>__<algo>__<seed>__<unix time>``, the run directory when none is given."""
    env = env_id.replace("/", "_")
    return f"runs/{env}__{algo}__{seed}__{int(time.time())}"


# -- taking the directory -------------------------------------------------------------------


def run_lock(run_dir: str | os.PathLike[str], flag: str = "--run-dir") -> DirectoryLock:
    """The lock that makes ``run_dir`` one process's (not yet acquired).

    A second process on a run directory would interleave its log and overwrite its
    checkpoint. ``flag`` names the option that chooses the directory, for the error.
    """
    return DirectoryLock(
        run_dir,
        what="run directory",
        hint=f"wait for that run to finish, or choose another {flag}",
    )


def remove_if_only_lock(directory: str | os.PathLike[str]) -> None:
    """Remove a run directory that a failed start created and left holding only its lock."""
    try:
        if [p.name for p in Path(directory).iterdir()] == [".lock"]:
            shutil.rmtree(directory)
    except OSError:
        pass  # best effort: a left-over empty directory is harmless


def clean_temporaries(run_dir: str | os.PathLike[str]) -> None:
    """Remove what killed writes left (temporary files and model directories); only call
    it holding the run's lock."""
    clean_temporary_files(run_dir)


def check_start(
    run_dir: str | os.PathLike[str],
    resume: bool,
    *,
    flag: str = "--run-dir",
    resumable: bool = True,
) -> None:
    """Fail before any model or env is loaded if the run cannot start in ``run_dir``.

    A run killed before its first checkpoint cannot be resumed, so a fresh start replaces
    its log (else ``--resume`` and a fresh start would each send the user to the other).

    Args:
        run_dir: The run directory.
        resume: Whether the run continues from the checkpoint.
        flag: The option that chose ``run_dir``, for messages.
        resumable: ``False`` for a learner without checkpoints, which cannot continue a
            run: a fresh start replaces the run there. Its report goes first (from then on
            the directory holds an unfinished run), its log next; its ``final_model/``
            stays loadable until the new one is renamed over it. Only call this holding
            the run's lock, then.

    Raises:
        CheckpointError: ``resume`` without a checkpoint to resume from.
        ConfigError: a fresh run in a directory that already holds one.
    """
    run_dir = Path(run_dir)
    checkpoint = checkpoint_path(run_dir)
    if resume and not checkpoint.is_file():
        if checkpoint.exists():
            raise CheckpointError(
                f"{str(checkpoint)!r} is not a file; a checkpoint is the single file "
                f"{CHECKPOINT_NAME}."
            )
        legacy = run_dir / LEGACY_CHECKPOINT_NAME
        raise (
            legacy_checkpoint_error(legacy)
            if legacy.exists()
            else missing_checkpoint_error(checkpoint)
        )
    if resume:
        return
    report = run_dir / REPORT_NAME
    progress = run_dir / PROGRESS_NAME
    if not resumable:
        report.unlink(missing_ok=True)
    if progress.exists() and not checkpoint.exists() and not report.exists():
        progress.unlink()
        for events in run_dir.glob("events.out.tfevents.*"):
            events.unlink()
    if progress.exists():
        # Appending a fresh run to an old log would mix two learning curves.
        raise ConfigError(
            f"{flag} {str(run_dir)!r} already holds a run ({PROGRESS_NAME}). Pass --resume to "
            f"continue it, or choose another {flag} (or delete this one)."
        )


@contextmanager
def claimed(
    run_dir: str | os.PathLike[str],
    resume: bool = False,
    *,
    flag: str = "--run-dir",
    resumable: bool = True,
) -> Iterator[Path]:
    """Hold ``run_dir`` for one run, from its start checks to its end.

    Takes the lock, removes killed writes' leftovers, runs :func:`check_start`, and yields
    the directory. If the body fails, a directory this call created is removed (when it
    holds nothing but the lock) before the lock is released; the lock is always released.

    Raises:
        DirectoryInUseError: another process holds the directory.
        CheckpointError, ConfigError: see :func:`check_start`.
        WriteError: the directory cannot be created.
    """
    run_dir = Path(run_dir)
    created = not run_dir.exists()
    lock = run_lock(run_dir, flag).acquire()
    try:
        if not created:
            clean_temporaries(run_dir)
        check_start(run_dir, resume, flag=flag, resumable=resumable)
        yield run_dir
    except BaseException:
        # Removed before the lock is released, so no other process can lock it meanwhile.
        if created:
            remove_if_only_lock(run_dir)
        raise
    finally:
        lock.release()


# -- resuming -------------------------------------------------------------------------------


def check_same_run(
    run_dir: str | os.PathLike[str],
    saved: Mapping[str, Any],
    now: Mapping[str, Any],
    identity: Sequence[str],
    flag: str = "--run-dir",
) -> None:
    """Refuse to resume the checkpoint's run (config ``saved``) with the settings ``now``
    if they differ in the algorithm or in what was trained on (the fields ``identity``).

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
    changed = [k for k in identity if k in saved and saved[k] != now.get(k)]
    if changed:
        diff = ", ".join(f"{k}={saved[k]!r} (now {now.get(k)!r})" for k in changed)
        raise ConfigError(
            f"The checkpoint in {str(run_dir)!r} was trained with {diff}. Resume with the "
            f"run's own settings (in its {CONFIG_NAME}, which `textgym train --algo ... "
            f"--run-dir DIR --resume` reads) or start a new run in another {flag}."
        )


def check_budget_left(run_dir: str | os.PathLike[str], done: int, total: int, flag: str) -> None:
    """A finished run resumed with nothing left to do names the flag that gives it more
    (its own settings are restored on resume, so its finished budget would be too).

    Raises:
        ConfigError: ``done`` reached ``total``, the budget set by ``flag``.
    """
    if done >= total:
        raise ConfigError(
            f"The run in {run_dir} has already made {done} of its {flag} {total}; pass a "
            f"larger {flag} to continue it."
        )


# -- the files ------------------------------------------------------------------------------


def _json(document: Any) -> str:
    """Strict JSON (NaN and infinities, which JSON lacks, become ``null``)."""

    def finite(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, Mapping):
            return {k: finite(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [finite(v) for v in value]
        return value

    return json.dumps(finite(document), indent=2, allow_nan=False) + "\n"


def write_config(run_dir: str | os.PathLike[str], config: Mapping[str, Any]) -> None:
    """``config.json``: the run's settings, which ``textgym train --resume`` reads back."""
    atomic_write(Path(run_dir) / CONFIG_NAME, _json(config))


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A run's ``config.json`` (``path`` is the file or its run directory).

    Raises:
        ConfigError: a torn or foreign file, in one sentence that says what to do.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CONFIG_NAME
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(
            f"{str(path)!r} is not a readable run config ({type(exc).__name__}: {exc}); "
            "restore it, or pass every setting as a flag with the file removed."
        ) from None
    if not isinstance(stored, dict):
        raise ConfigError(
            f"{str(path)!r} is not a run config (a JSON object of settings); restore it, or "
            "pass every setting as a flag with the file removed."
        )
    return stored


def write_report(run_dir: str | os.PathLike[str], report: Mapping[str, Any]) -> None:
    """``report.json``, the last thing a run writes: its presence marks the run finished."""
    atomic_write(Path(run_dir) / REPORT_NAME, _json(report))


def read_report(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The run's report, or ``None`` while it is not finished (or the file is damaged)."""
    try:
        report = json.loads((Path(run_dir) / REPORT_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def format_report(report: Mapping[str, Any], headline: str, keys: Sequence[str]) -> str:
    """The report in a few lines for the terminal: ``headline``, then each of ``keys`` that
    both evaluations hold as before -> after, then the run directory."""
    before, after = report["before"], report["after"]
    lines = [headline]
    for key in keys:
        if key in before and key in after:
            lines.append(
                f"  {key} on {report['split']}: {before[key]:.3f} -> {after[key]:.3f} "
                f"({after[key] - before[key]:+.3f})"
            )
    lines.append(f"  run directory: {report['run_dir']}")
    return "\n".join(lines)


def is_finished(
    run_dir: str | os.PathLike[str], *, final_model: bool = True, **expected: Any
) -> bool:
    """Whether the run is finished: a ``report.json`` whose entries match ``expected``
    (e.g. ``updates=30``: the report is of the current budget) and, with ``final_model``,
    a ``final_model/`` beside it."""
    report = read_report(run_dir)
    if report is None or any(report.get(k) != v for k, v in expected.items()):
        return False
    return not final_model or (Path(run_dir) / FINAL_MODEL_NAME).is_dir()


def write_final_model(
    run_dir: str | os.PathLike[str],
    save: Callable[[Path], object],
    hint: str = "then resume with --resume",
) -> Path:
    """``final_model/``, all or nothing: ``save(directory)`` (e.g. ``model.save_pretrained``)
    writes a temporary directory that is fsynced and renamed into place, replacing an older
    one (from before a resume).

    Raises:
        WriteError: the run directory cannot be written.
    """
    return atomic_write_dir(Path(run_dir) / FINAL_MODEL_NAME, save, "final model", hint)


def final_model_dir(path: str | os.PathLike[str]) -> Path:
    """The model to load for ``path``: a run directory's ``final_model/`` (so that
    ``RewardModel("runs/rm")`` can mean the model that run trained), ``path`` otherwise."""
    path = Path(path)
    model = path / FINAL_MODEL_NAME
    if (path / REPORT_NAME).is_file() and model.is_dir():
        return model
    return path
