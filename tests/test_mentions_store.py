"""/mentions from the store: the search index finds, the mention rule confirms.

A mention older than the lines the server holds in memory is found after a restart;
without an index (``--no-search-index``) the answer comes from the recent lines; only
the rooms the asker is in are read, operator or not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import example, given
from hypothesis import strategies as st

from tests.desk import parse
from tests.test_mentions import StoredDesk
from tests.test_rooms import FlakyStore
from triochat.config import ServerConfig
from triochat.core.mentions import MentionQuery
from triochat.core.model import CACHE_MESSAGES
from triochat.core.notify import MAX_MENTIONS
from triochat.core.records import Batch, StoredMessage
from triochat.core.search import holds_all, words
from triochat.server import ChatServer
from triochat.store import MemoryStore, SQLiteStore, Store
from triochat.store import mentions as store_mentions
from triochat.store.mentions import find_mentions
from triochat.testing import Peer, join_json

OLD = "@alice the old question"  # said before CACHE_MESSAGES other lines
NEW = "alice: the newest line"


def _away_then_named(store: Store) -> None:
    """alice registers and leaves; bob names her, talks on past the cache, names her again."""
    desk = StoredDesk(store)
    alice, _ = desk.registered("alice")
    bob, _ = desk.plain("bob")
    desk.state.handle(alice, parse("/quit"))
    desk.save()
    desk.now += 1
    desk.state.handle(bob, parse(OLD))
    for number in range(CACHE_MESSAGES + 10):
        desk.now += 1
        desk.state.handle(bob, parse(f"filler {number}, malice and alice.smith"))
    desk.now += 1
    desk.state.handle(bob, parse(NEW))
    desk.save()


def _restarted_mentions(store: Store) -> list[str]:
    """A new state over ``store`` (its rooms loaded as the hub does); alice's /mentions."""
    desk = StoredDesk(store)
    for room in store.load_rooms():
        recent = store.recent(room.name, CACHE_MESSAGES)
        desk.state.load_room(room.name, room.last_id, recent=recent)
    alice, link = desk.log_in("alice")
    link.lines()
    desk.state.handle(alice, parse("/mentions"))
    link.serve(store)
    return [line.split("> ", 1)[1] for line in link.lines()[1:]]


@pytest.mark.parametrize(("index", "found"), [(True, [NEW, OLD]), (False, [NEW])])
def test_mentions_older_than_the_recent_lines_after_a_restart(
    tmp_path: Path, index: bool, found: list[str]
) -> None:
    """The index finds a mention the last 200 lines no longer hold; without it, the
    answer falls back to those recent lines (issue 21)."""
    db = tmp_path / "chat.db"
    store = SQLiteStore.open(db)
    try:
        _away_then_named(store)
    finally:
        store.close()
    store = SQLiteStore.open(db, search_index=index)
    try:
        assert _restarted_mentions(store) == found
    finally:
        store.close()


def test_mentions_memory_store_scans_past_the_recent_lines() -> None:
    store = MemoryStore()
    _away_then_named(store)
    assert _restarted_mentions(store) == [NEW, OLD]


@pytest.mark.parametrize("operator", [False, True])
def test_mentions_read_only_the_askers_rooms(operator: bool) -> None:
    """A mention in a room alice is not in is not hers to read, operator or not."""
    store = MemoryStore()
    desk = StoredDesk(store, ops=("alice",) if operator else ())
    alice, link = desk.registered("alice")
    bob, _ = desk.plain("bob")
    carol, _ = desk.plain("carol")
    desk.state.handle(carol, parse("/join #secret"))
    desk.state.handle(carol, parse("alice is clueless, don't tell her"))
    desk.state.handle(bob, parse("hi alice"))
    desk.save()
    link.lines()
    desk.state.handle(alice, parse("/mentions"))
    link.serve(store)
    lines = link.lines()
    assert [line.split("> ", 1)[1] for line in lines[1:]] == ["hi alice"], lines


def _line(room: str, number: int, sender: str, text: str, ts: float = 0.0) -> StoredMessage:
    return StoredMessage(room, number, ts or 1000.0 + number, "say", sender, text)


def _stored(*lines: StoredMessage) -> MemoryStore:
    store = MemoryStore()
    store.commit(Batch(messages=list(lines)))
    return store


def test_find_mentions_confirms_each_candidate_with_the_rule() -> None:
    """The index finds the name's words; the rule drops longer names, her own lines and
    lines from before she left; newest first, bounded."""
    store = _stored(
        _line("#a", 1, "bob", "alice before"),
        _line("#a", 2, "bob", "alice.smith is someone else"),
        _line("#a", 3, "alice", "alice talks of herself"),
        _line("#b", 1, "bob", "@ALICE in b", ts=1003.5),
        _line("#a", 4, "bob", "and alice again"),
    )
    ask = MentionQuery("alice", ("#a", "#b"), 1001.0, MAX_MENTIONS)
    found = find_mentions(store, ask)
    assert found is not None
    assert [(m.room, m.id, m.text) for m in found] == [
        ("#a", 4, "and alice again"),
        ("#b", 1, "@ALICE in b"),
    ]
    limited = find_mentions(store, MentionQuery("alice", ("#a", "#b"), 0.0, 1))
    assert limited is not None
    assert [m.id for m in limited] == [4]
    assert find_mentions(store, MentionQuery("alice", (), 0.0, 5)) == []


def test_find_mentions_says_none_without_an_index(tmp_path: Path) -> None:
    store = SQLiteStore.open(tmp_path / "chat.db", search_index=False)
    try:
        assert find_mentions(store, MentionQuery("alice", ("#a",), 0.0, 5)) is None
    finally:
        store.close()


def test_find_mentions_confirms_a_bounded_number_of_candidates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A name that is a common word reads at most MAX_CANDIDATES lines, a page at a time."""
    monkeypatch.setattr(store_mentions, "MAX_CANDIDATES", 7)
    monkeypatch.setattr(store_mentions, "MENTION_PAGE", 3)
    oldest = _line("#a", 1, "bob", "alice, the oldest")
    store = _stored(oldest, *(_line("#a", n, "bob", f"alice.x {n}") for n in range(2, 21)))
    assert find_mentions(store, MentionQuery("alice", ("#a",), 0.0, 5)) == []
    monkeypatch.setattr(store_mentions, "MAX_CANDIDATES", 20)
    found = find_mentions(store, MentionQuery("alice", ("#a",), 0.0, 5))
    assert found is not None
    assert [m.text for m in found] == [oldest.text]


# --------------------------------------------------------------------------------------
# Through the server: the history reader reads it off the hub


async def _until(peer: Peer, kind: str) -> dict[str, Any]:
    while (event := await peer.event())["type"] != kind:
        pass
    return event


@pytest.mark.parametrize(("index", "found"), [(True, [NEW, OLD]), (False, [NEW])])
async def test_mentions_through_the_history_reader(
    nursery: trio.Nursery, tmp_path: Path, index: bool, found: list[str]
) -> None:
    store = SQLiteStore.open(tmp_path / "chat.db", search_index=index)
    config = ServerConfig(rate_limit=0, send_queue=100_000, no_search_index=not index)
    server = ChatServer(config, store)
    await nursery.start(server.run)
    alice = await join_json(nursery, server, "alice")
    await alice.send_json(type="register", password="correct-horse")
    await _until(alice, "account")
    bob = await join_json(nursery, server, "bob")
    texts = [OLD, *(f"filler {n}" for n in range(CACHE_MESSAGES + 10)), NEW]
    for text in texts:
        await bob.send_json(type="say", text=text)
    for _ in texts:
        await _until(bob, "say")
    await alice.send_json(type="mentions")
    event = await _until(alice, "mentions")
    assert [m["text"] for m in event["mentions"]] == found
    await server.shutdown()


async def test_mentions_while_the_store_is_down_says_so_and_gives_the_recent_lines(
    nursery: trio.Nursery,
) -> None:
    store = FlakyStore()
    server = ChatServer(ServerConfig(), store)
    await nursery.start(server.run)
    alice = await join_json(nursery, server, "alice")
    await alice.send_json(type="register", password="correct-horse")
    await _until(alice, "account")
    bob = await join_json(nursery, server, "bob")
    store.failing = True
    await bob.send_json(type="say", text=NEW)
    assert (await _until(bob, "notice"))["code"] == "history-unsaved"
    await alice.send_json(type="mentions")
    error = await _until(alice, "error")
    assert (error["code"], error["text"]) == (
        "history-unavailable",
        "older mentions cannot be read right now; try again later",
    )
    event = await alice.event()
    assert [m["text"] for m in event["mentions"]] == [NEW]
    store.failing = False
    await server.shutdown()


@given(st.text(alphabet="aAlLiIcCeE .@_-é1", max_size=20), st.text(alphabet="alicé1", max_size=6))
@example("Hi ALICE.", "alice")
@example("alice.smith", "alice")
@example("malice", "alice")
@example("Alicé", "alice")
def test_holds_all_quick_no_agrees_with_the_words(text: str, name: str) -> None:
    """The memory store's scan rejects ASCII lines early; it must say what words() says."""
    terms = words(name)
    assert holds_all(text, terms) == set(terms).issubset(words(text))
