"""Operators in the chat state, without an event loop: kick, ban, mute, op, topic locks.

``bob`` is the operator in each test (``--op bob``, registered).
"""

from __future__ import annotations

import logging

import pytest

from tests.desk import ELSEWHERE, Desk, parse
from tests.helpers import FakeLink
from triochat.core.codec import Mode
from triochat.core.commands import Hello
from triochat.core.records import DropBan, DropMute, SaveBan, SaveMute, SaveOp
from triochat.core.state import Member

pytestmark = pytest.mark.usefixtures("cheap_hashing")


def _staffed() -> tuple[Desk, Member, FakeLink]:
    """A desk whose operator bob is logged in (``--op bob``, registered)."""
    desk = Desk(ops=("bob",))
    bob, b = desk.registered("bob")
    assert desk.state.access.is_op(bob.account)
    return desk, bob, b


@pytest.mark.parametrize(
    "line",
    [
        "/kick alice",
        "/ban alice",
        "/ban 10.0.0.0/8 1h",
        "/unban alice",
        "/bans",
        "/mute alice 10m",
        "/unmute alice",
        "/op carol",
        "/deop bob",
        "/drop bob",
        "/locktopic",
        "/unlocktopic #lobby",
    ],
)
def test_moderation_non_operator_gets_one_error_and_nothing_changes(line: str) -> None:
    """A member who is not an operator is told so; nobody else hears a thing."""
    desk, _bob, b = _staffed()
    alice, a = desk.plain("alice")
    b.lines()
    desk.state.handle(alice, parse(line))
    (error,) = a.lines()
    assert error.startswith(f"! only operators can use /{line.split()[0][1:]}")
    assert b.lines() == []
    assert not desk.state.take_effects().batch
    assert desk.state.member(alice.id) is alice


def test_moderation_op_flag_needs_the_name_registered() -> None:
    """--op carol gives nothing while carol is unregistered; registering gives the powers."""
    desk = Desk(ops=("carol",))
    carol, c = desk.plain("carol")
    desk.state.handle(carol, parse("/bans"))
    assert c.lines() == ["! only operators can use /bans (if you are one, /login first)"]
    desk.state.handle(carol, parse("/register correct-horse"))
    desk.run_jobs()
    c.lines()
    desk.state.handle(carol, parse("/bans"))
    assert c.lines() == ["*** bans (0):"]


def test_moderation_kick_is_announced_logged_and_ends_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """/kick: the target is told, its rooms see the leave with the reason, the op is told."""
    desk, bob, b = _staffed()
    alice, a = desk.plain("alice")
    _carol, c = desk.plain("carol")
    b.lines()
    a.lines()
    caplog.set_level(logging.INFO)
    desk.state.handle(bob, parse("/kick alice spamming the room"))
    assert a.lines() == ["*** you were kicked by bob: spamming the room"]
    assert a.closed
    assert desk.state.member(alice.id) is None
    assert c.lines() == ["*** alice left: kicked by bob: spamming the room (2 online)"]
    assert b.lines() == [
        "*** alice left: kicked by bob: spamming the room (2 online)",
        "*** bob kicked alice: spamming the room",
    ]
    assert any("bob kicked alice: spamming the room" in r.getMessage() for r in caplog.records)


def test_moderation_ban_by_name_refuses_the_name_until_it_runs_out() -> None:
    """/ban NAME 1h: the holder goes, the name is refused, and free again after the hour."""
    desk, bob, _ = _staffed()
    alice, a = desk.plain("alice")
    desk.state.handle(bob, parse("/ban Alice 1h flooding"))
    assert a.lines() == ["*** you were banned by bob for 1h: flooding"]
    assert desk.state.member(alice.id) is None
    (change,) = desk.state.take_effects().batch.changes
    assert isinstance(change, SaveBan)
    assert (change.record.target, change.record.until) == ("allce", desk.now + 3600)
    _, member, link = desk.json("ALICE")
    assert member is None
    assert link.events()[0]["text"] == "the name ALICE is banned (1h more)"
    desk.now += 3600
    desk.state.tick()
    assert [type(c) for c in desk.state.take_effects().batch.changes] == [DropBan]
    _, member, _ = desk.json("alice")
    assert member is not None


def test_moderation_ban_by_address_drops_everyone_there() -> None:
    """/ban 192.0.2.0/24: members from that range go; the accept check knows it."""
    desk, bob, b = _staffed()
    desk.plain("alice", address="192.0.2.9")
    desk.plain("dave", address="2001:db8::1")
    _, c = desk.plain("carol", address="::ffff:192.0.2.77")
    b.lines()
    desk.state.handle(bob, parse("/ban 192.0.2.0/24 7d botnet"))
    assert "*** you were banned by bob for 7d: botnet" in c.lines()
    assert sorted(m.name for m in desk.state.all_members()) == ["bob", "dave"]
    assert desk.state.address_ban("192.0.2.200") is not None
    assert desk.state.address_ban("::ffff:192.0.2.1") is not None
    assert desk.state.address_ban("198.51.100.1") is None
    assert b.lines()[-1] == "*** bob banned 192.0.2.0/24 for 7d: botnet"


def test_moderation_operator_cannot_ban_itself() -> None:
    """A ban that would include the operator (its name or its address) is refused."""
    desk, bob, b = _staffed()
    for line in ("/ban bob", f"/ban {ELSEWHERE}", "/ban 203.0.113.0/24"):
        desk.state.handle(bob, parse(line))
        assert b.lines() == ["! that ban would include you"]
    assert not desk.state.take_effects().batch


def test_moderation_unban_and_bans_list() -> None:
    """/bans lists what is in force; /unban lifts one; an unknown one is an error."""
    desk, bob, b = _staffed()
    desk.state.handle(bob, parse("/ban troll"))
    desk.state.handle(bob, parse("/ban 198.51.100.7 2h scanner"))
    b.lines()
    desk.state.handle(bob, parse("/bans"))
    lines = b.lines()
    assert lines[0] == "*** bans (2):"
    assert lines[1] == "***   troll until lifted (by bob)"
    assert lines[2].startswith("***   198.51.100.7/32 until ")
    assert lines[2].endswith(" (by bob): scanner")
    desk.state.handle(bob, parse("/unban TROLL"))
    desk.state.handle(bob, parse("/unban zed"))
    assert b.lines() == ["*** bob lifted the ban on troll", "! zed is not banned (see /bans)"]


def test_moderation_muted_member_reads_but_cannot_speak() -> None:
    """/mute NAME 10m: say, me, msg, topic and nick are refused; reading goes on."""
    desk, bob, b = _staffed()
    alice, a = desk.plain("alice")
    _carol, c = desk.plain("carol")
    b.lines()
    a.lines()
    desk.state.handle(bob, parse("/mute alice 10m"))
    assert a.lines() == ["*** you were muted by bob for 10m: you can read but not speak"]
    assert c.lines() == ["*** bob muted alice for 10m"]
    assert b.lines() == ["*** bob muted alice for 10m"]
    for line in ("hello", "/me waves", "/msg carol psst", "/topic mine", "/nick alison"):
        desk.state.handle(alice, parse(line))
    errors = a.lines()
    assert len(errors) == 5
    assert all(line.startswith("! you are muted") for line in errors)
    assert c.lines() == []
    desk.state.handle(bob, parse("hello all"))
    assert a.lines() == ["<bob> hello all"]
    c.lines()
    desk.now += 600
    desk.state.tick()
    assert [type(x) for x in desk.state.take_effects().batch.changes] == [SaveMute, DropMute]
    desk.state.handle(alice, parse("back"))
    assert c.lines() == ["<alice> back"]


def test_moderation_unmute_lets_the_member_speak() -> None:
    """/unmute is announced like the mute, and the member may speak again."""
    desk, bob, b = _staffed()
    alice, a = desk.plain("alice")
    desk.state.handle(bob, parse("/mute alice"))
    desk.state.handle(bob, parse("/unmute alice"))
    a.lines()
    desk.state.handle(alice, parse("free"))
    assert b.lines()[-3:] == ["*** bob muted alice", "*** bob unmuted alice", "<alice> free"]


def test_moderation_op_deop_and_drop() -> None:
    """/op needs an account; /deop of a --op operator is refused; /drop frees the name."""
    desk, bob, b = _staffed()
    desk.state.handle(bob, parse("/op carol"))
    assert b.lines() == ["! carol is not a registered account; it must /register"]
    carol, c = desk.registered("carol")
    desk.state.handle(bob, parse("/op carol"))
    assert c.lines() == ["*** bob made you an operator"]
    assert desk.state.access.is_op(carol.account)
    assert any(isinstance(x, SaveOp) for x in desk.state.take_effects().batch.changes)
    desk.state.handle(carol, parse("/deop bob"))
    assert c.lines()[-1] == "! bob is an operator by the server's --op option; restart without it"
    desk.state.handle(carol, parse("/drop carol"))
    assert not desk.state.access.registered("carol")
    assert not desk.state.access.is_op(carol.account)
    _, _, link = desk.json("carol2")
    desk.state.handle(bob, parse("/nick bobby"))  # logs bob out: no powers left
    desk.state.handle(bob, parse("/bans"))
    assert b.lines()[-1].startswith("! only operators can use /bans")
    assert link.events()[0]["type"] == "welcome"


def test_moderation_topic_lock_keeps_the_topic_for_operators() -> None:
    """/locktopic: only operators may change it; members are told; /unlocktopic undoes it."""
    desk, bob, _ = _staffed()
    alice, a = desk.plain("alice")
    desk.state.handle(bob, parse("/topic release friday"))
    desk.state.handle(bob, parse("/locktopic"))
    a.lines()
    desk.state.handle(alice, parse("/topic mine now"))
    assert a.lines() == ["! the topic of #lobby is locked: only operators may change it"]
    desk.state.handle(alice, parse("/topic"))
    assert a.lines() == [
        "*** topic: release friday (set by bob) (locked: only operators may change it)"
    ]
    desk.state.handle(bob, parse("/topic release monday"))
    assert a.lines() == ["*** bob set the topic: release monday"]
    assert desk.state.take_effects().batch.rooms[-1].topic_locked
    desk.state.handle(bob, parse("/unlocktopic"))
    assert a.lines() == ["*** bob unlocked the topic of #lobby"]
    desk.state.handle(alice, parse("/topic mine now"))
    assert a.lines() == ["*** alice set the topic: mine now"]


def test_moderation_json_events_name_action_target_and_operator() -> None:
    """The JSON mod event carries action, target, by, reason and until."""
    desk, bob, _b = _staffed()
    _, alice, link = desk.connect(Mode.JSON, Hello("alice"))
    assert alice is not None
    link.lines()
    desk.state.handle(bob, parse("/mute alice 2h"))
    (event,) = link.events()
    assert {k: event[k] for k in ("type", "action", "target", "by", "reason", "until")} == {
        "type": "mod",
        "action": "mute",
        "target": "alice",
        "by": "bob",
        "reason": "",
        "until": desk.now + 7200,
    }


def test_moderation_operators_see_their_commands_in_help() -> None:
    """/help lists the operator commands to operators only."""
    desk, bob, b = _staffed()
    alice, a = desk.plain("alice")
    desk.state.handle(alice, parse("/help"))
    desk.state.handle(bob, parse("/help"))
    assert not any("/kick" in line for line in a.lines())
    assert any("/kick" in line for line in b.lines())


def test_moderation_unregistered_op_flag_is_warned_about_by_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """At start-up, an --op name nobody registered is logged as it was given."""
    desk = Desk(ops=("Carol", "bob"))
    caplog.set_level(logging.WARNING)
    desk.state.load_access(["bob"], [], [], [])
    (record,) = caplog.records
    assert record.getMessage().startswith("--op Carol: no account of that name is registered")
