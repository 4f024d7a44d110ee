"""``textgym train --algo qlearning`` (and ``sarsa``): a tabular agent in a run directory.

    textgym train --algo qlearning --env textgym/Copy-Tiny-v0 --total-timesteps 2000 \
        --seed 0 --run-dir runs/q
    textgym train --algo qlearning --run-dir runs/q --resume --total-timesteps 4000

The run writes the run directory every learner writes (:mod:`textgym.runs`):
``config.json``, ``progress.csv`` (the agent's curves, and a greedy evaluation at the start
and the end), ``checkpoint.safetensors`` (every ``--checkpoint-every`` timesteps, at an
episode's end, and at the end of the run) and last ``report.json``. The checkpoint is the
trained agent: ``agents.tabular.load("runs/q")`` rebuilds it. It also holds the env's and
the agent's RNG states, so a killed run resumed from it plays on exactly as the run would
have. Flags come from :class:`TabularConfig`, one per field, its docstring the help.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import gymnasium as gym

from agents.common.checkpoint import load_checkpoint
from agents.lm.config import (
    COUNT,
    COUNT_OR_ZERO,
    FLAG,
    SEED,
    UNIT,
    Check,
    config_problems,
    normalize_numbers,
    raise_config_problems,
)
from agents.lm.envs import check_env_id
from agents.tabular.checkpoint import agent_from_state, generator_from_state
from agents.tabular.features import PromptAndLastK
from agents.tabular.qlearning import QLearning
from agents.tabular.sarsa import SARSA
from agents.tabular.table import TabularAgent, learning_settings
from textgym import runs
from textgym.errors import ConfigError
from textgym.runs import CheckpointError

__all__ = ["QLearningRun", "SARSARun", "TabularConfig", "TabularRun", "format_report"]

#: Config fields a resumed run must share with its checkpoint.
RUN_IDENTITY = ("env_id", "seed", "features", "last_k")


@dataclass
class TabularConfig:
    """Arguments of a tabular run (CleanRL style: one docstring per field)."""

    env_id: str = "textgym/Copy-Tiny-v0"
    """the textgym environment id to train on (a -Tiny- variant keeps the table small)"""
    total_timesteps: int = 50_000
    """env steps (token actions) to train for; the exploration schedule spans them"""
    seed: int = 0
    """seed of the run (exploration and the env's problems)"""
    learning_rate: float = 0.5
    """step size alpha in (0, 1]; 1.0 is exact for deterministic tasks"""
    gamma: float = 0.99
    """discount factor"""
    epsilon_start: float = 1.0
    """exploration rate at the start of the run"""
    epsilon_end: float = 0.01
    """exploration rate after exploration_fraction of the run"""
    exploration_fraction: float = 0.3
    """fraction of total_timesteps over which epsilon decays"""
    epsilon_decay: Literal["linear", "exponential"] = "linear"
    """shape of the decay from epsilon_start to epsilon_end"""
    initial_q: float = 0.5
    """Q-value of untried actions (mildly optimistic for textgym's rewards)"""
    features: Literal["exact", "prompt_last_k"] = "exact"
    """state abstraction: the whole context, or the prompt plus the last last_k tokens"""
    last_k: int = 2
    """tokens kept after the prompt by --features prompt_last_k"""
    bootstrap_truncated: bool | None = None
    """bootstrap from the next state on truncation (None: not with exact features)"""
    log_interval: int = 1000
    """log the training curves every this many timesteps"""
    eval_freq: int = 0
    """evaluate greedily every this many timesteps (0: only at the start and the end)"""
    eval_episodes: int = 200
    """episodes per evaluation (fixed seeds, so evaluations are comparable)"""
    eval_seed: int = 10_000
    """seed of the first evaluation episode"""
    checkpoint_every: int = 10_000
    """write the checkpoint at the first episode end after every this many timesteps (0: only
    at the end)"""
    run_dir: str | None = None
    """run directory (log, checkpoint, report); default runs/<env>__<algo>__<seed>__<time>"""
    resume: bool = False
    """continue the run in run_dir from its checkpoint"""
    progress: bool = True
    """show a progress bar"""
    tensorboard: bool = True
    """also write TensorBoard event files next to progress.csv (when installed)"""

    #: The valid values of each field (the table the LM configs use).
    CHECKS: ClassVar[dict[str, Check]] = {
        "env_id": Check(str),
        "total_timesteps": COUNT,
        "seed": SEED,
        "learning_rate": Check(float, low=0.0, high=1.0, low_open=True),
        "gamma": UNIT,
        "epsilon_start": UNIT,
        "epsilon_end": UNIT,
        "exploration_fraction": UNIT,
        "epsilon_decay": Check(str, choices=("linear", "exponential")),
        "initial_q": Check(float),
        "features": Check(str, choices=("exact", "prompt_last_k")),
        "last_k": COUNT,
        "bootstrap_truncated": Check(bool, optional=True),
        "log_interval": COUNT,
        "eval_freq": COUNT_OR_ZERO,
        "eval_episodes": COUNT,
        "eval_seed": SEED,
        "checkpoint_every": COUNT_OR_ZERO,
        "run_dir": Check(str, optional=True),
        "resume": FLAG,
        "progress": FLAG,
        "tensorboard": FLAG,
    }

    def __post_init__(self) -> None:
        normalize_numbers(self, self.CHECKS)
        self.validate()

    def validate(self) -> None:
        """Check every field against :attr:`CHECKS`.

        Raises:
            ConfigError: every invalid field, each named by its flag with its valid range.
        """
        raise_config_problems("training arguments", config_problems(self, self.CHECKS))

    def hyperparameters(self) -> dict[str, Any]:
        """The agent's constructor arguments (what :class:`TabularAgent` takes)."""
        features = PromptAndLastK(self.last_k) if self.features == "prompt_last_k" else "exact"
        return {
            "seed": self.seed,
            "log_interval": self.log_interval,
            **learning_settings(self, features),
        }


class TabularRun:
    """A tabular agent trained in a run directory: the ``textgym train`` entry.

    It shares the LM trainer's interface (``config_class``, ``__init__(config)``,
    ``learn()``) and its rules: the constructor takes the run directory (held until
    ``learn`` returns, or :meth:`close`), checks that the run may start, and on ``resume``
    restores the checkpoint and refuses a finished run with no budget left.

    Args:
        config: The run's :class:`TabularConfig`.

    Raises:
        ConfigError: an invalid setting, an unknown env id, a fresh run in a directory that
            holds one, or a finished run resumed without more ``--total-timesteps``.
        CheckpointError: ``resume`` without a readable checkpoint.
        DirectoryInUseError: another process holds the run directory.
    """

    algo: ClassVar[str]
    agent_class: ClassVar[type[TabularAgent]]
    config_class: ClassVar[type[TabularConfig]] = TabularConfig

    def __init__(self, config: TabularConfig) -> None:
        if not isinstance(config, self.config_class):
            raise ConfigError(
                f"{type(self).__name__} takes a {self.config_class.__name__}, got "
                f"{type(config).__name__}."
            )
        config.validate()  # again: a dataclass is mutable
        check_env_id(config.env_id)
        self.config = config
        self.run_dir = Path(
            config.run_dir or runs.default_run_dir(config.env_id, self.algo, config.seed)
        )
        self._lock = runs.run_lock(self.run_dir)
        created = not self.run_dir.exists()
        self._lock.acquire()
        try:
            if not created:
                runs.clean_temporaries(self.run_dir)
            runs.check_start(self.run_dir, config.resume)
            self.env = gym.make(config.env_id)
            self.eval_env = gym.make(config.env_id)
            self.extra_state: dict[str, Any] = {}
            if config.resume:
                self._resume()
            else:
                self.agent = self.agent_class(self.env, **self._agent_kwargs())
        except BaseException:
            if created:
                runs.remove_if_only_lock(self.run_dir)
            self.close()
            raise

    def _agent_kwargs(self) -> dict[str, Any]:
        tensorboard = None if self.config.tensorboard else False
        return {
            **self.config.hyperparameters(),
            "log_dir": self.run_dir,
            "tensorboard": tensorboard,
        }

    def config_dict(self) -> dict[str, Any]:
        return {"algo": self.algo, **asdict(self.config)}

    def close(self) -> None:
        """Release the run directory (``learn`` does it when it returns or fails)."""
        self._lock.release()

    # -- the run --------------------------------------------------------------------------

    def learn(self) -> TabularRun:
        """Train until ``total_timesteps``, then evaluate, checkpoint and report; returns ``self``.

        Raises:
            DirectoryInUseError: another process took the run directory since close().
            WriteError: the run directory cannot be written (full disk, read-only).
        """
        self._lock.acquire()
        try:
            self._learn()
        finally:
            self.agent.close()
            self.close()
        return self

    def _learn(self) -> None:
        cfg, agent = self.config, self.agent
        # Rewritten on every (re)start: a bare --resume takes its defaults from here.
        runs.write_config(self.run_dir, self.config_dict())
        if agent.num_timesteps == 0 and "initial_eval" not in self.extra_state:
            self.extra_state["initial_eval"] = self._evaluate_and_log()
        left = cfg.total_timesteps - agent.num_timesteps
        if left > 0:
            self._next_checkpoint = agent.num_timesteps + cfg.checkpoint_every
            agent.learn(
                left,
                progress_bar=cfg.progress,
                eval_env=self.eval_env,
                eval_freq=cfg.eval_freq,
                n_eval_episodes=cfg.eval_episodes,
                eval_seed=cfg.eval_seed,
                reset_num_timesteps=False,
                callback=self._on_episode_end if cfg.checkpoint_every else None,
                exploration_span=(agent.num_timesteps, cfg.total_timesteps),
            )
        if self.extra_state.get("final_timesteps") != agent.num_timesteps:
            # A run killed after its final checkpoint keeps that evaluation.
            self.extra_state["final_eval"] = self._evaluate_and_log()
            self.extra_state["final_timesteps"] = agent.num_timesteps
            self.save()
        report = self.report()
        runs.write_report(self.run_dir, report)  # last: it marks the run finished
        print(format_report(report))

    def _on_episode_end(self, agent: Any) -> bool:
        # At an episode's end, before the next reset: a resume from here is exact.
        if agent.num_timesteps >= self._next_checkpoint:
            self.save()
            self._next_checkpoint = agent.num_timesteps + self.config.checkpoint_every
        return True

    def _evaluate_and_log(self) -> dict[str, float]:
        result = self.agent.evaluate(
            self.config.eval_episodes, seed=self.config.eval_seed, env=self.eval_env
        )
        metrics = {"eval/success_rate": result.success_rate, "eval/mean_return": result.mean_return}
        self.agent.log(metrics)
        return metrics

    def report(self) -> dict[str, Any]:
        """Before/after evaluation and the budget of the run."""
        agent = self.agent
        return {
            "algo": self.algo,
            "env_id": self.config.env_id,
            "seed": self.config.seed,
            "split": "train",
            "timesteps": agent.num_timesteps,
            "episodes": agent.num_episodes,
            "states": len(agent.table),
            "train_seconds": round(agent.train_seconds, 2),
            "steps_per_second": round(agent.num_timesteps / max(agent.train_seconds, 1e-9), 1),
            "before": self.extra_state.get("initial_eval", {}),
            "after": self.extra_state.get("final_eval", {}),
            "run_dir": str(self.run_dir),
        }

    # -- checkpoints ----------------------------------------------------------------------

    def save(self) -> None:
        """Write the checkpoint: the agent, the run's config and state, the env's RNG."""
        env_rng = self.env.unwrapped.np_random.bit_generator.state
        extra = {"config": self.config_dict(), "run": {**self.extra_state, "env_rng": env_rng}}
        self.agent.save(runs.checkpoint_path(self.run_dir), extra=extra)

    def _resume(self) -> None:
        path = runs.checkpoint_path(self.run_dir)
        state = load_checkpoint(path)
        saved = state.get("config")
        if not isinstance(saved, dict) or not isinstance(state.get("run"), dict):
            raise CheckpointError(
                f"{str(path)!r} is not a checkpoint of a `textgym train` run (no run config); "
                "start a new run in another --run-dir."
            )
        runs.check_same_run(self.run_dir, saved, self.config_dict(), RUN_IDENTITY)
        self.agent = agent_from_state(
            self.agent_class, path, state, self.env, **self._agent_kwargs()
        )
        run = dict(state["run"])
        try:
            # The env draws its problems from np_random: restored, its next reset (unseeded)
            # deals the problem the uninterrupted run would have dealt.
            self.env.unwrapped.np_random = generator_from_state(run.pop("env_rng"))
        except (KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{str(path)!r} is damaged: {exc}.") from None
        self.agent._first_reset = False
        self.extra_state = run
        finished = self.extra_state.get("final_timesteps") == self.agent.num_timesteps
        if finished and runs.is_finished(
            self.run_dir, final_model=False, timesteps=self.agent.num_timesteps
        ):
            runs.check_budget_left(
                self.run_dir,
                self.agent.num_timesteps,
                self.config.total_timesteps,
                "--total-timesteps",
            )


class QLearningRun(TabularRun):
    """``textgym train --algo qlearning``: :class:`~agents.tabular.QLearning` in a run."""

    algo = "qlearning"
    agent_class = QLearning


class SARSARun(TabularRun):
    """``textgym train --algo sarsa``: :class:`~agents.tabular.SARSA` in a run."""

    algo = "sarsa"
    agent_class = SARSA


def format_report(report: dict[str, Any]) -> str:
    """The report in a few lines for the terminal: budget, speed, before -> after."""
    headline = (
        f"{report['algo']} on {report['env_id']} (seed {report['seed']}): "
        f"{report['timesteps']} timesteps, {report['episodes']} episodes, "
        f"{report['states']} states, {report['train_seconds']:.1f}s, "
        f"{report['steps_per_second']:.0f} steps/s"
    )
    return runs.format_report(report, headline, ("eval/success_rate", "eval/mean_return"))
