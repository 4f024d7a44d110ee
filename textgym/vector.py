"""TextVectorEnv: the native batched vector env (``gym.make_vec(..., "vector_entry_point")``).

All sub-envs share two ``(num_envs, max_length)`` arrays. A step is a handful of numpy
operations over the whole batch (write the tokens, advance the lengths, compare with the
end-of-turn id); Python runs only for the sub-envs whose turn just ended, and their rewards
are evaluated in one batched call, so a model-based reward sees one batch per step.

Autoreset follows Gymnasium 1.x's default ``NEXT_STEP`` mode: the step after a sub-env's
episode ends resets it (its action is ignored, its reward is 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from textgym.core import TextEnv
from textgym.rewards.base import evaluate


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
        **env_kwargs: Any,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}.")
        first = TextEnv(**env_kwargs, copy=False)
        # Sub-envs share the tokenizer, task, and reward object, so a model-based reward is
        # loaded once and called once per step for the whole batch.
        self.envs = [first] + [
            TextEnv(
                **{**env_kwargs, "reward": first.reward, "tokenizer": first.tokenizer},
                copy=False,
            )
            for _ in range(num_envs - 1)
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
        self._shaping = first._shaping
        self._ids = np.full((num_envs, self.max_length), first.chat.pad_id, dtype=np.int64)
        self._attn = np.zeros((num_envs, self.max_length), dtype=np.int8)
        for i, env in enumerate(self.envs):
            env._ids, env._attn = self._ids[i], self._attn[i]
            # Prompts and words repeat across sub-envs: one cache for all.
            env._encode_cache, env._word_cache = first._encode_cache, first._word_cache
        self._len = np.zeros(num_envs, dtype=np.int64)
        self._turn_start = np.zeros(num_envs, dtype=np.int64)
        self._steps = np.zeros(num_envs, dtype=np.int64)
        self._needs_reset = np.zeros(num_envs, dtype=bool)
        self._rows = np.arange(num_envs)
        self._started = False

    # -- Gymnasium API --------------------------------------------------------------------

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Reset every sub-env; an int seed gives sub-env ``i`` the seed ``seed + i``."""
        if seed is None:
            seeds: list[int | None] = [None] * self.num_envs
        elif isinstance(seed, int):
            seeds = [seed + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"Got {len(seeds)} seeds for {self.num_envs} sub-envs.")
        pairs = []
        for i, env in enumerate(self.envs):
            _, info = env.reset(seed=seeds[i], options=options)
            self._sync(i)
            pairs.append((i, info))
        self._steps[:] = 0
        self._needs_reset[:] = False
        self._started = True
        return self._obs(), batch_infos(pairs, self.num_envs)

    def step(
        self, actions: Any
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Append one token per sub-env; close turns; autoreset finished sub-envs."""
        if not self._started:
            raise RuntimeError("step() was called before reset(); call envs.reset() first.")
        a = self._check_actions(actions)
        n = self.num_envs
        rewards = np.zeros(n, dtype=np.float64)
        terminated = np.zeros(n, dtype=bool)
        truncated = np.zeros(n, dtype=bool)
        pairs: list[tuple[int, dict[str, Any]]] = []

        resetting = self._needs_reset
        if resetting.any():
            for i in np.flatnonzero(resetting):
                _, info = self.envs[i].reset()
                self._sync(i)
                self._steps[i] = 0
                pairs.append((i, info))
            rows = np.flatnonzero(~resetting)
        else:
            rows = self._rows

        # The hot path: one token into every active row.
        pos = self._len[rows]
        tok = a[rows]
        self._ids[rows, pos] = tok
        self._attn[rows, pos] = 1
        self._len[rows] = pos + 1
        self._steps[rows] += 1
        if self._shaping is not None:
            rewards[rows] = self._shaping[tok]
        eot = tok == self.eot_id
        closing = (
            eot
            | (pos + 1 - self._turn_start[rows] >= self.max_new_tokens)
            | (pos + 1 >= self.max_length)
        )
        self._needs_reset = np.zeros(n, dtype=bool)
        if closing.any():
            idx = rows[closing]
            ended_by_eot = eot[closing]
            ctxs = []
            for i, by_eot in zip(idx, ended_by_eot):
                env = self.envs[i]
                env._len = int(self._len[i])
                ctxs.append(env._close_turn(bool(by_eot)))
            for i, ctx, (value, components) in zip(idx, ctxs, evaluate(self.reward, ctxs)):
                env = self.envs[i]
                rewards[i] += value
                terminated[i] = env._terminated
                truncated[i] = env._truncated
                self._sync(i)
                pairs.append((i, env._turn_info(ctx, components)))
        if self.max_episode_steps is not None:
            over = (self._steps >= self.max_episode_steps) & ~(terminated | truncated)
            over[resetting] = False
            truncated |= over
        self._needs_reset = terminated | truncated
        return self._obs(), rewards, terminated, truncated, batch_infos(pairs, n)

    def action_masks(self) -> np.ndarray:
        """``(num_envs, vocab_size)`` bool masks, one row per sub-env."""
        return np.stack([env.action_masks() for env in self.envs])

    def render(self) -> tuple[str | None, ...] | None:
        """Each sub-env's conversation (``render_mode="ansi"``)."""
        if self.render_mode is None:
            return None
        return tuple(env.render() for env in self.envs)

    def close_extras(self, **kwargs: Any) -> None:
        for env in self.envs:
            env.close()

    # -- internals ------------------------------------------------------------------------

    def _sync(self, i: int) -> None:
        env = self.envs[i]
        self._len[i] = env._len
        self._turn_start[i] = env._turn_start

    def _obs(self) -> dict[str, np.ndarray]:
        if self.copy:
            return {"input_ids": self._ids.copy(), "attention_mask": self._attn.copy()}
        ids, attn = self._ids.view(), self._attn.view()
        ids.flags.writeable = attn.flags.writeable = False
        return {"input_ids": ids, "attention_mask": attn}

    def _check_actions(self, actions: Any) -> np.ndarray:
        a = np.asarray(actions)
        if a.dtype.kind not in "iu":
            raise TypeError(
                f"Actions have dtype {a.dtype}; expected integer token ids of shape "
                f"({self.num_envs},). Convert with np.asarray(actions, dtype=np.int64)."
            )
        if a.shape != (self.num_envs,):
            raise ValueError(
                f"Actions have shape {a.shape}; expected ({self.num_envs},): one token id per "
                "sub-env."
            )
        if a.min() < 0 or a.max() >= self.vocab_size:
            bad = int(a[(a < 0) | (a >= self.vocab_size)][0])
            raise ValueError(
                f"Action {bad} is outside the vocabulary: token ids are in "
                f"[0, {self.vocab_size}). Check the policy's vocabulary matches the env's."
            )
        return a


def batch_infos(pairs: list[tuple[int, dict[str, Any]]], num_envs: int) -> dict[str, Any]:
    """Gymnasium's vector info layout (``info[k]`` array + ``info["_k"]`` mask), built once.

    Equivalent to calling ``VectorEnv._add_info`` per sub-env, but one pass per key instead
    of one array allocation per (sub-env, key): the vector step's main cost otherwise.
    """
    by_key: dict[str, list[tuple[int, Any]]] = {}
    for i, info in pairs:
        for key, value in info.items():
            by_key.setdefault(key, []).append((i, value))
    out: dict[str, Any] = {}
    for key, items in by_key.items():
        idx = [i for i, _ in items]
        values = [v for _, v in items]
        mask = np.zeros(num_envs, dtype=bool)
        mask[idx] = True
        if type(values[0]) is dict:
            out[key] = batch_infos(items, num_envs)
        else:
            arr = np.asarray(values) if type(values[0]) in (bool, int, float) else None
            if arr is not None and arr.ndim == 1 and arr.dtype.kind in "biuf":
                full = np.zeros(num_envs, dtype=arr.dtype)
            else:
                full = np.full(num_envs, None, dtype=object)
                arr = values
            full[idx] = arr
            out[key] = full
        out[f"_{key}"] = mask
    return out
