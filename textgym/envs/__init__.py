"""The env families, one module or folder each: its task, scripted user, rewards and words.

* :mod:`~textgym.envs.copy` — Copy, the smallest task that exercises the whole core;
* :mod:`~textgym.envs.reasoning` — multistep arithmetic word problems;
* :mod:`~textgym.envs.dialogue` — a user's questions on a topic (task, user, topics);
* :mod:`~textgym.envs.customer_service` — a customer's hidden intent (task, customer,
  actions);
* :mod:`~textgym.envs.names` — the people the families name.

The registered ids are in :mod:`textgym.registration` and the docs table in
:mod:`textgym.tools.docs`; both are re-exported here, where they used to live.
"""

from __future__ import annotations

from textgym.registration import (
    ENTRY_POINT,
    ENV_SPECS,
    VECTOR_ENTRY_POINT,
    EnvSpec,
    env_ids,
    register_envs,
)
from textgym.tools.docs import TABLE_END, TABLE_START, markdown_table, write_table

__all__ = [
    "ENTRY_POINT",
    "ENV_SPECS",
    "TABLE_END",
    "TABLE_START",
    "VECTOR_ENTRY_POINT",
    "EnvSpec",
    "env_ids",
    "markdown_table",
    "register_envs",
    "write_table",
]
