"""docs/testing.md is a test: its files are written out and pytest is run on them.

Every ``python`` and ``toml`` block there starts with a ``# FILE`` comment naming the
file it is; this suite runs pytest on those files (with the plugin installed from
entry points, as a bot author's suite would). The failure message the page shows is
checked against a real failure too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

import pytest

DOC: Final = Path(__file__).parent.parent / "docs" / "testing.md"
BLOCK: Final = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
FILE_LINE: Final = re.compile(r"# ([\w.]+\.(?:py|toml))\n")


def _blocks() -> list[tuple[str, str]]:
    """Every fenced block of the page: (language, text)."""
    return BLOCK.findall(DOC.read_text())


def _files() -> dict[str, str]:
    """The files the page's python and toml blocks are, by name."""
    files: dict[str, str] = {}
    for language, text in _blocks():
        if language not in ("python", "toml"):
            continue
        named = FILE_LINE.match(text)
        assert named, f"a {language} block in {DOC.name} does not start with '# FILE':\n{text}"
        files[named[1]] = text
    return files


def _write(pytester: pytest.Pytester, files: dict[str, str]) -> None:
    for name, text in files.items():
        (pytester.path / name).write_text(text)


def test_testing_docs_example_passes(pytester: pytest.Pytester) -> None:
    """The bot and the tests on the page pass, run as a bot author would run them."""
    files = _files()
    assert {"shout_bot.py", "test_shout_bot.py", "pyproject.toml"} <= set(files)
    _write(pytester, files)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    tests = len(re.findall(r"^async def test_", files["test_shout_bot.py"], re.MULTILINE))
    result.assert_outcomes(passed=tests)


def test_testing_docs_failure_message_is_what_a_broken_bot_gets(
    pytester: pytest.Pytester,
) -> None:
    """The failure shown on the page is, line for line, what a bot that forgot to shout gets."""
    files = _files()
    assert ".upper()" in files["shout_bot.py"]
    files["shout_bot.py"] = files["shout_bot.py"].replace(".upper()", "")
    _write(pytester, files)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-k", "shouts_back")
    result.assert_outcomes(failed=1)
    (shown,) = [text for language, text in _blocks() if "did not come within" in text]
    lines = shown.splitlines()
    result.stdout.fnmatch_lines([f"*{lines[0]}", *(f"*{line.strip()}" for line in lines[1:])])
