"""Evaluate any agent with an SB3-style ``predict`` on a textgym env."""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np


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
