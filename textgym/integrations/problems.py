"""Dataset rows and env ids on the textgym side of the integrations (no trainer imports).

A row is what :func:`textgym.integrations.trl.dataset` writes and TRL hands back: ``prompt``
(text or messages), ``answer``, ``metadata`` (JSON text), ``problem_id`` and ``seed``.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym

from textgym.core import TextEnv
from textgym.errors import ConfigError, did_you_mean
from textgym.tasks.checks import ConfigTypeError, describe
from textgym.tasks.splits import check_split
from textgym.types import Problem

Row = Mapping[str, Any]


def make_env(env_id: Any, **env_kwargs: Any) -> gym.Env:
    """``gym.make(env_id, ...)`` for a textgym id, with a clear error for anything else."""
    if not isinstance(env_id, str):
        raise ConfigTypeError(f"env_id must be a textgym id (str), got {describe(env_id)}.")
    if env_id not in gym.registry:
        known = [k for k in gym.registry if k.startswith("textgym/")]
        raise ConfigError(
            f"Unknown env id {env_id!r}.{did_you_mean(env_id, known)} See `textgym list`."
        )
    env = gym.make(env_id, **env_kwargs)
    if not isinstance(env.unwrapped, TextEnv):
        raise ConfigError(f"{env_id!r} is not a textgym env; use a textgym/... id.")
    return env


def make_split_env(env_id: str, split: str, **env_kwargs: Any) -> gym.Env:
    """The env drawing problems from ``split`` (``"test"`` needs a task with a split)."""
    split = check_split(split)
    env = make_env(env_id, **env_kwargs)
    if getattr(env.unwrapped.task, "split", "train") == split:
        return env
    if "split" not in inspect.signature(type(env.unwrapped.task)).parameters:
        raise ConfigError(
            f"{env_id} has no held-out split (its task {env.unwrapped.task.name!r} takes no "
            "'split' argument); use split='train'."
        )
    return make_env(env_id, split=split, **env_kwargs)


def _tuples(value: Any) -> Any:
    """JSON lists back to the tuples textgym's metadata holds (it is frozen, hashable data)."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def metadata_of(value: Any) -> dict[str, Any]:
    """A ``metadata`` column cell (JSON text, a dict or ``None``) as a metadata dict."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"The metadata column holds {value!r:.80}, which is not JSON ({exc}); use the "
                "column textgym.integrations.trl.dataset() writes (json.dumps of the metadata)."
            ) from None
    if not isinstance(value, Mapping):
        raise ConfigTypeError(f"metadata must be a JSON object or a dict, got {describe(value)}.")
    return _tuples(dict(value))


def user_text(prompt: Any) -> str:
    """The problem's opening message: a plain prompt, or the first user message's content."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, Sequence):
        for message in prompt:
            if isinstance(message, Mapping) and message.get("role") == "user":
                return str(message.get("content", ""))
        return ""
    raise ConfigTypeError(
        f"A prompt is a str or a list of {{'role', 'content'}} messages, got {describe(prompt)}."
    )


def problem_of(row: Row) -> Problem:
    """The :class:`Problem` of a dataset row (the columns :func:`dataset` writes)."""
    return Problem(
        prompt=user_text(row.get("prompt", "")),
        answer=row.get("answer"),
        metadata=metadata_of(row.get("metadata")),
        id=str(row.get("problem_id") or ""),
    )


def has_problem(row: Row) -> bool:
    return bool(user_text(row.get("prompt", ""))) and (
        "metadata" in row or "problem_id" in row or "answer" in row
    )


__all__ = [
    "Row",
    "has_problem",
    "make_env",
    "make_split_env",
    "metadata_of",
    "problem_of",
    "user_text",
]
