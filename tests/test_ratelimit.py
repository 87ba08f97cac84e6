"""Flood control: TokenBucket driven by a simulated clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.deadlines import CPU_DEADLINE
from triochat.core.ratelimit import TokenBucket


def test_tokenbucket_burst_is_free() -> None:
    """The first `burst` takes at one instant need no wait."""
    bucket = TokenBucket(rate=5, burst=20, now=100.0)
    assert [bucket.take(100.0) for _ in range(20)] == [0.0] * 20


def test_tokenbucket_take_after_burst_waits_one_interval() -> None:
    """The take right after the burst waits 1/rate; each further one waits 1/rate more."""
    bucket = TokenBucket(rate=5, burst=20, now=0.0)
    for _ in range(20):
        bucket.take(0.0)
    assert bucket.take(0.0) == pytest.approx(1 / 5)
    assert bucket.take(0.0) == pytest.approx(2 / 5)
    assert bucket.take(0.0) == pytest.approx(3 / 5)


def test_tokenbucket_waiting_the_delay_keeps_the_rate() -> None:
    """100 takes at rate 5, burst 20, each after its wait, end at (100 - 20) / 5 = 16 s."""
    bucket = TokenBucket(rate=5, burst=20, now=0.0)
    now = 0.0
    delays = []
    for _ in range(100):
        delay = bucket.take(now)
        delays.append(delay)
        now += delay
    assert now == pytest.approx(16.0)
    assert delays[:20] == [0.0] * 20
    assert delays[20:] == pytest.approx([0.2] * 80)


def test_tokenbucket_steady_rate_below_limit_never_waits() -> None:
    """A sender slower than the rate is never delayed, however long it goes on."""
    bucket = TokenBucket(rate=5, burst=1, now=0.0)
    assert all(bucket.take(i * 0.25) == 0.0 for i in range(200))


def test_tokenbucket_partial_refill() -> None:
    """Tokens accrue at `rate` per second between takes."""
    bucket = TokenBucket(rate=10, burst=5, now=0.0)
    for _ in range(5):
        bucket.take(0.0)
    # 0.3 s later three tokens are back: three free takes, then a wait of 1/rate.
    assert [bucket.take(0.3) for _ in range(3)] == [0.0] * 3
    assert bucket.take(0.3) == pytest.approx(0.1)


def test_tokenbucket_refill_after_idle_caps_at_burst() -> None:
    """A long idle refills the bucket to `burst`, not beyond."""
    bucket = TokenBucket(rate=5, burst=20, now=0.0)
    for _ in range(20):
        bucket.take(0.0)
    assert [bucket.take(3600.0) for _ in range(20)] == [0.0] * 20
    assert bucket.take(3600.0) == pytest.approx(0.2)


def test_tokenbucket_starts_full_not_overfull() -> None:
    """A fresh bucket created long ago is still capped at `burst` when first used."""
    bucket = TokenBucket(rate=5, burst=3, now=0.0)
    assert [bucket.take(1000.0) for _ in range(3)] == [0.0] * 3
    assert bucket.take(1000.0) > 0


@pytest.mark.parametrize("rate", [0, 0.0, -1.0])
def test_tokenbucket_rate_zero_disables(rate: float) -> None:
    """A rate of 0 (or below) turns flood control off: every take returns 0."""
    bucket = TokenBucket(rate=rate, burst=1, now=0.0)
    assert all(bucket.take(0.0) == 0.0 for _ in range(10_000))


def test_tokenbucket_burst_below_one_still_allows_one() -> None:
    """A burst under 1 is treated as 1: one line always passes at once."""
    bucket = TokenBucket(rate=2, burst=0, now=0.0)
    assert bucket.take(0.0) == 0.0
    assert bucket.take(0.0) == pytest.approx(0.5)


def test_tokenbucket_time_backwards_does_not_crash_or_refill() -> None:
    """A clock stepping back gives no tokens and no negative wait."""
    bucket = TokenBucket(rate=5, burst=2, now=10.0)
    bucket.take(10.0)
    bucket.take(10.0)
    delay = bucket.take(5.0)
    assert delay == pytest.approx(0.2)
    assert bucket.take(-1000.0) == pytest.approx(0.4)


def test_tokenbucket_time_backwards_then_forward_grants_nothing() -> None:
    """A clock going back and returning must not re-credit time (bug: full refill at t=10)."""
    bucket = TokenBucket(rate=5, burst=20, now=10.0)
    for _ in range(20):
        bucket.take(10.0)
    assert bucket.take(10.0) == pytest.approx(0.2)
    bucket.take(5.0)  # the clock steps back 5 s ...
    # ... and returns to 10.0: no real time passed since the bucket was drained, so the
    # wait keeps growing by 1/rate per take instead of the bucket being full again.
    assert bucket.take(10.0) == pytest.approx(0.6)


@settings(max_examples=150, deadline=CPU_DEADLINE)
@given(
    rate=st.floats(0.5, 50),
    burst=st.integers(1, 30),
    steps=st.lists(st.floats(-10, 10, allow_nan=False), max_size=60),
)
def test_tokenbucket_delays_never_negative_and_bounded(
    rate: float, burst: int, steps: list[float]
) -> None:
    """Delays are never negative and never exceed the backlog of takes divided by rate."""
    bucket = TokenBucket(rate=rate, burst=burst, now=0.0)
    now = 0.0
    for taken, step in enumerate(steps, start=1):
        now += step
        delay = bucket.take(now)
        assert delay >= 0.0
        assert delay <= taken / rate + 1e-9


@settings(max_examples=100, deadline=CPU_DEADLINE)
@given(
    rate=st.floats(0.5, 50),
    burst=st.integers(1, 30),
    takes=st.integers(1, 200),
)
def test_tokenbucket_obedient_sender_averages_rate(rate: float, burst: int, takes: int) -> None:
    """A sender that always waits the returned delay finishes at max(0, takes - burst) / rate."""
    bucket = TokenBucket(rate=rate, burst=burst, now=0.0)
    now = 0.0
    for _ in range(takes):
        now += bucket.take(now)
    assert now == pytest.approx(max(0, takes - burst) / rate, rel=1e-6, abs=1e-9)
