"""The ``textgym`` command: ``list | serve | play | train | bench | rate | train-rm``.

Every command but ``list`` and ``serve`` is an entry point in the ``textgym.commands`` group (see
pyproject.toml): ``train`` lives in ``agents`` and ``bench`` in ``benchmarks``, which import
textgym, so textgym finds them through the installed package's metadata and never imports
them by name (arrows point one way: benchmarks -> agents -> textgym). A command is loaded
only when asked for, so ``textgym list`` stays fast.

Every command's flags come from a config dataclass through :mod:`textgym.tools.flags`,
whose parsers raise a one-line :class:`~textgym.errors.ConfigError` for any mistake. Every
sub-command runs inside :func:`run_command`, the one place that turns a user's mistake into
at most two lines on stderr and exit status 2: a :class:`~textgym.errors.UserError` from
anywhere and an unknown env id from gymnasium. Ctrl-C prints one line and exits 130.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Literal

from textgym.errors import ConfigError, UserError, closest
from textgym.tools.commands import Command, dispatch
from textgym.tools.flags import build_parser, flag

if TYPE_CHECKING:
    from textgym.registration import EnvSpec

ENTRY_POINTS = "textgym.commands"
COMMANDS: dict[str, str] = {
    "play": "play the agent yourself in the terminal (textgym play <id>)",
    "train": "train an agent (textgym train --algo ppo --env <id>)",
    "bench": "compare algorithms across the suite (textgym bench)",
    "rate": "rate agent turns in the terminal (human feedback)",
    "train-rm": "train a reward model from collected ratings",
}
NAMES = ("list", "serve", *COMMANDS)
INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C
BROKEN_PIPE = 141  # 128 + SIGPIPE, what shells report when the reader of a pipe leaves
# gymnasium's errors for an id it does not know (subclasses of UnregisteredEnv), and the
# others a user causes by naming an env; ResetNeeded, InvalidAction and the like stay
# tracebacks: only textgym's own code can cause those.
GYM_USER_ERRORS = ("UnregisteredEnv", "DeprecatedEnv", "DependencyNotInstalled", "UnsupportedMode")
ENV_ID = re.compile(r"^(?:[\w.-]+:)?(?:[\w.-]+/)?[\w.:-]+-v\d+$")


class CommandLineError(UserError, ValueError):
    """A mistake in the command line itself (e.g. ``--write`` on a file without markers)."""


class UnknownEnvError(UserError, ValueError):
    """An env id that is not registered (the message names the closest registered one)."""


# -- messages -----------------------------------------------------------------------------


def closest_env_id(name: str, ids: Sequence[str]) -> str | None:
    """The registered id in ``ids`` that ``name`` most likely meant, if any is close."""
    if name.startswith("textgym:"):  # gym.make's "module:id" form
        name = name.split(":", 1)[1]
    bare = name.rsplit("/", 1)[-1]
    for env_id in ids:  # the namespace left out: "Reasoning-v0"
        if env_id.rsplit("/", 1)[-1] == bare and env_id != name:
            return env_id
    close = closest(name, ids)
    if close:
        return close[0]
    by_name = {env_id.rsplit("/", 1)[-1]: env_id for env_id in ids}
    close = closest(bare, by_name)
    return by_name[close[0]] if close else None


def unknown_env_message(env_id: str) -> str:
    """``Unknown env id 'X'. Did you mean 'Y'? ...``: textgym's ids first, then all others."""
    import gymnasium as gym

    import textgym

    ours = textgym.env_ids()
    others = [i for i in gym.registry if i not in ours and i != env_id]
    close = closest_env_id(env_id, ours) or closest_env_id(env_id, others)
    hint = f" Did you mean {close!r}?" if close else ""
    return f"Unknown env id {env_id!r}.{hint} `textgym list` shows every textgym id."


def _gym_user_error(exc: BaseException) -> bool:
    """Whether ``exc`` is one of gymnasium's errors for a badly named env."""
    errors = sys.modules.get("gymnasium.error")  # not imported: cannot be one of its errors
    if errors is None:
        return False
    kinds = tuple(getattr(errors, name) for name in GYM_USER_ERRORS if hasattr(errors, name))
    return isinstance(exc, kinds)


def _gym_message(exc: BaseException, argv: Sequence[str]) -> str:
    """gymnasium's error in one line, naming the id the user typed and the closest one."""
    import gymnasium as gym

    if isinstance(exc, gym.error.UnregisteredEnv):
        registered = set(gym.registry)
        values = [v for a in argv for v in (a, a.split("=", 1)[-1])]
        typed = [v for v in values if ENV_ID.match(v) and v not in registered]
        if typed:
            return unknown_env_message(typed[0])
    return " ".join(str(exc).split()) + " `textgym list` shows every textgym id."


def _print_error(prog: str, message: str) -> None:
    """``prog: error: message`` on at most two lines (a longer message is folded)."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()] or [
        "an error without a message"
    ]
    if len(lines) > 2:
        lines = [lines[0], " ".join(lines[1:])]
    print(f"{prog}: error: " + "\n".join(lines), file=sys.stderr)


def run_command(prog: str, body: Callable[[], int | None], argv: Sequence[str] = ()) -> int:
    """Run one command, turning user errors into two lines and an exit status.

    Args:
        prog: How messages name the command (``"textgym train"``).
        body: Does the work; returns the exit status (``None`` counts as 0).
        argv: The command's arguments, to name a mistyped env id in gymnasium's errors.

    Returns:
        ``body``'s status; 2 after a user error; 130 after Ctrl-C.

    Raises:
        SystemExit: from ``--help``, which exits 0 after printing the help.
        Exception: anything that is not the user's mistake, with its traceback.
    """
    try:
        return int(body() or 0)
    except UserError as exc:
        _print_error(prog, str(exc))
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        # `textgym list | head`: the reader left. Python would print a traceback when it
        # flushes stdout at exit; point stdout at /dev/null instead, as the docs advise.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return BROKEN_PIPE
    except Exception as exc:
        if not _gym_user_error(exc):
            raise
        _print_error(prog, _gym_message(exc, argv))
        return 2


# -- the commands -------------------------------------------------------------------------


@dataclass
class ListArgs:
    """The flags of ``textgym list``."""

    markdown: bool = False
    """print the README's Markdown table of the envs instead"""
    write: str | None = flag(None, metavar="FILE")
    """update the table between FILE's env-table markers"""


def list_command(argv: Sequence[str], prog: str = "textgym list") -> int:
    """``textgym list [--markdown] [--write FILE]``: every registered environment id."""

    from textgym.envs import ENV_SPECS, markdown_table, write_table
    from textgym.registration import old_versions_allowed

    parser = build_parser(ListArgs, prog, "Show every registered textgym environment id.")
    args = parser.parse(argv)
    if args.write:
        try:
            write_table(args.write)
        except FileNotFoundError as exc:
            raise CommandLineError(
                f"No file at {args.write!r}; --write updates an existing Markdown file between "
                "its env-table markers."
            ) from exc
        except IsADirectoryError as exc:
            raise CommandLineError(
                f"{args.write!r} is a directory; --write takes a Markdown file."
            ) from exc
        except (OSError, ValueError) as exc:
            if isinstance(exc, UserError):
                raise
            # write_table's other errors are about the file the user named, too.
            raise CommandLineError(str(exc)) from exc
        return 0
    # `textgym list | head` closing the pipe is handled by run_command, for every command.
    if args.markdown:
        print(markdown_table())
        return 0
    width = max(len(s.id) for s in ENV_SPECS)
    for spec in ENV_SPECS:
        with old_versions_allowed():
            line = _list_line(spec, width)
        print(line)
    return 0


@dataclass
class ServeArgs:
    """The flags of ``textgym serve`` (the same defaults as :func:`textgym.serve.run`)."""

    host: str = "127.0.0.1"
    """the address to listen on (0.0.0.0: every interface; there is no authentication)"""
    port: int = 8000
    """the port to listen on (0: a free one)"""
    max_sessions: int = 64
    """how many clients may play at once (one session, one env each)"""
    idle_timeout: float | None = 300.0
    """seconds without a message after which a session is freed (none: never)"""
    env_ids: list[str] | None = flag(None, metavar="ID")
    """the env ids clients may play (default: every textgym id)"""
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "warning"
    """uvicorn's log level (info logs every connection)"""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be in [0, 65535] (0: a free one), got {self.port}.")
        if self.max_sessions < 1:
            raise ConfigError(f"--max-sessions must be at least 1, got {self.max_sessions}.")
        if self.idle_timeout is not None and not self.idle_timeout > 0:
            raise ConfigError(
                f"--idle-timeout must be a number of seconds > 0 (or none: never), got "
                f"{self.idle_timeout}."
            )


def _list_line(spec: EnvSpec, width: int) -> str:
    """One ``textgym list`` line: the id, its sizes (or what it needs), its description."""
    import gymnasium as gym

    if spec.requires:  # sized by the user's argument (their rows)
        return f"{spec.id:<{width}}  {'needs ' + spec.requires + '=':<14} {spec.description}"
    try:
        env = gym.make(spec.id).unwrapped
    except ModuleNotFoundError as exc:
        if not isinstance(exc, UserError):
            raise
        # An optional extra is missing: the id still lists; making it says which.
        return f"{spec.id:<{width}}  {'needs an extra':<14} {spec.description}"
    sizes = f"V={env.action_space.n} L={env.max_length}"
    env.close()
    return f"{spec.id:<{width}}  {sizes:<14} {spec.description}"


def serve_command(argv: Sequence[str], prog: str = "textgym serve") -> int:
    """``textgym serve [--host H] [--port P] ...``: serve envs to remote clients until Ctrl-C."""
    parser = build_parser(
        ServeArgs,
        prog,
        "Serve textgym envs over OpenEnv's HTTP/WebSocket API, one session per client: play\n"
        "them with textgym.remote.RemoteEnv(url, env_id, **kwargs) or any OpenEnv client.",
    )
    args = parser.parse(argv)
    # Imported once the flags are good: openenv-core takes seconds to import.
    from textgym import serve

    serve.run(
        host=args.host,
        port=args.port,
        max_sessions=args.max_sessions,
        idle_timeout=args.idle_timeout,
        env_ids=args.env_ids,
        log_level=args.log_level,
    )
    return 0


def _delegate(what: str, argv: Sequence[str]) -> int:
    """Run the installed ``textgym.commands`` entry point ``what`` with ``argv``."""
    found = [ep for ep in metadata.entry_points(group=ENTRY_POINTS) if ep.name == what]
    if not found:
        raise CommandLineError(
            f"The command {what!r} is not installed (no {ENTRY_POINTS!r} entry point named "
            "it); reinstall textgym with `pip install -e .` from its checkout."
        )
    try:
        command = found[0].load()
    except ModuleNotFoundError as exc:
        module = found[0].module
        if exc.name is None or not module.startswith(exc.name):
            raise  # the module exists but one of its imports is missing: a broken install
        raise CommandLineError(
            f"{module} is not available ({exc}); reinstall textgym with `pip install -e .`."
        ) from exc
    return int(command(list(argv)) or 0)


def _commands() -> dict[str, Command]:
    commands = {
        "list": Command("show every registered environment id", list_command),
        "serve": Command("serve envs to remote trainers (OpenEnv HTTP/WebSocket)", serve_command),
    }
    for name, help_ in COMMANDS.items():
        commands[name] = Command(help_, lambda argv, _, name=name: _delegate(name, argv))
    return commands


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``textgym`` console script (and ``python -m textgym.cli``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in NAMES else None
    prog = f"textgym {command}" if command else "textgym"
    description = "Text tasks as token-level Gymnasium environments."
    return run_command(
        prog,
        lambda: dispatch("textgym", description, _commands(), argv),
        argv[1:] if command else argv,
    )


if __name__ == "__main__":
    sys.exit(main())
