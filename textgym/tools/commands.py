"""A command made of sub-commands (``textgym list|play|train...``), with the flags' manners.

:func:`dispatch` runs the sub-command its arguments name; a missing, unknown (with the
closest name) or misplaced one is a one-line :class:`~textgym.errors.ConfigError`, like every
flag's mistake in :mod:`textgym.tools.flags`. Each sub-command parses its own flags.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from textgym.errors import ConfigError, did_you_mean
from textgym.tools.flags import looks_like_flag


@dataclass(frozen=True)
class Command:
    """One sub-command for :func:`dispatch`.

    Args:
        help: One line for the command list of ``--help``.
        run: ``run(argv, prog)`` with the arguments after the command's name and how the
            command is named (``"textgym rate"``); returns the exit status.
        aliases: Other names the command answers to.
    """

    help: str
    run: Callable[[list[str], str], int | None]
    aliases: tuple[str, ...] = ()


def dispatch(
    prog: str,
    description: str,
    commands: Mapping[str, Command],
    argv: Sequence[str],
) -> int:
    """Run the command ``argv`` names with the arguments after it.

    ``-h``/``--help`` (or ``help``) prints the list of commands and returns 0.

    Returns:
        The command's exit status.

    Raises:
        ConfigError: no command, an unknown one (naming the closest) or a flag before it.
    """
    argv = list(argv)
    names = {alias: name for name, c in commands.items() for alias in (name, *c.aliases)}
    if argv and argv[0] in names:
        return int(commands[names[argv[0]]].run(argv[1:], f"{prog} {argv[0]}") or 0)
    listed = ", ".join(commands)
    more = f"`{prog} --help` lists the commands."
    if not argv:
        raise ConfigError(
            f"the following arguments are required: command (one of {listed}). {more}"
        )
    first = argv[0]
    if first in ("-h", "--help", "help"):
        print(commands_help(prog, description, commands))
        return 0
    if looks_like_flag(first):
        raise ConfigError(
            f"Unknown flag {first} for {prog}; flags go after the command "
            f"(`{prog} <command> {first}`). {more}"
        )
    raise ConfigError(
        f"invalid choice: {first!r} (choose from {listed}).{did_you_mean(first, names)} {more}"
    )


def commands_help(prog: str, description: str, commands: Mapping[str, Command]) -> str:
    """The ``--help`` of a command made of sub-commands."""
    width = max(len(name) for name in commands) + 2
    lines = [f"usage: {prog} {{{','.join(commands)}}} ...", "", description.strip(), ""]
    lines.append("commands:")
    for name, command in commands.items():
        also = f" (also: {', '.join(command.aliases)})" if command.aliases else ""
        lines.append(f"  {name:<{width}}{command.help}{also}")
    lines += ["", f"`{prog} <command> --help` lists a command's flags."]
    return "\n".join(lines)
