"""The environment table in the docs is generated and current; task docstrings have the
Gymnasium headings."""

from __future__ import annotations

from pathlib import Path

import pytest

import textgym
from textgym.envs import markdown_table
from textgym.tasks import TASKS

DOC = Path(__file__).parents[1] / "docs" / "readme" / "tasks.md"
HEADINGS = (
    "## Description", "## Observation Space", "## Action Space", "## Rewards",
    "## Episode End", "## Arguments", "## Registered Configurations", "## Version History",
)  # fmt: skip


def test_table_lists_every_id_and_is_current() -> None:
    table = markdown_table()
    for env_id in textgym.env_ids():
        assert f"`{env_id}`" in table
    assert table in DOC.read_text(), "run `textgym list --write docs/readme/tasks.md`"


@pytest.mark.parametrize("name", ["reasoning", "dialogue", "customer_service"])
def test_task_docstrings_have_gymnasium_headings(name: str) -> None:
    doc = TASKS[name].__doc__ or ""
    positions = [doc.find(h) for h in HEADINGS]
    assert -1 not in positions and positions == sorted(positions)
    for spec in textgym.ENV_SPECS:
        if spec.kwargs.get("task") == name:
            assert spec.id in doc
