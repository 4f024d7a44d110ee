"""Evaluate any agent with an SB3-style ``predict`` on a textgym env, and score how well an
agent knows when to abstain (:func:`calibration`, :func:`abstention_threshold`)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from textgym.envs.external.answers import GradedCorrectness
from textgym.rewards.base import Reward
from textgym.rewards.verifiable import Correctness, is_abstention
from textgym.types import RewardContext, Turn


@dataclass(frozen=True)
class EvalResult:
    """Scores over ``episodes`` evaluation episodes."""

    success_rate: float
    mean_return: float
    std_return: float
    mean_length: float
    episodes: int

    def as_dict(self) -> dict[str, float]:
        """For loggers and JSON."""
        return asdict(self)


def evaluate_policy(
    agent: Any,
    env: gym.Env,
    n_episodes: int = 100,
    seed: int = 0,
    deterministic: bool = True,
) -> EvalResult:
    """Run ``n_episodes`` with ``agent.predict(obs, deterministic=...)`` and score them.

    Works with textgym agents and stable-baselines3 models alike: ``predict`` may return an
    action or an ``(action, state)`` pair, and agents whose ``predict`` takes
    ``action_masks`` (tabular agents, MaskablePPO) get the env's masks. Episode ``i`` is
    reset with ``seed + i``, so two evaluations with the same seed see the same problems.

    Raises:
        ValueError: ``n_episodes`` below 1 (there would be nothing to average).
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1 to score anything, got {n_episodes}.")
    takes_masks = "action_masks" in inspect.signature(agent.predict).parameters
    # The outermost action_masks() (a wrapper may remap the action space); an env without
    # one gets no masks.
    try:
        masks = env.get_wrapper_attr("action_masks") if takes_masks else None
    except AttributeError:
        masks = None
    returns, lengths, successes = [], [], []
    for i in range(n_episodes):
        obs, _ = env.reset(seed=seed + i)
        done, total, steps, info = False, 0.0, 0, {}
        while not done:
            kwargs: dict[str, Any] = {"deterministic": deterministic}
            if masks is not None:
                kwargs["action_masks"] = masks()
            out = agent.predict(obs, **kwargs)
            action = out[0] if isinstance(out, tuple) else out
            obs, reward, terminated, truncated, info = env.step(int(np.asarray(action).reshape(())))
            total += float(reward)
            steps += 1
            done = terminated or truncated
        returns.append(total)
        lengths.append(steps)
        successes.append(bool(info.get("success", False)))
    r = np.asarray(returns)
    return EvalResult(
        success_rate=float(np.mean(successes)),
        mean_return=float(r.mean()),
        std_return=float(r.std()),
        mean_length=float(np.mean(lengths)),
        episodes=n_episodes,
    )


class ScoredEpisode(Protocol):
    """What :func:`calibration` reads of an episode (:class:`agents.common.rollout.Episode`)."""

    turns: list[str]
    truncated: bool
    success: bool


@dataclass(frozen=True)
class Calibration:
    """How an agent answers where a wrong answer costs more than "I don't know".

    Attributes:
        episodes: Episodes scored.
        coverage: Share of episodes answered (not abstained). A missing, malformed or cut-off
            answer counts as answered (and wrong), as the reward scores it.
        selective_accuracy: Share of the answered episodes that are right (``None`` when
            every episode abstained).
        accuracy: Share of all episodes that are right (the success rate).
        abstention_rate: Share of episodes that abstained (``1 - coverage``).
        threshold: Abstaining earns more than answering when the agent's chance of being right
            is below this (:func:`abstention_threshold`).
    """

    episodes: int
    coverage: float
    selective_accuracy: float | None
    accuracy: float
    abstention_rate: float
    threshold: float

    def as_dict(self) -> dict[str, float | int | None]:
        """For loggers and JSON."""
        return asdict(self)


def calibration(episodes: Sequence[ScoredEpisode], threshold: float) -> Calibration:
    """Coverage and accuracies of ``episodes``, judged on each one's last agent turn.

    An episode abstains when its last turn says "I don't know" without an answer and was not
    cut off by a length limit: the rule of :func:`textgym.rewards.verifiable.turn_abstains`,
    so these shares match what the reward paid.

    Raises:
        ValueError: no episodes (there would be nothing to average).
    """
    if not episodes:
        raise ValueError("calibration needs at least one episode.")
    abstained = np.array(
        [bool(e.turns) and not e.truncated and is_abstention(e.turns[-1]) for e in episodes]
    )
    right = np.array([bool(e.success) for e in episodes])
    answered = int((~abstained).sum())
    return Calibration(
        episodes=len(episodes),
        coverage=float(answered / len(episodes)),
        selective_accuracy=float(right[~abstained].mean()) if answered else None,
        accuracy=float(right.mean()),
        abstention_rate=float(abstained.mean()),
        threshold=float(threshold),
    )


def _parts(reward: Reward) -> Iterator[Reward]:
    """``reward`` and every reward inside it (the terms of a sum, what a clip wraps)."""
    yield reward
    children = [r for r, _ in getattr(reward, "terms", {}).values()]
    inner = getattr(reward, "reward", None)  # Clip, Normalize: one wrapped reward
    for child in [*children, *([inner] if isinstance(inner, Reward) else [])]:
        yield from _parts(child)


def abstention_threshold(env: gym.Env, seed: int = 0) -> float | None:
    """The chance of being right below which the env's reward pays more for "I don't know".

    Read from the env's own reward, whole (format bonuses and weights included): it scores a
    right answer ``R``, a wrong one ``W`` and an abstention ``A`` to the problem of
    ``reset(seed=seed)``; answering with chance ``p`` of being right is worth
    ``p R + (1 - p) W``, which beats ``A`` when ``p > (A - W) / (R - W)``. For the Reasoning
    family's ``correctness + 0.1*format`` (+1, 0, -0.5, each +0.1 formatted) that is 1/3.

    Returns:
        The threshold, or ``None`` when the reward does not price abstention (it has no
        :class:`~textgym.rewards.verifiable.Correctness` term or a graded one such
        as reasoning-gym's ``score_answer``, or it does not order
        wrong < abstain < right).
    """
    env.reset(seed=seed)
    base = env.unwrapped
    reward = base.reward
    if not any(isinstance(part, (Correctness, GradedCorrectness)) for part in _parts(reward)):
        return None
    problem = base.problem
    gold = str(problem.answer)
    try:
        wrong = f"{float(gold) + 1:g}"
    except ValueError:
        wrong = f"not {gold}"

    def paid(text: str) -> float:
        ctx = RewardContext(
            problem=problem,
            turns=(Turn("user", problem.prompt), Turn("agent", text)),
            text=text,
            token_ids=np.zeros(0, dtype=np.int64),
        )
        return float(reward(ctx))

    r, a, w = paid(f"answer: {gold}"), paid("i don't know"), paid(f"answer: {wrong}")
    if not w < a < r:
        return None
    return (a - w) / (r - w)
