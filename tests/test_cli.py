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
