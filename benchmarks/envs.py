"""Which envs a benchmark runs, and on which split its scores are measured."""

from __future__ import annotations

import inspect

import gymnasium as gym

import textgym
from textgym.tasks import TASKS


def is_tiny(env_id: str) -> bool:
    """Tiny variants are small fixed problem pools meant to be solved exactly (tabular)."""
    return "-Tiny-" in env_id


def tiny_env_ids() -> list[str]:
    """Every registered tiny variant, in registration order."""
    return [env_id for env_id in textgym.env_ids() if is_tiny(env_id)]


def family_env_ids() -> list[str]:
    """One id per family: the registered ids without a size or difficulty variant."""
    return [
        i for i in textgym.env_ids() if "-Tiny" not in i and "-Easy" not in i and "-Hard" not in i
    ]


def registration_order(env_id: str) -> tuple[int, str]:
    """A sort key: registered ids in registration order, any other id after them by name."""
    order = {known: i for i, known in enumerate(textgym.env_ids())}
    return order.get(env_id, len(order)), env_id


def has_split(env_id: str) -> bool:
    """Whether the env's task takes ``split=`` (a held-out test set)."""
    task = gym.spec(env_id).kwargs.get("task")
    return task in TASKS and "split" in inspect.signature(TASKS[task]).parameters


def eval_split(env_id: str) -> str | None:
    """Where scores are measured: the held-out split, except on tiny variants.

    A tiny variant *is* its pool of problems: tabular agents memorise it and, by design,
    are at chance on unseen problems, so its scores are measured on the pool they learn.
    """
    if not has_split(env_id):
        return None
    return "train" if is_tiny(env_id) else "test"


def eval_env(env_id: str) -> gym.Env:
    """The env on the split its scores are measured on."""
    split = eval_split(env_id)
    return gym.make(env_id) if split is None else gym.make(env_id, split=split)


def train_env(env_id: str) -> gym.Env:
    """The env on its training split, when it has one."""
    return gym.make(env_id, split="train") if has_split(env_id) else gym.make(env_id)
