"""Compare algorithms across the suite: ``textgym bench`` / ``python -m benchmarks.compare``.

One command answers: which algorithm does best on which task, by how much, with what
certainty, and how much RL lifts the pre-trained model.

    textgym bench --jobs 2               # --preset quick: the README's main job (<= 10 min)
    textgym bench --preset full --jobs 2 # every family, 5 seeds, 100 LM updates (2 h on 2 cores)
    textgym bench --algos random oracle q_learning --envs textgym/Reasoning-Tiny-v0

Every (env, algorithm, seed) run writes ``runs/<env>__<algo>__<seed>/result.json`` when it
finishes, with the budget it ran under; a rerun skips finished runs, so an interrupted
benchmark resumes. It resumes only under the same budget: a run finished under another one is
refused (use a new ``--out``, or ``--restart`` to start over), so one table never mixes two
configurations. A torn ``result.json`` (a kill mid-write) counts as unfinished and its run
is redone. ``--out`` is locked while a benchmark uses it: a second one is refused. Scores are
measured on the held-out split (``split="test"``) where the task has one, except on the tiny
variants, whose fixed pool of problems is the task (tabular agents memorise it). The summary has,
per env x algorithm, the mean over seeds, a 95% stratified-bootstrap confidence interval and
the interquartile mean (scipy), and is written as ``results.json``, ``results.csv``,
``results.md`` and two plots (learning curves; final scores with CIs).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.algorithms import (
    ALGORITHMS,
    BUDGET_KEYS,
    LM_ALGOS,
    PRESETS,
    check_algos,
    check_budget,
    parse_budget,
)
from benchmarks.cli import (
    MissingFileError,
    ResultsFileError,
    check_env_ids,
    check_known,
    check_out_dir,
    check_positive,
    check_seeds,
    run_main,
)
from benchmarks.render import flat_line, panels, save_png, table
from benchmarks.runner import (
    ResumeMismatchError,
    RunResult,
    RunSpec,
    locked_output,
    run_all,
)
from benchmarks.stats import bootstrap_ci, group_by, iqm, mean
from textgym.errors import ConfigError
from textgym.files import atomic_write
from textgym.tools import flags
from textgym.tools.flags import FlagParser, flag

#: Re-exported: the errors a caller of :func:`bench` and :func:`make_config` catches.
__all__ = [
    "PRESETS",
    "BenchConfig",
    "MissingFileError",
    "ResultsFileError",
    "ResumeMismatchError",
    "bench",
    "main",
    "make_config",
]

RESULTS = Path(__file__).parent / "results"


# -- the summary ---------------------------------------------------------------------------


def aggregate(results: Sequence[RunResult]) -> list[dict[str, Any]]:
    """Per env x algorithm: mean, 95% bootstrap CI and IQM of held-out success over seeds."""
    rows = []
    for (env_id, algo), runs in group_by(results, lambda r: (r.env_id, r.algo)).items():
        scores = np.array([r.success_rate for r in sorted(runs, key=lambda r: r.seed)])
        low, high = bootstrap_ci(scores)
        rows.append(
            {
                "env_id": env_id,
                "algo": algo,
                "success_mean": float(scores.mean()),
                "ci_low": low,
                "ci_high": high,
                "iqm": iqm(scores),
                "return_mean": mean(r.mean_return for r in runs),
                "seeds": sorted(r.seed for r in runs),
                "budget": runs[0].budget,
                "wall_time_s": mean(r.wall_time for r in runs),
            }
        )
    return rows


def before_after(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The headline: the pre-trained model's held-out accuracy before and after each RL algorithm."""
    out = []
    by_env = {env: {r["algo"]: r for r in group} for env, group in group_by(rows, _env).items()}
    for env_id, algos in by_env.items():
        if "pretrained" not in algos:
            continue
        before = algos["pretrained"]["success_mean"]
        for algo in ("reinforce", "ppo", "grpo"):
            if algo in algos:
                after = algos[algo]["success_mean"]
                out.append(
                    {
                        "env_id": env_id,
                        "algo": algo,
                        "before": before,
                        "after": after,
                        "lift": after - before,
                    }
                )
    return out


def _env(row: Mapping[str, Any]) -> str:
    return row["env_id"]


def markdown(rows: Sequence[dict[str, Any]], lifts: Sequence[dict[str, Any]]) -> str:
    """The results table, then the before/after-RL table."""
    header = ["env", "algorithm", "success (mean)", "95% CI", "IQM", "return", "seeds"]
    cells = [
        [
            r["env_id"], r["algo"], f"{r['success_mean']:.1%}",
            f"[{r['ci_low']:.1%}, {r['ci_high']:.1%}]", f"{r['iqm']:.1%}",
            f"{r['return_mean']:.3f}", f"{len(r['seeds'])}", f"{r['wall_time_s']:.0f} s",
        ]
        for r in rows
    ]  # fmt: skip
    text = table([*header, "wall time/run"], cells, "llrlrrrr")
    if lifts:
        header = ["env", "RL algorithm", "before RL", "after RL", "lift (points)"]
        cells = [
            [x["env_id"], x["algo"], f"{x['before']:.1%}", f"{x['after']:.1%}",
             f"{100 * x['lift']:+.1f}"]
            for x in lifts
        ]  # fmt: skip
        text += "\n\n" + table(header, cells, "llrrr")
    return text + "\n"


def _color(algo: str) -> str:
    """One colour per algorithm, the same in every panel and plot."""
    return f"C{sorted(ALGORITHMS).index(algo)}"


def plot(results: Sequence[RunResult], rows: Sequence[dict[str, Any]], out: Path) -> None:
    """``curves.png`` (success over wall time, per env) and ``scores.png`` (means with CIs)."""
    envs = sorted({r["env_id"] for r in rows})
    fig, axes = panels(len(envs), 5, 3.6)
    for ax, env_id in zip(axes, envs, strict=True):
        for algo in sorted({r.algo for r in results if r.env_id == env_id}):
            runs = [r for r in results if r.env_id == env_id and r.algo == algo]
            curves = [r.curve for r in runs if r.curve]
            for i, c in enumerate(curves):
                ax.plot(
                    [p["step"] for p in c],
                    [p["value"] for p in c],
                    alpha=0.8,
                    color=_color(algo),
                    label=algo if i == 0 else None,
                )
            if not curves:  # a flat line at the final score (random, oracle, pre-trained)
                scores = [r.success_rate for r in runs]
                flat_line(ax, scores, lw=1, color=_color(algo), label=algo)
        ax.set(
            title=env_id.split("/")[-1],
            xlabel="training steps",
            ylabel="success rate",
            ylim=(-0.02, 1.02),
        )
        ax.legend(fontsize=7)
    save_png(fig, out / "curves.png", dpi=120)

    fig, axes = panels(len(envs), 5, 3.2)
    for ax, env_id in zip(axes, envs, strict=True):
        sub = [r for r in rows if r["env_id"] == env_id]
        y = np.arange(len(sub))
        means = np.array([r["success_mean"] for r in sub])
        err = np.array(
            [[m - r["ci_low"], r["ci_high"] - m] for m, r in zip(means, sub, strict=True)]
        ).T
        ax.barh(y, means, xerr=err, color=[_color(r["algo"]) for r in sub], capsize=3)
        ax.set_yticks(y, [r["algo"] for r in sub])
        ax.set(title=env_id.split("/")[-1], xlabel="held-out success (95% CI)", xlim=(0, 1.05))
    save_png(fig, out / "scores.png", dpi=120)


def write_outputs(
    results: Sequence[RunResult], out: Path, config: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """results.json / .csv / .md and the plots, each written atomically.

    ``config`` (the benchmark's whole configuration) is stored in results.json beside the
    numbers it produced.

    Raises:
        WriteError: ``out`` cannot be written (full disk, read-only, permissions).
    """
    rows = aggregate(results)
    lifts = before_after(rows)
    summary: dict[str, Any] = {"results": rows, "before_after_rl": lifts}
    if config is not None:
        summary["config"] = dict(config)
    atomic_write(out / "results.json", json.dumps(summary, indent=2))
    csv_text = io.StringIO(newline="")
    writer = csv.DictWriter(csv_text, fieldnames=[k for k in rows[0] if k != "budget"] + ["budget"])
    writer.writeheader()
    for r in rows:
        writer.writerow(
            {**r, "seeds": " ".join(map(str, r["seeds"])), "budget": json.dumps(r["budget"])}
        )
    atomic_write(out / "results.csv", csv_text.getvalue())
    atomic_write(out / "results.md", markdown(rows, lifts))
    plot(results, rows, out)
    return rows


# -- the command ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchConfig:
    """Everything that decides what ``textgym bench`` runs, validated.

    Build it with :func:`make_config` (which checks every value) or by hand and call
    :meth:`check`.
    """

    pairs: tuple[tuple[str, tuple[str, ...]], ...]
    seeds: tuple[int, ...]
    lm_seeds: tuple[int, ...]
    budget: dict[str, int | float]
    out: Path

    def check(self) -> BenchConfig:
        """Validate every field before any work.

        Raises:
            ConfigError: naming the flag and the valid range or values.
        """
        check_env_ids([env_id for env_id, _ in self.pairs])
        for _, algos in self.pairs:
            check_algos(algos)
        check_seeds(self.seeds)
        check_seeds(self.lm_seeds)
        missing = [key for key in BUDGET_KEYS if key not in self.budget]
        # These have defaults in the LM runner; every other key is read as is.
        missing = [key for key in missing if key not in ("lm_eval_every", "lm_threads")]
        if missing:
            raise ConfigError(f"--budget lacks {', '.join(missing)}.")
        check_budget(self.budget)
        check_out_dir(self.out)
        if not self.specs():
            raise ConfigError("The selection has no run: check --envs and --algos.")
        return self

    def specs(self) -> list[RunSpec]:
        """One spec per (env, algorithm, seed); LM trainers use ``lm_seeds``."""
        return [
            RunSpec(
                env_id,
                algo,
                seed,
                self.budget,
                self.out / "runs" / f"{env_id.split('/')[-1]}__{algo}__{seed}",
            )
            for env_id, algos in self.pairs
            for algo in algos
            for seed in (self.lm_seeds if algo in LM_ALGOS else self.seeds)
        ]

    def as_dict(self) -> dict[str, Any]:
        """The configuration as stored in results.json."""
        return {
            "pairs": {env_id: list(algos) for env_id, algos in self.pairs},
            "seeds": list(self.seeds),
            "lm_seeds": list(self.lm_seeds),
            "budget": dict(self.budget),
        }


def make_config(
    preset: str = "quick",
    envs: Sequence[str] | None = None,
    algos: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    budget: Mapping[str, Any] | None = None,
    out: str | Path = "bench_results",
) -> BenchConfig:
    """The configuration of a run of ``preset`` with the command line's overrides, checked.

    Args:
        preset: A key of :data:`PRESETS`.
        envs: Replace the preset's envs (each runs the preset's algorithms for it, or
            ``random`` and ``oracle`` if the preset lacks it, or ``algos``).
        algos: Restrict the preset's algorithms to these (or, with ``envs``, run these).
        seeds: Replace the preset's seeds, for every algorithm.
        budget: Override budget keys (see :data:`BUDGET_KEYS`).
        out: The output directory.

    Raises:
        ConfigError: any value out of range, unknown or repeated, or a selection with no run.
    """
    check_known(preset, PRESETS, "preset", "--preset")
    chosen = PRESETS[preset]
    # Check what the user typed first, so a typo is named as typed, not as an empty selection.
    if algos:
        check_algos(algos)
    if envs:
        check_env_ids(envs)
    if seeds:
        check_seeds(seeds)
    overrides = check_budget(budget or {})
    pairs = chosen.pairs
    if envs:
        pairs = tuple((e, tuple(algos or dict(pairs).get(e, ("random", "oracle")))) for e in envs)
    elif algos:
        pairs = tuple((e, tuple(a for a in algs if a in algos)) for e, algs in pairs)
        pairs = tuple((e, algs) for e, algs in pairs if algs)
        if not pairs:
            listed = sorted({a for _, algs in chosen.pairs for a in algs})
            raise ConfigError(
                f"--algos {' '.join(algos)}: the {preset!r} preset runs none of them (it runs "
                f"{', '.join(listed)}); add --envs to choose the envs yourself."
            )
    return BenchConfig(
        pairs=pairs,
        seeds=tuple(seeds) if seeds else chosen.seeds,
        lm_seeds=tuple(seeds) if seeds else (chosen.lm_seeds or chosen.seeds),
        budget={**chosen.budget, **overrides},
        out=Path(out),
    ).check()


def bench(
    config: BenchConfig, restart: bool = False, progress: bool = True, jobs: int = 1
) -> list[dict[str, Any]]:
    """Run ``config`` into ``config.out`` (resuming it) and write the summary.

    Args:
        config: A checked configuration (see :func:`make_config`).
        restart: Discard every earlier result in ``config.out`` first.
        progress: Show a progress bar.
        jobs: Runs at a time, one process each (the numbers do not depend on it).

    Returns:
        The summary rows (as in results.json).

    Raises:
        DirectoryInUseError: another process is using ``config.out``.
        ResumeMismatchError: ``config.out`` holds runs made under another budget.
        WriteError: ``config.out`` cannot be written.
    """
    with locked_output(config.out, restart):
        # Small networks on 2 cores: one thread avoids contention (LM trainers set their own).
        torch.set_num_threads(1)
        results = run_all(config.specs(), ALGORITHMS, progress=progress, jobs=jobs)
        return write_outputs(results, config.out, config.as_dict())


@dataclass
class BenchArgs:
    """The flags of ``textgym bench``."""

    preset: str = flag("quick", choices=sorted(PRESETS))
    """which envs, algorithms, seeds and budget to run"""
    envs: list[str] | None = flag(None, nargs="*")
    """override the preset's envs"""
    algos: list[str] | None = flag(None, nargs="*")
    """override the preset's algorithms"""
    seeds: list[int] | None = flag(None, nargs="*")
    """override the preset's seeds"""
    budget: str = "{}"
    """JSON overrides of the preset's budget, e.g. '{"tabular_timesteps": 3000,
    "eval_episodes": 20}' (the keys are below)"""
    out: Path = Path("bench_results")
    """output directory (a rerun resumes it)"""
    restart: bool = False
    """discard every earlier result in --out and start over"""
    progress: bool = True
    """show a progress bar"""
    jobs: int = 1
    """runs at a time, one process and one thread each (2 on 2 cores); the numbers do not
    depend on it"""


def build_parser() -> FlagParser[BenchArgs]:
    """The command line of ``textgym bench``."""
    keys = "\n".join(f"  {key}: {what}" for key, (_, what) in BUDGET_KEYS.items())
    return flags.build_parser(BenchArgs, "textgym bench", __doc__, epilog=f"--budget keys:\n{keys}")


def execute(args: BenchArgs) -> int:
    """Run the parsed command line; a user error raises (a :class:`UserError`).

    Raises:
        ConfigError: a flag out of range, unknown or repeated (before any work).
        ResumeMismatchError, DirectoryInUseError, WriteError: see :func:`bench`.
    """
    config = make_config(
        args.preset, args.envs, args.algos, args.seeds, parse_budget(args.budget), args.out
    )
    check_positive(args.jobs, "--jobs", integer=True)
    rows = bench(config, restart=args.restart, progress=args.progress, jobs=args.jobs)
    print(markdown(rows, before_after(rows)))
    print(f"wrote {args.out}/results.json, results.csv, results.md, curves.png, scores.png")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run a preset (or a custom selection), then write and print the summary.

    A user error (a bad flag value, an ``--out`` in use or holding another configuration,
    an unwritable directory) is printed in one line and returns 2.
    """
    return run_main(build_parser(), execute, argv)


if __name__ == "__main__":
    raise SystemExit(main())
