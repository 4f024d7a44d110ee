"""What ``textgym bench`` compares: its algorithms, the budget they read, and its presets.

Each algorithm is a function from a run's spec to its result: it trains (or not) on the
env's training split, is scored on the split its scores are measured on
(:func:`benchmarks.envs.eval_split`), and returns a :class:`~benchmarks.runner.RunResult`
with its learning curve when it has one. A preset says which algorithms run on which envs,
with how many seeds and what budget.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
from sb3_contrib import MaskablePPO

from agents.baselines import RandomAgent
from agents.common.evaluation import evaluate_policy
from agents.common.logger import read_log
from agents.sb3 import LearningCurveCallback, policy_kwargs
from agents.tabular import SARSA, QLearning
from benchmarks.cli import check_known, check_positive, check_unique
from benchmarks.envs import eval_env, train_env
from benchmarks.lm_accuracy import lm_trainer
from benchmarks.runner import Algorithm, RunResult, RunSpec
from textgym.errors import ConfigError


class OracleAgent:
    """The task's oracle as an agent: the upper bound of every table."""

    def __init__(self, env: gym.Env) -> None:
        self.env = env

    def predict(self, obs: Any, deterministic: bool = True) -> tuple[int, None]:
        """The oracle's next token (``obs`` is not needed: the env knows the answer)."""
        return self.env.unwrapped.oracle_action(), None


def _evaluate(agent: Any, spec: RunSpec, env: gym.Env | None = None) -> tuple[float, float]:
    env = env or eval_env(spec.env_id)
    res = evaluate_policy(
        agent, env, n_episodes=spec.budget["eval_episodes"], seed=10_000 + spec.seed
    )
    return res.success_rate, res.mean_return


def _curve_from_log(
    run_dir: Path, keys: Sequence[str] = ("charts/success_rate",)
) -> list[dict[str, float]]:
    path = run_dir / "progress.csv"
    if not path.exists():
        return []
    series = read_log(path)
    for key in keys:
        if key in series:
            return [{"step": s, "wall_time": w, "value": v} for s, w, v in series[key]]
    return []


def run_random(spec: RunSpec) -> RunResult:
    """The uniform random policy over the allowed tokens: the floor of every table."""
    start = time.perf_counter()
    env = eval_env(spec.env_id)
    return RunResult.of(spec, _evaluate(RandomAgent(env, seed=spec.seed), spec, env), start)


def run_oracle(spec: RunSpec) -> RunResult:
    """The task's oracle: the ceiling of every table."""
    start = time.perf_counter()
    env = eval_env(spec.env_id)
    return RunResult.of(spec, _evaluate(OracleAgent(env), spec, env), start)


@dataclass(frozen=True)
class _Tabular:
    """Q-learning or SARSA for ``tabular_timesteps`` steps (a class, not a closure, so that
    parallel runs can pickle it)."""

    cls: type[QLearning] | type[SARSA]

    def __call__(self, spec: RunSpec) -> RunResult:
        start = time.perf_counter()
        agent = self.cls(train_env(spec.env_id), seed=spec.seed, log_dir=spec.run_dir)
        agent.learn(total_timesteps=spec.budget["tabular_timesteps"], progress_bar=False)
        return RunResult.of(spec, _evaluate(agent, spec), start, _curve_from_log(spec.run_dir))


def run_maskable_ppo(spec: RunSpec) -> RunResult:
    """SB3-contrib's MaskablePPO on the env's action masks."""
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


@dataclass(frozen=True)
class _LM:
    """An LM trainer for ``lm_updates`` updates, ``lm_minutes`` at most (``"pretrained"``:
    the default model, no training)."""

    algo: str

    def __call__(self, spec: RunSpec) -> RunResult:
        start = time.perf_counter()
        trainer = lm_trainer(
            "grpo" if self.algo == "pretrained" else self.algo,
            spec.env_id,
            spec.seed,
            spec.run_dir,
            # A fixed number of updates makes the result the same on any machine of the
            # same architecture; the minutes only cap a slow one (and are reported).
            time_budget=60.0 * spec.budget["lm_minutes"],
            total_updates=spec.budget.get("lm_updates", 100_000),
            eval_every=spec.budget.get("lm_eval_every", 5),
            eval_episodes=spec.budget["eval_episodes"],
            tensorboard=False,
            # Part of what the numbers depend on: PPO's reductions round differently on one
            # thread than on two, so the budget fixes the count.
            threads=spec.budget.get("lm_threads", 1),
        )
        capped = None
        if self.algo == "pretrained":
            scores = trainer.evaluate()
            curve = []
        else:
            report = trainer.learn().report()
            scores, capped = report["after"], report["capped"]
            curve = _curve_from_log(spec.run_dir, ("eval/success_rate",))
        success, ret = float(scores["eval/success_rate"]), float(scores["eval/episodic_return"])
        return RunResult.of(spec, (success, ret), start, curve, capped)


ALGORITHMS: dict[str, Algorithm] = {
    "random": run_random,
    "oracle": run_oracle,
    "q_learning": _Tabular(QLearning),
    "sarsa": _Tabular(SARSA),
    "maskable_ppo": run_maskable_ppo,
    "pretrained": _LM("pretrained"),
    "reinforce": _LM("reinforce"),
    "ppo": _LM("ppo"),
    "grpo": _LM("grpo"),
}
#: The LM trainers, whose runs cost minutes each (they take the preset's ``lm_seeds``).
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
            ("textgym/Reasoning-v1", ("random", "pretrained", "grpo", "ppo", "oracle")),
        ),
        seeds=(0, 1, 2),
        budget={
            "tabular_timesteps": 30_000,
            "sb3_timesteps": 8_000,
            "eval_episodes": 200,
            # About 1 minute of GRPO and 2 of PPO on 2 idle cores; 5 minutes caps a slow one.
            "lm_updates": 50,
            "lm_minutes": 5.0,
            "lm_eval_every": 10,
            "lm_threads": 1,
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
                "textgym/CustomerService-Tiny-v1",
                ("random", "q_learning", "sarsa", "maskable_ppo", "oracle"),
            ),
            ("textgym/Dialogue-Tiny-v1", ("random", "q_learning", "sarsa", "oracle")),
            (
                "textgym/Reasoning-v1",
                ("random", "pretrained", "reinforce", "grpo", "ppo", "oracle"),
            ),
            ("textgym/CustomerService-v1", ("random", "pretrained", "grpo", "ppo", "oracle")),
            ("textgym/Dialogue-v1", ("random", "pretrained", "grpo", "ppo", "oracle")),
        ),
        seeds=(0, 1, 2, 3, 4),
        budget={
            "tabular_timesteps": 60_000,
            "sb3_timesteps": 50_000,
            "eval_episodes": 200,
            "lm_updates": 100,
            "lm_minutes": 15.0,
            "lm_eval_every": 20,
            "lm_threads": 1,
        },
    ),
}


# -- what a user may ask for ---------------------------------------------------------------

#: Every budget key, its type and what it sets; anything else is refused (a typo would
#: otherwise be ignored and the default silently used).
BUDGET_KEYS: dict[str, tuple[type, str]] = {
    "tabular_timesteps": (int, "env steps of each Q-learning / SARSA run"),
    "sb3_timesteps": (int, "env steps of each MaskablePPO run"),
    "eval_episodes": (int, "held-out episodes each run is scored on"),
    "lm_updates": (int, "updates of each LM run (what the result is reproducible by)"),
    "lm_minutes": (float, "training minutes of each LM run (a cap; the run reports if hit)"),
    "lm_eval_every": (int, "LM updates between held-out evaluations"),
    "lm_threads": (int, "torch threads of each LM run (the numbers depend on it)"),
}


def parse_budget(text: str) -> dict[str, int | float]:
    """The ``--budget`` overrides: a JSON object of known keys with valid values.

    Raises:
        ConfigError: not JSON, not an object, an unknown key (with a did-you-mean) or a
            value out of range.
    """
    example = '\'{"tabular_timesteps": 3000, "eval_episodes": 20}\''
    try:
        overrides = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"--budget must be a JSON object, e.g. {example}; {text!r} is not JSON ({exc})."
        ) from None
    if not isinstance(overrides, dict):
        raise ConfigError(f"--budget must be a JSON object, e.g. {example}; got {text!r}.")
    return check_budget(overrides)


def check_budget(budget: Mapping[str, Any], flag: str = "--budget") -> dict[str, int | float]:
    """``budget`` with every key known and every value in range (ints made ints).

    Raises:
        ConfigError: an unknown key (with a did-you-mean) or a value out of range.
    """
    checked: dict[str, int | float] = {}
    for key, value in budget.items():
        check_known(str(key), BUDGET_KEYS, "key", flag, f"Known keys: {', '.join(BUDGET_KEYS)}.")
        kind, _ = BUDGET_KEYS[key]
        checked[key] = check_positive(value, f"{flag} {key}", integer=kind is int)
    return checked


def check_algos(algos: Sequence[str], flag: str = "--algos") -> tuple[str, ...]:
    """``algos`` if each is a known algorithm (with a did-you-mean for a typo).

    Raises:
        ConfigError: an unknown or repeated algorithm.
    """
    for algo in algos:
        check_known(algo, ALGORITHMS, "algorithm", flag)
    check_unique(algos, flag)
    return tuple(algos)
