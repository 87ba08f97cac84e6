"""Latency histograms that cost one bisect and one increment per observation.

An owner (the store writer, the commit gate) keeps a :class:`LatencyHistogram` and
observes once per batch or per commit, never per delivery; its ``statistics()`` hands
out :meth:`LatencyHistogram.snapshot`, and :mod:`triochat.metrics` turns that into a
Prometheus histogram at scrape time. Nothing here imports trio or another triochat
module, so any owner may use it.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from typing import Final

__all__ = ["LATENCY_BUCKETS", "Latency", "LatencyHistogram"]

# Upper bounds in seconds: a batch's fan-out is ~0.1-2 ms in memory and a few ms to
# tens of ms through SQLite (docs/benchmarks.md); seconds mean a disk in trouble.
LATENCY_BUCKETS: Final[tuple[float, ...]] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)


@dataclass(frozen=True, slots=True)
class Latency:
    """A histogram's numbers now.

    Attributes:
        bounds: each bucket's upper bound in seconds (the last bucket, ``+Inf``, has none).
        counts: observations per bucket (not cumulative): ``len(bounds) + 1`` of them.
        total: the sum of every observation, in seconds.
    """

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    total: float

    @property
    def count(self) -> int:
        """Observations so far."""
        return sum(self.counts)


class LatencyHistogram:
    """Counts durations into fixed buckets (see the module docstring)."""

    __slots__ = ("_bounds", "_counts", "_total")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        """Buckets with these upper ``bounds`` (seconds, increasing), plus ``+Inf``."""
        self._bounds = bounds
        self._counts = [0] * (len(bounds) + 1)
        self._total = 0.0

    def observe(self, seconds: float) -> None:
        """Count one duration (a value equal to a bound falls in that bound's bucket)."""
        self._counts[bisect_left(self._bounds, seconds)] += 1
        self._total += seconds

    def snapshot(self) -> Latency:
        """A copy of the counts now."""
        return Latency(self._bounds, tuple(self._counts), self._total)
