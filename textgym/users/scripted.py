"""ScriptedUser, re-exported from the Dialogue family, :mod:`textgym.envs.dialogue.user`
(an older public path)."""

from __future__ import annotations

from textgym.envs.dialogue.user import ScriptedUser, user_lines

__all__ = ["ScriptedUser", "user_lines"]
