"""Compare algorithms across the suite: ``textgym bench`` / ``python -m benchmarks.compare``.

One command answers: which algorithm does best on which task, by how much, with what
certainty, and how much RL lifts the pre-trained model.

    textgym bench                        # --preset quick: the README's main job (<= 10 min)
    textgym bench --preset full          # more seeds, bigger budgets
    textgym bench --algos random oracle q_learning --envs textgym/Reasoning-Tiny-v0

Every (env, algorithm, seed) run writes ``runs/<env>__<algo>__<seed>/result.json`` when it
finishes; a rerun skips finished runs, so an interrupted benchmark resumes. Scores are
measured on the held-out split (``split="test"``) where the task has one, except on the tiny
variants, whose fixed pool of problems is the task (tabular agents memorise it). The summary has,
per env x algorithm, the mean over seeds, a 95% stratified-bootstrap confidence interval and
the interquartile mean (scipy), and is written as ``results.json``, ``results.csv``,
``results.md`` and two plots (learning curves; final scores with CIs).
"""

from __future__ import annotations

import argparse
import csv
import inspect
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import textgym

RESULTS = Path(__file__).parent / "results"


# -- what a run is -------------------------------------------------------------------------


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

    @classmethod
    def of(
        cls,
        spec: RunSpec,
        scores: tuple[float, float],
        start: float,
        curve: list[dict[str, float]] | None = None,
    ) -> RunResult:
        """The result of ``spec``: ``scores`` is (success rate, mean return); ``start`` the
        ``time.perf_counter()`` at which the run began."""
        success, ret = scores
        wall = time.perf_counter() - start
        return cls(spec.env_id, spec.algo, spec.seed, success, ret, wall, spec.budget, curve or [])


# -- environments --------------------------------------------------------------------------


def has_split(env_id: str) -> bool:
    """Whether the env's task takes ``split=`` (a held-out test set)."""
    from textgym.tasks import TASKS

    task = gym.spec(env_id).kwargs.get("task")
    return task in TASKS and "split" in inspect.signature(TASKS[task]).parameters


def is_tiny(env_id: str) -> bool:
    """Tiny variants are small fixed problem pools meant to be solved exactly (tabular)."""
    return "-Tiny-" in env_id


def eval_split(env_id: str) -> str | None:
    """Where scores are measured: the held-out split, except on tiny variants.

    A tiny variant *is* its pool of problems: tabular agents memorise it and, by design,
    are at chance on unseen problems, so its scores are measured on the pool they learn.
    """
    if not has_split(env_id):
        return None
    return "train" if is_tiny(env_id) else "test"


def eval_env(env_id: str) -> gym.Env:
    """The env on the split its scores are measured on."""
    split = eval_split(env_id)
    return gym.make(env_id) if split is None else gym.make(env_id, split=split)


def train_env(env_id: str) -> gym.Env:
    """The env on its training split, when it has one."""
    return gym.make(env_id, split="train") if has_split(env_id) else gym.make(env_id)


# -- algorithms ----------------------------------------------------------------------------
# Each runner trains (or not), evaluates on the held-out split, and returns a RunResult.
# Imports happen inside the runners so that a missing optional piece fails only its runs.


class OracleAgent:
    """The task's oracle as an agent: the upper bound of every table."""

    def __init__(self, env: gym.Env) -> None:
        self.env = env

    def predict(self, obs: Any, deterministic: bool = True) -> tuple[int, None]:
        return self.env.unwrapped.oracle_action(), None


def _evaluate(agent: Any, spec: RunSpec, env: gym.Env | None = None) -> tuple[float, float]:
    from agents.common.evaluation import evaluate_policy

    env = env or eval_env(spec.env_id)
    res = evaluate_policy(
        agent, env, n_episodes=spec.budget["eval_episodes"], seed=10_000 + spec.seed
    )
    return res.success_rate, res.mean_return


def _curve_from_log(
    run_dir: Path, keys: Sequence[str] = ("charts/success_rate",)
) -> list[dict[str, float]]:
    from agents.common.logger import read_log

    path = run_dir / "progress.csv"
    if not path.exists():
        return []
    series = read_log(path)
    for key in keys:
        if key in series:
            return [{"step": s, "wall_time": w, "value": v} for s, w, v in series[key]]
    return []


def run_random(spec: RunSpec) -> RunResult:
    from agents.baselines import RandomAgent

    start = time.perf_counter()
    env = eval_env(spec.env_id)
    return RunResult.of(spec, _evaluate(RandomAgent(env, seed=spec.seed), spec, env), start)


def run_oracle(spec: RunSpec) -> RunResult:
    start = time.perf_counter()
    env = eval_env(spec.env_id)
    return RunResult.of(spec, _evaluate(OracleAgent(env), spec, env), start)


def _run_tabular(cls_name: str) -> Callable[[RunSpec], RunResult]:
    def run(spec: RunSpec) -> RunResult:
        from agents import tabular

        start = time.perf_counter()
        agent = getattr(tabular, cls_name)(
            train_env(spec.env_id), seed=spec.seed, log_dir=spec.run_dir
        )
        agent.learn(total_timesteps=spec.budget["tabular_timesteps"], progress_bar=False)
        return RunResult.of(spec, _evaluate(agent, spec), start, _curve_from_log(spec.run_dir))

    return run


def run_maskable_ppo(spec: RunSpec) -> RunResult:
    from sb3_contrib import MaskablePPO

    from agents.sb3 import LearningCurveCallback, policy_kwargs

    start = time.perf_counter()
    model = MaskablePPO(
        "MultiInputPolicy",
        train_env(spec.env_id),
        seed=spec.seed,
        n_steps=256,
        batch_size=64,
        policy_kwargs=policy_kwargs(),
        verbose=0,
        device="cpu",
    )
    steps = spec.budget["sb3_timesteps"]
    callback = LearningCurveCallback(
        spec.run_dir, log_interval=max(steps // 20, 256), tensorboard=False
    )
    model.learn(total_timesteps=steps, callback=callback)
    return RunResult.of(spec, _evaluate(model, spec), start, _curve_from_log(spec.run_dir))


def _run_lm(algo: str) -> Callable[[RunSpec], RunResult]:
    """An LM trainer under a time budget (``"pretrained"``: the default model, no training)."""

    def run(spec: RunSpec) -> RunResult:
        from agents.train import trainer_class
        from benchmarks.lm_accuracy import RECIPES

        start = time.perf_counter()
        train_algo = "grpo" if algo == "pretrained" else algo
        cls = trainer_class(train_algo)
        config = cls.config_class(
            env_id=spec.env_id,
            seed=spec.seed,
            run_dir=str(spec.run_dir),
            time_budget=60.0 * spec.budget["lm_minutes"],
            total_updates=100_000,
            eval_every=spec.budget.get("lm_eval_every", 5),
            eval_episodes=spec.budget["eval_episodes"],
            checkpoint_every=0,
            progress=False,
            tensorboard=False,
            **RECIPES.get((train_algo, spec.env_id), {}),
        )
        trainer = cls(config)
        if algo == "pretrained":
            scores = trainer.evaluate()
            curve = []
        else:
            scores = trainer.learn().report()["after"]
            curve = _curve_from_log(spec.run_dir, ("eval/success_rate",))
        success, ret = float(scores["eval/success_rate"]), float(scores["eval/episodic_return"])
        return RunResult.of(spec, (success, ret), start, curve)

    return run


ALGORITHMS: dict[str, Callable[[RunSpec], RunResult]] = {
    "random": run_random,
    "oracle": run_oracle,
    "q_learning": _run_tabular("QLearning"),
    "sarsa": _run_tabular("SARSA"),
    "maskable_ppo": run_maskable_ppo,
    "pretrained": _run_lm("pretrained"),
    "reinforce": _run_lm("reinforce"),
    "ppo": _run_lm("ppo"),
    "grpo": _run_lm("grpo"),
}
LM_ALGOS = ("pretrained", "reinforce", "ppo", "grpo")


# -- presets -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    """Which algorithms run on which envs, with how many seeds and what budget."""

    pairs: tuple[tuple[str, tuple[str, ...]], ...]
    seeds: tuple[int, ...]
    budget: dict[str, Any]
    lm_seeds: tuple[int, ...] | None = None
    """seeds for the LM trainers, whose runs cost minutes each (default: ``seeds``)"""


PRESETS: dict[str, Preset] = {
    # The README's main job: at most 10 minutes on 2 CPU cores.
    "quick": Preset(
        pairs=(
            (
                "textgym/Reasoning-Tiny-v0",
                ("random", "q_learning", "sarsa", "maskable_ppo", "oracle"),
            ),
            ("textgym/Reasoning-v0", ("random", "pretrained", "grpo", "ppo", "oracle")),
        ),
        seeds=(0, 1, 2),
        budget={
            "tabular_timesteps": 30_000,
            "sb3_timesteps": 8_000,
            "eval_episodes": 200,
            "lm_minutes": 1.5,
            "lm_eval_every": 10,
        },
        lm_seeds=(1, 2),
    ),
    "full": Preset(
        pairs=(
            (
                "textgym/Reasoning-Tiny-v0",
                ("random", "q_learning", "sarsa", "maskable_ppo", "oracle"),
            ),
            (
                "textgym/CustomerService-Tiny-v0",
                ("random", "q_learning", "sarsa", "maskable_ppo", "oracle"),
            ),
            ("textgym/Dialogue-Tiny-v0", ("random", "q_learning", "sarsa", "oracle")),
            (
                "textgym/Reasoning-v0",
                ("random", "pretrained", "reinforce", "grpo", "ppo", "oracle"),
            ),
            ("textgym/CustomerService-v0", ("random", "pretrained", "grpo", "ppo", "oracle")),
        ),
        seeds=(0, 1, 2, 3, 4),
        budget={
            "tabular_timesteps": 60_000,
            "sb3_timesteps": 50_000,
            "eval_episodes": 200,
            "lm_minutes": 8.0,
        },
    ),
}


# -- running and aggregating ---------------------------------------------------------------


def atomic_write(path: Path, text: str) -> None:
    """Write via a temp file and ``os.replace`` so a kill never leaves half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def run_all(specs: Sequence[RunSpec], progress: bool = True) -> list[RunResult]:
    """Run every spec not already finished (its result.json exists), with a progress bar."""
    from tqdm.auto import tqdm

    results = []
    bar = tqdm(specs, desc="bench", disable=not progress, unit="run")
    for spec in bar:
        bar.set_postfix_str(spec.name)
        done = spec.run_dir / "result.json"
        if done.exists():
            results.append(RunResult(**json.loads(done.read_text())))
            continue
        if spec.algo not in ALGORITHMS:
            raise KeyError(f"Unknown algorithm {spec.algo!r}; known: {sorted(ALGORITHMS)}.")
        if spec.run_dir.exists():
            # An interrupted run restarts from scratch: its partial logs would mix curves.
            shutil.rmtree(spec.run_dir)
        spec.run_dir.mkdir(parents=True)
        result = ALGORITHMS[spec.algo](spec)
        atomic_write(done, json.dumps(asdict(result), indent=1))
        results.append(result)
    return results


def bootstrap_ci(scores: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap CI of the mean over runs (degenerate with one run)."""
    from scipy import stats

    if len(scores) < 2 or np.all(scores == scores[0]):
        return float(scores.mean()), float(scores.mean())
    res = stats.bootstrap(
        (scores,),
        np.mean,
        n_resamples=reps,
        confidence_level=0.95,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% of runs (Agarwal et al., 2021)."""
    from scipy import stats

    return float(stats.trim_mean(scores, 0.25))


def aggregate(results: Sequence[RunResult]) -> list[dict[str, Any]]:
    """Per env x algorithm: mean, 95% bootstrap CI and IQM of held-out success over seeds."""
    groups: dict[tuple[str, str], list[RunResult]] = {}
    for r in results:
        groups.setdefault((r.env_id, r.algo), []).append(r)
    rows = []
    for (env_id, algo), runs in groups.items():
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
                "return_mean": float(np.mean([r.mean_return for r in runs])),
                "seeds": sorted(r.seed for r in runs),
                "budget": runs[0].budget,
                "wall_time_s": float(np.mean([r.wall_time for r in runs])),
            }
        )
    return rows


def before_after(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The headline: the pre-trained model's held-out accuracy before and after each RL algorithm."""
    out = []
    by_env: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        by_env.setdefault(row["env_id"], {})[row["algo"]] = row
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


def markdown(rows: Sequence[dict[str, Any]], lifts: Sequence[dict[str, Any]]) -> str:
    """The results table, then the before/after-RL table."""
    lines = [
        "| env | algorithm | success (mean) | 95% CI | IQM | return | seeds | wall time/run |",
        "|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['env_id']} | {r['algo']} | {r['success_mean']:.1%} | "
            f"[{r['ci_low']:.1%}, {r['ci_high']:.1%}] | {r['iqm']:.1%} | {r['return_mean']:.3f} | "
            f"{len(r['seeds'])} | {r['wall_time_s']:.0f} s |"
        )
    if lifts:
        lines += [
            "",
            "| env | RL algorithm | before RL | after RL | lift (points) |",
            "|---|---|---:|---:|---:|",
        ]
        for x in lifts:
            lines.append(
                f"| {x['env_id']} | {x['algo']} | {x['before']:.1%} | {x['after']:.1%} | {100 * x['lift']:+.1f} |"
            )
    return "\n".join(lines) + "\n"


def plot(results: Sequence[RunResult], rows: Sequence[dict[str, Any]], out: Path) -> None:
    """``curves.png`` (success over wall time, per env) and ``scores.png`` (means with CIs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted({r["env_id"] for r in rows})
    fig, axes = plt.subplots(1, len(envs), figsize=(5 * len(envs), 3.6), squeeze=False)
    for ax, env_id in zip(axes[0], envs, strict=True):
        for algo in sorted({r.algo for r in results if r.env_id == env_id}):
            runs = [r for r in results if r.env_id == env_id and r.algo == algo]
            curves = [r.curve for r in runs if r.curve]
            if curves:
                for i, c in enumerate(curves):
                    ax.plot(
                        [p["step"] for p in c],
                        [p["value"] for p in c],
                        alpha=0.8,
                        color=f"C{sorted(ALGORITHMS).index(algo)}",
                        label=algo if i == 0 else None,
                    )
            else:  # no curve: a flat line at the final score (random, oracle, pre-trained)
                ax.axhline(
                    np.mean([r.success_rate for r in runs]),
                    ls="--",
                    lw=1,
                    color=f"C{sorted(ALGORITHMS).index(algo)}",
                    label=algo,
                )
        ax.set(
            title=env_id.split("/")[-1],
            xlabel="training steps",
            ylabel="success rate",
            ylim=(-0.02, 1.02),
        )
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(envs), figsize=(5 * len(envs), 3.2), squeeze=False)
    for ax, env_id in zip(axes[0], envs, strict=True):
        sub = [r for r in rows if r["env_id"] == env_id]
        y = np.arange(len(sub))
        means = np.array([r["success_mean"] for r in sub])
        err = np.array(
            [[m - r["ci_low"], r["ci_high"] - m] for m, r in zip(means, sub, strict=True)]
        ).T
        ax.barh(
            y,
            means,
            xerr=err,
            color=[f"C{sorted(ALGORITHMS).index(r['algo'])}" for r in sub],
            capsize=3,
        )
        ax.set_yticks(y, [r["algo"] for r in sub])
        ax.set(title=env_id.split("/")[-1], xlabel="held-out success (95% CI)", xlim=(0, 1.05))
    fig.tight_layout()
    fig.savefig(out / "scores.png", dpi=120)
    plt.close(fig)


def write_outputs(results: Sequence[RunResult], out: Path) -> list[dict[str, Any]]:
    """results.json / .csv / .md and the plots."""
    rows = aggregate(results)
    lifts = before_after(rows)
    atomic_write(
        out / "results.json", json.dumps({"results": rows, "before_after_rl": lifts}, indent=2)
    )
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[k for k in rows[0] if k != "budget"] + ["budget"])
        writer.writeheader()
        for r in rows:
            writer.writerow(
                {**r, "seeds": " ".join(map(str, r["seeds"])), "budget": json.dumps(r["budget"])}
            )
    atomic_write(out / "results.md", markdown(rows, lifts))
    plot(results, rows, out)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Run a preset (or a custom selection), then write and print the summary."""
    parser = argparse.ArgumentParser(
        prog="textgym bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    parser.add_argument("--envs", nargs="*", help="override the preset's envs")
    parser.add_argument("--algos", nargs="*", help="override the preset's algorithms")
    parser.add_argument("--seeds", nargs="*", type=int, help="override the preset's seeds")
    parser.add_argument(
        "--budget", type=json.loads, default={}, help="JSON overrides, e.g. '{\"timesteps\": 500}'"
    )
    parser.add_argument("--out", type=Path, default=Path("bench_results"), help="output directory")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    preset = PRESETS[args.preset]
    budget = {**preset.budget, **args.budget}
    pairs = preset.pairs
    if args.envs:
        pairs = tuple(
            (e, args.algos or tuple(dict(pairs).get(e, ("random", "oracle")))) for e in args.envs
        )
    elif args.algos:
        pairs = tuple((e, tuple(a for a in algos if a in args.algos)) for e, algos in pairs)
    unknown_envs = [e for e, _ in pairs if e not in textgym.env_ids()]
    unknown_algos = sorted({a for _, algos in pairs for a in algos} - set(ALGORITHMS))
    if unknown_envs or unknown_algos:
        parser.error(
            f"unknown envs {unknown_envs} / algorithms {unknown_algos}; "
            f"envs: {textgym.env_ids()}; algorithms: {sorted(ALGORITHMS)}"
        )
    seeds = tuple(args.seeds) if args.seeds else preset.seeds
    import torch

    # Small networks on 2 cores: one thread avoids contention (LM trainers set their own).
    torch.set_num_threads(1)
    lm_seeds = tuple(args.seeds) if args.seeds else (preset.lm_seeds or preset.seeds)
    specs = [
        RunSpec(
            env_id,
            algo,
            seed,
            budget,
            args.out / "runs" / f"{env_id.split('/')[-1]}__{algo}__{seed}",
        )
        for env_id, algos in pairs
        for algo in algos
        for seed in (lm_seeds if algo in LM_ALGOS else seeds)
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    results = run_all(specs, progress=not args.no_progress)
    rows = write_outputs(results, args.out)
    print(markdown(rows, before_after(rows)))
    print(f"wrote {args.out}/results.json, results.csv, results.md, curves.png, scores.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
