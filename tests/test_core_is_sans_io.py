"""The sans-IO rule: ``triochat.core`` imports nothing async, only the stdlib and itself."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parent.parent / "triochat" / "core"
MODULES = sorted(CORE.rglob("*.py"))
# Libraries core may use beside the stdlib: pure functions on bytes and strings, no I/O
# (orjson: the JSON codec, issue 19 item 6).
PURE_LIBRARIES = frozenset({"orjson"})


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
        elif isinstance(node, ast.ImportFrom):
            names.append("triochat.core")  # a relative import stays inside the package
    return names


def test_core_has_modules() -> None:
    """The check below really looks at files (a moved package would make it vacuous)."""
    assert {p.stem for p in MODULES} >= {"framing", "hygiene", "names", "table", "codec", "state"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_core_imports_only_stdlib_and_core(path: Path) -> None:
    """A trio (or rich, or server) import in core would tie protocol logic to I/O."""
    for name in _imports(path):
        top = name.split(".")[0]
        if top == "triochat":
            assert name == "triochat.core" or name.startswith("triochat.core."), name
        else:
            assert top in sys.stdlib_module_names or top in {"__future__", *PURE_LIBRARIES}, name
