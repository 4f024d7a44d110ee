"""Bad inputs and faults of the benchmarks, one row each: refused clearly, or nothing lost.

``SWEEP`` is the table: every bad input of ``textgym bench`` and of the other benchmark
entry points (``baselines``, ``lm_accuracy``, ``throughput``) must be refused before any
work with a :class:`~textgym.errors.UserError` of the right type, in one line, with exit
status 2; every fault (a changed configuration on resume, a torn result file, a killed run
or write, a second process on one ``--out``, a read-only or full disk) must leave every
finished result whole; and every valid input next to them must pass. ``before`` records
how each row behaved on the code before this sweep (clear / unclear / silent / wrongly
refused; valid neighbours accepted or wrongly refused; faults survived / failed / lost, where
lost means a result was lost or wrong), which is where the issue's figures come from.
"""

from __future__ import annotations

import builtins
import errno
import importlib
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from benchmarks.cli import MissingFileError, ResultsFileError
from benchmarks.compare import BenchConfig, bench, make_config
from benchmarks.runner import ResumeMismatchError
from textgym.errors import ConfigError, UserError
from textgym.files import DirectoryInUseError, WriteError

ROOT = Path(__file__).resolve().parents[1]
TINY = "textgym/Reasoning-Tiny-v0"


def fast(*extra: str) -> list[str]:
    """A ``textgym bench`` of a few seconds (random agent, 5 episodes), then ``extra``."""
    base = ["--envs", TINY, "--algos", "random", "--seeds", "0"]
    return [*base, "--budget", '{"eval_episodes": 5}', "--no-progress", *extra]


def tiny_config(out: Path, eval_episodes: int = 5) -> BenchConfig:
    """The configuration of :func:`fast` through the Python API."""
    budget = {"eval_episodes": eval_episodes}
    return make_config(envs=[TINY], algos=["random"], seeds=[0], budget=budget, out=out)


def out_flags(module: str, out: Path) -> list[str]:
    """Flags that keep a module's writes inside ``out`` (never the committed results)."""
    if module == "lm_accuracy":
        return ["--out", str(out / "lm.json"), "--runs", str(out / "runs")]
    if module == "baselines":
        return ["--out", str(out), "--no-readme"]
    return ["--out", str(out)]


@dataclass
class Context:
    """What a row's check gets: a scratch directory and pytest's fixtures."""

    tmp: Path
    capsys: pytest.CaptureFixture[str]
    monkeypatch: pytest.MonkeyPatch

    @property
    def out(self) -> Path:
        return self.tmp / "out"

    def run(self, module: str, argv: list[str]) -> tuple[int, str]:
        """``benchmarks.<module>.main(argv)`` with its output kept here: (status, stderr)."""
        mod = importlib.import_module(f"benchmarks.{module}")
        self.capsys.readouterr()
        status = mod.main([*out_flags(module, self.out), *argv])
        return status, self.capsys.readouterr().err

    def bench(self, *extra: str) -> tuple[int, str]:
        return self.run("compare", fast(*extra))


@dataclass(frozen=True)
class Row:
    """One bad input, fault or valid neighbour, and how the code before the sweep took it."""

    id: str
    check: Callable[[Context], None]
    before: str
    kind: str = "input"
    notes: str = field(default="", compare=False)


# -- bad inputs: refused before any work, one line, exit status 2 ---------------------------


def refused(
    module: str, argv: list[str], error: type[UserError], fragment: str
) -> Callable[[Context], None]:
    """A check: ``argv`` raises ``error`` (``fragment`` in its message) before any work."""

    def check(ctx: Context) -> None:
        ctx.tmp.joinpath("afile").write_text("not a directory")
        args = [a.replace("{tmp}", str(ctx.tmp)) for a in argv]
        mod = importlib.import_module(f"benchmarks.{module}")
        parsed = mod.build_parser().parse([*out_flags(module, ctx.out), *args])
        with pytest.raises(error, match=re.escape(fragment)):
            mod.execute(parsed)
        status, err = ctx.run(module, args)
        assert status == 2
        assert fragment in err and err.count("\n") == 1 and "Traceback" not in err, err
        assert not ctx.out.exists(), "a refused input must not start any work"

    return check


def bench_refused(argv: list[str], fragment: str) -> Callable[[Context], None]:
    return refused("compare", argv, ConfigError, fragment)


def budget(value: str) -> list[str]:
    return fast("--budget", value)


INPUTS = [
    Row("bench-budget-unknown-key", bench_refused(budget('{"tabular_timestep": 100}'),
        "unknown key 'tabular_timestep'. Did you mean 'tabular_timesteps'?"), "silent"),
    # The old --help's own example: a key no runner reads, silently ignored.
    Row("bench-budget-help-example-key", bench_refused(budget('{"timesteps": 500}'),
        "unknown key 'timesteps'"), "silent"),
    Row("bench-budget-zero", bench_refused(budget('{"eval_episodes": 0}'),
        "--budget eval_episodes must be a positive integer, got 0"), "unclear"),
    Row("bench-budget-negative", bench_refused(budget('{"eval_episodes": -5}'),
        "--budget eval_episodes must be a positive integer, got -5"), "unclear"),
    Row("bench-budget-fraction", bench_refused(budget('{"tabular_timesteps": 1.5}'),
        "--budget tabular_timesteps must be a positive integer, got 1.5"), "silent"),
    Row("bench-budget-string", bench_refused(budget('{"eval_episodes": "20"}'),
        "--budget eval_episodes must be a positive integer, got '20'"), "unclear"),
    Row("bench-budget-bool", bench_refused(budget('{"eval_episodes": true}'),
        "--budget eval_episodes must be a positive integer, got True"), "silent"),
    Row("bench-budget-null", bench_refused(budget('{"lm_eval_every": null}'),
        "--budget lm_eval_every must be a positive integer, got None"), "silent"),
    Row("bench-budget-nan-minutes", bench_refused(budget('{"lm_minutes": NaN}'),
        "--budget lm_minutes must be a positive finite number, got nan"), "silent"),
    Row("bench-budget-inf-minutes", bench_refused(budget('{"lm_minutes": Infinity}'),
        "--budget lm_minutes must be a positive finite number, got inf"), "silent"),
    Row("bench-budget-zero-minutes", bench_refused(budget('{"lm_minutes": 0}'),
        "--budget lm_minutes must be a positive finite number, got 0"), "silent"),
    Row("bench-budget-not-json", bench_refused(budget("tabular_timesteps=100"),
        "--budget must be a JSON object"), "unclear"),
    Row("bench-budget-not-an-object", bench_refused(budget("[1, 2]"),
        "--budget must be a JSON object"), "unclear"),
    Row("bench-seed-negative", bench_refused(fast("--seeds", "-1"),
        "--seeds takes integers in [0, 2147483647], got -1"), "unclear"),
    Row("bench-seed-huge", bench_refused(fast("--seeds", "99999999999"),
        "--seeds takes integers in [0, 2147483647], got 99999999999"), "silent"),
    Row("bench-seed-twice", bench_refused(fast("--seeds", "0", "0"),
        "--seeds lists 0 twice"), "silent"),
    Row("bench-algo-typo-in-preset", bench_refused(["--algos", "qlearning", "--no-progress"],
        "unknown algorithm 'qlearning'. Did you mean 'q_learning'?"), "unclear"),
    Row("bench-algo-typo-with-envs", bench_refused(fast("--algos", "qlearnin"),
        "unknown algorithm 'qlearnin'. Did you mean 'q_learning'?"), "clear"),
    Row("bench-algo-twice", bench_refused(fast("--algos", "random", "random"),
        "--algos lists 'random' twice"), "silent"),
    Row("bench-algo-not-in-preset", bench_refused(["--algos", "reinforce", "--no-progress"],
        "the 'quick' preset runs none of them"), "unclear"),
    Row("bench-env-without-namespace", bench_refused(fast("--envs", "Reasoning-Tiny-v0"),
        "Did you mean 'textgym/Reasoning-Tiny-v0'?"), "clear"),
    Row("bench-env-twice", bench_refused(fast("--envs", TINY, TINY),
        f"--envs lists {TINY!r} twice"), "silent"),
    Row("bench-out-is-a-file", bench_refused(fast("--out", "{tmp}/afile"),
        "is a file; give a directory"), "unclear"),
    Row("baselines-seed-negative", refused("baselines",
        ["--envs", "textgym/Copy-Tiny-v0", "--algos", "random", "--seeds", "-1"],
        ConfigError, "--seeds takes integers in [0, 2147483647], got -1"), "unclear"),
    Row("baselines-seed-twice", refused("baselines",
        ["--envs", "textgym/Copy-Tiny-v0", "--algos", "random", "--seeds", "0", "0"],
        ConfigError, "--seeds lists 0 twice"), "silent"),
    Row("baselines-env-typo", refused("baselines",
        ["--envs", "textgym/Copy-Tiny-v1", "--algos", "random"],
        ConfigError, "Did you mean 'textgym/Copy-Tiny-v0'?"), "clear"),
    Row("baselines-render-only-without-results", refused("baselines", ["--render-only"],
        MissingFileError, "baselines.json does not exist"), "unclear"),
    Row("lm-time-budget-zero", refused("lm_accuracy", ["--time-budget", "0"],
        ConfigError, "--time-budget must be a positive finite number, got 0.0"), "silent"),
    Row("lm-time-budget-nan", refused("lm_accuracy", ["--time-budget", "nan"],
        ConfigError, "--time-budget must be a positive finite number, got nan"), "silent"),
    Row("lm-eval-every-zero", refused("lm_accuracy", ["--eval-every", "0"],
        ConfigError, "--eval-every must be a positive integer, got 0"), "silent"),
    Row("lm-threads-zero", refused("lm_accuracy", ["--threads", "0"],
        ConfigError, "--threads must be a positive integer, got 0"), "silent"),
    Row("lm-algo-typo", refused("lm_accuracy", ["--algos", "grpoo"],
        ConfigError, "Did you mean 'grpo'?"), "unclear"),
    Row("lm-env-typo", refused("lm_accuracy", ["--envs", "textgym/Reasoning-v9"],
        ConfigError, "unknown env id 'textgym/Reasoning-v9'"), "unclear"),
    Row("lm-seed-negative", refused("lm_accuracy", ["--seeds", "-3"],
        ConfigError, "--seeds takes integers in [0, 2147483647], got -3"), "unclear"),
    Row("lm-combine-missing-part", refused("lm_accuracy", ["--combine", "{tmp}/nope.json"],
        MissingFileError, "nope.json does not exist"), "unclear"),
    Row("throughput-steps-zero", refused("throughput", ["--envs", "textgym/Copy-v0", "--steps", "0"],
        ConfigError, "--steps must be a positive integer, got 0"), "unclear"),
    Row("throughput-steps-below-num-envs", refused("throughput",
        ["--envs", "textgym/Copy-v0", "--steps", "10"],
        ConfigError, "--steps (10) must be at least --num-envs (64)"), "unclear"),
    Row("throughput-num-envs-zero", refused("throughput",
        ["--envs", "textgym/Copy-v0", "--num-envs", "0"],
        ConfigError, "--num-envs must be a positive integer, got 0"), "unclear"),
    Row("throughput-repeats-zero", refused("throughput",
        ["--envs", "textgym/Copy-v0", "--repeats", "0"],
        ConfigError, "--repeats must be a positive integer, got 0"), "unclear"),
    Row("throughput-env-typo", refused("throughput", ["--envs", "textgym/Copy-v9"],
        ConfigError, "Did you mean 'textgym/Copy-v0'?"), "unclear"),
]  # fmt: skip


# -- valid neighbours: must pass ------------------------------------------------------------


def integral_float_budget(ctx: Context) -> None:
    # JSON writers emit 5.0 for 5: a count given as an integral float is a count.
    config = make_config(envs=[TINY], algos=["random"], budget={"tabular_timesteps": 3000.0})
    assert config.budget["tabular_timesteps"] == 3000
    assert type(config.budget["tabular_timesteps"]) is int
    status, err = ctx.bench("--budget", '{"eval_episodes": 5.0}')
    assert status == 0, err
    rows = json.loads((ctx.out / "results.json").read_text())["results"]
    assert rows[0]["budget"]["eval_episodes"] == 5


def resume_with_more_seeds(ctx: Context) -> None:
    # Same budget, a larger selection: the finished run is reused, only the new one runs.
    assert ctx.bench()[0] == 0
    done = ctx.out / "runs" / "Reasoning-Tiny-v0__random__0" / "result.json"
    record = json.loads(done.read_text())
    record["success_rate"] = 0.123  # a marker: the resumed benchmark must reuse this run
    done.write_text(json.dumps(record))
    status, err = ctx.bench("--seeds", "0", "1")
    assert status == 0, err
    (row,) = json.loads((ctx.out / "results.json").read_text())["results"]
    assert row["seeds"] == [0, 1]
    assert json.loads(done.read_text())["success_rate"] == 0.123


VALID = [
    Row("bench-budget-integral-float", integral_float_budget, "wrongly refused"),
    Row("bench-resume-with-more-seeds", resume_with_more_seeds, "accepted"),
]


# -- faults: survived, nothing lost ---------------------------------------------------------


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` (but the lock file), by relative path."""
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def result_of(ctx: Context, seed: int = 0) -> Path:
    return ctx.out / "runs" / f"Reasoning-Tiny-v0__random__{seed}" / "result.json"


def resume_with_another_budget(ctx: Context) -> None:
    assert ctx.bench()[0] == 0
    before = snapshot(ctx.out)
    status, err = ctx.bench("--budget", '{"eval_episodes": 6}')
    assert status == 2 and err.count("\n") == 1, err
    assert "eval_episodes 5 -> 6" in err and "new --out" in err and "--restart" in err, err
    assert snapshot(ctx.out) == before  # refused before anything was touched
    with pytest.raises(ResumeMismatchError):
        bench(tiny_config(ctx.out, eval_episodes=6), progress=False)
    # The way out the message names: --restart runs again under the new budget.
    status, err = ctx.bench("--budget", '{"eval_episodes": 6}', "--restart")
    assert status == 0, err
    assert json.loads(result_of(ctx).read_text())["budget"]["eval_episodes"] == 6


def torn_result(content: str) -> Callable[[Context], None]:
    def check(ctx: Context) -> None:
        assert ctx.bench("--seeds", "0", "1")[0] == 0
        whole = json.loads(result_of(ctx).read_text())
        kept = result_of(ctx, 1).read_bytes()
        result_of(ctx).write_text(content.format(half=result_of(ctx).read_text()[:60]))
        status, err = ctx.bench("--seeds", "0", "1")
        assert status == 0, err
        assert "torn or unreadable" in err and "redone" in err, err
        redone = json.loads(result_of(ctx).read_text())  # whole again, same numbers
        assert redone["success_rate"] == whole["success_rate"]
        assert result_of(ctx, 1).read_bytes() == kept  # the other run was not touched
        (row,) = json.loads((ctx.out / "results.json").read_text())["results"]
        assert row["seeds"] == [0, 1]

    return check


def killed_mid_run(ctx: Context) -> None:
    stale = result_of(ctx).parent
    stale.mkdir(parents=True)
    (stale / "progress.csv").write_text("step,time,key,value\n999,0.0,stale,1.0\n")
    assert ctx.bench()[0] == 0
    assert json.loads(result_of(ctx).read_text())["seed"] == 0
    assert not (stale / "progress.csv").exists()


def temporary_files_of_a_killed_write(ctx: Context) -> None:
    assert ctx.bench()[0] == 0
    leftovers = [
        result_of(ctx).parent / ".result.json.k1ll3d.tmp",  # textgym.files.atomic_write's
        ctx.out / ".results.csv.k1ll3d.tmp",
        ctx.out / "results.json.tmp",  # the earlier writer's name
    ]
    for path in leftovers:
        path.write_text('{"half": ')
    assert ctx.bench()[0] == 0
    assert not [p for p in leftovers if p.exists()]
    assert json.loads(result_of(ctx).read_text())["seed"] == 0


def second_process_on_one_out(ctx: Context) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from textgym.files import DirectoryLock; "
         "lock = DirectoryLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(120)",
         str(ctx.out)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        status, err = ctx.bench()
        assert status == 2 and err.count("\n") == 1, err
        assert "is in use by another process" in err and f"pid {holder.pid}" in err, err
        assert "choose another --out" in err
        assert not (ctx.out / "runs").exists()  # nothing run, nothing doubled
        with pytest.raises(DirectoryInUseError):
            bench(tiny_config(ctx.out), progress=False)
    finally:
        holder.kill()
        holder.wait()
    assert ctx.bench()[0] == 0  # the lock died with its holder


@contextmanager
def failing_writes(monkeypatch: pytest.MonkeyPatch, directory: Path, code: int) -> Iterator[None]:
    """Writes under ``directory`` fail with ``code`` (the tests run as root: chmod is moot).

    Every way a file is written is covered: ``os.open`` (``tempfile``, locks), ``open``,
    ``os.mkdir``; reads still work.
    """
    inside = str(directory.resolve())

    def under(path: Any) -> bool:
        try:
            return os.path.abspath(os.fspath(path)).startswith(inside)
        except TypeError:  # a file descriptor
            return False

    def deny(path: Any) -> None:
        raise OSError(code, os.strerror(code), os.fspath(path))

    real_os_open, real_open, real_mkdir = os.open, builtins.open, os.mkdir
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & writing and under(path):
            deny(path)
        return real_os_open(path, flags, *args, **kwargs)

    def open_(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if set(mode) & set("wax+") and under(file):
            deny(file)
        return real_open(file, mode, *args, **kwargs)

    def mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
        if under(path):
            deny(path)
        real_mkdir(path, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(os, "open", os_open)
        m.setattr(builtins, "open", open_)
        m.setattr(io, "open", open_)
        m.setattr(os, "mkdir", mkdir)
        yield


def read_only_out(ctx: Context) -> None:
    assert ctx.bench()[0] == 0
    before = snapshot(ctx.out)
    with failing_writes(ctx.monkeypatch, ctx.out, errno.EROFS):
        status, err = ctx.bench("--seeds", "0", "1")
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "is not writable; choose a directory you can write to" in err, err
    assert snapshot(ctx.out) == before


def full_disk_on_the_summary(ctx: Context) -> None:
    """ENOSPC when the summary is written: the finished runs survive and are reused."""
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if "results" in os.path.basename(os.readlink(f"/proc/self/fd/{fd}")):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    with ctx.monkeypatch.context() as m:
        m.setattr(os, "fsync", fsync)
        status, err = ctx.bench("--seeds", "0", "1")
    assert status == 2 and err.count("\n") == 1, err
    assert "the disk is full; free some space or write to another directory" in err, err
    assert not list(ctx.out.glob("*.tmp")) and not (ctx.out / "results.json").exists()
    runs = {seed: result_of(ctx, seed).read_bytes() for seed in (0, 1)}
    status, err = ctx.bench("--seeds", "0", "1")  # space freed: nothing is run again
    assert status == 0, err
    assert {seed: result_of(ctx, seed).read_bytes() for seed in (0, 1)} == runs
    with pytest.raises(WriteError), failing_writes(ctx.monkeypatch, ctx.out, errno.ENOSPC):
        bench(tiny_config(ctx.out), progress=False)


def baselines_torn_results(ctx: Context) -> None:
    ctx.out.mkdir()
    (ctx.out / "baselines.json").write_text('{"meta": {"date": "2026-01-01", "mach')
    status, err = ctx.run("baselines", ["--render-only"])
    assert status == 2 and "baselines.json is torn or not JSON" in err, err
    assert err.count("\n") == 1
    (ctx.out / "baselines.json").write_text('{"runs": []}')
    mod = importlib.import_module("benchmarks.baselines")
    args = mod.build_parser().parse([*out_flags("baselines", ctx.out), "--render-only"])
    with pytest.raises(ResultsFileError, match="is not a baselines result"):
        mod.execute(args)
    assert not (ctx.out / "baselines.md").exists()


def lm_combine_torn_part(ctx: Context) -> None:
    part = ctx.tmp / "part.json"
    part.write_text('{"command": "x", "machine": {}, "results": [{"algo": "gr')
    ctx.out.mkdir()
    (ctx.out / "lm.json").write_text("the earlier summary")
    status, err = ctx.run("lm_accuracy", ["--combine", str(part)])
    assert status == 2 and err.count("\n") == 1, err
    assert "part.json is torn or not JSON" in err and "run that part again" in err, err
    part.write_text('{"command": "x", "machine": {}, "results": [{"algo": "grpo"}]}')
    status, err = ctx.run("lm_accuracy", ["--combine", str(part)])
    assert status == 2 and "has a run without env_id" in err, err
    assert (ctx.out / "lm.json").read_text() == "the earlier summary"  # nothing overwritten


FAULTS = [
    Row("bench-resume-with-another-budget", resume_with_another_budget, "lost", "fault",
        "the old code reused results made under the old budget: a table of two configs"),
    Row("bench-torn-result-json", torn_result("{half}"), "failed", "fault",
        "the old code crashed on the JSONDecodeError"),
    Row("bench-result-json-not-a-record", torn_result('{{"env_id": "x"}}'), "failed", "fault"),
    Row("bench-empty-result-json", torn_result(""), "failed", "fault"),
    Row("bench-killed-mid-run", killed_mid_run, "survived", "fault"),
    Row("bench-temporary-files-of-a-killed-write", temporary_files_of_a_killed_write,
        "failed", "fault", "left behind"),
    Row("bench-second-process-on-one-out", second_process_on_one_out, "failed", "fault",
        "the old code ran both at once, each deleting the run directory the other was using"),
    Row("bench-read-only-out", read_only_out, "failed", "fault", "traceback"),
    Row("bench-full-disk-on-the-summary", full_disk_on_the_summary, "failed", "fault",
        "traceback; results.csv written in place could be torn"),
    Row("baselines-torn-results", baselines_torn_results, "failed", "fault", "traceback"),
    Row("lm-combine-torn-part", lm_combine_torn_part, "failed", "fault", "traceback"),
]  # fmt: skip

SWEEP = [*INPUTS, *VALID, *FAULTS]


@pytest.mark.parametrize("row", SWEEP, ids=[row.id for row in SWEEP])
def test_sweep(
    row: Row, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    row.check(Context(tmp_path, capsys, monkeypatch))


def test_sweep_ids_are_unique() -> None:
    assert len({row.id for row in SWEEP}) == len(SWEEP)


def test_the_module_entry_point_prints_a_user_error_in_one_line(tmp_path: Path) -> None:
    # `python -m benchmarks.compare` is an entry of its own, beside `textgym bench`.
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.compare", "--budget", '{"sb3_timestep": 5}',
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == (
        "textgym bench: error: --budget: unknown key 'sb3_timestep'. Did you mean "
        "'sb3_timesteps'? Known keys: tabular_timesteps, sb3_timesteps, eval_episodes, "
        "lm_updates, lm_minutes, lm_eval_every, lm_threads.\n"
    )
    assert not (tmp_path / "out").exists()


def test_results_json_stores_the_whole_configuration(tmp_path: Path) -> None:
    from benchmarks import compare

    assert compare.main([*fast("--seeds", "3", "1"), "--out", str(tmp_path)]) == 0
    config = json.loads((tmp_path / "results.json").read_text())["config"]
    assert config == {
        "pairs": {TINY: ["random"]},
        "seeds": [3, 1],
        "lm_seeds": [3, 1],
        "budget": {**compare.PRESETS["quick"].budget, "eval_episodes": 5},
    }
