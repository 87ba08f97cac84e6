"""Durations as people type them for bans and mutes: ``30s``, ``10m``, ``2h``, ``7d``, ``4w``."""

from __future__ import annotations

import math
import re
from typing import Final

__all__ = ["MAX_DURATION_S", "UNITS", "format_duration", "format_remaining", "parse_duration"]

UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}  # seconds per unit
MAX_DURATION_S: Final = 3650 * 86_400  # ten years: anything longer is "until lifted"

_DURATION_RE: Final = re.compile(r"([0-9]{1,9})([smhdw])")


def parse_duration(text: str) -> float | None:
    """Seconds for a duration like ``10m``, or None if ``text`` is not one.

    A number and one unit (``s``, ``m``, ``h``, ``d``, ``w``), case-insensitive; at
    least one second and at most :data:`MAX_DURATION_S`.
    """
    match = _DURATION_RE.fullmatch(text.strip().lower())
    if match is None:
        return None
    seconds = int(match[1]) * UNITS[match[2]]
    if not 1 <= seconds <= MAX_DURATION_S:
        return None
    return float(seconds)


def format_duration(seconds: float) -> str:
    """In the largest unit that divides it: ``600`` -> ``10m``, ``90`` -> ``90s``.

    Weeks are shown in days: ``4w`` is ``28d``.
    """
    whole = max(0, round(seconds))
    for unit in ("d", "h", "m"):  # not weeks: "7d" reads better than "1w"
        if whole and whole % UNITS[unit] == 0:
            return f"{whole // UNITS[unit]}{unit}"
    return f"{whole}s"


def format_remaining(seconds: float) -> str:
    """Time left, rounded up to its largest unit: ``539`` -> ``9m``, ``3601`` -> ``2h``."""
    whole = max(1, math.ceil(seconds))
    for unit in ("d", "h", "m"):
        if whole >= UNITS[unit]:
            return f"{math.ceil(whole / UNITS[unit])}{unit}"
    return f"{whole}s"
