"""Accounts under attack: register spam, distributed guessing, operators' names, passwords.

Most tests drive the chat state by hand (tests.desk.Desk) at a trivial scrypt cost and
a virtual clock; the hashing lanes and the TLS door run under trio.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from tests.desk import ELSEWHERE, Desk, parse
from tests.test_tls import dial, make_tls_files
from triochat.config import ServerConfig
from triochat.core.codec import Mode
from triochat.core.commands import Hello, Invalid, parse_json
from triochat.core.model import Limits
from triochat.core.passwords import INVISIBLE_PASSWORD, Job, JobKind, Outcome, check
from triochat.core.throttle import (
    ACCOUNT_FREE_FAILURES,
    FREE_FAILURES,
    SERVER_REGISTRATIONS_PER_HOUR,
    LoginThrottle,
    address_key,
)
from triochat.server import jobs as jobs_module
from triochat.server.hub import Hub
from triochat.server.jobs import PasswordJobs
from triochat.server.listeners import HANDSHAKE_TIMEOUT, TlsDoor
from triochat.store import MemoryStore
from triochat.testing import Peer, open_test_server

pytestmark = pytest.mark.usefixtures("cheap_hashing")

HOUR = 3600.0


def register_as(desk: Desk, name: str, address: str = ELSEWHERE) -> list[str]:
    """A plain member ``name`` from ``address`` sends /register; the lines it got back."""
    member, link = desk.plain(name, address=address)
    desk.state.handle(member, parse("/register correct-horse"))
    desk.run_jobs()
    return link.lines()


def registered(lines: list[str]) -> bool:
    return any("is registered to you" in line for line in lines)


def guess(desk: Desk, name: str, address: str, password: str = "guess-guess") -> dict[str, Any]:
    """A JSON hello logging into ``name`` from ``address``; its first event."""
    _, _, link = desk.connect(Mode.JSON, Hello(name, password=password), address=address)
    desk.run_jobs()
    return link.events()[0]


# -- 4. register spam -------------------------------------------------------------------


def test_registrations_are_limited_per_address_with_the_time_to_wait() -> None:
    """The fourth name from one address in an hour is refused, saying when; others are not."""
    desk = Desk()
    for n in range(3):
        assert registered(register_as(desk, f"user{n}"))
    lines = register_as(desk, "user3")
    assert lines == ["! your address registered 3 names in the last hour; try again in 1h"]
    assert not desk.state.take_effects().jobs  # refused before any hashing
    assert registered(register_as(desk, "other", address="198.51.100.9"))
    desk.now += HOUR - 60
    assert register_as(desk, "user4") == [
        "! your address registered 3 names in the last hour; try again in 1m"
    ]
    desk.now += 61
    assert registered(register_as(desk, "user5"))


def test_registrations_count_an_ipv6_slash_64_as_one_address() -> None:
    """Four addresses of one /64 are one address for the registration limit."""
    desk = Desk()
    for n in range(3):
        assert registered(register_as(desk, f"six{n}", address=f"2001:db8:1:2::{n + 1}"))
    assert not registered(register_as(desk, "six3", address="2001:db8:1:2:ffff::9"))
    assert registered(register_as(desk, "six4", address="2001:db8:1:3::1"))


def test_registrations_limit_follows_the_setting_and_trusted_addresses() -> None:
    """--max-registrations-per-hour N (0: none); --trusted addresses are exempt."""
    loopback = (ipaddress.ip_network("127.0.0.0/8"),)
    desk = Desk(Limits(max_registrations_per_hour=1, trusted=loopback))
    assert registered(register_as(desk, "one"))
    assert not registered(register_as(desk, "two"))
    for n in range(5):
        assert registered(register_as(desk, f"local{n}", address="127.0.0.1"))
    desk = Desk(Limits(max_registrations_per_hour=0))
    for n in range(5):
        assert registered(register_as(desk, f"many{n}"))
    hub = Hub(ServerConfig(max_registrations_per_hour=7, trusted=loopback))
    assert hub.state.limits.max_registrations_per_hour == 7
    assert hub.state.limits.trusted == loopback


def test_registrations_are_limited_on_the_whole_server() -> None:
    """Many addresses together get SERVER_REGISTRATIONS_PER_HOUR an hour, then a clear error."""
    desk = Desk()
    for n in range(SERVER_REGISTRATIONS_PER_HOUR):
        assert registered(register_as(desk, f"bot{n}", address=f"10.1.{n // 250}.{n % 250 + 1}"))
    lines = register_as(desk, "late", address="192.0.2.1")
    assert lines == [
        f"! this server took {SERVER_REGISTRATIONS_PER_HOUR} registrations in the last hour; "
        "try again in 1h"
    ]


def test_registrations_that_fail_are_not_counted() -> None:
    """A registration the store could not check does not use up the address's allowance."""
    desk = Desk(Limits(max_registrations_per_hour=1))
    member, link = desk.plain("alice")
    desk.state.handle(member, parse("/register correct-horse"))
    (job,) = desk.state.take_effects().jobs
    desk.state.password_done(job, Outcome(False, failure="the store is not working"))
    assert link.lines() == ["! accounts cannot be checked right now; try again later"]
    desk.state.handle(member, parse("/register correct-horse"))
    desk.run_jobs()
    assert registered(link.lines())


# -- 5. distributed guessing ------------------------------------------------------------


def test_failed_logins_are_limited_per_account_across_addresses() -> None:
    """Guesses from many addresses, each under its own limit, still block the account."""
    desk = Desk()
    desk.account("alice")
    for n in range(ACCOUNT_FREE_FAILURES):
        assert guess(desk, "alice", f"10.2.0.{n + 1}")["code"] == "bad-password"
    event = guess(desk, "alice", "10.2.1.1")  # the first over the limit: hashed, then blocked
    assert "wait 1 s" in event["text"]
    _, _, link = desk.connect(Mode.JSON, Hello("alice", password="guess-guess"), address="10.2.1.2")
    assert desk.run_jobs() == 0  # refused before any hashing
    (error,) = link.events()
    assert (error["code"], error["text"]) == (
        "too-many-attempts",
        "too many failed passwords for alice lately; try again in 1 s",
    )
    desk.now += 1.5  # the wait ends; the doubling goes on
    assert guess(desk, "alice", "10.2.1.3")["code"] == "bad-password"
    assert desk.state.accounts.account_throttle.wait("allce", desk.now) == 2.0


def test_failed_logins_count_an_ipv6_slash_64_as_one_address() -> None:
    """Addresses of one /64 share the per-address allowance; another /64 does not."""
    desk = Desk()
    desk.account("alice")
    for n in range(FREE_FAILURES + 1):
        guess(desk, "alice", f"2001:db8:7:7::{n + 1}")
    assert guess(desk, "alice", "2001:db8:7:7:aaaa::1")["code"] == "too-many-attempts"
    assert desk.run_jobs() == 0
    conn_id, _, _ = desk.connect(
        Mode.JSON, Hello("alice", password="correct-horse"), address="2001:db8:7:8::1"
    )
    desk.run_jobs()
    assert desk.state.member(conn_id) is not None
    assert address_key("2001:db8:7:7:aaaa::1") == "2001:db8:7:7::/64"
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"


def test_throttle_table_flood_does_not_forget_a_hot_attacker() -> None:
    """Ten times the table's size in one-off failures elsewhere: the blocked key stays blocked."""
    throttle = LoginThrottle(max_addresses=100)
    for _ in range(FREE_FAILURES + 4):
        throttle.failed("203.0.113.66", 0.0)
    blocked = throttle.wait("203.0.113.66", 0.0)
    assert blocked >= 8.0
    for n in range(1000):
        throttle.failed(f"10.3.{n // 250}.{n % 250 + 1}", 1.0)
    assert len(throttle) == 100
    assert throttle.wait("203.0.113.66", 1.0) == blocked - 1.0


def test_owner_from_a_known_address_is_neither_blocked_nor_queued_behind_guesses() -> None:
    """The account blocked by guesses from elsewhere: its owner's known address still logs in,
    as an urgent job, while a guess at it is refused unhashed."""
    desk = Desk()
    desk.account("alice")  # registered from ELSEWHERE: that address proved the password
    for n in range(ACCOUNT_FREE_FAILURES + 3):
        guess(desk, "alice", f"10.4.0.{n + 1}")
    assert desk.state.accounts.account_throttle.wait("allce", desk.now) > 0
    assert guess(desk, "alice", "10.4.9.9", "correct-horse")["code"] == "too-many-attempts"
    conn_id, _, _ = desk.connect(Mode.JSON, Hello("alice", password="correct-horse"))
    (job,) = desk.state.take_effects().jobs
    assert job.urgent
    desk.state.password_done(job, Outcome(True))
    assert desk.state.member(conn_id) is not None


def test_a_trusted_address_is_never_known() -> None:
    """Behind a proxy everyone shares its address: logging in from it gives no precedence."""
    loopback = (ipaddress.ip_network("127.0.0.0/8"),)
    desk = Desk(Limits(trusted=loopback))
    member, _ = desk.registered("alice", address="127.0.0.1")
    desk.state.handle(member, parse("/quit"))
    desk.connect(Mode.JSON, Hello("alice", password="correct-horse"), address="127.0.0.1")
    (job,) = desk.state.take_effects().jobs
    assert not job.urgent
    desk.connect(Mode.JSON, Hello("bob", password="correct-horse"), address=ELSEWHERE)
    assert not desk.state.take_effects().jobs  # bob is not registered: no check at all


def test_guesses_at_one_account_in_flight_are_bounded() -> None:
    """A block cannot be outrun by starting many checks at once from many addresses."""
    desk = Desk()
    desk.account("alice")
    for n in range(2):
        desk.connect(Mode.JSON, Hello("alice", password="guess-guess"), address=f"10.5.0.{n}")
    _, _, link = desk.connect(Mode.JSON, Hello("alice", password="guess-guess"), address="10.5.0.9")
    assert link.events()[0]["code"] == "server-busy"
    assert len(desk.state.take_effects().jobs) == 2


async def test_password_jobs_urgent_lane_goes_before_queued_guesses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ten guesses queued, then an owner's login: it is hashed second, not eleventh."""
    store = MemoryStore()
    finished: list[str] = []
    release = threading.Event()  # the first guess hashes until the owner is queued

    def held_check(job: Job, stored: str | None) -> Outcome:
        assert release.wait(10), "the test never released the hash"
        return check(job, stored)

    monkeypatch.setattr(jobs_module, "check", held_check)

    async def call(function: Callable[..., Any], *args: Any) -> Any:
        return function(*args)

    async def done(job: Job, outcome: Outcome) -> None:
        finished.append(job.name)

    jobs = PasswordJobs(call, store, lambda: False, done, read_timeout=5.0)
    guesses = [
        Job(JobKind.LOGIN, n, "allce", f"guess{n}", "10.6.0.1", 1, "guess-guess") for n in range(10)
    ]
    owner = Job(JobKind.LOGIN, 99, "allce", "owner", ELSEWHERE, 1, "correct-horse", urgent=True)
    async with trio.open_nursery() as nursery:
        jobs.start_in(nursery)
        jobs.start(guesses)
        await trio.testing.wait_all_tasks_blocked()
        jobs.start([owner])
        await trio.testing.wait_all_tasks_blocked()
        release.set()
    assert len(finished) == 11
    assert finished.index("owner") <= 1


# -- 6. operators' names ----------------------------------------------------------------


def test_op_names_cannot_be_dropped() -> None:
    """/drop of a --op name is refused: a dropped one could be registered by anyone."""
    desk = Desk(ops=("bob", "carol"))
    bob, b = desk.registered("bob")
    desk.account("carol")
    b.lines()
    desk.state.handle(bob, parse("/drop carol"))
    assert b.lines() == [
        "! carol is an operator by the server's --op option; restart without it first"
    ]
    assert desk.state.access.registered("carol")
    assert not desk.state.take_effects().batch


def test_op_names_cannot_be_registered_by_a_look_alike() -> None:
    """While boss is unregistered, b0ss (the same name key) cannot register into its powers."""
    desk = Desk(ops=("boss",))
    lines = register_as(desk, "b0ss")
    assert lines == [
        "! the name b0ss is too like an operator's name to be registered; choose another with /nick"
    ]
    assert not desk.state.access.registered("boss")
    desk.state.handle(desk.state.holder("b0ss"), parse("/quit"))  # type: ignore[arg-type]
    member, _ = desk.registered("Boss")  # the name as given (any case) is the operator's
    assert desk.state.access.is_op(member.account)


# -- 9b. passwords with invisible characters --------------------------------------------


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("/register correct\u200bhorse", "weak-password"),
        ("/password correct-horse battery\u202estaple", "weak-password"),
        ("/login alice correct-horse\u2060", "bad-password"),
    ],
)
def test_passwords_with_invisible_characters_are_refused_not_stripped(line: str, code: str) -> None:
    """A zero width space, a bidi override or a word joiner in a password: a clear error."""
    command = parse(line)
    assert command == Invalid(code, INVISIBLE_PASSWORD)
    desk = Desk()
    alice, a = desk.plain("alice")
    desk.state.handle(alice, command)
    assert a.lines() == [f"! {INVISIBLE_PASSWORD}"]
    assert not desk.state.take_effects().jobs


def test_json_passwords_with_invisible_characters_are_refused() -> None:
    """The same for JSON requests and a hello's password; a clean one still parses."""
    register = parse_json('{"type": "register", "password": "correct\\u200bhorse"}')
    assert register == Invalid("weak-password", INVISIBLE_PASSWORD)
    login = parse_json('{"type": "login", "name": "alice", "password": "\\u00adcorrect-horse"}')
    assert login == Invalid("bad-password", INVISIBLE_PASSWORD)
    hello = parse_json('{"type": "hello", "name": "alice", "password": "correct\\ufeffhorse"}')
    assert hello == Invalid("bad-password", INVISIBLE_PASSWORD)
    clean = parse_json('{"type": "register", "password": " correct-horse "}')
    assert not isinstance(clean, Invalid)


# -- tests the suite lacked ---------------------------------------------------------------


def test_rename_frees_the_old_name_at_once() -> None:
    """After alice becomes alicia, /msg alice reaches nobody and bob may take alice."""
    desk = Desk()
    alice, a = desk.plain("alice")
    carol, c = desk.plain("carol")
    bob, b = desk.plain("bob")
    desk.state.handle(alice, parse("/nick alicia"))
    a.lines()
    c.lines()
    b.lines()
    desk.state.handle(carol, parse("/msg alice are you there?"))
    assert c.lines() == ["! no such user: alice"]
    assert a.lines() == []
    desk.state.handle(bob, parse("/nick alice"))
    assert bob.name == "alice"
    desk.state.handle(carol, parse("/msg alice hello"))
    assert any("hello" in line for line in b.lines())
    assert not any("hello" in line for line in a.lines())


def test_server_password_is_throttled_like_account_passwords() -> None:
    """Past FREE_FAILURES wrong server passwords, even the right one waits; others do not."""
    desk = Desk(server_password="s3cret pass")
    for _ in range(FREE_FAILURES + 1):
        _, member, link = desk.connect(Mode.PLAIN, parse("/nick alice"), server_password="nope")
        assert member is None
        assert link.lines() == ["! wrong server password"]
    _, member, link = desk.connect(Mode.PLAIN, parse("/nick alice"), server_password="s3cret pass")
    assert member is None
    assert link.lines() == ["! too many failed passwords from your address; try again in 1 s"]
    _, member, _ = desk.connect(
        Mode.PLAIN, parse("/nick bob"), server_password="s3cret pass", address="198.51.100.3"
    )
    assert member is not None
    desk.now += 1.5
    _, member, _ = desk.connect(Mode.PLAIN, parse("/nick alice"), server_password="s3cret pass")
    assert member is not None


async def test_tls_handshakes_in_progress_are_limited_per_address(
    nursery: trio.Nursery,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    autojump_clock: trio.testing.MockClock,
) -> None:
    """One address cannot hold more than --max-per-address handshakes; another still can."""
    caplog.set_level(logging.INFO)
    address = ["203.0.113.20"]
    monkeypatch.setattr(
        "triochat.server.listeners.peer_address", lambda stream: (f"{address[0]}:5000", address[0])
    )
    server = await open_test_server(nursery, max_per_address=2, trusted=())
    door = TlsDoor(server, make_tls_files(tmp_path / "tls").certificates)
    stallers = [Peer(dial(nursery, door)) for _ in range(2)]
    await trio.testing.wait_all_tasks_blocked()
    assert door.handshakes == 2
    extra = Peer(dial(nursery, door))
    start = trio.current_time()
    assert await extra.closed() == []
    assert trio.current_time() == start  # at once, not after the deadline
    records = [r.getMessage() for r in caplog.records if r.name == "triochat.server.listeners"]
    assert any("too many TLS handshakes in progress from one address (2)" in r for r in records)
    address[0] = "198.51.100.20"
    other = Peer(dial(nursery, door))
    await trio.testing.wait_all_tasks_blocked()
    assert door.handshakes == 3
    for peer in [*stallers, other]:
        await peer.closed(timeout=HANDSHAKE_TIMEOUT + 1)
