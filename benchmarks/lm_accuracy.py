"""The headline result: RL raises the default model's held-out accuracy.

PPO and GRPO fine-tune textgym's embedded default model (a small GPT-2 warm-started on
noisy demonstrations) with the env's verifiable reward, on 2 CPU threads and a training
time budget, and evaluate it greedily on the held-out ``split="test"`` before, during and
after training (fixed evaluation seeds, so every evaluation sees the same problems).

    python -m benchmarks.lm_accuracy                                  # all recipes, seed 1
    python -m benchmarks.lm_accuracy --algos grpo --envs textgym/Reasoning-v0 --seeds 1 2 3

Writes ``benchmarks/results/lm_accuracy.json`` (before/after, curves, settings, commands)
and ``benchmarks/results/lm_accuracy.png`` (held-out success rate against training time).
The time budget counts collection and updates; evaluation runs outside it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents.common.logger import read_log
from agents.lm.trainer import LMTrainer
from agents.train import trainer_class
from benchmarks.cli import (
    ResultsFileError,
    check_env_ids,
    check_out_file,
    check_positive,
    check_seeds,
    check_unique,
    read_json,
    run_main,
)
from benchmarks.render import panels, save_png, table
from benchmarks.stats import group_by
from textgym.files import atomic_write
from textgym.tools import flags
from textgym.tools.flags import FlagParser

RESULTS = Path(__file__).parent / "results"

#: Hyperparameters per (algorithm, env): everything else is the config's default.
#: Settings per (algorithm, family): a family's versions share them ("textgym/Reasoning"
#: covers Reasoning-v0 and Reasoning-v1; Reasoning-Easy-v1 is another family's variant).
RECIPES: dict[tuple[str, str], dict[str, Any]] = {
    ("grpo", "textgym/Reasoning"): dict(
        num_envs=128, group_size=8, learning_rate=1e-4, kl_coef=0.0
    ),
    ("ppo", "textgym/Reasoning"): dict(num_envs=128, learning_rate=5e-5, kl_coef=0.0),
    ("grpo", "textgym/CustomerService"): dict(
        num_envs=64, group_size=8, learning_rate=1e-4, kl_coef=0.0
    ),
    ("ppo", "textgym/CustomerService"): dict(
        num_envs=64, learning_rate=5e-5, kl_coef=0.0, missing_end_penalty=-0.5
    ),
}
EVAL_EPISODES = {"textgym/Reasoning": 512, "textgym/CustomerService": 256}


def family(env_id: str) -> str:
    """An id without its version: the key of :data:`RECIPES` and :data:`EVAL_EPISODES`."""
    return env_id.rsplit("-v", 1)[0]


def recipe(algo: str, env_id: str) -> dict[str, Any]:
    """The settings ``algo`` trains with on ``env_id`` (``{}``: the config's defaults)."""
    return RECIPES.get((algo, family(env_id)), {})


def lm_trainer(
    algo: str,
    env_id: str,
    seed: int,
    run_dir: Path,
    time_budget: float,
    eval_every: int,
    eval_episodes: int,
    total_updates: int = 100_000,
    fresh: bool = False,
    **settings: Any,
) -> LMTrainer:
    """The trainer of ``algo`` on ``env_id`` under a time budget, with the env's recipe.

    Every LM benchmark builds its trainers here, so ``textgym bench`` and this benchmark run
    the same recipes the same way: no checkpoints, no progress bar.

    Args:
        algo: An LM algorithm (``grpo``, ``ppo``, ``reinforce``).
        env_id: The env to train on.
        seed: The run's seed.
        run_dir: Where the run writes its log and report.
        time_budget: Training seconds (collection and updates; evaluation runs outside).
        eval_every: Updates between held-out evaluations.
        eval_episodes: Held-out episodes per evaluation.
        total_updates: The update cap (0: only evaluate).
        fresh: Delete ``run_dir`` first, so that a run never appends to an old run's log.
        **settings: Further config fields (``model``, ``threads``, ``tensorboard``).

    Raises:
        ConfigError: an unknown algorithm or a config value out of range.
    """
    cls = trainer_class(algo)
    config = cls.config_class(
        env_id=env_id, seed=seed, run_dir=str(run_dir), time_budget=time_budget,
        total_updates=total_updates, eval_every=eval_every, eval_episodes=eval_episodes,
        checkpoint_every=0, progress=False, **settings, **recipe(algo, env_id),
    )  # fmt: skip
    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    return cls(config)


def run_one(
    algo: str,
    env_id: str,
    seed: int,
    time_budget: float,
    eval_every: int,
    threads: int,
    run_root: Path,
    model: str,
    total_updates: int = 100_000,
) -> dict[str, Any]:
    """Train one (algorithm, env, seed) and return its report with the learning curve.

    ``total_updates=0`` only evaluates ``model`` (same protocol, no training).
    """
    settings = recipe(algo, env_id)
    run_dir = run_root / f"{env_id.replace('/', '_')}__{algo}__{seed}"
    eval_episodes = EVAL_EPISODES.get(family(env_id), 256)
    start = time.perf_counter()
    trainer = lm_trainer(
        algo, env_id, seed, run_dir, time_budget, eval_every, eval_episodes, total_updates,
        fresh=True, model=model, threads=threads,
    ).learn()  # fmt: skip
    report = trainer.report()
    if total_updates == 0:
        report["algo"] = "eval-only"  # no update ran: the algorithm only built the evaluator
    log = read_log(run_dir)
    seconds = {step: value for step, _, value in log.get("charts/train_seconds", [])}
    curve = [
        {"update": step, "train_seconds": round(seconds.get(step, 0.0), 1), "success_rate": value}
        for step, _, value in log.get("eval/success_rate", [])
    ]
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in settings.items())
    report.update(
        {
            "recipe": settings,
            "curve": curve,
            "wall_seconds": round(time.perf_counter() - start, 1),
            "command": f"textgym train --algo {algo} --env {env_id} --seed {seed} --time-budget {time_budget:g} "
            f"--eval-every {eval_every} --eval-episodes {eval_episodes} --threads {threads} {flags}",
        }
    )
    return report


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """Held-out success rate against training seconds, one panel per env."""
    envs = sorted({r["env_id"] for r in results})
    fig, axes = panels(len(envs), 5.5, 4)
    for ax, env_id in zip(axes, envs, strict=True):
        for r in results:
            if r["env_id"] != env_id:
                continue
            xs = [p["train_seconds"] for p in r["curve"]]
            ys = [p["success_rate"] for p in r["curve"]]
            ax.plot(xs, ys, marker="o", ms=3, label=f"{r['algo']} seed {r['seed']}")
        ax.set_title(f"{env_id} (held-out {results[0]['split']} split, greedy)")
        ax.set_xlabel("training seconds (collection + updates)")
        ax.set_ylabel("success rate")
        ax.grid(alpha=0.3)
        ax.legend()
    save_png(fig, path, dpi=120)


def read_part(path: Path) -> dict[str, Any]:
    """One result file to combine, checked: its command, machine and runs.

    Raises:
        MissingFileError: there is no such file.
        ResultsFileError: it is torn, or not a result of this benchmark.
    """
    part = read_json(
        path,
        missing=f"--combine: {path} does not exist.",
        torn=f"--combine: {path} is torn or not JSON ({{exc}}); run that part again.",
    )
    keys = ("command", "machine", "results")
    if not isinstance(part, dict) or any(k not in part for k in keys):
        raise ResultsFileError(
            f"--combine: {path} is not an lm_accuracy result (it needs {', '.join(keys)})."
        )
    needed = ("env_id", "algo", "seed", "before", "after", "curve", "train_seconds")
    for r in part["results"]:
        if not isinstance(r, dict) or any(k not in r for k in needed):
            raise ResultsFileError(
                f"--combine: {path} has a run without {', '.join(needed)}; run that part again."
            )
    return part


def combine(paths: Sequence[Path], out: Path) -> int:
    """Merge result files (their commands and machines kept per run) into ``out`` + plot.

    Raises:
        MissingFileError, ResultsFileError: see :func:`read_part` (before anything is written).
    """
    results = []
    for part in [read_part(path) for path in paths]:
        for r in part["results"]:
            results.append({**r, "benchmark_command": part["command"], "machine": part["machine"]})
    results.sort(key=lambda r: (r["env_id"], r["algo"], r["seed"]))
    summary = {"command": f"python -m benchmarks.lm_accuracy --combine {' '.join(map(str, paths))}",
               "results": results}  # fmt: skip
    atomic_write(out, json.dumps(summary, indent=2) + "\n")
    plot(results, out.with_suffix(".png"))
    _print_summary(results)
    print(markdown(results, detail=True))
    return 0


#: Row order of the tables: the headline env first.
ENV_ORDER = ("textgym/Reasoning-v0", "textgym/CustomerService-v0")
ALGO_NAMES = {"grpo": "GRPO", "ppo": "PPO", "reinforce": "REINFORCE"}


def markdown(results: list[dict[str, Any]], detail: bool = False) -> str:
    """The results table (README; ``detail`` adds updates and tokens/s for the docs).

    One row per (env, algorithm): success before RL, after per seed, and the lift in points
    (mean over seeds, then per seed).
    """
    groups = group_by(results, lambda r: (r["env_id"], r["algo"]))

    def order(key: tuple[str, str]) -> tuple[int, str, int, str]:
        env, algo = key
        rank = ENV_ORDER.index(env) if env in ENV_ORDER else len(ENV_ORDER)
        algos = list(ALGO_NAMES)
        return rank, env, algos.index(algo) if algo in algos else len(algos), algo

    minutes = round(float(np.median([r["train_seconds"] for r in results])) / 60)
    seeds = " / ".join(str(x) for x in sorted({r["seed"] for r in results}))
    header = ["env", "algorithm", "before RL", f"after {minutes} min (seed {seeds})"]
    header.append("lift, points (mean; per seed)")
    if detail:
        header += ["updates", "generated tokens/s"]
    rows = []
    for key in sorted(groups, key=order):
        runs = sorted(groups[key], key=lambda r: r["seed"])
        before = [r["before"]["eval/success_rate"] for r in runs]
        after = [r["after"]["eval/success_rate"] for r in runs]
        lifts = [100 * (a - b) for a, b in zip(after, before, strict=True)]
        row = [
            key[0],
            ALGO_NAMES.get(key[1], key[1]),
            f"{100 * np.mean(before):.1f}%",
            " / ".join(f"{100 * a:.1f}%" for a in after),
            f"**{np.mean(lifts):+.1f}** ({' / '.join(f'{x:+.1f}' for x in lifts)})",
        ]
        if detail:
            row.append(" / ".join(str(r["updates"]) for r in runs))
            row.append(f"{np.mean([r['tokens_per_second'] for r in runs]):,.0f}")
        rows.append(row)
    if not rows:
        return ""
    return table(header, rows, "llrrr" + "rr" * detail)


def _print_summary(results: list[dict[str, Any]]) -> None:
    for r in results:
        b, a = (
            r["before"].get("eval/success_rate", float("nan")),
            r["after"].get("eval/success_rate", float("nan")),
        )
        print(
            f"{r['algo']:>5} {r['env_id']:<28} seed {r['seed']}: {b:.3f} -> {a:.3f} "
            f"({100 * (a - b):+.1f} points) in {r['train_seconds']:.0f}s"
        )


@dataclass
class LMAccuracyArgs:
    """The flags of ``python -m benchmarks.lm_accuracy``."""

    algos: list[str] = flags.flag(default_factory=lambda: ["ppo", "grpo"])
    """the LM algorithms to train"""
    envs: list[str] = flags.flag(
        default_factory=lambda: ["textgym/Reasoning-v0", "textgym/CustomerService-v0"]
    )
    """the envs to train and evaluate on"""
    seeds: list[int] = flags.flag(default_factory=lambda: [1])
    """seeds of the runs"""
    time_budget: float = 600.0
    """training seconds per run"""
    eval_every: int = 10
    """updates between held-out evaluations"""
    threads: int = 2
    """torch CPU threads"""
    model: str = "default"
    """the model to start from: 'default', a local directory or a hub name"""
    runs: str = "runs/lm_accuracy"
    """where the run directories go"""
    out: str = str(RESULTS / "lm_accuracy.json")
    """the summary JSON (a PNG plot is written next to it)"""
    eval_only: bool = False
    """evaluate --model on the held-out split with the same protocol, without training"""
    combine: list[str] | None = flags.flag(None, metavar="JSON")
    """merge the results of earlier runs (e.g. run in parallel) into --out and its plot"""


def build_parser() -> FlagParser[LMAccuracyArgs]:
    """The command line of ``python -m benchmarks.lm_accuracy``."""
    prog, doc = (
        "python -m benchmarks.lm_accuracy",
        "RL lift of the default model's held-out accuracy.",
    )
    return flags.build_parser(LMAccuracyArgs, prog, doc)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (or combine parts); a user error prints one line and returns 2."""
    return run_main(build_parser(), lambda args: execute(args, argv), argv)


def check_args(args: LMAccuracyArgs) -> None:
    """Every flag of a training run, checked before the first (minutes-long) run starts.

    Raises:
        ConfigError: naming the flag and its valid range or values.
    """
    for algo in args.algos:
        trainer_class(algo)  # an unknown algorithm: ConfigError with a did-you-mean
    check_unique(args.algos, "--algos")
    check_env_ids(args.envs)
    check_seeds(args.seeds)
    args.time_budget = check_positive(args.time_budget, "--time-budget", integer=False)
    check_positive(args.eval_every, "--eval-every", integer=True)
    check_positive(args.threads, "--threads", integer=True)
    check_out_file(args.out)


def execute(args: LMAccuracyArgs, argv: Sequence[str] | None = None) -> int:
    """Run the parsed command line (``argv`` is recorded as the command); user errors raise."""
    if args.combine:
        check_out_file(args.out)
        return combine([Path(f) for f in args.combine], Path(args.out))
    check_args(args)
    results = []
    out = Path(args.out)
    for env_id in args.envs:
        for algo in args.algos:
            for seed in args.seeds:
                print(f"== {algo} on {env_id}, seed {seed}", flush=True)
                results.append(
                    run_one(
                        algo,
                        env_id,
                        seed,
                        args.time_budget,
                        args.eval_every,
                        args.threads,
                        Path(args.runs),
                        args.model,
                        0 if args.eval_only else 100_000,
                    )
                )
                summary = {
                    "command": "python -m benchmarks.lm_accuracy "
                    + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)),
                    "machine": {
                        "cpu_count": os.cpu_count(),
                        "threads": args.threads,
                        "load_average_at_end": list(os.getloadavg()),
                    },
                    "results": results,
                }
                # Atomic: a kill mid-benchmark keeps every run finished so far, whole.
                atomic_write(out, json.dumps(summary, indent=2) + "\n")
    plot(results, out.with_suffix(".png"))
    _print_summary(results)
    print(markdown(results, detail=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
