"""Every ``register()`` call in one place, and nothing else.

Ids are ``textgym/Name-vN``; variants of a family share the :class:`~textgym.core.TextEnv`
entry point and differ only by ``kwargs``. A behaviour change bumps the version.

``max_episode_steps`` is left unset on purpose: TextEnv truncates itself at ``max_length``
(each step adds at least one token), and a second limit from ``TimeLimit`` would silently cut
episodes short whenever a user raises ``max_length``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
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
    #: An argument ``gym.make`` needs beyond the id (``"data"`` for your rows), or ``""``.
    requires: str = ""


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
        "textgym/Reasoning-v1",
        {"task": "reasoning", "balance_answers": True},
        "Reasoning-v0 with balanced answers: every answer 1..30 equally likely (v0 favoured small ones).",
        "the last 'answer: N' equals the gold number",
    ),
    EnvSpec(
        "textgym/Reasoning-Easy-v1",
        {
            "task": "reasoning",
            "min_steps": 1,
            "max_steps": 2,
            "max_start": 20,
            "max_operand": 9,
            "max_value": 30,
            "operations": ("add", "sub"),
            "balance_answers": True,
        },
        "Word problems, 1-2 steps of + and -, numbers up to 30 (v0: 20), every answer equally likely.",
        "the last 'answer: N' equals the gold number",
    ),
    EnvSpec(
        "textgym/Reasoning-Hard-v1",
        {
            "task": "reasoning",
            "min_steps": 3,
            "max_steps": 5,
            "max_start": 20,
            "max_operand": 20,
            "max_factor": 5,
            "max_value": 200,
            "balance_answers": True,
        },
        "Reasoning-Hard-v0 with balanced answers: every answer 1..200 equally likely.",
        "the last 'answer: N' equals the gold number",
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
        "textgym/CustomerService-v1",
        {"task": "customer_service", "strict_actions": True},
        "CustomerService-v0 with final actions: a wrong action or wrong slots end the case unresolved.",
        "the first action taken is the right one with the right slots, within policy",
    ),
    EnvSpec(
        "textgym/CustomerService-Hard-v1",
        {"task": "customer_service", "ambiguous_rate": 0.7, "patience": 4, "strict_actions": True},
        "CustomerService-Hard-v0 with the final actions of CustomerService-v1.",
        "the first action taken is the right one with the right slots, within policy",
    ),
    EnvSpec(
        "textgym/CustomerService-Tiny-v1",
        {
            "task": "customer_service",
            "intents": ("refund", "order_status", "cancellation"),
            "ambiguous_rate": 0.5,
            "patience": 3,
            "max_amount": 180,
            "with_slots": False,
            "bare_actions": True,
            "strict_actions": True,
        },
        "CustomerService-Tiny-v0 with final actions: one wrong action word ends the case.",
        "the first action word is the right one, escalating refunds over the limit",
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
    EnvSpec(
        "textgym/Dialogue-v1",
        {"task": "dialogue", "judge": "strict", "attempts": 2},
        "Dialogue-v0 with a strict user: keyword lists, repeats and echoes are rejected.",
        "every question answered (judged strictly) within 2 attempts each, no rudeness",
    ),
    EnvSpec(
        "textgym/Dialogue-Hard-v1",
        {"task": "dialogue", "n_questions": 3, "patience": 1, "judge": "strict", "attempts": 2},
        "Dialogue-Hard-v0 with the strict user of Dialogue-v1.",
        "every question answered (judged strictly) within 2 attempts each, no rudeness",
    ),
    EnvSpec(
        "textgym/Dialogue-Tiny-v1",
        {
            "task": "dialogue",
            "topics": ("basics",),
            "n_questions": 2,
            "patience": 1,
            "one_word": True,
            "judge": "strict",
            "attempts": 2,
        },
        "Dialogue-Tiny-v0 with the strict user: exactly the right word, no repeats.",
        "both questions answered with exactly the right word",
    ),
    # -- tasks from external data (the `data` extra): reasoning-gym generators, your rows --
    EnvSpec(
        "textgym/ReasoningGym-v0",
        {"task": "reasoning_gym"},
        "Any reasoning-gym generator by name (dataset=, chain_sum by default), graded by its own score_answer; end with 'answer: X'.",
        "the generator's score_answer gives the answer 1.0",
    ),
    EnvSpec(
        "textgym/ReasoningGym-Arithmetic-v0",
        {
            "task": "reasoning_gym",
            "dataset": "products",
            "config": {"max_terms": 3, "max_digits": 3},
        },
        "reasoning-gym's products: multiply 2-3 numbers of up to 3 digits.",
        "the product is right",
    ),
    EnvSpec(
        "textgym/ReasoningGym-Lists-v0",
        {
            "task": "reasoning_gym",
            "dataset": "word_sequence_reversal",
            "config": {"min_words": 2, "max_words": 3},
            # Its score_answer pays the gold list plus extra words most of a point.
            "reward": "score_answer(partial=False) + 0.1*answer_format",
        },
        "reasoning-gym's word_sequence_reversal: list 2-3 words in reverse order.",
        "the words are listed in reverse order exactly",
    ),
    EnvSpec(
        "textgym/ReasoningGym-Lists-Abstain-v0",
        {
            "task": "reasoning_gym",
            "dataset": "word_sequence_reversal",
            "config": {"min_words": 2, "max_words": 3},
            "reward": "score_answer(wrong=-1.0, partial=False) + 0.1*answer_format",
        },
        "Lists-v0 where a wrong answer costs -1: 'I don't know' (0) pays below P(right) = 1/2.",
        "the words are listed in reverse order exactly",
    ),
    EnvSpec(
        "textgym/ReasoningGym-Algebra-v0",
        {"task": "reasoning_gym", "dataset": "simple_equations"},
        "reasoning-gym's simple_equations: solve a linear equation for its variable.",
        "the variable's value is right",
    ),
    EnvSpec(
        "textgym/ReasoningGym-Logic-v0",
        {"task": "reasoning_gym", "dataset": "knights_knaves"},
        "reasoning-gym's knights_knaves: who always tells the truth and who always lies.",
        "everyone's role is right",
    ),
    EnvSpec(
        "textgym/ReasoningGym-Strings-v0",
        {"task": "reasoning_gym", "dataset": "spell_backward"},
        "reasoning-gym's spell_backward: spell a word backwards.",
        "the word is spelt backwards exactly",
    ),
    EnvSpec(
        "textgym/ReasoningGym-Mix-v0",
        {
            "task": "reasoning_gym",
            "dataset": "composite",
            "config": {
                "datasets": [
                    {"name": "products", "weight": 2, "config": {"max_terms": 3, "max_digits": 3}},
                    {"name": "simple_equations", "weight": 2, "config": {}},
                    {"name": "knights_knaves", "weight": 1, "config": {}},
                    {"name": "spell_backward", "weight": 1, "config": {}},
                ]
            },
        },
        "The four kinds above mixed 2:2:1:1 by reasoning-gym's composite dataset.",
        "the member generator's score_answer gives the answer 1.0",
    ),
    EnvSpec(
        "textgym/Dataset-v0",
        {"task": "dataset"},
        "Your rows (data= JSONL/CSV/Parquet, list of dicts or datasets.Dataset): prompt -> 'answer: X', math by math-verify.",
        "the answer matches the gold one (math-verify for math, exact text otherwise)",
        requires="data",
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


def env_ids(standalone: bool = False) -> list[str]:
    """All registered textgym ids, in registration order; ``standalone``: only those that
    ``gym.make`` builds from the id alone (not ``textgym/Dataset-v0``, which needs
    ``data=``)."""
    return [spec.id for spec in ENV_SPECS if not (standalone and spec.requires)]


@contextlib.contextmanager
def old_versions_allowed() -> Iterator[None]:
    """Make superseded ids (``Dialogue-v0`` beside ``Dialogue-v1``) without Gymnasium's
    "out of date" notice, where they are made on purpose (listing, docs, comparisons)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is out of date", category=DeprecationWarning)
        yield


__all__ = [
    "ENTRY_POINT",
    "ENV_SPECS",
    "VECTOR_ENTRY_POINT",
    "EnvSpec",
    "env_ids",
    "old_versions_allowed",
    "register_envs",
]
