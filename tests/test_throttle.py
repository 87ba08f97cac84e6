"""The failed-login throttle, in virtual time (plain numbers for the clock)."""

from __future__ import annotations

from triochat.core.throttle import (
    FIRST_DELAY_S,
    FORGET_AFTER_S,
    FREE_FAILURES,
    MAX_DELAY_S,
    WINDOW_S,
    LoginThrottle,
)

HOST = "203.0.113.5"


def test_throttle_allows_a_few_mistakes_without_delay() -> None:
    """Up to FREE_FAILURES failures a minute cost nothing: people mistype."""
    throttle = LoginThrottle()
    for n in range(FREE_FAILURES):
        assert throttle.failed(HOST, 10.0 + n) == 0.0
        assert throttle.wait(HOST, 10.0 + n) == 0.0
    assert throttle.failures(HOST, 15.0) == FREE_FAILURES


def test_throttle_delay_doubles_past_the_limit_up_to_the_cap() -> None:
    """Each failure past the limit blocks the address twice as long, up to MAX_DELAY_S."""
    throttle = LoginThrottle()
    now = 0.0
    for _ in range(FREE_FAILURES):
        throttle.failed(HOST, now)
    delays = []
    for _ in range(12):
        delay = throttle.failed(HOST, now)
        delays.append(delay)
        assert throttle.wait(HOST, now) == delay
        assert throttle.wait(HOST, now + delay) == 0.0
        now += delay  # the attacker tries again the moment it may
    assert delays[:4] == [FIRST_DELAY_S, 2 * FIRST_DELAY_S, 4 * FIRST_DELAY_S, 8 * FIRST_DELAY_S]
    assert max(delays) == MAX_DELAY_S
    assert delays[-1] == MAX_DELAY_S


def test_throttle_waiting_out_the_window_does_not_reset_the_doubling() -> None:
    """An attacker pausing a minute between guesses still gets ever longer waits."""
    throttle = LoginThrottle()
    for n in range(FREE_FAILURES + 1):
        throttle.failed(HOST, float(n))
    first = throttle.wait(HOST, float(FREE_FAILURES))
    later = throttle.failed(HOST, FREE_FAILURES + WINDOW_S * 2)
    assert later > first


def test_throttle_forgives_after_a_quiet_period() -> None:
    """FORGET_AFTER_S without a failure and the address starts afresh."""
    throttle = LoginThrottle()
    for n in range(FREE_FAILURES + 3):
        throttle.failed(HOST, float(n))
    quiet = FREE_FAILURES + 3 + FORGET_AFTER_S + MAX_DELAY_S
    assert throttle.wait(HOST, quiet) == 0.0
    assert throttle.failed(HOST, quiet) == 0.0
    assert throttle.failures(HOST, quiet) == 1


def test_throttle_is_per_address() -> None:
    """One address blocked does not block another."""
    throttle = LoginThrottle()
    for _ in range(FREE_FAILURES + 1):
        throttle.failed(HOST, 0.0)
    assert throttle.wait(HOST, 0.0) > 0
    assert throttle.wait("198.51.100.1", 0.0) == 0.0


def test_throttle_memory_is_bounded_oldest_forgotten_first() -> None:
    """Beyond max_addresses, the address that failed least recently is dropped."""
    throttle = LoginThrottle(max_addresses=3)
    for n, host in enumerate(["10.0.0.1", "10.0.0.2", "10.0.0.3"]):
        throttle.failed(host, float(n))
    throttle.failed("10.0.0.1", 5.0)  # refreshed: now the most recent
    throttle.failed("10.0.0.4", 6.0)
    assert len(throttle) == 3
    assert throttle.failures("10.0.0.2", 6.0) == 0
    assert throttle.failures("10.0.0.1", 6.0) == 2
