"""Wrappers over a textgym env: other views of the same episode.

* :mod:`~textgym.wrappers.turn_level` — :class:`TurnLevel` and :class:`TurnLevelVector`,
  one whole agent turn per step (text or token ids), exact by construction.
* :mod:`~textgym.wrappers.allowed` — :class:`AllowedTokens` (the action space is the
  tokens the task allows) and :class:`MaskInObservation` (the action mask as an
  observation key), for learners and libraries that cannot read ``action_masks()``.
"""

from __future__ import annotations

from textgym.wrappers.allowed import AllowedTokens, MaskInObservation
from textgym.wrappers.turn_level import TurnAction, TurnLevel, TurnLevelVector, TurnSpace

__all__ = [
    "AllowedTokens",
    "MaskInObservation",
    "TurnAction",
    "TurnLevel",
    "TurnLevelVector",
    "TurnSpace",
]
