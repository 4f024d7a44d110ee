"""The tokens a task allows, for every library: as the action space, or in the observation.

A textgym env acts in ``Discrete(V)`` over the whole vocabulary and tells which tokens the
task needs through ``action_masks()``. Learners that read the mask (sb3-contrib's
MaskablePPO, the tabular agents) do well there; learners that cannot (PPO, A2C, DQN, QRDQN,
RecurrentPPO, CleanRL-style loops, most Tianshou and TorchRL policies) explore blindly among
~2,000 tokens and practically never find a sparse reward. :class:`AllowedTokens` gives them
the restriction as the action space itself: ``Discrete(k)``, action ``i`` being the ``i``-th
allowed token id.

Why the wrapper is its own ``unwrapped``: it changes the interface of the MDP (the action
set), not just what flows through it, and some libraries read the interface from
``env.unwrapped`` rather than from the outermost wrapper (Tianshou's ``DummyEnvWorker``
answers ``action_space``, ``observation_space``, ``metadata`` and ``spec`` from
``env.unwrapped``). So, like a compatibility env that holds another env, it presents itself
as the base env: ``env.unwrapped`` is the wrapper, with the shrunken action space and a
step that takes its actions; every other attribute is read from the env underneath
(``env.unwrapped.tokenizer``, ``.task``, ``.messages()``...), and :attr:`base_env` is the
``TextEnv`` itself.

:class:`MaskInObservation` puts the mask into the observation instead (or as well), for
libraries that read masks from there; it presents itself as the base env the same way.
"""

from __future__ import annotations

import numbers
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import RecordConstructorArgs

from textgym.episode import InputError, InputTypeError
from textgym.errors import ConfigError, ConfigTypeError
from textgym.tasks.checks import describe


class PresentsAsBase:
    """Mixin for a wrapper that changes an env's interface: it is its own ``unwrapped``.

    Put it first among the bases of a ``gym.Wrapper`` subclass. Public attributes the
    wrapper does not define are read from the env below (``env.unwrapped.tokenizer`` keeps
    working); :attr:`base_env` reaches the env under every such wrapper.
    """

    env: gym.Env

    @property
    def unwrapped(self) -> gym.Env:
        """This wrapper: the env whose spaces and step a learner sees (see the module doc)."""
        return self  # type: ignore[return-value]

    @property
    def base_env(self) -> gym.Env:
        """The env under every interface-changing wrapper (a ``TextEnv`` for textgym ids)."""
        below = self.env.unwrapped
        return below.base_env if isinstance(below, PresentsAsBase) else below

    @property
    def _np_random(self) -> np.random.Generator | None:
        # Gymnasium's check_env reads the RNG at ``env.unwrapped._np_random``; a plain
        # Wrapper refuses that name, so it is answered from the env below.
        return self.env.unwrapped._np_random

    def __getattr__(self, name: str) -> Any:
        # Only public names: private and dunder lookups (pickle's __setstate__, copy's
        # __deepcopy__) must fail normally, also on a half-built object without ``env``.
        env = self.__dict__.get("env")
        if name.startswith("_") or env is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        try:
            return getattr(env.unwrapped, name)
        except AttributeError:
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {name!r}, and neither has "
                f"the env it wraps ({type(env.unwrapped).__name__})."
            ) from None


def check_index(action: Any, n: int, what: str) -> int:
    """``action`` as an int in ``[0, n)``, or a Gymnasium-style error naming the range.

    Accepts a Python or numpy integer, or an integer array of one element (shape ``()`` or
    ``(1,)``), as Gymnasium's ``Discrete`` does; a bool, a float or anything else is a
    TypeError, a value outside the range a ValueError.
    """
    # The common cases (a Python int or numpy int64 in range) skip the slow ABC checks.
    if (type(action) is int or type(action) is np.int64) and 0 <= action < n:
        return int(action)
    if isinstance(action, np.ndarray):
        if action.size != 1 or action.ndim > 1:
            raise InputError(
                f"Action has shape {action.shape}; {what} takes one action (an int, a 0-d "
                f"array or shape (1,)) in [0, {n}). For a batch of actions use a vector env."
            )
        action = action.reshape(()).item()
    if isinstance(action, bool) or not isinstance(action, numbers.Integral):
        raise InputTypeError(
            f"Action {action!r} has type {type(action).__name__}; {what} takes an integer "
            f"action in Discrete({n}), i.e. in [0, {n})."
        )
    index = int(action)
    if not 0 <= index < n:
        raise InputError(
            f"Action {index} is outside the action space Discrete({n}) of {what}: actions "
            f"are in [0, {n}). Sample from env.action_space, and size the policy's output "
            f"to {n} actions (not the vocabulary)."
        )
    return index


class AllowedTokens(PresentsAsBase, gym.ActionWrapper, RecordConstructorArgs):
    """Restrict the action space to the tokens ``action_masks()`` allows.

    Action ``i`` of ``Discrete(k)`` is token id ``token_ids[i]`` (the allowed ids in
    increasing order); the observation is unchanged. ``action_masks()`` is kept, over the
    ``k`` actions, so MaskablePPO and the tabular agents also work on the wrapped env, and
    :meth:`oracle_action` answers in actions too. The wrapper is its own ``unwrapped`` (see
    the module docstring), so every library sees ``Discrete(k)``.

    Example::

        env = AllowedTokens(gym.make("textgym/Copy-Tiny-v0"))
        env.action_space                  # Discrete(k), k = env.action_masks().size
        env.step(0)                       # writes token env.token_ids[0]

    Args:
        env: A textgym env (or any env with ``Discrete`` actions and ``action_masks()``).
            Apply :class:`MaskInObservation` outside, not inside.

    Raises:
        TypeError: the env's actions are not ``Discrete``, it has no ``action_masks()``,
            or it is already wrapped in ``MaskInObservation`` (whose mask would then be
            over the wrong actions).
        ValueError: ``action_masks()`` allows no token.
    """

    def __init__(self, env: gym.Env) -> None:
        RecordConstructorArgs.__init__(self)
        gym.ActionWrapper.__init__(self, env)
        if not isinstance(env.action_space, spaces.Discrete):
            raise TypeError(
                f"AllowedTokens needs a Discrete action space (token ids); got {env.action_space}."
            )
        if _wraps(env, MaskInObservation):
            raise TypeError(
                "AllowedTokens must be applied before MaskInObservation, so that the mask "
                "in the observation covers the allowed-token actions: write "
                "MaskInObservation(AllowedTokens(env)), not AllowedTokens(MaskInObservation(env))."
            )
        try:
            masks = env.get_wrapper_attr("action_masks")
        except AttributeError:
            raise TypeError(
                "AllowedTokens needs an env with action_masks() (every textgym env has one); "
                f"{env} has none."
            ) from None
        self._masks = masks
        mask = np.asarray(masks(), dtype=bool)
        if mask.shape != (int(env.action_space.n),):
            raise TypeError(
                f"action_masks() returned shape {mask.shape}, but the action space is "
                f"{env.action_space}; AllowedTokens needs one bool per action."
            )
        #: The token id of each action, in increasing order.
        self.token_ids: np.ndarray = np.flatnonzero(mask).astype(np.int64)
        if len(self.token_ids) == 0:
            raise ValueError("action_masks() allows no token; AllowedTokens needs at least one.")
        self.action_space = spaces.Discrete(len(self.token_ids))
        # Token id -> action (or -1), for oracle_action and token_action.
        self._action_of = np.full(int(env.action_space.n), -1, dtype=np.int64)
        self._action_of[self.token_ids] = np.arange(len(self.token_ids))

    def action(self, action: Any) -> int:
        """The token id of action ``action``.

        Raises:
            TypeError: ``action`` is not an integer (or a one-element integer array).
            ValueError: ``action`` is outside ``[0, k)``.
        """
        return int(self.token_ids[check_index(action, len(self.token_ids), "AllowedTokens")])

    def action_masks(self) -> np.ndarray:
        """The underlying mask over the ``k`` actions (all True for a static task mask)."""
        return np.asarray(self._masks(), dtype=bool)[self.token_ids]

    def token_action(self, token_id: int) -> int:
        """The action that writes ``token_id``.

        Raises:
            ValueError: the token is not among the allowed ones.
        """
        token = int(token_id)
        if not 0 <= token < len(self._action_of) or self._action_of[token] < 0:
            raise InputError(
                f"Token id {token} is not an allowed token of this env, so no action writes "
                f"it; the {len(self.token_ids)} allowed ids are env.token_ids."
            )
        return int(self._action_of[token])

    def oracle_action(self) -> int:
        """The task oracle's next token, as an action of this wrapper."""
        return self.token_action(self.env.unwrapped.oracle_action())


class MaskInObservation(PresentsAsBase, gym.ObservationWrapper, RecordConstructorArgs):
    """Add the action mask to the observation, for libraries that read masks from there.

    TorchRL's ``ActionMask`` transform reads ``"action_mask"`` (the default key), Tianshou's
    masked policies read ``batch.obs.mask`` (``key="mask"``), CleanRL-style loops read
    whatever key they are written for. The mask is ``action_masks()`` of the env below,
    one entry per action: over the allowed-token actions on ``AllowedTokens(env)``, over
    the vocabulary otherwise. Like :class:`AllowedTokens`, the wrapper is its own
    ``unwrapped``, so a library reading ``env.unwrapped.observation_space`` sees the key.

    Example::

        env = MaskInObservation(AllowedTokens(gym.make("textgym/Copy-Tiny-v0")))
        obs, _ = env.reset(seed=0)        # obs["action_mask"]: bool[k], all True

    Args:
        env: An env with a ``Dict`` observation space, ``Discrete`` actions and
            ``action_masks()`` (every textgym env, with or without ``AllowedTokens``).
        key: The observation key of the mask, a ``Box(0, 1, (n,), bool)``: bool is what
            TorchRL's ``ActionMask`` needs, and Tianshou's ``1 - mask`` takes it too.

    Raises:
        TypeError: the observation space is not a ``Dict``, the actions not ``Discrete``,
            the env has no ``action_masks()``, or an argument has the wrong type.
        ValueError: ``key`` is already an observation key.
    """

    def __init__(self, env: gym.Env, key: str = "action_mask") -> None:
        RecordConstructorArgs.__init__(self, key=key)
        gym.ObservationWrapper.__init__(self, env)
        if not isinstance(key, str) or not key:
            raise ConfigTypeError(f"key must be a non-empty str, got {describe(key)}.")
        observation_space = env.observation_space
        if not isinstance(observation_space, spaces.Dict):
            raise TypeError(
                "MaskInObservation adds a key to a Dict observation (textgym's input_ids and "
                f"attention_mask); got {observation_space}."
            )
        if key in observation_space.spaces:
            raise ConfigError(
                f"The observation already has a {key!r} key {sorted(observation_space.spaces)}; "
                "pass another key=..."
            )
        if not isinstance(env.action_space, spaces.Discrete):
            raise TypeError(
                f"MaskInObservation needs a Discrete action space; got {env.action_space}."
            )
        try:
            self._masks = env.get_wrapper_attr("action_masks")
        except AttributeError:
            raise TypeError(
                "MaskInObservation needs an env with action_masks() (every textgym env has "
                f"one); {env} has none."
            ) from None
        n = int(env.action_space.n)
        mask = np.asarray(self._masks())
        if mask.shape != (n,):
            raise TypeError(
                f"action_masks() returned shape {mask.shape}, but the action space is "
                f"{env.action_space}; the mask needs one entry per action."
            )
        self.key = key
        self.observation_space = spaces.Dict(
            {**observation_space.spaces, key: spaces.Box(0, 1, (n,), np.bool_)}
        )

    def observation(self, observation: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The observation with the current mask under :attr:`key`."""
        return {**observation, self.key: np.asarray(self._masks(), dtype=bool)}


def _wraps(env: gym.Env, wrapper: type) -> bool:
    """Whether a ``wrapper`` is somewhere in ``env``'s wrapper stack."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, wrapper):
            return True
        env = env.env
    return False


__all__ = ["AllowedTokens", "MaskInObservation", "PresentsAsBase", "check_index"]
