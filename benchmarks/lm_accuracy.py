"""The headline result: RL raises the default model's held-out accuracy.

PPO and GRPO fine-tune textgym's embedded default model (a small GPT-2 warm-started on
noisy demonstrations) with the env's verifiable reward for a fixed number of updates per
run, and evaluate it greedily on the held-out ``split="test"`` before, during and after
training (fixed evaluation seeds, so every evaluation sees the same problems). A fixed update
count makes a run's numbers the same on every machine of one architecture; ``--time-budget``
only caps a slow machine, and each run records whether it hit that cap (``capped``).

    python -m benchmarks.lm_accuracy                                  # all recipes, seed 1
    python -m benchmarks.lm_accuracy --algos grpo --envs textgym/Reasoning-v1 --seeds 1 2 3

Writes ``benchmarks/results/lm_accuracy.json`` (every run with its curve, settings and
command, and the summaries of :mod:`benchmarks.lm_report`: lifts with 95% bootstrap CIs over
seeds, and calibration on envs that price abstention), ``lm_accuracy.md`` (the tables between
their README markers) and ``lm_accuracy.png`` (held-out success rate against updates). Parts
run in parallel merge with ``--combine``; ``--readme`` also rewrites the documents' tables.
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

import gymnasium as gym

from agents.common.evaluation import abstention_threshold, calibration
from agents.common.logger import read_log
from agents.lm.trainer import LMTrainer
from agents.train import trainer_class
from benchmarks import lm_report
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
    # reasoning-gym's spell_backward and list reversal (also where a wrong answer costs -1) on
    # the open default model: Reasoning's recipes, with 64 rows (single-turn problems as short).
    **{
        (algo, f"textgym/ReasoningGym-{kind}"): dict(settings)
        for kind in ("Strings", "Lists", "Lists-Abstain")
        for algo, settings in (
            ("grpo", dict(num_envs=64, group_size=8, learning_rate=1e-4, kl_coef=0.0)),
            ("ppo", dict(num_envs=64, learning_rate=5e-5, kl_coef=0.0)),
        )
    },
    # CustomerService's recipes: another multi-turn family of the same length and cost.
    ("grpo", "textgym/Dialogue"): dict(num_envs=64, group_size=8, learning_rate=1e-4, kl_coef=0.0),
    ("ppo", "textgym/Dialogue"): dict(
        num_envs=64, learning_rate=5e-5, kl_coef=0.0, missing_end_penalty=-0.5
    ),
}
#: Held-out episodes per evaluation (a family not listed gets DEFAULT_EVAL_EPISODES).
EVAL_EPISODES = {
    "textgym/Reasoning": 512,
    "textgym/CustomerService": 256,
    "textgym/Dialogue": 256,
}
DEFAULT_EVAL_EPISODES = 256
#: Updates per run: about 2 (GRPO on Reasoning, ~1.2 s an update) to 10 (PPO on Dialogue or
#: CustomerService, 3-6 s) minutes of training on one thread of this repository's machine.
DEFAULT_UPDATES = 100
#: The safety cap, seconds of training per run: three times the slowest recipe's 100 updates.
DEFAULT_TIME_CAP = 1800.0


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
    total_updates: int = DEFAULT_UPDATES,
    fresh: bool = False,
    **settings: Any,
) -> LMTrainer:
    """The trainer of ``algo`` on ``env_id`` for ``total_updates``, with the env's recipe.

    Every LM benchmark builds its trainers here, so ``textgym bench`` and this benchmark run
    the same recipes the same way: no checkpoints, no progress bar.

    Args:
        algo: An LM algorithm (``grpo``, ``ppo``, ``reinforce``).
        env_id: The env to train on.
        seed: The run's seed.
        run_dir: Where the run writes its log and report.
        time_budget: The safety cap, training seconds (collection and updates; evaluation
            runs outside); 0 for none.
        eval_every: Updates between held-out evaluations.
        eval_episodes: Held-out episodes per evaluation.
        total_updates: Updates to run (0: only evaluate).
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


def final_calibration(trainer: LMTrainer, env_id: str) -> dict[str, Any] | None:
    """The calibration of the trained policy's final greedy evaluation, or ``None`` when the
    env's reward does not price abstention (:func:`agents.common.evaluation.calibration`).

    The evaluation is played again: greedy decoding on the same seeds replays the trainer's
    final evaluation episode for episode (``accuracy`` equals its success rate).
    """
    threshold = abstention_threshold(gym.make(env_id))
    if threshold is None:
        return None
    episodes = trainer.eval_collector.collect_greedy(trainer.config.eval_episodes)
    return calibration(episodes, threshold).as_dict()


def run_one(
    algo: str,
    env_id: str,
    seed: int,
    time_budget: float,
    eval_every: int,
    threads: int,
    run_root: Path,
    model: str,
    total_updates: int = DEFAULT_UPDATES,
    eval_episodes: int | None = None,
) -> dict[str, Any]:
    """Train one (algorithm, env, seed) and return its report with the learning curve.

    ``total_updates=0`` only evaluates ``model`` (same protocol, no training);
    ``eval_episodes=None`` takes the family's (:data:`EVAL_EPISODES`).
    """
    settings = recipe(algo, env_id)
    run_dir = run_root / f"{env_id.replace('/', '_')}__{algo}__{seed}"
    if eval_episodes is None:
        eval_episodes = EVAL_EPISODES.get(family(env_id), DEFAULT_EVAL_EPISODES)
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
    # One point per update (a log resumed after a kill may hold an update twice).
    points = {step: value for step, _, value in log.get("eval/success_rate", [])}
    curve = [
        {"update": step, "train_seconds": round(seconds.get(step, 0.0), 1), "success_rate": value}
        for step, value in points.items()
    ]
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in settings.items())
    report.update(
        {
            # "default" or "default-open" (the open tokenizer's model) when model="default".
            "model": trainer.config.model,
            "calibration": final_calibration(trainer, env_id),
            "recipe": settings,
            "curve": curve,
            "wall_seconds": round(time.perf_counter() - start, 1),
            "command": f"textgym train --algo {algo} --env {env_id} --seed {seed} "
            f"--total-updates {total_updates} --time-budget {time_budget:g} "
            f"--eval-every {eval_every} --eval-episodes {eval_episodes} --threads {threads} {flags}",
        }
    )
    return report


def write_outputs(
    results: list[dict[str, Any]], out: Path, head: dict[str, Any], readme: bool = False
) -> None:
    """``out`` (``head``, the runs and their summaries), its ``.md`` tables and ``.png``."""
    summary = {**head, "results": results, **lm_report.summarize(results)}
    # Atomic: a kill mid-benchmark keeps every run finished so far, whole.
    atomic_write(out, json.dumps(summary, indent=2) + "\n")
    atomic_write(out.with_suffix(".md"), lm_report.render_blocks(results))
    lm_report.plot(results, out.with_suffix(".png"))
    if readme:
        lm_report.update_docs(results)


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
    check_runs(part["results"], f"--combine: {path}", "run that part again")
    return part


def check_runs(results: Any, where: str, fix: str) -> None:
    """Refuse runs that the summaries cannot read.

    Raises:
        ResultsFileError: ``results`` is not a list of runs with every field needed.
    """
    needed = ("env_id", "algo", "seed", "split", "updates", "before", "after", "curve",
              "train_seconds")  # fmt: skip
    if not isinstance(results, list) or not results:
        raise ResultsFileError(f"{where} has no runs; {fix}.")
    for r in results:
        if not isinstance(r, dict) or any(k not in r for k in needed):
            raise ResultsFileError(f"{where} has a run without {', '.join(needed)}; {fix}.")


def combine(paths: Sequence[Path], out: Path, readme: bool = False) -> int:
    """Merge result files (their commands and machines kept per run) into ``out`` + tables.

    Raises:
        MissingFileError, ResultsFileError: see :func:`read_part` (before anything is written).
    """
    results = []
    for part in [read_part(path) for path in paths]:
        for r in part["results"]:
            results.append({**r, "benchmark_command": part["command"], "machine": part["machine"]})
    results.sort(key=lambda r: (r["env_id"], r["algo"], r["seed"]))
    keys = [(r["env_id"], r["algo"], r["seed"]) for r in results]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:  # counted twice, one run would narrow its CI as if it were two seeds
        env_id, algo, seed = twice[0]
        raise ResultsFileError(
            f"--combine: {algo} on {env_id} seed {seed} is in more than one part; "
            "combine each run once."
        )
    command = f"python -m benchmarks.lm_accuracy --combine {' '.join(map(str, paths))}"
    write_outputs(results, out, {"command": command}, readme)
    lm_report.print_summary(results)
    return 0


def render_only(out: Path, readme: bool) -> int:
    """Re-render ``out``'s tables and plot (and with ``readme`` the documents) from its runs.

    Raises:
        MissingFileError: ``out`` does not exist.
        ResultsFileError: it is torn or holds no runs of this benchmark.
    """
    data = read_json(
        out,
        missing=f"--render-only: {out} does not exist; run the benchmark first.",
        torn=f"--render-only: {out} is torn or not JSON ({{exc}}); run the benchmark again.",
    )
    results = data.get("results") if isinstance(data, dict) else None
    check_runs(results, f"--render-only: {out}", "run the benchmark again")
    atomic_write(out.with_suffix(".md"), lm_report.render_blocks(results))
    lm_report.plot(results, out.with_suffix(".png"))
    if readme:
        lm_report.update_docs(results)
    lm_report.print_summary(results)
    return 0


@dataclass
class LMAccuracyArgs:
    """The flags of ``python -m benchmarks.lm_accuracy``."""

    algos: list[str] = flags.flag(default_factory=lambda: ["ppo", "grpo"])
    """the LM algorithms to train"""
    envs: list[str] = flags.flag(
        default_factory=lambda: [
            "textgym/Reasoning-v1",
            "textgym/CustomerService-v1",
            "textgym/Dialogue-v1",
        ]
    )
    """the envs to train and evaluate on"""
    seeds: list[int] = flags.flag(default_factory=lambda: [1])
    """seeds of the runs"""
    updates: int = DEFAULT_UPDATES
    """updates per run (what makes a result reproducible)"""
    time_budget: float = DEFAULT_TIME_CAP
    """safety cap: training seconds per run (a run stopped by it records capped: true)"""
    eval_every: int = 10
    """updates between held-out evaluations"""
    eval_episodes: int | None = None
    """held-out episodes per evaluation (none: the family's, 256 or 512)"""
    threads: int = 2
    """torch CPU threads"""
    model: str = "default"
    """the model to start from: 'default', a local directory or a hub name"""
    runs: str = "runs/lm_accuracy"
    """where the run directories go"""
    out: str = str(RESULTS / "lm_accuracy.json")
    """the summary JSON (its tables in .md and a plot in .png are written next to it)"""
    eval_only: bool = False
    """evaluate --model on the held-out split with the same protocol, without training"""
    combine: list[str] | None = flags.flag(None, metavar="JSON")
    """merge the results of earlier runs (e.g. run in parallel) into --out and its plot"""
    render_only: bool = False
    """re-write the tables and plot of an existing --out (no runs)"""
    readme: bool = False
    """also rewrite the tables between the lm-accuracy markers of README.md and the docs"""


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
    check_positive(args.updates, "--updates", integer=True)
    args.time_budget = check_positive(args.time_budget, "--time-budget", integer=False)
    check_positive(args.eval_every, "--eval-every", integer=True)
    if args.eval_episodes is not None:
        check_positive(args.eval_episodes, "--eval-episodes", integer=True)
    check_positive(args.threads, "--threads", integer=True)
    check_out_file(args.out)
    if args.readme:
        lm_report.check_docs()  # before the runs: minutes of them, then no table to write


def execute(args: LMAccuracyArgs, argv: Sequence[str] | None = None) -> int:
    """Run the parsed command line (``argv`` is recorded as the command); user errors raise."""
    out = Path(args.out)
    if args.combine or args.render_only:
        check_out_file(args.out)
        if args.readme:
            lm_report.check_docs()  # before anything is written
        if args.combine:
            return combine([Path(f) for f in args.combine], out, args.readme)
        return render_only(out, args.readme)
    check_args(args)
    updates = 0 if args.eval_only else args.updates
    command = "python -m benchmarks.lm_accuracy " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    results = []
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
                        updates,
                        args.eval_episodes,
                    )
                )
                machine = {
                    "cpu_count": os.cpu_count(),
                    "threads": args.threads,
                    "load_average_at_end": list(os.getloadavg()),
                }
                # The README only from a whole benchmark (a part would show only itself).
                last = len(results) == len(args.envs) * len(args.algos) * len(args.seeds)
                write_outputs(
                    results, out, {"command": command, "machine": machine}, args.readme and last
                )
    lm_report.print_summary(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
