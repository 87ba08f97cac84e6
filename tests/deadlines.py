"""Hypothesis deadlines fit for a loaded CI machine (two cores shared with other jobs).

Hypothesis's default deadline (200 ms an example) fails at random on a busy machine,
and ``deadline=None`` lets an example that suddenly takes seconds (a quadratic loop
planted in a parser) pass unnoticed. Every property test names one of these instead;
the ``triochat`` profile (loaded by ``tests/conftest.py``) gives the same deadline to
those that set none.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from hypothesis import settings

__all__ = ["CPU_DEADLINE", "DISK_DEADLINE", "PROFILE"]

# A pure example runs in well under a millisecond here; 2 s is a thousand times that
# (a stalled, shared core), while a runaway loop still fails the test.
CPU_DEADLINE: Final = timedelta(seconds=2)
# An example that opens and writes an SQLite file (fsync on each commit) on a shared disk.
DISK_DEADLINE: Final = timedelta(seconds=10)
PROFILE: Final = "triochat"

settings.register_profile(PROFILE, deadline=CPU_DEADLINE)
