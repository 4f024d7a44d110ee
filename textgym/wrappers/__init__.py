"""Wrappers over a textgym env: other views of the same episode.

* :mod:`~textgym.wrappers.turn_level` — :class:`TurnLevel` and :class:`TurnLevelVector`,
  one whole agent turn per step (text or token ids), exact by construction.
"""

from __future__ import annotations

from textgym.wrappers.turn_level import TurnAction, TurnLevel, TurnLevelVector, TurnSpace

__all__ = ["TurnAction", "TurnLevel", "TurnLevelVector", "TurnSpace"]
