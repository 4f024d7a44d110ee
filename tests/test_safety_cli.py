"""Every user error on the ``textgym`` command line: one or two lines, exit status 2.

One row per mistake a person can make at the command line (an unknown command or flag, a
bad flag value, a missing or unwritable file, an unknown env id...). Each runs through
``textgym.cli.main`` in-process; two also run as ``python -m textgym.cli`` to prove the
exit status and the absence of a traceback end to end.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import InterruptAfter
from textgym.cli import main

REPO = Path(__file__).resolve().parents[1]
# Keeps the train rows cheap should a flag be accepted by mistake (the row then fails
# instead of training for minutes).
TINY_TRAIN = ["--total-updates", "1", "--num-envs", "2", "--eval-episodes", "2", "--no-progress"]
# Likewise for bench: one cheap run.
TINY_BENCH = ["--envs", "textgym/Copy-v0", "--algos", "random", "--seeds", "0", "--no-progress"]


def materialize(tmp: Path) -> dict[str, str]:
    """The files the rows refer to, as ``{name}`` placeholders."""
    (tmp / "samples.jsonl").write_text(
        "".join(json.dumps({"context": f"c{i}", "text": f"t{i}"}) + "\n" for i in range(2))
    )
    (tmp / "notjson.jsonl").write_text("hello there\n")
    rating = {"kind": "score", "context": "c", "text": "t", "score": 3.0, "scale": [1, 5]}
    (tmp / "ratings.jsonl").write_text(json.dumps(rating) + "\n" + json.dumps(rating) + "\n")
    (tmp / "empty.jsonl").write_text("")
    (tmp / "corrupt.jsonl").write_text(
        json.dumps(rating) + "\ngarbage\n" + json.dumps(rating) + "\n"
    )
    (tmp / "file.txt").write_text("a file, not a directory\n")
    (tmp / "adir").mkdir()
    (tmp / "adir" / "notes.txt").write_text("someone's work\n")
    (tmp / "bare.md").write_text("no markers here\n")
    return {
        "tmp": str(tmp),
        "samples": str(tmp / "samples.jsonl"),
        "notjson": str(tmp / "notjson.jsonl"),
        "ratings": str(tmp / "ratings.jsonl"),
        "empty": str(tmp / "empty.jsonl"),
        "corrupt": str(tmp / "corrupt.jsonl"),
        "missing": str(tmp / "missing.jsonl"),
        "file": str(tmp / "file.txt"),
        # Cannot be created by anyone, root included: its parent is a regular file.
        "blocked": str(tmp / "file.txt" / "sub"),
        "dir": str(tmp / "adir"),
        "bare": str(tmp / "bare.md"),
    }


def row(rid: str, argv: list[str], fragment: str) -> Any:
    return pytest.param(argv, fragment, id=rid)


RATE = ["rate", "--samples", "{samples}", "--log", "{tmp}/r.jsonl"]
RM = ["train-rm", "--log", "{ratings}", "--out", "{tmp}/rm"]
TRAIN = ["train", "--algo", "ppo", *TINY_TRAIN, "--run-dir", "{tmp}/run"]

ROWS = [
    # -- the command itself
    row("no-command", [], "required: command"),
    row("unknown-command", ["fly"], "invalid choice: 'fly'"),
    row("misspelt-command", ["trian"], "did you mean 'train'"),
    row("top-unknown-flag", ["--fast", "list"], "Unknown flag --fast for textgym; flags go after"),
    # -- list
    row("list-unknown-flag", ["list", "--wide"], "Unknown flag --wide for textgym list."),
    row("list-misspelt-flag", ["list", "--markdwon"], "Did you mean --markdown?"),
    row("list-env-id", ["list", "textgym/Copy-v0"], "unrecognized arguments: textgym/Copy-v0"),
    row("list-write-missing", ["list", "--write", "{missing}"], "missing.jsonl"),
    row("list-write-no-markers", ["list", "--write", "{bare}"], "no table markers"),
    row("list-write-dir", ["list", "--write", "{dir}"], "adir"),
    # -- play
    row("play-misspelt-id", ["play", "textgym/Dialog-v0"], "'textgym/Dialogue-v0'"),
    row("play-no-namespace", ["play", "Reasoning-v0"], "'textgym/Reasoning-v0'"),
    row("play-foreign-id", ["play", "CartPole-v1"], "textgym list"),
    row("play-seed-not-int", ["play", "--seed", "abc"], "invalid int value: 'abc'"),
    row("play-negative-seed", ["play", "--seed", "-1"], "--seed"),
    row("play-zero-episodes", ["play", "--episodes", "0"], "--episodes"),
    row("play-bad-split", ["play", "--split", "dev"], "invalid choice: 'dev'"),
    row("play-unknown-flag", ["play", "--speed", "2"], "Unknown flag --speed for textgym play."),
    row("play-misspelt-flag", ["play", "--sed", "2"], "Did you mean --seed?"),
    # -- train
    row("train-no-algo", ["train"], "Missing --algo"),
    row("train-unknown-algo", ["train", "--algo", "dqn"], "Unknown algorithm 'dqn'"),
    row("train-misspelt-flag", [*TRAIN, "--time-budgt", "5"], "--time-budget"),
    row("train-not-int", [*TRAIN, "--num-envs", "many"], "invalid int value: 'many'"),
    row("train-bad-bool", [*TRAIN, "--resume=yes"], "--resume"),
    row("train-unknown-env", [*TRAIN, "--env", "textgym/Reasonin-v0"], "textgym/Reasoning-v0"),
    row("train-missing-model", [*TRAIN, "--model", "{missing}"], "missing.jsonl"),
    row(
        "train-missing-tokenizer",
        [*TRAIN, "--tokenizer", "{missing}"],
        "missing.jsonl",
    ),
    row(
        "train-negative-grad-norm",
        [*TRAIN, "--max-grad-norm", "-1"],
        "--max-grad-norm",
    ),
    row(
        "train-nan-learning-rate",
        [*TRAIN, "--learning-rate", "nan"],
        "--learning-rate",
    ),
    row(
        "train-negative-time-budget",
        [*TRAIN, "--time-budget", "-5"],
        "--time-budget",
    ),
    row(
        "train-zero-temperature",
        [*TRAIN, "--temperature", "0"],
        "--temperature",
    ),
    row(
        "train-run-dir-blocked",
        ["train", "--algo", "ppo", *TINY_TRAIN, "--run-dir", "{blocked}"],
        "file.txt",
    ),
    row("train-resume-nothing", [*TRAIN, "--resume"], "No checkpoint"),
    # -- bench
    row("bench-bad-preset", ["bench", "--preset", "huge"], "invalid choice: 'huge'"),
    row("bench-unknown-env", ["bench", "--envs", "textgym/Nope-v0"], "textgym/Nope-v0"),
    row(
        "bench-unknown-algo",
        ["bench", "--algos", "dqn"],
        "dqn",
    ),
    row("bench-budget-not-json", ["bench", "--budget", "{timesteps: 5}"], "--budget"),
    row("bench-seed-not-int", ["bench", "--seeds", "one"], "invalid int value: 'one'"),
    row(
        "bench-budget-not-object",
        ["bench", *TINY_BENCH, "--budget", "5", "--out", "{tmp}/b"],
        "--budget",
    ),
    row(
        "bench-budget-unknown-key",
        ["bench", *TINY_BENCH, "--budget", '{"timestepz": 5}', "--out", "{tmp}/b"],
        "timestepz",
    ),
    row(
        "bench-zero-jobs",
        ["bench", *TINY_BENCH, "--jobs", "0", "--out", "{tmp}/b"],
        "--jobs must be a positive integer, got 0",
    ),
    row(
        "bench-negative-seed",
        ["bench", *TINY_BENCH, "--seeds", "-1", "--out", "{tmp}/b"],
        "--seeds",
    ),
    row(
        "bench-out-is-file",
        ["bench", *TINY_BENCH, "--out", "{file}"],
        "file.txt",
    ),
    # -- rate
    row("rate-no-source", ["rate", "--log", "{tmp}/r.jsonl"], "--samples --env"),
    row("rate-no-log", ["rate", "--samples", "{samples}"], "--log"),
    row(
        "rate-misspelt-log", ["rate", "--samples", "{samples}", "--lgo", "x"], "Did you mean --log?"
    ),
    row(
        "rate-missing-samples",
        ["rate", "--samples", "{missing}", "--log", "{tmp}/r.jsonl"],
        "missing.jsonl",
    ),
    row(
        "rate-samples-not-json",
        ["rate", "--samples", "{notjson}", "--log", "{tmp}/r.jsonl"],
        "not JSON",
    ),
    row("rate-samples-is-dir", ["rate", "--samples", "{dir}", "--log", "{tmp}/r.jsonl"], "adir"),
    row(
        "rate-unknown-env",
        ["rate", "--env", "textgym/Copy-v9", "--log", "{tmp}/r.jsonl"],
        "'textgym/Copy-v0'",
    ),
    row("rate-bad-scale", [*RATE, "--scale", "5", "1"], "--scale"),
    row("rate-nan-scale", [*RATE, "--scale", "1", "nan"], "--scale"),
    row(
        "rate-negative-n",
        ["rate", "--env", "textgym/Copy-v0", "--log", "{tmp}/r.jsonl", "--n", "-3"],
        "--n",
    ),
    row("rate-negative-limit", [*RATE, "--limit", "-1"], "--limit"),
    row(
        "rate-negative-seed",
        ["rate", "--env", "textgym/Copy-v0", "--log", "{tmp}/r.jsonl", "--seed", "-1"],
        "--seed",
    ),
    row("rate-bad-mode", [*RATE, "--mode", "rank"], "invalid choice: 'rank'"),
    row("rate-preference-needs-pairs", [*RATE, "--mode", "preference"], "'a' and 'b'"),
    row("rate-log-is-dir", ["rate", "--samples", "{samples}", "--log", "{dir}"], "adir"),
    row("rate-log-blocked", ["rate", "--samples", "{samples}", "--log", "{blocked}"], "file.txt"),
    row(
        "rate-corrupt-log",
        ["rate", "--samples", "{samples}", "--log", "{corrupt}"],
        "corrupt.jsonl:2",
    ),
    # -- train-rm
    row("rm-no-out", ["train-rm", "--log", "{ratings}"], "--out"),
    row("rm-missing-log", ["train-rm", "--log", "{missing}", "--out", "{tmp}/rm"], "missing.jsonl"),
    row("rm-log-is-dir", ["train-rm", "--log", "{dir}", "--out", "{tmp}/rm"], "adir"),
    row("rm-empty-log", ["train-rm", "--log", "{empty}", "--out", "{tmp}/rm"], "No ratings"),
    row(
        "rm-corrupt-log", ["train-rm", "--log", "{corrupt}", "--out", "{tmp}/rm"], "corrupt.jsonl:2"
    ),
    row("rm-epochs-not-int", [*RM, "--epochs", "many"], "invalid int value: 'many'"),
    row("rm-zero-epochs", [*RM, "--epochs", "0"], "--epochs"),
    row("rm-nan-lr", [*RM, "--lr", "nan"], "--lr"),
    row("rm-negative-lr", [*RM, "--lr", "-0.1"], "--lr"),
    row("rm-zero-batch-size", [*RM, "--batch-size", "0"], "--batch-size"),
    row("rm-negative-seed", [*RM, "--seed", "-1"], "--seed"),
    row("rm-out-is-file", ["train-rm", "--log", "{ratings}", "--out", "{file}"], "file.txt"),
    row("rm-out-blocked", ["train-rm", "--log", "{ratings}", "--out", "{blocked}"], "file.txt"),
    row("rm-out-holds-other-files", ["train-rm", "--log", "{ratings}", "--out", "{dir}"], "adir"),
    row("rm-out-is-log", ["train-rm", "--log", "{ratings}", "--out", "{tmp}"], "--out"),
    row(
        "rm-missing-base",
        [*RM, "--base", "{missing}"],
        "missing.jsonl",
    ),
    row(
        "rm-missing-tokenizer",
        [*RM, "--tokenizer", "{missing}"],
        "missing.jsonl",
    ),
]


def fill(argv: list[str], files: dict[str, str]) -> list[str]:
    """``argv`` with each ``{name}`` replaced by its file (other braces, e.g. JSON, stay)."""
    out = []
    for arg in argv:
        for name, value in files.items():
            arg = arg.replace("{" + name + "}", value)
        out.append(arg)
    return out


def run_in_process(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``textgym.cli.main(argv)``: (exit status, stderr); argparse's exits count as returns."""
    try:
        status = main(argv)
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    return status, capsys.readouterr().err


def assert_clear(status: int, err: str, fragment: str) -> None:
    lines = err.strip().splitlines()
    assert "Traceback" not in err, err
    assert status == 2, f"exit status {status}; stderr:\n{err}"
    assert 1 <= len(lines) <= 2, f"{len(lines)} lines on stderr:\n{err}"
    assert fragment.lower() in err.lower(), f"{fragment!r} not in:\n{err}"


@pytest.mark.parametrize(
    ("status", "err"),
    [
        (2, ""),  # nothing said
        (2, "textgym: error: a\nsecond line\nthird line"),  # three lines
        (2, "Traceback (most recent call last):\n  boom"),  # a traceback
        (1, "textgym: error: bad flag"),  # the wrong exit status
        (2, "textgym: error: something else"),  # not the expected message
    ],
)
def test_assert_clear_refuses_what_is_not_a_clear_error(status: int, err: str) -> None:
    # The check every row below goes through can fail: on silence, a third line, a
    # traceback, another exit status, or a message without the fragment asked for.
    with pytest.raises(AssertionError):
        assert_clear(status, err, "bad flag")


@pytest.mark.parametrize(("argv", "fragment"), ROWS)
def test_user_error_is_one_or_two_lines(
    argv: list[str],
    fragment: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # play and rate must not wait for a person
    monkeypatch.chdir(tmp_path)
    status, err = run_in_process(fill(argv, materialize(tmp_path)), capsys)
    assert_clear(status, err, fragment)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["fly"], "invalid choice: 'fly'"),
        (["rate", "--samples", "{missing}", "--log", "{tmp}/r.jsonl"], "missing.jsonl"),
    ],
)
def test_user_error_in_a_real_process(argv: list[str], fragment: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "textgym.cli", *fill(argv, materialize(tmp_path))],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    assert_clear(proc.returncode, proc.stderr, fragment)


def test_keyboard_interrupt_is_one_line_and_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import textgym.play

    def interrupted(*_: Any, **__: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(textgym.play, "play_episode", interrupted)
    status, err = run_in_process(["play", "textgym/Copy-v0"], capsys)
    assert status == 130
    assert err.strip() == "textgym play: interrupted"


def test_a_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    import textgym.play

    def broken(*_: Any, **__: Any) -> Any:
        raise ZeroDivisionError("a bug, not the user's mistake")

    monkeypatch.setattr(textgym.play, "play_episode", broken)
    with pytest.raises(ZeroDivisionError, match="a bug"):
        main(["play", "textgym/Copy-v0"])


def test_valid_commands_still_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wrapper passes successes through: a rating session and a tiny reward model."""
    files = materialize(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO("4\nq\n"))
    assert main(["rate", "--samples", files["samples"], "--log", f"{tmp_path}/r.jsonl"]) == 0
    assert "1 rating(s) logged" in capsys.readouterr().out
    assert (
        main(["train-rm", "--log", files["ratings"], "--out", f"{tmp_path}/rm", "--epochs", "1"])
        == 0
    )
    assert (tmp_path / "rm" / "final_model" / "textgym_reward_model.json").exists()
    # A second run replaces the model it wrote (a reward model directory may be overwritten).
    assert (
        main(["train-rm", "--log", files["ratings"], "--out", f"{tmp_path}/rm", "--epochs", "1"])
        == 0
    )
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".rm.")]


def test_ctrl_c_in_rate_keeps_the_ratings_typed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from textgym.rewards.human import read_ratings

    files = materialize(tmp_path)
    monkeypatch.setattr("sys.stdin", InterruptAfter("4\n"))
    status, err = run_in_process(
        ["rate", "--samples", files["samples"], "--log", f"{tmp_path}/r.jsonl"], capsys
    )
    assert (status, err) == (130, "textgym rate: interrupted\n")
    assert [r.score for r in read_ratings(tmp_path / "r.jsonl")] == [4.0]
