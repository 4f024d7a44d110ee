"""TextEnv: a text task as a token-level Gymnasium environment.

The MDP (see the class docstring for the details):

    state   = (problem, context tokens so far)
    action  = one token id
    step    = append the token; at the end-of-turn token (or a length limit) the turn closes:
              single-turn tasks terminate, multi-turn tasks append the responder's reply
    reward  = reward(RewardContext) at turn ends, plus optional per-token shaping
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from textgym.chat import ChatFormat

# EpisodeError, InputError and InputTypeError are defined with the episode state and
# keep their import path here.
from textgym.episode import (
    Episode,
    EpisodeError,
    InputError,
    InputTypeError,
    TextCodec,
)
from textgym.errors import ConfigError, UserError, did_you_mean
from textgym.fitting import action_mask, check_answers_survive, fitted_budgets
from textgym.rewards.base import Reward, RewardContext, as_reward, evaluate
from textgym.rewards.spec import parse_reward
from textgym.tasks import TASKS
from textgym.tasks.base import Problem, Task, Turn
from textgym.tasks.checks import ConfigTypeError, check_bool, check_int, describe
from textgym.tokenizer import default_tokenizer, load_tokenizer, spare_ids

#: Longest context an env takes. The observation buffers are allocated up front, so an
#: absurd ``max_length`` would otherwise try to allocate terabytes.
MAX_LENGTH = 1 << 20
#: The default tokenizer of tasks whose text is open (``Task.open_text``): a byte-level BPE
#: built by ``python -m textgym.tools.build_open_tokenizer``.
OPEN_TOKENIZER_PATH = Path(__file__).parent / "data" / "open_tokenizer"
#: Options ``TextEnv.reset`` understands.
RESET_OPTIONS = ("problem",)


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
            hint = did_you_mean(key, list(known)) if isinstance(key, str) else ""
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


def make_task(task: str | Task, **task_kwargs: Any) -> Task:
    """Build a task from its registry name (``"copy"``) or pass an instance through.

    Raises:
        TypeError: an argument the task does not take, with the accepted ones listed.
        KeyError: an unknown task name, with the known ones listed.
    """
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
            f"Unknown task {task!r}. Known tasks: {sorted(TASKS)}.{did_you_mean(task, list(TASKS))}"
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
        hint = did_you_mean(unknown[0], params + env_params)
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
    * ``tokenizer``: ``None`` (embedded default: the closed word-level one, or the open
      byte-level BPE for tasks with ``open_text``), a local path or hub name, or an object.
    * ``reward``: a :class:`Reward`, a function ``ctx -> float``, or a spec string such as
      ``"exact_match + 0.1*format"`` (see :func:`textgym.rewards.parse_reward`); ``None``
      uses the task's default.
    * ``max_length`` / ``max_new_tokens``: context and per-turn limits (task defaults).
    * ``render_mode``: ``"ansi"`` or ``"human"``.
    * ``copy``: return fresh observation arrays (default). ``False`` returns read-only views
      of the env's buffers, which the next step updates: faster, for learners that copy.
    * ``system_prompt``: the system message of every episode (default: the task's, if any).

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
        system_prompt: str | None = None,
        **task_kwargs: Any,
    ) -> None:
        # Plain arguments first: a bad flag fails before a tokenizer or a reward loads.
        self.copy = check_bool(copy, "copy")
        if system_prompt is not None and not isinstance(system_prompt, str):
            raise ConfigTypeError(
                f"system_prompt must be a str or None (the task's own), got "
                f"{describe(system_prompt)}."
            )
        if max_length is not None:
            max_length = check_int(max_length, "max_length", 8, MAX_LENGTH)
        if max_new_tokens is not None:
            max_new_tokens = check_int(max_new_tokens, "max_new_tokens", 1, MAX_LENGTH)
        self.task = make_task(task, **task_kwargs)
        if tokenizer is None and self.task.open_text:
            # Open text (external data) is beyond the closed default vocabulary.
            tokenizer = OPEN_TOKENIZER_PATH
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
        spec = self.task.reward_spec if reward is None else reward
        #: The spec string the reward was parsed from (None for a Reward object or function).
        self.reward_spec: str | None = spec if isinstance(spec, str) else None
        codec = TextCodec(tokenizer, self.chat)
        if self.task.open_text:  # the suite's own tasks are spelt by every tokenizer tested
            check_answers_survive(self.task, codec)
        if max_length is None or max_new_tokens is None:
            # A task's own defaults are checked too: a task built by hand can carry any value.
            budgets = (
                check_int(self.task.max_length, "max_length", 8, MAX_LENGTH),
                check_int(self.task.max_new_tokens, "max_new_tokens", 1, MAX_LENGTH),
            )
            if tokenizer is not default_tokenizer():
                # The task's budgets are in default-tokenizer tokens: fit them to this one.
                budgets = fitted_budgets(self.task, budgets, system_prompt, codec)
            max_length = max_length or min(budgets[0], MAX_LENGTH)
            max_new_tokens = max_new_tokens or min(budgets[1], MAX_LENGTH)
        self.max_length: int = max_length
        self.max_new_tokens: int = max_new_tokens
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
        words = self.task.allowed_words()
        vocab = tokenizer.get_vocab()
        self._mask_table = action_mask(
            None if words is None else list(words),
            vocab,
            self.vocab_size,
            self.chat.eot_id,
            codec.encode,
            spare_ids(vocab),
        )
        self._shaping = shaping_table(self.reward, self.vocab_size)
        # The conversation state: problem, turns, context buffer and turn boundaries.
        self.episode = Episode(
            self.task,
            codec,
            self.max_length,
            self.max_new_tokens,
            system_prompt,
        )

    # -- construction helpers -------------------------------------------------------------

    def _resolve_reward(self, reward: Any) -> Reward:
        if reward is None:
            return as_reward(self.task.default_reward())
        if isinstance(reward, str):
            return parse_reward(reward)
        if not (isinstance(reward, Reward) or callable(reward)):
            raise ConfigTypeError(
                "reward must be a textgym Reward or a function ctx -> float (or a spec "
                f"string such as 'exact_match + 0.1*format'), got {describe(reward)}. Example: "
                "reward=lambda ctx: float(ctx.text == ctx.answer)."
            )
        return as_reward(reward)

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
        info = self.start(check_seed(seed), check_reset_options(options))
        if self.render_mode == "human":
            self.render()
        return self._obs(), info

    def start(self, seed: int | None, problem: Problem | None = None) -> dict[str, Any]:
        """:meth:`reset` without its checks and observation (the vector env's reset, which
        checks once for the batch and reads the batch's arrays); returns the info."""
        super().reset(seed=seed)
        return self.episode.start(self.np_random, problem)

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Append one token; close the turn at the end-of-turn token or a length limit."""
        episode = self.episode
        if episode.done:
            raise EpisodeError(self._not_running_message())
        token = self._check_action(action)
        reward = 0.0 if self._shaping is None else float(self._shaping[token])
        if not episode.append(token):
            return self._obs(), reward, False, False, {}
        try:
            ctx = episode.close_turn()
            [(value, components)] = evaluate(self.reward, [ctx])
            info = episode.turn_info(ctx, components)
        except BaseException as exc:
            # The turn is half closed (the responder may have answered, the reward not):
            # stepping on would run an episode the caller never saw. Reset is the way out.
            episode.fail(exc)
            raise
        if self.render_mode == "human":
            self.render()
        return self._obs(), reward + value, episode.terminated, episode.truncated, info

    def action_masks(self) -> np.ndarray:
        """Tokens the task needs (bool per token id), for MaskablePPO and tabular agents."""
        return self._mask_table.copy()

    def render(self) -> str | None:
        """The conversation so far, as text ("ansi" returns it, "human" prints it)."""
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi'.")
            return None
        lines = [] if self.episode.system is None else [f"system: {self.episode.system}"]
        for turn in self.turns:
            lines.append(f"{turn.role:>5}: {turn.text}")
        partial = self.episode.turn_ids()
        if not self.episode.done and len(partial):
            lines.append(f"agent: {self.tokenizer.decode(partial.tolist())} ...")
        text = "\n".join(lines)
        if self.render_mode == "human":
            print(text + "\n")
            return None
        return text

    def _obs(self) -> dict[str, np.ndarray]:
        episode = self.episode
        if self.copy:  # the default, inline: a step's other cost is a few hundred ns
            return {"input_ids": episode.ids.copy(), "attention_mask": episode.attn.copy()}
        return observation(episode.ids, episode.attn, copy=False)

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

    def _not_running_message(self) -> str:
        failure = self.episode.failure
        if failure is not None:
            return (
                f"step() was called after a step raised ({failure}); the turn it was "
                "closing is half done, so the episode cannot go on. Call env.reset() to "
                "start a new episode."
            )
        if not self.episode.started:
            return "step() was called before reset(); call env.reset() to start an episode."
        return (
            "step() was called after the episode ended (terminated or truncated was True); "
            "call env.reset() to start a new episode."
        )

    # -- conveniences ---------------------------------------------------------------------

    @property
    def problem(self) -> Problem | None:
        """The episode's problem (``None`` before the first reset)."""
        return self.episode.problem

    @property
    def turns(self) -> list[Turn]:
        """The conversation so far as text, the prompt first."""
        return self.episode.turns

    def messages(self) -> list[dict[str, str]]:
        """The conversation so far as ``{"role": "system" | "user" | "assistant", "content":
        str}`` dicts, the format of transformers' chat templates and TRL.

        With a templated tokenizer, at the start of every agent turn the context is exactly
        ``tokenizer.apply_chat_template(env.messages(), add_generation_prompt=True)``.
        """
        return self.episode.messages()

    @property
    def context_ids(self) -> np.ndarray:
        """The context so far (a copy, without padding)."""
        return self.episode.context_ids()

    def encode_turn(self, text: str) -> list[int]:
        """Token ids that write ``text`` as one agent turn, end-of-turn token included."""
        return [*self.episode.codec.encode(text), self.chat.eot_id]

    def oracle_action(self) -> int:
        """The next token of the task oracle's turn (for demonstrations and tests)."""
        episode = self.episode
        if episode.done or episode.problem is None:
            raise EpisodeError(self._not_running_message())
        ids = self.encode_turn(self.task.oracle(episode.problem, tuple(episode.turns)))
        written = len(episode.turn_ids())
        return ids[written] if written < len(ids) else self.chat.eot_id

    def _decode(self, ids: list[int]) -> str:
        # benchmarks/throughput.py times the turn decode through this name.
        return self.episode.codec.decode(ids)


def shaping_table(reward: Reward, vocab_size: int) -> np.ndarray | None:
    """``reward``'s per-token shaping as a float64 table over the vocabulary, or None."""
    shaping = reward.token_rewards(vocab_size)
    return None if shaping is None else np.asarray(shaping, dtype=np.float64)


def observation(ids: np.ndarray, attn: np.ndarray, copy: bool) -> dict[str, np.ndarray]:
    """The observation dict over context buffers: fresh arrays, or read-only views."""
    if copy:
        return {"input_ids": ids.copy(), "attention_mask": attn.copy()}
    ids, attn = ids.view(), attn.view()
    ids.flags.writeable = attn.flags.writeable = False
    return {"input_ids": ids, "attention_mask": attn}
