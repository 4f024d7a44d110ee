"""The tabular package's shape: small files, update rules on the first screen, one error.

Read from the source with ``ast``, so a regression names the file and the line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import agents.tabular
from agents.common.checkpoint import CheckpointError
from textgym.errors import UserError

PACKAGE = Path(agents.tabular.__file__).parent
FILES = sorted(PACKAGE.glob("*.py"))
#: What the single-module ``agents/tabular.py`` exported; each stays importable.
OLD_NAMES = [
    "FEATURES",
    "SARSA",
    "CheckpointError",
    "EpisodicAgent",
    "ExactContext",
    "PromptAndLastK",
    "QLearning",
    "DiscreteObservation",
    "StateFeatures",
    "TabularAgent",
    "load",
    "register_agent",
    "make_features",
    "FORMAT_VERSION",
    "CHECKPOINT_FORMAT",
    "CALLER_ONLY",
    "MAX_SEED",
]


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def test_the_old_names_stay_importable() -> None:
    missing = [name for name in OLD_NAMES if not hasattr(agents.tabular, name)]
    assert not missing
    assert set(agents.tabular.__all__) <= set(dir(agents.tabular))


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_no_file_is_long(path: Path) -> None:
    limit = 300 if path.stem in ("qlearning", "sarsa") else 500
    assert len(path.read_text().splitlines()) <= limit


@pytest.mark.parametrize("name", ["qlearning", "sarsa"])
def test_the_update_rule_is_on_the_first_screen(name: str) -> None:
    tree = _tree(PACKAGE / f"{name}.py")
    docstring_end = tree.body[0].end_lineno
    assert docstring_end is not None
    updates = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name == "_observe"
    ]
    assert updates and updates[0] - docstring_end <= 60, updates


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_imports_stand_at_the_top(path: Path) -> None:
    nested = [
        node.lineno
        for top in _tree(path).body
        if not isinstance(top, ast.Import | ast.ImportFrom | ast.Try)
        for node in ast.walk(top)
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]
    assert not nested, f"{path.name}: imports inside definitions at lines {nested}"


def test_one_checkpoint_error_for_every_learner() -> None:
    assert agents.tabular.CheckpointError is CheckpointError
    # Callers of either former class keep catching what they caught.
    assert issubclass(CheckpointError, UserError)
    assert issubclass(CheckpointError, ValueError)
    assert issubclass(CheckpointError, FileNotFoundError)
