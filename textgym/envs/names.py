"""The people the families name: the word problems' characters and the customers."""

from __future__ import annotations

MALE_NAMES = ("tom", "sam", "ben", "max", "leo", "jack", "noah", "paul")
FEMALE_NAMES = ("ann", "mia", "lily", "zoe", "emma", "lucy", "eva", "kate")

__all__ = ["FEMALE_NAMES", "MALE_NAMES"]
