"""The ``textgym`` command dispatches to the right module."""

from __future__ import annotations

import pytest

import textgym
from textgym.cli import closest_env_id, main, run_command
from textgym.errors import ConfigError


def test_list_shows_every_id(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for env_id in textgym.env_ids():
        assert env_id in out


@pytest.mark.parametrize("command", ["rate", "train-rm", "bench", "play", "train"])
def test_subcommands_have_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage" in capsys.readouterr().out


def test_unknown_command_fails_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fly"]) == 2
    assert capsys.readouterr().err == (
        "textgym: error: invalid choice: 'fly' (choose from list, serve, play, train, bench, "
        "rate, train-rm). `textgym --help` lists the commands.\n"
    )
    assert main(["plya"]) == 2
    assert "Did you mean 'play'?" in capsys.readouterr().err


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: textgym {list,serve,play,train,bench,rate,train-rm} ...")
    for line in ("  list      show every registered environment id", "  train-rm  train a"):
        assert line in out


def test_list_writes_the_env_table_between_markers(tmp_path, capsys) -> None:  # noqa: ANN001
    from textgym.envs import TABLE_END, TABLE_START, markdown_table

    doc = tmp_path / "doc.md"
    doc.write_text(f"# Envs\n{TABLE_START}\nstale\n{TABLE_END}\nafter\n")
    assert main(["list", "--write", str(doc)]) == 0
    text = doc.read_text()
    assert "stale" not in text and markdown_table() in text and text.endswith("after\n")
    (tmp_path / "bare.md").write_text("no markers\n")
    assert main(["list", "--write", str(tmp_path / "bare.md")]) == 2
    assert "no table markers; add the lines" in capsys.readouterr().err
    assert main(["list", "--markdown"]) == 0
    assert "| `textgym/Copy-v0` |" in capsys.readouterr().out


def test_closest_env_id_fills_in_the_namespace_and_fixes_typos() -> None:
    ids = textgym.env_ids()
    assert closest_env_id("Reasoning-v0", ids) == "textgym/Reasoning-v0"
    assert closest_env_id("textgym/Dialog-v0", ids) == "textgym/Dialogue-v0"
    assert closest_env_id("textgym:textgym/Copy-v1", ids) == "textgym/Copy-v0"
    assert closest_env_id("zzzzzz", ids) is None


def test_run_command_folds_a_long_user_error_into_two_lines(capsys) -> None:  # noqa: ANN001
    def body() -> int:
        raise ConfigError("first line\nsecond\nthird\n")

    assert run_command("textgym x", body) == 2
    assert capsys.readouterr().err == "textgym x: error: first line\nsecond third\n"


def test_run_command_turns_gymnasium_id_errors_into_one_line(capsys) -> None:  # noqa: ANN001
    import gymnasium as gym

    def body() -> int:
        gym.make("textgym/Copy-v7")
        return 0

    assert run_command("textgym x", body, ["--env", "textgym/Copy-v7"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Did you mean 'textgym/Copy-v0'?" in err


def test_run_command_keeps_other_gymnasium_errors_as_bugs() -> None:
    import gymnasium as gym

    def body() -> int:
        raise gym.error.ResetNeeded("step before reset: textgym's own bug")

    with pytest.raises(gym.error.ResetNeeded):
        run_command("textgym x", body)


def test_usage_errors_are_one_line_naming_the_flag_and_the_help() -> None:
    """A flag's mistake is a ConfigError raised by the flag parser itself: no usage block,
    no patched argparse, no SystemExit."""
    from textgym.feedback.cli import rate

    with pytest.raises(ConfigError) as exc:
        rate(["--log"])
    assert str(exc.value) == (
        "argument --log: expected one argument. `textgym rate --help` lists every flag and its "
        "type."
    )


def test_every_command_names_its_unknown_flags_closest_match(capsys) -> None:  # noqa: ANN001
    for argv, hint in [
        (["list", "--markdwn"], "Did you mean --markdown?"),
        (["play", "--epsiodes", "2"], "Did you mean --episodes?"),
        (["rate", "--smaples", "x", "--log", "y"], "Did you mean --samples?"),
        (["train-rm", "--bs", "4"], "Did you mean --batch-size?"),
        (["bench", "--agos", "random"], "Did you mean --algos?"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"Unknown flag {argv[1]} for textgym {argv[0]}." in err
        assert hint in err, err


def test_a_reader_that_leaves_the_pipe_early_gets_no_traceback() -> None:
    import subprocess
    import sys

    # 16 MB of output: far more than a pipe holds, so the writer meets the closed pipe.
    code = (
        "import sys; from textgym.cli import run_command; "
        "sys.exit(run_command('textgym list', lambda: [print('x' * 80) for _ in range(200000)]))"
    )
    proc = subprocess.run(
        f'"{sys.executable}" -c "{code}" | head -c 1; exit ${{PIPESTATUS[0]}}',
        shell=True, executable="/bin/bash", capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 141, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
