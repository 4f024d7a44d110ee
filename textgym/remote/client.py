"""RemoteEnv: a textgym env served by ``textgym serve``, played as a local Gymnasium env.

One RemoteEnv is one session on the server (one WebSocket connection, OpenEnv's protocol;
see :mod:`textgym.serve`). Its spaces are the ones the server's env has, sent by the server
when the session is made: the server is the one that knows which tokenizer and task it
builds, so building them on the client from the id would be right only while both sides
share a textgym version and its files. Observations, rewards, flags and infos come back
exactly (values and dtypes): under the same seed and actions a RemoteEnv's trajectory is a
local ``gym.make(env_id, **kwargs)``'s (``TurnLevel``-wrapped for ``view="turn"``).
"""

from __future__ import annotations

import json
from contextlib import ExitStack, suppress
from typing import Any, ClassVar
from urllib.parse import urlsplit

import gymnasium as gym
import numpy as np

from textgym.episode import InputTypeError
from textgym.errors import ConfigError, ConfigTypeError, did_you_mean
from textgym.remote.protocol import (
    VIEWS,
    RemoteConnectionError,
    RemoteError,
    SessionClosedError,
    decode,
    encode,
    missing_extra,
    observation_from_json,
    remote_exception,
    space_from_json,
)
from textgym.tasks.checks import describe

try:
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
    from websockets.sync.client import ClientConnection, connect
except ModuleNotFoundError as exc:
    raise missing_extra("textgym.remote.RemoteEnv", exc) from exc

#: The largest message a RemoteEnv accepts (an observation of a million tokens fits).
MAX_MESSAGE_BYTES = 64 << 20
#: Seconds :meth:`RemoteEnv.close` waits for the server to close the connection.
CLOSE_WAIT = 5.0


def server_urls(url: Any) -> tuple[str, str]:
    """``(http_url, ws_url)`` of a server address (``http://host:port`` or ``ws://...``).

    Raises:
        ConfigTypeError / ConfigError: not an http(s) or ws(s) URL.
    """
    example = "e.g. 'http://127.0.0.1:8000', the address `textgym serve` prints"
    if not isinstance(url, str):
        raise ConfigTypeError(f"url must be the server's address ({example}), got {describe(url)}.")
    base = url.rstrip("/").removesuffix("/ws")
    scheme, sep, rest = base.partition("://")
    schemes = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
    if not sep or scheme not in schemes or not rest:
        raise ConfigError(f"url must be the server's address ({example}), got {url!r}.")
    http = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    return f"{http}://{rest}", f"{schemes[scheme]}://{rest}/ws"


class RemoteEnv(gym.Env[dict[str, np.ndarray], Any]):
    """A textgym env played on a ``textgym serve`` server.

    ``RemoteEnv(url, env_id, **kwargs)`` plays what ``gym.make(env_id, **kwargs)`` would
    locally (``view="turn"``: wrapped in :class:`~textgym.wrappers.TurnLevel`), with the
    same spaces, and the same observations, rewards, flags and infos under the same seed
    and actions, so Gymnasium's and stable-baselines3's ``check_env``, vector envs
    (``SyncVectorEnv([lambda: RemoteEnv(...)] * n)``) and MaskablePPO take it as they take
    a local env. Each RemoteEnv is its own session on the server; :meth:`close` frees it
    (and a client that dies frees it as its connection drops).

    Args:
        url: The server's address, ``http://host:port`` (what ``textgym serve`` prints).
        env_id: A textgym id the server serves (``"textgym/Copy-v0"``).
        view: ``"token"`` (one token id per step) or ``"turn"`` (one turn per step, as
            text or ids).
        timeout: Seconds to wait to connect and for each answer (None: no limit).
        **kwargs: The env's keyword arguments, sent as JSON: numbers, text, lists,
            tuples, dicts, numpy arrays (a reward as a spec string, a tokenizer as a path
            on the server). ``render_mode="ansi"`` makes :meth:`render` return the text.

    Raises:
        RemoteConnectionError: no textgym server answers at ``url``.
        ConfigTypeError: a kwarg that cannot be sent as JSON (naming it).
        UnservedEnvError, ConfigError, ...: the server's env refused the id or kwargs, with
            textgym's message (the same error class a local ``gym.make`` raises).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        url: str,
        env_id: str,
        *,
        view: str = "token",
        timeout: float | None = 60.0,
        **kwargs: Any,
    ) -> None:
        self.url, self._ws_url = server_urls(url)
        if not isinstance(env_id, str):
            raise ConfigTypeError(f"env_id must be a str, got {describe(env_id)}.")
        if view not in VIEWS:
            hint = did_you_mean(view, VIEWS) if isinstance(view, str) else ""
            raise ConfigError(f"view must be one of {list(VIEWS)}, got {view!r}.{hint}")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0
        ):
            raise ConfigError(f"timeout must be a number of seconds > 0 or None, got {timeout!r}.")
        self.env_id, self.view, self.timeout = env_id, view, timeout
        self.kwargs = dict(kwargs)
        sent = {name: self._encode_kwarg(name, value) for name, value in kwargs.items()}
        self.render_mode = kwargs.get("render_mode")
        self._ws: ClientConnection | None = self._connect()
        try:
            answer = self._request(
                "reset", {"env_id": env_id, "kwargs": sent, "view": view, "describe": True}
            )
        except BaseException:
            self.close()
            raise
        described = answer["observation"]
        self.observation_space = space_from_json(described["spaces"]["observation"])
        self.action_space = space_from_json(described["spaces"]["action"])
        self._mask = np.zeros(self._vocab_size(), dtype=bool)
        self._mask[described["action_mask"]] = True

    # -- Gymnasium API --------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start an episode on the server (the seed and options are checked there)."""
        data = {"seed": self._encode(seed, "seed"), "options": self._encode(options, "options")}
        answer = self._request("reset", {k: v for k, v in data.items() if v is not None})
        # After the server took the seed: it accepts numpy integers, gymnasium does not.
        super().reset(seed=None if seed is None else int(seed))
        obs, _, _, _, info = self._result(answer)
        return obs, info

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Play one token id (token view) or one turn, text or ids (turn view)."""
        field = "token" if self.view == "token" else "turn"
        return self._result(self._request("step", {field: self._encode(action, "action")}))

    def action_masks(self) -> np.ndarray:
        """The tokens the task needs (bool per token id), as the server's env says."""
        return self._mask.copy()

    def state(self) -> dict[str, Any]:
        """The server's view of the session: ``env_id``, ``episode_id``, ``step_count``,
        ``messages`` (the conversation so far) and, with ``render_mode="ansi"``, ``render``."""
        state = self._request("state")
        state["kwargs"] = decode(state.get("kwargs", {}))
        return state

    def messages(self) -> list[dict[str, str]]:
        """The conversation so far as ``{"role", "content"}`` dicts (empty before a reset)."""
        return self.state().get("messages", [])

    def render(self) -> str | None:  # type: ignore[override]
        """The conversation as text (``render_mode="ansi"``)."""
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi'.")
            return None
        return self.state().get("render", "")

    def close(self) -> None:
        """End the session: the server frees its env. Closing twice is fine."""
        ws, self._ws = getattr(self, "_ws", None), None
        if ws is not None:
            try:
                ws.send(json.dumps({"type": "close"}))
                # The server frees the session, then closes the connection itself; closing
                # first would make its own close fail (a traceback in the server's log).
                while True:
                    ws.recv(timeout=CLOSE_WAIT)
            except (ConnectionClosed, TimeoutError):
                pass  # closed (or the server is slow to: close from this side then)
            self._exit.close()
        super().close()

    def __repr__(self) -> str:
        return f"RemoteEnv({self.url!r}, {self.env_id!r}, view={self.view!r})"

    # -- the wire ---------------------------------------------------------------------------

    def _vocab_size(self) -> int:
        space = self.action_space
        return int(space.n if isinstance(space, gym.spaces.Discrete) else space.feature_space.n)

    def _connect(self) -> ClientConnection:
        # As a context manager (websockets 17.1 deprecates a bare connect()); close() exits.
        self._exit = ExitStack()
        try:
            return self._exit.enter_context(
                connect(self._ws_url, open_timeout=self.timeout, max_size=MAX_MESSAGE_BYTES)
            )
        except (OSError, InvalidHandshake, InvalidURI) as exc:
            reason = str(exc) or type(exc).__name__
            try:
                port = urlsplit(self.url).port or 8000
            except ValueError:  # a port that is not a number: the URL is the mistake
                port = 8000
            raise RemoteConnectionError(
                f"No textgym server answers at {self.url} ({reason}). Start one with "
                f"`textgym serve --port {port}`, or check the URL."
            ) from None

    def _request(self, kind: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        if self._ws is None:
            raise SessionClosedError(f"{self!r} is closed; make a new RemoteEnv to play on.")
        message: dict[str, Any] = {"type": kind} if data is None else {"type": kind, "data": data}
        try:
            # If the server closed the connection, it may have said why first: recv() reads it.
            with suppress(ConnectionClosed):
                self._ws.send(json.dumps(message))
            answer = json.loads(self._ws.recv(timeout=self.timeout))
        except TimeoutError:
            # A late answer would be read as the next request's: the session cannot go on.
            self._ws = None
            self._exit.close()
            raise RemoteConnectionError(
                f"The textgym server at {self.url} did not answer a {kind} within "
                f"{self.timeout} s, so the session is closed; give RemoteEnv(timeout=...) more "
                "for slow envs."
            ) from None
        except ConnectionClosed as exc:
            self._ws = None
            raise RemoteConnectionError(
                f"The connection to the textgym server at {self.url} closed ({exc}); the "
                "session is gone: make a new RemoteEnv."
            ) from None
        if answer.get("type") != "error":
            return answer["data"]
        raise self._error(kind, answer.get("data", {})) from None

    def _error(self, kind: str, data: dict[str, Any]) -> BaseException:
        code, message = data.get("code"), str(data.get("message", ""))
        where = f"The textgym server at {self.url}"
        if code == "CAPACITY_REACHED":
            self.close()
            return RemoteConnectionError(
                f"{where} is full ({data.get('active_sessions')}/{data.get('max_sessions')} "
                "sessions); close other RemoteEnvs, or restart it with a larger "
                "`textgym serve --max-sessions`."
            )
        if code == "EXECUTION_ERROR":
            return remote_exception(message, where)
        errors = data.get("errors")
        return RemoteError(f"{where} refused the {kind} ({code}): {message} {errors or ''}".strip())

    def _result(
        self, answer: dict[str, Any]
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        fields = answer["observation"]
        obs = observation_from_json(fields, self.observation_space)
        reward = answer.get("reward")
        return (
            obs,
            0.0 if reward is None else float(reward),
            bool(fields["terminated"]),
            bool(fields["truncated"]),
            decode(fields["info"]),
        )

    def _encode(self, value: Any, where: str) -> Any:
        try:
            return encode(value, where)
        except TypeError as exc:
            raise InputTypeError(f"RemoteEnv cannot send it to the server: {exc}") from None

    def _encode_kwarg(self, name: str, value: Any) -> Any:
        try:
            return encode(value, name)
        except TypeError as exc:
            raise ConfigTypeError(
                f"RemoteEnv sends the env's kwargs to the server as JSON, and {exc} Give "
                "what the server can build from JSON: a reward as a spec string "
                "(reward='exact_match + 0.1*format'), a tokenizer as a path on the server."
            ) from None
