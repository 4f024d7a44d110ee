"""textgym in TRL's ``GRPOTrainer`` contracts: reward functions, datasets, envs and rollouts.

* :func:`reward_func`: a textgym reward (or an env's default one) as a TRL reward function
  ``f(prompts, completions, **columns) -> list[float]``.
* :func:`dataset`: seeded problems of an env as a ``datasets.Dataset`` (``prompt``,
  ``answer``, ``metadata``, ...), the columns :func:`reward_func` reads back.
* :func:`environment_factory`: the multi-turn ``environment_factory`` of TRL >= 1.8: the
  model talks to the simulated user through a ``send_message`` tool, and the env's own
  reward comes back through ``get_reward``.
* :func:`rollout_func`: a ``rollout_func`` that plays the token-level env with the
  trainer's own model, token in, token out, the user's reply tokens masked out of the loss.

Example::

    from trl import GRPOConfig, GRPOTrainer
    from textgym.integrations.trl import dataset, reward_func

    trainer = GRPOTrainer(
        model=model, processing_class=textgym.default_tokenizer(),
        reward_funcs=[reward_func("textgym/Reasoning-v0")],
        train_dataset=dataset("textgym/Reasoning-v0", 512),
        args=GRPOConfig(output_dir="out", max_steps=100),
    )
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

try:
    import datasets
    import trl  # noqa: F401  (imported so that a missing extra fails here, with the fix)
except ModuleNotFoundError as exc:  # pragma: no cover - exercised only without the extra
    if exc.name not in ("datasets", "trl"):
        raise
    raise ModuleNotFoundError(
        f"textgym.integrations.trl needs {exc.name!r}, which is not installed; install the "
        "extra with pip install 'textgym[trl]'."
    ) from exc

from textgym.chat import ChatFormat
from textgym.episode import EpisodeError, TextCodec
from textgym.errors import ConfigError
from textgym.integrations.problems import has_problem, make_env, make_split_env, problem_of
from textgym.integrations.rollout import TokenRollout
from textgym.rewards.base import Reward, as_reward, evaluate
from textgym.rewards.spec import parse_reward
from textgym.tasks.checks import ConfigTypeError, check_bool, check_int, describe
from textgym.tokenizer import default_tokenizer
from textgym.types import RewardContext, Turn
from textgym.wrappers import TurnLevel

#: What :meth:`TurnEnvironment.send_message` answers once the episode is over.
ENDED = "[the conversation has ended]"


# -- reward functions -------------------------------------------------------------------------


class TRLReward:
    """A textgym reward as a TRL reward function (built by :func:`reward_func`).

    Attributes:
        __name__: What TRL logs the reward under (``rewards/<name>/mean``).
        reward: The textgym reward it evaluates.
    """

    def __init__(self, reward: Reward, name: str, codec: TextCodec) -> None:
        self.reward = reward
        self.__name__ = name
        self._codec = codec
        self._strip = {codec.chat.eot_id, codec.chat.pad_id}

    def __repr__(self) -> str:
        return f"reward_func({self.__name__!r}: {self.reward!r})"

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any
    ) -> list[float]:
        """Score each (prompt, completion) pair with one batched call of the reward.

        Args:
            prompts: Plain prompts (str) or conversations (lists of role/content dicts).
            completions: The completions, of the same kind as the prompts.
            **kwargs: The dataset's other columns, one value per row: ``answer``,
                ``metadata`` (JSON or dict) and ``problem_id`` build the problem;
                ``completion_ids`` (TRL passes them) are the turn's token ids. The rest
                (``trainer_state``, ...) is ignored, except ``log_metric``, which gets the
                mean of each named component of a sum.

        Returns:
            One float per completion.

        Raises:
            ConfigError: a column has the wrong length or a completion has no text.
        """
        n = len(prompts)
        if len(completions) != n:
            raise ConfigError(f"Got {n} prompts but {len(completions)} completions.")
        columns = {k: kwargs.get(k) for k in ("answer", "metadata", "problem_id", "completion_ids")}
        for key, values in columns.items():
            if values is not None and len(values) != n:
                raise ConfigError(
                    f"The {key!r} column has {len(values)} values for {n} completions; TRL "
                    "passes one value per completion."
                )
        ctxs = [
            self._context(
                prompts[i], completions[i], {k: v[i] for k, v in columns.items() if v is not None}
            )
            for i in range(n)
        ]
        results = evaluate(self.reward, ctxs, self.__name__)
        log_metric = kwargs.get("log_metric")
        if callable(log_metric) and results and len(results[0][1]) > 1:
            for name in results[0][1]:
                log_metric(
                    f"textgym/{name}", float(np.mean([c.get(name, 0.0) for _, c in results]))
                )
        return [total for total, _ in results]

    def _context(self, prompt: Any, completion: Any, row: dict[str, Any]) -> RewardContext:
        turns = [Turn("user", prompt)] if isinstance(prompt, str) else _turns(prompt)
        if isinstance(completion, str):
            text = completion
        else:
            more = _turns(completion)
            agent = [i for i, t in enumerate(more) if t.role == "agent"]
            if not agent:
                raise ConfigError(
                    f"The completion {completion!r:.120} has no assistant message to score."
                )
            turns += more[: agent[-1]]
            text = more[agent[-1]].text
        ids = row.get("completion_ids")
        if ids is None:
            ids = self._codec.encode(text)
        else:
            ids = list(ids)
            while ids and ids[-1] in self._strip:  # the closing end of turn (and padding)
                ids.pop()
        turns.append(Turn("agent", text))
        problem = problem_of({"prompt": prompt, **row})
        return RewardContext(
            problem=problem,
            turns=tuple(turns),
            text=text,
            token_ids=np.asarray(ids, dtype=np.int64),
            turn_index=sum(t.role == "agent" for t in turns) - 1,
        )


def _turns(messages: Sequence[Any]) -> list[Turn]:
    """Chat messages as textgym turns (system messages are not turns; tools speak as users)."""
    turns = []
    for message in messages:
        if not isinstance(message, Mapping) or "role" not in message:
            raise ConfigTypeError(
                f"A message is a {{'role', 'content'}} dict, got {describe(message)}."
            )
        if message["role"] == "system":
            continue
        role = "agent" if message["role"] == "assistant" else "user"
        turns.append(Turn(role, str(message.get("content") or "")))
    return turns


def reward_func(
    reward_or_env_id: Any, *, name: str | None = None, tokenizer: Any = None, **env_kwargs: Any
) -> TRLReward:
    """A textgym reward as a TRL reward function ``f(prompts, completions, **columns)``.

    Args:
        reward_or_env_id: A registered env id (``"textgym/Reasoning-v0"``: its default
            reward, ``gym.make(id, **env_kwargs).unwrapped.reward``), a reward spec such as
            ``"correctness + 0.1*format"``, a :class:`~textgym.rewards.base.Reward`, or a
            function ``ctx -> float``.
        name: What TRL logs it as (default: the env id's name, the spec, or the reward's
            name).
        tokenizer: Encodes completions into ``ctx.token_ids`` when TRL passes no
            ``completion_ids`` (default: the env's tokenizer, else textgym's default).
        **env_kwargs: Passed to ``gym.make`` with an env id (e.g. ``reward="..."``).

    Returns:
        A picklable callable with a ``__name__``, for ``GRPOTrainer(reward_funcs=[...])``.

    Raises:
        ConfigError: an unknown env id or a bad spec.
        ConfigTypeError: env kwargs without an env id, or an object that is not a reward.
    """
    if isinstance(reward_or_env_id, str) and (
        reward_or_env_id in gym.registry or reward_or_env_id.startswith("textgym/")
    ):
        env = make_env(
            reward_or_env_id, **({"tokenizer": tokenizer} if tokenizer else {}), **env_kwargs
        )
        text_env = env.unwrapped
        reward, codec = text_env.reward, text_env.episode.codec
        default_name = reward_or_env_id.rpartition("/")[2]
        env.close()
    else:
        if env_kwargs:
            raise ConfigTypeError(
                f"reward_func() got env arguments {sorted(env_kwargs)} but no env id; they "
                "configure gym.make(id, ...), e.g. reward_func('textgym/Reasoning-v0', ...)."
            )
        if isinstance(reward_or_env_id, str):
            reward, default_name = parse_reward(reward_or_env_id), reward_or_env_id
        else:
            reward = as_reward(reward_or_env_id)
            default_name = getattr(reward_or_env_id, "__name__", None) or reward.name
        tokenizer = default_tokenizer() if tokenizer is None else tokenizer
        codec = TextCodec(tokenizer, ChatFormat.for_tokenizer(tokenizer))
    return TRLReward(reward, name or default_name, codec)


# -- datasets ---------------------------------------------------------------------------------


def dataset(
    env_id: str,
    n: int,
    split: str = "train",
    conversational: bool = False,
    seed: int = 0,
    **env_kwargs: Any,
) -> datasets.Dataset:
    """``n`` problems of an env as a TRL prompt dataset; row ``i`` is ``reset(seed=seed + i)``.

    Columns: ``prompt`` (the problem's text, or with ``conversational=True`` the opening
    messages ``env.unwrapped.messages()``, system message included), ``answer`` (the gold
    answer, when the task has one), ``metadata`` (JSON text), ``problem_id`` and ``seed``.
    :func:`reward_func` and :func:`environment_factory` read them back. A plain prompt is
    fed to the model as it is; a conversational one is laid out by the tokenizer's chat
    template, which is the env's own context.

    Args:
        env_id: A registered textgym id.
        n: Number of rows.
        split: ``"train"`` or ``"test"`` (the two never share a problem).
        conversational: Prompts as message lists instead of text.
        seed: The first episode seed.
        **env_kwargs: Passed to ``gym.make`` (e.g. ``system_prompt=...``).

    Raises:
        ConfigError: an unknown id, a bad ``split`` or ``n``, or a task without a test split.
    """
    n = check_int(n, "n", 0)
    seed = check_int(seed, "seed", 0)
    conversational = check_bool(conversational, "conversational")
    env = make_split_env(env_id, split, **env_kwargs)
    rows = []
    for i in range(n):
        env.reset(seed=seed + i)
        problem = env.unwrapped.problem
        rows.append(
            {
                "prompt": env.unwrapped.messages() if conversational else problem.prompt,
                "answer": problem.answer,
                "metadata": json.dumps(dict(problem.metadata)),
                "problem_id": problem.id,
                "seed": seed + i,
            }
        )
    env.close()
    if rows and all(row["answer"] is None for row in rows):
        for row in rows:
            del row["answer"]
    if not rows:
        return datasets.Dataset.from_dict({"prompt": [], "metadata": [], "problem_id": []})
    return datasets.Dataset.from_list(rows)


# -- multi-turn environments ------------------------------------------------------------------


class TurnEnvironment:
    """One textgym episode behind TRL's ``environment_factory`` protocol (TRL >= 1.8).

    TRL builds one instance per rollout, calls ``reset(**row)`` with the dataset row, exposes
    every other public method as a tool, and calls :meth:`get_reward` once the rollout is
    over. Each :meth:`send_message` call is one whole agent turn
    (:class:`~textgym.wrappers.TurnLevel`), and the simulated user's reply comes back as
    the tool's result. An assistant message without a tool call is not sent to the user.

    Args:
        env_id: A registered textgym id.
        **env_kwargs: Passed to ``gym.make``.
    """

    def __init__(self, env_id: str, **env_kwargs: Any) -> None:
        self._env = TurnLevel(make_env(env_id, **env_kwargs))
        self._return = 0.0
        self._done = True
        self._info: dict[str, Any] = {}

    def reset(self, **row: Any) -> str | None:
        """Start an episode on the row's problem (or, without one, a problem drawn from
        ``seed``) and return the opening for TRL to append to the prompt, if it lacks it."""
        seed = row.get("seed")
        seed = None if seed is None else check_int(seed, "seed", 0)
        problem = problem_of(row) if has_problem(row) else None
        self._env.reset(seed=seed, options=None if problem is None else {"problem": problem})
        self._return, self._done, self._info = 0.0, False, {}
        return None if problem is not None else self._env.text_env.problem.prompt

    def send_message(self, message: str) -> str:
        """Send your next message to the user and read their reply.

        Args:
            message: What you say to the user (your whole turn).

        Returns:
            The user's reply. Once the conversation is over the reply ends with
            "[the conversation has ended]".
        """
        if self._done:
            raise EpisodeError(f"{ENDED}: do not send more messages; give your final answer.")
        _, reward, terminated, truncated, info = self._env.step(str(message))
        self._return += float(reward)
        self._info = info
        reply = info.get("user_reply", "")
        if terminated or truncated:
            self._done = True
            return f"{reply} {ENDED}".strip()
        return reply

    def get_reward(self) -> float:
        """The episode's return so far: the env's rewards summed over the turns sent."""
        return self._return

    @property
    def success(self) -> bool:
        """Whether the episode ended solved (``info["success"]`` of its last turn)."""
        return bool(self._info.get("success", False))

    @property
    def messages(self) -> list[dict[str, str]]:
        """The conversation so far (system, user, assistant), as the env keeps it."""
        return self._env.messages()


def environment_factory(env_id: str, **env_kwargs: Any) -> Callable[[], TurnEnvironment]:
    """The factory for ``GRPOTrainer(environment_factory=...)``: a fresh env per call.

    The model needs a chat template that renders tool calls (TRL checks it), and TRL needs
    transformers >= 5.2 for environments. Pass a :func:`dataset` with
    ``conversational=True`` (or none: ``reset`` then returns the problem's opening).

    Args:
        env_id: A registered textgym id (multi-turn ones use the simulated user).
        **env_kwargs: Passed to ``gym.make``.

    Raises:
        ConfigError: an unknown env id (checked now, not at the first rollout).
    """
    make_env(env_id, **env_kwargs).close()

    def factory() -> TurnEnvironment:
        return TurnEnvironment(env_id, **env_kwargs)

    factory.__name__ = f"environment_factory({env_id!r})"
    return factory


# -- token-level rollouts ---------------------------------------------------------------------


def rollout_func(env_id: str, *, action_mask: bool = False, **env_kwargs: Any) -> TokenRollout:
    """A ``GRPOTrainer(rollout_func=...)`` that plays the token-level env with the trainer's
    model; see :class:`~textgym.integrations.rollout.TokenRollout`.

    Args:
        env_id: A registered textgym id.
        action_mask: Sample only the tokens ``env.action_masks()`` allows.
        **env_kwargs: Passed to ``gym.make`` (default tokenizer: the trainer's).

    Raises:
        ConfigError: an unknown env id.
    """
    make_env(env_id, **{k: v for k, v in env_kwargs.items() if k != "tokenizer"}).close()
    return TokenRollout(env_id, check_bool(action_mask, "action_mask"), env_kwargs)


__all__ = [
    "ENDED",
    "TRLReward",
    "TokenRollout",
    "TurnEnvironment",
    "dataset",
    "environment_factory",
    "reward_func",
    "rollout_func",
]
