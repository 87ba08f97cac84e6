"""Accounts in the chat state, without an event loop: registering, logging in, passwords.

The password jobs are run by hand (tests.desk.Desk) at a trivial scrypt cost.
"""

from __future__ import annotations

import logging

import pytest

from tests.desk import ELSEWHERE, Desk, parse
from triochat.core.admin import ChangePassword, Login, Register
from triochat.core.codec import Mode
from triochat.core.commands import Hello, Say
from triochat.core.passwords import Job, JobKind, check
from triochat.core.records import AccountRecord, SaveAccount
from triochat.core.state import Limits
from triochat.core.throttle import FREE_FAILURES

pytestmark = pytest.mark.usefixtures("cheap_hashing")


def test_accounts_register_keeps_the_name_from_a_plain_nick() -> None:
    """A registered name cannot be taken with /nick, by a member or a first line."""
    desk = Desk()
    desk.account("alice")
    assert "allce" in desk.hashes  # the name key: i, l and 1 are one letter
    bob, b = desk.plain("bob")
    desk.state.handle(bob, parse("/nick ALICE"))
    assert b.lines() == ["! the name ALICE is registered; /login ALICE PASSWORD"]
    _, guest, g = desk.connect(Mode.PLAIN, parse("/nick a1ice"))
    assert guest is not None
    assert guest.name.startswith("guest-")
    assert g.lines()[1] == (
        f"! the name a1ice is registered; /login a1ice PASSWORD; you joined as {guest.name}"
    )


def test_accounts_registration_is_a_salted_hash_saved_in_the_batch() -> None:
    """/register queues a hash job; its outcome saves a hash, never the password."""
    desk = Desk()
    alice, a = desk.plain("alice")
    desk.state.handle(alice, Register("correct-horse"))
    (job,) = desk.state.take_effects().jobs
    assert (job.kind, job.key, job.name) == (JobKind.REGISTER, "allce", "alice")
    assert desk.state.take_effects().batch.changes == []  # nothing stored before the hash exists
    desk.state.password_done(job, check(job, None))
    (change,) = desk.state.take_effects().batch.changes
    assert isinstance(change, SaveAccount)
    assert change.record.password_hash.startswith("scrypt$")
    assert "correct-horse" not in change.record.password_hash
    assert "correct-horse" not in repr(change)
    assert alice.account == "allce"
    assert a.lines() == [
        "*** the name alice is registered to you; next time, /login alice PASSWORD"
    ]


def test_accounts_json_hello_for_a_registered_name_needs_its_password() -> None:
    """No password: name-registered and closed; wrong: bad-password and closed; right: in."""
    desk = Desk()
    desk.account("alice")
    _, member, link = desk.json("alice")
    assert member is None
    assert [e["code"] for e in link.events()] == ["name-registered"]
    assert link.closed

    _, member, link = desk.json("alice", password="wrong-horse")
    assert member is None
    assert not link.sent  # pending: nothing until the password is checked
    desk.run_jobs()
    assert [e["code"] for e in link.events()] == ["bad-password"]
    assert link.closed

    conn_id, member, link = desk.json("alice", password="correct-horse")
    desk.run_jobs()
    member = desk.state.member(conn_id)
    assert member is not None
    assert (member.name, member.account) == ("alice", "allce")
    assert link.events()[0]["type"] == "welcome"
    assert not link.closed


def test_accounts_pending_login_keeps_what_the_client_sent_meanwhile() -> None:
    """Lines sent while a first-line /login is checked are handled after it, in order."""
    desk = Desk()
    desk.account("alice")
    _, b = desk.plain("bob")
    conn_id, member, link = desk.connect(Mode.PLAIN, Login("alice", "correct-horse"))
    assert member is None
    desk.state.hold(conn_id, [Say("one"), Say("two")])
    desk.run_jobs()
    assert link.lines()[0].startswith("*** welcome, alice!")
    assert b.lines() == ["*** alice joined (2 online)", "<alice> one", "<alice> two"]


def test_accounts_wrong_first_line_login_joins_as_a_guest() -> None:
    """A plain first line with a wrong password joins as a guest, told why."""
    desk = Desk()
    desk.account("alice")
    conn_id, _, link = desk.connect(Mode.PLAIN, Login("alice", "wrong-horse"))
    desk.run_jobs()
    member = desk.state.member(conn_id)
    assert member is not None
    assert member.name.startswith("guest-")
    assert member.account is None
    assert f"! wrong password for alice; you joined as {member.name}" in link.lines()


def test_accounts_login_later_renames_and_logs_in() -> None:
    """A guest who gives /login NAME PASSWORD becomes NAME, announced as a rename."""
    desk = Desk()
    desk.account("alice")
    _, b = desk.plain("bob")
    _, guest, g = desk.connect(Mode.PLAIN, None)
    assert guest is not None
    g.lines()
    b.lines()
    desk.state.handle(guest, parse("/login alice correct-horse"))
    desk.run_jobs()
    assert guest.name == "alice"
    assert guest.account == "allce"
    assert g.lines() == ["*** you are now known as alice", "*** you are logged in as alice"]
    assert b.lines() == ["*** guest-1 is now known as alice"]


def test_accounts_login_to_a_name_online_elsewhere_is_refused() -> None:
    """The password does not take the name from a connection that holds it."""
    desk = Desk()
    desk.registered("alice")
    bob, b = desk.plain("bob")
    desk.state.handle(bob, parse("/login alice correct-horse"))
    assert desk.run_jobs() == 0
    assert b.lines() == ["! the name alice is taken"]


def test_accounts_password_change_needs_the_old_one() -> None:
    """/password OLD NEW: a wrong OLD changes nothing; the right one stores a new hash."""
    desk = Desk()
    alice, link = desk.registered("alice")
    before = desk.hashes["allce"]
    desk.state.handle(alice, ChangePassword("not-it-at-all", "battery-staple"))
    desk.run_jobs()
    assert desk.hashes["allce"] == before
    desk.state.handle(alice, ChangePassword("correct-horse", "battery-staple"))
    desk.run_jobs()
    assert desk.hashes["allce"] != before
    assert link.lines() == [
        "! that is not your current password",
        "*** the password of alice was changed",
    ]
    desk.state.handle(alice, parse("/quit"))
    conn_id, _, _ = desk.json("alice", password="battery-staple")
    desk.run_jobs()
    assert desk.state.member(conn_id) is not None


def test_accounts_renaming_away_logs_out() -> None:
    """A member who changes to another name is no longer logged in."""
    desk = Desk()
    alice, link = desk.registered("alice")
    desk.state.handle(alice, parse("/nick alison"))
    assert alice.account is None
    desk.state.handle(alice, parse("/password correct-horse battery-staple"))
    assert desk.state.take_effects().jobs == []
    assert link.lines()[-1] == "! log in first: /login NAME PASSWORD"


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("/register short", "! a password needs at least 8 characters"),
        ("/register", "! usage: /register PASSWORD"),
        ("/register two words", "! usage: /register PASSWORD"),
    ],
)
def test_accounts_register_refuses_bad_passwords(line: str, error: str) -> None:
    """Short, missing or spaced passwords are refused before any hashing."""
    desk = Desk()
    alice, a = desk.plain("alice")
    desk.state.handle(alice, parse(line))
    assert desk.state.take_effects().jobs == []
    assert a.lines() == [error]


def test_accounts_guest_names_and_registered_names_cannot_be_registered() -> None:
    """A guest-N name is handed out, not kept; a registered name is not registered twice."""
    desk = Desk()
    _, guest, g = desk.connect(Mode.PLAIN, None)
    assert guest is not None
    g.lines()
    desk.state.handle(guest, Register("correct-horse"))
    assert g.lines() == ["! guest names cannot be registered; choose one with /nick first"]
    alice, link = desk.registered("alice")
    desk.state.handle(alice, Register("correct-horse"))
    assert link.lines() == ["! the name alice is registered already"]


def test_accounts_failed_logins_are_throttled_per_address(caplog: pytest.LogCaptureFixture) -> None:
    """Past 5 failures a minute an address must wait, without hashing; others are not held."""
    desk = Desk()
    desk.account("alice")
    caplog.set_level(logging.WARNING)
    for _ in range(FREE_FAILURES + 1):
        _, _, link = desk.json("alice", password="guess-guess")
        assert desk.run_jobs() == 1
        assert link.events()[0]["code"] == "bad-password"
    _, member, link = desk.json("alice", password="correct-horse")
    assert member is None
    assert desk.run_jobs() == 0  # refused before any hashing
    (error,) = link.events()
    assert error["code"] == "too-many-attempts"
    assert link.closed
    # Another address is not affected.
    conn_id, _, _ = desk.connect(
        Mode.JSON, Hello("alice", password="correct-horse"), address="198.51.100.1"
    )
    desk.run_jobs()
    assert desk.state.member(conn_id) is not None
    failures = [r.getMessage() for r in caplog.records if "failed login" in r.getMessage()]
    assert len(failures) == FREE_FAILURES + 1
    assert all(ELSEWHERE in line and "guess" not in line for line in failures)


def test_accounts_throttled_address_may_try_again_after_the_wait() -> None:
    """The wait ends: the right password then works."""
    desk = Desk()
    desk.account("alice")
    for _ in range(FREE_FAILURES + 1):
        desk.json("alice", password="guess-guess")
        desk.run_jobs()
    desk.now += 1.5
    conn_id, _, _ = desk.json("alice", password="correct-horse")
    desk.run_jobs()
    assert desk.state.member(conn_id) is not None


def test_accounts_cleartext_warning_is_sent_once() -> None:
    """A password over a cleartext connection from elsewhere is warned about, once."""
    desk = Desk()
    alice, a = desk.plain("alice", cleartext=True)
    desk.state.handle(alice, parse("/register correct-horse"))
    desk.run_jobs()
    desk.state.handle(alice, parse("/password correct-horse battery-staple"))
    desk.run_jobs()
    warnings = [line for line in a.lines() if "unencrypted" in line]
    assert len(warnings) == 1
    assert warnings[0].startswith("*** your password crossed the network unencrypted")
    bob, b = desk.plain("bob", cleartext=False)
    desk.state.handle(bob, parse("/register correct-horse"))
    desk.run_jobs()
    assert not [line for line in b.lines() if "unencrypted" in line]


def test_accounts_cleartext_warning_follows_a_json_login() -> None:
    """A hello with a password over cleartext: the welcome, then the warning."""
    desk = Desk()
    desk.account("alice")
    _, _, link = desk.connect(Mode.JSON, Hello("alice", password="correct-horse"), cleartext=True)
    desk.run_jobs()
    events = link.events()
    assert [e["type"] for e in events[:2]] == ["welcome", "notice"]
    assert events[1]["code"] == "cleartext"


def test_accounts_server_password_is_required_first() -> None:
    """With --password-file, a connection without it, or with a wrong one, is refused."""
    desk = Desk(server_password="s3cret pass")
    _, member, link = desk.connect(Mode.PLAIN, parse("/nick alice"))
    assert member is None
    assert link.lines() == ["! this server needs a password: send /pass PASSWORD first"]
    assert link.closed
    _, member, link = desk.connect(Mode.PLAIN, parse("/nick alice"), server_password="nope")
    assert member is None
    assert link.lines() == ["! wrong server password"]
    _, member, _ = desk.connect(Mode.PLAIN, parse("/nick alice"), server_password="s3cret pass")
    assert member is not None
    _, member, link = desk.connect(Mode.JSON, Hello("bob", server_password="s3cret pass"))
    assert member is not None
    _, member, link = desk.connect(Mode.JSON, Hello("carol", server_password="s3cret"))
    assert member is None
    assert [e["code"] for e in link.events()] == ["server-password"]


def test_accounts_stale_outcome_is_discarded() -> None:
    """An account changed while a login was checked: the outcome does not count."""
    desk = Desk()
    desk.account("alice")
    _, _, link = desk.json("alice", password="correct-horse")
    (job,) = desk.state.take_effects().jobs
    desk.state.change(SaveAccount(AccountRecord("allce", "alice", "scrypt$new", 0.0)))
    desk.state.password_done(job, check(job, desk.hashes["allce"]))
    assert [e["code"] for e in link.events()] == ["try-again"]
    assert link.closed


def test_accounts_passwords_never_appear_in_reprs() -> None:
    """Commands, hellos and jobs keep their passwords out of repr (and so out of logs)."""
    secret = "correct-horse"
    for thing in (
        Register(secret),
        Login("alice", secret),
        ChangePassword(secret, secret),
        Hello("alice", password=secret, server_password=secret),
        Job(JobKind.LOGIN, 1, "allce", "alice", ELSEWHERE, 1, secret, secret),
    ):
        assert secret not in repr(thing)


def test_accounts_min_password_length_is_a_limit() -> None:
    """The state's minimum comes from its limits: 6 lets "sesame" register, not "fives"."""
    desk = Desk(limits=Limits(min_password_length=6))
    alice, a = desk.plain("alice")
    desk.state.handle(alice, parse("/register fives"))
    assert desk.state.take_effects().jobs == []
    assert a.lines() == ["! a password needs at least 6 characters"]
    desk.state.handle(alice, parse("/register sesame"))
    (job,) = desk.state.take_effects().jobs
    assert (job.kind, job.password) == (JobKind.REGISTER, "sesame")
    desk.state.password_done(job, check(job, None))
    assert alice.account == "allce"
    desk.state.handle(alice, parse("/password sesame fives"))
    assert desk.state.take_effects().jobs == []
    assert a.lines()[-1] == "! a password needs at least 6 characters"
