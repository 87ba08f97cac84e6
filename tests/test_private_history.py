"""Private history: stored between registered members, resumed, paged, and private.

State-level tests drive the chat state by hand (tests.desk.Desk) with the memory store
standing in for the hub's commits; one test keeps the lines in a real SQLite file over
a restart.
"""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path

import pytest
import trio

from tests.desk import Desk, parse
from tests.helpers import FakeLink
from tests.test_accounts import connect_from, register
from tests.test_client_rooms import welcomed
from tests.test_ui import NODE, STATIC, run_page_script
from triochat.client.render import STYLE_HISTORY
from triochat.client.requests import request_for
from triochat.client.rooms import Shown
from triochat.client.view import render_event
from triochat.core.commands import Command, History, parse_json
from triochat.core.events import Event, Private
from triochat.core.jsonwire import event_object, object_event
from triochat.core.names import name_key
from triochat.core.records import Batch, StoredPrivate, pair_of
from triochat.core.state import Member
from triochat.store import MemoryStore, SQLiteStore, Store
from triochat.testing import Peer, open_test_server

pytestmark = pytest.mark.usefixtures("cheap_hashing")


def _commit(desk: Desk, store: Store) -> list[StoredPrivate]:
    """Commit the state's batch as the hub would; the private lines it held."""
    batch = desk.state.take_effects().batch
    store.commit(batch)
    return batch.private


def _json(line: str) -> Command:
    command = parse_json(line)
    assert command is not None
    return command


def _three(desk: Desk) -> tuple[tuple[Member, FakeLink], ...]:
    """alice, bob and carol, registered (so logged in), with their links."""
    return tuple(desk.registered(name) for name in ("alice", "bob", "carol"))


def _talk(desk: Desk, alice: Member, bob: Member, lines: int) -> None:
    """alice and bob take turns: line 0 from alice, line 1 from bob, ..."""
    for n in range(lines):
        sender, to = (alice, "bob") if n % 2 == 0 else (bob, "alice")
        desk.state.handle(sender, parse(f"/msg {to} line {n}"))


def _history(desk: Desk, store: Store, member: Member, link: FakeLink, line: str) -> list[str]:
    link.lines()
    desk.state.handle(member, parse(line))
    link.serve(store, desk.now)
    return link.lines()


def test_private_history_between_registered_members_is_stored_in_the_batch() -> None:
    """A /msg between two logged-in members goes into the step's batch with an id."""
    desk, store = Desk(), MemoryStore()
    (alice, _), (bob, b), _ = _three(desk)
    desk.state.handle(alice, parse("/msg bob hello bob"))
    desk.state.handle(bob, parse("/msg alice hi alice"))
    lines = _commit(desk, store)
    a, b_key = pair_of("allce", "bob")
    assert [(p.a, p.b, p.id, p.sender, p.to, p.text) for p in lines] == [
        (a, b_key, 1, "alice", "bob", "hello bob"),
        (a, b_key, 2, "bob", "alice", "hi alice"),
    ]
    assert store.private_last_id() == 2
    assert b.lines()[-2:] == ["*alice* hello bob", "-> *alice* hi alice"]


def test_private_history_of_a_guest_is_never_stored() -> None:
    """A guest's private messages, sent or received, are delivered and not stored."""
    desk, store = Desk(), MemoryStore()
    alice, _ = desk.registered("alice")
    guest, g = desk.plain("dave")
    desk.state.handle(guest, parse("/msg alice psst"))
    desk.state.handle(alice, parse("/msg dave hello"))
    assert _commit(desk, store) == []
    assert g.lines() == ["-> *alice* psst", "*alice* hello"]
    assert _history(desk, store, guest, g, "/history @alice") == [
        "! private history is kept for registered names only: log in (/login) first"
    ]


def test_private_history_at_name_pages_the_conversation() -> None:
    """/history @bob N replays the newest N lines of the conversation, marked as history."""
    desk, store = Desk(), MemoryStore()
    (alice, a), (bob, _), _ = _three(desk)
    _talk(desk, alice, bob, 5)
    _commit(desk, store)
    lines = _history(desk, store, alice, a, "/history @bob 3")
    assert lines[0] == "*** last 3 messages in @bob:"
    assert [line.split("] ", 1)[1] for line in lines[1:]] == [
        "-> *bob* line 2",
        "*bob* line 3",
        "-> *bob* line 4",
    ]
    assert all(line.startswith("[") for line in lines[1:])  # the time: replayed history


def test_private_history_json_request_pages_with_before() -> None:
    """The JSON history request with "with" pages back by id; history-end says if more."""
    desk, store = Desk(), MemoryStore()
    (alice, _), (bob, _), _ = _three(desk)
    _talk(desk, alice, bob, 5)
    _commit(desk, store)
    desk.state.handle(bob, parse("/quit"))
    conn_id, _, link = desk.json("bob", password="correct-horse")
    desk.run_jobs()
    member = desk.state.member(conn_id)
    assert member is not None
    link.lines()
    request = parse_json('{"type":"history","with":"alice","limit":2}')
    assert request == History(None, 2, None, "alice")
    desk.state.handle(member, request)
    link.serve(store, desk.now)
    events = link.events()
    assert [(e["type"], e.get("id"), e.get("history")) for e in events] == [
        ("msg", 4, True),
        ("msg", 5, True),
        ("history-end", None, None),
    ]
    assert events[-1]["room"] == "@alice"
    assert events[-1]["more"] is True
    desk.state.handle(member, _json('{"type":"history","with":"alice","before":4}'))
    link.serve(store, desk.now)
    events = link.events()
    assert [e["text"] for e in events if e["type"] == "msg"] == ["line 0", "line 1", "line 2"]
    assert events[-1]["more"] is False


def test_private_history_a_third_member_sees_only_their_own_conversation() -> None:
    """carol's /history @bob shows carol and bob's lines, never alice and bob's."""
    desk, store = Desk(), MemoryStore()
    (alice, _), (bob, _), (carol, c) = _three(desk)
    _talk(desk, alice, bob, 3)
    desk.state.handle(carol, parse("/msg bob from carol"))
    _commit(desk, store)
    lines = _history(desk, store, carol, c, "/history @bob")
    assert lines[1:] == [lines[1]]
    assert lines[1].endswith("-> *bob* from carol")
    nothing = ["*** last 0 messages in @alice:"]  # nothing between them
    assert _history(desk, store, carol, c, "/history @alice") == nothing


def test_private_history_operators_cannot_read_others_conversations() -> None:
    """An operator asking for @bob gets the operator's own conversation, nothing else."""
    desk, store = Desk(ops=("carol",)), MemoryStore()
    (alice, _), (bob, _), (carol, c) = _three(desk)
    assert desk.state.access.is_op(carol.account)
    _talk(desk, alice, bob, 4)
    _commit(desk, store)
    assert _history(desk, store, carol, c, "/history @bob") == ["*** last 0 messages in @bob:"]
    assert _history(desk, store, carol, c, "/history @alice") == ["*** last 0 messages in @alice:"]
    # What the state asked the store for is carol's own pair, whatever she typed.
    desk.state.handle(carol, parse("/history @bob"))
    (query,) = c.replays
    assert query.private == (name_key("carol"), name_key("bob"))


def test_private_history_is_resumed_with_since_at() -> None:
    """A JSON hello with since {"@": N} gets the private lines after N, all peers."""
    desk, store = Desk(), MemoryStore()
    (alice, _), (bob, _), (carol, _) = _three(desk)
    _talk(desk, alice, bob, 3)  # ids 1-3
    desk.state.handle(carol, parse("/msg alice from carol"))  # 4
    desk.state.handle(carol, parse("/msg bob not for alice"))  # 5
    _commit(desk, store)
    desk.state.handle(alice, parse("/quit"))
    conn_id, _, link = desk.json("alice", password="correct-horse", since=(("@", 1),))
    desk.run_jobs()
    assert desk.state.member(conn_id) is not None
    link.serve(store, desk.now)
    missed = [e for e in link.events() if e["type"] == "msg"]
    assert [(e["id"], e["from"], e["to"], e["text"], e["history"]) for e in missed] == [
        (2, "bob", "alice", "line 1", True),
        (3, "alice", "bob", "line 2", True),
        (4, "carol", "alice", "from carol", True),
    ]


def test_private_history_resume_needs_the_account() -> None:
    """A guest's since {"@": 0} replays nothing (it has no private history)."""
    desk, store = Desk(), MemoryStore()
    (alice, _), (bob, _), _ = _three(desk)
    _talk(desk, alice, bob, 2)
    _commit(desk, store)
    _, member, link = desk.json("zed", since=(("@", 0),))
    assert member is not None
    assert link.replays == []


def test_private_history_live_lines_carry_their_id_for_resume() -> None:
    """A JSON member sees the stored line's id live, to resume from it later."""
    desk = Desk()
    (alice, _), _, _ = _three(desk)
    desk.state.handle(alice, parse("/quit"))
    conn_id, _, link = desk.json("alice", password="correct-horse")
    desk.run_jobs()
    member = desk.state.member(conn_id)
    assert member is not None
    link.lines()
    desk.state.handle(member, _json('{"type":"msg","to":"bob","text":"hey"}'))
    (event,) = [e for e in link.events() if e["type"] == "msg"]
    assert event["id"] == 1
    assert "history" not in event


def test_private_history_survives_a_restart_in_sqlite(tmp_path: Path) -> None:
    """Lines committed to a SQLite file are there after a restart, and ids go on."""
    path = tmp_path / "chat.db"
    desk, store = Desk(), SQLiteStore.open(path)
    (alice, _), (bob, _), _ = _three(desk)
    _talk(desk, alice, bob, 3)
    _commit(desk, store)
    store.close()

    store = SQLiteStore.open(path)
    try:
        desk = Desk()
        desk.state.load_private(store.private_last_id())
        (alice, a), (bob, _), _ = _three(desk)
        desk.state.handle(bob, parse("/msg alice after the restart"))
        (line,) = _commit(desk, store)
        assert line.id == 4
        lines = _history(desk, store, alice, a, "/history @bob")
        assert [line.split("] ", 1)[1] for line in lines[1:]] == [
            "-> *bob* line 0",
            "*bob* line 1",
            "-> *bob* line 2",
            "*bob* after the restart",
        ]
        assert store.private_since("allce", 2, 10) == (
            store.private_between("bob", "allce", None, 2),
            0,
        )
    finally:
        store.close()


@pytest.mark.parametrize("make", [MemoryStore, None])
def test_private_history_store_reads_and_retention(make: object, tmp_path: Path) -> None:
    """Both stores: since skips the oldest beyond the limit, between pages, age prunes."""
    store: Store = MemoryStore() if make is not None else SQLiteStore.open(tmp_path / "x.db")
    try:
        ab, ac = pair_of("a", "b"), pair_of("a", "c")
        lines = [
            StoredPrivate(*(ab if n % 2 else ac), n, 100.0 * n, "x", "y", f"t{n}")
            for n in range(1, 7)
        ]
        store.commit(Batch(private=lines))
        store.commit(Batch(private=lines[:2]))  # a retried batch: no duplicates
        assert store.private_since("a", 1, 3) == (lines[3:], 2)
        assert store.private_since("b", 0, 10) == ([lines[0], lines[2], lines[4]], 0)
        assert store.private_since("c", 0, 10, upto=4) == ([lines[1], lines[3]], 0)
        assert store.private_between("b", "a", 5, 1) == [lines[2]]
        assert store.private_between("a", "b", None, 10) == [lines[0], lines[2], lines[4]]
        assert store.prune(350.0 + 86400, 1, None) == 3  # ts 100, 200, 300
        assert store.private_between("a", "b", None, 10) == [lines[4]]
        assert store.private_last_id() == 6
        assert store.prune(1e12, 1, None) == 3
        assert store.private_last_id() == 6  # never lowered
    finally:
        store.close()


# -- the terminal client and the page ----------------------------------------------------


def _msg(msg_id: int, *, history: bool = False, sender: str = "bob") -> Event:
    fields: dict[str, object] = {"type": "msg", "ts": 0, "from": sender, "to": "alice"}
    fields.update(text="x", id=msg_id, history=history)
    return object_event(fields)


def test_private_history_client_resumes_from_the_highest_private_id() -> None:
    """The client's resume hello carries since "@", and a replayed line is shown once."""
    rooms = welcomed()
    assert rooms.apply(_msg(4), "alice") == Shown()
    assert rooms.apply(_msg(0), "alice") == Shown()  # a guest's: no id, no effect
    hello = rooms.start_resume("alice")
    assert hello["since"] == {"@": 4}
    assert rooms.apply(_msg(4, history=True), "alice") is None  # shown before
    assert rooms.apply(_msg(5, history=True), "alice") == Shown()
    assert rooms.private_last == 5


def test_private_history_client_asks_with_and_shows_the_older_reply() -> None:
    """/history @bob 5 becomes a request "with" bob; its older lines are shown as a reply."""
    rooms = welcomed()
    rooms.apply(_msg(9), "alice")
    request = request_for("/history @bob 5", rooms)
    assert request == {"type": "history", "with": "bob", "limit": 5}
    assert isinstance(request, dict)
    rooms.note_sent(request)
    assert rooms.apply(_msg(3, history=True), "alice") == Shown(reply=True)
    end = object_event({"type": "history-end", "ts": 0, "room": "@bob", "count": 1, "more": False})
    assert rooms.apply(end, "alice") == Shown()
    assert rooms.apply(_msg(3, history=True), "alice") is None  # no request: a stale replay


def test_private_history_client_renders_replayed_private_lines_dim() -> None:
    """A replayed private line has the history style; a live one does not."""
    live = render_event(Private(0.0, "bob", "alice", "hi", 3), "alice", UTC)
    old = render_event(Private(0.0, "bob", "alice", "hi", 3, history=True), "alice", UTC)
    assert live is not None
    assert old is not None
    assert STYLE_HISTORY not in str(live.style)
    assert STYLE_HISTORY in str(old.style)
    assert old.plain == live.plain


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_private_history_page_commands_and_history_lines() -> None:
    """The page sends /history @bob N with "with", and marks a replayed private line."""
    lines = ["/history @bob 5", "/history @bob", "/history @", "/history 7"]
    events = [
        event_object(Private(0.0, "bob", "alice", "hi", 3, history=True)),
        event_object(Private(0.0, "bob", "alice", "hi", 4)),
    ]
    script = f"""
    const {{ parseLine }} = await import("{(STATIC / "commands.js").as_uri()}");
    const {{ privateLine }} = await import("{(STATIC / "view.js").as_uri()}");
    const parsed = {json.dumps(lines)}.map((line) => parseLine(line, "#dev"));
    const classes = {json.dumps(events)}.map((event) => privateLine(event, "alice").className);
    console.log(JSON.stringify([parsed, classes]));
    """
    parsed, classes = run_page_script(script)
    assert parsed == [
        {"request": {"type": "history", "with": "bob", "limit": 5}},
        {"request": {"type": "history", "with": "bob", "limit": 20}},
        {"error": "usage: /history @NAME [N]"},
        {"request": {"type": "history", "room": "#dev", "limit": 7}},
    ]
    assert classes == ["line private history", "line private"]


# -- through the server: SQLite over a restart, and a resume -----------------------------


async def _event(peer: Peer, kind: str) -> dict[str, object]:
    while (event := await peer.event())["type"] != kind:
        pass
    return event


async def test_private_history_through_the_server_over_a_restart(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """Stored by the hub's commits, read back after a restart by /history @ and a resume."""
    db = tmp_path / "chat.db"
    first = await open_test_server(nursery, store=SQLiteStore.open(db))
    bob = connect_from(nursery, first, "127.0.0.1")
    await register(bob, "bob")
    alice = connect_from(nursery, first, "127.0.0.1")
    await register(alice, "alice")
    await alice.send("/msg bob one")
    while await bob.line() != "*alice* one":
        pass
    await bob.send("/msg alice two")
    while await alice.line() != "*bob* two":
        pass
    await first.shutdown()

    second = await open_test_server(nursery, store=SQLiteStore.open(db))
    alice = connect_from(nursery, second, "127.0.0.1")
    await alice.send_json(type="hello", name="alice", password="correct-horse", since={"@": 1})
    assert (await alice.event())["type"] == "welcome"
    replayed = await _event(alice, "msg")
    assert (replayed["id"], replayed["from"], replayed["text"]) == (2, "bob", "two")
    assert replayed["history"] is True
    bob = connect_from(nursery, second, "127.0.0.1")
    await bob.send("/login bob correct-horse")
    await bob.send("/msg alice three")
    live = await _event(alice, "msg")
    assert (live["id"], live["text"]) == (3, "three")  # ids go on after the restart
    assert "history" not in live
    await alice.send_json(type="history", **{"with": "bob"})
    page = [await _event(alice, "msg") for _ in range(3)]
    assert [(e["text"], e["history"]) for e in page] == [
        ("one", True),
        ("two", True),
        ("three", True),
    ]
    end = await _event(alice, "history-end")
    assert (end["room"], end["count"], end["more"]) == ("@bob", 3, False)
    await second.shutdown()
