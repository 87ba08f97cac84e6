"""Flood control as a token bucket. No I/O: the caller supplies the clock.

The server does not drop or reject lines over the limit. It asks the bucket how long
to wait and simply stops reading that connection for that long, so the kernel's
receive buffer fills and TCP slows the sender down. A paste of up to ``burst`` lines
goes through at once.
"""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """Allow ``rate`` events per second on average and bursts of up to ``burst``.

    A ``rate`` of 0 (or less) disables the limit: :meth:`take` always returns 0.
    """

    __slots__ = ("_burst", "_last", "_rate", "_tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self._rate = rate
        self._burst = float(max(burst, 1))
        self._tokens = self._burst
        self._last = now

    def take(self, now: float) -> float:
        """Spend one token; return how many seconds to wait before acting on it.

        The token is spent even when a wait is returned (it is borrowed against the
        future), so a caller that waits exactly that long and calls again stays at
        ``rate`` events per second.
        """
        if self._rate <= 0:
            return 0.0
        elapsed = max(0.0, now - self._last)
        self._last = max(self._last, now)  # a clock stepping back must not earn tokens twice
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        self._tokens -= 1.0
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self._rate
