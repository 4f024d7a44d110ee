"""Tasks: what an episode is about. ``TASKS`` maps registry names to task classes."""

from __future__ import annotations

import numpy as np

from textgym.tasks.base import Problem, Task, Turn
from textgym.tasks.copy import CopyTask
from textgym.tasks.customer_service import CustomerServiceTask
from textgym.tasks.dialogue import DialogueTask
from textgym.tasks.reasoning import ReasoningTask

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
    "ReasoningTask",
    "Problem",
    "Task",
    "Turn",
    "task_corpus",
]
