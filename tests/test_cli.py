"""The ``textgym`` command dispatches to the right module."""

from __future__ import annotations

import pytest

import textgym
from textgym.cli import main


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


def test_unknown_command_fails(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["fly"])
    assert exc.value.code == 2
