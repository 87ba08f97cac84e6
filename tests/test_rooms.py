"""Rooms and history through the whole server (hub, store, connections) over memory streams."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio
import trio.testing

from tests.conftest import StartServer
from triochat.config import ServerConfig
from triochat.core.records import (
    AccountRecord,
    BanRecord,
    Batch,
    MuteRecord,
    OpRecord,
    Pref,
    RoomRecord,
    SearchHit,
    StoredMessage,
    StoredPrivate,
)
from triochat.core.search import SearchQuery
from triochat.server import ChatServer
from triochat.server.hub import STORE_DOWN
from triochat.store import MemoryStore, SQLiteStore, StoreError
from triochat.store.writer import PRUNE_EVERY_S
from triochat.testing import Peer, join, join_json


async def _until(peer: Peer, kind: str) -> dict[str, Any]:
    """The next event of type ``kind`` (others are skipped)."""
    while (event := await peer.event())["type"] != kind:
        pass
    return event


async def test_rooms_json_events_carry_the_room(nursery: trio.Nursery, server: ChatServer) -> None:
    """Every room event in JSON mode says which room it is about."""
    alice = await join_json(nursery, server, "alice")
    await alice.send_json(type="join", room="Dev")
    assert await alice.event() == {
        "type": "join",
        "room": "#dev",
        "name": "alice",
        "online": 1,
        "ts": (await _ts(alice)),
    }


async def _ts(peer: Peer) -> float:
    """The ts of the next event (the 'current' after a join)."""
    event = await peer.event()
    assert event["type"] == "current"
    ts = event["ts"]
    assert isinstance(ts, float)
    return ts


async def test_rooms_say_defaults_to_current_and_takes_a_room(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """A say without room goes to the current room; with room, to that room."""
    alice = await join_json(nursery, server, "alice")
    await alice.send_json(type="join", room="#dev")
    await alice.send_json(type="say", text="to dev")
    await alice.send_json(type="say", text="to lobby", room="#lobby")
    first = await _until(alice, "say")
    second = await _until(alice, "say")
    assert (first["room"], first["text"]) == ("#dev", "to dev")
    assert (second["room"], second["text"]) == ("#lobby", "to lobby")


async def test_rooms_plain_and_json_members_share_a_room(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """A netcat user and a JSON client in #dev see each other's lines."""
    plain = await join(nursery, server, "plain")
    client = await join_json(nursery, server, "client")
    await plain.expect("*** client joined (2 online)")
    await plain.send("/join #dev")
    await plain.expect("*** you joined #dev (1 online)")
    await client.send_json(type="join", room="#dev")
    await plain.expect("*** client joined (2 online)")
    await plain.send("hello dev")
    said = await _until(client, "say")
    assert (said["room"], said["from"], said["text"]) == ("#dev", "plain", "hello dev")
    await client.send_json(type="say", room="#dev", text="hi plain")
    await plain.expect("<client> hi plain")


async def test_rooms_history_request_from_the_store_past_the_cache(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """Scrollback older than the in-memory cache is read from SQLite, in order."""
    store = SQLiteStore.open(tmp_path / "chat.db")
    server = ChatServer(ServerConfig(rate_limit=0, send_queue=100_000), store)
    await nursery.start(server.run)
    alice = await join_json(nursery, server, "alice")
    total = 260  # more than the 200 lines the hub caches per room
    for n in range(total):
        await alice.send_json(type="say", text=f"m{n}")
    ids = [(await _until(alice, "say"))["id"] for _ in range(total)]
    await alice.send_json(type="history", before=ids[30], limit=20)
    page = [await alice.event() for _ in range(21)]
    assert [e["id"] for e in page[:20]] == ids[10:30]
    assert all(e["history"] for e in page[:20])
    assert page[20]["type"] == "history-end"
    assert (page[20]["count"], page[20]["more"]) == (20, True)
    await server.shutdown()


async def test_rooms_resume_past_the_cache_reads_the_store(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """A resume from an id older than the cache replays from SQLite, then goes live."""
    store = SQLiteStore.open(tmp_path / "chat.db")
    server = ChatServer(ServerConfig(rate_limit=0, send_queue=100_000), store)
    await nursery.start(server.run)
    alice = await join_json(nursery, server, "alice")
    for n in range(250):
        await alice.send_json(type="say", text=f"m{n}")
    ids = [(await _until(alice, "say"))["id"] for _ in range(250)]
    back = await join_json(nursery, server, "back")  # a plain welcome: no since
    await back.send_json(type="quit")
    await back.closed()
    again = await join_json_since(nursery, server, "again", {"#lobby": ids[9]})
    replay = [await _until(again, "say") for _ in range(240)]
    assert [e["id"] for e in replay] == ids[10:]
    await alice.send_json(type="say", text="live")
    live = await _until(again, "say")
    assert (live["id"], "history" in live) == (ids[-1] + 1, False)
    await server.shutdown()


async def join_json_since(
    nursery: trio.Nursery, server: ChatServer, name: str, since: dict[str, int]
) -> Peer:
    """Connect in JSON mode with a resume point; read the welcome."""
    from triochat.testing import connect

    peer = connect(nursery, server)
    await peer.send_json(type="hello", name=name, since=since)
    welcome = await peer.event()
    assert welcome["type"] == "welcome"
    return peer


async def test_rooms_max_rooms_per_member_in_the_server(
    nursery: trio.Nursery, start_server: StartServer
) -> None:
    """The per-member room limit is the server's --max-rooms-per-member."""
    server = await start_server(max_rooms_per_member=2)
    alice = await join(nursery, server, "alice")
    await alice.send("/join #a")
    await alice.expect("*** you joined #a (1 online)")
    await alice.send("/join #b")
    await alice.expect("! you are in 2 rooms already; /part one")


class FlakyStore:
    """A memory store whose commits fail while ``failing`` is set (a full disk)."""

    def __init__(self) -> None:
        self.inner = MemoryStore()
        self.failing = False
        self.failures = 0

    def load_rooms(self) -> list[RoomRecord]:
        return self.inner.load_rooms()

    def commit(self, batch: Batch) -> None:
        if self.failing:
            self.failures += 1
            raise StoreError("cannot write the database: disk full")
        self.inner.commit(batch)

    def recent(self, room: str, limit: int) -> list[StoredMessage]:
        return self.inner.recent(room, limit)

    def since(
        self, room: str, after_id: int, limit: int, upto: int | None = None
    ) -> tuple[list[StoredMessage], int]:
        return self.inner.since(room, after_id, limit, upto)

    def before(self, room: str, before_id: int, limit: int) -> list[StoredMessage]:
        return self.inner.before(room, before_id, limit)

    def search(self, query: SearchQuery) -> list[SearchHit]:
        return self.inner.search(query)

    def prune(
        self,
        now: float,
        retain_days: float | None,
        retain_messages: int | None,
        *,
        max_rows: int | None = None,
    ) -> int:
        return self.inner.prune(now, retain_days, retain_messages, max_rows=max_rows)

    def close(self) -> None:
        self.inner.close()

    def account_keys(self) -> list[str]:
        return self.inner.account_keys()

    def account(self, key: str) -> AccountRecord | None:
        return self.inner.account(key)

    def load_ops(self) -> list[OpRecord]:
        return self.inner.load_ops()

    def load_bans(self) -> list[BanRecord]:
        return self.inner.load_bans()

    def load_mutes(self) -> list[MuteRecord]:
        return self.inner.load_mutes()

    def private_last_id(self) -> int:
        return self.inner.private_last_id()

    def private_since(
        self, key: str, after_id: int, limit: int, upto: int | None = None
    ) -> tuple[list[StoredPrivate], int]:
        return self.inner.private_since(key, after_id, limit, upto)

    def private_between(
        self, one: str, other: str, before_id: int | None, limit: int
    ) -> list[StoredPrivate]:
        return self.inner.private_between(one, other, before_id, limit)

    def private_range(
        self, one: str, other: str, after_id: int, before_id: int, limit: int, *, oldest: bool
    ) -> list[StoredPrivate]:
        return self.inner.private_range(one, other, after_id, before_id, limit, oldest=oldest)

    def private_peers(self, key: str) -> list[StoredPrivate]:
        return self.inner.private_peers(key)

    def load_prefs(self) -> list[Pref]:
        return self.inner.load_prefs()


async def test_rooms_store_failure_is_told_chat_goes_on_and_nothing_is_lost(
    nursery: trio.Nursery,
) -> None:
    """A disk that fills at runtime: members are told, chat continues, the retry saves all.

    (Real time, not virtual: the store writer works in a thread, and a virtual clock
    would jump past the test's timeouts while the thread runs.)
    """
    store = FlakyStore()
    server = ChatServer(ServerConfig(), store)
    await nursery.start(server.run)
    alice = await join_json(nursery, server, "alice")
    bob = await join(nursery, server, "bob")
    await _until(alice, "join")
    store.failing = True
    await alice.send_json(type="say", text="while the disk is full")
    said = await alice.event()
    assert (said["type"], said["text"]) == ("say", "while the disk is full")
    notice = await alice.event()
    assert (notice["type"], notice["code"]) == ("notice", "history-unsaved")
    assert await bob.line() == "<alice> while the disk is full"
    assert await bob.line() == "*** " + STORE_DOWN
    await alice.send_json(type="say", text="still chatting")
    assert (await _until(alice, "say"))["text"] == "still chatting"
    store.failing = False  # the writer retries by itself after its back-off (0.5 s, 1 s, ...)
    assert (await _until(alice, "notice"))["code"] == "history-saved"
    # With the store up the hub waits for each commit, in order: once this line comes
    # back, everything said before it is in the store.
    await alice.send_json(type="say", text="after")
    assert (await _until(alice, "say"))["text"] == "after"
    texts = [m.text for m in store.inner.recent("#lobby", 10)]
    assert texts == ["while the disk is full", "still chatting", "after"]
    assert store.failures >= 1
    await server.shutdown()


async def test_rooms_scrollback_while_the_store_is_down_is_an_error_not_a_stall(
    nursery: trio.Nursery,
) -> None:
    """A read queued behind failing commits would stall every room: the asker is told."""
    store = FlakyStore()
    old = [StoredMessage("#lobby", i, 1.0, "say", "old", f"o{i}") for i in range(1, 301)]
    store.inner.commit(Batch(messages=old, rooms=[RoomRecord("#lobby", 300)]))
    server = ChatServer(ServerConfig(), store)
    await nursery.start(server.run)
    alice = await join_json(nursery, server, "alice")
    store.failing = True
    await alice.send_json(type="say", text="disk is full now")
    assert (await _until(alice, "notice"))["code"] == "history-unsaved"
    await alice.send_json(type="history", before=50, limit=10)
    error = await _until(alice, "error")
    assert error["code"] == "history-unavailable"
    end = await alice.event()
    assert (end["type"], end["count"]) == ("history-end", 0)
    await alice.send_json(type="say", text="chat goes on")
    assert (await _until(alice, "say"))["text"] == "chat goes on"
    store.failing = False
    await server.shutdown()


async def test_rooms_memory_store_keeps_only_the_recent_past(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """--db :memory: used to keep every message forever; retention now applies to it too."""
    store = MemoryStore()
    server = ChatServer(ServerConfig(retain_messages=3), store)
    await nursery.start(server.run)
    alice = await join_json(nursery, server, "alice")
    for n in range(10):
        await alice.send_json(type="say", text=f"m{n}")
    for _ in range(10):
        await _until(alice, "say")
    await trio.sleep(PRUNE_EVERY_S + 2 * ServerConfig().presence_interval)
    assert [m.text for m in store.recent("#lobby", 100)] == ["m7", "m8", "m9"]
    await server.shutdown()
