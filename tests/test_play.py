"""`textgym play`: a person plays the agent through stdin."""

from __future__ import annotations

import io

import gymnasium as gym
import pytest

import textgym
from textgym.cli import main as cli_main
from textgym.play import play_episode


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys, lines: list[str], *argv: str) -> str:
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(f"{x}\n" for x in lines)))
    assert cli_main(["play", *argv]) == 0
    return capsys.readouterr().out


def test_oracle_turn_wins_reasoning(monkeypatch, capsys) -> None:
    env = gym.make("textgym/Reasoning-v0").unwrapped
    env.reset(seed=5)
    oracle = env.task.oracle(env.problem, env.turns)
    out = run_cli(monkeypatch, capsys, [oracle], "textgym/Reasoning-v0", "--seed", "5")
    assert env.problem.prompt in out and "success=True" in out and "correctness=1.00" in out


def test_multi_turn_shows_replies_and_handles_commands(monkeypatch, capsys) -> None:
    lines = [":help", ":oracle", "", "qwertyuiop", "i like big trains", ":quit"]
    out = run_cli(monkeypatch, capsys, lines, "textgym/Dialogue-v0", "--seed", "0")
    assert "oracle:" in out and "user: hello?" in out
    assert "not in the vocabulary" in out and "does not answer" in out


def test_eof_and_unknown_id(monkeypatch, capsys) -> None:
    out = run_cli(monkeypatch, capsys, [], "textgym/CustomerService-v0")
    assert "0 success(es)" in out
    assert cli_main(["play", "textgym/Dialog-v0"]) == 2
    assert "Dialogue-v0" in capsys.readouterr().err


def test_play_episode_plays_the_oracle_to_success() -> None:
    env = gym.make("textgym/CustomerService-v0").unwrapped
    said: list[str] = []

    def read(_: str) -> str:
        return env.task.oracle(env.problem, tuple(env.turns))

    info = play_episode(env, seed=2, read=read, write=said.append)
    assert info is not None and info["success"]
    assert any(line.startswith("user: thank you") for line in said)


def test_long_turn_is_reported_as_cut(monkeypatch, capsys) -> None:
    out = run_cli(monkeypatch, capsys, ["one two " * 40], "textgym/Reasoning-Easy-v0")
    assert "cut at max_new_tokens" in out and "truncated" in out
    assert textgym.env_ids()


def test_play_and_demo_refuse_bad_values_in_one_line(capsys, monkeypatch) -> None:  # noqa: ANN001
    import subprocess
    import sys
    from pathlib import Path

    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert cli_main(["play", "CartPole-v1"]) == 2
    assert "not a textgym env" in capsys.readouterr().err
    assert cli_main(["play", "--episodes", "0"]) == 2
    assert capsys.readouterr().err.strip() == (
        "textgym play: error: --episodes must be at least 1, got 0."
    )
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-m", "textgym.demo", "textgym/Copy-v9"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "PYTHONPATH": str(repo)},
        timeout=300,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "python -m textgym.demo: error: Unknown env id 'textgym/Copy-v9'. Did you mean "
        "'textgym/Copy-v0'? `textgym list` shows every textgym id."
    ]
