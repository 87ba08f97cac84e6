"""The package's shape: no module longer than 500 lines, no import cycle between modules.

Both rules keep the code readable as it grows: a long module is a class or a file doing
several jobs, and a cycle means two modules cannot be understood (or tested) apart.
Every import statement counts, those under ``if TYPE_CHECKING:`` and inside functions
too: a cycle hidden from the interpreter is still one for the reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "triochat"
MAX_LINES = 500


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The triochat module ``name`` stands for (a package means its ``__init__``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str) -> set[str]:
    """The triochat modules that ``module`` imports, by any import statement."""
    path = MODULES[module]
    return imports_in(path.read_text(), module, is_package=path.name == "__init__.py")


def imports_in(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """The triochat modules that ``source`` (the text of ``module``) imports."""
    tree = ast.parse(source)
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from pkg import mod`` imports the module pkg.mod when there is one.
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            if any(f"{base}.{alias.name}" in MODULES for alias in node.names):
                targets.remove(base)
        else:
            continue
        for target in targets:
            if target == "triochat" or target.startswith("triochat."):
                resolved = _resolve(target)
                if resolved is not None and resolved != module:
                    found.add(resolved)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle in ``graph`` (as a path that ends where it starts), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle is not None:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle is not None:
                return cycle
    return None


def test_the_checks_see_the_package() -> None:
    """The rules below look at real files (a moved package would make them vacuous)."""
    assert {"triochat.core.state", "triochat.server.hub", "triochat.cli"} <= {
        _resolve(name) for name in ("triochat.core.state", "triochat.server.hub", "triochat.cli")
    }
    assert len(MODULES) > 40


def test_find_cycle_finds_one() -> None:
    """The cycle finder itself: a cycle through three modules, and none in a chain."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_imports_counts_type_checking_and_relative_imports() -> None:
    """Imports under TYPE_CHECKING, in functions and relative ones are edges too."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "import trio\n"
        "if TYPE_CHECKING:\n"
        "    from triochat.core.state import ChatState\n"
        "def later() -> None:\n"
        "    import triochat.logs\n"
        "from . import names\n"
        "from ..store import base\n"
    )
    found = imports_in(source, "triochat.core.codec")
    assert found == {
        "triochat.core.state",
        "triochat.logs",
        "triochat.core.names",
        "triochat.store.base",
    }


@pytest.mark.parametrize("module", sorted(MODULES), ids=str)
def test_module_is_short(module: str) -> None:
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines (at most {MAX_LINES}); split it"


def test_no_import_cycle() -> None:
    graph = {module: imports(module) for module in MODULES}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
