"""The house's structure, read from the source with ``ast``: no import cycles, arrows one way.

Every import counts, including those inside functions and under ``TYPE_CHECKING``: a cycle
hidden in a function is still a cycle for a reader. ``benchmarks -> agents -> textgym``,
never back, not even through ``importlib`` strings.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("textgym", "agents", "benchmarks")
MAX_LINES = 500


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The project module that ``name`` lives in (a dotted name may end in a symbol)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> set[str]:
    """Every project module ``module`` imports, wherever in the file the import stands."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            # `from pkg import sub` imports the submodule, not the package's __init__.
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names
            ]
        else:
            continue
        found.update(t for t in map(_resolve, targets) if t and t != module)
    return found


GRAPH = {module: _imports(module) for module in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    cycles = _cycles(GRAPH)
    detail = "\n".join(
        "  "
        + " <-> ".join(c)
        + "\n    "
        + "; ".join(f"{a} -> {b}" for a in c for b in sorted(GRAPH[a]) if b in c)
        for c in cycles
    )
    assert not cycles, f"import cycles (function-level imports included):\n{detail}"


@pytest.mark.parametrize(
    ("lower", "upper"),
    [("textgym", "agents"), ("textgym", "benchmarks"), ("agents", "benchmarks")],
)
def test_arrows_point_one_way(lower: str, upper: str) -> None:
    wrong = sorted(
        f"{a} -> {b}"
        for a, targets in GRAPH.items()
        if a.split(".")[0] == lower
        for b in targets
        if b.split(".")[0] == upper
    )
    # importlib strings count too: `import_module("agents.train")` is an import by another name.
    hidden = sorted(
        f"{module} -> {call.args[0].value} (import_module)"
        for module, path in MODULES.items()
        if module.split(".")[0] == lower
        for call in ast.walk(ast.parse(path.read_text()))
        if isinstance(call, ast.Call)
        and getattr(call.func, "attr", getattr(call.func, "id", "")) == "import_module"
        and call.args
        and isinstance(call.args[0], ast.Constant)
        and str(call.args[0].value).split(".")[0] == upper
    )
    strings = sorted(
        f"{module}: {node.value!r}"
        for module, path in MODULES.items()
        if module.split(".")[0] == lower
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and _resolve(node.value.split(":")[0]) is not None
        and node.value.split(":")[0].split(".")[0] == upper
    )
    hidden += strings
    assert not wrong and not hidden, f"{lower} must not import {upper}: {wrong + hidden}"


def test_no_file_over_the_size_limit() -> None:
    sizes = defaultdict(int)
    for module, path in MODULES.items():
        sizes[module] = len(path.read_text().splitlines())
    large = {m: n for m, n in sizes.items() if n > MAX_LINES}
    assert not large, f"files over {MAX_LINES} lines: {large}"
