"""Every ``register()`` call in one place, and nothing else.

Ids are ``textgym/Name-vN``; variants of a family share the :class:`~textgym.core.TextEnv`
entry point and differ only by ``kwargs``. A behaviour change bumps the version.

``max_episode_steps`` is left unset on purpose: TextEnv truncates itself at ``max_length``
(each step adds at least one token), and a second limit from ``TimeLimit`` would silently cut
episodes short whenever a user raises ``max_length``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

ENTRY_POINT = "textgym.core:TextEnv"
VECTOR_ENTRY_POINT = "textgym.vector:TextVectorEnv"


@dataclass(frozen=True)
class EnvSpec:
    """A registered configuration: its id, task kwargs, and a line for ``textgym list``."""

    id: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    success: str = ""


ENV_SPECS: tuple[EnvSpec, ...] = (
    EnvSpec(
        "textgym/Copy-v0",
        {"task": "copy", "length": 3},
        "Repeat three words from a pool of ten.",
        "the turn equals the prompt's words",
    ),
    EnvSpec(
        "textgym/Copy-Tiny-v0",
        {"task": "copy", "length": 1, "n_words": 3},
        "Repeat one word from a pool of three (tabular-sized).",
        "the turn equals the prompt's word",
    ),
    EnvSpec(
        "textgym/Reasoning-v0",
        {"task": "reasoning"},
        "Arithmetic word problems, 2-3 steps, numbers up to 30; reason, then 'answer: N'.",
        "the last 'answer: N' equals the gold number",
    ),
    EnvSpec(
        "textgym/Reasoning-Easy-v0",
        {
            "task": "reasoning",
            "min_steps": 1,
            "max_steps": 2,
            "max_start": 9,
            "max_operand": 5,
            "max_value": 20,
            "operations": ("add", "sub"),
        },
        "Word problems, 1-2 steps of + and -, numbers up to 20.",
        "the last 'answer: N' equals the gold number",
    ),
    EnvSpec(
        "textgym/Reasoning-Hard-v0",
        {
            "task": "reasoning",
            "min_steps": 3,
            "max_steps": 5,
            "max_start": 20,
            "max_operand": 20,
            "max_factor": 5,
            "max_value": 200,
        },
        "Word problems, 3-5 steps of + - * /, numbers up to 200.",
        "the last 'answer: N' equals the gold number",
    ),
    EnvSpec(
        "textgym/Reasoning-Tiny-v0",
        {
            "task": "reasoning",
            "min_steps": 1,
            "max_steps": 1,
            "max_start": 9,
            "max_operand": 8,
            "max_value": 9,
            "operations": ("add", "sub"),
            "pool_size": 10,
            "cot": False,
            "bare_answer": True,
        },
        "One-step problems from a pool of 10, one-digit bare answers, masked to digits.",
        "the turn is the gold digit",
    ),
    EnvSpec(
        "textgym/CustomerService-v0",
        {"task": "customer_service"},
        "A customer with a hidden intent and slots; ask, then act e.g. '[refund order=1234 amount=50]'.",
        "the customer's case is resolved by the right action and slots, within policy",
    ),
    EnvSpec(
        "textgym/CustomerService-Hard-v0",
        {"task": "customer_service", "ambiguous_rate": 0.7, "patience": 4},
        "CustomerService with mostly vague openings and a customer who leaves after 4 turns.",
        "the customer's case is resolved by the right action and slots, within policy",
    ),
    EnvSpec(
        "textgym/CustomerService-Tiny-v0",
        {
            "task": "customer_service",
            "intents": ("refund", "order_status", "cancellation"),
            "ambiguous_rate": 0.5,
            "patience": 3,
            "max_amount": 180,
            "with_slots": False,
            "bare_actions": True,
        },
        "Three intents, no slots, one-word turns (help, refund, escalate, status, cancel...).",
        "the right action word, escalating refunds over the limit",
    ),
    EnvSpec(
        "textgym/Dialogue-v0",
        {"task": "dialogue"},
        "A user asks 2 questions on a topic; multi-objective reward (relevance, politeness, ...).",
        "the user leaves satisfied: every question answered, no rudeness",
    ),
    EnvSpec(
        "textgym/Dialogue-Hard-v0",
        {"task": "dialogue", "n_questions": 3, "patience": 1},
        "Dialogue with 3 questions and a user who tolerates one wasted turn.",
        "the user leaves satisfied: every question answered, no rudeness",
    ),
    EnvSpec(
        "textgym/Dialogue-Tiny-v0",
        {
            "task": "dialogue",
            "topics": ("basics",),
            "n_questions": 2,
            "patience": 1,
            "one_word": True,
        },
        "Two either-or questions ('is ice hot or cold?'), one-word answers, masked.",
        "both questions answered with the right word",
    ),
)


def register_envs() -> None:
    """Register every textgym id with Gymnasium (idempotent)."""
    for spec in ENV_SPECS:
        if spec.id in gym.registry:
            continue
        gym.register(
            id=spec.id,
            entry_point=ENTRY_POINT,
            vector_entry_point=VECTOR_ENTRY_POINT,
            kwargs=dict(spec.kwargs),
            # The MDP is a sequence of token steps; Gymnasium's order/passive checks stay on.
            disable_env_checker=False,
        )


def env_ids() -> list[str]:
    """All registered textgym ids, in registration order."""
    return [spec.id for spec in ENV_SPECS]


__all__ = ["ENTRY_POINT", "ENV_SPECS", "VECTOR_ENTRY_POINT", "EnvSpec", "env_ids", "register_envs"]
