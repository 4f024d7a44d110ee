"""Textgym envs across a network: :class:`RemoteEnv` plays what ``textgym serve`` serves.

The server (:mod:`textgym.serve`) speaks OpenEnv's HTTP/WebSocket protocol;
:mod:`textgym.remote.protocol` is what both ends add to it (exact JSON values, spaces,
errors). Both need the ``integrations`` extra: ``pip install 'textgym[integrations]'``.
"""

from textgym.remote.client import RemoteEnv
from textgym.remote.protocol import (
    MissingExtraError,
    RemoteConnectionError,
    RemoteError,
    SessionClosedError,
    UnservedEnvError,
)

__all__ = [
    "MissingExtraError",
    "RemoteConnectionError",
    "RemoteEnv",
    "RemoteError",
    "SessionClosedError",
    "UnservedEnvError",
]
