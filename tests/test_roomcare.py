"""Dropped rooms end to end: the real command, a real SQLite file, real sockets, a restart.

The state-level rules (quotas, expiry, who may drop what) are in
``tests/test_roomcare_state.py``; this pins that a dropped room stays dropped.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

from tests.procs import start_server
from triochat.testing import Peer


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
