"""The random-policy baseline: uniform over the allowed tokens, with the tabular agents' API.

It is the floor every learner must clear. ``learn`` runs (and logs) random episodes, so its
curve sits on the same axes as the learners' in ``progress.csv``::

    baseline = RandomAgent("textgym/Copy-Tiny-v0", seed=0)
    baseline.evaluate(n_episodes=200).success_rate      # ~1/16 on Copy-Tiny
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.tabular import EpisodicAgent, register_agent

__all__ = ["RandomAgent"]


@register_agent
class RandomAgent(EpisodicAgent):
    """Picks a uniformly random allowed action (``action_masks()``; all actions without masks).

    ``deterministic=True`` does not make it greedy (there is nothing to be greedy about): it
    stays uniform, so ``evaluate`` measures the random policy.

    Its constructor is :class:`~agents.tabular.EpisodicAgent`'s:

    Args:
        env: A gymnasium env (or registered id) with a ``Discrete`` action space.
        seed: Seeds the agent's RNG and the env's first reset.
        log_dir: Directory for ``progress.csv`` / TensorBoard; ``None`` logs nothing.
        log_interval: Log training curves every this many timesteps.
        tensorboard: Passed to :class:`~agents.common.Logger`.
    """

    algo = "random"

    def _policy(self, obs: Any, deterministic: bool, mask: np.ndarray | None) -> int:
        return self._random_allowed(mask)

    def _act(self, obs: Any, epsilon: float) -> int:
        return self._random_allowed(self._current_mask())

    def _observe(self, reward: float, next_obs: Any, terminated: bool, truncated: bool) -> None:
        pass
