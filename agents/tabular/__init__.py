"""Tabular Q-learning and SARSA on the token-level MDP, and the shell other non-LM learners use.

A state is a *key* computed from the token observation by a state abstraction
(:class:`StateFeatures`): by default the exact context so far (:class:`ExactContext`), so the
agent learns the true MDP of the task; :class:`PromptAndLastK` trades exactness for a smaller
table. The table stores, for each visited state, the Q-values of the actions allowed there
(``action_masks()``), never a row over the whole vocabulary: on a tiny variant a state has a
handful of actions, not ~500.

The API follows stable-baselines3::

    agent = QLearning("textgym/Copy-Tiny-v0", seed=0).learn(2_000)
    action, _ = agent.predict(obs, deterministic=True, action_masks=env.action_masks())
    agent.save("copy_q"); agent = QLearning.load("copy_q.safetensors")
    agent.evaluate(n_episodes=100)          # EvalResult(success_rate=..., mean_return=...)

From the command line, in a run directory like every learner's (:mod:`agents.tabular.run`)::

    textgym train --algo qlearning --env textgym/Copy-Tiny-v0 --total-timesteps 2000 \
        --seed 0 --run-dir runs/q                      # then: load("runs/q")

Checkpoints are the safetensors + JSON checkpoints every learner writes, which cannot run
code and whose header never decides where textgym writes (:mod:`agents.tabular.checkpoint`);
learning curves go through :class:`agents.common.Logger` under the keys every agent uses.

Layout, each module importing only those above it:

* :mod:`~agents.tabular.features`: state abstractions, the epsilon schedule and
  epsilon-greedy choice, action masks.
* :mod:`~agents.tabular.checks`: argument checks (ranges, env spaces, unknown names).
* :mod:`~agents.tabular.checkpoint`: the agent in a checkpoint, :func:`register_agent`, loading.
* :mod:`~agents.tabular.base`: :class:`EpisodicAgent`, the learn / predict / evaluate loop.
* :mod:`~agents.tabular.table`: :class:`TabularAgent`, the Q-table and epsilon-greedy acting.
* :mod:`~agents.tabular.qlearning`, :mod:`~agents.tabular.sarsa`: one update rule each.
* :mod:`~agents.tabular.run`: ``textgym train --algo qlearning|sarsa`` in a run directory.
  Not imported here: its config checks come from :mod:`agents.lm.config`, whose package
  imports transformers, which the agents themselves do not need.

Adding an algorithm takes one new file and one import line here:

1. ``agents/tabular/<name>.py`` with a class decorated ``@register_agent`` that sets a
   unique ``algo`` (the name checkpoints record) and subclasses either
   :class:`TabularAgent`, writing only ``_observe(reward, next_obs, terminated, truncated)``
   (update ``self._row[1][self._index]``, the Q-value of the step just taken; see
   ``qlearning.py``), or :class:`EpisodicAgent`, writing ``_act(obs, epsilon)``,
   ``_observe(...)`` and ``_policy(obs, deterministic, mask)``, plus ``_arrays`` /
   ``_restore`` / ``hyperparameters`` if it learns something to save (see
   :class:`agents.baselines.RandomAgent` for the smallest one). New hyper-parameters are
   keyword-only ``__init__`` arguments, the rest passed on with ``**kwargs`` (see
   ``TabularAgent.__init__``).
2. ``from agents.tabular.<name> import <Class>`` below, and the class in ``__all__``: the
   import is what registers it, so that :func:`load` can rebuild its checkpoints.
"""

from __future__ import annotations

from agents.tabular.base import EpisodicAgent, load
from agents.tabular.checkpoint import (
    CALLER_ONLY,
    CHECKPOINT_FORMAT,
    FORMAT_VERSION,
    CheckpointError,
    register_agent,
)
from agents.tabular.checks import MAX_SEED
from agents.tabular.features import (
    FEATURES,
    DiscreteObservation,
    ExactContext,
    PromptAndLastK,
    StateFeatures,
    make_features,
)
from agents.tabular.qlearning import QLearning
from agents.tabular.sarsa import SARSA
from agents.tabular.table import TabularAgent

__all__ = [
    "CALLER_ONLY",
    "CHECKPOINT_FORMAT",
    "FEATURES",
    "FORMAT_VERSION",
    "MAX_SEED",
    "SARSA",
    "CheckpointError",
    "DiscreteObservation",
    "EpisodicAgent",
    "ExactContext",
    "PromptAndLastK",
    "QLearning",
    "StateFeatures",
    "TabularAgent",
    "load",
    "make_features",
    "register_agent",
]
