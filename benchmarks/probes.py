"""Reward-hacking probes against the random policy and the oracle, one env per family.

Every probe of :mod:`agents.probes` (keyword stuffing, one fixed turn, the format alone,
abstaining, the user's words back, and in CustomerService escalating everything or trying
every action) plays each representative env on its held-out split, next to the masked
random policy (the peer) and the oracle (the ceiling), on the same seeded episodes. An env
fails a probe when the probe's success beats random's by more than 5 points
(:func:`agents.probes.fails_rule`). Each family's representative is its newest version;
the v0s that fail a probe (Reasoning, CustomerService, Dialogue) stand before it, to show
what the new version fixes.

Usage::

    python -m benchmarks.probes                      # ~1 min on 2 cores
    python -m benchmarks.probes --episodes 50 --out /tmp/probes

Writes ``benchmarks/results/probes.{json,md}``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
from tqdm.auto import tqdm

from agents.baselines import RandomAgent
from agents.common import EvalResult, evaluate_policy
from agents.probes import MARGIN, PROBES, ProbeAgent, fails_rule, probes_for
from benchmarks.cli import check_env_ids, check_out_dir, check_positive, check_seeds, run_main
from benchmarks.envs import eval_env, eval_split
from benchmarks.render import table
from textgym.files import atomic_write
from textgym.tools import flags
from textgym.tools.flags import FlagParser

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
#: Each family's newest version, after the v0 whose probe failures it fixes; for
#: reasoning-gym's generators, the one the open default model's RL lift is measured on.
ENV_IDS = (
    "textgym/Copy-v0",
    "textgym/Reasoning-v0",
    "textgym/Reasoning-v1",
    "textgym/CustomerService-v0",
    "textgym/CustomerService-v1",
    "textgym/Dialogue-v0",
    "textgym/Dialogue-v1",
    "textgym/ReasoningGym-Strings-v0",
    "textgym/ReasoningGym-Lists-v0",
)
EPISODES = 500
SEED = 30_000
#: The peer and the ceiling, measured next to the probes.
REFERENCES = ("random", "oracle")


class _Oracle:
    """The task's oracle as an agent. (``benchmarks.algorithms.OracleAgent`` is the same,
    but importing that module loads the LM trainers, ten seconds for three lines.)"""

    def __init__(self, env: gym.Env) -> None:
        self.env = env.unwrapped

    def predict(self, obs: Any, deterministic: bool = True) -> tuple[int, None]:
        return self.env.oracle_action(), None


def _agent(policy: str, env: gym.Env, seed: int) -> Any:
    if policy == "random":
        return RandomAgent(env, seed=seed)
    if policy == "oracle":
        return _Oracle(env)
    return ProbeAgent(policy, env)


def _make(env_id: str) -> gym.Env:
    with warnings.catch_warnings():
        # The v0s are measured on purpose: Gymnasium's "out of date" notice is expected.
        warnings.filterwarnings("ignore", message=".*is out of date", category=DeprecationWarning)
        return eval_env(env_id)


def _cell(result: EvalResult) -> dict[str, float]:
    return {
        "success_rate": result.success_rate,
        "mean_return": result.mean_return,
        "std_return": result.std_return,
        "mean_length": result.mean_length,
    }


def _first_turn(probe: str, env: gym.Env, seed: int) -> str:
    """What ``probe`` says first in the first episode (to show, not to score)."""
    env.reset(seed=seed)
    return ProbeAgent(probe, env).turn_text()


def measure(
    env_ids: Sequence[str] = ENV_IDS,
    episodes: int = EPISODES,
    seed: int = SEED,
    progress: bool = True,
) -> dict[str, Any]:
    """Every policy on every env: episode ``i`` of every policy is reset with ``seed + i``.

    Returns:
        ``{"meta": ..., "envs": {env_id: {"split", "family", "policies": {name: cell},
        "failures": [probe, ...]}}}``, where a probe's cell also has ``vs_random`` (success
        points over random) and ``fails`` (the rule).
    """
    cells = [
        (env_id, policy)
        for env_id in env_ids
        for policy in (*REFERENCES, *probes_for(gym.spec(env_id).kwargs["task"]))
    ]
    envs: dict[str, Any] = {}
    for env_id, policy in tqdm(cells, desc="probes", unit="policy", disable=not progress):
        env = _make(env_id)
        entry = envs.setdefault(
            env_id,
            {"split": eval_split(env_id), "family": env.unwrapped.task.name, "policies": {}},
        )
        result = evaluate_policy(_agent(policy, env, seed), env, n_episodes=episodes, seed=seed)
        cell: dict[str, Any] = _cell(result)
        if policy not in REFERENCES:
            cell["example_turn"] = _first_turn(policy, env, seed)
            base = entry["policies"]["random"]["success_rate"]
            cell["vs_random"] = cell["success_rate"] - base
            cell["fails"] = fails_rule(cell["success_rate"], base)
        entry["policies"][policy] = cell
        env.close()
    for entry in envs.values():
        entry["failures"] = [p for p, c in entry["policies"].items() if c.get("fails")]
    meta = {
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "episodes": episodes,
        "seed": seed,
        "margin": MARGIN,
        "probes": {name: p.description for name, p in PROBES.items()},
    }
    return {"meta": meta, "envs": envs}


def markdown(report: dict[str, Any]) -> str:
    """The probe table: one row per (env, policy), the rule's verdict last."""
    rows = []
    for env_id, entry in report["envs"].items():
        for policy, c in entry["policies"].items():
            if policy in REFERENCES:
                delta, verdict, example = "-", "-", ""
            else:
                delta = f"{100 * c['vs_random']:+.1f}"
                verdict = "**FAILS**" if c["fails"] else "ok"
                example = _short(c["example_turn"])
            rows.append(
                [
                    env_id.split("/")[-1],
                    policy if policy in REFERENCES else f"probe: {policy}",
                    f"{c['success_rate']:.3f}",
                    f"{c['mean_return']:.2f}",
                    delta,
                    verdict,
                    example,
                ]
            )
    header = ["Env", "Policy", "Success", "Return", "vs random (points)", "Rule", "First turn"]
    meta = report["meta"]
    failures = [
        f"{env_id.split('/')[-1]} ({', '.join(e['failures'])})"
        for env_id, e in report["envs"].items()
        if e["failures"]
    ]
    # Each family's newest version is its last env in the table (ENV_IDS order).
    newest = {e["family"]: env_id for env_id, e in report["envs"].items()}.values()
    newest_failing = [i.split("/")[-1] for i in newest if report["envs"][i]["failures"]]
    notes = (
        f"{meta['episodes']} held-out episodes per cell (the same seeds {meta['seed']}.. for "
        f"every policy; Copy has no split). Random: uniform over the allowed tokens. An env "
        f"fails a probe when the probe's success beats random's by more than "
        f"{100 * meta['margin']:.0f} points. Probes: "
        + "; ".join(f"`{k}`: {v}" for k, v in meta["probes"].items())
        + f". Failing: {', '.join(failures) if failures else 'none'}; of the newest version "
        f"of each family ({', '.join(i.split('/')[-1] for i in newest)}): "
        f"{', '.join(newest_failing) if newest_failing else 'none'}. Measured {meta['date']} on {meta['machine']}."
    )
    return table(header, rows, "llrrrll") + "\n\n" + notes + "\n"


def _short(text: str, limit: int = 60) -> str:
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return "`" + text.replace("|", "\\|").replace("`", "'") + "`"


def write_outputs(report: dict[str, Any], out: Path) -> None:
    """``probes.json`` and ``probes.md`` in ``out``, each written atomically."""
    atomic_write(out / "probes.json", json.dumps(report, indent=2) + "\n")
    atomic_write(out / "probes.md", markdown(report))


@dataclass
class ProbesArgs:
    """The flags of ``python -m benchmarks.probes``."""

    envs: list[str] = flags.flag(default_factory=lambda: list(ENV_IDS))
    """env ids to probe"""
    episodes: int = EPISODES
    """held-out episodes per (env, policy)"""
    seed: int = SEED
    """seed of the first episode"""
    out: Path = RESULTS
    """results directory"""


def build_parser() -> FlagParser[ProbesArgs]:
    """The command line of ``python -m benchmarks.probes``."""
    prog = "python -m benchmarks.probes"
    return flags.build_parser(ProbesArgs, prog, __doc__.splitlines()[0])


def execute(args: ProbesArgs) -> int:
    """Run the parsed command line; user errors raise."""
    envs = check_env_ids(args.envs)
    episodes = int(check_positive(args.episodes, "--episodes", integer=True))
    (seed,) = check_seeds([args.seed], "--seed")
    check_out_dir(args.out)
    report = measure(envs, episodes, seed)
    write_outputs(report, args.out)
    print(markdown(report))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; a user error prints one line and returns 2."""
    return run_main(build_parser(), execute, argv)


if __name__ == "__main__":
    raise SystemExit(main())
