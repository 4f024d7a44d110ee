"""Every command line of the project, built one way: a config dataclass's fields are its flags.

A command declares its arguments as a dataclass, one field per flag, each with a one-line
docstring under it (CleanRL's style), and :func:`build_parser` turns the class into a parser::

    @dataclass
    class PlayArgs:
        env_id: str = flag("textgym/Reasoning-v0", positional=True)
        \"\"\"the textgym id to play\"\"\"
        seed: int | None = None
        \"\"\"seed of the first episode (none: a random one)\"\"\"

    args = build_parser(PlayArgs, "textgym play", "Play an env yourself.").parse(argv)

What a field becomes follows from its type: ``--flag-name`` per field (``batch_size`` ->
``--batch-size``), ``--x/--no-x`` for a ``bool``, the values of a ``Literal`` as its choices,
``none`` for ``None`` in an optional (``int | None``), several values for a ``list[X]`` or
``tuple[X, ...]`` and exactly two for a ``tuple[X, X]``; a field without a default is
required. What the type cannot say (an alias, a positional, choices known only at run time)
goes in :func:`flag`, or in ``build_parser(..., flags=...)`` for a class one cannot annotate.

Every mistake is a :class:`~textgym.errors.ConfigError` in one line that names the flag, the
bad value and the way out (an unknown flag also names the closest known one), never
argparse's usage block and exit: the caller prints it as ``<prog>: error: <message>``.
:mod:`textgym.tools.commands` does the same for a command made of sub-commands (``textgym``).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Literal, NoReturn, TypeVar

from textgym.errors import ConfigError, closest, did_you_mean

C = TypeVar("C")

#: The key of a field's :class:`Flag` in ``dataclasses.field(metadata=...)``.
METADATA_KEY = "textgym.flag"
#: What a person types for ``None`` in an optional field (an empty value counts too).
NONE_WORDS = ("none", "null", "")
#: How an invalid value of each type is explained (argparse's own words come first).
EXPECTED = {int: "a whole number", float: "a number"}


@dataclass(frozen=True)
class Flag:
    """How one field appears on the command line, beyond what its type and docstring say.

    Args:
        aliases: More names for the flag (``("--env",)``, ``("-n",)``).
        positional: An argument without a flag name (optional if the field has a default).
        metavar: The placeholder in ``--help`` (a tuple for a fixed number of values).
        choices: The valid values when they are known only at run time (a ``Literal`` says
            them in the type otherwise).
        nargs: ``"*"`` lets a list flag be given without values; lists take ``"+"``.
        one_of: Fields sharing this name form a group of which exactly one must be given.
    """

    aliases: tuple[str, ...] = ()
    positional: bool = False
    metavar: str | tuple[str, ...] | None = None
    choices: tuple[Any, ...] | None = None
    nargs: str | None = None
    one_of: str | None = None


def flag(
    default: Any = dataclasses.MISSING,
    *,
    default_factory: Any = dataclasses.MISSING,
    aliases: tuple[str, ...] = (),
    positional: bool = False,
    metavar: str | tuple[str, ...] | None = None,
    choices: Sequence[Any] | None = None,
    nargs: str | None = None,
    one_of: str | None = None,
) -> Any:
    """A dataclass field with a :class:`Flag` (see there for the arguments).

    Returns:
        ``dataclasses.field(default=..., metadata={METADATA_KEY: Flag(...)})``.
    """
    spec = Flag(
        aliases=tuple(aliases),
        positional=positional,
        metavar=metavar,
        choices=None if choices is None else tuple(choices),
        nargs=nargs,
        one_of=one_of,
    )
    return dataclasses.field(
        default=default, default_factory=default_factory, metadata={METADATA_KEY: spec}
    )


def flag_name(field: str) -> str:
    """The command-line flag of a config field (``max_grad_norm`` -> ``--max-grad-norm``)."""
    return "--" + field.replace("_", "-")


def field_docs(cls: type) -> dict[str, str]:
    """The one-line docstring under each dataclass field, base classes first (for ``--help``)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue  # no source (a class made at run time): its flags go without help
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:], strict=False):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


# -- converting one value ----------------------------------------------------------------


def _converter(kind: Any, optional: bool, choices: tuple[Any, ...] | None) -> Callable[[str], Any]:
    """``text -> value`` for one value of type ``kind``; a bad one is explained in words."""

    def convert(text: str) -> Any:
        if optional and text.lower() in NONE_WORDS:
            return None
        if choices is not None:
            for choice in choices:
                if text == str(choice):
                    return choice
            listed = ", ".join(repr(str(c)) for c in choices)
            or_none = ", or none" if optional else ""
            hint = did_you_mean(text, [str(c) for c in choices])
            raise argparse.ArgumentTypeError(
                f"invalid choice: {text!r} (choose from {listed}{or_none}).{hint}"
            )
        try:
            return kind(text)
        except (TypeError, ValueError):
            expected = EXPECTED.get(kind, f"a {kind.__name__}")
            or_none = " or none" if optional else ""
            raise argparse.ArgumentTypeError(
                f"invalid {kind.__name__} value: {text!r}; give {expected}{or_none}"
            ) from None

    convert.__name__ = getattr(kind, "__name__", "value")
    return convert


def _unwrap_optional(kind: Any) -> tuple[Any, bool]:
    """``(X, True)`` for ``X | None`` (or ``Optional[X]``), else ``(kind, False)``."""
    args = typing.get_args(kind)
    union = typing.get_origin(kind) is typing.Union or isinstance(kind, types.UnionType)
    if union and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return rest[0], True
    return kind, False


def _element(kind: Any) -> tuple[Any, str | int | None, type | None]:
    """``(element type, nargs, container)`` of a list or tuple type; plain types pass."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is list and len(args) == 1:
        return args[0], "+", list
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return args[0], "+", tuple
    if origin is tuple and args and len(set(args)) == 1:
        return args[0], len(args), tuple
    return kind, None, None


# -- the parser --------------------------------------------------------------------------


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The description as written (it is often a module docstring), and each flag's default
    after its docstring, or ``(required)`` for a flag without one. A docstring that says
    what its default means (``(default: ...)``, or ``(none: ...)`` for a default of None)
    is not followed by the bare value."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.required:
            return f"{text} (required)".strip()
        said = "(default:" in text or (action.default is None and "(none:" in text)
        if (
            not said
            and action.default is not argparse.SUPPRESS
            and (
                action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE)
            )
        ):
            default = action.default
            if isinstance(default, (list, tuple)):
                default = " ".join(map(str, default)) or "(none)"
            return f"{text} (default: {str(default).replace('%', '%%')})".strip()
        return text


class FlagParser(argparse.ArgumentParser, Generic[C]):
    """argparse, but every mistake raises a one-line :class:`ConfigError` (never the usage
    block and an exit), an unknown flag names the closest known one, and :meth:`parse`
    returns the config dataclass.

    Args:
        config_class: The dataclass whose fields are the flags (:func:`build_parser` adds
            them).
        command: How "Unknown flag X for <command>" names the command (default: ``prog``).
        **kwargs: For :class:`argparse.ArgumentParser` (``prog``, ``description``...).
    """

    def __init__(self, config_class: type[C], command: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(**kwargs)
        self.config_class = config_class
        self.command = command or self.prog
        #: Fields whose values argparse gives as a list but the dataclass holds as a tuple.
        self.tuple_fields: set[str] = set()

    def error(self, message: str) -> NoReturn:
        """Raise ``message`` as a :class:`ConfigError` that says where the flags are listed."""
        message = message.strip()
        end = "" if message.endswith((".", "?", "!")) else "."
        # argparse calls this while handling its own error: that chain is no news to anyone.
        raise ConfigError(
            f"{message}{end} `{self.prog} --help` lists every flag and its type."
        ) from None

    def known_flags(self) -> list[str]:
        """Every flag the parser accepts, aliases included, ``--help`` excluded."""
        return [
            name
            for action in self._actions
            if not isinstance(action, argparse._HelpAction)
            for name in action.option_strings
        ]

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        """Parse ``args`` (default: ``sys.argv[1:]``) into a namespace, or raise.

        Raises:
            ConfigError: an unknown flag (naming the closest known one), a bad value, a
                missing required flag, or a stray argument.
        """
        argv = list(sys.argv[1:] if args is None else args)
        try:
            parsed, extras = self.parse_known_args(argv, namespace)
        except ConfigError as exc:
            failure: ConfigError | None = exc
        else:
            failure = None
        if failure is not None:
            # A misspelt flag often causes the error argparse saw first ("--log is
            # required" after --lgo): naming the misspelling explains it better.
            unknown = self._unknown_in(argv)
            if unknown:
                self._refuse(unknown)
            raise failure
        if extras:
            self._refuse(extras)
        for name in self.tuple_fields:
            value = getattr(parsed, name, None)
            if isinstance(value, list):
                setattr(parsed, name, tuple(value))
        return parsed

    def parse(self, args: Sequence[str] | None = None) -> C:
        """Parse ``args`` into an instance of the config dataclass (its checks run too)."""
        parsed = self.parse_args(args)
        names = [f.name for f in dataclasses.fields(self.config_class) if f.init]  # type: ignore[arg-type]
        return self.config_class(**{name: getattr(parsed, name) for name in names})

    def _unknown_in(self, argv: list[str]) -> list[str]:
        """The arguments of ``argv`` that look like flags this parser does not know (an
        abbreviation argparse would expand counts as known)."""
        known = [*self.known_flags(), "-h", "--help"]
        unknown = []
        for arg in argv:
            if arg == "--":
                break  # everything after it is a value
            name = arg.split("=", 1)[0]
            if not looks_like_flag(arg) or name in known:
                continue
            if name.startswith("--"):
                if self.allow_abbrev and any(k.startswith(name) for k in known):
                    continue
            elif any(name.startswith(k) for k in known if not k.startswith("--")):
                continue  # -n5: a short flag with its value attached
            unknown.append(arg)
        return unknown

    def _refuse(self, extras: list[str]) -> NoReturn:
        flags = [a.split("=", 1)[0] for a in extras if looks_like_flag(a)]
        if not flags:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        name, known = flags[0], self.known_flags()
        # Initials first (--lr for --learning-rate), then close spellings (--time-budgt).
        close = [k for k in known if k.startswith("--") and _initials(k) == name.lstrip("-")]
        close = close or closest(name, known)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise ConfigError(
            f"Unknown flag {name} for {self.command}.{hint} `{self.prog} --help` lists every flag."
        )


def _initials(flag_: str) -> str:
    return "".join(word[0] for word in flag_.lstrip("-").split("-") if word)


def looks_like_flag(arg: str) -> bool:
    """Whether ``arg`` is ``--x`` or ``-x`` (not ``--``, ``-`` or a negative number)."""
    if not arg.startswith("-") or arg == "--" or len(arg) == 1:
        return False
    try:
        float(arg)
    except ValueError:
        return True
    return False


def build_parser(
    config_class: type[C],
    prog: str,
    description: str,
    *,
    flags: Mapping[str, Flag] | None = None,
    command: str | None = None,
    epilog: str | None = None,
) -> FlagParser[C]:
    """A parser with one argument per field of ``config_class``, documented by its docstring.

    Args:
        config_class: A dataclass; every ``init`` field becomes a flag (see the module
            docstring for what each type becomes).
        prog: The command as a person types it (``"textgym play"``), for help and errors.
        description: What ``--help`` says first (shown as written).
        flags: :class:`Flag` of fields by name, for a class whose fields carry none (they
            override a field's own).
        command: How "Unknown flag X for <command>" names the command (default: ``prog``).
        epilog: What ``--help`` says last.

    Raises:
        TypeError: ``config_class`` is not a dataclass, or a field has a type with no flag
            form (a dict, a union of two types...): a mistake in the code, not the user's.
    """
    if not (isinstance(config_class, type) and dataclasses.is_dataclass(config_class)):
        raise TypeError(f"build_parser takes a dataclass, got {config_class!r}.")
    parser: FlagParser[C] = FlagParser(
        config_class, command=command, prog=prog, description=description, epilog=epilog
    )
    docs = field_docs(config_class)
    hints = typing.get_type_hints(config_class)
    groups: dict[str, Any] = {}
    for field in dataclasses.fields(config_class):
        if not field.init:
            continue
        spec = (flags or {}).get(field.name) or field.metadata.get(METADATA_KEY) or Flag()
        target: Any = parser
        if spec.one_of is not None:
            target = groups.get(spec.one_of)
            if target is None:
                target = groups[spec.one_of] = parser.add_mutually_exclusive_group(required=True)
        _add_field(parser, target, field, hints[field.name], spec, docs.get(field.name, ""))
    return parser


def _add_field(
    parser: FlagParser[Any],
    target: Any,
    field: dataclasses.Field[Any],
    kind: Any,
    spec: Flag,
    doc: str,
) -> None:
    """Add ``field`` to ``target`` (the parser, or a group of it) as its type says."""
    kwargs: dict[str, Any] = {"help": doc.replace("%", "%%")}
    if field.default is not dataclasses.MISSING:
        kwargs["default"] = field.default
    elif field.default_factory is not dataclasses.MISSING:
        kwargs["default"] = field.default_factory()
    required = "default" not in kwargs
    if spec.positional:
        names = [field.name]
        if not required:
            kwargs["nargs"] = "?"
    else:
        names = [flag_name(field.name), *spec.aliases]
        kwargs["dest"] = field.name
        if required and spec.one_of is None:
            kwargs["required"] = True
    if spec.metavar is not None:
        kwargs["metavar"] = spec.metavar
    base, optional = _unwrap_optional(kind)
    if base is bool:
        if spec.positional:
            raise TypeError(f"{field.name}: a bool field cannot be positional.")
        target.add_argument(*names, action=argparse.BooleanOptionalAction, **kwargs)
        return
    element, nargs, container = _element(base)
    if nargs is not None:
        kwargs["nargs"] = spec.nargs or nargs
        if container is tuple:
            parser.tuple_fields.add(field.name)
        # A list | None is None when the flag is not given; its values are never None.
        optional = False
    choices = spec.choices
    if typing.get_origin(element) is Literal:
        choices = typing.get_args(element)
        element = type(choices[0])
    if element not in (str, int, float, Path) and choices is None:
        raise TypeError(
            f"{field.name}: the type {kind!r} has no flag form; use str, int, float, Path, "
            "bool, a Literal, an optional or a list/tuple of those."
        )
    if choices is not None and "metavar" not in kwargs:
        kwargs["metavar"] = "{" + ",".join(map(str, choices)) + "}"
    kwargs["type"] = _converter(element, optional, choices)
    target.add_argument(*names, **kwargs)


def peek(argv: Sequence[str], name: str) -> str | None:
    """The value ``argv`` gives the flag ``name`` (the last one wins), or None, without
    parsing the rest: for a command whose flags depend on one of them (``--algo``).

    ``--name value`` and ``--name=value`` count; nothing after ``--`` does.
    """
    value = None
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == name and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
    return value


def parse_config(
    config_class: type[C],
    argv: Sequence[str] | None,
    prog: str,
    description: str,
    **options: Any,
) -> C:
    """``build_parser(config_class, prog, description, **options).parse(argv)``."""
    return build_parser(config_class, prog, description, **options).parse(argv)
