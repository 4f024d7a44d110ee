"""Tabular Q-learning (off-policy TD control; Watkins 1989) on the token-level MDP.

The update, after each step ``(s, a, r, s')``::

    Q(s, a) += alpha * (r + gamma * max_a' Q(s', a') - Q(s, a))

where the max runs over the actions allowed in ``s'``, and nothing is bootstrapped after a
terminated step. Acting (epsilon-greedy over the table), the exploration schedule, state
keys and checkpoints come from :class:`~agents.tabular.table.TabularAgent`, and it is used
like every tabular agent (:mod:`agents.tabular`; ``--algo qlearning`` in a run directory).
"""

from __future__ import annotations

from typing import Any

from agents.tabular.checkpoint import register_agent
from agents.tabular.table import TabularAgent

__all__ = ["QLearning"]


@register_agent
class QLearning(TabularAgent):
    """Tabular Q-learning (off-policy TD control; Watkins 1989).

    ``Q(s,a) += alpha * (r + gamma * max_a' Q(s',a') - Q(s,a))``, the max over the actions
    allowed in ``s'``; no bootstrap after ``terminated``. See :class:`TabularAgent` for the
    arguments.
    """

    algo = "qlearning"

    def _observe(self, reward: float, next_obs: Any, terminated: bool, truncated: bool) -> None:
        assert self._row is not None
        q = self._row[1]
        target = reward
        self._next = None
        if truncated:
            if self._bootstraps(truncated):
                # The episode ends here, so the next state is only looked up, never added.
                nxt = self.table.get(self.features(next_obs))
                target += self.gamma * (self.initial_q if nxt is None else float(nxt[1].max()))
        elif not terminated:
            self._next = self._row_for(next_obs)
            target += self.gamma * float(self._next[1].max())
        q[self._index] += self.learning_rate * (target - q[self._index])
