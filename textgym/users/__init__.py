"""Responders: who answers the agent in multi-turn tasks.

* :mod:`~textgym.users.base` — the :class:`Responder` interface and :class:`Reply`;
* :mod:`~textgym.users.lm` — :class:`LMResponder`, any causal LM as the user.

Each family's scripted user lives with its family: ``ScriptedUser`` in
:mod:`textgym.envs.dialogue.user` and ``ScriptedCustomer`` in
:mod:`textgym.envs.customer_service.customer` (also importable from their older paths,
:mod:`textgym.users.scripted` and :mod:`textgym.users.customer`).
"""

from textgym.types import Reply
from textgym.users.base import Responder
from textgym.users.lm import LMResponder

__all__ = ["LMResponder", "Reply", "Responder"]
