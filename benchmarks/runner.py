"""Running a grid of (env, algorithm, seed) cells into one directory, resumably.

Every cell writes ``runs/<env>__<algo>__<seed>/result.json`` when it finishes, with the
budget it ran under; a rerun skips finished cells, so an interrupted benchmark resumes. It
resumes only under the same budget: a cell finished under another one is refused, so one
table never mixes two configurations. A torn ``result.json`` (a kill mid-write) counts as
unfinished and its cell is redone. The output directory is locked while a benchmark uses it.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from benchmarks.cli import check_known
from textgym.errors import ConfigError
from textgym.files import DirectoryLock, atomic_write, clean_temporary_files


class ResumeMismatchError(ConfigError):
    """``--out`` holds finished runs made under another configuration."""


@dataclass(frozen=True)
class RunSpec:
    """One (env, algorithm, seed) run under a budget."""

    env_id: str
    algo: str
    seed: int
    budget: dict[str, Any]
    run_dir: Path

    @property
    def name(self) -> str:
        """``env__algo__seed``, the CleanRL run-name convention (without the time)."""
        return f"{self.env_id.split('/')[-1]}__{self.algo}__{self.seed}"


@dataclass
class RunResult:
    """What a run produced: its final held-out score and its learning curve."""

    env_id: str
    algo: str
    seed: int
    success_rate: float
    mean_return: float
    wall_time: float
    budget: dict[str, Any]
    curve: list[dict[str, float]] = field(default_factory=list)
    #: An LM run stopped by the budget's minutes before its updates (``None``: not an LM
    #: run, or a result written before this was recorded).
    capped: bool | None = None

    @classmethod
    def of(
        cls,
        spec: RunSpec,
        scores: tuple[float, float],
        start: float,
        curve: list[dict[str, float]] | None = None,
        capped: bool | None = None,
    ) -> RunResult:
        """The result of ``spec``: ``scores`` is (success rate, mean return); ``start`` the
        ``time.perf_counter()`` at which the run began."""
        success, ret = scores
        wall = time.perf_counter() - start
        return cls(
            spec.env_id, spec.algo, spec.seed, success, ret, wall, spec.budget, curve or [], capped
        )


#: What runs a cell: its spec in, its result out.
Algorithm = Callable[[RunSpec], RunResult]

#: Files of earlier versions' non-atomic writes (``<name>.tmp`` beside the file): a kill
#: mid-write left them, and :func:`clean_temporary_files` only knows today's names.
_LEGACY_TEMPORARIES = ("result.json.tmp", "results.json.tmp", "results.md.tmp")


def clean_output(out: Path) -> list[Path]:
    """Remove the temporary files killed writes left in ``out`` and its run directories.

    Call this only while holding ``out``'s :class:`DirectoryLock`.
    """
    dirs = [out, *sorted(p for p in (out / "runs").glob("*") if p.is_dir())]
    removed = []
    for directory in dirs:
        removed += clean_temporary_files(directory)
        for name in _LEGACY_TEMPORARIES:
            if (directory / name).is_file():
                (directory / name).unlink()
                removed.append(directory / name)
    return removed


@contextmanager
def locked_output(out: Path, restart: bool) -> Iterator[None]:
    """Hold ``out``'s lock, cleaned of dead writers' files (and of every run if ``restart``).

    Raises:
        DirectoryInUseError: another process is using ``out``.
    """
    with DirectoryLock(
        out,
        what="output directory",
        hint="wait for that benchmark to finish, or choose another --out",
    ):
        # Under the lock, every temporary file is a dead writer's: none is in use.
        clean_output(out)
        if restart and (out / "runs").exists():
            shutil.rmtree(out / "runs")
        yield


def load_result(path: Path) -> RunResult | None:
    """The finished run recorded in ``path``, or ``None`` if it is missing or torn.

    A file a kill cut short (or any file that is not a whole record) means the run did not
    finish: it is redone, never trusted in part and never a crash.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return _torn(path)
    names = [f.name for f in fields(RunResult)]
    # The fields with defaults (the curve, capped) may be missing from an older result.
    required = [
        f.name for f in fields(RunResult) if f.default is MISSING and f.default_factory is MISSING
    ]
    if not isinstance(data, dict) or any(name not in data for name in required):
        return _torn(path)
    numbers = ("seed", "success_rate", "mean_return", "wall_time")
    if (
        not all(isinstance(data[k], (int, float)) for k in numbers)
        or not isinstance(data["budget"], dict)
        or not isinstance(data.get("curve", []), list)
    ):
        return _torn(path)
    return RunResult(**{k: data[k] for k in names if k in data})


def _torn(path: Path) -> None:
    print(
        f"textgym bench: {path} is torn or unreadable (a write cut short?); "
        "that run will be redone.",
        file=sys.stderr,
    )
    return None


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    missing = "(preset default)"
    return [
        f"{key} {old.get(key, missing)} -> {new.get(key, missing)}"
        for key in keys
        if old.get(key) != new.get(key)
    ]


def check_resumable(specs: Sequence[RunSpec]) -> dict[str, RunResult]:
    """The finished runs of ``specs``, by name, if every one ran under its spec's budget.

    Raises:
        ResumeMismatchError: a finished run was made under another budget; the message
            shows what differs and the ways out.
    """
    finished: dict[str, RunResult] = {}
    mismatched: dict[str, list[str]] = {}
    for spec in specs:
        result = load_result(spec.run_dir / "result.json")
        if result is None:
            continue
        if result.budget != spec.budget:
            mismatched[spec.name] = _differences(result.budget, spec.budget)
        else:
            finished[spec.name] = result
    if mismatched:
        changes = sorted({change for diff in mismatched.values() for change in diff})
        example = next(s.run_dir for s in specs if s.name in mismatched)
        raise ResumeMismatchError(
            f"The output directory holds {len(mismatched)} finished run(s) made under another "
            f"budget (e.g. {example}): {'; '.join(changes)} (earlier -> now). "
            "Resuming would mix two configurations in one table: use a new --out, or pass "
            "--restart to discard the earlier results and start over."
        )
    return finished


def run_all(
    specs: Sequence[RunSpec],
    algorithms: Mapping[str, Algorithm],
    progress: bool = True,
    jobs: int = 1,
) -> list[RunResult]:
    """Run every spec not already finished under the same budget, with a progress bar.

    Call this while holding the output directory's lock (:func:`locked_output`).

    Args:
        specs: The runs, in the order their results are returned.
        algorithms: What runs each spec's algorithm; with ``jobs > 1`` each must pickle (a
            module-level function or an instance of a module-level class).
        progress: Show a progress bar.
        jobs: Runs at a time, each in its own process with one torch thread. Every run
            seeds itself, so the numbers do not depend on ``jobs`` (tested).

    Raises:
        ResumeMismatchError: see :func:`check_resumable` (raised before any run starts).
        ConfigError: a spec's algorithm is not one of ``algorithms``.
    """
    finished = check_resumable(specs)
    todo = [spec for spec in specs if spec.name not in finished]
    for spec in todo:
        check_known(spec.algo, algorithms, "algorithm", None)
    bar = tqdm(total=len(specs), initial=len(finished), desc="bench", disable=not progress,
               unit="run")  # fmt: skip
    if jobs == 1 or len(todo) <= 1:
        for spec in todo:
            bar.set_postfix_str(spec.name)
            finished[spec.name] = _execute(spec, algorithms[spec.algo])
            bar.update()
    else:
        # spawn, not fork: a forked child would inherit torch's thread pool and the parent's
        # open lock; every run then imports what it needs afresh, as a rerun would.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=_one_thread) as pool:
            futures = {pool.submit(_execute, spec, algorithms[spec.algo]): spec for spec in todo}
            try:
                for future in as_completed(futures):
                    spec = futures[future]
                    finished[spec.name] = future.result()
                    bar.set_postfix_str(spec.name)
                    bar.update()
            except BaseException:
                # A run failed (or Ctrl-C): leaving the pool would otherwise wait for every
                # queued run. The runs under way finish and keep their results.
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    bar.close()
    return [finished[spec.name] for spec in specs]


def _one_thread() -> None:
    # Parallel runs on a few cores: one thread each, or their OpenMP pools fight.
    import torch

    torch.set_num_threads(1)


def _execute(spec: RunSpec, algorithm: Algorithm) -> RunResult:
    """Run ``spec`` from scratch and record its result (in the worker, so a finished run is
    kept even if the benchmark is killed before it collects it)."""
    if spec.run_dir.exists():
        # An interrupted run restarts from scratch: its partial logs would mix curves.
        shutil.rmtree(spec.run_dir)
    spec.run_dir.mkdir(parents=True)
    result = algorithm(spec)
    atomic_write(spec.run_dir / "result.json", json.dumps(asdict(result), indent=1))
    return result
