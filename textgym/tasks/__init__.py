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
from textgym.envs.external.dataset import DatasetTask
from textgym.envs.external.reasoning_gym import ReasoningGymTask
from textgym.envs.reasoning import ReasoningTask
from textgym.tasks.base import Task
from textgym.types import Problem, Turn

TASKS: dict[str, type[Task]] = {
    CopyTask.name: CopyTask,
    ReasoningTask.name: ReasoningTask,
    CustomerServiceTask.name: CustomerServiceTask,
    DialogueTask.name: DialogueTask,
    # Open-text tasks over external data; their libraries are imported when one is made.
    ReasoningGymTask.name: ReasoningGymTask,
    DatasetTask.name: DatasetTask,
}


def task_corpus() -> list[str]:
    """Every string the built-in tasks produce, for building the default tokenizer.

    Open-text tasks (external data, any characters) are left out: the closed vocabulary is
    not meant to spell them, and they have no data of their own to draw from.
    """
    rng = np.random.default_rng(0)
    texts: list[str] = []
    for cls in TASKS.values():
        if not cls.open_text:
            texts.extend(cls().corpus(rng))
    return texts


__all__ = [
    "TASKS",
    "CopyTask",
    "CustomerServiceTask",
    "DatasetTask",
    "DialogueTask",
    "ReasoningTask",
    "Problem",
    "ReasoningGymTask",
    "Task",
    "Turn",
    "task_corpus",
]
