"""A pytest plugin for irctest runs against triochat: the skip list, and a pass floor.

Loaded with ``-p tests.irctest.plugin`` (``nox -s irctest`` does it). It marks every
test named in ``skips.txt`` as skipped, with that file's reason (a behaviour triochat
does not have is skipped by test id here, never patched in the suite), names the ids
in that file that the suite no longer has, and with ``--min-passed FRACTION`` makes the
run's outcome that share of passes (the IRCv3 set's gate) rather than zero failures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import pytest

__all__ = ["SKIPS", "read_skips"]

SKIPS: Final = Path(__file__).with_name("skips.txt")


def read_skips(path: Path = SKIPS) -> dict[str, str]:
    """Test id -> reason, from ``path``: ``ID  reason`` per line, ``#`` starts a comment."""
    skips: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        test_id, _, reason = line.partition(" ")
        skips[test_id] = reason.strip() or "skipped for triochat"
    return skips


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--min-passed``: the share of selected tests that must pass."""
    parser.addoption(
        "--min-passed",
        type=float,
        default=None,
        help="fail unless at least this fraction (0 to 1) of the selected tests passed",
    )


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Mark the listed tests as skipped, with their reasons."""
    skips = read_skips()
    for item in items:
        reason = skips.get(item.nodeid)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=f"triochat: {reason}"))
    collected = {item.nodeid for item in items}
    files = {item.nodeid.split("::", 1)[0] for item in items}
    stale = [i for i in skips if i.split("::", 1)[0] in files and i not in collected]
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if stale and reporter is not None:
        reporter.write_line(f"skips.txt names tests this run did not select: {', '.join(stale)}")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Apply ``--min-passed``: the run passes if and only if that share of its tests did.

    (The IRCv3 set is a floor, not a wall: some of it checks what triochat does not do.)
    """
    floor = session.config.getoption("min_passed")
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if floor is None or reporter is None:
        return
    if exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        return  # interrupted, a usage or internal error: that says more
    passed = len([r for r in reporter.stats.get("passed", []) if r.when == "call"])
    total = session.testscollected  # (counted after -m and -k deselected theirs)
    enough = passed >= floor * total
    reporter.write_line(
        f"{passed} of {total} selected tests passed; the floor is {floor:.0%}: "
        + ("met" if enough else "NOT met")
    )
    session.exitstatus = pytest.ExitCode.OK if enough else pytest.ExitCode.TESTS_FAILED
