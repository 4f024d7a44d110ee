"""Tabular Q-learning and SARSA on the token-level MDP.

A state is a *key* computed from the token observation by a state abstraction
(:class:`StateFeatures`): by default the exact context so far (:class:`ExactContext`), so the
agent learns the true MDP of the task; :class:`PromptAndLastK` trades exactness for a smaller
table. The table stores, for each visited state, the Q-values of the actions allowed there
(``action_masks()``), never a row over the whole vocabulary: on a tiny variant a state has a
handful of actions, not ~500.

The API follows stable-baselines3::

    agent = QLearning("textgym/Copy-Tiny-v0", seed=0).learn(2_000)
    action, _ = agent.predict(obs, deterministic=True, action_masks=env.action_masks())
    agent.save("copy_q.npz"); agent = QLearning.load("copy_q.npz")
    agent.evaluate(n_episodes=100)          # EvalResult(success_rate=..., mean_return=...)

Checkpoints are ``.npz`` files read with ``allow_pickle=False`` (no code runs on load), with a
format name and version, written atomically (a temporary file moved into place, so a kill
mid-save keeps the previous file). A loaded file decides only what the agent learned: its
header may hold the learner's hyper-parameters and nothing else, so a received file can never
choose where textgym writes (``log_dir`` and ``tensorboard`` are the caller's, passed to
``load``). Learning curves go through :class:`agents.common.Logger` under the
keys every agent uses (``charts/episodic_return``, ``charts/success_rate``,
``eval/success_rate``, ...).
"""

from __future__ import annotations

import abc
import difflib
import inspect
import io
import json
import math
import os
import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from agents.common import EvalResult, Logger, evaluate_policy
from textgym.errors import ConfigError, UserError
from textgym.files import atomic_write

try:  # Python 3.11+
    from typing import Self
except ImportError:  # pragma: no cover - Python 3.10
    from typing_extensions import Self

__all__ = [
    "FEATURES",
    "SARSA",
    "CheckpointError",
    "EpisodicAgent",
    "ExactContext",
    "PromptAndLastK",
    "QLearning",
    "DiscreteObservation",
    "StateFeatures",
    "TabularAgent",
    "load",
]

#: Written into every checkpoint; bump it when the layout changes (``load`` refuses others).
FORMAT_VERSION = 1
CHECKPOINT_FORMAT = "textgym-agent"


#: Constructor arguments that say where and how the agent writes: always the caller's, never
#: read from a checkpoint (a received file must not redirect textgym's writes).
CALLER_ONLY = ("log_dir", "tensorboard")
#: The largest seed (numpy seeds with 32 bits; Gymnasium refuses larger seeds too).
MAX_SEED = 2**32 - 1


class CheckpointError(UserError, ValueError):
    """A checkpoint file is not a textgym agent checkpoint, is corrupt, or does not fit."""


# -- state abstractions -------------------------------------------------------------------


class StateFeatures(abc.ABC):
    """Maps an observation to a hashable state key (``bytes``, so tables can be saved).

    Subclasses set :attr:`name`, implement :meth:`__call__`, and return their constructor
    arguments from :meth:`config` so a checkpoint can rebuild them.
    """

    name: ClassVar[str]

    def bind(self, env: gym.Env) -> None:  # noqa: B027 - optional hook
        """Read what the abstraction needs from the env (e.g. the end-of-turn id)."""

    @abc.abstractmethod
    def __call__(self, obs: Any) -> bytes:
        """The state key of ``obs``."""

    def config(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def _context(obs: Any) -> np.ndarray:
    """The unpadded context ids of a textgym observation (the env right-pads)."""
    ids = obs["input_ids"]
    n = int(np.count_nonzero(obs["attention_mask"]))
    # Float ids (e.g. from a VecEnv or SB3 buffer) are cast back, so keys do not depend on dtype.
    return np.asarray(ids[:n], dtype=np.int64)


class ExactContext(StateFeatures):
    """The whole context so far: the true state of the token-level MDP (the default)."""

    name = "exact"

    def __call__(self, obs: Any) -> bytes:
        return _context(obs).tobytes()


class PromptAndLastK(StateFeatures):
    """The prompt (the context up to the first end-of-turn token) plus the last ``k`` tokens.

    Smaller than the exact context on long turns, at the price of aliasing states that
    differ only earlier in the conversation: on Copy-Tiny, ``k=1`` cannot tell "green" from
    "red green" (so whether to end the turn is ambiguous) while ``k=2`` can; on a
    multi-turn task the last few tokens may not show which question is being answered.

    Args:
        k: Context tokens kept from the end (>= 1).
        eot_id: The end-of-turn token id; read from the env by :meth:`bind` when ``None``.
    """

    name = "prompt_last_k"

    def __init__(self, k: int = 2, eot_id: int | None = None) -> None:
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"PromptAndLastK needs k >= 1 (an int), got {k!r}.")
        self.k = k
        self.eot_id = eot_id

    def bind(self, env: gym.Env) -> None:
        if self.eot_id is None:
            chat = getattr(env.unwrapped, "chat", None)
            if chat is None:
                raise TypeError(
                    "PromptAndLastK needs a textgym env (to find the end-of-turn token); pass "
                    "eot_id=... explicitly for other envs."
                )
            self.eot_id = int(chat.eot_id)

    def __call__(self, obs: Any) -> bytes:
        if self.eot_id is None:
            raise RuntimeError("PromptAndLastK is not bound to an env; call bind(env) first.")
        ctx = _context(obs)
        ends = np.flatnonzero(ctx == self.eot_id)
        prompt = ctx[: ends[0]] if len(ends) else ctx
        # The prompt's length comes first so that (prompt, tail) pairs cannot collide.
        return np.concatenate(([len(prompt)], prompt, ctx[-self.k :])).tobytes()

    def config(self) -> dict[str, Any]:
        return {"k": self.k, "eot_id": self.eot_id}


class DiscreteObservation(StateFeatures):
    """The observation itself, for envs with a ``Discrete`` observation space (FrozenLake...)."""

    name = "discrete"

    def __call__(self, obs: Any) -> bytes:
        return int(obs).to_bytes(8, "little", signed=True)


class _CustomFeatures(StateFeatures):
    """Wraps a user function; its results are turned into bytes keys."""

    name = "custom"

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def __call__(self, obs: Any) -> bytes:
        key = self.fn(obs)
        if isinstance(key, bytes):
            return key
        if isinstance(key, str):
            return key.encode()
        if isinstance(key, (int, np.integer)):
            return int(key).to_bytes(8, "little", signed=True)
        try:
            return np.asarray(key, dtype=np.int64).tobytes()
        except (TypeError, ValueError):
            raise TypeError(
                f"The features function returned {type(key).__name__} {key!r}; state keys must "
                "be bytes, str, an int, or a sequence of ints (e.g. a tuple of token ids)."
            ) from None

    def __repr__(self) -> str:
        return f"custom({getattr(self.fn, '__name__', self.fn)!r})"


#: Built-in state abstractions by name (``features="exact"``).
FEATURES: dict[str, type[StateFeatures]] = {
    cls.name: cls for cls in (ExactContext, PromptAndLastK, DiscreteObservation)
}


def make_features(features: str | StateFeatures | Callable[[Any], Any]) -> StateFeatures:
    """A state abstraction from a name, an instance, or a function ``obs -> key``."""
    if isinstance(features, StateFeatures):
        return features
    if isinstance(features, str):
        if features not in FEATURES:
            close = difflib.get_close_matches(features, list(FEATURES), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"Unknown features {features!r}.{hint} Built-ins: {sorted(FEATURES)}; or pass a "
                "StateFeatures instance (e.g. PromptAndLastK(k=3)) or a function obs -> key."
            )
        return FEATURES[features]()
    if callable(features):
        return _CustomFeatures(features)
    raise TypeError(
        f"features must be a name, a StateFeatures, or a function obs -> key; got "
        f"{type(features).__name__}."
    )


# -- the shared agent shell ---------------------------------------------------------------


def _check_env(env: gym.Env | str, agent: str) -> gym.Env:
    if isinstance(env, str):
        import textgym  # noqa: F401 - registers the textgym/* ids

        env = gym.make(env)
    if not isinstance(env, gym.Env):
        raise TypeError(
            f"{agent} needs a gymnasium.Env or a registered env id, got {type(env).__name__}. "
            "Vector envs are not supported by tabular agents: pass a single env."
        )
    if not isinstance(env.action_space, spaces.Discrete):
        raise TypeError(
            f"{agent} needs a Discrete action space (one token id per step), but the env has "
            f"{env.action_space}. Tabular agents cannot act in continuous or composite spaces."
        )
    return env


def _action_mask_fn(env: gym.Env) -> Callable[[], np.ndarray] | None:
    try:
        return env.get_wrapper_attr("action_masks")
    except AttributeError:
        return None


class EpisodicAgent(abc.ABC):
    """What the tabular agents and the random baseline share: the training loop, logging,
    evaluation, SB3-style ``predict``, and the checkpoint format.

    Subclasses implement :meth:`_act` and :meth:`_observe` (one training step),
    :meth:`_policy` (acting for ``predict``), and optionally the checkpoint hooks.

    Args:
        env: A gymnasium env (or a registered id) with a ``Discrete`` action space; ``None``
            only when loading a checkpoint for prediction.
        seed: Seeds the agent's RNG and the env's first reset.
        log_dir: Where :class:`~agents.common.Logger` writes ``progress.csv`` (and TensorBoard
            files); ``None`` logs nothing.
        log_interval: Log the training curves every this many timesteps.
        tensorboard: Passed to the logger (``None``: when installed).
    """

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
        if unknown:
            self._reject(unknown)
        _check_int("seed", seed, minimum=0, maximum=MAX_SEED)
        _check_int("log_interval", log_interval, minimum=1)
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

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def _parameters(cls) -> list[str]:
        names: list[str] = []
        for klass in cls.__mro__:
            if "__init__" in vars(klass):
                for p in inspect.signature(klass.__init__).parameters.values():
                    if p.kind is p.KEYWORD_ONLY and p.name not in names:
                        names.append(p.name)
        return names

    def _reject(self, unknown: dict[str, Any]) -> None:
        known = self._parameters()
        name = sorted(unknown)[0]
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise TypeError(
            f"{type(self).__name__} got an unknown hyper-parameter {name!r}.{hint} "
            f"Accepted: {known}."
        )

    def set_env(self, env: gym.Env | str) -> None:
        """Attach an env to learn in (after ``load``, or to continue on another env)."""
        self.env = _check_env(env, type(self).__name__)
        self._mask_fn = _action_mask_fn(self.env)
        self._n_actions = int(self.env.action_space.n)
        self._first_reset = True

    def hyperparameters(self) -> dict[str, Any]:
        """The constructor arguments that define the learner (saved in checkpoints)."""
        return {"seed": self.seed, "log_interval": self.log_interval}

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

    def _random_allowed(self, mask: np.ndarray | None) -> int:
        if mask is None:
            return int(self.rng.integers(self._action_count()))
        allowed = np.flatnonzero(mask)
        if len(allowed) == 0:
            raise ValueError("action_masks allows no action; at least one must be True.")
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

    @abc.abstractmethod
    def _policy(self, obs: Any, deterministic: bool, mask: np.ndarray | None) -> int:
        """The action ``predict`` returns for one observation."""

    @abc.abstractmethod
    def _act(self, obs: Any, epsilon: float) -> int:
        """The behaviour action during ``learn`` (remember what ``_observe`` needs)."""

    @abc.abstractmethod
    def _observe(self, reward: float, next_obs: Any, terminated: bool, truncated: bool) -> None:
        """Learn from the transition that followed the last ``_act`` (``truncated`` only
        when a limit cut an episode that did not terminate)."""

    def _episode_reset(self) -> None:  # noqa: B027 - optional hook
        """Forget per-episode state (called after every env reset during ``learn``)."""

    def _exploration(self, progress: float) -> float:
        """Epsilon at ``progress`` in [0, 1] of the current ``learn`` call."""
        return 0.0

    def _training_metrics(self) -> dict[str, float]:
        return {}

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

        Returns:
            ``self``, so ``agent = QLearning(env).learn(10_000)`` works.
        """
        if self.env is None:
            raise RuntimeError(
                f"{type(self).__name__} has no env to learn in (it was loaded without one); "
                "call agent.set_env(env) first."
            )
        _check_int("total_timesteps", total_timesteps, minimum=1)
        _check_int("eval_freq", eval_freq, minimum=0)
        _check_int("n_eval_episodes", n_eval_episodes, minimum=1)
        if target_success is not None:
            if not 0.0 <= target_success <= 1.0:
                raise ConfigError(f"target_success must be in [0, 1], got {target_success}.")
            if eval_freq == 0:
                raise ConfigError("target_success needs evaluations: set eval_freq > 0.")
        if reset_num_timesteps:
            self.num_timesteps = self.num_episodes = 0
            self.train_seconds = 0.0
            self.eval_history, self.solved_at = [], None
        evaluator = None
        if eval_freq:
            evaluator = self._eval_env(eval_env)
        from tqdm.auto import tqdm

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
        t0 = time.perf_counter()
        obs, _ = env.reset(seed=self.seed if self._first_reset else None)
        self._first_reset = False
        self._episode_reset()
        for t in range(total_timesteps):
            epsilon = self._exploration(t / total_timesteps)
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
                    "seconds": self.train_seconds + time.perf_counter() - t0 - eval_seconds,
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
            obs, _ = env.reset()
            self._episode_reset()
        bar.update(self.num_timesteps - start_step - bar.n)
        self.train_seconds += time.perf_counter() - t0 - eval_seconds

    def _eval_env(self, eval_env: gym.Env | str | None) -> gym.Env:
        if eval_env is not None:
            return _check_env(eval_env, type(self).__name__)
        assert self.env is not None
        spec = self.env.spec
        if spec is not None:
            return gym.make(spec)
        import copy

        return copy.deepcopy(self.env)

    def _log(self, metrics: dict[str, float]) -> None:
        if self._logger is not None:
            self._logger.log(self.num_timesteps, metrics)

    def close(self) -> None:
        """Close the logger's files (``learn`` does it when it returns; the env is the caller's)."""
        if self._logger is not None:
            self._logger.close()
            self._logger = None

    # -- evaluation -----------------------------------------------------------------------

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

    def _arrays(self) -> dict[str, np.ndarray]:
        """Learned arrays to save (none for a learner without parameters)."""
        return {}

    def _restore(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:  # noqa: B027
        """Inverse of :meth:`_arrays` (optional hook)."""

    def _meta(self) -> dict[str, Any]:
        spec = getattr(self.env, "spec", None)
        return {
            "format": CHECKPOINT_FORMAT,
            "version": FORMAT_VERSION,
            "algo": self.algo,
            "hyperparameters": self.hyperparameters(),
            "env_id": None if spec is None else spec.id,
            "n_actions": getattr(self, "_n_actions", None),
            "num_timesteps": self.num_timesteps,
            "num_episodes": self.num_episodes,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a ``.npz`` checkpoint (suffix added if missing); returns the path written.

        The file holds plain arrays and one JSON string (format, version, algorithm,
        hyper-parameters); :meth:`load` reads it without pickle.
        """
        path = _npz_path(path)
        meta = json.dumps(self._meta())
        buffer = io.BytesIO()
        np.savez_compressed(buffer, meta=np.array(meta), **self._arrays())
        # Whole or not at all: a kill mid-save keeps the previous checkpoint.
        return atomic_write(path, buffer.getvalue())

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        env: gym.Env | str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Rebuild an agent saved with :meth:`save`.

        Args:
            path: The checkpoint (``.npz`` may be omitted).
            env: Env to continue learning in; not needed for ``predict``.
            **kwargs: Overrides of saved constructor arguments (e.g. ``features`` for a
                checkpoint trained with a custom features function), and where the agent
                logs (``log_dir``, ``tensorboard``): those are never read from the file.

        Raises:
            FileNotFoundError: no file at ``path``.
            CheckpointError: the file is not a textgym agent checkpoint, is corrupt, has
                another format version, holds a different algorithm than ``cls``, or its
                header holds anything but valid hyper-parameters of that algorithm.
        """
        file = _npz_path(path)
        if not file.exists() and Path(path).exists():
            file = Path(path)
        if not file.exists():
            raise FileNotFoundError(
                f"No checkpoint at {str(path)!r} (looked for {str(file)!r}). Save one with "
                "agent.save(path) first, or check the path."
            )
        try:
            with np.load(file, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
            meta = json.loads(str(arrays.pop("meta")))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise CheckpointError(
                f"{str(file)!r} is not a readable textgym agent checkpoint (corrupt, truncated, "
                f"or another kind of file): {type(exc).__name__}: {exc}"
            ) from None
        if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(
                f"{str(file)!r} is an .npz file but not a textgym agent checkpoint (its meta "
                f"says format={meta.get('format') if isinstance(meta, dict) else meta!r})."
            )
        if meta.get("version") != FORMAT_VERSION:
            raise CheckpointError(
                f"{str(file)!r} has checkpoint format version {meta.get('version')!r}; this "
                f"textgym reads version {FORMAT_VERSION}. Re-train, or load it with the textgym "
                "release that wrote it."
            )
        target = _AGENTS.get(meta.get("algo", ""))
        if target is None:
            raise CheckpointError(
                f"{str(file)!r} holds an unknown algorithm {meta.get('algo')!r}; known: "
                f"{sorted(_AGENTS)}."
            )
        if cls is not EpisodicAgent and cls is not TabularAgent and target is not cls:
            raise CheckpointError(
                f"{str(file)!r} holds a {meta['algo']} agent, not {cls.__name__}; load it with "
                f"{target.__name__}.load(...) or agents.tabular.load(...)."
            )
        saved = _saved_hyperparameters(file, meta, target)
        try:
            # The header alone (with the caller's features function, if the header names a
            # custom one) must make a valid learner: a bad value is the file's fault.
            probe = {**saved, **({"features": kwargs["features"]} if "features" in kwargs else {})}
            agent = target(None, **target._from_saved(probe))
        except CheckpointError:
            raise
        except (ValueError, TypeError) as exc:
            raise CheckpointError(
                f"{str(file)!r} holds invalid hyper-parameters in its header: {exc}"
            ) from None
        if kwargs:
            agent = target(None, **target._from_saved({**saved, **kwargs}))
        try:
            agent._restore(arrays, meta)
        except (KeyError, ValueError, IndexError) as exc:
            raise CheckpointError(
                f"{str(file)!r} is damaged: its arrays do not match its header ({exc})."
            ) from None
        agent.num_timesteps = int(meta.get("num_timesteps", 0))
        agent.num_episodes = int(meta.get("num_episodes", 0))
        if meta.get("n_actions") is not None:
            agent._n_actions = int(meta["n_actions"])
        if env is not None:
            agent.set_env(env)
            if meta.get("n_actions") is not None and agent._n_actions != int(meta["n_actions"]):
                raise CheckpointError(
                    f"The checkpoint was trained with {meta['n_actions']} actions but the env has "
                    f"{agent._n_actions}; use the env (and tokenizer) it was trained on."
                )
        return agent

    @classmethod
    def _from_saved(cls, params: dict[str, Any]) -> dict[str, Any]:
        """Saved hyper-parameters -> constructor keyword arguments."""
        return params


def _npz_path(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    return p if p.suffix == ".npz" else p.with_name(p.name + ".npz")


def _saved_hyperparameters(
    file: Path, meta: dict[str, Any], target: type[EpisodicAgent]
) -> dict[str, Any]:
    """The header's hyper-parameters, refused unless each is a constructor argument of
    ``target`` that a file may set (never :data:`CALLER_ONLY`: where the agent writes)."""
    params = meta.get("hyperparameters")
    if not isinstance(params, dict):
        raise CheckpointError(
            f"{str(file)!r} is damaged: its header has no hyper-parameters dict (got "
            f"{type(params).__name__})."
        )
    allowed = [p for p in target._parameters() if p not in CALLER_ONLY]
    for key in params:
        if key in CALLER_ONLY:
            raise CheckpointError(
                f"{str(file)!r} sets {key!r} in its header; a checkpoint never decides where "
                f"textgym writes, and textgym never saves it. Do not trust this file; pass "
                f"{key}=... to load() yourself."
            )
        if key not in allowed:
            raise CheckpointError(
                f"{str(file)!r} has an unknown hyper-parameter {key!r} in its header (a "
                f"{target.algo} checkpoint holds {allowed})."
            )
    return dict(params)


def _check_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, np.integer)) and value >= minimum
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok:
        bound = f"in [{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
        raise ConfigError(f"{name} must be an int {bound}, got {value!r}.")


def _check_unit(name: str, value: Any, low_open: bool = False) -> float:
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    if ok:
        value = float(value)
        ok = (value > 0.0 if low_open else value >= 0.0) and value <= 1.0
    if not ok:
        interval = "(0, 1]" if low_open else "[0, 1]"
        raise ConfigError(f"{name} must be a number in {interval}, got {value!r}.")
    return value


# -- tabular learners ---------------------------------------------------------------------


class TabularAgent(EpisodicAgent):
    """Epsilon-greedy tabular control over abstract states; see :class:`QLearning`, :class:`SARSA`.

    The table maps a state key to ``(actions, q)``: the token ids allowed in that state (from
    ``action_masks()`` on the first visit; all actions for an env without masks) and their
    Q-values. States are added on first visit; terminal states are never stored.

    Args:
        env: A gymnasium env (or registered id) with a ``Discrete`` action space.
        learning_rate: Step size alpha in (0, 1]. 1.0 is exact for deterministic tasks.
        gamma: Discount in [0, 1].
        epsilon_start: Exploration rate at the start of ``learn``.
        epsilon_end: Exploration rate after ``exploration_fraction`` of the budget.
        exploration_fraction: Fraction of ``total_timesteps`` over which epsilon decays.
        epsilon_decay: ``"linear"`` or ``"exponential"`` (geometric from start to end).
        initial_q: Q-value of untried state-action pairs. The default 0.5 is mildly
            optimistic for textgym's rewards (a success is worth about 1 per turn): above
            what stalling or wrong turns earn, so the greedy policy keeps trying untried
            tokens instead of settling for a small per-turn reward, and below a success, so
            it settles once it finds one. With 0, the greedy policy of the multi-turn tiny
            variants settles on stalling turns and learns far more slowly.
        features: State abstraction: ``"exact"`` (default), ``"prompt_last_k"``, a
            :class:`StateFeatures`, or a function ``obs -> key``.
        seed: Seeds exploration and the env's first reset.
        log_dir: Directory for ``progress.csv`` / TensorBoard; ``None`` logs nothing.
        log_interval: Log training curves every this many timesteps.
        tensorboard: Passed to :class:`~agents.common.Logger`.

        bootstrap_truncated: Whether a truncated step bootstraps from the next state.
            ``None`` (auto): not with ``"exact"`` features, yes with any other abstraction.
            An exact context contains the turn's length, so hitting ``max_new_tokens`` or
            ``max_length`` is a deterministic outcome of the state (the agent never acts in
            the truncated state, and bootstrapping would credit it with ``initial_q``); an
            abstraction that hides the length sees the limit as external, the usual case
            for bootstrapping.

    Terminated steps never bootstrap.
    """

    def __init__(
        self,
        env: gym.Env | str | None,
        *,
        learning_rate: float = 0.5,
        gamma: float = 0.99,
        epsilon_start: float = 1.0,
        epsilon_end: float = 0.01,
        exploration_fraction: float = 0.3,
        epsilon_decay: Literal["linear", "exponential"] = "linear",
        initial_q: float = 0.5,
        features: str | StateFeatures | Callable[[Any], Any] = "exact",
        bootstrap_truncated: bool | None = None,
        seed: int = 0,
        log_dir: str | os.PathLike[str] | None = None,
        log_interval: int = 1000,
        tensorboard: bool | None = None,
        **unknown: Any,
    ) -> None:
        if unknown:
            self._reject(unknown)
        self.learning_rate = _check_unit("learning_rate", learning_rate, low_open=True)
        self.gamma = _check_unit("gamma", gamma)
        self.epsilon_start = _check_unit("epsilon_start", epsilon_start)
        self.epsilon_end = _check_unit("epsilon_end", epsilon_end)
        self.exploration_fraction = _check_unit("exploration_fraction", exploration_fraction)
        if epsilon_decay not in ("linear", "exponential"):
            raise ConfigError(
                f"epsilon_decay must be 'linear' or 'exponential', got {epsilon_decay!r}."
            )
        if epsilon_decay == "exponential" and min(epsilon_start, epsilon_end) <= 0:
            raise ConfigError(
                "epsilon_decay='exponential' interpolates geometrically, so epsilon_start and "
                f"epsilon_end must be > 0 (got {epsilon_start}, {epsilon_end}); use 'linear' "
                "to decay to 0."
            )
        self.epsilon_decay = epsilon_decay
        if (
            isinstance(initial_q, bool)
            or not isinstance(initial_q, (int, float, np.integer, np.floating))
            or not math.isfinite(initial_q)
        ):
            raise ConfigError(f"initial_q must be a finite number, got {initial_q!r}.")
        self.initial_q = float(initial_q)
        self.features = make_features(features)
        if bootstrap_truncated is not None and not isinstance(bootstrap_truncated, bool):
            raise ConfigError(
                f"bootstrap_truncated must be True, False or None, got {bootstrap_truncated!r}."
            )
        self.bootstrap_truncated = bootstrap_truncated
        #: state key -> (allowed action ids, their Q-values)
        self.table: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
        # Rows share their action-id arrays: one per distinct mask, not one per state.
        self._action_sets: dict[bytes, np.ndarray] = {}
        self._row: tuple[np.ndarray, np.ndarray] | None = None
        self._index = 0
        self._next: tuple[np.ndarray, np.ndarray] | None = None
        self._next_index: int | None = None
        super().__init__(
            env, seed=seed, log_dir=log_dir, log_interval=log_interval, tensorboard=tensorboard
        )

    def set_env(self, env: gym.Env | str) -> None:
        super().set_env(env)
        assert self.env is not None
        space = self.env.observation_space
        if isinstance(self.features, ExactContext | PromptAndLastK) and not (
            isinstance(space, spaces.Dict) and {"input_ids", "attention_mask"} <= set(space.spaces)
        ):
            if isinstance(space, spaces.Discrete) and isinstance(self.features, ExactContext):
                self.features = DiscreteObservation()
            else:
                raise TypeError(
                    f"features={self.features.name!r} reads textgym token observations (a Dict "
                    f"with input_ids and attention_mask), but the env observes {space}. Pass "
                    "features=<function obs -> key> for other observation spaces."
                )
        self.features.bind(self.env)

    def hyperparameters(self) -> dict[str, Any]:
        return {
            **super().hyperparameters(),
            "learning_rate": self.learning_rate,
            "gamma": self.gamma,
            "epsilon_start": self.epsilon_start,
            "epsilon_end": self.epsilon_end,
            "exploration_fraction": self.exploration_fraction,
            "epsilon_decay": self.epsilon_decay,
            "initial_q": self.initial_q,
            "features": {"name": self.features.name, **self.features.config()},
            "bootstrap_truncated": self.bootstrap_truncated,
        }

    @classmethod
    def _from_saved(cls, params: dict[str, Any]) -> dict[str, Any]:
        params = dict(params)
        spec = params.get("features")
        if isinstance(spec, dict):
            spec = dict(spec)
            name = spec.pop("name")
            if name == "custom":
                raise CheckpointError(
                    "This checkpoint was trained with a custom features function, which is not "
                    "saved; pass it again: load(path, features=my_function)."
                )
            params["features"] = FEATURES[name](**spec)
        return params

    # -- the table --------------------------------------------------------------------------

    def _row_for(self, obs: Any, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The table row of ``obs``, created on first visit from the env's current mask."""
        key = self.features(obs)
        row = self.table.get(key)
        if row is None:
            if mask is None:
                mask = self._current_mask()
            actions = self._action_set(mask)
            row = (actions, np.full(len(actions), self.initial_q))
            self.table[key] = row
        return row

    def _action_set(self, mask: np.ndarray | None) -> np.ndarray:
        if mask is None:
            mask = np.ones(self._action_count(), dtype=bool)
        mask_key = np.packbits(mask).tobytes()
        actions = self._action_sets.get(mask_key)
        if actions is None:
            actions = np.flatnonzero(mask).astype(np.int64)
            if len(actions) == 0:
                raise ValueError("action_masks() allows no action; at least one must be True.")
            actions.flags.writeable = False
            self._action_sets[mask_key] = actions
        return actions

    def _bootstraps(self, truncated: bool) -> bool:
        if not truncated:
            return True
        if self.bootstrap_truncated is None:
            return not isinstance(self.features, ExactContext)
        return self.bootstrap_truncated

    def _greedy(self, q: np.ndarray) -> int:
        """Argmax with random tie-breaking, so untried actions are not always the first id."""
        best = q.max()
        ties = np.flatnonzero(q == best)
        return int(ties[0]) if len(ties) == 1 else int(ties[self.rng.integers(len(ties))])

    def _epsilon_greedy(self, q: np.ndarray, epsilon: float) -> int:
        if epsilon > 0.0 and self.rng.random() < epsilon:
            return int(self.rng.integers(len(q)))
        return self._greedy(q)

    def _exploration(self, progress: float) -> float:
        frac = min(1.0, progress / self.exploration_fraction) if self.exploration_fraction else 1.0
        if self.epsilon_decay == "linear":
            return self.epsilon_start + frac * (self.epsilon_end - self.epsilon_start)
        return self.epsilon_start * (self.epsilon_end / self.epsilon_start) ** frac

    def _training_metrics(self) -> dict[str, float]:
        return {"tabular/states": float(len(self.table))}

    # -- acting -----------------------------------------------------------------------------

    def _policy(self, obs: Any, deterministic: bool, mask: np.ndarray | None) -> int:
        key = self.features(obs)
        row = self.table.get(key)
        if row is not None and mask is not None:
            ok = np.asarray(mask, dtype=bool)[row[0]]
            if not ok.all():
                row = (row[0], np.where(ok, row[1], -np.inf)) if ok.any() else None
        if row is None:
            # Nothing learned here (e.g. a held-out problem), so every allowed action is as
            # good as any other. Deterministic predictions pick one by a hash of the state:
            # reproducible across processes, and as good as chance over many states.
            if not deterministic:
                return self._random_allowed(mask)
            allowed = np.flatnonzero(mask) if mask is not None else np.arange(self._action_count())
            if len(allowed) == 0:
                raise ValueError("action_masks allows no action; at least one must be True.")
            return int(allowed[zlib.crc32(key) % len(allowed)])
        actions, q = row
        if deterministic:
            return int(actions[int(np.argmax(q))])
        return int(actions[self._greedy(q)])

    def _episode_reset(self) -> None:
        self._next = None
        self._next_index = None

    def _act(self, obs: Any, epsilon: float) -> int:
        # The update of the previous step already looked up this state (and, for SARSA,
        # chose its action); reuse it instead of hashing the context again.
        row = self._next if self._next is not None else self._row_for(obs)
        i = (
            self._next_index
            if self._next_index is not None
            else self._epsilon_greedy(row[1], epsilon)
        )
        self._row, self._index = row, i
        self._epsilon = epsilon
        return int(row[0][i])

    # -- checkpoints ------------------------------------------------------------------------

    def _arrays(self) -> dict[str, np.ndarray]:
        keys = list(self.table)
        rows = [self.table[k] for k in keys]
        key_lengths = np.fromiter((len(k) for k in keys), dtype=np.int64, count=len(keys))
        row_lengths = np.fromiter((len(a) for a, _ in rows), dtype=np.int64, count=len(rows))
        return {
            "keys": np.frombuffer(b"".join(keys), dtype=np.uint8),
            "key_offsets": np.concatenate(([0], np.cumsum(key_lengths))),
            "actions": np.concatenate([a for a, _ in rows]) if rows else np.zeros(0, np.int64),
            "q": np.concatenate([q for _, q in rows]) if rows else np.zeros(0),
            "row_offsets": np.concatenate(([0], np.cumsum(row_lengths))),
        }

    def _restore(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        raw = arrays["keys"].tobytes()
        ko, ro = arrays["key_offsets"], arrays["row_offsets"]
        actions_all, q_all = arrays["actions"].astype(np.int64), arrays["q"].astype(np.float64)
        if (
            len(ko) != len(ro)
            or ko[-1] != len(raw)
            or ro[-1] != len(actions_all)
            or len(q_all) != len(actions_all)
        ):
            raise ValueError("offsets and arrays disagree")
        self.table = {}
        for i in range(len(ko) - 1):
            acts = actions_all[ro[i] : ro[i + 1]]
            mask_key = acts.tobytes()
            shared = self._action_sets.setdefault(mask_key, acts)
            self.table[raw[ko[i] : ko[i + 1]]] = (shared, q_all[ro[i] : ro[i + 1]].copy())


class QLearning(TabularAgent):
    """Tabular Q-learning (off-policy TD control; Watkins 1989).

    ``Q(s,a) += alpha * (r + gamma * max_a' Q(s',a') - Q(s,a))``, the max over the actions
    allowed in ``s'``; no bootstrap after ``terminated``. See :class:`TabularAgent` for the
    arguments.
    """

    algo = "qlearning"

    def _observe(self, reward: float, next_obs: Any, terminated: bool, truncated: bool) -> None:
        assert self._row is not None
        q = self._row[1]
        target = reward
        self._next = None
        if truncated:
            if self._bootstraps(truncated):
                # The episode ends here, so the next state is only looked up, never added.
                nxt = self.table.get(self.features(next_obs))
                target += self.gamma * (self.initial_q if nxt is None else float(nxt[1].max()))
        elif not terminated:
            self._next = self._row_for(next_obs)
            target += self.gamma * float(self._next[1].max())
        q[self._index] += self.learning_rate * (target - q[self._index])


class SARSA(TabularAgent):
    """Tabular SARSA (on-policy TD control; Rummery & Niranjan 1994).

    ``Q(s,a) += alpha * (r + gamma * Q(s',a') - Q(s,a))`` where ``a'`` is the action the
    epsilon-greedy policy takes next (chosen here and then taken). See :class:`TabularAgent`
    for the arguments.
    """

    algo = "sarsa"

    def _observe(self, reward: float, next_obs: Any, terminated: bool, truncated: bool) -> None:
        assert self._row is not None
        q = self._row[1]
        target = reward
        self._next, self._next_index = None, None
        if truncated:
            if self._bootstraps(truncated):
                # a' is never taken (the episode ends), so it is drawn from a row that is
                # looked up, not added.
                nxt = self.table.get(self.features(next_obs))
                if nxt is None:
                    target += self.gamma * self.initial_q
                else:
                    target += self.gamma * float(
                        nxt[1][self._epsilon_greedy(nxt[1], self._epsilon)]
                    )
        elif not terminated:
            nxt = self._row_for(next_obs)
            j = self._epsilon_greedy(nxt[1], self._epsilon)
            target += self.gamma * float(nxt[1][j])
            self._next, self._next_index = nxt, j
        q[self._index] += self.learning_rate * (target - q[self._index])


#: Every agent ``load`` can rebuild, by its ``algo`` name (the random baseline adds itself).
_AGENTS: dict[str, type[EpisodicAgent]] = {QLearning.algo: QLearning, SARSA.algo: SARSA}


def register_agent(cls: type[EpisodicAgent]) -> type[EpisodicAgent]:
    """Make :func:`load` able to rebuild ``cls`` checkpoints (a class decorator)."""
    _AGENTS[cls.algo] = cls
    return cls


def load(path: str | os.PathLike[str], env: gym.Env | str | None = None, **kwargs: Any) -> Any:
    """Load any textgym agent checkpoint, whatever its algorithm."""
    return EpisodicAgent.load(path, env, **kwargs)
