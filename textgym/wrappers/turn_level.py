"""TurnLevel: the turn-level view of a token-level :class:`~textgym.core.TextEnv`.

One action is one whole agent turn, given as text or as token ids; the wrapper writes it
into the token-level env token by token, so both views share one context and the tokens
are exact by construction (ids are written as given, text is encoded once).
:class:`TurnLevelVector` is the same over the native vector env, one turn per row.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import RecordConstructorArgs

from textgym.batching import expand_seeds
from textgym.core import TextEnv
from textgym.episode import EpisodeError, InputError, InputTypeError
from textgym.errors import ConfigError
from textgym.tasks.checks import ConfigTypeError, describe
from textgym.vector import TextVectorEnv

#: What a turn action may be: text, or token ids (a list or tuple of ints, a 1-D int array).
TurnAction = str | Sequence[int] | np.ndarray


class TurnSpace(spaces.Sequence):
    """One agent turn as token ids: ``Sequence(Discrete(V), stack=True)``, sampling valid turns.

    A plain ``Sequence(Discrete(V))`` samples pad ids, turn markers and end-of-turn ids
    anywhere, which a turn may not hold. :meth:`sample` draws ``0..max_tokens`` ids
    uniformly among ``allowed`` (the task's action mask without control ids), so every
    sample fits an empty turn's budget together with the end-of-turn id the env appends.
    Membership is the parent's: a 1-D array of in-vocabulary ids.

    Args:
        vocab_size: The tokenizer's vocabulary size ``V``.
        max_tokens: The most ids a sample holds (``max_new_tokens - 1``).
        allowed: A bool mask over the vocabulary of the ids samples draw from.
        seed: Seeds the space's RNG.
    """

    def __init__(
        self, vocab_size: int, max_tokens: int, allowed: np.ndarray, seed: int | None = None
    ) -> None:
        super().__init__(spaces.Discrete(vocab_size), seed=seed, stack=True)
        self.max_tokens = max_tokens
        self.allowed = np.flatnonzero(allowed).astype(np.int64)

    def sample(self, mask: Any = None, probability: Any = None) -> np.ndarray:
        """Random valid turn ids (a mask or probability samples as ``Sequence`` does)."""
        if mask is not None or probability is not None:
            return super().sample(mask=mask, probability=probability)
        if not self.allowed.size:
            return np.zeros(0, dtype=np.int64)
        length = int(self.np_random.integers(0, self.max_tokens + 1))
        return self.np_random.choice(self.allowed, size=length)

    def __repr__(self) -> str:
        return f"TurnSpace({self.feature_space}, max_tokens={self.max_tokens})"


class TurnLevel(gym.Wrapper, RecordConstructorArgs):
    """The turn-level view of a textgym env: one step writes one whole agent turn.

    ## Description
    ``step(turn)`` writes ``turn`` into the wrapped token-level env one token per inner
    step, until the turn closes. A turn given as **token ids** puts exactly those ids in the
    context, followed by the end-of-turn id when it is not already last; they are never
    decoded and re-encoded, so a policy's sampled tokens are the tokens it is trained on.
    A turn given as **text** is encoded once with the env's codec, which keeps special-token
    text inert: ``"<eot>"`` or ``"<|im_end|>"`` in the text is spelt, never a control token.
    If tokens of the current turn were already stepped on the inner env, the turn goes on
    after them.

    ## Observation Space
    The inner env's: ``Dict(input_ids, attention_mask)``, right-padded to ``max_length``.
    The conversation as messages is in ``info["messages"]`` (reset and every step) and
    :meth:`messages`, not in the observation: stable-baselines3 needs every observation
    entry to be a fixed-shape array (its ``check_env`` asserts it, and its vector envs
    preallocate ``(n, *shape)`` buffers), so a ``Text`` or ``Sequence`` entry fails there.

    ## Action Space
    :class:`TurnSpace`, a ``Sequence(Discrete(V), stack=True)`` whose samples are valid
    turns. Both checkers accept it; a ``Text`` action space would fail stable-baselines3's
    check (it runs ``np.isnan`` over the actions). ``step`` also takes a ``str``.

    Invalid ids raise :class:`~textgym.episode.InputError` before anything is written: an
    id outside ``[0, V)``, a control id (pad, turn markers: only the env writes those), or
    the end-of-turn id before the last position. A turn longer than its budget is
    truncated exactly as the token-level env truncates it: the ids that fit are written,
    the turn closes without its end-of-turn id, and the step returns ``truncated=True``.

    ## Rewards
    The sum of the inner rewards over the turn's tokens (per-token shaping included).

    ## Episode End
    ``terminated`` / ``truncated`` of the last inner step. ``info`` is the inner turn end's
    (``turn_text``, ``turn``, ``reward_components``, ``metadata``; ``success`` at the
    episode end; ``user_reply`` on multi-turn tasks), plus ``messages`` and ``turn_ids``:
    the ids this step wrote, in order, the closing end-of-turn id included if written.

    ## Arguments
    * ``env``: a textgym env (``gym.make("textgym/...")``, wrapped or not).

    ## Version History
    * v0: initial release.
    """

    def __init__(self, env: gym.Env) -> None:
        RecordConstructorArgs.__init__(self)
        super().__init__(env)
        text_env = env.unwrapped
        if not isinstance(text_env, TextEnv):
            raise ConfigTypeError(
                f"TurnLevel wraps a textgym env (gym.make('textgym/...')), got "
                f"{describe(text_env)}. Make the env with textgym, then wrap it."
            )
        self.text_env = text_env
        self.eot_id = text_env.chat.eot_id
        self.vocab_size = text_env.vocab_size
        codec = text_env.episode.codec
        self._control = np.array(sorted(codec.control_ids - {self.eot_id}), dtype=np.int64)
        allowed = text_env.action_masks()
        allowed[list(codec.control_ids)] = False
        self.action_space = TurnSpace(self.vocab_size, text_env.max_new_tokens - 1, allowed)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Reset the inner env; ``info`` adds the conversation as ``messages``."""
        obs, info = self.env.reset(seed=seed, options=options)
        return obs, {**info, "messages": self.messages()}

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Write one agent turn (text or ids); see the class docstring.

        Raises:
            EpisodeError: no episode is running (call ``reset``).
            InputTypeError: ``action`` is neither text nor a sequence of int ids.
            InputError: an id is out of range, a control id, or an early end-of-turn id.
        """
        self._check_running()
        return self._write(self.turn_ids(action))

    def turn_ids(self, turn: TurnAction) -> np.ndarray:
        """The ids ``step(turn)`` writes, end-of-turn id last (fewer if over the budget).

        Raises:
            InputTypeError: ``turn`` is neither text nor a sequence of int ids.
            InputError: an id is out of range, a control id, or an early end-of-turn id.
        """
        if isinstance(turn, str):
            # Codec text never holds control ids, so only the end of turn needs adding.
            return np.array([*self.text_env.episode.codec.encode(turn), self.eot_id], np.int64)
        ids = self._ids(turn)
        control = np.flatnonzero(np.isin(ids, self._control))
        if control.size:
            pos = int(control[0])
            raise InputError(
                f"Turn id {ids[pos]} at position {pos} is a control token (pad or a turn "
                f"marker), which only the env writes; control ids: {self._control.tolist()}. "
                "Mask them out when sampling (see action_space.allowed)."
            )
        ends = np.flatnonzero(ids == self.eot_id)
        if ends.size and ends[0] != ids.size - 1:
            raise InputError(
                f"The end-of-turn id {self.eot_id} is at position {ends[0]} of a {ids.size}-id "
                "turn, so the turn would end before its last id. A step is one turn: put the "
                "end-of-turn id last (or leave it out: it is added) and send the rest as the "
                "next turn."
            )
        return ids if ends.size else np.append(ids, np.int64(self.eot_id))

    def _write(self, ids: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict]:
        """Step checked ids (from :meth:`turn_ids`) into the inner env until the turn closes."""
        total, terminated, truncated, info = 0.0, False, False, {}
        written = 0
        obs = None
        for token in ids.tolist():
            obs, reward, terminated, truncated, info = self.env.step(token)
            total += float(reward)
            written += 1
            # An over-budget turn closes (truncated) before its ids run out.
            if "turn_text" in info or terminated or truncated:
                break
        info = {**info, "messages": self.messages(), "turn_ids": ids[:written].copy()}
        return obs, total, bool(terminated), bool(truncated), info

    def messages(self) -> list[dict[str, str]]:
        """The conversation so far as ``{"role", "content"}`` dicts (see ``TextEnv.messages``)."""
        return self.text_env.messages()

    def oracle_turn(self) -> str:
        """The task oracle's next turn, as text (for demonstrations and tests)."""
        self._check_running()
        env = self.text_env
        return env.task.oracle(env.problem, tuple(env.turns))

    def _check_running(self) -> None:
        episode = self.text_env.episode
        if not episode.done:
            return
        if episode.failure is not None:
            raise EpisodeError(
                f"step() was called after a step raised ({episode.failure}); the episode "
                "cannot go on. Call env.reset() to start a new episode."
            )
        if not episode.started:
            raise EpisodeError("step() was called before reset(); call env.reset() first.")
        raise EpisodeError(
            "step() was called after the episode ended (terminated or truncated was True); "
            "call env.reset() to start a new episode."
        )

    def _ids(self, turn: Any) -> np.ndarray:
        """``turn`` as a 1-D int64 array of in-vocabulary ids, or a clear error."""
        where = "a 1-D int array, a list of ints, or text (str)"
        if isinstance(turn, np.ndarray):
            if turn.ndim != 1:
                raise InputError(
                    f"A turn of ids has shape {turn.shape}; one turn is {where}. For a batch of "
                    "turns use TurnLevelVector."
                )
            if turn.size == 0:  # np.array([()]) is float: an empty turn is empty
                return np.zeros(0, np.int64)
            if turn.dtype.kind not in "iu":
                raise InputTypeError(
                    f"A turn of ids has dtype {turn.dtype}; token ids are integers. Convert "
                    "with np.asarray(ids, dtype=np.int64), or pass text as a str."
                )
            bad = np.flatnonzero((turn < 0) | (turn >= self.vocab_size)).tolist()
        elif isinstance(turn, (list, tuple)):
            for pos, x in enumerate(turn):
                if type(x) is not int and (
                    isinstance(x, (bool, np.bool_)) or not isinstance(x, numbers.Integral)
                ):
                    raise InputTypeError(
                        f"Turn id at position {pos} is {describe(x)}; token ids are ints. A "
                        f"turn is {where}."
                    )
            # On the given ints: a huge id would overflow (or wrap) in an int64 copy.
            bad = [pos for pos, x in enumerate(turn) if not 0 <= x < self.vocab_size]
        else:
            hint = " Decode bytes to str for text." if isinstance(turn, (bytes, bytearray)) else ""
            raise InputTypeError(f"A turn is {where}, got {describe(turn)}.{hint}")
        if bad:
            raise InputError(
                f"Turn id {int(turn[bad[0]])} at position {bad[0]} is outside the vocabulary: "
                f"ids are in [0, {self.vocab_size}) for this tokenizer. Check that the "
                "policy's vocabulary matches the env's."
            )
        return np.array(turn, dtype=np.int64)


class TurnLevelVector:
    """One agent turn per row over the native vector env (``gym.make_vec(...,
    vectorization_mode="vector_entry_point")``), for rollout code.

    ``step(turns)`` takes one turn per row (text, ids, or ``None`` for a row that resets)
    and writes each row's turn to its end, so a row whose turn closes early waits while the
    others finish theirs. The native vector env cannot hold a row still (every
    ``TextVectorEnv.step`` appends a token to every running row, and autoresets finished
    ones), so the turns are written through each row's own :class:`TurnLevel` over its
    sub-env (``vec_env.envs[i]``), whose context lives in the vector env's batch arrays.
    Rows are independent (own RNG, own responder), so writing them one after another gives
    the same result as writing them token by token side by side.

    Rows that finished their episode follow Gymnasium's ``NEXT_STEP`` autoreset at the turn
    level: the step after the one that ended a row's episode resets that row (its turn is
    ignored: pass ``None``; reward 0, not done; its info is the reset info). Within one
    step no row ever starts a new episode, so a batch never mixes an old turn with a new
    episode. Every live row's turn is checked before any row is written, so a refused
    batch changes nothing. This object owns the vector env: do not step the vector env
    directly in between. ``reset`` resets every row (no ``reset_mask``): rollout code
    starts a batch afresh, and finished rows restart through the autoreset.

    ``step`` returns ``(obs, rewards, terminated, truncated, infos)``: ``obs`` the batched
    ``Dict(input_ids, attention_mask)`` (fresh arrays), float64 rewards and bool flags of
    shape ``(num_envs,)``, and ``infos`` a list of per-row :class:`TurnLevel` infos (turn
    ids differ in length per row, so a list serves rollout code better than Gymnasium's
    masked arrays). :meth:`contexts` and :meth:`messages` give each row's context.

    Args:
        vec_env: A :class:`~textgym.vector.TextVectorEnv`, wrapped or not, without
            ``max_episode_steps`` (a token-step limit would cut turns in the middle).
    """

    def __init__(self, vec_env: gym.vector.VectorEnv) -> None:
        inner = vec_env.unwrapped
        if not isinstance(inner, TextVectorEnv):
            raise ConfigTypeError(
                f"TurnLevelVector wraps textgym's native vector env, got {describe(inner)}. "
                "Make it with gym.make_vec(id, num_envs=n, vectorization_mode="
                "'vector_entry_point')."
            )
        if inner.max_episode_steps is not None:
            raise ConfigError(
                f"The vector env has max_episode_steps={inner.max_episode_steps}, a limit in "
                "tokens that TurnLevelVector cannot honour turn by turn; make it without one "
                "(the env truncates itself at max_length)."
            )
        self.vec_env = inner
        self.num_envs = inner.num_envs
        self.rows = [TurnLevel(env) for env in inner.envs]
        self.single_observation_space = inner.single_observation_space
        self.single_action_space = self.rows[0].action_space
        self.observation_space = inner.observation_space
        self._pending = np.zeros(self.num_envs, dtype=bool)
        self._failure: str | None = None
        self._started = False

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict | None = None
    ) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
        """Reset every row; an int seed gives row ``i`` the seed ``seed + i`` (as the vector
        env does), a list gives one seed (or ``None``) per row.

        Raises:
            InputTypeError / InputError: a bad seed or seed list, or bad ``options``.
        """
        seeds = self._seeds(seed)
        self._started = False  # until every row is reset
        results = [
            row.reset(seed=s, options=options) for row, s in zip(self.rows, seeds, strict=True)
        ]
        self._pending[:] = False
        self._failure, self._started = None, True
        return self._batch([obs for obs, _ in results]), [info for _, info in results]

    def step(
        self, turns: Sequence[TurnAction | None]
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Write one turn per row (``None`` for rows that reset); see the class docstring.

        Raises:
            EpisodeError: not reset yet, or an earlier step raised half-way.
            InputTypeError / InputError: a row's turn is invalid (nothing is written).
        """
        if not self._started:
            raise EpisodeError(
                f"step() was called after a step raised ({self._failure}); call reset()."
                if self._failure
                else "step() was called before reset(); call reset() first."
            )
        if isinstance(turns, (str, bytes)) or not isinstance(turns, (Sequence, np.ndarray)):
            raise InputTypeError(
                f"TurnLevelVector.step takes a list of {self.num_envs} turns (one per row, None "
                f"for a row that resets), got {describe(turns)}."
            )
        if len(turns) != self.num_envs:
            raise InputError(
                f"TurnLevelVector.step takes one turn per row ({self.num_envs} rows), got "
                f"{describe(turns)}; pass a list of {self.num_envs} turns (None for a row "
                "that resets)."
            )
        planned = []
        for i, (row, turn) in enumerate(zip(self.rows, turns, strict=True)):
            try:
                if self._pending[i]:
                    planned.append(None)
                else:
                    row._check_running()
                    planned.append(row.turn_ids(turn))
            except (InputError, InputTypeError) as exc:
                raise type(exc)(f"Row {i}: {exc}") from None
        n = self.num_envs
        rewards = np.zeros(n, dtype=np.float64)
        terminated, truncated = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        observations, infos = [], []
        try:
            for i, (row, ids) in enumerate(zip(self.rows, planned, strict=True)):
                if ids is None:
                    obs, info = row.reset()
                else:
                    obs, rewards[i], terminated[i], truncated[i], info = row._write(ids)
                observations.append(obs)
                infos.append(info)
        except BaseException as exc:
            # Some rows wrote their turn and others did not: the batch cannot be undone.
            self._started, self._failure = False, f"{type(exc).__name__}: {exc}"
            raise
        self._pending = terminated | truncated
        return self._batch(observations), rewards, terminated, truncated, infos

    def contexts(self) -> list[np.ndarray]:
        """Each row's context so far (copies, without padding)."""
        return [row.text_env.context_ids for row in self.rows]

    def messages(self) -> list[list[dict[str, str]]]:
        """Each row's conversation so far as messages."""
        return [row.messages() for row in self.rows]

    def oracle_turns(self) -> list[str | None]:
        """Each row's oracle turn (``None`` for rows that reset at the next step)."""
        return [
            None if p else row.oracle_turn()
            for row, p in zip(self.rows, self._pending, strict=True)
        ]

    def close(self) -> None:
        """Close the vector env."""
        self.vec_env.close()

    def _batch(self, observations: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        # np.stack copies: sub-envs of the vector env return views of its buffers.
        return {key: np.stack([obs[key] for obs in observations]) for key in observations[0]}

    def _seeds(self, seed: Any) -> list[int | None]:
        return expand_seeds(seed, self.num_envs, "row", (Sequence, np.ndarray))
