"""TextVectorEnv: the native batched vector env (``gym.make_vec(..., "vector_entry_point")``).

Each sub-env's :class:`~textgym.episode.Episode` keeps its context and turn boundaries in
one row of shared ``(num_envs, max_length)`` arrays and a ``(3, num_envs)`` array of marks
(length, turn start, close-at). A step is a handful of numpy operations over the whole batch
(write the tokens, advance the lengths, compare with the end-of-turn id); Python runs only
for the episodes whose turn just ended, through their public methods, and their rewards are
evaluated in one batched call, so a model-based reward sees one batch per step.

Autoreset follows Gymnasium 1.x's default ``NEXT_STEP`` mode: the step after a sub-env's
episode ends resets it (its action is ignored, its reward is 0).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from textgym.batching import batch_infos, expand_seeds
from textgym.core import (
    MAX_LENGTH,
    EpisodeError,
    InputError,
    InputTypeError,
    TextEnv,
    check_reset_options,
    observation,
    shaping_table,
)
from textgym.episode import CLOSE_AT, LENGTH
from textgym.errors import ConfigError
from textgym.rewards.base import evaluate
from textgym.tasks.checks import check_bool, check_int, describe
from textgym.types import Problem

#: TextEnv's own arguments; the rest of ``make_vec``'s keywords build the task.
_ENV_ARGUMENTS = frozenset(
    name
    for name, p in inspect.signature(TextEnv.__init__).parameters.items()
    if p.kind is p.KEYWORD_ONLY
)

#: Options ``TextVectorEnv.reset`` understands.
VECTOR_RESET_OPTIONS = ("problem", "reset_mask")
#: Most sub-envs (each is a Python object with its own episode state).
MAX_NUM_ENVS = 1 << 16
#: Most token slots over all sub-envs (``num_envs * max_length``): about 1.2 GB of buffers.
MAX_BATCH_TOKENS = 1 << 27


def check_autoreset_mode(mode: Any) -> AutoresetMode:
    """``autoreset_mode`` as the mode run: ``NEXT_STEP`` (default) or ``DISABLED`` (finished
    sub-envs wait for ``reset(options={"reset_mask": ...})``, as TorchRL drives them)."""
    if mode is None:
        return AutoresetMode.NEXT_STEP
    if isinstance(mode, str):
        name = mode.lower().replace("_", "").replace("-", "")
        mode = {"nextstep": AutoresetMode.NEXT_STEP, "disabled": AutoresetMode.DISABLED}.get(
            name, mode
        )
    if mode in (AutoresetMode.NEXT_STEP, AutoresetMode.DISABLED):
        return AutoresetMode(mode)
    known = ", ".join(repr(m.value) for m in AutoresetMode)
    raise ConfigError(
        f"autoreset_mode={mode!r}: the native vector env resets a finished sub-env on the next "
        "step (AutoresetMode.NEXT_STEP) or leaves it to reset(options={'reset_mask': ...}) "
        f"(DISABLED). For another mode ({known}) use gym.make_vec(..., "
        "vectorization_mode='sync', vector_kwargs={'autoreset_mode': ...})."
    )


class TextVectorEnv(VectorEnv):
    """``num_envs`` copies of a :class:`TextEnv`, stepped together with numpy.

    Args:
        num_envs: Number of sub-envs.
        max_episode_steps: Optional extra cap on steps per episode (Gymnasium passes the
            spec's value); episodes over it are truncated.
        copy: Return fresh observation arrays (default); ``False`` returns read-only views
            that the next step updates.
        **env_kwargs: Passed to every :class:`TextEnv` (``task``, ``tokenizer``, ``reward``...).
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": ["ansi"]}

    def __init__(
        self,
        num_envs: int,
        *,
        max_episode_steps: int | None = None,
        copy: bool = True,
        autoreset_mode: AutoresetMode | str | None = None,
        **env_kwargs: Any,
    ) -> None:
        num_envs = check_int(num_envs, "num_envs", 1, MAX_NUM_ENVS)
        #: NEXT_STEP (the default) or DISABLED; read by libraries (TorchRL) as an attribute.
        self.autoreset_mode = check_autoreset_mode(autoreset_mode)
        self.metadata = {**type(self).metadata, "autoreset_mode": self.autoreset_mode}
        if max_episode_steps is not None:
            # 0 would truncate every step; a limit is a positive number of steps.
            max_episode_steps = check_int(max_episode_steps, "max_episode_steps", 1)
        copy = check_bool(copy, "copy")
        if env_kwargs.get("render_mode") == "human":
            raise ConfigError(
                "The native vector env has no render_mode='human' (64 conversations do not "
                "print well); use render_mode='ansi', and envs.render() returns one string per "
                "sub-env. 'human' is for a single env made with gym.make."
            )
        first = TextEnv(**env_kwargs, copy=False)
        if num_envs * first.max_length > MAX_BATCH_TOKENS:
            raise ConfigError(
                f"num_envs={num_envs} x max_length={first.max_length} is "
                f"{num_envs * first.max_length:,} token slots, over the limit of "
                f"{MAX_BATCH_TOKENS:,} (about 1.2 GB of observation buffers): lower num_envs "
                f"or max_length (max_length alone may go up to {MAX_LENGTH:,})."
            )
        # Sub-envs share the tokenizer, task, and reward object, so a model-based reward is
        # loaded once and called once per step for the whole batch, and a task's tables and
        # caches (Reasoning's chains, a dataset's pool) are built once, not once per row.
        # Sharing the task is safe: a task holds no episode state (each episode asks it for
        # a fresh responder), as when the caller passes one Task object for every sub-env.
        own = {k: v for k, v in env_kwargs.items() if k in _ENV_ARGUMENTS}
        shared = {"task": first.task, "reward": first.reward, "tokenizer": first.tokenizer}
        self.envs = [first] + [
            TextEnv(**{**own, **shared}, copy=False) for _ in range(num_envs - 1)
        ]
        self.num_envs = num_envs
        self.render_mode = first.render_mode
        self.max_episode_steps = max_episode_steps
        self.copy = copy
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.reward = first.reward
        self.vocab_size = first.vocab_size
        self.max_length = first.max_length
        self.max_new_tokens = first.max_new_tokens
        self.eot_id = first.chat.eot_id
        self._shaping = shaping_table(self.reward, self.vocab_size)
        # Each sub-env's episode keeps its context and turn boundaries in a row of these
        # batch arrays, so a step writes every row at once and no length is copied back.
        self._episodes = [env.episode for env in self.envs]
        self._ids = np.full((num_envs, self.max_length), first.chat.pad_id, dtype=np.int64)
        self._attn = np.zeros((num_envs, self.max_length), dtype=np.int8)
        self._marks = np.zeros((3, num_envs), dtype=np.int64)
        self._link()
        for episode in self._episodes:
            # Prompts and words repeat across sub-envs: one codec (and its caches) for all.
            episode.codec = first.episode.codec
        self._offsets = np.arange(num_envs, dtype=np.int64) * self.max_length
        self._steps = np.zeros(num_envs, dtype=np.int64)
        self._needs_reset = np.zeros(num_envs, dtype=bool)
        self._any_reset = False  # self._needs_reset.any(), known for free in step()
        self._paused: np.ndarray | None = None  # rows the next step leaves alone (pause())
        self._started = False
        # Why the batch cannot step (a step or reset raised half-way), or None.
        self._failure: str | None = None

    @property
    def np_random_seed(self) -> tuple[int, ...]:
        """Each sub-env's seed (``seed + i`` after ``reset(seed=seed)``), as SyncVectorEnv."""
        return tuple(env.np_random_seed for env in self.envs)

    @property
    def np_random(self) -> tuple[np.random.Generator, ...]:
        """Each sub-env's random generator, as SyncVectorEnv."""
        return tuple(env.np_random for env in self.envs)

    # -- Gymnasium API --------------------------------------------------------------------

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Reset the sub-envs; an int seed gives sub-env ``i`` the seed ``seed + i``.

        As Gymnasium's vector envs, ``options["reset_mask"]`` (a bool array, one per sub-env)
        resets only the sub-envs it marks; the others carry on, and the info holds only
        the reset ones. Seeds may be Python or numpy integers, or a list (or array) of
        them and ``None``, one per sub-env.

        Raises:
            InputTypeError: a seed that is not an integer, or options of the wrong type.
            InputError: a negative seed, a seed list of the wrong length, an unknown
                option key, or a bad ``reset_mask``.
        """
        # Everything is checked before any sub-env resets, so a refused reset changes nothing.
        seeds = self._check_seeds(seed)
        check_reset_options(options, VECTOR_RESET_OPTIONS, "envs.reset")
        rows = list(range(self.num_envs))
        if options is not None and "reset_mask" in options:
            options = dict(options)  # the caller's dict keeps its mask
            mask = self._check_reset_mask(options.pop("reset_mask"))
            if not self._started:
                if self._failure is not None:
                    raise EpisodeError(
                        f"A step or reset raised ({self._failure}), leaving some sub-envs half "
                        "way through it: call envs.reset() without a mask to reset them all."
                    )
                raise EpisodeError(
                    "options['reset_mask'] resets only some sub-envs, so the others need an "
                    "episode already: call envs.reset() without a mask first."
                )
            rows = np.flatnonzero(mask).tolist()
        pairs = []
        try:
            problem = check_reset_options(options)
            drawn: dict[int, tuple[Problem, dict[str, Any]]] = {}
            for i in rows:
                pairs.append((i, self._start(i, seeds[i], problem, drawn)))
        except BaseException as exc:
            self._fail(exc)
            raise
        self._failure = None
        self._steps[rows] = 0
        self._needs_reset[rows] = False
        self._any_reset = bool(self._needs_reset.any())
        self._started = True
        return self._obs(), batch_infos(pairs, self.num_envs)

    def pause(self, rows: np.ndarray) -> None:
        """Leave the sub-envs marked in ``rows`` (a bool array) alone in the next step.

        A textgym extension for rollout code: a paused sub-env takes no token (its action
        is ignored), does not autoreset, gets reward 0 and no info, and keeps its context,
        step count and done flags, so a finished sub-env costs nothing while it waits for
        the rest of the batch. It applies to one step; wrappers pass ``step`` through, so
        call it on ``envs.unwrapped``.
        """
        self._paused = self._check_reset_mask(rows, "pause(rows)").copy()

    def step(
        self, actions: Any
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Append one token per sub-env; close turns; autoreset finished sub-envs."""
        if not self._started:
            raise EpisodeError(self._not_running_message())
        a = self._check_actions(actions)
        paused, self._paused = self._paused, None
        waiting = self._needs_reset if paused is None else self._needs_reset & ~paused
        if self._any_reset and self.autoreset_mode is AutoresetMode.DISABLED and waiting.any():
            raise EpisodeError(
                f"Sub-envs {np.flatnonzero(waiting).tolist()} finished and "
                "autoreset_mode is DISABLED: reset them with envs.reset(options={'reset_mask': "
                "mask}) before the next step."
            )
        # A try block costs nothing until something raises.
        try:
            n = self.num_envs
            rewards = np.zeros(n, dtype=np.float64)
            terminated = np.zeros(n, dtype=bool)
            truncated = np.zeros(n, dtype=bool)
            pairs: list[tuple[int, dict[str, Any]]] = []

            resetting = waiting
            if self._any_reset or paused is not None:
                for i in np.flatnonzero(resetting).tolist():
                    # Env.reset without a seed only samples and writes the opening; starting
                    # the episode directly skips building an observation to throw away.
                    pairs.append((i, self._episodes[i].start(self.envs[i].np_random)))
                self._steps[resetting] = 0
                still = resetting if paused is None else resetting | paused
                rows = np.flatnonzero(~still)
                sel: slice | np.ndarray = rows
            else:
                # The common case: every sub-env steps, so whole-array views replace fancy
                # indexing (no row gathers, no copies).
                rows, sel = None, slice(None)

            # The hot path: one token into every stepping row.
            pos = self._len[sel]
            tok = a[sel]
            flat = self._offsets[sel] + pos
            self._flat_ids[flat] = tok
            self._flat_attn[flat] = 1
            length = pos + 1
            self._len[sel] = length
            self._steps[sel] += 1
            if self._shaping is not None:
                rewards[sel] = self._shaping[tok]
            eot = tok == self.eot_id
            closing = eot | (length >= self._close_at[sel])
            any_done = False
            if closing.any():
                # Python runs only here, for the rows whose turn just ended.
                where = np.flatnonzero(closing)
                idx = (where if rows is None else rows[where]).tolist()
                episodes = self._episodes
                ctxs = [episodes[i].close_turn() for i in idx]
                for i, ctx, (value, components) in zip(
                    idx, ctxs, evaluate(self.reward, ctxs), strict=True
                ):
                    episode = episodes[i]
                    rewards[i] += value
                    if episode.done:
                        any_done = True
                        terminated[i] = episode.terminated
                        truncated[i] = episode.truncated
                    pairs.append((i, episode.turn_info(ctx, components)))
            if self.max_episode_steps is not None:
                # As Gymnasium's TimeLimit: the limit truncates even a step that also terminates.
                over = self._steps >= self.max_episode_steps
                over[resetting] = False
                if paused is not None:
                    over[paused] = False
                truncated |= over
                any_done = any_done or bool(over.any())
            done = terminated | truncated if any_done else np.zeros(n, dtype=bool)
            if paused is not None:  # a paused sub-env keeps its flag (it was not reset)
                done |= self._needs_reset & paused
            self._needs_reset = done
            self._any_reset = bool(done.any()) if paused is not None else any_done
            return self._obs(), rewards, terminated, truncated, batch_infos(pairs, n)
        except BaseException as exc:
            # A reward or responder raised after some rows took their token and closed their
            # turn: the batch is half stepped and cannot be rolled back (a responder's state
            # is its own), so it is marked as needing a full reset, and the next step says so.
            self._fail(exc)
            raise

    def action_masks(self) -> np.ndarray:
        """``(num_envs, vocab_size)`` bool masks, one row per sub-env."""
        return np.stack([env.action_masks() for env in self.envs])

    def render(self) -> tuple[str | None, ...] | None:
        """Each sub-env's conversation (``render_mode="ansi"``), the unfinished turn included."""
        if self.render_mode is None:
            return None
        return tuple(env.render() for env in self.envs)

    def close_extras(self, **kwargs: Any) -> None:
        # getattr: Gymnasium's __del__ calls close() even when __init__ refused its arguments
        # before the sub-envs existed.
        for env in getattr(self, "envs", ()):
            env.close()

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Each episode's buffers are views of the shared batch arrays; a pickle or deepcopy
        # restores them as separate arrays, so they are re-linked to the restored batch.
        self.__dict__.update(state)
        self._link()

    # -- internals ------------------------------------------------------------------------

    def _start(
        self, i: int, seed: int | None, problem: Problem | None,
        drawn: dict[int, tuple[Problem, dict[str, Any]]],
    ) -> dict[str, Any]:  # fmt: skip
        """Reset sub-env ``i``; rows given the same seed in one reset share one draw.

        The rows of a GRPO group reset with one seed, so they start the same problem: the
        task samples it for the first of them, and each later one takes that problem and
        the generator's state after the draw, which is what drawing again would leave
        (``Task.sample`` draws from the rng alone). Each row still seeds its own
        generator (``np_random_seed`` as Gymnasium sets it) and gets its own responder.
        """
        env = self.envs[i]
        if problem is not None or seed is None:
            return env.start(seed, problem)
        gym.Env.reset(env, seed=seed)
        rng = env.np_random
        hit = drawn.get(seed)
        if hit is None:
            problem = env.episode.task.sample(rng)
            drawn[seed] = (problem, rng.bit_generator.state)
        else:
            problem, state = hit
            rng.bit_generator.state = state
        return env.episode.start(rng, problem)

    def _fail(self, exc: BaseException) -> None:
        self._started = False
        self._failure = f"{type(exc).__name__}: {exc}"

    def _not_running_message(self) -> str:
        if self._failure is not None:
            return (
                f"step() was called after a step or reset raised ({self._failure}), which "
                "left some sub-envs half way through it; call envs.reset() (without a "
                "reset_mask) to start every sub-env afresh."
            )
        return "step() was called before reset(); call envs.reset() first."

    def _check_seeds(self, seed: Any) -> list[int | None]:
        return expand_seeds(seed, self.num_envs, "sub-env", Iterable, ", or a single integer")

    def _check_reset_mask(self, mask: Any, name: str = "options['reset_mask']") -> np.ndarray:
        # The exception types are Gymnasium's (SyncVectorEnv): a wrong kind of mask is a
        # TypeError, a wrong shape or an empty mask a ValueError.
        expected = f"a bool array of shape ({self.num_envs},), one flag per sub-env"
        if not isinstance(mask, np.ndarray):
            raise InputTypeError(
                f"{name} must be {expected} (a numpy array, as Gymnasium's "
                f"vector envs take); got {describe(mask)}. Use np.array([...], dtype=bool)."
            )
        if mask.dtype != np.bool_:
            raise InputTypeError(
                f"{name} must be {expected}; got dtype {mask.dtype} and shape "
                f"{mask.shape}. Use mask.astype(bool)."
            )
        if mask.shape != (self.num_envs,):
            raise InputError(
                f"{name} must be {expected}; got dtype {mask.dtype} and shape {mask.shape}."
            )
        if not mask.any() and name.startswith("options"):  # pausing no sub-env is fine
            raise InputError(
                "options['reset_mask'] marks no sub-env; set at least one True, or do not "
                "call reset."
            )
        return mask

    def _link(self) -> None:
        """Give each episode its rows of the batch arrays; take the views the step uses."""
        for i, episode in enumerate(self._episodes):
            episode.attach(self._ids[i], self._attn[i], self._marks[:, i])
        # Flat views and row offsets: writing one token per row through a 1-D index is about
        # twice as fast as the 2-D ``_ids[rows, pos]`` fancy index.
        self._flat_ids, self._flat_attn = self._ids.reshape(-1), self._attn.reshape(-1)
        # Every episode's length, and the length at which its turn closes (max_new_tokens
        # or max_length): the per-step test is one comparison.
        self._len, self._close_at = self._marks[LENGTH], self._marks[CLOSE_AT]

    def _obs(self) -> dict[str, np.ndarray]:
        return observation(self._ids, self._attn, self.copy)

    def _check_actions(self, actions: Any) -> np.ndarray:
        a = np.asarray(actions)
        if a.dtype.kind not in "iu":
            raise InputTypeError(
                f"Actions have dtype {a.dtype}; expected integer token ids of shape "
                f"({self.num_envs},). Convert with np.asarray(actions, dtype=np.int64)."
            )
        if a.ndim == 0:  # Gymnasium's vector envs raise TypeError on a lone action too
            raise InputTypeError(
                f"Actions must be a batch of shape ({self.num_envs},), one token id per "
                f"sub-env; got the single action {actions!r}. Pass np.array([...])."
            )
        if a.shape != (self.num_envs,):
            raise InputError(
                f"Actions have shape {a.shape}; expected ({self.num_envs},): one token id per "
                "sub-env."
            )
        given, a = a, a.astype(np.int64, copy=False)
        # Viewed as unsigned, a negative id wraps above 2**63, so one max() checks both
        # ends of the range (half the cost of min() and max()).
        if a.view(np.uint64).max() >= self.vocab_size:
            # Read from the given array: a huge uint64 id wraps negative in the int64 copy.
            bad = int(given[(a < 0) | (a >= self.vocab_size)][0])
            raise InputError(
                f"Action {bad} is outside the vocabulary: token ids are in "
                f"[0, {self.vocab_size}). Check the policy's vocabulary matches the env's."
            )
        return a
