"""Dropped rooms end to end: the real command, a real SQLite file, real sockets, a restart,
and a cluster of two nodes on a real ``redis-server``.

The state-level rules (quotas, expiry, who may drop what) are in
``tests/test_roomcare_state.py``; this pins that a dropped room stays dropped, here and
on every node.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import trio

from tests.conftest import StartProcess
from tests.procs import start_server
from tests.redisproc import RedisServer
from triochat.testing import ChatClient, Peer

NODE_ARGS = ("--db", ":memory:", "--web-port", "off", "--rate-limit", "0", "--op", "boss")
CROSS_TIMEOUT = 10.0  # seconds for something done on one node to show on the other


async def _until(peer: Peer, kind: str) -> dict[str, Any]:
    """The next event of type ``kind`` (each wait bounded by the peer's line timeout)."""
    while (event := await peer.event())["type"] != kind:
        assert event["type"] != "error", event
    return event


def _rows(db: Path, sql: str, room: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:  # closed: the next server needs it
        return list(conn.execute(sql, (room,)))


async def test_roomcare_a_dropped_room_does_not_come_back_after_a_restart(
    tmp_path: Path,
) -> None:
    """/droproom deletes the room and its history from the file; a restart does not load it."""
    db = tmp_path / "chat.db"
    args = ["--db", str(db), "--op", "bob"]
    server = await start_server(args, str(tmp_path), name="first")
    try:
        bob, _ = await server.join_json("bob")
        await bob.send_json(type="register", password="correct-horse")
        await _until(bob, "account")
        for room in ("#spam", "#dev"):
            await bob.send_json(type="join", room=room)
            await bob.send_json(type="say", room=room, text=f"in {room}")
            await _until(bob, "say")
        await bob.send_json(type="droproom", room="#spam")
        dropped = await _until(bob, "mod")
        assert (dropped["action"], dropped["target"]) == ("drop-room", "#spam")
        left = await _until(bob, "leave")
        assert (left["room"], left["reason"]) == ("#spam", "room dropped by bob")
        await bob.send_json(type="rooms")
        listing = await _until(bob, "rooms")
        assert [row["room"] for row in listing["rooms"]] == ["#dev", "#lobby"]
        await bob.stream.aclose()
    finally:
        await server.stop()
    assert _rows(db, "SELECT id FROM messages WHERE room = ?", "#spam") == []
    assert _rows(db, "SELECT name FROM rooms WHERE name = ?", "#spam") == []
    assert len(_rows(db, "SELECT id FROM messages WHERE room = ?", "#dev")) == 1

    server = await start_server(args, str(tmp_path), name="second")
    try:
        carol, _ = await server.join_json("carol")
        await carol.send_json(type="rooms")
        listing = await _until(carol, "rooms")
        assert [row["room"] for row in listing["rooms"]] == ["#dev", "#lobby"]
        await carol.stream.aclose()
    finally:
        await server.stop()


async def _rooms(client: ChatClient) -> set[str]:
    await client.send(type="rooms")
    return {info["room"] for info in (await client.expect("rooms"))["rooms"]}


async def _until_rooms(client: ChatClient, has: bool, room: str) -> None:
    """Ask for /rooms until ``room`` is listed (``has``) or not; bounded."""
    with trio.fail_after(CROSS_TIMEOUT):
        while True:
            if (room in await _rooms(client)) == has:
                return
            await trio.sleep(0.02)


async def test_roomcare_a_dropped_room_is_dropped_on_every_node(
    redis_server: RedisServer, start_process: StartProcess, tmp_path: Path
) -> None:
    """/droproom on node A: B moves its members out and forgets the room, a node started
    later never hears of it; made again, it is a room everywhere again."""
    a = await start_process("--redis", redis_server.url, *NODE_ARGS, log_path=tmp_path / "a.log")
    b = await start_process("--redis", redis_server.url, *NODE_ARGS, log_path=tmp_path / "b.log")
    boss = await a.client("boss")
    await boss.send(type="register", password="correct-horse")
    await boss.expect("account")
    await boss.join("#spam")
    carol = await b.client("carol")
    await _until_rooms(carol, True, "#spam")
    await carol.join("#spam")
    await boss.send(type="droproom", room="#spam")
    await carol.expect("mod", action="drop-room", target="#spam", by="boss", timeout=CROSS_TIMEOUT)
    await carol.expect("leave", room="#spam", name="carol", reason="room dropped by boss")
    assert "#spam" not in await _rooms(carol)
    late = await start_process(
        "--redis", redis_server.url, *NODE_ARGS, log_path=tmp_path / "late.log"
    )
    dave = await late.client("dave")  # a node started now learns the rooms from the log
    assert "#spam" not in await _rooms(dave)
    await boss.join("#spam")  # made again: a room everywhere again
    await _until_rooms(carol, True, "#spam")
