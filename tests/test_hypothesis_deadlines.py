"""Every property test runs under an explicit deadline fit for a loaded CI machine.

Neither Hypothesis's default (200 ms: fails at random on two shared cores) nor
``deadline=None`` (a runaway example passes): see tests/deadlines.py.
"""

from __future__ import annotations

import importlib
from datetime import timedelta
from pathlib import Path
from typing import Final

from hypothesis import settings

from tests.deadlines import CPU_DEADLINE, DISK_DEADLINE, PROFILE

TESTS: Final = Path(__file__).parent
FIT: Final = (timedelta(seconds=1), timedelta(seconds=30))  # for a loaded 2-core machine


def property_tests() -> dict[str, timedelta | None]:
    """Each Hypothesis test of the suite, by module and name, with its deadline."""
    found: dict[str, timedelta | None] = {}
    for path in sorted(TESTS.glob("test_*.py")):
        if "hypothesis" not in path.read_text(encoding="utf-8") or path == Path(__file__):
            continue
        module = importlib.import_module(f"tests.{path.stem}")
        for name, test in vars(module).items():
            if callable(test) and hasattr(test, "hypothesis"):
                chosen = getattr(test, "_hypothesis_internal_use_settings", None)
                chosen = chosen if chosen is not None else settings.default
                assert chosen is not None
                found[f"{path.stem}.{name}"] = chosen.deadline
    return found


def test_hypothesis_profile_sets_a_fit_deadline() -> None:
    """Tests that set no deadline get the profile's, not Hypothesis's 200 ms."""
    assert settings.get_profile(PROFILE).deadline == CPU_DEADLINE
    assert settings.default is not None
    assert settings.default.deadline == CPU_DEADLINE
    assert FIT[0] <= CPU_DEADLINE <= DISK_DEADLINE <= FIT[1]


def test_hypothesis_every_property_test_has_a_fit_deadline() -> None:
    """No property test runs without a deadline, or with one a busy machine misses."""
    found = property_tests()
    assert len(found) >= 15, found  # the suite's property tests were all found
    unfit = {
        name: deadline
        for name, deadline in found.items()
        if deadline is None or not FIT[0] <= deadline <= FIT[1]
    }
    assert not unfit, f"property tests without a fit deadline: {unfit}"
