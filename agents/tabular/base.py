"""The loop every non-LM learner shares: learn, predict, evaluate, save and load.

A learner subclasses :class:`EpisodicAgent`, sets :attr:`~EpisodicAgent.algo`, and writes
what differs: :meth:`~EpisodicAgent._act` (the behaviour action), ``_observe`` (learning
from one transition) and ``_policy`` (acting for ``predict``), plus the checkpoint hooks
``_arrays``/``_restore`` if it learns arrays. The API follows stable-baselines3: ``learn``
returns ``self``; ``predict(obs, state, episode_start, deterministic, action_masks)``.
Checkpoints are the safetensors + JSON checkpoints every learner writes
(:mod:`agents.tabular.checkpoint`); learning curves go through :class:`agents.common.Logger`
under the keys every agent uses (``charts/episodic_return``, ``charts/success_rate``,
``eval/success_rate``, ...). ``textgym train --algo qlearning`` runs an agent in a run
directory (:mod:`agents.tabular.run`).
"""

from __future__ import annotations

import abc
import copy
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from agents.common import EvalResult, Logger, evaluate_policy
from agents.tabular.checkpoint import load_agent, write_agent
from agents.tabular.checks import MAX_SEED, check_env, check_int, reject_unknown
from agents.tabular.features import action_mask_fn, allowed_actions
from textgym.errors import ConfigError

try:  # Python 3.11+
    from typing import Self
except ImportError:  # pragma: no cover - Python 3.10
    from typing_extensions import Self

__all__ = ["EpisodicAgent", "load"]


class EpisodicAgent(abc.ABC):
    """What the tabular agents and the random baseline share: the training loop, logging,
    evaluation, SB3-style ``predict``, and the checkpoint format.

    Args:
        env: A gymnasium env (or a registered id) with a ``Discrete`` action space; ``None``
            only when loading a checkpoint for prediction.
        seed: Seeds the agent's RNG and the env's first reset.
        log_dir: Where :class:`~agents.common.Logger` writes ``progress.csv`` (and TensorBoard
            files); ``None`` logs nothing.
        log_interval: Log the training curves every this many timesteps.
        tensorboard: Passed to the logger (``None``: when installed).
    """

    #: The name checkpoints record, and :func:`load` dispatches on (set by each learner).
    algo: ClassVar[str]

    def __init__(
        self,
        env: gym.Env | str | None,
        *,
        seed: int = 0,
        log_dir: str | os.PathLike[str] | None = None,
        log_interval: int = 1000,
        tensorboard: bool | None = None,
        **unknown: Any,
    ) -> None:
        reject_unknown(type(self), unknown)
        check_int("seed", seed, minimum=0, maximum=MAX_SEED)
        check_int("log_interval", log_interval, minimum=1)
        if tensorboard is not None and not isinstance(tensorboard, bool):
            raise ConfigError(f"tensorboard must be True, False or None, got {tensorboard!r}.")
        self.seed = seed
        self.log_dir = None if log_dir is None else Path(log_dir)
        self.log_interval = log_interval
        self.tensorboard = tensorboard
        self.rng = np.random.default_rng(seed)
        self.num_timesteps = 0
        self.num_episodes = 0
        self.train_seconds = 0.0
        #: One dict per evaluation during ``learn`` (timesteps, episodes, seconds, scores).
        self.eval_history: list[dict[str, float]] = []
        #: The first evaluation that reached ``target_success``, or ``None``.
        self.solved_at: dict[str, float] | None = None
        self.env: gym.Env | None = None
        self._first_reset = True
        self._logger: Logger | None = None
        if env is not None:
            self.set_env(env)

    # -- what a learner writes --------------------------------------------------------------

    @abc.abstractmethod
    def _act(self, obs: Any, epsilon: float) -> int:
        """The behaviour action during ``learn`` (remember what ``_observe`` needs)."""

    @abc.abstractmethod
    def _observe(self, reward: float, next_obs: Any, terminated: bool, truncated: bool) -> None:
        """Learn from the transition that followed the last ``_act`` (``truncated`` only
        when a limit cut an episode that did not terminate)."""

    @abc.abstractmethod
    def _policy(self, obs: Any, deterministic: bool, mask: np.ndarray | None) -> int:
        """The action ``predict`` returns for one observation."""

    def _episode_reset(self) -> None:  # noqa: B027 - optional hook
        """Forget per-episode state (called after every env reset during ``learn``)."""

    def _exploration(self, progress: float) -> float:
        """Epsilon at ``progress`` in [0, 1] of the current ``learn`` call."""
        return 0.0

    def _training_metrics(self) -> dict[str, float]:
        return {}

    def _arrays(self) -> dict[str, np.ndarray]:
        """Learned arrays to save (none for a learner without parameters)."""
        return {}

    def _restore(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:  # noqa: B027
        """Inverse of :meth:`_arrays` (optional hook)."""

    @classmethod
    def _from_saved(cls, params: dict[str, Any]) -> dict[str, Any]:
        """Saved hyper-parameters -> constructor keyword arguments."""
        return params

    # -- construction ---------------------------------------------------------------------

    def set_env(self, env: gym.Env | str) -> None:
        """Attach an env to learn in (after ``load``, or to continue on another env)."""
        self.env = check_env(env, type(self).__name__)
        self._mask_fn = action_mask_fn(self.env)
        self._n_actions = int(self.env.action_space.n)
        self._first_reset = True

    def hyperparameters(self) -> dict[str, Any]:
        """The constructor arguments that define the learner (saved in checkpoints)."""
        return {"seed": self.seed, "log_interval": self.log_interval}

    def log(self, metrics: dict[str, float]) -> None:
        """Record ``metrics`` at the current timestep in ``log_dir`` (nothing without one);
        the log stays open until :meth:`close`."""
        if self.log_dir is not None and self._logger is None:
            self._logger = Logger(self.log_dir, tensorboard=self.tensorboard)
        if self._logger is not None:
            self._logger.log(self.num_timesteps, metrics)

    # -- acting ---------------------------------------------------------------------------

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
        action_masks: np.ndarray | None = None,
    ) -> tuple[Any, None]:
        """The action for ``observation``, as stable-baselines3's ``predict``.

        Args:
            observation: One observation, or a batch (``input_ids`` of shape ``(n, L)``).
            state: Ignored (no recurrent state); kept for SB3 compatibility.
            episode_start: Ignored.
            deterministic: Greedy action with ties broken towards the lowest token id;
                ``False`` breaks ties at random instead. Either way there is no exploration
                (``epsilon`` only applies while learning).
            action_masks: Allowed actions (bool per token id, or ``(n, vocab)``). Without
                masks, a learned state uses the actions it was trained with.

        Returns:
            ``(action, None)``: an int (or an int array for a batch) and no recurrent state.
        """
        if isinstance(observation, dict) and np.ndim(observation.get("input_ids")) == 2:
            n = len(observation["input_ids"])
            actions = np.empty(n, dtype=np.int64)
            for i in range(n):
                obs_i = {k: v[i] for k, v in observation.items()}
                mask_i = None if action_masks is None else np.asarray(action_masks)[i]
                actions[i] = self._policy(obs_i, deterministic, mask_i)
            return actions, None
        return self._policy(observation, deterministic, action_masks), None

    def _allowed(self, mask: np.ndarray | None) -> np.ndarray:
        """The ids ``mask`` allows (every action of the env's space without one)."""
        return allowed_actions(mask, self._action_count)

    def _random_allowed(self, mask: np.ndarray | None) -> int:
        allowed = self._allowed(mask)
        return int(allowed[self.rng.integers(len(allowed))])

    def _action_count(self) -> int:
        n = getattr(self, "_n_actions", None)
        if n is None:
            raise RuntimeError(
                f"{type(self).__name__} has no env to take its action space from; pass "
                "action_masks to predict() or call set_env(env)."
            )
        return n

    def _current_mask(self) -> np.ndarray | None:
        return None if self._mask_fn is None else np.asarray(self._mask_fn(), dtype=bool)

    # -- learning -------------------------------------------------------------------------

    def learn(
        self,
        total_timesteps: int,
        *,
        progress_bar: bool = False,
        eval_env: gym.Env | str | None = None,
        eval_freq: int = 0,
        n_eval_episodes: int = 100,
        eval_seed: int = 10_000,
        target_success: float | None = None,
        reset_num_timesteps: bool = True,
        callback: Callable[[EpisodicAgent], bool | None] | None = None,
        exploration_span: tuple[int, int] | None = None,
    ) -> Self:
        """Train for ``total_timesteps`` env steps (token actions); returns ``self``.

        Args:
            total_timesteps: Env steps in this call; the exploration schedule spans them.
            progress_bar: Show a tqdm bar (with the recent success rate).
            eval_env: Env for periodic greedy evaluation; by default a fresh copy of the
                training env (so evaluation never reseeds the training stream).
            eval_freq: Evaluate every this many timesteps (at the next episode end); 0: never.
            n_eval_episodes: Episodes per evaluation (episode ``i`` is reset with
                ``eval_seed + i``, so every evaluation sees the same problems).
            eval_seed: First seed of the evaluation episodes.
            target_success: Stop as soon as an evaluation reaches this success rate and
                record it in :attr:`solved_at`; ``None`` trains for the whole budget.
            reset_num_timesteps: Start the step count (and the log's x axis) from 0.
            callback: Called with the agent after every episode (before the next reset,
                the moment a checkpoint can be resumed exactly); returning ``False`` stops
                learning, as in SB3.
            exploration_span: ``(start, total)``: step ``t`` of this call explores as step
                ``start + t`` of a run of ``total`` steps, so that a resumed run's schedule
                continues where it stopped. By default the schedule spans this call.

        Returns:
            ``self``, so ``agent = QLearning(env).learn(10_000)`` works.
        """
        if self.env is None:
            raise RuntimeError(
                f"{type(self).__name__} has no env to learn in (it was loaded without one); "
                "call agent.set_env(env) first."
            )
        check_int("total_timesteps", total_timesteps, minimum=1)
        check_int("eval_freq", eval_freq, minimum=0)
        check_int("n_eval_episodes", n_eval_episodes, minimum=1)
        start, span = exploration_span or (0, total_timesteps)
        check_int("exploration_span[1]", span, minimum=1)
        check_int("exploration_span[0]", start, minimum=0, maximum=span)
        if target_success is not None:
            if not 0.0 <= target_success <= 1.0:
                raise ConfigError(f"target_success must be in [0, 1], got {target_success}.")
            if eval_freq == 0:
                raise ConfigError("target_success needs evaluations: set eval_freq > 0.")
        if reset_num_timesteps:
            self.num_timesteps = self.num_episodes = 0
            self.train_seconds = 0.0
            self.eval_history, self.solved_at = [], None
        evaluator = self._eval_env(eval_env) if eval_freq else None
        if self.log_dir is not None and self._logger is None:
            self._logger = Logger(self.log_dir, tensorboard=self.tensorboard)
        bar = tqdm(total=total_timesteps, disable=not progress_bar, unit="step", desc=self.algo)
        try:
            self._learn_loop(
                total_timesteps,
                bar,
                evaluator,
                n_eval_episodes,
                eval_seed,
                eval_freq,
                target_success,
                progress_bar,
                callback,
                (start, span),
            )
        finally:
            bar.close()
            # Runs in a harness would otherwise keep one file (and TensorBoard writer) open
            # per agent, and a failed learn() would leak them; the next learn() reopens the
            # run directory and appends.
            self.close()
        return self

    def _learn_loop(
        self,
        total_timesteps: int,
        bar: Any,
        evaluator: gym.Env | None,
        n_eval_episodes: int,
        eval_seed: int,
        eval_freq: int,
        target_success: float | None,
        progress_bar: bool,
        callback: Callable[[EpisodicAgent], bool | None] | None,
        schedule: tuple[int, int],
    ) -> None:
        assert self.env is not None
        env = self.env
        start_step = self.num_timesteps
        next_log = start_step + self.log_interval
        next_eval = start_step + eval_freq if eval_freq else math.inf
        window_ret: list[float] = []
        window_len: list[int] = []
        window_succ: list[bool] = []
        recent_succ: list[bool] = []
        ep_ret, ep_len = 0.0, 0
        eval_seconds = 0.0
        start_seconds = self.train_seconds
        t0 = time.perf_counter()
        obs, _ = env.reset(seed=self.seed if self._first_reset else None)
        self._first_reset = False
        self._episode_reset()
        for t in range(total_timesteps):
            epsilon = self._exploration((schedule[0] + t) / schedule[1])
            action = self._act(obs, epsilon)
            obs, reward, terminated, truncated, info = env.step(action)
            # Gymnasium's TimeLimit sets truncated on the step that terminates too; the
            # episode ended, so learners see it as terminated only (as in SB3).
            self._observe(float(reward), obs, terminated, truncated and not terminated)
            self.num_timesteps += 1
            ep_ret += float(reward)
            ep_len += 1
            if not (terminated or truncated):
                continue
            self.num_episodes += 1
            # Kept current at every episode end, for a checkpoint the callback writes.
            self.train_seconds = start_seconds + time.perf_counter() - t0 - eval_seconds
            success = bool(info.get("success", False))
            window_ret.append(ep_ret)
            window_len.append(ep_len)
            window_succ.append(success)
            recent_succ.append(success)
            ep_ret, ep_len = 0.0, 0
            if self.num_timesteps >= next_log:
                self._log(
                    {
                        "charts/episodic_return": float(np.mean(window_ret)),
                        "charts/episodic_length": float(np.mean(window_len)),
                        "charts/success_rate": float(np.mean(window_succ)),
                        "charts/epsilon": epsilon,
                        "charts/episodes": self.num_episodes,
                        "charts/SPS": (self.num_timesteps - start_step)
                        / max(time.perf_counter() - t0 - eval_seconds, 1e-9),
                        **self._training_metrics(),
                    }
                )
                window_ret, window_len, window_succ = [], [], []
                next_log = self.num_timesteps + self.log_interval
            if progress_bar and self.num_episodes % 50 == 0:
                bar.update(self.num_timesteps - start_step - bar.n)
                bar.set_postfix(success=f"{np.mean(recent_succ[-100:]):.2f}", refresh=False)
            if evaluator is not None and self.num_timesteps >= next_eval:
                e0 = time.perf_counter()
                result = evaluate_policy(self, evaluator, n_eval_episodes, seed=eval_seed)
                eval_seconds += time.perf_counter() - e0
                next_eval = self.num_timesteps + eval_freq
                record = {
                    "timesteps": self.num_timesteps,
                    "episodes": self.num_episodes,
                    "seconds": self.train_seconds,
                    "success_rate": result.success_rate,
                    "mean_return": result.mean_return,
                }
                self.eval_history.append(record)
                self._log(
                    {
                        "eval/success_rate": result.success_rate,
                        "eval/mean_return": result.mean_return,
                    }
                )
                if target_success is not None and result.success_rate >= target_success:
                    self.solved_at = record
                    break
            if callback is not None and callback(self) is False:
                break
            obs, _ = env.reset()
            self._episode_reset()
        bar.update(self.num_timesteps - start_step - bar.n)
        self.train_seconds = start_seconds + time.perf_counter() - t0 - eval_seconds

    def _eval_env(self, eval_env: gym.Env | str | None) -> gym.Env:
        if eval_env is not None:
            return check_env(eval_env, type(self).__name__)
        assert self.env is not None
        spec = self.env.spec
        if spec is not None:
            return gym.make(spec)
        return copy.deepcopy(self.env)

    def _log(self, metrics: dict[str, float]) -> None:
        if self._logger is not None:
            self._logger.log(self.num_timesteps, metrics)

    def close(self) -> None:
        """Close the logger's files (``learn`` does it when it returns; the env is the caller's)."""
        if self._logger is not None:
            self._logger.close()
            self._logger = None

    def evaluate(
        self, n_episodes: int = 100, seed: int = 10_000, env: gym.Env | str | None = None
    ) -> EvalResult:
        """Greedy success rate and mean return over ``n_episodes`` (see
        :func:`agents.common.evaluate_policy`); on a fresh copy of the training env by default.
        """
        if env is None and self.env is None:
            raise RuntimeError("No env to evaluate on: pass env=... or call set_env(env).")
        return evaluate_policy(self, self._eval_env(env), n_episodes, seed=seed)

    # -- checkpoints ----------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str], *, extra: dict[str, Any] | None = None) -> Path:
        """Write a checkpoint (``.safetensors`` added if missing); returns the path written.

        The file is the one checkpoint format of every learner: the learned arrays as
        tensors, and a JSON header (format, version, algorithm, hyper-parameters, counters,
        the RNG state, so that learning continues the same exploration stream after
        :meth:`load`); nothing in it can run code when loaded.

        Args:
            path: The file to write.
            extra: More state to store beside the agent (tensors, numbers, strings, lists
                and dicts; a run keeps its config and its env's RNG state there).

        Raises:
            WriteError: the file cannot be written (full disk, read-only directory).
        """
        spec = getattr(self.env, "spec", None)
        header = {
            "algo": self.algo,
            "hyperparameters": self.hyperparameters(),
            "env_id": None if spec is None else spec.id,
            "n_actions": getattr(self, "_n_actions", None),
            "num_timesteps": self.num_timesteps,
            "num_episodes": self.num_episodes,
            "train_seconds": self.train_seconds,
            "rng": self.rng.bit_generator.state,
        }
        return write_agent(path, header, self._arrays(), extra)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        env: gym.Env | str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Rebuild an agent saved with :meth:`save`.

        Args:
            path: The checkpoint (``.safetensors`` may be omitted), or a ``textgym train``
                run directory.
            env: Env to continue learning in; not needed for ``predict``.
            **kwargs: Overrides of saved constructor arguments (e.g. ``features`` for a
                checkpoint trained with a custom features function), and where the agent
                logs (``log_dir``, ``tensorboard``): those are never read from the file.

        Raises:
            CheckpointError: no file at ``path`` (also a ``FileNotFoundError``), or the file
                is not a textgym agent checkpoint (an old ``.npz`` too), is corrupt, has
                another format version, holds a different algorithm than ``cls``, or its
                header holds anything but valid hyper-parameters of that algorithm.
        """
        return load_agent(cls, path, env, **kwargs)


def load(path: str | os.PathLike[str], env: gym.Env | str | None = None, **kwargs: Any) -> Any:
    """Load any textgym agent checkpoint, whatever its algorithm."""
    return EpisodicAgent.load(path, env, **kwargs)
