"""Rooms and history through the whole server (hub, store, connections) over memory streams."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from tests.conftest import StartServer
from triochat.config import ServerConfig
from triochat.server import ChatServer
from triochat.store import SQLiteStore
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
