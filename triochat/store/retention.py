"""Retention arithmetic shared by the stores (no I/O)."""

from __future__ import annotations

from typing import Final

__all__ = ["SECONDS_PER_DAY", "age_cutoff", "check_retention"]

SECONDS_PER_DAY: Final = 86_400.0  # retention is configured in days; timestamps are seconds


def check_retention(
    retain_days: float | None, retain_messages: int | None, max_rows: int | None
) -> None:
    """Raise ValueError for a negative limit, which can only be a configuration slip.

    Args:
        retain_days: Days of history to keep, or None.
        retain_messages: Messages to keep per room, or None.
        max_rows: Rows one prune call may delete, or None.
    """
    if retain_days is not None and retain_days < 0:
        raise ValueError(f"retain_days must be 0 or more, not {retain_days}")
    if retain_messages is not None and retain_messages < 0:
        raise ValueError(f"retain_messages must be 0 or more, not {retain_messages}")
    if max_rows is not None and max_rows < 1:
        raise ValueError(f"max_rows must be 1 or more, not {max_rows}")


def age_cutoff(now: float, retain_days: float | None) -> float | None:
    """Return the timestamp below which messages are too old, or None if age is no limit.

    Args:
        now: The current time, in seconds since the Unix epoch.
        retain_days: Days of history to keep, or None.
    """
    return None if retain_days is None else now - retain_days * SECONDS_PER_DAY
