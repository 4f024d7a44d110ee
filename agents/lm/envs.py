"""The envs an LM run trains and evaluates on: checking the id, making the vector envs.

Training plays on the task's train split and evaluation on its held-out test split when the
task has one (:func:`has_split`); both are textgym's native vector env, whose rows share one
tokenizer and one batch of context buffers.
"""

from __future__ import annotations

import inspect
from typing import Any

import gymnasium as gym

import textgym  # noqa: F401  (registers the ids that these functions look up)
from textgym.errors import ConfigError, did_you_mean
from textgym.tasks import TASKS


def check_env_id(env_id: str) -> None:
    """Fail clearly on an unknown env id, suggesting the closest registered one.

    Raises:
        ConfigError: ``env_id`` is not registered.
    """
    if env_id in gym.registry:
        return
    known = [k for k in gym.registry if k.startswith("textgym/")]
    hint = did_you_mean(env_id, known)
    raise ConfigError(
        f"Unknown environment {env_id!r}.{hint} Registered textgym ids: {sorted(known)} "
        "(see `textgym list`)."
    )


def make_envs(
    env_id: str,
    num_envs: int,
    tokenizer: str | None,
    split: str | None,
    env_kwargs: dict[str, Any] | None = None,
) -> Any:
    """The native vector env, on the given split when the task has one.

    ``env_kwargs`` are the env's own arguments (``dataset="chain_sum"``); a wrong one fails
    here, with the env's message naming it, before any model is loaded.
    """
    kwargs: dict[str, Any] = {**(env_kwargs or {}), "copy": False}
    if tokenizer is not None:
        kwargs["tokenizer"] = tokenizer
    if split is not None:
        kwargs["split"] = split
    return gym.make_vec(env_id, num_envs, vectorization_mode="vector_entry_point", **kwargs)


def has_split(env_id: str) -> bool:
    """Whether the env's task takes a ``split`` argument (a held-out test split exists)."""
    spec = gym.spec(env_id)
    task = TASKS.get(spec.kwargs.get("task", ""))
    return task is not None and "split" in inspect.signature(task).parameters


def make_run_envs(config: Any) -> tuple[Any, Any, str | None]:
    """A run's train and evaluation vector envs and the evaluation's split.

    Both have ``config.num_envs`` rows, ``config.tokenizer`` and ``config.env_options``;
    training plays the train split, evaluation the held-out test split when the task has
    one (``None`` otherwise: the same problems as training).
    """
    split = "test" if has_split(config.env_id) else None
    made = [
        make_envs(config.env_id, config.num_envs, config.tokenizer, s, config.env_options)
        for s in (None, split)
    ]
    return made[0], made[1], split
