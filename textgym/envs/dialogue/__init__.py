"""Dialogue: answer a user's questions on a topic (the task, its scripted user, its topics)."""

from __future__ import annotations

from textgym.envs.dialogue.task import DialogueTask, dialogue_reward
from textgym.envs.dialogue.topics import TOPICS
from textgym.envs.dialogue.user import ScriptedUser

__all__ = ["TOPICS", "DialogueTask", "ScriptedUser", "dialogue_reward"]
