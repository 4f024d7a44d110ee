"""The terminal rater: show turns, read scores or preferences, log each one as it is given.

:class:`Rater` re-prompts on bad input and appends every rating to a
:class:`~textgym.feedback.log.RatingLog` before it returns; :func:`run_session` rates a stream
of samples and skips those the log already holds, so a killed session resumes where it
stopped; :class:`HumanReward` puts a person in the env's reward slot.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterable
from typing import IO, Any

import numpy as np

from textgym.errors import ConfigError
from textgym.feedback.checks import check_int
from textgym.feedback.log import PREFERENCE, SCORE, Closing, Rating, RatingLog, read_ratings
from textgym.feedback.samples import sample_id
from textgym.rewards.base import Reward, RewardContext
from textgym.rewards.models import conversation_before


class StopRating(Exception):
    """The rater typed ``q`` or closed the input: end the session."""


class Rater(Closing):
    """Shows turns in a terminal and reads scores or preferences, re-prompting on bad input.

    Args:
        log: Where ratings go (a :class:`RatingLog` or a path).
        scale: Inclusive score range.
        input, output: Streams (stdin and stdout by default).
    """

    def __init__(
        self,
        log: RatingLog | str | os.PathLike[str],
        *,
        scale: tuple[float, float] = (1.0, 5.0),
        input: IO[str] | None = None,
        output: IO[str] | None = None,
    ) -> None:
        lo, hi = float(scale[0]), float(scale[1])
        # Checked before the log is touched: a bad scale leaves no file behind.
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ConfigError(
                f"The scale (--scale LOW HIGH) must be two finite numbers with LOW < HIGH, "
                f"got {tuple(scale)}."
            )
        self.scale = (lo, hi)
        self.log = log if isinstance(log, RatingLog) else RatingLog(log)
        self.input = input or sys.stdin
        self.output = output or sys.stdout

    def close(self) -> None:
        """Close the log (nothing stays open between ratings; kept for symmetry)."""
        self.log.close()

    def _say(self, text: str) -> None:
        self.output.write(text)
        self.output.flush()

    def _ask(self, prompt: str) -> str:
        self._say(prompt)
        line = self.input.readline()
        if line == "":
            raise StopRating("end of input")
        answer = line.strip().lower()
        if answer in ("q", "quit", "exit"):
            raise StopRating("quit")
        return answer

    def rate_score(self, context: str, text: str, sample_id: str = "") -> Rating | None:
        """Show one turn, read a score, log it. ``None`` if skipped.

        Raises:
            StopRating: the rater quit or the input ended.
        """
        lo, hi = self.scale
        self._say(f"\n--- context ---\n{context}\n--- turn ---\n{text}\n")
        while True:
            answer = self._ask(f"score {lo:g}-{hi:g} (s skip, q quit): ")
            if answer in ("s", "skip"):
                return None
            try:
                score = float(answer)
            except ValueError:
                self._say(f"  {answer!r} is not a number; type a score from {lo:g} to {hi:g}.\n")
                continue
            if not (np.isfinite(score) and lo <= score <= hi):
                self._say(f"  {answer} is outside {lo:g}-{hi:g}; try again.\n")
                continue
            return self._log(SCORE, context, sample_id, text=text, score=score)

    def rate_preference(self, context: str, a: str, b: str, sample_id: str = "") -> Rating | None:
        """Show two turns, read which is better (``a``, ``b`` or ``=``), log it."""
        self._say(f"\n--- context ---\n{context}\n--- A ---\n{a}\n--- B ---\n{b}\n")
        while True:
            answer = self._ask("better: a / b / = (tie), s skip, q quit: ")
            if answer in ("s", "skip"):
                return None
            winner = {"a": "a", "1": "a", "b": "b", "2": "b", "=": "tie", "tie": "tie"}.get(answer)
            if winner is None:
                self._say(f"  {answer!r}: type a, b or = (tie).\n")
                continue
            return self._log(PREFERENCE, context, sample_id, a=a, b=b, winner=winner)

    def _log(self, kind: str, context: str, sample_id: str, **answer: Any) -> Rating:
        """One rating on this scale, stamped now, appended durably before it is returned."""
        rating = Rating(kind, context, sample_id, scale=self.scale, time=time.time(), **answer)
        self.log.append(rating)
        return rating


class HumanReward(Reward, Closing):
    """A person scores each turn in the terminal as the env runs (``reward=HumanReward(...)``).

    The score is mapped to ``[0, 1]``; a skipped turn scores ``skip_value``. Every rating is
    also logged, so the session doubles as reward-model training data.
    """

    name = "human"

    def __init__(
        self,
        log: str | os.PathLike[str],
        *,
        scale: tuple[float, float] = (1.0, 5.0),
        skip_value: float = 0.5,
        input: IO[str] | None = None,
        output: IO[str] | None = None,
    ) -> None:
        self.rater = Rater(log, scale=scale, input=input, output=output)
        self.skip_value = skip_value

    def __call__(self, ctx: RewardContext) -> float:
        context = conversation_before(ctx)
        rating = self.rater.rate_score(context, ctx.text, sample_id=sample_id(context, ctx.text))
        return self.skip_value if rating is None else rating.target

    def close(self) -> None:
        """Close the rater's log (a no-op today: each rating opens and closes it)."""
        self.rater.close()


def run_session(
    samples: Iterable[dict[str, str]],
    rater: Rater,
    mode: str = SCORE,
    limit: int | None = None,
) -> int:
    """Rate ``samples`` until they run out, ``limit`` ratings are logged, or the rater quits.

    Samples already in the log (by :func:`sample_id`) are skipped, so a killed session
    resumes where it stopped. Returns the number of ratings logged.
    """
    if mode not in (SCORE, PREFERENCE):
        raise ConfigError(f"mode (--mode) must be 'score' or 'preference', got {mode!r}.")
    if limit is not None:
        check_int("limit (--limit)", limit, 0)
    done = {r.sample_id for r in read_ratings(rater.log.path)} if rater.log.path.exists() else set()
    logged = 0
    try:
        for number, s in enumerate(samples, 1):
            if limit is not None and logged >= limit:
                break
            if mode == SCORE:
                text = s.get("text", s.get("a"))
                sid = sample_id(s["context"], text)
                if sid not in done and rater.rate_score(s["context"], text, sid):
                    logged += 1
            else:
                if "a" not in s or "b" not in s:
                    raise ConfigError(
                        f"Preference mode needs samples with 'a' and 'b'; sample {number} has "
                        f"{sorted(s)}. Use --mode score, or samples with both turns."
                    )
                sid = sample_id(s["context"], s["a"], s["b"])
                if sid not in done and rater.rate_preference(s["context"], s["a"], s["b"], sid):
                    logged += 1
    except StopRating:
        pass
    finally:
        # Also after Ctrl-C or an error: every rating counted here is already on disk.
        rater._say(f"\n{logged} rating(s) logged to {rater.log.path}\n")
    return logged
