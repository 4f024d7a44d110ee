"""Copy, re-exported from its family module :mod:`textgym.envs.copy` (an older public path)."""

from __future__ import annotations

from textgym.envs.copy import WORDS, CopyTask

__all__ = ["WORDS", "CopyTask"]
