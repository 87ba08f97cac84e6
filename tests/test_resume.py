"""Resuming after a long absence: the replay is paced, never dumped into the send queue.

A client that missed more lines than its send queue holds gets every one of them (up
to ``--resume-limit`` per room) and stays connected; a replay never makes the hub wait
for the disk, so others chat on while a resume (or a hostile resume loop) reads.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import trio

from tests.conftest import StartServer
from tests.helpers import Peer
from triochat.config import ServerConfig
from triochat.core.model import CACHE_MESSAGES
from triochat.core.records import StoredMessage
from triochat.server import ChatServer
from triochat.server.replays import READ_BURST, READ_RATE
from triochat.server.transport import StreamTransport
from triochat.store import SQLiteStore
from triochat.testing import connect, join_json

LINES = 900


async def _until(peer: Peer, kind: str) -> dict[str, object]:
    while True:
        event = await peer.event()
        if event["type"] == kind:
            return event


async def _fill(peer: Peer, rooms: tuple[str, ...], lines: int) -> dict[str, int]:
    """Say ``lines`` lines in each of ``rooms``; the last id of each."""
    last: dict[str, int] = {}
    for room in rooms:
        await peer.send_json(type="join", room=room)
        for n in range(lines):  # one at a time: the sender's own queue is small too
            await peer.send_json(type="say", room=room, text=f"{room} line {n}")
            event = await _until(peer, "say")
            last[str(event["room"])] = int(str(event["id"]))
    return last


async def test_resume_of_more_than_the_send_queue_arrives_whole(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """2 rooms x 900 missed lines with a 100-event send queue: all arrive, then live ones.

    Before paced replays the whole replay went into the send queue at once: the client
    was dropped as "too slow" after no event at all, reconnected, and looped forever.
    """
    store = SQLiteStore.open(tmp_path / "chat.db")
    server = ChatServer(ServerConfig(rate_limit=0, send_queue=100), store)
    await nursery.start(server.run)
    alice = await join_json(nursery, server, "alice")
    last = await _fill(alice, ("#lobby", "#dev"), LINES)
    back = connect(nursery, server)
    await back.send_json(type="hello", name="back", since={"#lobby": 0, "#dev": 0})
    said: dict[str, list[int]] = {"#lobby": [], "#dev": []}
    while len(said["#lobby"]) + len(said["#dev"]) < 2 * LINES:
        event = await back.event()
        assert event["type"] != "error", event
        if event["type"] == "say":
            assert event["history"] is True
            said[str(event["room"])].append(int(str(event["id"])))
    assert said == {room: list(range(1, LINES + 1)) for room in ("#lobby", "#dev")}
    assert last == {"#lobby": LINES, "#dev": LINES}
    await alice.send_json(type="say", room="#dev", text="live")
    live = await _until(back, "say")
    assert (live["id"], "history" in live) == (LINES + 1, False)
    await server.shutdown()


class SlowReads(SQLiteStore):
    """A store whose resume reads take :data:`READ_S` each (a slow disk, or big reads)."""

    def since(
        self, room: str, after_id: int, limit: int, upto: int | None = None
    ) -> tuple[list[StoredMessage], int]:
        time.sleep(READ_S)
        return super().since(room, after_id, limit, upto)


READ_S = 0.3


async def test_resumes_reading_the_disk_never_stall_the_room(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """Three connections resume 3 rooms each (9 slow reads, 2.7 s of disk): chat goes on.

    Before, the hub itself awaited every replay read, one after another, so a line
    between two others waited for all of them. Now reads run beside the hub, one at a
    time, so a commit waits for at most one read.
    """
    store = SlowReads.open(tmp_path / "chat.db")
    server = ChatServer(ServerConfig(rate_limit=0), store)
    await nursery.start(server.run)
    alice = await join_json(nursery, server, "alice")
    bob = await join_json(nursery, server, "bob")
    rooms = ("#lobby", "#a", "#b")
    await _fill(alice, rooms, CACHE_MESSAGES + 1)  # past the cache: the store is read
    for _ in range(CACHE_MESSAGES + 1):
        await _until(bob, "say")
    hostile = []
    for n in range(3):
        peer = connect(nursery, server)
        await peer.send_json(type="hello", name=f"loop{n}", since=dict.fromkeys(rooms, 0))
        hostile.append(peer)
    await trio.sleep(0.05)  # the hellos are in
    start = trio.current_time()
    await alice.send_json(type="say", room="#lobby", text="still here?")
    event = await _until(bob, "say")
    took = trio.current_time() - start
    assert event["text"] == "still here?"
    assert took < 3 * READ_S, f"a line took {took:.2f} s behind the replays"
    for peer in hostile:  # and every resume got its lines
        replayed = [await _until(peer, "say") for _ in range(len(rooms) * (CACHE_MESSAGES + 1))]
        assert {str(e["room"]) for e in replayed} == set(rooms)
    await server.shutdown()


def _connect_from(nursery: trio.Nursery, server: ChatServer, host: str) -> Peer:
    """An in-memory connection the server sees as coming from ``host``."""
    client, server_side = trio.testing.memory_stream_pair()
    serve = partial(server.serve_transport, StreamTransport(server_side), f"{host}:4000", host)
    nursery.start_soon(serve)
    return Peer(client)


async def test_a_resume_loop_reads_at_one_clients_rate(
    nursery: trio.Nursery, start_server: StartServer, autojump_clock: trio.testing.MockClock
) -> None:
    """One address reconnecting and resuming over and over is paced to READ_RATE reads a
    second after a burst; a client elsewhere resumes at once meanwhile."""
    server = await start_server(rate_limit=0, trusted=())
    alice = await join_json(nursery, server, "alice")
    await alice.send_json(type="say", text="missed")
    await _until(alice, "say")
    loops = READ_BURST + 40
    start = trio.current_time()
    for n in range(loops):
        peer = _connect_from(nursery, server, "198.51.100.9")
        await peer.send_json(type="hello", name=f"loop{n}", since={"#lobby": 0})
        await _until(peer, "say")  # its replay came
        await peer.stream.aclose()
    took = trio.current_time() - start
    assert took >= (loops - READ_BURST) / READ_RATE * 0.9, took
    honest = _connect_from(nursery, server, "203.0.113.5")
    start = trio.current_time()
    await honest.send_json(type="hello", name="honest", since={"#lobby": 0})
    assert (await _until(honest, "say"))["text"] == "missed"
    assert trio.current_time() - start < 0.1
