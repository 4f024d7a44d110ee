"""The README tells the truth: its Python snippets run and its env table is current."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from textgym.envs import TABLE_END, TABLE_START, markdown_table

README = Path(__file__).resolve().parents[1] / "README.md"


def test_env_table_is_current() -> None:
    text = README.read_text()
    block = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0]
    assert markdown_table().strip() in block, "run `textgym list --write README.md`"


@pytest.fixture
def clean_reward_registry():
    """Snippets register rewards by name; restore the registry so other tests see the default."""
    from textgym.rewards.registry import REWARDS

    saved = dict(REWARDS)
    yield
    REWARDS.clear()
    REWARDS.update(saved)


def test_python_snippets_run(
    capsys: pytest.CaptureFixture[str], clean_reward_registry: None
) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert len(blocks) >= 4
    for block in blocks:  # each snippet stands alone, as a reader would paste it
        exec(compile(block, str(README), "exec"), {"__name__": "readme"})


@pytest.mark.parametrize("doc", [README, README.parent / "docs" / "readme" / "tasks.md"])
def test_transcript_is_a_real_render(doc: Path) -> None:
    import gymnasium as gym

    block = doc.read_text().split("seed 11, as `env.render()` shows it:\n\n```\n", 1)[1]
    shown = block.split("\n```", 1)[0]
    env = gym.make("textgym/CustomerService-v0", render_mode="ansi")
    env.reset(seed=11)
    done = False
    while not done:
        *_, terminated, truncated, _ = env.step(env.unwrapped.oracle_action())
        done = terminated or truncated
    assert env.render() == shown
