"""When to try again after the connection is lost: exponential back-off with jitter.

:func:`backoff_delay` is a pure function of the attempt number and a random draw, so
the schedule is tested exactly; :class:`Backoff` holds the attempt count and the source
of randomness (injectable, so tests choose the draws).

The jitter spreads clients out: when a server restarts, every client loses its
connection in the same instant, and without jitter they would all knock again in the
same instant, every time, for as long as the server is down. "Equal jitter" keeps each
wait between half and all of its nominal length, so the countdown a person sees stays
close to the advertised schedule while a thousand clients are spread over half of it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Final

__all__ = [
    "BACKOFF_FIRST",
    "BACKOFF_JITTER",
    "BACKOFF_MAX",
    "STABLE_CONNECTION",
    "Backoff",
    "backoff_delay",
]

BACKOFF_FIRST: Final = 0.5  # seconds before the first retry: a restart takes about this long
BACKOFF_MAX: Final = 30.0  # seconds between retries at most: a person notices within 30 s
BACKOFF_JITTER: Final = 0.5  # fraction of each wait that is random (see the module docstring)
STABLE_CONNECTION: Final = 10.0  # seconds a connection must last for the schedule to start
# over: a server that welcomes and then drops us at once is not hammered every 0.5 s


def backoff_delay(attempt: int, draw: float) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first).

    Args:
        attempt: how many retries came before this one.
        draw: a random number in ``[0, 1)``; 0 gives the longest wait, so a draw of 0
            is the plain schedule 0.5, 1, 2, 4, 8, 16, 30, 30, ... seconds.

    Returns:
        A wait in ``(nominal * (1 - BACKOFF_JITTER), nominal]``, where ``nominal`` is
        ``BACKOFF_FIRST`` doubled ``attempt`` times, at most ``BACKOFF_MAX``.
    """
    if attempt < 0 or not 0.0 <= draw < 1.0:
        raise ValueError(f"attempt must be 0 or more and draw in [0, 1): {attempt}, {draw}")
    doublings = min(attempt, 64)  # 2**64 * 0.5 is far past the cap; no float overflow
    nominal = min(BACKOFF_MAX, BACKOFF_FIRST * 2.0**doublings)
    return nominal * (1.0 - BACKOFF_JITTER * draw)


class Backoff:
    """The retry schedule of one client: :meth:`next_delay` per try, :meth:`reset` on success.

    Args:
        draw: returns a random number in ``[0, 1)``; :func:`random.random` by default.
    """

    def __init__(self, draw: Callable[[], float] = random.random) -> None:
        self._draw = draw
        self.attempt = 0

    def next_delay(self) -> float:
        """The wait before the next try; each call moves one step along the schedule."""
        delay = backoff_delay(self.attempt, self._draw())
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """Start the schedule over (the last connection lasted; the next loss is news)."""
        self.attempt = 0
