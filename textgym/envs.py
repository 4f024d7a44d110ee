"""Every ``register()`` call in one place.

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

from textgym.errors import ConfigError

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


TABLE_START = "<!-- env-table:start (generated by `textgym list --write <file>`) -->"
TABLE_END = "<!-- env-table:end -->"


def markdown_table(oracle_episodes: int = 20) -> str:
    """The README's environment table, built from the registry (never typed by hand).

    Columns: id, observation and action sizes, the per-turn token limit, episode length
    (agent turns and the token-step limit, plus the oracle's mean steps over
    ``oracle_episodes`` seeded episodes), and what success means.
    """
    rows = [
        "| Id | Observation | Action | Turn tokens | Episode length | Oracle steps | "
        "Success | Description |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for spec in ENV_SPECS:
        env = gym.make(spec.id).unwrapped
        steps = []
        for seed in range(oracle_episodes):
            env.reset(seed=seed)
            n, done = 0, False
            while not done:
                *_, terminated, truncated, _ = env.step(env.oracle_action())
                n, done = n + 1, terminated or truncated
            steps.append(n)
        turns = env.task.max_turns
        length = "1 turn" if turns == 1 else f"<= {turns} turns"
        rows.append(
            f"| `{spec.id}` | 2 x ({env.max_length},) | Discrete({env.vocab_size}) | "
            f"{env.max_new_tokens} | {length}, <= {env.max_length} steps | "
            f"{sum(steps) / len(steps):.1f} | {spec.success} | {spec.description} |"
        )
        env.close()
    return "\n".join(rows)


def write_table(path: str) -> None:
    """Replace the table between the markers in ``path`` with :func:`markdown_table`."""
    from pathlib import Path

    file = Path(path)
    text = file.read_text()
    if TABLE_START not in text or TABLE_END not in text:
        raise ConfigError(
            f"{path} has no table markers; add the lines\n{TABLE_START}\n{TABLE_END}\n"
            "where the table should go."
        )
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    file.write_text(f"{head}{TABLE_START}\n{markdown_table()}\n{TABLE_END}{tail}")


if __name__ == "__main__":
    # Kept for old instructions; the command is ``textgym list --write FILE`` (running a
    # module of a package that imports it makes Python print a RuntimeWarning).
    import sys

    from textgym.cli import main

    raise SystemExit(main(["list", *(sys.argv[1:] or ["--markdown"])]))
