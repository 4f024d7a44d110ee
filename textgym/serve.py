"""``textgym serve``: textgym envs over OpenEnv's HTTP/WebSocket API, one session per client.

The server is ``openenv-core``'s own :class:`HTTPEnvServer` on FastAPI/uvicorn, so any
OpenEnv client can talk to it, and :class:`textgym.remote.RemoteEnv` plays it as a
Gymnasium env. Each WebSocket connection to ``/ws`` is one session with its own env, made
at the client's first reset from the id and kwargs it names
(:class:`~textgym.remote.session.TextgymSession` has the messages). A session is freed
when its client disconnects (a killed client's socket closes at once), or after
``idle_timeout`` seconds without a message (OpenEnv's reaper looks every
``max(idle_timeout / 4, 5)`` seconds). ``POST /reset`` and ``/step`` are OpenEnv's
stateless HTTP calls (each gets a fresh session); ``GET /health``, ``/schema`` and
``/metadata`` are OpenEnv's; ``GET /sessions`` counts the open sessions.

There is no authentication: serve on loopback (the default) or behind a trusted network.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

import textgym
from textgym.errors import ConfigError
from textgym.remote.protocol import UnservedEnvError, missing_extra
from textgym.remote.session import (
    ServedError,
    TextgymAction,
    TextgymObservation,
    TextgymSession,
    unserved_message,
)

try:
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from fastapi.websockets import WebSocketDisconnect
    from openenv.core.env_server.http_server import HTTPEnvServer
    from openenv.core.env_server.types import ConcurrencyConfig
except ModuleNotFoundError as exc:
    raise missing_extra("textgym serve", exc) from exc

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_SESSIONS = 64
DEFAULT_IDLE_TIMEOUT = 300.0


def check_env_ids(env_ids: Sequence[str] | None) -> frozenset[str]:
    """The ids to serve: ``env_ids`` checked against textgym's (default: all of them).

    Raises:
        UnservedEnvError: an id that is not a textgym id (naming the closest).
    """
    ours = frozenset(textgym.env_ids())
    if env_ids is None:
        return ours
    if isinstance(env_ids, str):
        env_ids = [env_ids]
    for env_id in env_ids:
        if env_id not in ours:
            raise UnservedEnvError(unserved_message(env_id, ours))
    return frozenset(env_ids)


class QuietDisconnects:
    """ASGI middleware: a client that leaves is not a server error.

    openenv-core 0.3's ``/ws`` handler frees the session, then closes a socket the client
    may have closed already; the ``WebSocketDisconnect`` that raises would be logged as a
    traceback for every client that is killed or exits without closing.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        with contextlib.suppress(WebSocketDisconnect):
            await self.app(scope, receive, send)


def create_app(
    *,
    max_sessions: int = DEFAULT_MAX_SESSIONS,
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
    env_ids: Sequence[str] | None = None,
) -> FastAPI:
    """The FastAPI app that serves textgym envs (see the module docstring).

    Args:
        max_sessions: How many WebSocket sessions may be open at once.
        idle_timeout: Seconds without a message after which a session is freed (None:
            never; a disconnect frees a session at once either way).
        env_ids: The ids clients may play (default: every textgym id).

    Raises:
        ConfigError / ConfigTypeError: a bad limit; UnservedEnvError: an unknown id.
    """
    if isinstance(max_sessions, bool) or not isinstance(max_sessions, int) or max_sessions < 1:
        raise ConfigError(f"max_sessions must be a whole number >= 1, got {max_sessions!r}.")
    if idle_timeout is not None and (
        isinstance(idle_timeout, bool)
        or not isinstance(idle_timeout, (int, float))
        or not idle_timeout > 0
    ):
        raise ConfigError(
            f"idle_timeout must be seconds > 0 or None (never), got {idle_timeout!r}."
        )
    served = check_env_ids(env_ids)
    # Loaded once now (seconds), not by each of the first sessions at once.
    textgym.default_tokenizer()
    server = HTTPEnvServer(
        functools.partial(TextgymSession, served, idle_timeout),
        TextgymAction,
        TextgymObservation,
        concurrency_config=ConcurrencyConfig(
            max_concurrent_envs=max_sessions,
            session_timeout=None if idle_timeout is None else float(idle_timeout),
        ),
    )
    app = FastAPI(title="textgym", version=textgym.__version__, description=__doc__)
    server.register_routes(app)
    app.state.env_server = server
    app.state.served = served

    @app.get("/sessions", tags=["Health"], summary="Open sessions")
    async def sessions() -> dict[str, Any]:
        return {
            "active_sessions": server.active_sessions,
            "max_sessions": server.max_concurrent_envs,
            "idle_timeout": idle_timeout,
        }

    async def served_error(request: Request, exc: Exception) -> JSONResponse:
        status = 400 if isinstance(exc, ServedError) and exc.user else 500
        return JSONResponse({"detail": str(exc)}, status_code=status)

    app.add_exception_handler(ServedError, served_error)
    app.add_middleware(QuietDisconnects)
    return app


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (0: a free port), or a one-line ConfigError."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise ConfigError(
            f"Cannot serve on host {host!r} ({exc}); give an address of this machine, e.g. "
            "127.0.0.1 (this machine only) or 0.0.0.0 (every interface)."
        ) from None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"Cannot serve on {host}:{port} ({exc.strerror or exc}); choose another --port "
            "(0 picks a free one)."
        ) from None
    return sock


def _uvicorn(app: FastAPI, log_level: str) -> uvicorn.Server:
    return uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="on"))


def run(
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    max_sessions: int = DEFAULT_MAX_SESSIONS,
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
    env_ids: Sequence[str] | None = None,
    log_level: str = "warning",
) -> None:
    """Serve until Ctrl-C (``textgym serve``); see :func:`create_app` for the options."""
    app = create_app(max_sessions=max_sessions, idle_timeout=idle_timeout, env_ids=env_ids)
    sock = bind(host, port)
    url = address(host, sock.getsockname()[1])
    print(
        f"textgym serve: {len(app.state.served)} envs at {url} "
        f"(sessions at {url.replace('http', 'ws', 1)}/ws, at most {max_sessions}); Ctrl-C stops.",
        flush=True,
    )
    _uvicorn(app, log_level).run(sockets=[sock])


def address(host: str, port: int) -> str:
    """``http://host:port`` (an IPv6 host in brackets)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class ServerThread:
    """A textgym server on a background thread: for notebooks, tests and examples.

    ``with ServerThread() as server: RemoteEnv(server.url, "textgym/Copy-v0")``. The
    port defaults to 0, a free one; :attr:`url` says which.

    Args:
        host: The address to listen on (default: loopback only).
        port: The port (0: a free one).
        log_level: uvicorn's log level.
        **options: For :func:`create_app` (``max_sessions``, ``idle_timeout``, ``env_ids``).
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = 0,
        *,
        log_level: str = "warning",
        **options: Any,
    ) -> None:
        self.app = create_app(**options)
        self._socket = bind(host, port)
        self.url = address(host, self._socket.getsockname()[1])
        self._server = _uvicorn(self.app, log_level)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def start(self, timeout: float = 60.0) -> ServerThread:
        """Start serving; return once the server accepts connections.

        Raises:
            RuntimeError: the server did not start within ``timeout`` seconds.
        """
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"The textgym server at {self.url} did not start.")
            time.sleep(0.01)
        return self

    @property
    def active_sessions(self) -> int:
        """How many sessions are open."""
        return self.app.state.env_server.active_sessions

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving (open sessions end) and wait for the thread."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._socket.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
