"""Failed-login throttling per client address. No I/O: the caller supplies the clock.

An address may fail :data:`FREE_FAILURES` times in :data:`WINDOW_S` seconds without
penalty (people mistype). Each failure past that, and every failure while the address
is still under suspicion, blocks it for a delay that doubles, from
:data:`FIRST_DELAY_S` up to :data:`MAX_DELAY_S`; a blocked address is refused at once,
without a hash being computed. An address is forgiven after :data:`FORGET_AFTER_S`
without a failure. A successful login does not forgive anything: otherwise an attacker
with one account of their own could log into it between guesses.

Memory is bounded: at most :data:`MAX_ADDRESSES` addresses are tracked, and the one
that failed least recently is forgotten first.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "FIRST_DELAY_S",
    "FORGET_AFTER_S",
    "FREE_FAILURES",
    "MAX_ADDRESSES",
    "MAX_DELAY_S",
    "WINDOW_S",
    "LoginThrottle",
]

FREE_FAILURES: Final = 5  # failures per window before any delay: typos, a forgotten caps lock
WINDOW_S: Final = 60.0  # seconds: "5 failures a minute" is what a person can produce
FIRST_DELAY_S: Final = 1.0  # seconds blocked after the first failure over the limit
MAX_DELAY_S: Final = 300.0  # seconds: the doubling stops at 5 min, about 12 guesses an hour
FORGET_AFTER_S: Final = 900.0  # seconds without a failure before an address starts afresh
MAX_ADDRESSES: Final = 10_000  # addresses tracked; ~200 bytes each, so ~2 MB at most


@dataclass(slots=True)
class _Record:
    recent: deque[float] = field(default_factory=deque)  # failure times within the window
    strikes: int = 0  # failures over the limit since the address was last forgiven
    blocked_until: float = 0.0
    last_failure: float = 0.0


class LoginThrottle:
    """Counts failed logins per address and says how long an address must wait."""

    def __init__(self, max_addresses: int = MAX_ADDRESSES) -> None:
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._max_addresses = max_addresses

    def __len__(self) -> int:
        """Addresses tracked."""
        return len(self._records)

    def wait(self, address: str, now: float) -> float:
        """Seconds before ``address`` may try again (0.0: it may try now)."""
        record = self._current(address, now)
        if record is None:
            return 0.0
        return max(0.0, record.blocked_until - now)

    def failed(self, address: str, now: float) -> float:
        """Record a failed login from ``address``; return the wait it now imposes."""
        record = self._current(address, now)
        if record is None:
            record = _Record()
            self._records[address] = record
            while len(self._records) > self._max_addresses:
                self._records.popitem(last=False)
        else:
            self._records.move_to_end(address)
        record.last_failure = now
        record.recent.append(now)
        while record.recent and record.recent[0] <= now - WINDOW_S:
            record.recent.popleft()
        if record.strikes or len(record.recent) > FREE_FAILURES:
            delay = min(MAX_DELAY_S, FIRST_DELAY_S * 2.0 ** min(record.strikes, 32))
            record.strikes += 1
            record.blocked_until = max(record.blocked_until, now + delay)
        return max(0.0, record.blocked_until - now)

    def failures(self, address: str, now: float) -> int:
        """Failures from ``address`` within the last :data:`WINDOW_S` seconds."""
        record = self._current(address, now)
        if record is None:
            return 0
        return sum(1 for when in record.recent if when > now - WINDOW_S)

    def _current(self, address: str, now: float) -> _Record | None:
        """The address's record, or None if it has none (or it was forgiven)."""
        record = self._records.get(address)
        if record is None:
            return None
        if now >= record.blocked_until and now - record.last_failure >= FORGET_AFTER_S:
            del self._records[address]
            return None
        return record
