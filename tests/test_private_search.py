"""/search in private lines (issue 21): only the asker's own, by account, both stores.

State-level tests drive the chat state by hand (tests.desk.Desk); the fake link answers
the search from a real store (memory or SQLite), as the history reader does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.desk import Desk, parse
from tests.helpers import FakeLink
from triochat.client.requests import request_for
from triochat.client.rooms import ClientRooms
from triochat.core.commands import Invalid, Search, parse_json, parse_plain
from triochat.core.names import name_key
from triochat.core.records import Batch, StoredMessage, StoredPrivate, pair_of
from triochat.core.search import SEARCH_PAGE, SearchQuery, pack_position, unpack_position, words
from triochat.core.search_pages import next_position
from triochat.core.state import Member
from triochat.store import MemoryStore, SQLiteStore, Store

pytestmark = pytest.mark.usefixtures("cheap_hashing")

NOW = 1_700_000_000.0


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened: Store = (
        MemoryStore() if request.param == "memory" else SQLiteStore.open(tmp_path / "t.db")
    )
    yield opened
    opened.close()


def _private(id: int, sender: str, to: str, text: str, ts: float | None = None) -> StoredPrivate:
    a, b = pair_of(name_key(sender), name_key(to))
    return StoredPrivate(a, b, id, NOW + id if ts is None else ts, sender, to, text)


def _found(store: Store, text: str, **more: object) -> list[tuple[str, int, str]]:
    query = SearchQuery(words(text), **more)  # type: ignore[arg-type]
    return [(h.message.room, h.message.id, h.message.sender) for h in store.search(query)]


def _fill(store: Store) -> None:
    store.commit(
        Batch(
            [StoredMessage("#lobby", 1, NOW + 2.5, "say", "dave", "deploy in the lobby")],
            private=[
                _private(1, "Alice", "Bob", "deploy tonight?"),
                _private(2, "Bob", "Alice", "yes, deploy at nine"),
                _private(3, "Carol", "Alice", "did the deploy work"),
                _private(4, "Bob", "Carol", "deploy secret between bob and carol"),
            ],
        )
    )


def test_store_finds_only_the_askers_own_private_lines(store: Store) -> None:
    _fill(store)
    assert _found(store, "deploy", rooms=(), mine=name_key("alice")) == [
        ("@Carol", 3, "Carol"),
        ("@Bob", 2, "Bob"),
        ("@Bob", 1, "Alice"),
    ]
    # a third person, and anyone without an account key, see none of them
    assert _found(store, "deploy", rooms=(), mine=name_key("dave")) == []
    assert _found(store, "deploy", rooms=None) == [("#lobby", 1, "dave")]
    # with the rooms, merged by time
    assert _found(store, "deploy", rooms=None, mine=name_key("carol")) == [
        ("@Bob", 4, "Bob"),
        ("@Alice", 3, "Carol"),
        ("#lobby", 1, "dave"),
    ]


def test_store_narrows_to_one_conversation_and_a_sender(store: Store) -> None:
    _fill(store)
    assert _found(store, "deploy", rooms=(), mine=name_key("alice"), peer=name_key("bob")) == [
        ("@Bob", 2, "Bob"),
        ("@Bob", 1, "Alice"),
    ]
    assert _found(store, "deploy", rooms=(), mine=name_key("alice"), peer=name_key("dave")) == []
    assert _found(store, "deploy", rooms=(), mine=name_key("alice"), sender=name_key("alice")) == [
        ("@Bob", 1, "Alice")
    ]
    assert _found(store, "deploy nine", rooms=(), mine=name_key("bob")) == [("@Alice", 2, "Bob")]


def test_store_pages_rooms_and_private_lines_together(store: Store) -> None:
    # room lines at even seconds, private lines at odd ones: they interleave
    rooms = [StoredMessage("#a", i, NOW + 2 * i, "say", "bob", f"word {i}") for i in range(1, 8)]
    private = [_private(i, "Bob", "Alice", f"word p{i}", NOW + 2 * i + 1) for i in range(1, 6)]
    store.commit(Batch(rooms, private=private))
    seen: list[str] = []
    position: int | None = None
    pages = 0
    while True:
        room_before, private_before = unpack_position(position)
        query = SearchQuery(
            ("word",), None, before=room_before, limit=4, mine=name_key("alice"),
            private_before=private_before,
        )  # fmt: skip
        hits = store.search(query)
        seen += [f"{h.message.room}{h.message.id}" for h in hits]
        pages += 1
        if len(hits) < 4:
            break
        position = next_position(query, hits)
    assert pages == 4  # three full pages, then an empty one
    newest = ["#a7", "#a6", "@Bob5", "#a5", "@Bob4", "#a4", "@Bob3", "#a3"]
    assert seen == [*newest, "@Bob2", "#a2", "@Bob1", "#a1"]


def test_positions_pack_both_cursors_and_a_room_one_alone_is_unchanged() -> None:
    assert pack_position(17, None) == 17  # no private part: the plain seq, as before
    assert unpack_position(17) == (17, None)
    assert unpack_position(pack_position(17, 5)) == (17, 5)
    assert unpack_position(pack_position(None, 5)) == (None, 5)
    assert unpack_position(None) == (None, None)


def test_parsers_read_in_at_name() -> None:
    command = parse_plain("/search in:@Bob deploy")
    assert command == Search(("deploy",), "in:@Bob deploy", "@Bob", None, None)
    assert isinstance(parse_plain("/search in:@ deploy"), Invalid)
    json_command = parse_json('{"type":"search","text":"deploy","with":"Bob"}')
    assert isinstance(json_command, Search)
    assert json_command.room == "@Bob"
    assert isinstance(parse_json('{"type":"search","text":"x","with":3}'), Invalid)
    request = request_for("/search in:@Bob deploy", ClientRooms())
    assert request == {"type": "search", "text": "deploy", "with": "Bob"}


def _search(desk: Desk, store: Store, member: Member, link: FakeLink, line: str) -> list[str]:
    store.commit(desk.state.take_effects().batch)
    link.lines()
    desk.state.handle(member, parse(line))
    link.serve(store, desk.now)
    return link.lines()


def test_state_searches_by_account_and_an_operator_gets_no_override(store: Store) -> None:
    desk = Desk(ops=("boss",))
    alice, alice_link = desk.registered("alice")
    bob, bob_link = desk.registered("bob")
    carol, _ = desk.registered("carol")
    boss, boss_link = desk.registered("boss", address="192.0.2.9")  # one address: 3 names
    guest, guest_link = desk.plain("guest")
    desk.state.handle(alice, parse("/msg bob the launch code is swordfish"))
    desk.state.handle(bob, parse("/msg alice swordfish noted"))
    desk.state.handle(carol, parse("/msg alice swordfish? what swordfish"))
    found = _search(desk, store, alice, alice_link, "/search swordfish")
    assert found[0] == '*** search "swordfish": 3 found, newest first'
    assert [line.split()[1] for line in found[1:4]] == ["@carol", "@bob", "@bob"]
    assert "<carol> swordfish? what swordfish" in found[1]
    only_bob = _search(desk, store, alice, alice_link, "/search in:@bob swordfish")
    assert only_bob[0].endswith("2 found, newest first")
    assert all("@bob" in line for line in only_bob[1:3])
    # bob sees his conversation with alice, not carol's
    assert _search(desk, store, bob, bob_link, "/search swordfish")[0].endswith(
        "2 found, newest first"
    )
    # an operator, a guest: nothing private; in:@alice is the asker's own conversation
    for member, link in ((boss, boss_link), (guest, guest_link)):
        lines = _search(desk, store, member, link, "/search swordfish")
        assert lines == ['*** search "swordfish": nothing found']
    assert not any(
        "launch" in line
        for line in _search(desk, store, boss, boss_link, "/search in:@alice swordfish")
    )
    lines = _search(desk, store, guest, guest_link, "/search in:@alice swordfish")
    assert any("log in" in line for line in lines), lines


def test_state_pages_private_hits(store: Store) -> None:
    desk = Desk()
    alice, alice_link = desk.registered("alice")
    bob, _ = desk.registered("bob")
    for n in range(SEARCH_PAGE + 3):
        desk.now += 1
        desk.state.handle(bob, parse(f"/msg alice needle {n}"))
    first = _search(desk, store, alice, alice_link, "/search needle")
    assert first[0] == f'*** search "needle": {SEARCH_PAGE}+ found, newest first'
    more = next(line for line in first if line.startswith("*** more: "))
    rest = _search(desk, store, alice, alice_link, more.removeprefix("*** more: "))
    assert rest[0] == '*** search "needle": 3 found, newest first'
    assert rest[3].endswith("<bob> needle 0")
    assert not any(line.startswith("*** more: ") for line in rest)
