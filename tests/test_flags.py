"""textgym.tools.flags: a config dataclass becomes a command line, and every mistake one line."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from textgym.errors import ConfigError, closest, did_you_mean
from textgym.tools.commands import Command, dispatch
from textgym.tools.flags import (
    Flag,
    FlagParser,
    build_parser,
    field_docs,
    flag,
    flag_name,
    parse_config,
    peek,
)

PROG = "tool"


@dataclass
class Base:
    """A base class: its fields come first, with their docstrings."""

    learning_rate: float = 1e-3
    """Adam learning rate"""
    time_budget: float = 0.0
    """stop after this many seconds (0: no limit); 100% of them are training"""


@dataclass(kw_only=True)
class Args(Base):
    """Every kind of flag."""

    env_id: str = flag("textgym/Copy-v0", positional=True)
    """the env to use"""
    out: Path
    """where the results go"""
    seed: int | None = None
    """seed of the run (none: a random one)"""
    progress: bool = True
    """show a progress bar"""
    mode: Literal["score", "preference"] = "score"
    """how to rate"""
    algo: str = flag("ppo", choices=("ppo", "grpo"), aliases=("-a",))
    """the algorithm, among choices known at run time"""
    envs: list[str] | None = flag(None, nargs="*")
    """override the envs; given empty, none"""
    seeds: tuple[int, ...] = (0, 1)
    """the seeds, two or more
    spread over two lines"""
    scale: tuple[float, float] = flag((1.0, 5.0), metavar=("LOW", "HIGH"))
    """lowest and highest score"""


def parse(*argv: str) -> Args:
    return build_parser(Args, PROG, "Test every kind of flag.").parse(["--out", "o", *argv])


def error(cls: type, *argv: str) -> str:
    with pytest.raises(ConfigError) as exc:
        build_parser(cls, PROG, "A test.").parse(list(argv))
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_defaults_come_from_the_dataclass() -> None:
    args = parse()
    assert args == Args(out=Path("o"))
    assert isinstance(args.out, Path) and args.seeds == (0, 1) and args.envs is None


def test_every_kind_of_flag_parses() -> None:
    args = parse(
        "textgym/Dialogue-v0",
        "--learning-rate=0.5",
        "--seed",
        "7",
        "--no-progress",
        "--mode",
        "preference",
        "-a",
        "grpo",
        "--envs",
        "a",
        "b",
        "--seeds",
        "3",
        "--scale",
        "0",
        "10",
    )
    assert args.env_id == "textgym/Dialogue-v0" and args.learning_rate == 0.5
    assert (args.seed, args.progress, args.mode, args.algo) == (7, False, "preference", "grpo")
    assert args.envs == ["a", "b"] and args.seeds == (3,) and args.scale == (0.0, 10.0)
    assert parse("--seed", "none").seed is None and parse("--seed", "NULL").seed is None
    assert parse("--envs").envs == []  # nargs="*": given without values
    assert parse("--progress").progress is True


def test_bad_values_name_the_flag_the_value_and_the_fix() -> None:
    suffix = "`tool --help` lists every flag and its type."
    assert error(Args, "--out", "o", "--seed", "abc") == (
        f"argument --seed: invalid int value: 'abc'; give a whole number or none. {suffix}"
    )
    assert error(Args, "--out", "o", "--learning-rate", "fast") == (
        f"argument --learning-rate: invalid float value: 'fast'; give a number. {suffix}"
    )
    assert error(Args, "--out", "o", "--mode", "scores") == (
        "argument --mode: invalid choice: 'scores' (choose from 'score', 'preference'). "
        f"Did you mean 'score'? {suffix}"
    )
    assert error(Args, "--out", "o", "--algo", "dqn") == (
        f"argument --algo/-a: invalid choice: 'dqn' (choose from 'ppo', 'grpo'). {suffix}"
    )
    assert error(Args, "--out", "o", "--seeds", "1", "x") == (
        f"argument --seeds: invalid int value: 'x'; give a whole number. {suffix}"
    )
    assert error(Args, "--out", "o", "--scale", "1") == (
        f"argument --scale: expected 2 arguments. {suffix}"
    )
    assert error(Args, "--out", "o", "--progress=yes") == (
        f"argument --progress/--no-progress: ignored explicit argument 'yes'. {suffix}"
    )
    assert error(Args) == f"the following arguments are required: --out. {suffix}"
    assert error(Args, "--out", "o", "a", "b") == f"unrecognized arguments: b. {suffix}"


def test_an_unknown_flag_names_the_closest_known_one() -> None:
    more = "`tool --help` lists every flag."
    # Initials first, then close spellings, then nothing to suggest.
    assert error(Args, "--out", "o", "--lr", "1") == (
        f"Unknown flag --lr for tool. Did you mean --learning-rate? {more}"
    )
    assert error(Args, "--out", "o", "--time-budgt=5") == (
        f"Unknown flag --time-budgt for tool. Did you mean --time-budget? {more}"
    )
    assert error(Args, "--out", "o", "--zzzz") == f"Unknown flag --zzzz for tool. {more}"
    # Even when the misspelling also leaves a required flag out: it is the better news.
    assert error(Args, "--otu", "o") == (f"Unknown flag --otu for tool. Did you mean --out? {more}")
    # A unique prefix is argparse's abbreviation, not an unknown flag; -5 is a value.
    assert parse("--learn", "0.25").learning_rate == 0.25
    assert parse("--time-budget", "-5").time_budget == -5.0


def test_help_lists_every_flag_with_its_docstring_and_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = build_parser(Args, PROG, "Test every kind of flag.\n\n  kept as written")
    with pytest.raises(SystemExit) as exc:
        parser.parse(["--help"])
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert out.startswith("usage: tool [-h]")
    assert "Test every kind of flag." in out and "--learning-rate LEARNING_RATE" in out
    for text in [
        "env_id the env to use (default: textgym/Copy-v0)",
        "--out OUT where the results go (required)",
        "--learning-rate LEARNING_RATE Adam learning rate (default: 0.001)",
        "(0: no limit); 100% of them are training (default: 0.0)",
        "--seed SEED seed of the run (none: a random one) --progress",  # none: says it
        "--progress, --no-progress show a progress bar (default: True)",
        "--mode {score,preference} how to rate (default: score)",
        "--algo {ppo,grpo}, -a {ppo,grpo} the algorithm",
        "--envs [ENVS ...] override the envs; given empty, none (default: None)",
        "--seeds SEEDS [SEEDS ...] the seeds, two or more spread over two lines (default: 0 1)",
        "--scale LOW HIGH lowest and highest score (default: 1.0 5.0)",
    ]:
        assert text in out, text


def test_field_docs_reads_base_classes_and_joins_lines() -> None:
    docs = field_docs(Args)
    assert list(docs)[:2] == ["learning_rate", "time_budget"]
    assert docs["seeds"] == "the seeds, two or more spread over two lines"
    assert flag_name("max_grad_norm") == "--max-grad-norm"


def test_a_class_that_cannot_be_annotated_takes_its_flags_at_the_call() -> None:
    """What ``textgym train`` needs: --env for env_id, 'for --algo ppo' in the message, a
    flag of its own added after the fields, and defaults reset from a run's config.json."""

    @dataclass
    class Train:
        env_id: str = "textgym/Reasoning-v0"
        seed: int = 1

    parser = build_parser(
        Train, "textgym train --algo ppo", "Train.", flags={"env_id": Flag(aliases=("--env",))},
        command="--algo ppo",
    )  # fmt: skip
    parser.add_argument("--algo", default="ppo")
    assert vars(parser.parse_args(["--env", "x"])) == {"env_id": "x", "seed": 1, "algo": "ppo"}
    assert parser.parse(["--algo", "ppo", "--seed", "3"]) == Train(seed=3)
    parser.set_defaults(seed=9)
    assert parser.parse_args([]).seed == 9
    with pytest.raises(ConfigError, match=r"^Unknown flag --sede for --algo ppo\. Did you mean "):
        parser.parse_args(["--sede", "1"])
    assert "--algo" in parser.known_flags() and "--help" not in parser.known_flags()


def test_one_of_a_group_is_required_and_the_dataclass_checks_run() -> None:
    @dataclass
    class Rate:
        samples: str | None = flag(None, one_of="source")
        env: str | None = flag(None, one_of="source")
        n: int = 50

        def __post_init__(self) -> None:
            if self.n < 0:
                raise ConfigError(f"--n must be 0 or more, got {self.n}.")

    assert parse_config(Rate, ["--env", "e"], PROG, "Rate.") == Rate(env="e")
    assert "one of the arguments --samples --env is required" in error(Rate)
    assert "not allowed with argument" in error(Rate, "--env", "e", "--samples", "s")
    assert error(Rate, "--env", "e", "--n", "-1") == "--n must be 0 or more, got -1."


def test_a_field_without_a_flag_form_is_a_bug_not_a_user_error() -> None:
    @dataclass
    class Bad:
        table: dict[str, int] = field(default_factory=dict)

    with pytest.raises(TypeError, match=r"table: the type .* has no flag form"):
        build_parser(Bad, PROG, "Bad.")
    with pytest.raises(TypeError, match="takes a dataclass"):
        build_parser(int, PROG, "Bad.")  # type: ignore[arg-type]
    assert isinstance(build_parser(Args, PROG, "Ok."), FlagParser)
    assert not dataclasses.fields(Args)[0].metadata  # a plain field keeps no metadata


def test_dispatch_runs_the_command_named_or_says_what_is_wrong(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ran: list[tuple[list[str], str]] = []
    commands = {
        "rate": Command("rate turns", lambda argv, prog: ran.append((argv, prog)) or 0),
        "train-rm": Command("train a reward model", lambda argv, prog: 3, aliases=("train",)),
    }
    assert dispatch(PROG, "Rate and train.", commands, ["rate", "--log", "x"]) == 0
    assert ran == [(["--log", "x"], "tool rate")]
    assert dispatch(PROG, "Rate and train.", commands, ["train"]) == 3
    assert dispatch(PROG, "Rate and train.", commands, ["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: tool {rate,train-rm} ...\n\nRate and train.\n")
    assert "  train-rm  train a reward model (also: train)" in out
    more = "`tool --help` lists the commands."
    for argv, message in [
        ([], f"the following arguments are required: command (one of rate, train-rm). {more}"),
        (["rat"], f"invalid choice: 'rat' (choose from rate, train-rm). Did you mean 'rate'? {more}"),
        (["--log", "rate"], f"Unknown flag --log for tool; flags go after the command (`tool <command> --log`). {more}"),
    ]:  # fmt: skip
        with pytest.raises(ConfigError) as exc:
            dispatch(PROG, "Rate and train.", commands, argv)
        assert str(exc.value) == message


def test_peek_reads_one_flag_without_parsing_the_others() -> None:
    assert peek(["--algo", "ppo", "--lr", "x"], "--algo") == "ppo"
    assert peek(["--algo=grpo", "--algo", "ppo"], "--algo") == "ppo"  # the last one wins
    assert peek(["--algo"], "--algo") is None and peek(["--", "--algo", "x"], "--algo") is None


def test_did_you_mean_is_one_sentence_or_nothing() -> None:
    assert did_you_mean("cpy", ["copy", "reasoning"]) == " Did you mean 'copy'?"
    assert did_you_mean("zzz", ["copy", "reasoning"]) == ""
    assert closest("reasonin", iter(["copy", "reasoning", "reason"]), n=2) == [
        "reasoning",
        "reason",
    ]
    assert closest("abc", ["abd"], cutoff=0.9) == []
