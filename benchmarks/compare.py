"""Compare algorithms across the suite: ``textgym bench`` / ``python -m benchmarks.compare``.

One command answers: which algorithm does best on which task, by how much, with what
certainty, and how much RL lifts the pre-trained model.

    textgym bench                        # --preset quick: the README's main job (<= 10 min)
    textgym bench --preset full          # more seeds, bigger budgets
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

import argparse
import csv
import difflib
import inspect
import io
import json
import math
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import textgym
from textgym.errors import ConfigError, UserError
from textgym.files import DirectoryLock, atomic_write, clean_temporary_files

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


# -- what a user may ask for ---------------------------------------------------------------


class MissingFileError(UserError, FileNotFoundError):
    """A file the user pointed a benchmark at does not exist."""


class ResultsFileError(UserError, ValueError):
    """A results file given to read is torn, unreadable or not what it should be."""


class ResumeMismatchError(ConfigError):
    """``--out`` holds finished runs made under another configuration."""


#: Every budget key, its type and what it sets; anything else is refused (a typo would
#: otherwise be ignored and the default silently used).
BUDGET_KEYS: dict[str, tuple[type, str]] = {
    "tabular_timesteps": (int, "env steps of each Q-learning / SARSA run"),
    "sb3_timesteps": (int, "env steps of each MaskablePPO run"),
    "eval_episodes": (int, "held-out episodes each run is scored on"),
    "lm_minutes": (float, "training minutes of each LM run (its time cap)"),
    "lm_eval_every": (int, "LM updates between held-out evaluations"),
}
#: Seeds go to numpy, Gymnasium, torch and SB3 (whose ``np.random.seed`` takes < 2**32),
#: offset by up to 20_000 for evaluation: this range is valid for all of them.
MAX_SEED = 2**31 - 1


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the closest of ``known``, or ``""``."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def check_positive(value: Any, flag: str, integer: bool) -> int | float:
    """``value`` as a positive int (``integer``) or a positive finite float.

    An integral float (``3000.0``) passes as an int: JSON writers produce those.

    Raises:
        ConfigError: naming ``flag`` and the valid range.
    """
    kind = "a positive integer" if integer else "a positive finite number"
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{flag} must be {kind}, got {value!r}.")
    if integer:
        if value != int(value):
            raise ConfigError(f"{flag} must be {kind}, got {value!r}.")
        return int(value)
    return float(value)


def check_seeds(seeds: Sequence[int], flag: str = "--seeds") -> tuple[int, ...]:
    """``seeds`` if each is in [0, MAX_SEED] and none repeats.

    A repeated seed would count one run twice in the mean and its confidence interval.

    Raises:
        ConfigError: naming ``flag``, the bad seed and the valid range.
    """
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise ConfigError(f"{flag} takes integers in [0, {MAX_SEED}], got {seed!r}.")
    check_unique(seeds, flag)
    return tuple(seeds)


def check_unique(values: Sequence[Any], flag: str) -> None:
    """Refuse a value given twice (it would be run, or counted, twice)."""
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise ConfigError(f"{flag} lists {value!r} twice; give each once.")
        seen.add(value)


def check_env_ids(env_ids: Sequence[str], flag: str = "--envs") -> tuple[str, ...]:
    """``env_ids`` if every one is registered (with a did-you-mean for a typo).

    Raises:
        ConfigError: an unknown id, naming the closest registered one.
    """
    known = textgym.env_ids()
    for env_id in env_ids:
        if env_id not in known:
            raise ConfigError(
                f"{flag}: unknown env id {env_id!r}.{did_you_mean(env_id, known)} "
                "`textgym list` shows every id."
            )
    check_unique(env_ids, flag)
    return tuple(env_ids)


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
        if key not in BUDGET_KEYS:
            raise ConfigError(
                f"{flag}: unknown key {key!r}.{did_you_mean(str(key), BUDGET_KEYS)} "
                f"Known keys: {', '.join(BUDGET_KEYS)}."
            )
        kind, _ = BUDGET_KEYS[key]
        checked[key] = check_positive(value, f"{flag} {key}", integer=kind is int)
    return checked


# -- running and aggregating ---------------------------------------------------------------

#: Files of earlier versions' non-atomic writes (``<name>.tmp`` beside the file): a kill
#: mid-write left them, and :func:`clean_temporary_files` only knows today's names.
_LEGACY_TEMPORARIES = ("result.json.tmp", "results.json.tmp", "results.md.tmp")


def clean_output(out: Path) -> list[Path]:
    """Remove the temporary files killed writes left in ``out`` and its run directories.

    Call this only while holding ``out``'s :class:`DirectoryLock`.
    """
    dirs = [out, *sorted(p for p in (out / "runs").glob("*") if p.is_dir())]
    removed = []
    for directory in dirs:
        removed += clean_temporary_files(directory)
        for name in _LEGACY_TEMPORARIES:
            if (directory / name).is_file():
                (directory / name).unlink()
                removed.append(directory / name)
    return removed


def load_result(path: Path) -> RunResult | None:
    """The finished run recorded in ``path``, or ``None`` if it is missing or torn.

    A file a kill cut short (or any file that is not a whole record) means the run did not
    finish: it is redone, never trusted in part and never a crash.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return _torn(path)
    names = [f.name for f in fields(RunResult)]
    if not isinstance(data, dict) or any(name not in data for name in names[:-1]):
        return _torn(path)
    numbers = ("seed", "success_rate", "mean_return", "wall_time")
    if (
        not all(isinstance(data[k], (int, float)) for k in numbers)
        or not isinstance(data["budget"], dict)
        or not isinstance(data.get("curve", []), list)
    ):
        return _torn(path)
    return RunResult(**{k: data[k] for k in names if k in data})


def _torn(path: Path) -> None:
    print(
        f"textgym bench: {path} is torn or unreadable (a write cut short?); "
        "that run will be redone.",
        file=sys.stderr,
    )
    return None


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    missing = "(preset default)"
    return [
        f"{key} {old.get(key, missing)} -> {new.get(key, missing)}"
        for key in keys
        if old.get(key) != new.get(key)
    ]


def check_resumable(specs: Sequence[RunSpec]) -> dict[str, RunResult]:
    """The finished runs of ``specs``, by name, if every one ran under its spec's budget.

    Raises:
        ResumeMismatchError: a finished run was made under another budget; the message
            shows what differs and the ways out.
    """
    finished: dict[str, RunResult] = {}
    mismatched: dict[str, list[str]] = {}
    for spec in specs:
        result = load_result(spec.run_dir / "result.json")
        if result is None:
            continue
        if result.budget != spec.budget:
            mismatched[spec.name] = _differences(result.budget, spec.budget)
        else:
            finished[spec.name] = result
    if mismatched:
        changes = sorted({change for diff in mismatched.values() for change in diff})
        example = next(s.run_dir for s in specs if s.name in mismatched)
        raise ResumeMismatchError(
            f"The output directory holds {len(mismatched)} finished run(s) made under another "
            f"budget (e.g. {example}): {'; '.join(changes)} (earlier -> now). "
            "Resuming would mix two configurations in one table: use a new --out, or pass "
            "--restart to discard the earlier results and start over."
        )
    return finished


def run_all(specs: Sequence[RunSpec], progress: bool = True) -> list[RunResult]:
    """Run every spec not already finished under the same budget, with a progress bar.

    Call this while holding the output directory's lock (:func:`bench` does).

    Raises:
        ResumeMismatchError: see :func:`check_resumable` (raised before any run starts).
    """
    from tqdm.auto import tqdm

    finished = check_resumable(specs)
    results = []
    bar = tqdm(specs, desc="bench", disable=not progress, unit="run")
    for spec in bar:
        bar.set_postfix_str(spec.name)
        if spec.name in finished:
            results.append(finished[spec.name])
            continue
        if spec.algo not in ALGORITHMS:
            raise ConfigError(
                f"Unknown algorithm {spec.algo!r}.{did_you_mean(spec.algo, ALGORITHMS)} "
                f"Known: {', '.join(sorted(ALGORITHMS))}."
            )
        if spec.run_dir.exists():
            # An interrupted run restarts from scratch: its partial logs would mix curves.
            shutil.rmtree(spec.run_dir)
        spec.run_dir.mkdir(parents=True)
        result = ALGORITHMS[spec.algo](spec)
        atomic_write(spec.run_dir / "result.json", json.dumps(asdict(result), indent=1))
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


def _save_png(fig: Any, path: Path, dpi: int = 120) -> None:
    """Render ``fig`` in memory, then write it atomically (a kill never leaves half a PNG)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    atomic_write(path, buffer.getvalue())


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
    _save_png(fig, out / "curves.png")
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
    _save_png(fig, out / "scores.png")
    plt.close(fig)


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
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=[k for k in rows[0] if k != "budget"] + ["budget"])
    writer.writeheader()
    for r in rows:
        writer.writerow(
            {**r, "seeds": " ".join(map(str, r["seeds"])), "budget": json.dumps(r["budget"])}
        )
    atomic_write(out / "results.csv", table.getvalue())
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
        # lm_eval_every has a default in the LM runner; every other key is read as is.
        missing = [key for key in missing if key != "lm_eval_every"]
        if missing:
            raise ConfigError(f"--budget lacks {', '.join(missing)}.")
        check_budget(self.budget)
        if self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"--out {str(self.out)!r} is a file; give a directory.")
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


def check_algos(algos: Sequence[str], flag: str = "--algos") -> tuple[str, ...]:
    """``algos`` if each is a known algorithm (with a did-you-mean for a typo).

    Raises:
        ConfigError: an unknown or repeated algorithm.
    """
    for algo in algos:
        if algo not in ALGORITHMS:
            raise ConfigError(
                f"{flag}: unknown algorithm {algo!r}.{did_you_mean(algo, ALGORITHMS)} "
                f"Known: {', '.join(sorted(ALGORITHMS))}."
            )
    check_unique(algos, flag)
    return tuple(algos)


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
    if preset not in PRESETS:
        raise ConfigError(
            f"--preset: unknown preset {preset!r}.{did_you_mean(preset, PRESETS)} "
            f"Known: {', '.join(sorted(PRESETS))}."
        )
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
    config: BenchConfig, restart: bool = False, progress: bool = True
) -> list[dict[str, Any]]:
    """Run ``config`` into ``config.out`` (resuming it) and write the summary.

    Args:
        config: A checked configuration (see :func:`make_config`).
        restart: Discard every earlier result in ``config.out`` first.
        progress: Show a progress bar.

    Returns:
        The summary rows (as in results.json).

    Raises:
        DirectoryInUseError: another process is using ``config.out``.
        ResumeMismatchError: ``config.out`` holds runs made under another budget.
        WriteError: ``config.out`` cannot be written.
    """
    import torch

    with DirectoryLock(
        config.out,
        what="output directory",
        hint="wait for that benchmark to finish, or choose another --out",
    ):
        # Under the lock, every temporary file is a dead writer's: none is in use.
        clean_output(config.out)
        if restart and (config.out / "runs").exists():
            shutil.rmtree(config.out / "runs")
        specs = config.specs()
        # Small networks on 2 cores: one thread avoids contention (LM trainers set their own).
        torch.set_num_threads(1)
        results = run_all(specs, progress=progress)
        return write_outputs(results, config.out, config.as_dict())


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``textgym bench``."""
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
        "--budget",
        default="{}",
        help="JSON overrides of the preset's budget, e.g. "
        '\'{"tabular_timesteps": 3000, "eval_episodes": 20}\'; keys: '
        + "; ".join(f"{key}: {what}" for key, (_, what) in BUDGET_KEYS.items()),
    )
    parser.add_argument("--out", type=Path, default=Path("bench_results"), help="output directory")
    parser.add_argument(
        "--restart",
        action="store_true",
        help="discard every earlier result in --out and start over",
    )
    parser.add_argument("--no-progress", action="store_true")
    return parser


def execute(args: argparse.Namespace) -> int:
    """Run the parsed command line; a user error raises (a :class:`UserError`).

    Raises:
        ConfigError: a flag out of range, unknown or repeated (before any work).
        ResumeMismatchError, DirectoryInUseError, WriteError: see :func:`bench`.
    """
    config = make_config(
        args.preset, args.envs, args.algos, args.seeds, parse_budget(args.budget), args.out
    )
    rows = bench(config, restart=args.restart, progress=not args.no_progress)
    print(markdown(rows, before_after(rows)))
    print(f"wrote {args.out}/results.json, results.csv, results.md, curves.png, scores.png")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run a preset (or a custom selection), then write and print the summary.

    A user error (a bad flag value, an ``--out`` in use or holding another configuration,
    an unwritable directory) is printed in one line and returns 2.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return execute(args)
    except UserError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
