"""TextEnv: a text task as a token-level Gymnasium environment.

The MDP (see the class docstring for the details):

    state   = (problem, context tokens so far)
    action  = one token id
    step    = append the token; at the end-of-turn token (or a length limit) the turn closes:
              single-turn tasks terminate, multi-turn tasks append the responder's reply
    reward  = reward(RewardContext) at turn ends, plus optional per-token shaping
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import numbers
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from textgym.errors import ConfigError, UserError
from textgym.rewards.base import Reward, RewardContext, as_reward, evaluate
from textgym.tasks.base import Problem, Task, Turn
from textgym.tasks.checks import ConfigTypeError, check_bool, check_int, describe
from textgym.tokenizer import ChatFormat, encode_plain, load_tokenizer
from textgym.users.base import Reply, Responder


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
        from textgym.tokenizer import _backend

        return (
            type(backend.model).__name__ == "WordLevel"
            and backend.normalizer is None
            and backend.pre_tokenizer is not None
            and backend.pre_tokenizer.__getstate__() == _backend()[0].__getstate__()
        )
    except Exception:  # an exotic backend: take the general path
        return False


#: Longest context an env takes. The observation buffers are allocated up front, so an
#: absurd ``max_length`` would otherwise try to allocate terabytes.
MAX_LENGTH = 1 << 20
#: Options ``TextEnv.reset`` understands.
RESET_OPTIONS = ("problem",)


class EpisodeError(UserError, RuntimeError):
    """``step`` was called when no episode is running."""


class InputError(UserError, ValueError):
    """An action, seed or reset option has a value the env cannot take."""


class InputTypeError(UserError, TypeError):
    """An action, seed, reset option or a responder's reply has the wrong type."""


class UnknownTaskError(UserError, KeyError):
    """A task name that is not in the registry."""

    def __str__(self) -> str:
        # KeyError's str() is the repr of its argument, quotes and escaped newlines included.
        return str(self.args[0]) if self.args else ""


def check_seed(seed: Any, name: str = "seed") -> int | None:
    """``seed`` as a non-negative Python int (numpy integers accepted) or ``None``.

    Gymnasium takes only Python ints and raises its own ``Error`` otherwise; numpy integers
    come naturally from ``rng.integers`` or an array of seeds, so they are converted here.
    """
    if seed is None or (type(seed) is int and seed >= 0):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise InputTypeError(
            f"{name} must be a non-negative integer or None, got {describe(seed)}."
        )
    if seed < 0:
        raise InputError(f"{name} must be a non-negative integer or None, got {int(seed)}.")
    return int(seed)


def check_reset_options(
    options: Any, known: tuple[str, ...] = RESET_OPTIONS, where: str = "env.reset"
) -> Problem | None:
    """Validate ``options`` for a reset and return the forced problem, if any.

    Unknown keys are refused: a misspelt option (``reset_mak``) would otherwise be ignored
    and the reset would silently do something else than asked.
    """
    if options is None:
        return None
    if not isinstance(options, Mapping):
        raise InputTypeError(
            f"{where}(options=...) must be a dict or None, got {describe(options)}. Known "
            f"options: {list(known)}."
        )
    for key in options:
        if key not in known:
            hint = _suggest(key, list(known)) if isinstance(key, str) else ""
            if key == "reset_mask":
                hint = " reset_mask is an option of vector envs (gym.make_vec)."
            raise InputError(f"Unknown reset option {key!r}.{hint} Known options: {list(known)}.")
    problem = options.get("problem")
    if problem is not None and not (
        isinstance(problem, Problem) and isinstance(problem.prompt, str)
    ):
        raise InputTypeError(
            f"options['problem'] must be a textgym Problem (e.g. env.unwrapped.task.sample("
            f"rng), or Problem(prompt=..., answer=...)) or None, got {describe(problem)}."
        )
    return problem


def _suggest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def make_task(task: str | Task, **task_kwargs: Any) -> Task:
    """Build a task from its registry name (``"copy"``) or pass an instance through.

    Raises:
        TypeError: an argument the task does not take, with the accepted ones listed.
        KeyError: an unknown task name, with the known ones listed.
    """
    from textgym.tasks import TASKS

    if isinstance(task, Task):
        if task_kwargs:
            raise ConfigTypeError(
                f"TextEnv() got an unexpected keyword argument {next(iter(task_kwargs))!r} "
                f"(unknown TextEnv argument(s) {sorted(task_kwargs)}): task arguments can "
                "only be given with a task name, not with a Task instance. Configure the "
                "instance."
            )
        return task
    if not isinstance(task, str):
        raise ConfigTypeError(
            f"task must be a task name ({sorted(TASKS)}) or a Task instance, got {describe(task)}."
        )
    if task not in TASKS:
        raise UnknownTaskError(
            f"Unknown task {task!r}. Known tasks: {sorted(TASKS)}.{_suggest(task, list(TASKS))}"
        )
    cls = TASKS[task]
    params = [
        p.name
        for p in inspect.signature(cls).parameters.values()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    unknown = [k for k in task_kwargs if k not in params]
    if unknown:
        env_params = [p for p in inspect.signature(TextEnv).parameters if p != "task_kwargs"]
        hint = _suggest(unknown[0], params + env_params)
        raise ConfigTypeError(
            f"Unknown argument {unknown[0]!r} for task {task!r} (TextEnv() got an unexpected "
            f"keyword argument {unknown[0]!r}).{hint} TextEnv takes "
            f"{env_params}; task {task!r} takes {params}."
        )
    return cls(**task_kwargs)


class TextEnv(gym.Env[dict[str, np.ndarray], int]):
    """A text task as a token-level MDP.

    ## Description
    Each episode is one problem from a :class:`~textgym.tasks.base.Task`. The context starts
    as ``<user> prompt <eot> <agent>`` and the agent writes its turn one token per step. The
    end-of-turn token (the tokenizer's eos, ``<eot>`` by default) closes the turn. Single-turn
    tasks then terminate; multi-turn tasks pass the decoded turn to a
    :class:`~textgym.users.base.Responder`, whose reply is appended as
    ``<eot> <user> reply <eot> <agent>`` (the eot that closed the agent turn is kept), and
    the agent writes its next turn, until the responder ends the conversation.

    Each step costs O(1): the token is written into a preallocated array. Text is decoded
    only at turn ends, where rewards and the responder need it.

    ## Observation Space
    ``Dict(input_ids=Box(0, V-1, (max_length,), int64), attention_mask=Box(0, 1,
    (max_length,), int8))``. The context is **right-padded** with the tokenizer's pad id:
    positions ``0..n-1`` hold the context, the rest is padding with ``attention_mask == 0``.

    ## Action Space
    ``Discrete(V)`` with ``V = len(tokenizer)``: the next token id. ``action_masks()`` returns
    a bool array (the sb3-contrib MaskablePPO convention), all True unless the task restricts
    the tokens it needs. Masks are advice for the agent: any in-range token is accepted.

    ## Rewards
    ``reward(ctx)`` at every turn end (0 on other steps), where ``ctx`` is a
    :class:`~textgym.rewards.base.RewardContext`; defaults to the task's reward. A reward
    with per-token shaping adds ``table[token]`` at every step.

    ## Episode End
    * terminated: a single-turn task's agent turn ends, or the responder ends the dialogue;
    * truncated: the agent turn reaches ``max_new_tokens`` without the end-of-turn token,
      or the context (with the responder's reply) would exceed ``max_length``.

    ``info`` at turn ends carries ``turn_text``, ``reward_components``, ``metadata`` and
    ``turn``; at the episode end also ``success``; multi-turn tasks add ``user_reply``.

    ## Arguments
    * ``task``: a task name (``"copy"``, ...) or a :class:`Task`; extra keyword arguments go
      to the task constructor.
    * ``tokenizer``: ``None`` (embedded default), a local path or hub name, or an object.
    * ``reward``: a :class:`Reward`, a function ``ctx -> float``, or a spec string such as
      ``"exact_match + 0.1*format"`` (see :func:`textgym.rewards.parse_reward`); ``None``
      uses the task's default.
    * ``max_length`` / ``max_new_tokens``: context and per-turn limits (task defaults).
    * ``render_mode``: ``"ansi"`` or ``"human"``.
    * ``copy``: return fresh observation arrays (default). ``False`` returns read-only views
      of the env's buffers, which the next step updates: faster, for learners that copy.

    ## Registered Configurations
    See ``textgym list`` or the README's table.

    ## Version History
    * v0: initial release.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "human"], "render_fps": 4}

    def __init__(
        self,
        task: str | Task = "copy",
        *,
        tokenizer: Any = None,
        reward: Reward | Callable[[RewardContext], float] | str | None = None,
        max_length: int | None = None,
        max_new_tokens: int | None = None,
        render_mode: str | None = None,
        copy: bool = True,
        **task_kwargs: Any,
    ) -> None:
        # Plain arguments first: a bad flag fails before a tokenizer or a reward loads.
        self.copy = check_bool(copy, "copy")
        if max_length is not None:
            max_length = check_int(max_length, "max_length", 8, MAX_LENGTH)
        if max_new_tokens is not None:
            max_new_tokens = check_int(max_new_tokens, "max_new_tokens", 1, MAX_LENGTH)
        self.task = make_task(task, **task_kwargs)
        if tokenizer is None or isinstance(tokenizer, str) or hasattr(tokenizer, "__fspath__"):
            tokenizer = load_tokenizer(tokenizer)
        elif not all(
            callable(getattr(tokenizer, m, None)) for m in ("encode", "decode", "__len__")
        ):
            raise ConfigTypeError(
                "tokenizer must be None (textgym's default), a local path or hub name, or a "
                f"tokenizer object with encode, decode and len(); got {describe(tokenizer)}."
            )
        self.tokenizer = tokenizer
        self.chat = ChatFormat.for_tokenizer(tokenizer)
        self.reward: Reward = self._resolve_reward(reward)
        # A task's own defaults are checked too: a task built by hand can carry any value.
        self.max_length = check_int(
            max_length if max_length is not None else self.task.max_length,
            "max_length",
            8,
            MAX_LENGTH,
        )
        self.max_new_tokens = check_int(
            max_new_tokens if max_new_tokens is not None else self.task.max_new_tokens,
            "max_new_tokens",
            1,
            MAX_LENGTH,
        )
        if render_mode == "rgb_array":
            # stable-baselines3 builds envs from id strings with render_mode="rgb_array";
            # text has no frames, so rendering is off rather than the construction failing.
            gym.logger.warn(
                "TextEnv has no 'rgb_array' frames; rendering is disabled (use 'ansi')."
            )
            render_mode = None
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(
                f"render_mode={render_mode!r} is not supported; use one of "
                f"{self.metadata['render_modes']} or None."
            )
        self.render_mode = render_mode
        self.vocab_size = len(tokenizer)
        self.observation_space = spaces.Dict(
            {
                "input_ids": spaces.Box(0, self.vocab_size - 1, (self.max_length,), np.int64),
                "attention_mask": spaces.Box(0, 1, (self.max_length,), np.int8),
            }
        )
        self.action_space = spaces.Discrete(self.vocab_size)
        self._mask_table = self._build_action_mask()
        shaping = self.reward.token_rewards(self.vocab_size)
        self._shaping = None if shaping is None else np.asarray(shaping, dtype=np.float64)
        # The context lives in preallocated buffers; a step writes one slot of each.
        self._ids = np.full(self.max_length, self.chat.pad_id, dtype=np.int64)
        self._attn = np.zeros(self.max_length, dtype=np.int8)
        self._len = 0
        self._turn_start = 0
        self._done = True
        self._started = False
        self._responder: Responder | None = None
        self.problem: Problem | None = None
        self.turns: list[Turn] = []
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
        # Text from a task or a responder must never become control tokens: a reply that
        # says "<eot> <agent>" would otherwise close the user's turn and speak for the
        # agent. encode_plain keeps special-token text inert, and every encoding is checked
        # against the control ids below.
        self._control_ids = self._find_control_ids()
        self._agent_turns = 0
        # Why the episode cannot go on after a step raised (None while all is well).
        self._failure: str | None = None

    # -- construction helpers -------------------------------------------------------------

    def _resolve_reward(self, reward: Any) -> Reward:
        if reward is None:
            return as_reward(self.task.default_reward())
        if isinstance(reward, str):
            from textgym import rewards

            parse = getattr(rewards, "parse_reward", None)
            if parse is None:
                raise TypeError("Rewards named by string need textgym.rewards.parse_reward.")
            return parse(reward)
        if not (isinstance(reward, Reward) or callable(reward)):
            raise ConfigTypeError(
                "reward must be a textgym Reward or a function ctx -> float (or a spec "
                f"string such as 'exact_match + 0.1*format'), got {describe(reward)}. Example: "
                "reward=lambda ctx: float(ctx.text == ctx.answer)."
            )
        return as_reward(reward)

    def _find_control_ids(self) -> frozenset[int]:
        """Ids that only the env may write: pad, end of turn, one-token turn markers and
        the tokenizer's other special tokens (bos, ...), but not unk, which is how plain
        text outside the vocabulary is spelt."""
        chat = self.chat
        ids = {chat.pad_id, chat.eot_id}
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

    def _build_action_mask(self) -> np.ndarray:
        words = self.task.allowed_words()
        mask = np.ones(self.vocab_size, dtype=bool)
        if words is None:
            return mask
        vocab = self.tokenizer.get_vocab()
        missing = [w for w in words if w not in vocab]
        if missing:
            # A foreign tokenizer spells these words differently; fall back to no restriction
            # rather than masking out the tokens the agent needs.
            return mask
        mask[:] = False
        mask[[vocab[w] for w in words]] = True
        mask[self.chat.eot_id] = True
        return mask

    # -- Gymnasium API --------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start an episode on a freshly sampled problem (``options["problem"]`` forces one).

        Raises:
            InputTypeError: ``seed`` is not an integer, or ``options`` is not a dict or its
                ``problem`` is not a :class:`Problem`.
            InputError: ``seed`` is negative, or ``options`` has an unknown key.
        """
        # Checked before the RNG is touched, so a refused reset leaves the env as it was.
        seed = check_seed(seed)
        check_reset_options(options)
        super().reset(seed=seed)
        info = self._start_episode(options)
        if self.render_mode == "human":
            self.render()
        return self._obs(), info

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Append one token; close the turn at the end-of-turn token or a length limit."""
        if self._done:
            raise EpisodeError(self._not_running_message())
        token = self._check_action(action)
        self._ids[self._len] = token
        self._attn[self._len] = 1
        self._len += 1
        reward = 0.0 if self._shaping is None else float(self._shaping[token])
        ended = token == self.chat.eot_id
        if not (
            ended
            or self._len - self._turn_start >= self.max_new_tokens
            or self._len >= self.max_length
        ):
            return self._obs(), reward, False, False, {}
        try:
            ctx = self._close_turn(ended)
            [(value, components)] = evaluate(self.reward, [ctx])
            info = self._turn_info(ctx, components)
        except BaseException as exc:
            # The turn is half closed (the responder may have answered, the reward not):
            # stepping on would run an episode the caller never saw. Reset is the way out.
            self._fail(exc)
            raise
        if self.render_mode == "human":
            self.render()
        return self._obs(), reward + value, self._terminated, self._truncated, info

    def action_masks(self) -> np.ndarray:
        """Tokens the task needs (bool per token id), for MaskablePPO and tabular agents."""
        return self._mask_table.copy()

    def render(self) -> str | None:
        """The conversation so far, as text ("ansi" returns it, "human" prints it)."""
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi'.")
            return None
        lines = []
        for turn in self.turns:
            lines.append(f"{turn.role:>5}: {turn.text}")
        if not self._done and self._len > self._turn_start:
            partial = self.tokenizer.decode(self._ids[self._turn_start : self._len].tolist())
            lines.append(f"agent: {partial} ...")
        text = "\n".join(lines)
        if self.render_mode == "human":
            print(text + "\n")
            return None
        return text

    # -- episode and turn boundaries (shared with the native vector env) -------------------

    def _start_episode(self, options: dict[str, Any] | None = None) -> dict[str, Any]:
        """Sample a problem and write its opening; returns the reset info (no observation,
        so the vector env's autoreset does not build one it would throw away)."""
        problem = (options or {}).get("problem") or self.task.sample(self.np_random)
        self._failure = None
        self.problem = problem
        self.turns = [Turn("user", problem.prompt)]
        self._agent_turns = 0
        # Only the written prefix needs clearing: the rest is still padding.
        self._ids[: self._len] = self.chat.pad_id
        self._attn[: self._len] = 0
        self._len = 0
        self._write(self._opening(problem.prompt))
        self._turn_start = self._len
        self._responder = self.task.responder()
        if self._responder is not None:
            if not (
                callable(getattr(self._responder, "reset", None))
                and callable(getattr(self._responder, "respond", None))
            ):
                raise ConfigTypeError(
                    f"The task's responder {describe(self._responder)} is not a Responder "
                    "(it needs reset(problem, rng) and respond(turns)); check the task's "
                    "user= argument: it must return a Responder."
                )
            self._responder.reset(problem, self.np_random)
        self._done = False
        self._started = True
        return {"metadata": dict(problem.metadata), "prompt": problem.prompt}

    def _opening(self, prompt: str) -> list[int]:
        """``<user> prompt <eot> <agent>`` as ids, cut to leave room for one agent token."""
        chat = self.chat
        opening = [*chat.user_ids, *self._encode(prompt), chat.eot_id, *chat.agent_ids]
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

    def _close_turn(self, ended_by_eot: bool) -> RewardContext:
        """Decode the agent's turn, let the responder answer, and return the reward context.

        Sets ``_terminated`` / ``_truncated`` and leaves the context ready for the next turn.
        """
        assert self.problem is not None
        stop = self._len - 1 if ended_by_eot else self._len
        turn_ids = self._ids[self._turn_start : stop].copy()
        text = self._decode(turn_ids.tolist())
        self.turns.append(Turn("agent", text))
        turn_index = self._agent_turns
        self._agent_turns += 1
        self._terminated = self._truncated = False
        reply: Reply | None = None
        if not ended_by_eot:
            self._truncated = True  # hit max_new_tokens or max_length mid-turn
        elif self._responder is None:
            self._terminated = True
        else:
            reply = self._responder.respond(tuple(self.turns))
            if not isinstance(reply, Reply) or type(reply.text) is not str:
                raise InputTypeError(
                    f"The responder {type(self._responder).__name__} returned "
                    f"{describe(reply)}; respond() must return a textgym Reply whose text is "
                    "a str: Reply(text, done=False, outcome={})."
                )
            self.turns.append(Turn("user", reply.text))
            if reply.done:
                self._terminated = True
            else:
                reply_ids = self._encode(reply.text)
                nxt = [*self.chat.user_ids, *reply_ids, self.chat.eot_id, *self.chat.agent_ids]
                # The agent must be able to write at least one token after the reply.
                if self._len + len(nxt) >= self.max_length:
                    self._truncated = True
                else:
                    self._write(nxt)
                    self._turn_start = self._len
        self._done = self._terminated or self._truncated
        return RewardContext(
            task=self.task,
            problem=self.problem,
            turns=tuple(self.turns[:-1] if reply is not None else self.turns),
            text=text,
            token_ids=turn_ids,
            turn_index=turn_index,
            episode_end=self._done,
            truncated=self._truncated,
            reply=reply,
        )

    def _turn_info(self, ctx: RewardContext, components: dict[str, float]) -> dict[str, Any]:
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

    # -- internals ------------------------------------------------------------------------

    def _encode(self, text: str) -> list[int]:
        ids = self._encode_cache.get(text)
        if ids is None:
            if self._by_word and self._splits_into_words(text):
                ids = []
                for word in text.split(" "):
                    ids += self._encode_word(word)
            else:
                ids = self._encode_text(text)
            if len(self._encode_cache) >= 50_000:
                self._encode_cache.clear()
            self._encode_cache[text] = ids
        return ids

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
            if len(self._word_cache) >= 50_000:
                self._word_cache.clear()
            self._word_cache[word] = ids
        return ids

    def _encode_text(self, text: str) -> list[int]:
        """``text`` as plain-text ids: special-token text never becomes a control token.

        Runs only on a cache miss (a new word or sentence), never per agent token.
        """
        ids = encode_plain(self.tokenizer, text)
        if self._control_ids.isdisjoint(ids):
            return ids
        return self._strip_control(ids)

    def _strip_control(self, ids: list[int]) -> list[int]:
        """Replace control ids the tokenizer produced from plain text by unk (or drop them,
        when unk is itself a control id), so text can never steer the turn structure."""
        unk = getattr(self.tokenizer, "unk_token_id", None)
        if unk is None or unk in self._control_ids:
            return [i for i in ids if i not in self._control_ids]
        return [unk if i in self._control_ids else i for i in ids]

    def _decode(self, ids: list[int]) -> str:
        if self._backend is not None:
            return self._backend.decode(ids, skip_special_tokens=False)
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def _write(self, ids: list[int]) -> None:
        n = len(ids)
        self._ids[self._len : self._len + n] = ids
        self._attn[self._len : self._len + n] = 1
        self._len += n

    def _obs(self) -> dict[str, np.ndarray]:
        if self.copy:
            return {"input_ids": self._ids.copy(), "attention_mask": self._attn.copy()}
        ids, attn = self._ids.view(), self._attn.view()
        ids.flags.writeable = attn.flags.writeable = False
        return {"input_ids": ids, "attention_mask": attn}

    def _check_action(self, action: Any) -> int:
        # The common cases (a Python int or a numpy integer) skip the slow ABC checks.
        if (type(action) is int or type(action) is np.int64) and 0 <= action < self.vocab_size:
            return int(action)
        if isinstance(action, np.ndarray):
            if action.size != 1 or action.ndim > 1:
                raise InputError(
                    f"Action has shape {action.shape}; one env takes one token id (an int, a "
                    "0-d array or shape (1,)). For a batch of actions use gym.make_vec."
                )
            action = action.reshape(()).item() if action.dtype.kind in "iu" else action.item()
        if isinstance(action, bool) or not isinstance(action, numbers.Integral):
            raise InputTypeError(
                f"Action {action!r} has type {type(action).__name__}; an action is one integer "
                f"token id in [0, {self.vocab_size}). To act with text, encode it with "
                "env.unwrapped.tokenizer and step one id at a time."
            )
        token = int(action)
        if not 0 <= token < self.vocab_size:
            raise InputError(
                f"Action {token} is outside the vocabulary: token ids are in "
                f"[0, {self.vocab_size}) for this tokenizer. Sample from env.action_space or "
                "check that the policy's vocabulary matches the env's tokenizer."
            )
        return token

    def _fail(self, exc: BaseException) -> None:
        """Mark the episode as broken by ``exc`` (raised mid-step): stepping needs a reset."""
        self._done = True
        self._failure = f"{type(exc).__name__}: {exc}"

    def _not_running_message(self) -> str:
        if self._failure is not None:
            return (
                f"step() was called after a step raised ({self._failure}); the turn it was "
                "closing is half done, so the episode cannot go on. Call env.reset() to "
                "start a new episode."
            )
        if not self._started:
            return "step() was called before reset(); call env.reset() to start an episode."
        return (
            "step() was called after the episode ended (terminated or truncated was True); "
            "call env.reset() to start a new episode."
        )

    # -- conveniences ---------------------------------------------------------------------

    @property
    def context_ids(self) -> np.ndarray:
        """The context so far (a copy, without padding)."""
        return self._ids[: self._len].copy()

    def encode_turn(self, text: str) -> list[int]:
        """Token ids that write ``text`` as one agent turn, end-of-turn token included."""
        return [*self._encode(text), self.chat.eot_id]

    def oracle_action(self) -> int:
        """The next token of the task oracle's turn (for demonstrations and tests)."""
        if self._done or self.problem is None:
            raise EpisodeError(self._not_running_message())
        history = self.turns
        ids = self.encode_turn(self.task.oracle(self.problem, tuple(history)))
        written = self._len - self._turn_start
        return ids[written] if written < len(ids) else self.chat.eot_id
