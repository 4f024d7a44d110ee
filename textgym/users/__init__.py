"""Responders: who answers the agent in multi-turn tasks.

* :mod:`~textgym.users.base` — the :class:`Responder` interface and :class:`Reply`;
* :mod:`~textgym.users.customer` — :class:`ScriptedCustomer` (CustomerService);
* :mod:`~textgym.users.scripted` — :class:`ScriptedUser` (Dialogue);
* :mod:`~textgym.users.lm` — :class:`LMResponder`, any causal LM as the user.
"""

from textgym.users.base import Reply, Responder
from textgym.users.lm import LMResponder

__all__ = ["LMResponder", "Reply", "Responder"]
