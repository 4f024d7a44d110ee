"""Responders: who answers the agent in multi-turn tasks."""

from textgym.users.base import Reply, Responder

__all__ = ["Reply", "Responder"]
