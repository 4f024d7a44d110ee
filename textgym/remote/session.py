"""The server side of one client's session: an OpenEnv ``Environment`` over a textgym env.

OpenEnv's server (``openenv-core``'s ``HTTPEnvServer``, which :mod:`textgym.serve` runs)
makes one ``Environment`` per WebSocket session through a factory without arguments, and
textgym's envs need an id and kwargs, which the client names at its reset. So each session
is a :class:`TextgymSession` that builds its Gymnasium env from the reset's fields, keeps
it while the client names the same one (its RNG goes on across resets, as a local env's
does), and plays it::

    reset    {"env_id": "textgym/Copy-v0", "kwargs": {...}, "view": "token" | "turn",
              "seed": 3, "options": {...}}                 -> the first observation
             {..., "describe": true}                       -> its spaces, no episode
    step     {"token": 17}  or  {"turn": "text" | [ids]}   -> observation, reward, done
    state                                                  -> ids, messages, render text

An observation is ``{"input_ids": [...], "attention_mask": [...], "terminated",
"truncated", "info"}`` with OpenEnv's ``reward`` and ``done`` beside it; values plain JSON
cannot hold are tagged (:mod:`textgym.remote.protocol`). Any exception leaves as a
:class:`ServedError` whose text is ``"ClassName: message"``: OpenEnv sends it to the
client as an error message, never a traceback.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import gymnasium as gym
from pydantic import Field

import textgym
from textgym.episode import EpisodeError, InputError, InputTypeError
from textgym.errors import ConfigError, ConfigTypeError, UserError, closest, did_you_mean
from textgym.remote.protocol import (
    VIEWS,
    SessionClosedError,
    UnservedEnvError,
    decode,
    encode,
    error_text,
    missing_extra,
    space_to_json,
)
from textgym.tasks.checks import describe
from textgym.wrappers import TurnLevel

try:
    from openenv.core.env_server.interfaces import Environment
    from openenv.core.env_server.types import Action, EnvironmentMetadata, Observation, State
except ModuleNotFoundError as exc:
    raise missing_extra("textgym serve", exc) from exc

logger = logging.getLogger(__name__)

#: The fields a reset takes besides OpenEnv's seed and episode_id.
RESET_FIELDS = ("env_id", "kwargs", "view", "options", "describe")


class TextgymAction(Action):
    """One step: ``token`` in the token view, ``turn`` (text or ids) in the turn view."""

    token: Any = Field(default=None, description="token view: one token id")
    turn: Any = Field(default=None, description="turn view: the turn's text or token ids")


class TextgymObservation(Observation):
    """What a reset or step returns (``reward`` and ``done`` are OpenEnv's fields)."""

    input_ids: list[int] = Field(default_factory=list, description="the context, right-padded")
    attention_mask: list[int] = Field(default_factory=list, description="1 over the context")
    terminated: bool = False
    truncated: bool = False
    info: dict[str, Any] = Field(default_factory=dict, description="the env's info, encoded")
    spaces: dict[str, Any] | None = Field(
        default=None, description="describe only: the observation and action spaces"
    )
    action_mask: list[int] | None = Field(
        default=None, description="describe only: the token ids the task's action mask allows"
    )


class ServedError(Exception):
    """An env's exception on its way to the client: ``str()`` is ``"ClassName: message"``."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(error_text(exc))
        self.user = isinstance(exc, (UserError, gym.error.Error))


class TextgymSession(Environment):
    """One client's session: builds its Gymnasium env at the reset that names it.

    Args:
        served: The env ids clients may ask for.
        idle_timeout: How the closed-session message names the server's timeout.
    """

    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self, served: frozenset[str], idle_timeout: float | None) -> None:
        super().__init__()
        self.served = served
        self.idle_timeout = idle_timeout
        self.env: gym.Env | None = None
        self.env_id: str | None = None
        self.kwargs: dict[str, Any] = {}
        self.view = "token"
        self._key: tuple[str, str, str] | None = None
        self.episode_id: str | None = None
        self.step_count = 0
        self.closed = False

    # -- OpenEnv's Environment ------------------------------------------------------------

    def reset(
        self, seed: Any = None, episode_id: str | None = None, **fields: Any
    ) -> TextgymObservation:
        """Build the env the fields name (or keep the session's), then reset or describe it."""
        try:
            return self._reset(seed, episode_id, fields)
        except Exception as exc:
            raise self._served(exc) from exc

    def step(self, action: TextgymAction, timeout_s: float | None = None, **_: Any) -> Observation:
        """Play one token or turn."""
        try:
            return self._step(action)
        except Exception as exc:
            raise self._served(exc) from exc

    @property
    def state(self) -> State:
        """The session: its env, episode, step count, conversation and (ansi) render."""
        extra: dict[str, Any] = {"env_id": self.env_id, "kwargs": encode(self.kwargs)}
        extra["view"] = self.view
        if self.env is not None and self.env.unwrapped.episode.started:
            text_env = self.env.unwrapped
            extra["messages"] = text_env.messages()
            if text_env.render_mode == "ansi":
                extra["render"] = text_env.render()
        return State(episode_id=self.episode_id, step_count=self.step_count, **extra)

    def get_metadata(self) -> EnvironmentMetadata:
        """What ``GET /metadata`` says."""
        return EnvironmentMetadata(
            name="textgym",
            description=f"textgym envs, one per session; served ids: {sorted(self.served)}",
            version=textgym.__version__,
        )

    def close(self) -> None:
        """Free the env (at a disconnect, a close message, or the idle reaper)."""
        self.closed = True
        if self.env is not None:
            self.env.close()
        self.env = None

    # -- the work ---------------------------------------------------------------------------

    def _reset(self, seed: Any, episode_id: str | None, fields: dict[str, Any]) -> Observation:
        self._check_open()
        for key in fields:
            if key not in RESET_FIELDS:
                raise InputError(
                    f"Unknown reset field {key!r}.{did_you_mean(key, RESET_FIELDS)} A reset "
                    f"takes seed, episode_id and {', '.join(RESET_FIELDS)}."
                )
        if "env_id" in fields:
            self._build(fields["env_id"], fields.get("kwargs", {}), fields.get("view", "token"))
        elif "kwargs" in fields or "view" in fields:
            raise ConfigError("A reset that gives kwargs or view names the env_id too.")
        if self.env is None:
            raise ConfigError(
                'The first reset of a session names its env, e.g. {"env_id": '
                '"textgym/Copy-v0", "kwargs": {}, "view": "token", "seed": 0}.'
            )
        if fields.get("describe"):
            text_env = self.env.unwrapped
            return TextgymObservation(
                spaces={
                    "observation": space_to_json(self.env.observation_space),
                    "action": space_to_json(self.env.action_space),
                },
                action_mask=text_env.action_masks().nonzero()[0].tolist(),
            )
        if episode_id is not None and not isinstance(episode_id, str):
            raise InputTypeError(f"episode_id must be a str or None, got {describe(episode_id)}.")
        obs, info = self.env.reset(seed=decode(seed), options=decode(fields.get("options")))
        self.episode_id = episode_id or uuid.uuid4().hex
        self.step_count = 0
        return self._observation(obs, None, False, False, info)

    def _build(self, env_id: Any, kwargs: Any, view: Any) -> None:
        if not isinstance(env_id, str):
            raise ConfigTypeError(f"env_id must be a str, got {describe(env_id)}.")
        env_id = env_id.removeprefix("textgym:")
        if env_id not in self.served:
            raise UnservedEnvError(unserved_message(env_id, self.served))
        kwargs = decode(kwargs)
        if not isinstance(kwargs, dict):
            raise ConfigTypeError(
                f"kwargs must be a JSON object of the env's keyword arguments, got "
                f"{describe(kwargs)}."
            )
        if view not in VIEWS:
            hint = did_you_mean(view, VIEWS) if isinstance(view, str) else ""
            raise ConfigError(f"view must be one of {list(VIEWS)}, got {view!r}.{hint}")
        if kwargs.get("render_mode") == "human":
            raise ConfigError(
                "render_mode='human' would print on the server; use render_mode='ansi' and "
                "RemoteEnv.render() (or the session's state)."
            )
        key = (env_id, json.dumps(encode(kwargs), sort_keys=True), view)
        if key == self._key:
            return  # the same env: its RNG goes on, as a local env's does across resets
        if self.env is not None:
            self.env.close()
            self.env, self._key = None, None
        env = gym.make(env_id, **kwargs)
        self.env = TurnLevel(env) if view == "turn" else env
        self.env_id, self.kwargs, self.view, self._key = env_id, kwargs, view, key

    def _step(self, action: TextgymAction) -> Observation:
        self._check_open()
        if self.env is None:
            raise EpisodeError(
                "step() was called before reset(): this session has no env yet; reset with "
                '{"env_id": ...} first. Over HTTP every /step gets a fresh session (OpenEnv\'s '
                "stateless API): play episodes over the WebSocket at /ws, as "
                "textgym.remote.RemoteEnv does."
            )
        field, other = ("token", "turn") if self.view == "token" else ("turn", "token")
        value = getattr(action, field)
        if value is None and getattr(action, other) is not None:
            raise InputError(
                f"This session plays the {self.view} view, so a step sends {field!r}, not "
                f"{other!r} (reset with view={other!r} to play that view)."
            )
        obs, reward, terminated, truncated, info = self.env.step(decode(value))
        self.step_count += 1
        return self._observation(obs, reward, terminated, truncated, info)

    def _observation(
        self, obs: dict, reward: Any, terminated: bool, truncated: bool, info: dict
    ) -> TextgymObservation:
        return TextgymObservation(
            input_ids=obs["input_ids"].tolist(),
            attention_mask=obs["attention_mask"].tolist(),
            terminated=bool(terminated),
            truncated=bool(truncated),
            done=bool(terminated or truncated),
            reward=None if reward is None else float(reward),
            info=encode(info, "info"),
        )

    def _check_open(self) -> None:
        if self.closed:
            after = f" after {self.idle_timeout:g} s without a message" if self.idle_timeout else ""
            raise SessionClosedError(
                f"The server freed this session{after} (its --idle-timeout); make a new "
                "RemoteEnv (a new connection) to play on."
            )

    def _served(self, exc: Exception) -> ServedError:
        served = ServedError(exc)
        if not served.user:  # a bug in textgym or the env: the operator needs the traceback
            logger.error("session %s failed", self.episode_id, exc_info=exc)
        return served


def unserved_message(env_id: str, served: frozenset[str]) -> str:
    """Why ``env_id`` is not played here, naming the closest served id."""
    ours = set(textgym.env_ids())
    listed = (
        "`textgym list` shows every textgym id"
        if served == ours
        else f"this server serves {sorted(served)} (textgym serve --env-ids)"
    )
    if env_id in ours:
        return f"{env_id!r} is not served here: {listed}."
    if env_id in gym.registry:
        return f"{env_id!r} is not a textgym env; textgym serve plays textgym ids: {listed}."
    bare = env_id.rsplit("/", 1)[-1]
    close = [s for s in sorted(served) if s.rsplit("/", 1)[-1] == bare] or closest(env_id, served)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"Unknown env id {env_id!r}.{hint} {listed[0].upper()}{listed[1:]}."
