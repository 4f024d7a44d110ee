"""The env's share of an RL update: time inside ``env.step`` / ``env.reset`` against the rest.

One update of textgym's PPO (or GRPO) on the default model, end to end (``train_step``:
rollout through the native vector env, batch, loss, backward, optimizer step), with every
``envs.step`` and ``envs.reset`` the rollout makes timed by a pass-through
:class:`gymnasium.vector.VectorWrapper`, and every simulated user's ``reset`` / ``respond``
(which run inside those calls) timed by a pass-through :class:`TimedResponder`. The rest is
the model: sampling forwards, the train-time forward and backward, the optimizer.

Each configuration plays ``warmup`` untimed updates, then ``updates`` timed ones; the table
gives the median share over the timed updates. The configurations run in alternation, so
that a shared machine's load drifts into each alike.

    python -m benchmarks.env_share              # writes benchmarks/results/env_share.json/.md
    python -m benchmarks.env_share --quick      # one update of PPO on Reasoning-v0 and Dialogue-v0
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium.envs.registration import find_highest_version, parse_env_id
from gymnasium.vector import VectorWrapper
from tqdm.auto import tqdm

import textgym  # noqa: F401  (registers the ids)
from agents.grpo import GRPO, GRPOConfig
from agents.ppo import PPO, PPOConfig
from benchmarks.cli import check_env_ids, check_known, check_positive, run_main
from benchmarks.render import table
from textgym.errors import ConfigError
from textgym.files import atomic_write
from textgym.tools import flags
from textgym.tools.flags import FlagParser
from textgym.types import Problem, Reply, Turn
from textgym.users.base import Responder

RESULTS = Path(__file__).parent / "results"
NAME = "env_share"
#: The default env (TrainConfig's) and the two families with a simulated user, each at its
#: newest registered version (:func:`newest`).
FAMILIES = ("textgym/Reasoning-v0", "textgym/Dialogue-v0", "textgym/CustomerService-v0")
ALGOS = ("ppo", "grpo")
#: The goal the README states: the env costs at most this share of an update.
GOAL = 0.01


def newest(env_id: str) -> str:
    """``env_id`` at the highest version registered for its name (``Dialogue-v0`` ->
    ``Dialogue-v1`` once v1 exists): Gymnasium warns on making an outdated version."""
    namespace, name, _ = parse_env_id(env_id)
    version = find_highest_version(namespace, name)
    if version is None:
        return env_id
    return f"{namespace}/{name}-v{version}" if namespace else f"{name}-v{version}"


ENV_IDS = tuple(newest(e) for e in FAMILIES)


@dataclass
class Clock:
    """Seconds and calls accumulated by the timers of one configuration."""

    env: float = 0.0
    env_calls: int = 0
    user: float = 0.0
    user_calls: int = 0
    #: Agent turns in the episodes the rollout kept (the user answers each turn end it
    #: sees, also the empty turns of rows that wait for the round to end, then discarded).
    kept_turns: int = 0

    def snapshot(self) -> tuple[float, float]:
        return self.env, self.user


class TimedEnvs(VectorWrapper):
    """Passes every call through; adds the wall time of ``step`` and ``reset`` to a clock."""

    def __init__(self, env: Any, clock: Clock) -> None:
        super().__init__(env)
        self.clock = clock

    def reset(self, **kwargs: Any) -> Any:
        start = time.perf_counter()
        out = self.env.reset(**kwargs)
        self.clock.env += time.perf_counter() - start
        self.clock.env_calls += 1
        return out

    def step(self, actions: Any) -> Any:
        start = time.perf_counter()
        out = self.env.step(actions)
        self.clock.env += time.perf_counter() - start
        self.clock.env_calls += 1
        return out


class TimedResponder(Responder):
    """A simulated user that times the one it wraps (its time is also env time)."""

    def __init__(self, inner: Responder, clock: Clock) -> None:
        self.inner, self.clock = inner, clock

    def reset(self, problem: Problem, rng: np.random.Generator) -> None:
        start = time.perf_counter()
        self.inner.reset(problem, rng)
        self.clock.user += time.perf_counter() - start

    def respond(self, turns: Sequence[Turn]) -> Reply:
        start = time.perf_counter()
        reply = self.inner.respond(turns)
        self.clock.user += time.perf_counter() - start
        self.clock.user_calls += 1
        return reply


def instrument(trainer: Any, clock: Clock) -> None:
    """Time the trainer's rollout env and each of its sub-envs' simulated users.

    The collector steps ``collector.envs``; each sub-env's episode asks its task for a fresh
    responder at every reset, so the task's ``responder`` is wrapped on the instance; the
    trainer's ``collect`` is wrapped to count the turns of the episodes it keeps.
    """
    trainer.collector.envs = TimedEnvs(trainer.collector.envs, clock)
    collect = trainer.collect

    def counted() -> list[Any]:
        episodes = collect()
        clock.kept_turns += sum(len(e.turns) for e in episodes)
        return episodes

    trainer.collect = counted
    seen: set[int] = set()
    for env in trainer.envs.unwrapped.envs:
        task = env.task
        if id(task) in seen or task.responder() is None:
            continue
        seen.add(id(task))
        make = task.responder

        def timed(make: Any = make) -> Responder:
            return TimedResponder(make(), clock)

        task.responder = timed


def make_trainer(
    algo: str, env_id: str, model: str, num_envs: int, run_dir: str, threads: int
) -> Any:
    """textgym's PPO or GRPO with its default settings (no progress bar, no TensorBoard)."""
    common = dict(
        env_id=env_id, model=model, num_envs=num_envs, run_dir=run_dir, progress=False,
        tensorboard=False, threads=threads,
    )  # fmt: skip
    if algo == "ppo":
        return PPO(PPOConfig(**common))
    return GRPO(GRPOConfig(**common))


def measure(
    model: str = "default",
    env_ids: Sequence[str] = ENV_IDS,
    algos: Sequence[str] = ALGOS,
    num_envs: int = 64,
    updates: int = 3,
    warmup: int = 1,
    threads: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """The env's share of each (algorithm, env) update; see the module docstring."""
    torch.set_num_threads(threads)
    configs = [(a, e) for e in env_ids for a in algos]
    rows: dict[tuple[str, str], list[dict[str, float]]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory() as tmp:
        trainers, clocks = {}, {}
        for algo, env_id in configs:
            run_dir = os.path.join(tmp, f"{algo}-{env_id.replace('/', '_')}")
            trainer = make_trainer(algo, env_id, model, num_envs, run_dir, threads)
            clocks[algo, env_id] = clock = Clock()
            instrument(trainer, clock)
            trainers[algo, env_id] = trainer
        bar = tqdm(total=(warmup + updates) * len(configs), desc=NAME, disable=not progress)
        for k in range(warmup + updates):
            for key in configs:
                trainer, clock = trainers[key], clocks[key]
                env0, user0 = clock.snapshot()
                calls0, kept0 = clock.user_calls, clock.kept_turns
                start = time.perf_counter()
                metrics = trainer.train_step()
                wall = time.perf_counter() - start
                if k >= warmup:
                    env_s, user_s = clock.env - env0, clock.user - user0
                    rows[key].append({
                        "wall": wall, "env": env_s, "user": user_s,
                        "rollout": metrics["perf/rollout_fraction"] * metrics["perf/seconds"],
                        "tokens": metrics["perf/generated_tokens"],
                        "user_calls": clock.user_calls - calls0,
                        "kept_turns": clock.kept_turns - kept0,
                    })  # fmt: skip
                bar.update()
        bar.close()
        for trainer in trainers.values():
            trainer.close()
    results = []
    for (algo, env_id), timed in rows.items():
        shares = [r["env"] / r["wall"] for r in timed]
        results.append({
            "algo": algo, "env_id": env_id,
            "env_share": round(float(np.median(shares)), 5),
            "user_share": round(float(np.median([r["user"] / r["wall"] for r in timed])), 5),
            "env_share_of_rollout": round(
                float(np.median([r["env"] / r["rollout"] for r in timed])), 5
            ),
            "update_seconds": round(float(np.median([r["wall"] for r in timed])), 3),
            "env_ms_per_update": round(1e3 * float(np.median([r["env"] for r in timed])), 2),
            "user_ms_per_update": round(1e3 * float(np.median([r["user"] for r in timed])), 2),
            "generated_tokens": round(float(np.median([r["tokens"] for r in timed]))),
            "user_calls_per_update": round(float(np.median([r["user_calls"] for r in timed]))),
            "kept_turns_per_update": round(float(np.median([r["kept_turns"] for r in timed]))),
            "meets_goal": round(float(np.median(shares)), 5) <= GOAL,
            "updates": [{k: round(v, 5) for k, v in r.items()} for r in timed],
        })  # fmt: skip
    return {
        "model": model,
        "num_envs": num_envs,
        "updates": updates,
        "warmup": warmup,
        "threads": threads,
        "goal": GOAL,
        "settings": "each algorithm's default config (PPO: 2 epochs x 2 minibatches, value head)",
        "results": results,
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def markdown(result: dict[str, Any]) -> str:
    """The README table: the env's and the simulated user's share of one update."""
    rows = [
        [
            r["env_id"], r["algo"].upper(), f"{r['update_seconds']:.2f}",
            f"{r['env_ms_per_update']:.1f}", f"**{100 * r['env_share']:.2f}%**",
            f"{100 * r['user_share']:.2f}%", f"{100 * r['env_share_of_rollout']:.1f}%",
            f"{r['kept_turns_per_update']} / {r['user_calls_per_update']}"
            if r["user_calls_per_update"] else "-",
        ]
        for r in result["results"]
    ]  # fmt: skip
    header = [
        "env", "algorithm", "update (s)", "env.step + reset (ms)", "env share",
        "of which the simulated user", "env share of the rollout",
        "user replies kept / made",
    ]  # fmt: skip
    return table(header, rows, "llrrrrrr")


@dataclass
class EnvShareArgs:
    """The flags of ``python -m benchmarks.env_share``."""

    model: str = "default"
    """causal LM: 'default' (textgym's embedded model), a local directory or a hub name"""
    envs: tuple[str, ...] = field(default=ENV_IDS)
    """env ids to profile"""
    algos: tuple[str, ...] = field(default=ALGOS)
    """algorithms to profile (ppo, grpo)"""
    num_envs: int = 64
    """rows of the vector env (the trainers' default)"""
    updates: int = 3
    """timed updates per configuration (the median counts)"""
    warmup: int = 1
    """untimed updates first"""
    threads: int = 1
    """torch CPU threads (1: on a shared 2-core machine two threads stall on each other)"""
    quick: bool = False
    """PPO on Reasoning-v0 and Dialogue-v0, 8 rows, one timed update (a smoke test)"""
    progress: bool = True
    """show a progress bar"""
    out: str = str(RESULTS)
    """directory for env_share.json/.md"""


def build_parser() -> FlagParser[EnvShareArgs]:
    """The command line of ``python -m benchmarks.env_share``."""
    prog, doc = "python -m benchmarks.env_share", __doc__.split("\n\n")[0]
    return flags.build_parser(EnvShareArgs, prog, doc)


def execute(args: EnvShareArgs) -> int:
    """Measure with the parsed flags, write the JSON and Markdown, print the table."""
    if args.quick:
        args.envs, args.algos = ENV_IDS[:2], ("ppo",)
        args.num_envs, args.updates = 8, 1
    envs = check_env_ids(args.envs)
    for algo in args.algos:
        check_known(algo, ALGOS, "algorithm", "--algos")
    for name in ("num_envs", "updates", "threads"):
        check_positive(getattr(args, name), flag_of(name), integer=True)
    if args.warmup < 0:
        raise ConfigError(f"--warmup must be 0 or more, got {args.warmup}.")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {args.out!r} is a file; give a directory.")
    result = measure(
        args.model, envs, args.algos, args.num_envs, args.updates, args.warmup, args.threads,
        args.progress,
    )  # fmt: skip
    text = markdown(result)
    atomic_write(out / f"{NAME}.json", json.dumps(result, indent=2) + "\n")
    atomic_write(out / f"{NAME}.md", text + "\n")
    print(text)
    return 0


def flag_of(name: str) -> str:
    """``num_envs`` -> ``--num-envs``."""
    return "--" + name.replace("_", "-")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.env_share [--quick] [--envs ... --algos ppo grpo]``."""
    return run_main(build_parser(), execute, argv)


if __name__ == "__main__":
    raise SystemExit(main())
