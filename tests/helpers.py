"""What many test files need: reward contexts, an interrupted stdin, a directory locked by
another process, playing turns and episodes, a small multi-turn task.

Imported as ``from tests.helpers import ...``; nothing here is a test.
"""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from textgym import Problem, Reply, Responder, RewardContext, Task, TextEnv, Turn


def make_ctx(
    text: str,
    *,
    prompt: str = "copy: red",
    answer: str | None = "red",
    metadata: Mapping[str, Any] | None = None,
    earlier: Sequence[str] = (),
    truncated: bool = False,
) -> RewardContext:
    """A reward context for the agent turn ``text``.

    The turns are the prompt, then each ``earlier`` agent turn followed by a user's "go
    on", then ``text``; ``token_ids`` has one id per word of ``text``.
    """
    turns = [Turn("user", prompt)]
    for t in earlier:
        turns += [Turn("agent", t), Turn("user", "go on")]
    turns.append(Turn("agent", text))
    return RewardContext(
        problem=Problem(prompt=prompt, answer=answer, metadata=metadata or {}),
        turns=tuple(turns),
        text=text,
        token_ids=np.arange(len(text.split()), dtype=np.int64),
        turn_index=len(earlier),
        truncated=truncated,
    )


class InterruptAfter(io.StringIO):
    """stdin that gives its lines, then raises KeyboardInterrupt (Ctrl-C while typing)."""

    def readline(self, *args: object) -> str:  # type: ignore[override]
        line = super().readline()
        if not line:
            raise KeyboardInterrupt
        return line


@contextmanager
def locked_by_another_process(directory: Path) -> Iterator[int]:
    """While inside, another process holds ``directory``'s :class:`DirectoryLock`: yields
    that process's pid."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from textgym.files import DirectoryLock; "
         f"lock = DirectoryLock({str(directory)!r}).acquire(); print('locked', flush=True); "
         "sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        cwd=Path(__file__).parents[1],
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield holder.pid
    finally:
        holder.communicate("", timeout=30)


# -- playing an env ----------------------------------------------------------------------


def say(env: TextEnv, text: str) -> tuple[float, bool, dict[str, Any]]:
    """Write one agent turn, token by token: (its reward, whether the episode is over, the
    turn end's info)."""
    total = 0.0
    for tok in env.encode_turn(text):
        _, r, term, trunc, info = env.step(tok)
        total += r
        if "turn_text" in info:
            return total, term or trunc, info
    raise AssertionError(f"the turn {text!r} did not close")


def run_oracle(env: gym.Env, seed: int | None = None) -> tuple[float, dict[str, Any]]:
    """Reset with ``seed`` and let the oracle play the episode: (return, last info)."""
    env.reset(seed=seed)
    total, done, info = 0.0, False, {}
    while not done:
        _, r, terminated, truncated, info = env.step(env.unwrapped.oracle_action())
        total += float(r)
        done = terminated or truncated
    return total, info


def oracle_success_rate(env_id: str, episodes: int, split: str = "test") -> float:
    """The oracle's success rate on ``episodes`` seeded episodes of ``split``."""
    env = gym.make(env_id, split=split)
    return sum(run_oracle(env, seed)[1]["success"] for seed in range(episodes)) / episodes


def random_success_rate(env_id: str, episodes: int) -> float:
    """The success rate of uniformly random allowed tokens (``action_masks()``)."""
    env = gym.make(env_id).unwrapped
    rng = np.random.default_rng(0)
    wins = 0
    for seed in range(episodes):
        env.reset(seed=seed)
        allowed = np.flatnonzero(env.action_masks())
        done, info = False, {}
        while not done:
            _, _, term, trunc, info = env.step(int(rng.choice(allowed)))
            done = term or trunc
        wins += info["success"]
    return wins / episodes


def problems(env_id: str, n: int, split: str = "train") -> list[Problem]:
    """The problems of ``n`` seeded resets of ``env_id`` on ``split``."""
    env = gym.make(env_id, split=split).unwrapped
    found = []
    for seed in range(n):
        env.reset(seed=seed)
        found.append(env.problem)
    return found


def assert_splits_disjoint(env_id: str, n: int) -> dict[str, list[Problem]]:
    """Check that ``n`` problems of each split are labelled with it and share no id."""
    drawn = {split: problems(env_id, n, split) for split in ("train", "test")}
    ids = {}
    for split, probs in drawn.items():
        assert {p.metadata["split"] for p in probs} == {split}
        ids[split] = {p.id for p in probs}
    assert ids["train"] and ids["test"] and not ids["train"] & ids["test"]
    return drawn


# -- a small multi-turn task -------------------------------------------------------------


class WordsResponder(Responder):
    """Replies with one to three words (so contexts grow by uneven blocks) for two turns,
    then ends the dialogue after the agent's third."""

    def reset(self, problem: Problem, rng: np.random.Generator) -> None:
        self.rng = rng

    def respond(self, turns: Sequence[Turn]) -> Reply:
        words = " ".join(["red", "blue", "green"][: 1 + int(self.rng.integers(3))])
        return Reply(f"say {words} please", done=sum(t.role == "agent" for t in turns) >= 3)


class ChatTask(Task):
    """A three-turn task with a scripted user: the LM sampler sees prefills, single tokens
    and multi-token blocks (the user's replies)."""

    name = "chat_test"
    max_length = 96
    max_new_tokens = 6

    def sample(self, rng: np.random.Generator) -> Problem:
        return Problem(prompt="copy: red blue", answer="red blue")

    def default_reward(self):  # noqa: ANN201 - a plain function is a reward
        return lambda ctx: float(ctx.text.strip() == "red")

    def success(self, ctx: RewardContext) -> bool:
        return False

    def oracle(self, problem: Problem, turns: Sequence[Turn]) -> str:
        return "red"

    def responder(self) -> Responder:
        return WordsResponder()
