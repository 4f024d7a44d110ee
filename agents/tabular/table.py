"""The Q-table and epsilon-greedy acting that Q-learning and SARSA share.

:class:`TabularAgent` holds the table, chooses actions (epsilon-greedy while learning,
greedy for ``predict``), decays epsilon, and saves the table as flat arrays; a subclass
writes only its update rule, ``_observe`` (see :mod:`agents.tabular.qlearning` and
:mod:`agents.tabular.sarsa`).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from agents.tabular.base import EpisodicAgent
from agents.tabular.checkpoint import CheckpointError
from agents.tabular.checks import check_unit, reject_unknown
from agents.tabular.features import (
    FEATURES,
    ActionSets,
    EpsilonDecay,
    ExactContext,
    StateFeatures,
    check_epsilon_decay,
    epsilon_at,
    epsilon_greedy,
    fit_features,
    greedy,
    make_features,
)
from textgym.errors import ConfigError

__all__ = ["TabularAgent"]

#: A table row: the action ids allowed in the state, and their Q-values.
Row = tuple[np.ndarray, np.ndarray]


def learning_settings(source: Any, features: Any) -> dict[str, Any]:
    """The learning settings of a tabular agent, read off ``source`` (an agent or a
    :class:`~agents.tabular.run.TabularConfig`), with ``features`` as given."""
    return {
        "learning_rate": source.learning_rate,
        "gamma": source.gamma,
        "epsilon_start": source.epsilon_start,
        "epsilon_end": source.epsilon_end,
        "exploration_fraction": source.exploration_fraction,
        "epsilon_decay": source.epsilon_decay,
        "initial_q": source.initial_q,
        "features": features,
        "bootstrap_truncated": source.bootstrap_truncated,
    }


class TabularAgent(EpisodicAgent):
    """Epsilon-greedy tabular control over abstract states; see :class:`QLearning`, :class:`SARSA`.

    The table maps a state key to ``(actions, q)``: the token ids allowed in that state (from
    ``action_masks()`` on the first visit; all actions for an env without masks) and their
    Q-values. States are added on first visit; terminal states are never stored.

    Args:
        env: A gymnasium env (or registered id) with a ``Discrete`` action space.
        learning_rate: Step size alpha in (0, 1]. 1.0 is exact for deterministic tasks.
        gamma: Discount in [0, 1].
        epsilon_start: Exploration rate at the start of ``learn``.
        epsilon_end: Exploration rate after ``exploration_fraction`` of the budget.
        exploration_fraction: Fraction of ``total_timesteps`` over which epsilon decays.
        epsilon_decay: ``"linear"`` or ``"exponential"`` (geometric from start to end).
        initial_q: Q-value of untried state-action pairs. The default 0.5 is mildly
            optimistic for textgym's rewards (a success is worth about 1 per turn): above
            what stalling or wrong turns earn, so the greedy policy keeps trying untried
            tokens instead of settling for a small per-turn reward, and below a success, so
            it settles once it finds one. With 0, the greedy policy of the multi-turn tiny
            variants settles on stalling turns and learns far more slowly.
        features: State abstraction: ``"exact"`` (default), ``"prompt_last_k"``, a
            :class:`StateFeatures`, or a function ``obs -> key``.
        bootstrap_truncated: Whether a truncated step bootstraps from the next state.
            ``None`` (auto): not with ``"exact"`` features, yes with any other abstraction.
            An exact context contains the turn's length, so hitting ``max_new_tokens`` or
            ``max_length`` is a deterministic outcome of the state (the agent never acts in
            the truncated state, and bootstrapping would credit it with ``initial_q``); an
            abstraction that hides the length sees the limit as external, the usual case
            for bootstrapping.
        **kwargs: ``seed`` (exploration and the env's first reset), ``log_dir``,
            ``log_interval`` and ``tensorboard``: see :class:`EpisodicAgent`.

    Terminated steps never bootstrap.
    """

    def __init__(
        self,
        env: gym.Env | str | None,
        *,
        learning_rate: float = 0.5,
        gamma: float = 0.99,
        epsilon_start: float = 1.0,
        epsilon_end: float = 0.01,
        exploration_fraction: float = 0.3,
        epsilon_decay: EpsilonDecay = "linear",
        initial_q: float = 0.5,
        features: str | StateFeatures | Callable[[Any], Any] = "exact",
        bootstrap_truncated: bool | None = None,
        **kwargs: Any,
    ) -> None:
        # Names first, values after: a misspelt argument is reported as such.
        reject_unknown(type(self), kwargs)
        self.learning_rate = check_unit("learning_rate", learning_rate, low_open=True)
        self.gamma = check_unit("gamma", gamma)
        self.epsilon_start = check_unit("epsilon_start", epsilon_start)
        self.epsilon_end = check_unit("epsilon_end", epsilon_end)
        self.exploration_fraction = check_unit("exploration_fraction", exploration_fraction)
        check_epsilon_decay(epsilon_decay, epsilon_start, epsilon_end)
        self.epsilon_decay = epsilon_decay
        if (
            isinstance(initial_q, bool)
            or not isinstance(initial_q, (int, float, np.integer, np.floating))
            or not math.isfinite(initial_q)
        ):
            raise ConfigError(f"initial_q must be a finite number, got {initial_q!r}.")
        self.initial_q = float(initial_q)
        self.features = make_features(features)
        if bootstrap_truncated is not None and not isinstance(bootstrap_truncated, bool):
            raise ConfigError(
                f"bootstrap_truncated must be True, False or None, got {bootstrap_truncated!r}."
            )
        self.bootstrap_truncated = bootstrap_truncated
        #: state key -> (allowed action ids, their Q-values)
        self.table: dict[bytes, Row] = {}
        # Rows share their action-id arrays: one per distinct mask, not one per state.
        self._action_sets = ActionSets()
        # The row and action index of the last step taken (what ``_observe`` updates), and
        # the next state's row (and, for SARSA, its action) when the update looked them up.
        self._row: Row | None = None
        self._index = 0
        self._next: Row | None = None
        self._next_index: int | None = None
        super().__init__(env, **kwargs)

    def set_env(self, env: gym.Env | str) -> None:
        super().set_env(env)
        assert self.env is not None
        self.features = fit_features(self.features, self.env)

    def hyperparameters(self) -> dict[str, Any]:
        features = {"name": self.features.name, **self.features.config()}
        return {**super().hyperparameters(), **learning_settings(self, features)}

    @classmethod
    def _from_saved(cls, params: dict[str, Any]) -> dict[str, Any]:
        params = dict(params)
        spec = params.get("features")
        if isinstance(spec, dict):
            spec = dict(spec)
            name = spec.pop("name")
            if name == "custom":
                raise CheckpointError(
                    "This checkpoint was trained with a custom features function, which is not "
                    "saved; pass it again: load(path, features=my_function)."
                )
            params["features"] = FEATURES[name](**spec)
        return params

    # -- the table --------------------------------------------------------------------------

    def _row_for(self, obs: Any, mask: np.ndarray | None = None) -> Row:
        """The table row of ``obs``, created on first visit from the env's current mask."""
        key = self.features(obs)
        row = self.table.get(key)
        if row is None:
            if mask is None:
                mask = self._current_mask()
            if mask is None:
                mask = np.ones(self._action_count(), dtype=bool)
            actions = self._action_sets.of_mask(mask)
            row = (actions, np.full(len(actions), self.initial_q))
            self.table[key] = row
        return row

    def _bootstraps(self, truncated: bool) -> bool:
        if not truncated:
            return True
        if self.bootstrap_truncated is None:
            return not isinstance(self.features, ExactContext)
        return self.bootstrap_truncated

    def _exploration(self, progress: float) -> float:
        return epsilon_at(
            progress,
            self.epsilon_start,
            self.epsilon_end,
            self.exploration_fraction,
            self.epsilon_decay,
        )

    def _training_metrics(self) -> dict[str, float]:
        return {"tabular/states": float(len(self.table))}

    # -- acting -----------------------------------------------------------------------------

    def _policy(self, obs: Any, deterministic: bool, mask: np.ndarray | None) -> int:
        key = self.features(obs)
        row = self.table.get(key)
        if row is not None and mask is not None:
            ok = np.asarray(mask, dtype=bool)[row[0]]
            if not ok.all():
                row = (row[0], np.where(ok, row[1], -np.inf)) if ok.any() else None
        if row is None:
            # Nothing learned here (e.g. a held-out problem), so every allowed action is as
            # good as any other. Deterministic predictions pick one by a hash of the state:
            # reproducible across processes, and as good as chance over many states.
            if not deterministic:
                return self._random_allowed(mask)
            allowed = self._allowed(mask)
            return int(allowed[zlib.crc32(key) % len(allowed)])
        actions, q = row
        if deterministic:
            return int(actions[int(np.argmax(q))])
        return int(actions[greedy(self.rng, q)])

    def _episode_reset(self) -> None:
        self._next = None
        self._next_index = None

    def _act(self, obs: Any, epsilon: float) -> int:
        # The update of the previous step already looked up this state (and, for SARSA,
        # chose its action); reuse it instead of hashing the context again.
        row = self._next if self._next is not None else self._row_for(obs)
        i = (
            self._next_index
            if self._next_index is not None
            else epsilon_greedy(self.rng, row[1], epsilon)
        )
        self._row, self._index = row, i
        self._epsilon = epsilon
        return int(row[0][i])

    # -- checkpoints ------------------------------------------------------------------------

    def _arrays(self) -> dict[str, np.ndarray]:
        keys = list(self.table)
        rows = [self.table[k] for k in keys]
        key_lengths = np.fromiter((len(k) for k in keys), dtype=np.int64, count=len(keys))
        row_lengths = np.fromiter((len(a) for a, _ in rows), dtype=np.int64, count=len(rows))
        return {
            "keys": np.frombuffer(b"".join(keys), dtype=np.uint8),
            "key_offsets": np.concatenate(([0], np.cumsum(key_lengths))),
            "actions": np.concatenate([a for a, _ in rows]) if rows else np.zeros(0, np.int64),
            "q": np.concatenate([q for _, q in rows]) if rows else np.zeros(0),
            "row_offsets": np.concatenate(([0], np.cumsum(row_lengths))),
        }

    def _restore(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        raw = arrays["keys"].tobytes()
        ko, ro = arrays["key_offsets"], arrays["row_offsets"]
        actions_all, q_all = arrays["actions"].astype(np.int64), arrays["q"].astype(np.float64)
        if (
            len(ko) != len(ro)
            or ko[-1] != len(raw)
            or ro[-1] != len(actions_all)
            or len(q_all) != len(actions_all)
        ):
            raise ValueError("offsets and arrays disagree")
        self.table = {}
        for i in range(len(ko) - 1):
            shared = self._action_sets.shared(actions_all[ro[i] : ro[i + 1]])
            self.table[raw[ko[i] : ko[i + 1]]] = (shared, q_all[ro[i] : ro[i + 1]].copy())
