"""Failed logins and registrations, counted and limited. No I/O: the caller supplies the clock.

**Failed logins** (:class:`LoginThrottle`, one table per kind of key):

* per client address (:data:`ADDRESS_POLICY`), an IPv6 address counted as its /64
  (:func:`address_key`): one machine is usually handed a whole /64, 2^64 addresses;
* per account, across addresses (:data:`ACCOUNT_POLICY`): sixty addresses guessing
  at one account are one attacker.

A key may fail ``free_failures`` times in ``window_s`` seconds without penalty (people
mistype). Each failure past that, and every failure while the key is still under
suspicion, blocks it for a delay that doubles, from ``first_delay_s`` up to
``max_delay_s``; a blocked key is refused at once, without a hash being computed. A key
is forgiven after ``forget_after_s`` without a failure. A successful login does not
forgive anything: otherwise an attacker with one account of their own could log into
it between guesses.

Memory is bounded: at most ``max_addresses`` keys are tracked. Past that, a key that
never went over its free failures is forgotten first (the one that failed least
recently); a key under suspicion (a *hot* attacker) is forgotten only when no calm key
is left, so ten thousand addresses failing once each cannot flush it.

**Registrations** (:class:`RegistrationQuota`): at most so many per address key an
hour (``--max-registrations-per-hour``) and :data:`SERVER_REGISTRATIONS_PER_HOUR` on
the whole server, in a sliding window.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "ACCOUNT_POLICY",
    "ADDRESS_POLICY",
    "FIRST_DELAY_S",
    "FORGET_AFTER_S",
    "FREE_FAILURES",
    "MAX_ADDRESSES",
    "MAX_DELAY_S",
    "REGISTRATION_WINDOW_S",
    "SERVER_REGISTRATIONS_PER_HOUR",
    "WINDOW_S",
    "LoginThrottle",
    "Policy",
    "RegistrationQuota",
    "address_key",
]

# Per address (the numbers the module started with).
FREE_FAILURES: Final = 5  # failures per window before any delay: typos, a forgotten caps lock
WINDOW_S: Final = 60.0  # seconds: "5 failures a minute" is what a person can produce
FIRST_DELAY_S: Final = 1.0  # seconds blocked after the first failure over the limit
MAX_DELAY_S: Final = 300.0  # seconds: the doubling stops at 5 min, about 12 guesses an hour
FORGET_AFTER_S: Final = 900.0  # seconds without a failure before an address starts afresh
MAX_ADDRESSES: Final = 10_000  # keys tracked per table; ~200 bytes each, so ~2 MB at most

# Per account, across addresses: an owner mistypes a few times a day, not 10 an hour.
ACCOUNT_FREE_FAILURES: Final = 10  # failures an hour before the account's guesses are slowed
ACCOUNT_WINDOW_S: Final = 3600.0  # seconds: the window of those 10
ACCOUNT_FORGET_AFTER_S: Final = 3600.0  # seconds without a failure before an account is forgiven

IPV6_PREFIX: Final = 64  # an IPv6 host is usually given a whole /64: count the /64 as one
REGISTRATION_WINDOW_S: Final = 3600.0  # seconds: registration limits are "per hour", sliding
SERVER_REGISTRATIONS_PER_HOUR: Final = 120  # all addresses together: a class of 30 fits at once


@dataclass(frozen=True, slots=True)
class Policy:
    """How many failures a key gets for free, and how its penalty grows and ends."""

    free_failures: int
    window_s: float
    first_delay_s: float
    max_delay_s: float
    forget_after_s: float


ADDRESS_POLICY: Final = Policy(FREE_FAILURES, WINDOW_S, FIRST_DELAY_S, MAX_DELAY_S, FORGET_AFTER_S)
ACCOUNT_POLICY: Final = Policy(
    ACCOUNT_FREE_FAILURES, ACCOUNT_WINDOW_S, FIRST_DELAY_S, MAX_DELAY_S, ACCOUNT_FORGET_AFTER_S
)


def address_key(host: str) -> str:
    """What failures and registrations from ``host`` count against.

    An IPv4 address is itself (an IPv4 address seen through IPv6 too); an IPv6 address
    is its /64 (``2001:db8:1:2::/64``); anything that is no address (a test's peer
    name) is itself.
    """
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False))
    return str(address)


@dataclass(slots=True)
class _Record:
    recent: deque[float] = field(default_factory=deque)  # failure times within the window
    strikes: int = 0  # failures over the limit since the key was last forgiven
    blocked_until: float = 0.0
    last_failure: float = 0.0


class LoginThrottle:
    """Counts failed logins per key and says how long a key must wait."""

    def __init__(self, policy: Policy = ADDRESS_POLICY, max_addresses: int = MAX_ADDRESSES) -> None:
        self.policy = policy
        self._calm: OrderedDict[str, _Record] = OrderedDict()  # never over the free failures
        self._hot: OrderedDict[str, _Record] = OrderedDict()  # struck: forgotten last
        self._max_addresses = max_addresses

    def __len__(self) -> int:
        """Keys tracked."""
        return len(self._calm) + len(self._hot)

    def wait(self, key: str, now: float) -> float:
        """Seconds before ``key`` may try again (0.0: it may try now)."""
        record = self._current(key, now)
        if record is None:
            return 0.0
        return max(0.0, record.blocked_until - now)

    def failed(self, key: str, now: float) -> float:
        """Record a failed login from ``key``; return the wait it now imposes."""
        policy = self.policy
        record = self._current(key, now)
        if record is None:
            record = _Record()
            self._calm[key] = record
            self._evict()
        elif record.strikes:
            self._hot.move_to_end(key)
        else:
            self._calm.move_to_end(key)
        record.last_failure = now
        record.recent.append(now)
        while record.recent and record.recent[0] <= now - policy.window_s:
            record.recent.popleft()
        if record.strikes or len(record.recent) > policy.free_failures:
            delay = min(policy.max_delay_s, policy.first_delay_s * 2.0 ** min(record.strikes, 32))
            if not record.strikes:  # over the limit for the first time: it is hot now
                self._hot[key] = self._calm.pop(key)
            record.strikes += 1
            record.blocked_until = max(record.blocked_until, now + delay)
        return max(0.0, record.blocked_until - now)

    def failures(self, key: str, now: float) -> int:
        """Failures from ``key`` within the last window."""
        record = self._current(key, now)
        if record is None:
            return 0
        return sum(1 for when in record.recent if when > now - self.policy.window_s)

    def _evict(self) -> None:
        """Forget keys past the bound: calm ones first, the hot ones only when none is left."""
        while len(self) > self._max_addresses:
            table = self._calm if self._calm else self._hot
            table.popitem(last=False)

    def _current(self, key: str, now: float) -> _Record | None:
        """The key's record, or None if it has none (or it was forgiven)."""
        table = self._hot if key in self._hot else self._calm
        record = table.get(key)
        if record is None:
            return None
        if now >= record.blocked_until and now - record.last_failure >= self.policy.forget_after_s:
            del table[key]
            return None
        return record


class RegistrationQuota:
    """Registrations per address key and on the whole server, in a sliding window.

    Memory is bounded by the server-wide limit: no more times are kept than
    registrations were allowed within the window.
    """

    def __init__(
        self,
        per_address: int,
        server: int = SERVER_REGISTRATIONS_PER_HOUR,
        window: float = REGISTRATION_WINDOW_S,
    ) -> None:
        """``per_address`` 0 means no per-address limit (the server-wide one still holds)."""
        self.per_address = per_address
        self.server = server
        self.window = window
        self._all: deque[float] = deque()
        self._by_key: dict[str, deque[float]] = {}

    def wait(self, key: str | None, now: float) -> tuple[float, str]:
        """Seconds before ``key`` may register again, and whose limit it is.

        ``key`` None is exempt from the per-address limit (a trusted address). Returns
        ``(0.0, "")`` when it may register now, else ``(seconds, "address")`` or
        ``(seconds, "server")``.
        """
        self._expire(now)
        if key is not None and self.per_address:
            times = self._by_key.get(key)
            if times is not None and len(times) >= self.per_address:
                return times[-self.per_address] + self.window - now, "address"
        if len(self._all) >= self.server:
            return self._all[-self.server] + self.window - now, "server"
        return 0.0, ""

    def record(self, key: str | None, now: float) -> None:
        """Count a registration by ``key`` (None: only towards the server-wide limit)."""
        self._all.append(now)
        if key is not None:
            self._by_key.setdefault(key, deque()).append(now)

    def refund(self, key: str | None) -> None:
        """Take back the latest registration counted for ``key`` (it did not happen)."""
        if self._all:
            self._all.pop()
        if key is None:
            return
        times = self._by_key.get(key)
        if times:
            times.pop()
            if not times:
                del self._by_key[key]

    def _expire(self, now: float) -> None:
        while self._all and self._all[0] <= now - self.window:
            self._all.popleft()
        for key in [k for k, times in self._by_key.items() if times[0] <= now - self.window]:
            times = self._by_key[key]
            while times and times[0] <= now - self.window:
                times.popleft()
            if not times:
                del self._by_key[key]
