"""Throughput: token steps per second next to CartPole-v1, measured in the same run.

    python -m benchmarks.throughput                      # env steps (seconds)
    python -m benchmarks.throughput --trainers           # also LM trainer tokens/s vs TRL

Both envs get the same treatment: made with ``gym.make`` (so with Gymnasium's default
wrappers) or with ``gym.make_vec(..., vectorization_mode="vector_entry_point")`` and 64
sub-envs, stepped with pre-sampled uniform random actions (sampling is not timed), resetting
when an episode ends. Only steps that take an action count (not the vector envs' autoreset
steps, whose action is ignored), for both. CartPole is measured again next to each env,
alternating runs. The figure that matters is the ratio, since both run on this machine at
the same moment; absolute numbers vary between machines.

It then splits the native vector step into its parts (:func:`vector_step_costs`) and sets
what a ratio of 1.0 would leave for each turn end against the least work a turn end must do
(:func:`turn_floor`: decode the turn, build its reward context).
"""

from __future__ import annotations

import cProfile
import gc
import json
import platform
import pstats
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import textgym  # noqa: F401  (registers the ids)
from benchmarks import trainer_throughput
from benchmarks.cli import check_env_ids, check_out_dir, check_positive, run_main
from benchmarks.envs import family_env_ids
from benchmarks.render import Column, columns_table
from textgym.errors import ConfigError
from textgym.files import atomic_write
from textgym.rewards.base import RewardContext
from textgym.tools import flags
from textgym.tools.flags import FlagParser

RESULTS = Path(__file__).parent / "results"


def single_env_sps(env_id: str, steps: int, seed: int = 0) -> float:
    """Steps per second of one ``gym.make`` env under random actions."""
    env = gym.make(env_id)
    actions = np.random.default_rng(seed).integers(0, env.action_space.n, steps).tolist()
    env.reset(seed=seed)
    step, reset = env.step, env.reset
    start = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = step(a)
        if terminated or truncated:
            reset()
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def vector_env_sps(env_id: str, num_envs: int, steps: int, seed: int = 0) -> float:
    """Sub-env steps per second of the native vector env (``vector_entry_point``).

    Only steps that take an action count: in Gymnasium's ``NEXT_STEP`` autoreset mode the
    step after a sub-env's episode ends resets it and ignores its action, so that row-step
    is not a token step (its time still counts, as a reset's does for one env).
    """
    envs = gym.make_vec(env_id, num_envs, vectorization_mode="vector_entry_point")
    n = envs.single_action_space.n
    actions = np.random.default_rng(seed).integers(0, n, (steps, num_envs))
    envs.reset(seed=seed)
    step = envs.step
    ends = []
    start = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = step(a)
        ends.append((terminated, truncated))  # counted after the clock stops
    elapsed = time.perf_counter() - start
    envs.close()
    # A row that ended at step t is reset at step t + 1 (the last step's ends never are).
    resets = sum(int((t | u).sum()) for t, u in ends[:-1])
    return (steps * num_envs - resets) / elapsed


def vector_step_costs(
    env_id: str, num_envs: int, steps: int, seed: int = 0, quiet_steps: int = 1_000
) -> dict[str, float]:
    """Where a native vector step's time goes: the token step itself, and what turn ends and
    episode starts add.

    ``step_us`` is the pure token step (one token into every row, no row's turn or episode
    ends): the median over the steps that follow a reset of all rows, until the first row
    ends. Then a uniform-random run is timed step by step and ``time - step_us`` is fitted
    by least squares as ``batch_us * [any turn ends or episode starts] + per_turn_end_us *
    turn ends + per_episode_start_us * episode starts`` (refitted without the 1% of steps
    the first fit explains worst: garbage collection, the scheduler). ``batch_us`` is what
    the batched work costs once per step however many rows take part (the reward call, the
    info dicts), plus whatever a busy step's token write costs beyond a quiet one's (with
    resetting rows it indexes the stepping rows instead of whole arrays). Episode starts are
    the autoresets, which Gymnasium's ``NEXT_STEP`` mode runs one step after an episode
    ends. CartPole has no turns: its episode ends stand in for them.
    """
    envs = gym.make_vec(env_id, num_envs, vectorization_mode="vector_entry_point")
    n = envs.single_action_space.n
    rng = np.random.default_rng(seed)
    step, clock = envs.step, time.perf_counter

    quiet: list[float] = []
    for episode in range(max(50, quiet_steps)):
        if len(quiet) >= quiet_steps:
            break
        envs.reset(seed=seed + episode * num_envs)
        while True:
            a = rng.integers(0, n, num_envs)
            begin = clock()
            _, _, terminated, truncated, info = step(a)
            elapsed = clock() - begin
            if info or terminated.any() or truncated.any():
                break  # a row's turn or episode ended: no longer a pure token step
            quiet.append(elapsed)

    actions = rng.integers(0, n, (steps, num_envs))
    envs.reset(seed=seed)
    times = np.empty(steps)
    turn_ends = np.zeros(steps)
    starts = np.zeros(steps)
    ending = 0
    for t, a in enumerate(actions):
        begin = clock()
        _, _, terminated, truncated, info = step(a)
        times[t] = clock() - begin
        starts[t] = ending
        ending = int((terminated | truncated).sum())
        # textgym marks turn ends in info; CartPole has no turns, so its episode ends count.
        turn_ends[t] = info["_turn"].sum() if "_turn" in info else ending
    envs.close()
    busy = ((turn_ends + starts) > 0).astype(float)
    if quiet:
        token_step = float(np.median(quiet))
        design = np.stack([busy, turn_ends, starts], axis=1)
        target = times - token_step
    else:
        # Every step ends some turn (one-token turns): the token step cannot be timed alone,
        # so it is fitted as an intercept that also holds the once-per-step cost.
        design = np.stack([np.ones(steps), turn_ends, starts], axis=1)
        target = times
    coef = np.linalg.lstsq(design, target, rcond=None)[0]
    # Leave out the 1% of steps the fit explains worst (garbage collection, the scheduler),
    # then fit again: trimming by raw time would drop the steps where most rows end.
    residual = target - design @ coef
    keep = residual <= np.quantile(residual, 0.99)
    coef = np.linalg.lstsq(design[keep], target[keep], rcond=None)[0]
    fit_error = float(np.mean(design[keep] @ coef - target[keep])) * 1e6
    coef = coef * 1e6
    if not quiet:
        token_step, coef[0] = coef[0] / 1e6, float("nan")
    return {
        "step_us": round(token_step * 1e6, 2),
        "quiet_steps": len(quiet),
        "batch_us": round(float(coef[0]), 2),
        "per_turn_end_us": round(float(coef[1]), 2),
        "per_episode_start_us": round(float(coef[2]), 2),
        "busy_step_share": round(float(busy.mean()), 3),
        "turn_ends_per_step": round(float(turn_ends.mean()), 3),
        "episode_starts_per_step": round(float(starts.mean()), 3),
        "mean_step_us": round(float(times.mean() * 1e6), 2),
        "fitted_steps_mean_us": round(float(times[keep].mean() * 1e6), 2),
        "fit_mean_error_us": round(fit_error, 2),
    }


def measure_step_costs(
    env_ids: Sequence[str], num_envs: int, steps: int, quiet_steps: int = 1_000
) -> list[dict]:
    """:func:`vector_step_costs` for each env next to CartPole-v1 (best of two, alternating)."""
    rows = []
    for env_id in env_ids:
        peer, env = [], []
        for _ in range(2):
            peer.append(vector_step_costs("CartPole-v1", num_envs, steps, quiet_steps=quiet_steps))
            env.append(vector_step_costs(env_id, num_envs, steps, quiet_steps=quiet_steps))
        best_peer = min(peer, key=lambda r: r["step_us"])
        best = min(env, key=lambda r: r["step_us"])
        floor = turn_floor(env_id, num_envs, steps)
        peer_mean = min(r["mean_step_us"] for r in peer)
        # A ratio of 1.0 means as many token steps per second as CartPole. Autoreset
        # row-steps take no action, so with more of them the env's step must be faster.
        token_rows = (num_envs - best["episode_starts_per_step"]) / (
            num_envs - best_peer["episode_starts_per_step"]
        )
        rows.append(
            {
                "env_id": env_id,
                "num_envs": num_envs,
                **best,
                "cartpole_step_us": best_peer["step_us"],
                "token_step_ratio": round(best_peer["step_us"] / best["step_us"], 3),
                # The least disturbed of the runs' mean steps (a GC pause or a busy moment
                # raises one run's mean, never lowers it).
                "cartpole_mean_step_us": peer_mean,
                "cartpole_episode_starts_per_step": best_peer["episode_starts_per_step"],
                # What one turn end (with its share of episode starts) may cost, all in, for
                # the env's token steps per second to match CartPole's: the ratio-1.0 budget.
                "budget_per_turn_end_us": round(
                    (peer_mean * token_rows - best["step_us"]) / best["turn_ends_per_step"], 2
                ),
                "least_mean_step_us": min(r["mean_step_us"] for r in env),
                **floor,
            }
        )
    return rows


#: Where a vector step's time goes: profiled functions, by what they do. Each part names
#: the episode state's method (textgym/episode.py) and, second, the TextEnv method that did
#: this work before the episode state was split out, so older checkouts profile alike.
PROFILE_PARTS = {
    "autoreset (draw the next problem, write its opening)": ("start", "_start_episode"),
    "close turns (decode, user reply)": ("close_turn", "_close_turn"),
    "score turns (reward)": ("evaluate",),
    "batch infos": ("batch_infos", "turn_info", "_turn_info"),
}


def profile_vector(env_id: str, num_envs: int, steps: int, seed: int = 0) -> dict[str, float]:
    """Shares of a native vector step's time (cProfile, cumulative; overhead inflates Python
    calls a little, so read the shares, not the absolute times)."""
    envs = gym.make_vec(env_id, num_envs, vectorization_mode="vector_entry_point")
    n = envs.single_action_space.n
    actions = np.random.default_rng(seed).integers(0, n, (steps, num_envs))
    envs.reset(seed=seed)
    profiler = cProfile.Profile()
    profiler.enable()
    for a in actions:
        envs.step(a)
    profiler.disable()
    envs.close()
    stats = pstats.Stats(profiler).stats  # {(file, line, name): (cc, nc, tt, ct, callers)}
    total = sum(tt for _, _, tt, _, _ in stats.values())
    shares = {}
    for part, names in PROFILE_PARTS.items():
        # cProfile's cumulative time already counts a recursive call (batch_infos) once.
        cum = sum(ct for (_, _, name), (_, _, _, ct, _) in stats.items() if name in names)
        shares[part] = round(cum / total, 3)
    shares["rest (numpy step, checks, observation copy)"] = round(1 - sum(shares.values()), 3)
    return shares


class _Recording:
    """Stands in for a vector env's reward, keeping every context it is asked to score."""

    def __init__(self, reward: Any) -> None:
        self.reward, self.name, self.seen = reward, reward.name, []

    def batch(self, ctxs: Sequence[Any]) -> list:
        self.seen.extend(ctxs)
        return self.reward.batch(ctxs)


def turn_floor(env_id: str, num_envs: int, steps: int, seed: int = 0) -> dict[str, float]:
    """The least work the MDP's contract asks at each turn end, timed per turn.

    Rewards are called with a :class:`~textgym.rewards.base.RewardContext` that holds the
    turn's decoded text, so every turn end must at least decode the turn's ids and build the
    context. Both are timed over the turns of a uniform-random run (best of 5 passes), with
    nothing else: no reward, no next problem, no info.
    """
    envs = gym.make_vec(env_id, num_envs, vectorization_mode="vector_entry_point")
    inner = envs.unwrapped
    recording = _Recording(inner.reward)
    inner.reward = recording
    n = envs.single_action_space.n
    envs.reset(seed=seed)
    for a in np.random.default_rng(seed).integers(0, n, (steps, num_envs)):
        envs.step(a)
    envs.close()
    ctxs = recording.seen
    ids = [ctx.token_ids.tolist() for ctx in ctxs]
    # As the env builds them: by keyword, every field given.
    fields = [dict(vars(ctx)) for ctx in ctxs]
    decode = inner.envs[0]._decode

    def best(fn: Any) -> float:
        times = []
        # Without the garbage collector (the env runs with it): a floor errs low, never high.
        gc.disable()
        try:
            for _ in range(5):
                begin = time.perf_counter()
                fn()
                times.append(time.perf_counter() - begin)
        finally:
            gc.enable()
        return min(times) / len(ctxs) * 1e6

    return {
        "decode_us": round(best(lambda: [decode(x) for x in ids]), 2),
        "context_us": round(best(lambda: [RewardContext(**f) for f in fields]), 2),
        "turns_timed": len(ctxs),
    }


def paired_best(fn: Any, repeats: int, peer_args: tuple, env_args: tuple) -> tuple[float, float]:
    """Best of ``repeats`` runs for the peer and the env, run alternately.

    Best of: the run least disturbed by other processes on the machine. Alternately: each
    env is compared with a CartPole run from the same moment, so a load change during the
    benchmark does not skew the later rows' ratios.
    """
    peer = env = 0.0
    for _ in range(repeats):
        peer = max(peer, fn(*peer_args))
        env = max(env, fn(*env_args))
    return peer, env


def measure_envs(env_ids: Sequence[str], steps: int, num_envs: int, repeats: int) -> list[dict]:
    """Single and vector throughput for each env id next to CartPole-v1."""
    rows = []
    vector_steps = steps // num_envs * 4
    for env_id in env_ids:
        peer_single, single = paired_best(
            single_env_sps, repeats, ("CartPole-v1", steps), (env_id, steps)
        )
        peer_vector, vector = paired_best(
            vector_env_sps,
            repeats,
            ("CartPole-v1", num_envs, vector_steps),
            (env_id, num_envs, vector_steps),
        )
        rows.append(
            {
                "env_id": env_id,
                "single_steps_per_s": round(single),
                "cartpole_single_steps_per_s": round(peer_single),
                "single_ratio": round(single / peer_single, 3),
                "vector_num_envs": num_envs,
                "vector_steps_per_s": round(vector),
                "cartpole_vector_steps_per_s": round(peer_vector),
                "vector_ratio": round(vector / peer_vector, 3),
            }
        )
    return rows


def _cell(key: str, spec: str) -> Callable[[Mapping[str, Any]], str]:
    """A column cell: the row's ``key`` formatted with ``spec``."""
    return lambda row: format(row[key], spec)


def _env(row: Mapping[str, Any]) -> str:
    return row["env_id"]


#: The columns of the README's throughput table.
SPEED_COLUMNS: list[Column] = [
    ("env", _env),
    ("gym.make steps/s", _cell("single_steps_per_s", ",")),
    ("CartPole-v1", _cell("cartpole_single_steps_per_s", ",")),
    ("ratio", _cell("single_ratio", ".2f")),
    ("vector x64 steps/s", _cell("vector_steps_per_s", ",")),
    ("CartPole-v1 x64", _cell("cartpole_vector_steps_per_s", ",")),
    ("ratio", _cell("vector_ratio", ".2f")),
]
#: The columns of the README's table of where a vector step's time goes.
COST_COLUMNS: list[Column] = [
    ("env", _env),
    ("token step x64 (us)", _cell("step_us", ".1f")),
    ("CartPole-v1 step x64 (us)", _cell("cartpole_step_us", ".1f")),
    ("ratio", _cell("token_step_ratio", ".2f")),
    ("+ once per busy step (us)", _cell("batch_us", ".1f")),
    ("+ per turn end (us)", _cell("per_turn_end_us", ".1f")),
    ("+ per episode start (us)", _cell("per_episode_start_us", ".1f")),
    ("turn ends / step", _cell("turn_ends_per_step", ".2f")),
    ("episode starts / step", _cell("episode_starts_per_step", ".2f")),
]


def markdown(rows: list[dict]) -> str:
    """The README table."""
    return columns_table(rows, SPEED_COLUMNS)


def costs_markdown(rows: list[dict]) -> str:
    """The README table of where a vector step's time goes."""
    return columns_table(rows, COST_COLUMNS)


def _left(r: Mapping[str, Any]) -> float:
    """What the ratio-1.0 budget leaves a turn end beyond decoding it and building its context."""
    return r["budget_per_turn_end_us"] - r["decode_us"] - r["context_us"]


def _now(r: Mapping[str, Any]) -> float:
    """Today's cost of a turn end, all in (its share of episode starts and of the
    once-per-busy-step work included), measured the way the budget is set."""
    return (r["least_mean_step_us"] - r["step_us"]) / r["turn_ends_per_step"]


#: The columns of the README's table of what a ratio of 1.0 leaves for each turn end.
BUDGET_COLUMNS: list[Column] = [
    ("env", _env),
    ("budget per turn end for 1.0 (us)", _cell("budget_per_turn_end_us", ".1f")),
    ("decode the turn (us)", _cell("decode_us", ".1f")),
    ("build its RewardContext (us)", _cell("context_us", ".1f")),
    ("left for everything else (us)", lambda r: f"{_left(r):.1f}"),
    ("measured now, per turn end (us)", lambda r: f"{_now(r):.1f}"),
]


def budget_markdown(rows: list[dict]) -> str:
    """The README table of what a ratio of 1.0 leaves for each turn end."""
    return columns_table(rows, BUDGET_COLUMNS)


def report_markdown(report: dict[str, Any]) -> str:
    """``throughput.md``: the tables of a report."""
    costs = report["vector_step_costs"]
    tables = [markdown(report["envs"]), costs_markdown(costs), budget_markdown(costs)]
    return "\n\n".join(tables) + "\n"


@dataclass
class ThroughputArgs:
    """The flags of ``python -m benchmarks.throughput``."""

    envs: list[str] | None = flags.flag(None, nargs="*")
    """env ids (default: one per family)"""
    steps: int = 20_000
    """single-env steps per run (the vector env takes steps // num_envs * 4 vector steps)"""
    num_envs: int = 64
    """sub-envs of the vector env"""
    repeats: int = 3
    """runs per env, alternating with CartPole (the best of each counts)"""
    trainers: bool = False
    """also measure the LM trainers against TRL"""
    out: Path = RESULTS
    """results directory"""


def build_parser() -> FlagParser[ThroughputArgs]:
    """The command line of ``python -m benchmarks.throughput``."""
    return flags.build_parser(ThroughputArgs, "python -m benchmarks.throughput", __doc__)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; a user error prints one line and returns 2."""
    return run_main(build_parser(), execute, argv)


def check_args(args: ThroughputArgs) -> None:
    """Every flag checked before measuring (a bad one would surface minutes in, or never).

    Raises:
        ConfigError: naming the flag and its valid range.
    """
    if args.envs:
        check_env_ids(args.envs)
    for flag in ("steps", "num_envs", "repeats"):
        check_positive(getattr(args, flag), "--" + flag.replace("_", "-"), integer=True)
    if args.steps < args.num_envs:
        raise ConfigError(
            f"--steps ({args.steps}) must be at least --num-envs ({args.num_envs}): the vector "
            "measurement runs steps // num-envs * 4 steps of all sub-envs."
        )
    check_out_dir(args.out)


def execute(args: ThroughputArgs) -> int:
    """Run the parsed command line; user errors raise (a ``UserError``)."""
    check_args(args)
    env_ids = args.envs or family_env_ids()
    report: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
        "envs": measure_envs(env_ids, args.steps, args.num_envs, args.repeats),
    }
    print(markdown(report["envs"]))
    report["vector_step_costs"] = measure_step_costs(env_ids, args.num_envs, 3_000)
    print(costs_markdown(report["vector_step_costs"]))
    print(budget_markdown(report["vector_step_costs"]))
    report["vector_profile"] = {
        env_id: profile_vector(env_id, args.num_envs, 2_000) for env_id in env_ids
    }
    for env_id, shares in report["vector_profile"].items():
        print(f"{env_id} x{args.num_envs}: " + ", ".join(f"{k} {v:.0%}" for k, v in shares.items()))
    if args.trainers:
        report["trainers"] = trainer_throughput.measure()
        print(json.dumps(report["trainers"], indent=2))
    # Atomic: the committed results (which the README's tables must match) are never torn.
    atomic_write(args.out / "throughput.json", json.dumps(report, indent=2) + "\n")
    atomic_write(args.out / "throughput.md", report_markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
