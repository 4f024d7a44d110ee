"""Episode: one conversation's state and its turn boundaries, shared by both envs.

:class:`~textgym.core.TextEnv` is the Gymnasium API over one :class:`Episode`;
:class:`~textgym.vector.TextVectorEnv` steps a batch of them with numpy. An episode holds

    problem, turns          the task instance and the conversation as text
    ids, attn               the context buffer (a row of the vector env's batch arrays)
    marks                   [length, turn start, close-at]: the one copy of the length
    done, terminated, ...   where the episode stands, and why it broke if a step raised

and its operations: :meth:`Episode.start` writes a problem's opening, :meth:`Episode.append`
writes one agent token, :meth:`Episode.close_turn` decodes the turn, lets the responder
answer and returns the reward context. :class:`TextCodec` turns text into ids and back.
"""

from __future__ import annotations

import contextlib
from typing import Any

import gymnasium as gym
import numpy as np

from textgym.chat import ChatFormat, encode_plain, messages
from textgym.errors import UserError
from textgym.rewards.base import RewardContext
from textgym.tasks.base import Problem, Task, Turn
from textgym.tasks.checks import ConfigTypeError, describe
from textgym.tokenizer import _backend as default_backend
from textgym.users.base import Reply, Responder

#: The cells of :attr:`Episode.marks`: the context length, where the agent's current turn
#: starts, and the length at which that turn closes (its budget or the buffer's end).
LENGTH, TURN_START, CLOSE_AT = 0, 1, 2
#: Entries a text cache keeps before it starts afresh (the texts of a task repeat a lot).
CACHE_SIZE = 50_000


class EpisodeError(UserError, RuntimeError):
    """``step`` was called when no episode is running."""


class InputError(UserError, ValueError):
    """An action, seed or reset option has a value the env cannot take."""


class InputTypeError(UserError, TypeError):
    """An action, seed, reset option or a responder's reply has the wrong type."""


def encodes_word_by_word(backend: Any) -> bool:
    """Whether ``backend`` (a ``tokenizers.Tokenizer``) follows textgym's default rules.

    Under those rules (a word-level model, no normalizer, and the pre-tokenizer of
    :func:`textgym.tokenizer._backend`: Metaspace with ``split=True``, then digit and
    punctuation splits inside each piece) every space-separated word is tokenized on its
    own, so ``encode("a b") == encode("a") + encode("b")``. Prompts and replies are then
    encoded from a per-word cache: they are mostly new sentences made of a few hundred
    known words, and the Rust pre-tokenizer costs ~1.5 us per word.
    """
    try:
        return (
            type(backend.model).__name__ == "WordLevel"
            and backend.normalizer is None
            and backend.pre_tokenizer is not None
            and backend.pre_tokenizer.__getstate__() == default_backend()[0].__getstate__()
        )
    except Exception:  # an exotic backend: take the general path
        return False


class TextCodec:
    """Text to ids and back for one tokenizer, with caches, never making control tokens.

    Text from a task or a responder must never become control tokens: a reply that says
    ``"<eot> <agent>"`` would otherwise close the user's turn and speak for the agent.
    :func:`~textgym.tokenizer.encode_plain` keeps special-token text inert, and every
    encoding is checked against :attr:`control_ids`.

    Args:
        tokenizer: The env's tokenizer.
        chat: Its turn layout.
    """

    def __init__(self, tokenizer: Any, chat: ChatFormat) -> None:
        self.tokenizer = tokenizer
        self.chat = chat
        self.control_ids = self._find_control_ids()
        # Prompts and scripted replies repeat a lot; caching their ids keeps resets and turn
        # ends cheap. The Rust backend skips the Python wrapper's per-call overhead.
        self._backend = getattr(tokenizer, "backend_tokenizer", None)
        self._encode_cache: dict[str, list[int]] = {}
        self._word_cache: dict[str, list[int]] = {}
        self._by_word = self._backend is not None and encodes_word_by_word(self._backend)
        self._special_texts: tuple[str, ...] = ()
        if self._by_word:
            self._special_texts = tuple(
                t.content for t in self._backend.get_added_tokens_decoder().values()
            )

    def encode(self, text: str) -> list[int]:
        """``text`` as plain-text ids (cached; the list is shared, so do not change it)."""
        ids = self._encode_cache.get(text)
        if ids is None:
            if self._by_word and self._splits_into_words(text):
                ids = []
                for word in text.split(" "):
                    ids += self._encode_word(word)
            else:
                ids = self._encode_text(text)
            if len(self._encode_cache) >= CACHE_SIZE:
                self._encode_cache.clear()
            self._encode_cache[text] = ids
        return ids

    def decode(self, ids: list[int]) -> str:
        """``ids`` as text, special tokens included."""
        if self._backend is not None:
            return self._backend.decode(ids, skip_special_tokens=False)
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def _find_control_ids(self) -> frozenset[int]:
        """Ids that only the env may write: pad, end of turn, one-token turn markers and
        the tokenizer's other special tokens (bos, ...), but not unk, which is how plain
        text outside the vocabulary is spelt."""
        chat = self.chat
        ids = {chat.pad_id, chat.eot_id}
        if chat.templated:  # every token the template writes by id is the env's alone
            for frame in (chat.opening, chat.opening_system, chat.reply):
                ids.update(p for p in frame.pieces if type(p) is int)
        for marker in (chat.user_ids, chat.agent_ids):
            if len(marker) == 1:
                ids.update(marker)
        # An exotic tokenizer may lack or garble all_special_ids: the ids above suffice.
        with contextlib.suppress(TypeError, ValueError):
            ids.update(int(i) for i in getattr(self.tokenizer, "all_special_ids", ()) or ())
        unk = getattr(self.tokenizer, "unk_token_id", None)
        if unk is not None and unk not in (chat.pad_id, chat.eot_id):
            ids.discard(unk)
        return frozenset(ids)

    def _splits_into_words(self, text: str) -> bool:
        """Whether ``text`` encodes as its space-separated words one by one.

        True unless it has a leading, trailing or double space (Metaspace turns those into
        lone ``▁`` pieces), a ``▁`` of its own, or a special token (matched before
        pre-tokenization, across word boundaries).
        """
        return (
            bool(text)
            and text[0] != " "
            and text[-1] != " "
            and "  " not in text
            and "\u2581" not in text
            and not any(special in text for special in self._special_texts)
        )

    def _encode_word(self, word: str) -> list[int]:
        ids = self._word_cache.get(word)
        if ids is None:
            ids = self._encode_text(word)
            if len(self._word_cache) >= CACHE_SIZE:
                self._word_cache.clear()
            self._word_cache[word] = ids
        return ids

    def _encode_text(self, text: str) -> list[int]:
        """``text`` as plain-text ids: special-token text never becomes a control token.

        Runs only on a cache miss (a new word or sentence), never per agent token.
        """
        ids = encode_plain(self.tokenizer, text)
        if self.control_ids.isdisjoint(ids):
            return ids
        return self._strip_control(ids)

    def _strip_control(self, ids: list[int]) -> list[int]:
        """Replace control ids the tokenizer produced from plain text by unk (or drop them,
        when unk is itself a control id), so text can never steer the turn structure."""
        unk = getattr(self.tokenizer, "unk_token_id", None)
        if unk is None or unk in self.control_ids:
            return [i for i in ids if i not in self.control_ids]
        return [unk if i in self.control_ids else i for i in ids]


class Episode:
    """One conversation: its problem, turns, context buffer and turn boundaries.

    The context is **right-padded**: ``ids[:length]`` is the context, the rest is the pad id
    with ``attn == 0``. The length lives only in ``marks[LENGTH]``; a vector env hands each
    episode a row of its batch arrays (:meth:`attach`) and steps them all with numpy, so
    both see the same length without copying it back and forth.

    Args:
        task: The task that samples problems and judges success.
        codec: Text to ids and back (shared by the episodes of a vector env).
        max_length: The context's size in tokens.
        max_new_tokens: The most tokens of one agent turn.
        system_prompt: The system message of every episode; ``None`` takes the task's
            (:meth:`Task.system_prompt`), if it has one.
    """

    def __init__(
        self,
        task: Task,
        codec: TextCodec,
        max_length: int,
        max_new_tokens: int,
        system_prompt: str | None = None,
    ) -> None:
        self.task = task
        self.system_prompt = system_prompt
        #: This episode's system message (``None``: there is none).
        self.system: str | None = None
        self.codec = codec
        self.chat = codec.chat
        self.eot_id = codec.chat.eot_id
        self.max_length = max_length
        self.max_new_tokens = max_new_tokens
        # Preallocated: a step writes one slot of each.
        self.ids = np.full(max_length, self.chat.pad_id, dtype=np.int64)
        self.attn = np.zeros(max_length, dtype=np.int8)
        self.marks = np.zeros(3, dtype=np.int64)
        self._cells = memoryview(self.marks)
        self.problem: Problem | None = None
        self.turns: list[Turn] = []
        self.agent_turns = 0
        self.responder: Responder | None = None
        self.started = False
        self.done = True
        self.terminated = self.truncated = False
        # Why the episode cannot go on after a step raised (None while all is well).
        self.failure: str | None = None

    @property
    def length(self) -> int:
        """Tokens in the context so far."""
        return self._cells[LENGTH]

    @property
    def turn_start(self) -> int:
        """Where the agent's current turn starts in the context."""
        return self._cells[TURN_START]

    def messages(self) -> list[dict[str, str]]:
        """The conversation so far as ``{"role", "content"}`` dicts (system, user,
        assistant), the format of ``tokenizer.apply_chat_template`` and TRL."""
        return messages(self.system, self.turns)

    def context_ids(self) -> np.ndarray:
        """The context so far (a copy, without padding)."""
        return self.ids[: self.length].copy()

    def turn_ids(self) -> np.ndarray:
        """The agent's current turn so far (a view)."""
        return self.ids[self.turn_start : self.length]

    def attach(self, ids: np.ndarray, attn: np.ndarray, marks: np.ndarray) -> None:
        """Keep the context in these arrays from now on (views into a vector env's batch).

        The current content is copied over, so a restored pickle can re-link its rows.
        """
        ids[:], attn[:], marks[:] = self.ids, self.attn, self.marks
        self.ids, self.attn, self.marks = ids, attn, marks
        self._cells = memoryview(marks)

    def __getstate__(self) -> dict[str, Any]:
        # A memoryview does not pickle; it is rebuilt from the marks it views.
        state = dict(self.__dict__)
        del state["_cells"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._cells = memoryview(self.marks)

    def start(self, rng: np.random.Generator, problem: Problem | None = None) -> dict[str, Any]:
        """Begin an episode on ``problem`` (or one sampled with ``rng``) and write its opening.

        Returns:
            The reset info (``metadata``, ``prompt``).

        Raises:
            ConfigTypeError: the task's responder is not a :class:`Responder`.
        """
        if problem is None:
            problem = self.task.sample(rng)
        self.failure = None
        self.problem = problem
        self.system = (
            self.system_prompt
            if self.system_prompt is not None
            else self.task.system_prompt(problem)
        )
        self.turns = [Turn("user", problem.prompt)]
        self.agent_turns = 0
        # Only the written prefix needs clearing: the rest is still padding.
        written = self.length
        self.ids[:written] = self.chat.pad_id
        self.attn[:written] = 0
        self._cells[LENGTH] = 0
        self._write(self._opening(problem.prompt))
        self.responder = self.task.responder()
        if self.responder is not None:
            if not (
                callable(getattr(self.responder, "reset", None))
                and callable(getattr(self.responder, "respond", None))
            ):
                raise ConfigTypeError(
                    f"The task's responder {describe(self.responder)} is not a Responder "
                    "(it needs reset(problem, rng) and respond(turns)); check the task's "
                    "user= argument: it must return a Responder."
                )
            self.responder.reset(problem, rng)
        self.done = False
        self.started = True
        return {"metadata": dict(problem.metadata), "prompt": problem.prompt}

    def append(self, token: int) -> bool:
        """Write one agent token; whether the turn closes now (end of turn, or a limit).

        The caller checks that the episode is running and the token is in the vocabulary.
        """
        # Through the memoryview the cells read and write as Python ints, about twice as
        # fast as numpy scalars, while the vector env sees the same memory as an array.
        cells = self._cells
        n = cells[LENGTH]
        self.ids[n] = token
        self.attn[n] = 1
        n += 1
        cells[LENGTH] = n
        return token == self.eot_id or n >= cells[CLOSE_AT]

    def close_turn(self) -> RewardContext:
        """Decode the agent's turn, let the responder answer, and return the reward context.

        Call it when :meth:`append` says the turn closes (the vector env finds those rows
        itself). Sets ``terminated`` / ``truncated`` / ``done`` and leaves the context ready
        for the next turn: the responder's reply is written, unless it ends the dialogue or
        does not fit (truncated).

        Raises:
            InputTypeError: the responder's reply is not a :class:`Reply` with str text.
        """
        assert self.problem is not None
        length = self.length
        ended_by_eot = int(self.ids[length - 1]) == self.eot_id
        stop = length - 1 if ended_by_eot else length
        turn_ids = self.ids[self.turn_start : stop].copy()
        text = self.codec.decode(turn_ids.tolist())
        self.turns.append(Turn("agent", text))
        turn_index = self.agent_turns
        self.agent_turns += 1
        self.terminated = self.truncated = False
        reply: Reply | None = None
        if not ended_by_eot:
            self.truncated = True  # hit max_new_tokens or max_length mid-turn
        elif self.responder is None:
            self.terminated = True
        else:
            reply = self._ask_responder()
            if reply.done:
                self.terminated = True
            else:
                nxt = self.chat.reply_ids(reply.text, self.codec.encode)
                # The agent must be able to write at least one token after the reply.
                if length + len(nxt) >= self.max_length:
                    self.truncated = True
                else:
                    self._write(nxt)
        self.done = self.terminated or self.truncated
        return RewardContext(
            problem=self.problem,
            turns=tuple(self.turns[:-1] if reply is not None else self.turns),
            text=text,
            token_ids=turn_ids,
            turn_index=turn_index,
            episode_end=self.done,
            truncated=self.truncated,
            reply=reply,
        )

    def turn_info(self, ctx: RewardContext, components: dict[str, float]) -> dict[str, Any]:
        """The step info of a turn end whose reward context is ``ctx``."""
        info: dict[str, Any] = {
            "turn_text": ctx.text,
            "turn": ctx.turn_index,
            "reward_components": components,
            "metadata": dict(ctx.metadata),
        }
        if ctx.reply is not None:
            info["user_reply"] = ctx.reply.text
        if ctx.episode_end:
            info["success"] = bool(self.task.success(ctx))
        return info

    def fail(self, exc: BaseException) -> None:
        """Mark the episode as broken by ``exc`` (raised mid-step): stepping needs a reset."""
        self.done = True
        self.failure = f"{type(exc).__name__}: {exc}"

    def _ask_responder(self) -> Reply:
        assert self.responder is not None
        reply = self.responder.respond(tuple(self.turns))
        if not isinstance(reply, Reply) or type(reply.text) is not str:
            raise InputTypeError(
                f"The responder {type(self.responder).__name__} returned "
                f"{describe(reply)}; respond() must return a textgym Reply whose text is "
                "a str: Reply(text, done=False, outcome={})."
            )
        self.turns.append(Turn("user", reply.text))
        return reply

    def _opening(self, prompt: str) -> list[int]:
        """The system message, the prompt and the agent's cue as ids (``<user> prompt <eot>
        <agent>`` by default), cut to leave room for one agent token."""
        opening = self.chat.opening_ids(self.system, prompt, self.codec.encode)
        # The first agent token needs a free slot; a longer prompt is cut from the left so
        # the turn markers (what the policy conditions on most) survive.
        if len(opening) > self.max_length - 1:
            # Built-in tasks fit their default max_length with the default tokenizer; a
            # foreign tokenizer or a smaller max_length can cut the problem itself, which
            # the agent would never see. Gymnasium's warnings show once per message.
            gym.logger.warn(
                f"A prompt with its turn markers does not fit max_length={self.max_length}: "
                "its start is cut, so the agent may not see the whole problem. Raise "
                "max_length (gym.make(id, max_length=...)) or use a tokenizer that spells the "
                "task's words in fewer tokens."
            )
        return opening[-(self.max_length - 1) :]

    def _write(self, ids: list[int]) -> None:
        """Append env-written ids (an opening or a reply); the agent's next turn starts after."""
        cells = self._cells
        start = cells[LENGTH]
        end = start + len(ids)
        self.ids[start:end] = ids
        self.attn[start:end] = 1
        cells[LENGTH] = cells[TURN_START] = end
        cells[CLOSE_AT] = min(end + self.max_new_tokens, self.max_length)
