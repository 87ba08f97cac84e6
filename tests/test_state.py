"""The chat state without an event loop: rooms, ids, presence, history, resume.

Plain synchronous tests: fake links record what each member would be sent.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import FakeLink
from triochat.core.codec import Mode
from triochat.core.commands import (
    Hello,
    History,
    Join,
    Me,
    Msg,
    Nick,
    Part,
    Quit,
    Rooms,
    Say,
    Topic,
    Who,
    parse_plain,
)
from triochat.core.names import LOBBY
from triochat.core.records import Batch, StoredMessage
from triochat.core.state import ChatState, Limits, Member, Query
from triochat.store import MemoryStore

NOW = 1795714800.0


class Chat:
    """A state plus helpers to add members with fake links, and a store it commits to."""

    def __init__(self, **limits: Any) -> None:
        self.state = ChatState(Limits(**limits), clock=lambda: NOW)
        self.store = MemoryStore()
        self.ids = 0

    def commit(self) -> None:
        """Commit what the state stored so far, as the hub does at the end of a batch."""
        self.store.commit(self.state.take_effects().batch)

    def plain(self, name: str) -> tuple[Member, FakeLink]:
        self.ids += 1
        link = FakeLink()
        member = self.state.register(self.ids, "test", link, Mode.PLAIN, Nick(name))
        assert member is not None
        assert not link.replays
        link.lines()  # the welcome
        return member, link

    def json(self, name: str, **hello: Any) -> tuple[Member, FakeLink, list[Query]]:
        """A JSON member; its paced replays (returned) are served from the store."""
        self.ids += 1
        link = FakeLink()
        self.commit()
        member = self.state.register(self.ids, "test", link, Mode.JSON, Hello(name, **hello))
        assert member is not None
        queries = list(link.replays)
        link.serve(self.store, NOW)
        return member, link, queries


def test_state_everyone_starts_in_the_lobby() -> None:
    """A newcomer is in #lobby, which is its current room, and is welcomed there."""
    chat = Chat()
    link = FakeLink()
    member = chat.state.register(1, "test", link, Mode.JSON, Hello("alice"))
    assert member is not None
    assert member.rooms == [LOBBY]
    assert member.current == LOBBY
    (welcome,) = link.events()
    assert (welcome["type"], welcome["room"]) == ("welcome", LOBBY)


def test_state_join_creates_room_makes_it_current_and_tells_members() -> None:
    """/join creates a missing room; the joiner is confirmed, members are told."""
    chat = Chat()
    alice, a = chat.plain("alice")
    bob, b = chat.plain("bob")
    a.lines()
    chat.state.handle(alice, Join("#dev"))
    assert a.lines() == ["*** you joined #dev (1 online)"]
    assert alice.current == "#dev"
    assert alice.rooms == [LOBBY, "#dev"]
    chat.state.handle(bob, Join("#dev"))
    assert b.lines() == ["*** you joined #dev (2 online)"]
    assert a.lines() == ["*** bob joined (2 online)"]
    assert [r.name for r in chat.state.take_effects().batch.rooms] == ["#dev"]


def test_state_say_goes_to_the_current_room_only() -> None:
    """Plain text goes to the current room; members elsewhere do not get it."""
    chat = Chat()
    alice, a = chat.plain("alice")
    bob, b = chat.plain("bob")
    _carol, c = chat.plain("carol")
    for member in (alice, bob):
        chat.state.handle(member, Join("#dev"))
    for link in (a, b, c):
        link.lines()
    chat.state.handle(bob, Say("plans"))
    assert a.lines() == ["<bob> plans"]
    assert c.lines() == []


def test_state_lines_from_other_rooms_are_tagged_in_plain_mode() -> None:
    """A plain member sees lines of a room that is not its current one prefixed with it."""
    chat = Chat()
    alice, a = chat.plain("alice")
    bob, _b = chat.plain("bob")
    for member in (alice, bob):
        chat.state.handle(member, Join("#dev"))
    chat.state.handle(alice, Join(LOBBY))  # back to the lobby as current
    a.lines()
    chat.state.handle(bob, Say("in dev"))
    chat.state.handle(bob, Me("waves", room="#dev"))
    assert a.lines() == ["#dev <bob> in dev", "#dev * bob waves"]


def test_state_ids_are_per_room_and_strictly_increasing() -> None:
    """Each room numbers its own lines 1, 2, 3...; the batch holds them for the store."""
    chat = Chat()
    alice, a, _ = chat.json("alice")
    chat.state.handle(alice, Join("#dev"))
    a.lines()
    chat.state.handle(alice, Say("l1", room=LOBBY))
    chat.state.handle(alice, Say("d1", room="#dev"))
    chat.state.handle(alice, Say("l2", room=LOBBY))
    ids = [(e["room"], e["id"]) for e in a.events()]
    assert ids == [(LOBBY, 1), ("#dev", 1), (LOBBY, 2)]
    batch = chat.state.take_effects().batch
    assert [(m.room, m.id, m.text) for m in batch.messages] == [
        (LOBBY, 1, "l1"),
        ("#dev", 1, "d1"),
        (LOBBY, 2, "l2"),
    ]
    assert not chat.state.take_effects().batch


def test_state_ids_continue_from_a_loaded_room() -> None:
    """A room restored from the store goes on from its last id, never starting again."""
    chat = Chat()
    chat.state.load_room(LOBBY, last_id=41)
    alice, a, _ = chat.json("alice")
    chat.state.handle(alice, Say("next"))
    assert [e["id"] for e in a.events() if e["type"] == "say"] == [42]


def test_state_say_in_a_room_one_is_not_in_is_an_error() -> None:
    """Saying into a room you have not joined is refused; nobody else sees anything."""
    chat = Chat()
    alice, a, _ = chat.json("alice")
    bob, b, _ = chat.json("bob")
    chat.state.handle(bob, Join("#dev"))
    a.lines()
    b.lines()
    chat.state.handle(alice, Say("sneaky", room="#dev"))
    (error,) = a.events()
    assert error["code"] == "not-in-room"
    assert b.lines() == []


def test_state_part_leaves_and_moves_current_room() -> None:
    """/part leaves the current room, tells the room, and the member gets a new current."""
    chat = Chat()
    alice, a = chat.plain("alice")
    bob, b = chat.plain("bob")
    for member in (alice, bob):
        chat.state.handle(member, Join("#dev"))
    a.lines()
    b.lines()
    chat.state.handle(alice, Part())
    assert a.lines() == ["*** you left #dev", "*** #lobby is now your current room"]
    assert b.lines() == ["*** alice left (1 online)"]
    assert alice.rooms == [LOBBY]
    chat.state.handle(alice, Part("#dev"))
    assert a.lines() == ["! you are not in #dev; /join it first"]


def test_state_rooms_and_topics() -> None:
    """/topic sets and shows; /rooms lists every room, empty ones included, with topics."""
    chat = Chat()
    alice, a = chat.plain("alice")
    chat.state.handle(alice, Join("#dev"))
    chat.state.handle(alice, Topic("release friday"))
    chat.state.handle(alice, Part())
    a.lines()
    chat.state.handle(alice, Topic(None, "#dev"))
    assert a.lines() == ["*** #dev: topic: release friday (set by alice)"]
    chat.state.handle(alice, Rooms())
    assert a.lines() == [
        "*** rooms (2):",
        "***   #dev (0 online): release friday",
        "***   #lobby (1 online)",
    ]
    (record,) = [r for r in chat.state.take_effects().batch.rooms if r.topic]
    assert (record.name, record.topic, record.topic_by) == ("#dev", "release friday", "alice")


def test_state_who_names_a_room() -> None:
    """/who lists the current room by default, or the room asked for."""
    chat = Chat()
    alice, a = chat.plain("alice")
    bob, _ = chat.plain("bob")
    chat.state.handle(bob, Join("#dev"))
    a.lines()
    chat.state.handle(alice, Who())
    chat.state.handle(alice, Who("#dev"))
    chat.state.handle(alice, Who("#nope"))
    assert a.lines() == [
        "*** online (2): alice, bob",
        "*** #dev: online (1): @bob",  # its founder (the first in it) is marked
        "! no such room: #nope",
    ]


def test_state_room_limits() -> None:
    """--max-rooms and --max-rooms-per-member refuse with a reason, changing nothing."""
    chat = Chat(max_rooms=3, max_rooms_per_member=2)
    alice, a = chat.plain("alice")
    chat.state.handle(alice, Join("#one"))
    chat.state.handle(alice, Join("#two"))
    assert a.lines()[-1] == "! you are in 2 rooms already; /part one"
    chat.state.handle(alice, Part())
    chat.state.handle(alice, Join("#two"))
    chat.state.handle(alice, Part())
    chat.state.handle(alice, Join("#three"))
    assert a.lines()[-1] == "! this server has no room for more rooms"
    assert sorted(chat.state.rooms) == ["#lobby", "#one", "#two"]


def test_state_presence_is_coalesced_per_room() -> None:
    """Above --coalesce-above, a room's joins become one summary per tick; others are untouched."""
    chat = Chat(coalesce_above=2)
    _alice, a = chat.plain("alice")
    chat.plain("bob")
    a.lines()
    for name in ("carol", "dave"):
        chat.plain(name)
    assert a.lines() == []
    chat.state.tick()
    assert a.lines() == ["*** 2 joined (4 online)"]


def test_state_history_is_replayed_on_joining_a_room() -> None:
    """Joining a room replays its last --history lines, with a header in plain mode."""
    chat = Chat(history=2)
    alice, _a = chat.plain("alice")
    chat.state.handle(alice, Join("#dev"))
    for text in ("one", "two", "three"):
        chat.state.handle(alice, Say(text))
    bob, b = chat.plain("bob")
    chat.state.handle(bob, Join("#dev"))
    lines = b.lines()
    assert lines[0] == "*** you joined #dev (2 online)"
    assert lines[1] == "*** last 2 messages:"
    assert [line.split("] ", 1)[1] for line in lines[2:]] == ["<alice> two", "<alice> three"]


def test_state_private_messages_are_not_stored() -> None:
    """/msg reaches its target wherever it is, and is never part of a store batch."""
    chat = Chat()
    alice, _a = chat.plain("alice")
    bob, b = chat.plain("bob")
    chat.state.handle(bob, Join("#dev"))
    b.lines()
    chat.state.handle(alice, Msg("bob", "psst"))
    assert b.lines() == ["*alice* psst"]
    assert not chat.state.take_effects().batch.messages


def test_state_resume_has_no_gap_and_no_duplicate() -> None:
    """A hello with since replays exactly the lines after that id, marked history.

    The replay is paced: queued on the link at its place (after the welcome), for the
    server to read from the store, up to the room's last id when it was asked.
    """
    chat = Chat()
    alice, _a, _ = chat.json("alice")
    for n in range(5):
        chat.state.handle(alice, Say(f"m{n}"))
    _, b, (query,) = chat.json("bob", since=((LOBBY, 2),))
    assert (query.room, query.after, query.upto, query.limit) == (LOBBY, 2, 5, 1000)
    events = b.events()
    assert events[0]["type"] == "welcome"
    says = [e for e in events if e["type"] == "say"]
    assert [(e["id"], e.get("history")) for e in says] == [(3, True), (4, True), (5, True)]


def test_state_resume_over_the_limit_is_a_gap_then_the_newest() -> None:
    """More missed lines than --resume-limit: a gap event with the count, then the newest."""
    chat = Chat(resume_limit=2)
    alice, _a, _ = chat.json("alice")
    for n in range(6):
        chat.state.handle(alice, Say(f"m{n}"))
    _, b, _ = chat.json("bob", since=((LOBBY, 1),))
    events = [e for e in b.events() if e["type"] in ("gap", "say")]
    assert events[0] == {"type": "gap", "room": LOBBY, "skipped": 3, "ts": NOW}
    assert [e["id"] for e in events[1:]] == [5, 6]


def test_state_resume_rejoins_other_rooms() -> None:
    """A hello's since names other rooms: they are rejoined and resumed, lobby stays current."""
    chat = Chat()
    alice, _a, _ = chat.json("alice")
    chat.state.handle(alice, Join("#dev"))
    for n in range(3):
        chat.state.handle(alice, Say(f"d{n}", room="#dev"))
    bob, b, queries = chat.json("bob", since=(("#dev", 1),), rooms=("#ops",))
    assert [(q.room, q.after) for q in queries] == [("#dev", 1)]
    assert bob.rooms == [LOBBY, "#dev", "#ops"]
    events = b.events()
    kinds = [(e["type"], e.get("room")) for e in events]
    assert kinds[0] == ("welcome", LOBBY)
    assert ("join", "#dev") in kinds
    assert [e["id"] for e in events if e["type"] == "say"] == [2, 3]
    assert kinds[-1] == ("current", LOBBY)


def test_state_resume_beyond_the_cache_reads_the_store() -> None:
    """Lines older than the cache are read from the store, in order, all of them."""
    chat = Chat()
    rows = [StoredMessage(LOBBY, i, NOW, "say", "old", f"t{i}") for i in range(1, 501)]
    chat.store.commit(Batch(messages=rows))
    chat.state.load_room(LOBBY, last_id=500, recent=rows[-200:])
    _, b, (query,) = chat.json("bob", since=((LOBBY, 10),))
    assert (query.room, query.after, query.limit) == (LOBBY, 10, 1000)
    assert [e["id"] for e in b.events() if e["type"] == "say"] == list(range(11, 501))


def test_state_resume_with_nothing_missed_reads_nothing() -> None:
    """A client that saw the room's last line resumes without a replay at all."""
    chat = Chat()
    alice, _a, _ = chat.json("alice")
    chat.state.handle(alice, Say("hi"))
    _, b, queries = chat.json("bob", since=((LOBBY, 1),))
    assert queries == []
    assert [e["type"] for e in b.events()] == ["welcome"]


def test_state_history_request_pages_back() -> None:
    """history before=ID returns the lines just before it and a history-end event."""
    chat = Chat()
    alice, a, _ = chat.json("alice")
    for n in range(10):
        chat.state.handle(alice, Say(f"m{n}"))
    a.lines()
    chat.state.handle(alice, History(limit=3, before=8))
    assert not a.replays  # the cache covers it: answered at once
    events = a.events()
    assert [e["id"] for e in events if e["type"] == "say"] == [5, 6, 7]
    assert events[-1] == {
        "type": "history-end",
        "room": LOBBY,
        "count": 3,
        "more": True,
        "ts": NOW,
    }


def test_state_quit_frees_the_name_and_leaves_every_room() -> None:
    """A member who quits is announced in each of its rooms and its link is closed."""
    chat = Chat()
    alice, a = chat.plain("alice")
    bob, b = chat.plain("bob")
    for member in (alice, bob):
        chat.state.handle(member, Join("#dev"))
    b.lines()
    chat.state.handle(alice, Quit())
    assert a.closed
    assert sorted(b.lines()) == ["*** #lobby: alice left (1 online)", "*** alice left (1 online)"]
    assert chat.state.names() == ["bob"]
    chat.plain("alice")  # the name is free again


def test_state_full_link_is_dropped_as_too_slow_alone() -> None:
    """A member whose queue overflows is cut off; the others get everything."""
    chat = Chat()
    alice, a = chat.plain("alice")
    slow_link = FakeLink(room=2)
    slow = chat.state.register(99, "test", slow_link, Mode.PLAIN, Nick("slow"))
    assert slow is not None
    a.lines()
    for text in ("one", "two", "three"):
        command = parse_plain(text)
        assert command is not None
        chat.state.handle(alice, command)
    chat.state.drop_too_slow()
    assert slow_link.cut_off
    assert chat.state.names() == ["alice"]
    assert a.lines() == ["*** slow left: too slow (1 online)"]


@pytest.mark.parametrize("name", ["Alice", "aIice", "AL1CE"])
def test_state_lookalike_names_are_taken(name: str) -> None:
    """Names are unique under the confusable skeleton, across the whole server."""
    chat = Chat()
    _, _ = chat.plain("alice")
    bob, b = chat.plain("bob")
    chat.state.handle(bob, Nick(name))
    assert b.lines()[0].startswith(f"! the name {name} is taken")
