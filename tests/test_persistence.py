"""Durable history end to end: the real command, a real SQLite file, real sockets.

Each test pins a promise of the rooms-and-history work: history and ids survive a
restart; ``kill -9`` loses nothing any client received; resuming with ``since`` gives
no duplicate and no gap; rooms are isolated; a bad database is one line at start-up.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.procs import STARTUP_TIMEOUT, start_server, triochat_command
from triochat.testing import Peer

BURST_LINES = 300  # chat lines sent while the server is killed: enough to span many batches


async def _says(peer: Peer, count: int) -> list[dict[str, Any]]:
    """The next ``count`` chat events (say/me) a JSON peer receives, skipping others."""
    says: list[dict[str, Any]] = []
    while len(says) < count:
        event = await peer.event()
        if event["type"] in ("say", "me"):
            says.append(event)
    return says


def _stored(db: Path, room: str = "#lobby") -> list[tuple[int, str]]:
    # closing(): a connection left open would hold the file and keep the next server out.
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT id, text FROM messages WHERE room = ? ORDER BY id", (room,))
        return [(int(i), str(t)) for i, t in rows]


async def test_persistence_restart_keeps_history_and_ids_grow(tmp_path: Path) -> None:
    """Restarting with the same --db keeps what was said; ids go on, never start again."""
    db = tmp_path / "chat.db"
    server = await start_server(["--db", str(db)], str(tmp_path), name="first")
    try:
        alice, _ = await server.join_json("alice")
        for text in ("one", "two", "three"):
            await alice.send_json(type="say", text=text)
        said = await _says(alice, 3)
        await alice.send_json(type="join", room="#dev")
        await alice.send_json(type="topic", room="#dev", text="release friday")
        await alice.send_json(type="say", room="#dev", text="in dev")
        dev = await _says(alice, 1)
        await alice.stream.aclose()
    finally:
        await server.stop()
    assert server.stdout[1] == f"history: {db}"

    server = await start_server(["--db", str(db)], str(tmp_path), name="second")
    try:
        bob, _ = await server.join_json("bob")
        replay = await _says(bob, 3)
        assert [(e["id"], e["text"], e["history"]) for e in replay] == [
            (e["id"], e["text"], True) for e in said
        ]
        await bob.send_json(type="say", text="after restart")
        (new,) = await _says(bob, 1)
        assert new["id"] > said[-1]["id"]
        await bob.send_json(type="join", room="dev")
        events = [await bob.event() for _ in range(4)]  # join, current, topic, replay
        assert [e["type"] for e in events] == ["join", "current", "topic", "say"]
        assert events[2]["topic"] == "release friday"
        assert events[3]["id"] == dev[0]["id"]
        await bob.stream.aclose()
    finally:
        await server.stop()


async def test_persistence_kill_9_during_a_burst_loses_nothing_seen(tmp_path: Path) -> None:
    """After SIGKILL mid-burst, every line a client saw is stored; the next id is higher."""
    db = tmp_path / "chat.db"
    server = await start_server(["--db", str(db), "--rate-limit", "0"], str(tmp_path))
    seen: list[tuple[int, str]] = []
    try:
        sender, _ = await server.join_json("sender")
        watcher, _ = await server.join_json("watcher")
        for n in range(BURST_LINES):
            await sender.send_json(type="say", text=f"line {n}")
        # Kill the server while lines are still arriving, then read what got out.
        for event in await _says(watcher, BURST_LINES // 3):
            seen.append((event["id"], event["text"]))
        server.kill()
        await server.wait()
        with trio.move_on_after(2):
            while True:
                event = await watcher.event(timeout=2)
                if event["type"] == "say":
                    seen.append((event["id"], event["text"]))
    except AssertionError:
        pass  # the connection closed under the reader: what was read is what was seen
    finally:
        await server.stop()
    assert len(seen) >= BURST_LINES // 3
    stored = dict(_stored(db))
    missing = [(i, t) for i, t in seen if stored.get(i) != t]
    assert not missing, f"{len(missing)} lines a client saw are not in the database"

    server = await start_server(["--db", str(db)], str(tmp_path), name="restarted")
    try:
        after, _ = await server.join_json("after")
        await after.send_json(type="say", text="next")
        while (event := await after.event())["type"] != "say" or event.get("history"):
            pass
        assert event["id"] > max(i for i, _ in seen)
        await after.stream.aclose()
    finally:
        await server.stop()


async def test_persistence_resume_with_since_has_no_gap_and_no_duplicate(tmp_path: Path) -> None:
    """A client that saw up to id N and comes back with since gets N+1.. exactly once."""
    server = await start_server(["--db", str(tmp_path / "chat.db")], str(tmp_path))
    try:
        talker, _ = await server.join_json("talker")
        for n in range(10):
            await talker.send_json(type="say", text=f"m{n}")
        own = await _says(talker, 10)
        last_seen = own[3]["id"]
        back, _ = await server.join_json("back", since={"#lobby": last_seen})
        replay = await _says(back, 6)
        assert [e["id"] for e in replay] == [e["id"] for e in own[4:]]
        assert all(e["history"] for e in replay)
        await talker.send_json(type="say", text="live")
        (live,) = await _says(back, 1)
        assert live["text"] == "live"
        assert "history" not in live
        assert live["id"] == own[-1]["id"] + 1
        for peer in (talker, back):
            await peer.stream.aclose()
    finally:
        await server.stop()


async def test_persistence_rooms_are_isolated_over_real_sockets(tmp_path: Path) -> None:
    """A line said in #dev reaches #dev's members only; plain lines from elsewhere are tagged."""
    server = await start_server(["--db", ":memory:"], str(tmp_path))
    try:
        alice = await server.join("alice")
        bob = await server.join("bob")
        carol = await server.join("carol")
        await alice.expect("*** bob joined (2 online)", "*** carol joined (3 online)")
        await bob.expect("*** carol joined (3 online)")
        await alice.send("/join #dev")
        await alice.expect("*** you joined #dev (1 online)")
        await bob.send("/join dev")
        await bob.expect("*** you joined #dev (2 online)")
        await alice.expect("*** bob joined (2 online)")
        await bob.send("secret plans")
        await alice.expect("<bob> secret plans")
        await alice.send("/join #lobby")  # back to the lobby as current room
        await alice.expect("*** #lobby is now your current room")
        await bob.send("more plans")
        await alice.expect("#dev <bob> more plans")
        # Bob's lines were handled before this /who (alice has them): had carol been
        # sent them, they would come before the reply.
        await carol.send("/who")
        await carol.expect("*** online (3): alice, bob, carol")
        for peer in (alice, bob, carol):
            await peer.stream.aclose()
    finally:
        await server.stop()


@pytest.mark.parametrize("problem", ["folder is a file", "not a database", "newer schema"])
def test_persistence_bad_database_is_one_line_and_exit_1(tmp_path: Path, problem: str) -> None:
    """A database the server cannot use stops it at start-up with one clear line."""
    if problem == "folder is a file":
        (tmp_path / "afile").write_text("x")
        db = tmp_path / "afile" / "chat.db"
    elif problem == "not a database":
        db = tmp_path / "chat.db"
        db.write_bytes(b"this is not an SQLite database\n" * 100)
    else:
        db = tmp_path / "chat.db"
        with contextlib.closing(sqlite3.connect(db)) as conn:
            conn.execute("PRAGMA user_version = 999")
    result = subprocess.run(
        triochat_command("server", "--port", "0", "--db", str(db)),
        capture_output=True,
        text=True,
        timeout=STARTUP_TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("triochat: error: ")
    assert str(db.name) in lines[0] or "database" in lines[0]
    assert "listening" not in result.stdout


async def test_persistence_default_db_is_in_the_user_data_folder(tmp_path: Path) -> None:
    """Without --db the database lives in the platform's user data folder, and is said."""
    server = await start_server([], str(tmp_path))
    try:
        expected = tmp_path / "data-home" / "triochat" / "triochat.db"
        assert server.stdout[1] == f"history: {expected}"
        assert expected.exists()
    finally:
        await server.stop()


async def _until(peer: Peer, kind: str) -> dict[str, Any]:
    """The next event of type ``kind`` a JSON peer receives, skipping others."""
    while (event := await peer.event())["type"] != kind:
        pass
    return event


async def test_persistence_notify_levels_and_mentions_survive_a_restart(tmp_path: Path) -> None:
    """/notify levels and the time an account left are kept: after a restart alice is
    told her level on logging in, and /mentions lists what named her while she was away."""
    db = tmp_path / "chat.db"
    server = await start_server(["--db", str(db)], str(tmp_path), name="first")
    try:
        alice, _ = await server.join_json("alice")
        await alice.send_json(type="register", password="correct-horse")
        await _until(alice, "account")
        await alice.send_json(type="notify", level="all")
        assert (await _until(alice, "notify"))["level"] == "all"
        bob, _ = await server.join_json("bob")
        await alice.stream.aclose()
        await _until(bob, "leave")  # alice has left: what follows is missed
        await bob.send_json(type="say", text="@alice are you there?")
        await _says(bob, 1)
        await bob.stream.aclose()
    finally:
        await server.stop()

    server = await start_server(["--db", str(db)], str(tmp_path), name="second")
    try:
        alice, _ = await server.join_json("alice", password="correct-horse")
        told = await _until(alice, "notify")
        assert (told["room"], told["level"]) == ("#lobby", "all")
        await alice.send_json(type="mentions")
        (found,) = (await _until(alice, "mentions"))["mentions"]
        assert (found["from"], found["text"]) == ("bob", "@alice are you there?")
        await alice.stream.aclose()
    finally:
        await server.stop()
