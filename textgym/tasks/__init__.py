"""Tasks: what an episode is about.

The :class:`~textgym.tasks.base.Task` interface, the argument checks and train/test splits
the families share, and ``TASKS``, which maps registry names (``TextEnv(task="copy")``) to
the task classes. The families themselves live in :mod:`textgym.envs`.
"""

from __future__ import annotations

import numpy as np

from textgym.envs.copy import CopyTask
from textgym.envs.customer_service.task import CustomerServiceTask
from textgym.envs.dialogue.task import DialogueTask
from textgym.envs.reasoning import ReasoningTask
from textgym.tasks.base import Task
from textgym.types import Problem, Turn

TASKS: dict[str, type[Task]] = {
    CopyTask.name: CopyTask,
    ReasoningTask.name: ReasoningTask,
    CustomerServiceTask.name: CustomerServiceTask,
    DialogueTask.name: DialogueTask,
}


def task_corpus() -> list[str]:
    """Every string the built-in tasks produce, for building the default tokenizer."""
    rng = np.random.default_rng(0)
    texts: list[str] = []
    for cls in TASKS.values():
        texts.extend(cls().corpus(rng))
    return texts


__all__ = [
    "TASKS",
    "CopyTask",
    "CustomerServiceTask",
    "DialogueTask",
    "ReasoningTask",
    "Problem",
    "Task",
    "Turn",
    "task_corpus",
]
