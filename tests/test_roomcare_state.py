"""The room table kept usable, without an event loop: room quotas, expiry, /droproom.

Each test pins one way a guest could fill ``--max-rooms`` for good, or one way an
operator gets rooms back (issue: hardening round three, item C).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.desk import ELSEWHERE, NOW, Desk, parse
from tests.helpers import FakeLink
from triochat.core.admin import DropRoom
from triochat.core.codec import Mode
from triochat.core.commands import (
    OPERATOR_HELP_LINES,
    Invalid,
    Join,
    Say,
    parse_json,
    parse_plain,
)
from triochat.core.events import Said
from triochat.core.names import LOBBY
from triochat.core.records import Batch, StoredMessage
from triochat.core.roomcare import (
    EMPTY_ROOM_EXPIRY_S,
    QUOTA_WINDOW_S,
    ROOMS_PER_ADDRESS,
    ROOMS_PER_MEMBER,
)
from triochat.core.state import ChatState, Limits, Member
from triochat.store import SQLiteStore

pytestmark = pytest.mark.usefixtures("cheap_hashing")

DAY = EMPTY_ROOM_EXPIRY_S


def _join_new(desk: Desk, member: Member, link: FakeLink, count: int, prefix: str) -> list[str]:
    """Ask for ``count`` new rooms; the error lines (one per refused room)."""
    for i in range(count):
        desk.state.handle(member, Join(f"#{prefix}{i}"))
    return [line for line in link.lines() if line.startswith("!")]


# -- making rooms is rationed --------------------------------------------------------


def test_roomcare_a_member_makes_a_few_rooms_an_hour_then_is_told_when() -> None:
    """The 11th new room within the hour is refused with too-many-rooms and a time."""
    desk = Desk()
    alice, a = desk.plain("alice")
    assert _join_new(desk, alice, a, ROOMS_PER_MEMBER, "a") == []
    desk.now += 600  # ten minutes later
    desk.state.handle(alice, Join("#one-more"))
    (error,) = a.lines()
    assert error == (
        f"! you may make {ROOMS_PER_MEMBER} new rooms an hour ({ROOMS_PER_ADDRESS} from one "
        "address); try again in 50m, or join a room that exists (/rooms)"
    )
    assert "#one-more" not in desk.state.rooms
    assert "#one-more" not in alice.rooms
    desk.now = NOW + QUOTA_WINDOW_S  # the first room made leaves the window
    desk.state.handle(alice, Join("#one-more"))
    assert "#one-more" in desk.state.rooms


def test_roomcare_rooms_that_exist_are_always_joinable() -> None:
    """Over its quota, a member still joins (and resumes) rooms that exist."""
    desk = Desk()
    bob, _ = desk.plain("bob", address="198.51.100.7")
    desk.state.handle(bob, Join("#dev"))
    alice, a = desk.plain("alice")
    _join_new(desk, alice, a, ROOMS_PER_MEMBER + 1, "a")
    desk.state.handle(alice, Join("#dev"))
    assert "#dev" in alice.rooms
    assert not [line for line in a.lines() if line.startswith("!")]


def test_roomcare_the_address_counts_across_reconnections() -> None:
    """Reconnecting gives a new member, not a new quota: the address has its own."""
    desk = Desk()
    refused: list[str] = []
    for n in range(3):  # three connections from one address, 10 rooms each
        member, link = desk.plain(f"guest{n}")
        refused += _join_new(desk, member, link, ROOMS_PER_MEMBER, f"g{n}-")
    assert len(refused) == 3 * ROOMS_PER_MEMBER - ROOMS_PER_ADDRESS
    assert all("too-many-rooms" not in line and "new rooms an hour" in line for line in refused)
    other, o = desk.plain("other", address="198.51.100.7")  # another address is not held up
    assert _join_new(desk, other, o, 1, "o") == []


def test_roomcare_a_hello_asking_for_many_new_rooms_gets_its_quota() -> None:
    """A JSON hello's rooms (and since) make at most the member's quota of new rooms."""
    desk = Desk()
    wanted = tuple(f"#r{i}" for i in range(30))
    since = tuple((f"#s{i}", 5) for i in range(5))
    _, member, link = desk.json("guest", rooms=wanted, since=since)
    assert member is not None
    errors = [e for e in link.events() if e["type"] == "error"]
    assert {e["code"] for e in errors} == {"too-many-rooms"}
    made = [room for room in desk.state.rooms if room != LOBBY]
    assert len(made) == ROOMS_PER_MEMBER
    assert len(errors) == len(wanted) + len(since) - ROOMS_PER_MEMBER


def test_roomcare_22_guests_cannot_fill_the_room_table() -> None:
    """The issue's attack: 22 hellos asking for 50 new rooms each, from one address."""
    desk = Desk()
    for n in range(22):
        desk.json(f"guest{n}", rooms=tuple(f"#x{n}-{i}" for i in range(50)))
    assert len(desk.state.rooms) == 1 + ROOMS_PER_ADDRESS
    alice, _a = desk.plain("alice", address="198.51.100.7")
    desk.state.handle(alice, Join("#real"))
    assert "#real" in alice.rooms


def test_roomcare_operators_make_rooms_freely() -> None:
    """An operator is not rationed (it can drop rooms too)."""
    desk = Desk(ops=("bob",))
    bob, b = desk.registered("bob")
    assert _join_new(desk, bob, b, ROOMS_PER_ADDRESS + 1, "b") == []


def test_roomcare_the_quota_forgets_who_made_no_room_lately() -> None:
    """Memory: members and addresses are dropped from the quota once out of the window."""
    desk = Desk()
    alice, a = desk.plain("alice")
    _join_new(desk, alice, a, 3, "a")
    desk.state.tick()
    assert len(desk.state.room_care.quota) == 2  # alice and her address
    desk.now += QUOTA_WINDOW_S
    desk.state.tick()
    assert len(desk.state.room_care.quota) == 0


# -- empty rooms expire ---------------------------------------------------------------


def _empty_room(desk: Desk, name: str) -> None:
    """Make ``name`` with a member who then leaves (no address: no quota shared)."""
    member, _ = desk.plain(f"maker{len(desk.state.rooms)}", address=None)
    desk.state.handle(member, Join(name))
    desk.state.handle(member, parse("/quit"))


def test_roomcare_an_empty_room_expires_after_a_day() -> None:
    """Empty for a day (counted from the tick that saw it empty): gone, and stored so."""
    desk = Desk()
    _empty_room(desk, "#gone")
    desk.state.take_effects()
    desk.state.tick()  # it is seen empty now
    desk.now += DAY - 1
    desk.state.tick()
    assert "#gone" in desk.state.rooms
    desk.now += 1
    desk.state.tick()
    assert "#gone" not in desk.state.rooms
    assert desk.state.take_effects().batch.dropped_rooms == ["#gone"]


def test_roomcare_a_room_in_use_again_starts_its_day_afresh() -> None:
    """Someone came back: the room's day of emptiness counts from when it emptied again."""
    desk = Desk()
    _empty_room(desk, "#back")
    desk.state.tick()
    desk.now += DAY - 10
    carol, _ = desk.plain("carol")
    desk.state.handle(carol, Join("#back"))
    desk.state.tick()
    desk.state.handle(carol, parse("/part #back"))
    desk.now += 20
    desk.state.tick()
    desk.now += DAY - 1
    desk.state.tick()
    assert "#back" in desk.state.rooms


def test_roomcare_lobby_locked_topics_and_recent_lines_keep_a_room() -> None:
    """#lobby never expires; a locked topic registers a room; a line newer than a day keeps it."""
    desk = Desk(ops=("bob",))
    bob, _ = desk.registered("bob")
    desk.state.handle(bob, Join("#kept"))
    desk.state.handle(bob, parse("/locktopic #kept"))
    desk.state.handle(bob, parse("/part #kept"))
    desk.state.handle(bob, parse("/quit"))
    _empty_room(desk, "#chatty")
    desk.state.tick()
    desk.now += 3600
    chatty = desk.state.rooms["#chatty"]
    desk.state.deliver_chat(chatty, Said(desk.now, "#chatty", 1, "zed", "late line"), None)
    desk.now += DAY - 1  # empty for more than a day, but its last line is not a day old
    desk.state.tick()
    assert {LOBBY, "#kept", "#chatty"} <= set(desk.state.rooms)
    desk.now += 1
    desk.state.tick()
    assert "#chatty" not in desk.state.rooms
    assert {LOBBY, "#kept"} <= set(desk.state.rooms)


def test_roomcare_expired_rooms_do_not_come_back_after_a_restart(tmp_path: Path) -> None:
    """Expired on the state, deleted in the SQLite file: a restart does not load them."""
    db = tmp_path / "chat.db"
    store = SQLiteStore.open(db)
    desk = Desk()
    alice, _ = desk.plain("alice")
    desk.state.handle(alice, Join("#old"))
    desk.state.handle(alice, Say("hello", "#old"))
    desk.state.handle(alice, Join("#dev"))
    desk.state.handle(alice, parse("/part #old"))
    store.commit(desk.state.take_effects().batch)
    assert [m.text for m in store.recent("#old", 10)] == ["hello"]
    desk.state.tick()
    desk.now += DAY
    desk.state.tick()
    store.commit(desk.state.take_effects().batch)
    store.close()

    store = SQLiteStore.open(db)  # the restart: the hub loads what load_rooms gives
    try:
        assert [room.name for room in store.load_rooms()] == ["#dev"]
        assert store.recent("#old", 10) == []
    finally:
        store.close()


# -- operators drop rooms --------------------------------------------------------------


def _staffed() -> tuple[Desk, Member, FakeLink]:
    desk = Desk(ops=("bob",))
    bob, b = desk.registered("bob")
    return desk, bob, b


def test_roomcare_droproom_moves_members_out_and_deletes_the_room() -> None:
    """/droproom: each member is told why and moved on; the room goes from memory and store."""
    desk, bob, b = _staffed()
    alice, a = desk.plain("alice")
    desk.state.handle(alice, Join("#spam"))
    desk.state.handle(alice, Say("buy now", "#spam"))
    _, carol, c = desk.json("carol", rooms=("#spam",))
    assert carol is not None
    a.lines(), c.events(), b.lines()
    desk.state.handle(bob, parse("/droproom #spam"))
    assert a.lines() == [
        "*** bob dropped the room #spam and its history",
        "*** you left #spam",
        "*** #lobby is now your current room",
    ]
    mod, left = c.events()  # its current room was #lobby already
    assert (mod["type"], mod["action"], mod["target"], mod["by"]) == (
        "mod",
        "drop-room",
        "#spam",
        "bob",
    )
    assert (left["type"], left["room"], left["name"], left["reason"]) == (
        "leave",
        "#spam",
        "carol",
        "room dropped by bob",
    )
    assert carol.current == alice.current == LOBBY
    assert b.lines() == ["*** bob dropped the room #spam and its history"]
    assert "#spam" not in desk.state.rooms
    assert alice.rooms == carol.rooms == [LOBBY]
    batch = desk.state.take_effects().batch
    assert batch.dropped_rooms == ["#spam"]
    assert not [m for m in batch.messages if m.room == "#spam"]  # nothing of it is written


def test_roomcare_droproom_refuses_the_lobby_unknown_rooms_and_non_operators() -> None:
    """#lobby cannot be dropped; an unknown room is an error; others are not operators."""
    desk, bob, b = _staffed()
    alice, a = desk.plain("alice")
    desk.state.handle(alice, Join("#dev"))
    a.lines(), b.lines()
    desk.state.handle(bob, parse("/droproom #lobby"))
    desk.state.handle(bob, parse("/droproom #nowhere"))
    assert b.lines() == ["! #lobby cannot be dropped", "! no such room: #nowhere"]
    desk.state.handle(alice, parse("/droproom #dev"))
    assert a.lines() == ["! only operators can use /droproom (if you are one, /login first)"]
    assert "#dev" in desk.state.rooms
    assert not desk.state.take_effects().batch.dropped_rooms


def test_roomcare_droproom_is_a_command_in_both_modes_and_in_the_help() -> None:
    """Plain /droproom ROOM, JSON {"type": "droproom", "room": R}; operators' help lists it."""
    assert parse_plain("/droproom Spam") == DropRoom("#spam")
    assert parse_plain("/droproom") == Invalid("bad-request", "usage: /droproom ROOM")
    assert parse_json('{"type": "droproom", "room": "#spam"}') == DropRoom("#spam")
    missing = parse_json('{"type": "droproom"}')
    assert isinstance(missing, Invalid)
    assert missing.code == "bad-request"
    assert any("/droproom ROOM" in line for line in OPERATOR_HELP_LINES)


def test_roomcare_a_room_made_again_after_a_drop_is_stored_fresh() -> None:
    """Drop then make again in one batch: the store deletes first, then writes the new room."""
    desk, bob, _ = _staffed()
    desk.state.handle(bob, Join("#x"))
    desk.state.handle(bob, Say("old", "#x"))
    desk.state.handle(bob, parse("/droproom #x"))
    desk.state.handle(bob, Join("#x"))
    desk.state.handle(bob, Say("new", "#x"))
    batch = desk.state.take_effects().batch
    assert batch.dropped_rooms == ["#x"]
    assert [m.text for m in batch.messages if m.room == "#x"] == ["new"]


def test_roomcare_batches_merged_by_the_writer_keep_a_drop_in_order() -> None:
    """Lines of a room in one batch and its drop in the next: merged, nothing survives."""
    line = StoredMessage("#x", 1, NOW, "say", "bob", "old")
    merged = Batch([line])
    later = Batch()
    later.drop_room("#x")
    merged.extend(later)
    assert (merged.messages, merged.dropped_rooms) == ([], ["#x"])


def test_roomcare_limits_do_not_change_the_server_wide_cap() -> None:
    """--max-rooms still applies before the quota (which is not spent on a refusal)."""
    state = ChatState(Limits(max_rooms=2), clock=lambda: NOW)
    link = FakeLink()
    member = state.register(1, "test", link, Mode.PLAIN, None, address=ELSEWHERE)
    assert member is not None
    state.handle(member, Join("#a"))
    state.handle(member, Join("#b"))
    assert link.lines()[-1] == "! this server has no room for more rooms"
    assert len(state.room_care.quota) == 2  # one room counted, for the member and address
