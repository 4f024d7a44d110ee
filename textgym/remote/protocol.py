"""What ``textgym serve`` and :class:`~textgym.remote.RemoteEnv` say to each other, as JSON.

The transport is OpenEnv's (``openenv-core``): one WebSocket session per client at ``/ws``,
messages ``{"type": "reset" | "step" | "state" | "close", "data": {...}}``, answers
``{"type": "observation" | "state" | "error", "data": {...}}``. This module holds what
textgym adds on top, for both ends:

* :func:`encode` / :func:`decode`: any value an env returns (numpy arrays and scalars with
  their dtype, tuples, non-finite floats, dicts with non-string keys) as plain JSON and back,
  exactly: ``decode(json.loads(json.dumps(encode(x))))`` equals ``x`` in value and type.
  Plain JSON without the ``"__textgym__"`` key decodes to itself, so an OpenEnv client that
  sends ``{"token": 5}`` needs to know nothing of the tags.
* :func:`space_to_json` / :func:`space_from_json`: the observation and action spaces of the
  env the server built, so the client's spaces are the server env's (equal, dtypes too),
  whatever tokenizer or textgym version the server has.
* :func:`error_text` / :func:`raise_remote`: an exception crosses the wire as
  ``"ClassName: message"`` (readable for any OpenEnv client) and is raised again on the
  client as the same class when the client knows it (textgym's errors, gymnasium's, a few
  built-ins), so ``except InputError`` works remotely as it does locally.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from textgym.errors import UserError
from textgym.wrappers.turn_level import TurnSpace

#: The key that marks an encoded value that plain JSON cannot hold.
TAG = "__textgym__"
#: The extra that brings the server and client libraries.
EXTRA = "pip install 'textgym[integrations]'"
#: The views a session can play: one token per step, or one whole turn per step.
VIEWS = ("token", "turn")
#: Built-in exception types a client raises again by name (anything else: RemoteError).
BUILTIN_ERRORS = ("TypeError", "ValueError", "KeyError", "IndexError", "RuntimeError")


class MissingExtraError(UserError, ImportError):
    """A library of the ``integrations`` extra is not installed."""


class RemoteError(RuntimeError):
    """The server failed in a way the client has no textgym error class for."""


class RemoteConnectionError(UserError, ConnectionError):
    """No textgym server answers at the URL, or the connection to it broke."""


class UnservedEnvError(UserError, gym.error.UnregisteredEnv):
    """An env id the server does not serve (unknown, or outside its ``--env-ids``)."""


class SessionClosedError(UserError, RuntimeError):
    """The server freed the session (idle for longer than its ``--idle-timeout``)."""


def missing_extra(what: str, exc: ModuleNotFoundError) -> MissingExtraError:
    """The error for a missing library of the extra, naming the install command."""
    module = (exc.name or "a library").split(".")[0]
    return MissingExtraError(
        f"{what} needs {module!r}, which is not installed; install the extra with `{EXTRA}`."
    )


# -- values ---------------------------------------------------------------------------------


def encode(value: Any, where: str = "value") -> Any:
    """``value`` as plain JSON (see the module docstring); ``where`` names it in errors.

    Raises:
        TypeError: a value JSON cannot carry even tagged (an object, a function...).
    """
    if isinstance(value, np.generic):  # first: np.float64 is a float, np.str_ a str
        if value.dtype.kind not in "biufU":
            raise TypeError(f"{where} is a numpy {value.dtype} scalar, which JSON cannot hold.")
        item = value.item()
        if isinstance(item, float) and not math.isfinite(item):
            item = repr(item)
        return {TAG: "scalar", "dtype": value.dtype.str, "value": item}
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {TAG: "float", "value": repr(value)}
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf" and value.dtype.kind != "U":
            raise TypeError(f"{where} is an array of dtype {value.dtype}, which JSON cannot hold.")
        data = value.ravel().tolist()
        if value.dtype.kind == "f":
            data = [x if math.isfinite(x) else repr(x) for x in data]
        return {TAG: "ndarray", "dtype": value.dtype.str, "shape": list(value.shape), "data": data}
    if isinstance(value, tuple):
        return {TAG: "tuple", "items": [encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and TAG not in value:
            return {k: encode(v, f"{where}[{k!r}]") for k, v in value.items()}
        return {
            TAG: "dict",
            "items": [[encode(k, where), encode(v, f"{where}[{k!r}]")] for k, v in value.items()],
        }
    raise TypeError(
        f"{where} is {type(value).__name__} ({value!r:.60}), which cannot be sent as JSON; "
        "send numbers, text, lists, tuples, dicts or numpy arrays."
    )


def decode(value: Any) -> Any:
    """The value :func:`encode` encoded (plain JSON decodes to itself).

    Raises:
        ValueError: a tagged value that :func:`encode` cannot have written.
    """
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    kind = value.get(TAG)
    if kind is None:
        return {k: decode(v) for k, v in value.items()}
    if kind == "float":
        return float(value["value"])
    if kind == "tuple":
        return tuple(decode(v) for v in value["items"])
    if kind == "dict":
        return {_hashable(decode(k)): decode(v) for k, v in value["items"]}
    if kind in ("ndarray", "scalar"):
        dtype = np.dtype(value["dtype"])
        if dtype.kind not in "biufU":
            raise ValueError(f"An encoded {kind} has dtype {dtype}, which encode never writes.")
        if kind == "scalar":
            item = value["value"]
            if dtype.kind == "f" and isinstance(item, str):
                item = float(item)  # "nan", "inf", "-inf"
            return dtype.type(item)
        data = value["data"]
        if dtype.kind == "f":
            data = [float(x) for x in data]
        return np.array(data, dtype=dtype).reshape(value["shape"])
    raise ValueError(f"Unknown encoded value kind {kind!r}; is the server's textgym newer?")


def _hashable(key: Any) -> Any:
    if isinstance(key, list):  # a tuple key comes back as a tuple already; a list cannot
        raise ValueError("An encoded dict has a list key, which encode never writes.")
    return key


# -- spaces ---------------------------------------------------------------------------------


def space_to_json(space: spaces.Space) -> dict[str, Any]:
    """The JSON description of a textgym env's space (Dict, Box, Discrete or TurnSpace).

    Raises:
        TypeError: another kind of space (not one a textgym env has).
    """
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {k: space_to_json(s) for k, s in space.spaces.items()}}
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "low": encode(_bound(space.low)),
            "high": encode(_bound(space.high)),
            "shape": list(space.shape),
            "dtype": space.dtype.str,
        }
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, TurnSpace):
        feature = space.feature_space
        return {
            "type": "TurnSpace",
            "vocab_size": int(feature.n),
            "max_tokens": int(space.max_tokens),
            "allowed": space.allowed.tolist(),
        }
    raise TypeError(f"Cannot describe a {type(space).__name__} space over the wire.")


def _bound(bound: np.ndarray) -> Any:
    """A Box bound as one number when it is uniform (as textgym's are), else the array."""
    flat = bound.ravel()
    return flat[0].item() if flat.size and (flat == flat[0]).all() else bound


def space_from_json(data: dict[str, Any]) -> spaces.Space:
    """The space :func:`space_to_json` described."""
    kind = data["type"]
    if kind == "Dict":
        return spaces.Dict({k: space_from_json(s) for k, s in data["spaces"].items()})
    if kind == "Box":
        dtype = np.dtype(data["dtype"])
        return spaces.Box(decode(data["low"]), decode(data["high"]), tuple(data["shape"]), dtype)
    if kind == "Discrete":
        return spaces.Discrete(data["n"], start=data["start"])
    if kind == "TurnSpace":
        allowed = np.zeros(data["vocab_size"], dtype=bool)
        allowed[data["allowed"]] = True
        return TurnSpace(data["vocab_size"], data["max_tokens"], allowed)
    raise ValueError(f"Unknown space type {kind!r}; is the server's textgym newer?")


def observation_from_json(data: dict[str, Any], space: spaces.Dict) -> dict[str, np.ndarray]:
    """The observation arrays of an answer, with the dtypes of ``space`` (Dict of Box)."""
    return {k: np.asarray(data[k], dtype=s.dtype) for k, s in space.spaces.items()}


# -- errors ---------------------------------------------------------------------------------


def error_text(exc: BaseException) -> str:
    """``"ClassName: message"``: how an exception crosses the wire."""
    return f"{type(exc).__name__}: {exc}"


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def known_errors() -> dict[str, type[BaseException]]:
    """The error classes a client raises again by name: textgym's (every loaded subclass of
    UserError), gymnasium's, and a few built-ins. Nothing is imported by name."""
    known: dict[str, type[BaseException]] = {n: getattr(builtins, n) for n in BUILTIN_ERRORS}
    for name in dir(gym.error):
        obj = getattr(gym.error, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            known[name] = obj
    for cls in [UserError, *_subclasses(UserError)]:
        known.setdefault(cls.__name__, cls)
    return known


def remote_exception(text: str, where: str) -> BaseException:
    """The exception ``"ClassName: message"`` stands for, or a :class:`RemoteError`.

    Args:
        text: The server's error message.
        where: Names the server in a RemoteError (``"the textgym server at URL"``).
    """
    name, sep, message = text.partition(": ")
    cls = known_errors().get(name) if sep else None
    if cls is not None:
        try:
            return cls(message)
        except TypeError:  # a class whose constructor takes more than a message
            pass
    return RemoteError(f"{where} failed: {text}")
