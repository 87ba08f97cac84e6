"""The irctest skip list (tests/irctest/skips.txt): every line is an id with a reason.

The conformance run itself needs a checkout of the suite (``nox -s irctest``); this
only checks the list it reads, so a typo cannot silently skip nothing.
"""

from __future__ import annotations

import re

from tests.irctest.plugin import SKIPS, read_skips

TEST_ID = re.compile(r"irctest/server_tests/\w+\.py::\w+::\w+(\[[\w-]+\])?")


def test_irctest_skips_are_test_ids_with_reasons() -> None:
    """Each entry names one suite test (file::Class::test[param]) and says why."""
    skips = read_skips()
    assert skips
    for test_id, reason in skips.items():
        assert TEST_ID.fullmatch(test_id), test_id
        assert reason.startswith("needs "), (test_id, reason)


def test_irctest_skips_list_each_test_once() -> None:
    """No id is listed twice (the second reason would hide the first)."""
    ids = [
        line.split(maxsplit=1)[0]
        for line in SKIPS.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert len(ids) == len(set(ids))
