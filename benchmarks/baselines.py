"""Classic baselines on the tiny variants: random, Q-learning, SARSA, PPO, MaskablePPO.

For every tiny variant (``textgym/*-Tiny-v0``) and seed, each learner trains for a fixed
budget with a greedy evaluation every ``budget / 20`` steps (100 episodes), and is then
scored on 500 fresh episodes. "To learn" is the first evaluation that reaches 99% success:
its env steps, episodes, and training seconds (evaluation time excluded). The random policy,
measured in the same run, is the peer every number is compared with.

Success is measured on each variant's own problems (the registered env, i.e. its training
split): the point is how fast a learner solves the MDP, and tabular agents cannot generalise
to held-out problems by construction (see docs/readme/baselines.md).

Usage::

    python -m benchmarks.baselines                       # everything (~6 min on 2 cores)
    python -m benchmarks.baselines --envs textgym/Copy-Tiny-v0 --algos q_learning sarsa

Writes ``benchmarks/results/baselines.{json,md,png}`` and the table in
``docs/readme/baselines.md`` (between its ``baselines:begin/end`` markers).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import stable_baselines3
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3 import PPO

from agents.baselines import RandomAgent
from agents.common import evaluate_policy
from agents.sb3 import AllowedTokens, LearningCurveCallback, policy_kwargs
from agents.tabular import SARSA, QLearning
from benchmarks.cli import (
    ResultsFileError,
    check_env_ids,
    check_out_dir,
    check_seeds,
    check_unique,
    read_json,
    run_main,
)
from benchmarks.envs import registration_order, tiny_env_ids
from benchmarks.render import flat_line, panels, save_png, table
from benchmarks.stats import group_by, mean, median_or_none
from textgym.files import atomic_write
from textgym.tools import flags
from textgym.tools.flags import FlagParser

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "docs" / "readme" / "baselines.md"
#: Every document that shows the table between the markers (the front page and the details).
READMES = (ROOT / "README.md", README)
BEGIN, END = "<!-- baselines:begin -->", "<!-- baselines:end -->"

ALGOS = ("random", "q_learning", "sarsa", "ppo", "maskable_ppo")
LABELS = {
    "random": "Random (masked)",
    "q_learning": "Q-learning",
    "sarsa": "SARSA",
    "ppo": "PPO + AllowedTokens",
    "maskable_ppo": "MaskablePPO",
}
#: Env steps per tabular run. Enough for Q-learning to solve each variant on every seed.
TABULAR_BUDGET = {
    "textgym/Copy-Tiny-v0": 2_000,
    "textgym/Reasoning-Tiny-v0": 30_000,
    "textgym/CustomerService-Tiny-v0": 40_000,
    "textgym/Dialogue-Tiny-v0": 40_000,
}
DEFAULT_TABULAR_BUDGET = 40_000
#: Env steps per SB3 run (a network learns slower per step and costs ~100x more per step).
SB3_BUDGET = {"textgym/Copy-Tiny-v0": 5_000}
DEFAULT_SB3_BUDGET = 20_000
#: SB3 settings for small budgets: short rollouts so the policy updates often, a larger step
#: size, and raw advantages: once every episode of a tiny task succeeds, whitening turns
#: near-zero advantages into unit-variance noise and PPO drifts off the solution.
SB3_KWARGS: dict[str, Any] = {
    "n_steps": 256,
    "batch_size": 64,
    "learning_rate": 1e-3,
    "normalize_advantage": False,
    "device": "cpu",
}
TARGET = 0.99
EVAL_POINTS = 20
EVAL_EPISODES = 100
EVAL_SEED = 10_000
FINAL_EPISODES = 500
FINAL_SEED = 20_000


@dataclass
class Run:
    """One (env, algorithm, seed) run."""

    env_id: str
    algo: str
    seed: int
    budget: int
    success_rate: float = 0.0
    mean_return: float = 0.0
    timesteps: int = 0
    episodes: int = 0
    train_seconds: float = 0.0
    #: Q-table size at the end (tabular agents): how many states the MDP showed them.
    states: int | None = None
    #: The first evaluation with success >= TARGET (steps, episodes, seconds), if any.
    learned: dict[str, float] | None = None
    curve: list[dict[str, float]] = field(default_factory=list)


def _first_solved(curve: Sequence[dict[str, float]]) -> dict[str, float] | None:
    return next((point for point in curve if point["success_rate"] >= TARGET), None)


def _final(run: Run, agent: Any, make_env: Callable[[], gym.Env]) -> Run:
    result = evaluate_policy(agent, make_env(), FINAL_EPISODES, seed=FINAL_SEED)
    run.success_rate, run.mean_return = result.success_rate, result.mean_return
    run.learned = _first_solved(run.curve)
    return run


# -- runners ---------------------------------------------------------------------------------


def run_random(env_id: str, seed: int) -> Run:
    """The masked random policy, scored like every learner: the peer of every row."""
    agent = RandomAgent(gym.make(env_id), seed=seed)
    return _final(Run(env_id, "random", seed, 0), agent, lambda: gym.make(env_id))


def _run_tabular(algo: str) -> Callable[[str, int], Run]:
    def run(env_id: str, seed: int) -> Run:
        cls = {"q_learning": QLearning, "sarsa": SARSA}[algo]
        budget = TABULAR_BUDGET.get(env_id, DEFAULT_TABULAR_BUDGET)
        agent = cls(gym.make(env_id), seed=seed)
        agent.learn(
            budget,
            eval_env=gym.make(env_id),
            eval_freq=budget // EVAL_POINTS,
            n_eval_episodes=EVAL_EPISODES,
            eval_seed=EVAL_SEED,
        )
        out = Run(env_id, algo, seed, budget, timesteps=agent.num_timesteps)
        out.episodes, out.train_seconds = agent.num_episodes, agent.train_seconds
        out.states = len(agent.table)
        out.curve = list(agent.eval_history)
        return _final(out, agent, lambda: gym.make(env_id))

    return run


def _run_sb3(algo: str) -> Callable[[str, int], Run]:
    def run(env_id: str, seed: int) -> Run:
        if algo == "ppo":
            cls: Any = PPO

            def make_env() -> gym.Env:
                return AllowedTokens(gym.make(env_id))
        else:
            cls = MaskablePPO

            def make_env() -> gym.Env:
                return gym.make(env_id)

        budget = SB3_BUDGET.get(env_id, DEFAULT_SB3_BUDGET)
        callback = LearningCurveCallback(
            eval_env=make_env(),
            eval_freq=budget // EVAL_POINTS,
            n_eval_episodes=EVAL_EPISODES,
            eval_seed=EVAL_SEED,
        )
        model = cls(
            "MultiInputPolicy", make_env(), policy_kwargs=policy_kwargs(), seed=seed, **SB3_KWARGS
        )
        model.learn(budget, callback=callback)
        out = Run(env_id, algo, seed, budget, timesteps=int(model.num_timesteps))
        out.episodes, out.train_seconds = callback.episodes, callback.train_seconds
        out.curve = list(callback.eval_history)
        return _final(out, model, make_env)

    return run


RUNNERS: dict[str, Callable[[str, int], Run]] = {
    "random": run_random,
    "q_learning": _run_tabular("q_learning"),
    "sarsa": _run_tabular("sarsa"),
    "ppo": _run_sb3("ppo"),
    "maskable_ppo": _run_sb3("maskable_ppo"),
}


# -- aggregation and outputs -------------------------------------------------------------------


def aggregate(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """One row per (env, algorithm): means over seeds, medians of the "to learn" numbers."""
    rows = []
    groups = group_by(runs, lambda r: (r.env_id, r.algo))
    for env_id, algo in sorted(
        groups, key=lambda k: (*registration_order(k[0]), ALGOS.index(k[1]))
    ):
        group = groups[env_id, algo]
        peers = groups.get((env_id, "random"), [])
        solved = [r.learned for r in group if r.learned is not None]
        row: dict[str, Any] = {
            "env_id": env_id,
            "algo": algo,
            "seeds": len(group),
            "budget": group[0].budget,
            "success_rate": mean(r.success_rate for r in group),
            "success_std": float(np.std([r.success_rate for r in group])),
            "mean_return": mean(r.mean_return for r in group),
            "solved": len(solved),
            "steps_to_learn": median_or_none([s["timesteps"] for s in solved]),
            "episodes_to_learn": median_or_none([s["episodes"] for s in solved]),
            "seconds_to_learn": median_or_none([s["seconds"] for s in solved]),
            "train_seconds": mean(r.train_seconds for r in group),
            "states": mean(r.states for r in group) if group[0].states else None,
        }
        if peers:
            row["success_vs_random"] = row["success_rate"] - mean(p.success_rate for p in peers)
            row["return_vs_random"] = row["mean_return"] - mean(p.mean_return for p in peers)
        rows.append(row)
    return rows


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The README table."""
    header = ["Env", "Baseline", "Success", "Return", "vs random (success / return)", "Solved"]
    header += ["Episodes to learn", "Steps to learn", "Time to learn (s)", "Budget (steps)"]
    header += ["Q-table states"]
    cells = []
    for row in rows:
        vs = (
            "-"
            if row["algo"] == "random" or "success_vs_random" not in row
            else f"{row['success_vs_random']:+.2f} / {row['return_vs_random']:+.2f}"
        )
        learning = row["algo"] != "random"
        cells.append(
            [
                row["env_id"].removeprefix("textgym/"),
                LABELS[row["algo"]],
                f"{row['success_rate']:.3f} ± {row['success_std']:.3f}",
                f"{row['mean_return']:.2f}",
                vs,
                f"{row['solved']}/{row['seeds']}" if learning else "-",
                _fmt(row["episodes_to_learn"], ",.0f"),
                _fmt(row["steps_to_learn"], ",.0f"),
                _fmt(row["seconds_to_learn"], ".3g"),
                f"{row['budget']:,}" if learning else "-",
                _fmt(row["states"], ",.0f"),
            ]
        )
    return table(header, cells, "l" * len(header))


def notes(meta: dict[str, Any]) -> str:
    return (
        f"Success: greedy policy on {FINAL_EPISODES} fresh episodes after the whole budget "
        f"(mean ± std over seeds). Solved: seeds whose periodic evaluation ({EVAL_EPISODES} "
        f'episodes every budget/{EVAL_POINTS} steps) reached {TARGET:.0%}; the "to learn" '
        "columns are medians over those seeds at that first evaluation (time excludes "
        "evaluation). Tabular seeds: "
        f"{meta['seeds']['tabular']}; SB3 seeds: {meta['seeds']['sb3']}. PPO acts on "
        "`AllowedTokens(env)`; MaskablePPO on the raw env with `action_masks()`. "
        f"Measured {meta['date']} on {meta['machine']} (torch threads: 1)."
    )


def plot(runs: Sequence[Run], path: Path) -> None:
    """Mean greedy success over env steps, one panel per env (random: a flat line)."""
    envs = sorted({r.env_id for r in runs}, key=registration_order)
    fig, axes = panels(len(envs), 4.2, 3.4)
    for ax, env_id in zip(axes, envs, strict=True):
        for algo in ALGOS:
            group = [r for r in runs if r.env_id == env_id and r.algo == algo]
            if not group:
                continue
            if algo == "random":
                flat_line(ax, [r.success_rate for r in group], c="gray", label=LABELS[algo])
                continue
            # Seeds share their evaluation steps (budget / EVAL_POINTS); an early stop never
            # happens here, so curves align point by point.
            n = min(len(r.curve) for r in group)
            if n == 0:
                continue
            steps = [group[0].curve[i]["timesteps"] for i in range(n)]
            means = [np.mean([r.curve[i]["success_rate"] for r in group]) for i in range(n)]
            ax.plot(steps, means, marker=".", label=LABELS[algo])
        ax.set_title(env_id.removeprefix("textgym/"))
        ax.set_xlabel("env steps")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xscale("log")
    axes[0].set_ylabel("greedy success rate")
    axes[-1].legend(fontsize=7, loc="lower right")
    save_png(fig, path, dpi=110)


def update_readme(block: str, text: str) -> None:
    """Write the table and its notes between the markers of every file in :data:`READMES`.

    Raises:
        ResultsFileError: a file lacks the markers (checked in every file before any write).
    """
    docs = {path: path.read_text() for path in READMES}
    for path, doc in docs.items():
        if BEGIN not in doc or END not in doc:
            raise ResultsFileError(
                f"{path} lacks the {BEGIN} / {END} markers; add them around the table "
                "(or pass --no-readme)."
            )
    for path, doc in docs.items():
        head, rest = doc.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        atomic_write(path, f"{head}{BEGIN}\n{block}\n\n{text}\n{END}{tail}")


def _meta(seeds_tabular: Sequence[int], seeds_sb3: Sequence[int]) -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "stable_baselines3": stable_baselines3.__version__,
        "commit": commit,
        "seeds": {"tabular": list(seeds_tabular), "sb3": list(seeds_sb3)},
        "target": TARGET,
        "sb3_kwargs": SB3_KWARGS,
        "eval": {
            "points": EVAL_POINTS,
            "episodes": EVAL_EPISODES,
            "final_episodes": FINAL_EPISODES,
        },
    }


@dataclass
class BaselinesArgs:
    """The flags of ``python -m benchmarks.baselines``."""

    envs: list[str] | None = None
    """env ids (default: every tiny variant)"""
    algos: list[str] = flags.flag(default_factory=lambda: list(ALGOS), choices=ALGOS)
    """the algorithms to run"""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """random and tabular seeds"""
    sb3_seeds: list[int] = field(default_factory=lambda: [0])
    """SB3 seeds (slower)"""
    out: Path = RESULTS
    """results directory"""
    readme: bool = True
    """update the table in README.md and docs/readme/baselines.md"""
    render_only: bool = False
    """re-write the table, plot and README from an existing baselines.json (no runs)"""


def build_parser() -> FlagParser[BaselinesArgs]:
    """The command line of ``python -m benchmarks.baselines``."""
    prog = "python -m benchmarks.baselines"
    return flags.build_parser(BaselinesArgs, prog, __doc__.splitlines()[0])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; a user error prints one line and returns 2."""
    return run_main(build_parser(), execute, argv)


def read_runs(path: Path) -> tuple[list[Run], dict[str, Any]]:
    """The runs and meta of a ``baselines.json`` (for ``--render-only``).

    Raises:
        MissingFileError: there is no such file.
        ResultsFileError: the file is torn or not a baselines result.
    """
    data = read_json(
        path,
        missing=f"{path} does not exist; run `python -m benchmarks.baselines` first "
        "(--render-only re-renders an earlier run).",
        torn=f"{path} is torn or not JSON ({{exc}}); run the benchmark again.",
    )
    try:
        runs = [Run(**r) for r in data["runs"]]
        meta = data["meta"]
        notes(meta)  # the fields the notes need are there
    except (KeyError, TypeError) as exc:
        raise ResultsFileError(
            f"{path} is not a baselines result (missing or wrong {exc}); run the benchmark again."
        ) from None
    return runs, meta


def execute(args: BaselinesArgs) -> int:
    """Run the parsed command line; user errors raise (a ``UserError``)."""
    # Everything is checked before any run: a bad seed would otherwise surface minutes in.
    envs = check_env_ids(args.envs) if args.envs else tuple(tiny_env_ids())
    check_unique(args.algos, "--algos")
    check_seeds(args.seeds, "--seeds")
    check_seeds(args.sb3_seeds, "--sb3-seeds")
    check_out_dir(args.out)
    if args.render_only:
        runs, meta = read_runs(args.out / "baselines.json")
        write_outputs(runs, meta, args.out, readme=args.readme)
        return 0

    torch.set_num_threads(1)  # 2 shared cores: more threads only add contention
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    runs: list[Run] = []
    start = time.perf_counter()
    for env_id in envs:
        for algo in args.algos:
            seeds = args.sb3_seeds if algo in ("ppo", "maskable_ppo") else args.seeds
            for seed in seeds:
                t0 = time.perf_counter()
                run = RUNNERS[algo](env_id, seed)
                runs.append(run)
                learned = run.learned and f"learned at {run.learned['episodes']:.0f} episodes"
                print(
                    f"{env_id:34s} {algo:13s} seed {seed}: success {run.success_rate:.3f} "
                    f"return {run.mean_return:+.2f} {learned or ''} "
                    f"({time.perf_counter() - t0:.1f}s)",
                    flush=True,
                )
    meta = _meta(args.seeds, args.sb3_seeds)
    meta["total_seconds"] = time.perf_counter() - start
    write_outputs(runs, meta, args.out, readme=args.readme)
    return 0


def write_outputs(runs: Sequence[Run], meta: dict[str, Any], out: Path, readme: bool) -> None:
    """baselines.json (every run, its curve, the aggregate rows), .md, .png, and the README."""
    rows = aggregate(runs)
    block, text = markdown(rows), notes(meta)
    # Atomic writes: a kill or a full disk never leaves a torn result behind.
    atomic_write(
        out / "baselines.json",
        json.dumps({"meta": meta, "rows": rows, "runs": [asdict(r) for r in runs]}, indent=1)
        + "\n",
    )
    atomic_write(out / "baselines.md", f"{block}\n\n{text}\n")
    plot(runs, out / "baselines.png")
    if readme:
        update_readme(block, text)
    print(f"\n{block}\n\n{text}\nwrote {out}/baselines.{{json,md,png}}")


if __name__ == "__main__":
    sys.exit(main())
