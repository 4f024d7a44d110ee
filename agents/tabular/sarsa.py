"""Tabular SARSA (on-policy TD control; Rummery & Niranjan 1994) on the token-level MDP.

The update, after each step ``(s, a, r, s')``::

    Q(s, a) += alpha * (r + gamma * Q(s', a') - Q(s, a))

where ``a'`` is the action the epsilon-greedy policy takes next: chosen here, then taken
by the next step. Nothing is bootstrapped after a terminated step. Acting, the exploration
schedule, state keys and checkpoints come from :class:`~agents.tabular.table.TabularAgent`,
and it is used like every tabular agent (:mod:`agents.tabular`; ``--algo sarsa`` in a run
directory).
"""

from __future__ import annotations

from typing import Any

from agents.tabular.checkpoint import register_agent
from agents.tabular.features import epsilon_greedy
from agents.tabular.table import TabularAgent

__all__ = ["SARSA"]


@register_agent
class SARSA(TabularAgent):
    """Tabular SARSA (on-policy TD control; Rummery & Niranjan 1994).

    ``Q(s,a) += alpha * (r + gamma * Q(s',a') - Q(s,a))`` where ``a'`` is the action the
    epsilon-greedy policy takes next (chosen here and then taken). See :class:`TabularAgent`
    for the arguments.
    """

    algo = "sarsa"

    def _observe(self, reward: float, next_obs: Any, terminated: bool, truncated: bool) -> None:
        assert self._row is not None
        q = self._row[1]
        target = reward
        self._next, self._next_index = None, None
        if truncated:
            if self._bootstraps(truncated):
                # a' is never taken (the episode ends), so it is drawn from a row that is
                # looked up, not added.
                nxt = self.table.get(self.features(next_obs))
                if nxt is None:
                    target += self.gamma * self.initial_q
                else:
                    j = epsilon_greedy(self.rng, nxt[1], self._epsilon)
                    target += self.gamma * float(nxt[1][j])
        elif not terminated:
            nxt = self._row_for(next_obs)
            j = epsilon_greedy(self.rng, nxt[1], self._epsilon)
            target += self.gamma * float(nxt[1][j])
            self._next, self._next_index = nxt, j
        q[self._index] += self.learning_rate * (target - q[self._index])
