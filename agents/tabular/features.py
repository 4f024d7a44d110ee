"""What tabular learners share besides the loop: state keys, exploration, action masks.

* **State abstractions** (:class:`StateFeatures`) turn an observation into a hashable key:
  :class:`ExactContext` (the true state of the token-level MDP, the default),
  :class:`PromptAndLastK` (smaller, aliases states), :class:`DiscreteObservation` (for
  ``Discrete`` envs such as FrozenLake), or any function ``obs -> key``.
* **Exploration**: the epsilon schedule (linear or geometric decay over a fraction of the
  budget) and epsilon-greedy choice over one state's Q-values.
* **Action masks**: the env's ``action_masks()``, the allowed ids of a mask, and
  :class:`ActionSets`, which keeps one action-id array per distinct mask.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from textgym.errors import ConfigError, did_you_mean

__all__ = [
    "FEATURES",
    "ActionSets",
    "DiscreteObservation",
    "EpsilonDecay",
    "ExactContext",
    "PromptAndLastK",
    "StateFeatures",
    "action_mask_fn",
    "allowed_actions",
    "check_epsilon_decay",
    "epsilon_at",
    "epsilon_greedy",
    "fit_features",
    "greedy",
    "make_features",
]

# -- state abstractions -------------------------------------------------------------------


class StateFeatures(abc.ABC):
    """Maps an observation to a hashable state key (``bytes``, so tables can be saved).

    Subclasses set :attr:`name`, implement :meth:`__call__`, and return their constructor
    arguments from :meth:`config` so a checkpoint can rebuild them.
    """

    name: ClassVar[str]

    def bind(self, env: gym.Env) -> None:  # noqa: B027 - optional hook
        """Read what the abstraction needs from the env (e.g. the end-of-turn id)."""

    @abc.abstractmethod
    def __call__(self, obs: Any) -> bytes:
        """The state key of ``obs``."""

    def config(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def _context(obs: Any) -> np.ndarray:
    """The unpadded context ids of a textgym observation (the env right-pads)."""
    ids = obs["input_ids"]
    n = int(np.count_nonzero(obs["attention_mask"]))
    # Float ids (e.g. from a VecEnv or SB3 buffer) are cast back, so keys do not depend on dtype.
    return np.asarray(ids[:n], dtype=np.int64)


class ExactContext(StateFeatures):
    """The whole context so far: the true state of the token-level MDP (the default)."""

    name = "exact"

    def __call__(self, obs: Any) -> bytes:
        return _context(obs).tobytes()


class PromptAndLastK(StateFeatures):
    """The prompt (the context up to the first end-of-turn token) plus the last ``k`` tokens.

    Smaller than the exact context on long turns, at the price of aliasing states that
    differ only earlier in the conversation: on Copy-Tiny, ``k=1`` cannot tell "green" from
    "red green" (so whether to end the turn is ambiguous) while ``k=2`` can; on a
    multi-turn task the last few tokens may not show which question is being answered.

    Args:
        k: Context tokens kept from the end (>= 1).
        eot_id: The end-of-turn token id; read from the env by :meth:`bind` when ``None``.
    """

    name = "prompt_last_k"

    def __init__(self, k: int = 2, eot_id: int | None = None) -> None:
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"PromptAndLastK needs k >= 1 (an int), got {k!r}.")
        self.k = k
        self.eot_id = eot_id

    def bind(self, env: gym.Env) -> None:
        if self.eot_id is None:
            chat = getattr(env.unwrapped, "chat", None)
            if chat is None:
                raise TypeError(
                    "PromptAndLastK needs a textgym env (to find the end-of-turn token); pass "
                    "eot_id=... explicitly for other envs."
                )
            self.eot_id = int(chat.eot_id)

    def __call__(self, obs: Any) -> bytes:
        if self.eot_id is None:
            raise RuntimeError("PromptAndLastK is not bound to an env; call bind(env) first.")
        ctx = _context(obs)
        ends = np.flatnonzero(ctx == self.eot_id)
        prompt = ctx[: ends[0]] if len(ends) else ctx
        # The prompt's length comes first so that (prompt, tail) pairs cannot collide.
        return np.concatenate(([len(prompt)], prompt, ctx[-self.k :])).tobytes()

    def config(self) -> dict[str, Any]:
        return {"k": self.k, "eot_id": self.eot_id}


class DiscreteObservation(StateFeatures):
    """The observation itself, for envs with a ``Discrete`` observation space (FrozenLake...)."""

    name = "discrete"

    def __call__(self, obs: Any) -> bytes:
        return int(obs).to_bytes(8, "little", signed=True)


class _CustomFeatures(StateFeatures):
    """Wraps a user function; its results are turned into bytes keys."""

    name = "custom"

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def __call__(self, obs: Any) -> bytes:
        key = self.fn(obs)
        if isinstance(key, bytes):
            return key
        if isinstance(key, str):
            return key.encode()
        if isinstance(key, (int, np.integer)):
            return int(key).to_bytes(8, "little", signed=True)
        try:
            return np.asarray(key, dtype=np.int64).tobytes()
        except (TypeError, ValueError):
            raise TypeError(
                f"The features function returned {type(key).__name__} {key!r}; state keys must "
                "be bytes, str, an int, or a sequence of ints (e.g. a tuple of token ids)."
            ) from None

    def __repr__(self) -> str:
        return f"custom({getattr(self.fn, '__name__', self.fn)!r})"


#: Built-in state abstractions by name (``features="exact"``).
FEATURES: dict[str, type[StateFeatures]] = {
    cls.name: cls for cls in (ExactContext, PromptAndLastK, DiscreteObservation)
}


def make_features(features: str | StateFeatures | Callable[[Any], Any]) -> StateFeatures:
    """A state abstraction from a name, an instance, or a function ``obs -> key``."""
    if isinstance(features, StateFeatures):
        return features
    if isinstance(features, str):
        if features not in FEATURES:
            hint = did_you_mean(features, FEATURES)
            raise ValueError(
                f"Unknown features {features!r}.{hint} Built-ins: {sorted(FEATURES)}; or pass a "
                "StateFeatures instance (e.g. PromptAndLastK(k=3)) or a function obs -> key."
            )
        return FEATURES[features]()
    if callable(features):
        return _CustomFeatures(features)
    raise TypeError(
        f"features must be a name, a StateFeatures, or a function obs -> key; got "
        f"{type(features).__name__}."
    )


def fit_features(features: StateFeatures, env: gym.Env) -> StateFeatures:
    """``features`` bound to ``env``; the exact context of a ``Discrete`` env is its observation.

    Raises:
        TypeError: token features (``"exact"``, ``"prompt_last_k"``) on an env whose
            observations are not textgym's token dicts.
    """
    space = env.observation_space
    if isinstance(features, ExactContext | PromptAndLastK) and not (
        isinstance(space, spaces.Dict) and {"input_ids", "attention_mask"} <= set(space.spaces)
    ):
        if isinstance(space, spaces.Discrete) and isinstance(features, ExactContext):
            features = DiscreteObservation()
        else:
            raise TypeError(
                f"features={features.name!r} reads textgym token observations (a Dict "
                f"with input_ids and attention_mask), but the env observes {space}. Pass "
                "features=<function obs -> key> for other observation spaces."
            )
    features.bind(env)
    return features


# -- exploration --------------------------------------------------------------------------

EpsilonDecay = Literal["linear", "exponential"]


def check_epsilon_decay(decay: Any, start: float, end: float) -> None:
    """Refuse an unknown decay, or a geometric one that would have to reach 0."""
    if decay not in ("linear", "exponential"):
        raise ConfigError(f"epsilon_decay must be 'linear' or 'exponential', got {decay!r}.")
    if decay == "exponential" and min(start, end) <= 0:
        raise ConfigError(
            "epsilon_decay='exponential' interpolates geometrically, so epsilon_start and "
            f"epsilon_end must be > 0 (got {start}, {end}); use 'linear' to decay to 0."
        )


def epsilon_at(
    progress: float, start: float, end: float, fraction: float, decay: EpsilonDecay
) -> float:
    """Epsilon after ``progress`` (in [0, 1]) of a budget, reaching ``end`` at ``fraction``."""
    frac = min(1.0, progress / fraction) if fraction else 1.0
    if decay == "linear":
        return start + frac * (end - start)
    return start * (end / start) ** frac


def greedy(rng: np.random.Generator, q: np.ndarray) -> int:
    """Argmax with random tie-breaking, so untried actions are not always the first id."""
    best = q.max()
    ties = np.flatnonzero(q == best)
    return int(ties[0]) if len(ties) == 1 else int(ties[rng.integers(len(ties))])


def epsilon_greedy(rng: np.random.Generator, q: np.ndarray, epsilon: float) -> int:
    """A uniformly random index with probability ``epsilon``, else :func:`greedy`."""
    if epsilon > 0.0 and rng.random() < epsilon:
        return int(rng.integers(len(q)))
    return greedy(rng, q)


# -- action masks -------------------------------------------------------------------------


def action_mask_fn(env: gym.Env) -> Callable[[], np.ndarray] | None:
    """The env's ``action_masks`` method (through wrappers), or ``None`` if it has none."""
    try:
        return env.get_wrapper_attr("action_masks")
    except AttributeError:
        return None


def allowed_actions(mask: np.ndarray | None, n_actions: Callable[[], int]) -> np.ndarray:
    """The ids ``mask`` allows; every id below ``n_actions()`` without a mask.

    Raises:
        ValueError: the mask allows nothing.
    """
    allowed = np.arange(n_actions()) if mask is None else np.flatnonzero(mask)
    if len(allowed) == 0:
        raise ValueError("action_masks allows no action; at least one must be True.")
    return allowed


class ActionSets:
    """One read-only action-id array per distinct mask, shared by every state that has it
    (a table over many states with the same mask stores its ids once)."""

    def __init__(self) -> None:
        # Two maps, as their keys differ in kind: a packed mask could equal the bytes of
        # some id array read from a checkpoint.
        self._by_mask: dict[bytes, np.ndarray] = {}
        self._by_ids: dict[bytes, np.ndarray] = {}

    def of_mask(self, mask: np.ndarray) -> np.ndarray:
        """The allowed ids of a boolean mask."""
        mask_key = np.packbits(mask).tobytes()
        actions = self._by_mask.get(mask_key)
        if actions is None:
            actions = np.flatnonzero(mask).astype(np.int64)
            if len(actions) == 0:
                raise ValueError("action_masks() allows no action; at least one must be True.")
            actions.flags.writeable = False
            self._by_mask[mask_key] = actions
        return actions

    def shared(self, actions: np.ndarray) -> np.ndarray:
        """``actions`` (ids read from a checkpoint), or the equal array already held."""
        return self._by_ids.setdefault(actions.tobytes(), actions)
