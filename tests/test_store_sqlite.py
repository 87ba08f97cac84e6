"""SQLiteStore on real files: restarts, migrations, and every kind of bad database."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

import triochat.store.sqlite as sqlite_module
from triochat.config import ServerConfig
from triochat.core.records import SaveAccount
from triochat.store import (
    DURABILITIES,
    AccountRecord,
    Batch,
    MemoryStore,
    RoomRecord,
    SQLiteStore,
    StoredMessage,
    StoreError,
    default_db_path,
    open_store,
)
from triochat.store.schema import SCHEMA_VERSION
from triochat.store.sqlite import DEFAULT_DURABILITY

# Schema v1 exactly as the first release wrote it. Written out here, not imported, so a
# later edit of the migrations cannot quietly change what "a v1 database" means.
V1_SCHEMA = """
CREATE TABLE rooms (
    name TEXT PRIMARY KEY,
    topic TEXT NOT NULL DEFAULT '',
    topic_by TEXT NOT NULL DEFAULT '',
    topic_ts REAL NOT NULL DEFAULT 0
);
CREATE TABLE messages (
    room TEXT NOT NULL,
    id INTEGER NOT NULL,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    sender TEXT NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (room, id)
) WITHOUT ROWID;
PRAGMA user_version = 1;
"""


# Schema v2 as the rooms-and-history release wrote it (v1 plus its migration).
V2_SCHEMA = (
    V1_SCHEMA.replace("PRAGMA user_version = 1;", "")
    + """
ALTER TABLE rooms ADD COLUMN last_id INTEGER NOT NULL DEFAULT 0;
CREATE INDEX messages_by_ts ON messages (ts);
PRAGMA user_version = 2;
"""
)


def msg(room: str, id: int, text: str = "hi") -> StoredMessage:
    return StoredMessage(room, id, 100.0 + id, "say", "bob", text)


def raw(path: Path) -> closing[sqlite3.Connection]:
    """A plain sqlite3 connection (autocommit), closed at the end of a ``with``."""
    return closing(sqlite3.connect(path, isolation_level=None))


def assert_one_line(error: pytest.ExceptionInfo[StoreError], *words: str) -> None:
    """The message is one line for a person, naming the problem."""
    text = str(error.value)
    assert "\n" not in text
    assert "Traceback" not in text
    for word in words:
        assert word in text, text


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "chat.db"


@pytest.fixture
def opened(db: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore.open(db)
    yield store
    store.close()


def test_sqlite_store_survives_a_restart(db: Path) -> None:
    """Rooms, topics, last ids and messages are all there after close and reopen."""
    store = SQLiteStore.open(db)
    store.commit(Batch([msg("#a", 1), msg("#a", 2)], [RoomRecord("#a", 0, "tea", "ann", 5.0)]))
    store.commit(Batch(rooms=[RoomRecord("#empty")]))
    store.close()
    store = SQLiteStore.open(db)
    try:
        assert store.load_rooms() == [RoomRecord("#a", 2, "tea", "ann", 5.0), RoomRecord("#empty")]
        assert store.recent("#a", 10) == [msg("#a", 1), msg("#a", 2)]
    finally:
        store.close()


def test_sqlite_store_last_id_survives_pruning_and_restart(db: Path) -> None:
    """Retention empties a room, the server restarts: the room's ids still go on from 3."""
    store = SQLiteStore.open(db)
    store.commit(Batch([msg("#a", 1), msg("#a", 2), msg("#a", 3)]))
    assert store.prune(1e12, 1, None) == 3
    store.close()
    store = SQLiteStore.open(db)
    try:
        assert store.recent("#a", 10) == []
        assert store.load_rooms() == [RoomRecord("#a", 3)]
    finally:
        store.close()


def test_sqlite_store_creates_missing_folders_and_uses_wal(tmp_path: Path) -> None:
    """A fresh path deep in new folders works; the file is in WAL mode at the current schema."""
    path = tmp_path / "a" / "b" / "chat.db"
    SQLiteStore.open(path).close()
    with raw(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


def test_sqlite_store_migrates_a_v1_database(db: Path) -> None:
    """A database the previous schema wrote opens: last ids come from the messages, even
    for a room that only had messages, and topics are kept."""
    with raw(db) as conn:
        conn.executescript(V1_SCHEMA)
        conn.execute("INSERT INTO rooms VALUES ('#a', 'old topic', 'ann', 3.5)")
        conn.execute("INSERT INTO rooms (name) VALUES ('#quiet')")
        conn.executemany(
            "INSERT INTO messages VALUES (?, ?, ?, 'say', 'bob', ?)",
            [("#a", 1, 1.0, "one"), ("#a", 2, 2.0, "two"), ("#orphan", 9, 3.0, "nine")],
        )
    store = SQLiteStore.open(db)
    try:
        assert store.load_rooms() == [
            RoomRecord("#a", 2, "old topic", "ann", 3.5),
            RoomRecord("#orphan", 9),
            RoomRecord("#quiet", 0),
        ]
        assert [m.text for m in store.recent("#a", 10)] == ["one", "two"]
        store.commit(Batch([msg("#a", 3)]))
        assert store.prune(1e12, 1, None) == 4  # the new index on ts is usable
        assert store.load_rooms()[0].last_id == 3
    finally:
        store.close()
    with raw(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


def test_sqlite_store_migrates_a_v2_database_to_accounts(db: Path) -> None:
    """A v2 database opens with its rooms and history, and gains the account and
    moderation tables (empty) and unlocked topics."""
    with raw(db) as conn:
        conn.executescript(V2_SCHEMA)
        conn.execute("INSERT INTO rooms VALUES ('#a', 'old topic', 'ann', 3.5, 2)")
        conn.executemany(
            "INSERT INTO messages VALUES ('#a', ?, ?, 'say', 'bob', ?)",
            [(1, 1.0, "one"), (2, 2.0, "two")],
        )
    store = SQLiteStore.open(db)
    try:
        assert store.load_rooms() == [RoomRecord("#a", 2, "old topic", "ann", 3.5, False)]
        assert [m.text for m in store.recent("#a", 10)] == ["one", "two"]
        assert (store.account_keys(), store.load_ops()) == ([], [])
        assert (store.load_bans(), store.load_mutes()) == ([], [])
        record = AccountRecord("allce", "alice", "scrypt$x", 5.0)
        store.commit(Batch(changes=[SaveAccount(record)]))
        assert store.account("allce") == record
    finally:
        store.close()
    with raw(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert SCHEMA_VERSION >= 3  # accounts came in v3; later migrations add more


def test_sqlite_store_refuses_a_newer_schema_and_leaves_it_alone(db: Path) -> None:
    """A database from a newer triochat is refused with advice, and is not modified."""
    with raw(db) as conn:
        conn.execute("CREATE TABLE future (x)")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError) as error:
        SQLiteStore.open(db)
    assert_one_line(error, str(db), "newer triochat", f"v{SCHEMA_VERSION + 1}", "upgrade")
    with raw(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION + 1,)
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("future",)]


def test_sqlite_store_refuses_a_file_that_is_not_a_database(db: Path) -> None:
    """Pointing --db at some other file gives one line, and does not overwrite the file."""
    db.write_text("these are my notes, not a database\n" * 200)
    with pytest.raises(StoreError) as error:
        SQLiteStore.open(db)
    assert_one_line(error, str(db), "not an SQLite database", "--db")
    assert db.read_text().startswith("these are my notes")


def test_sqlite_store_refuses_a_damaged_database(db: Path) -> None:
    """A database with garbage over some of its pages is caught at start-up, not later."""
    store = SQLiteStore.open(db)
    store.commit(Batch([msg("#a", i, "x" * 200) for i in range(1, 2001)]))
    store.close()
    page = 4096
    assert db.stat().st_size > 20 * page
    with db.open("r+b") as file:
        file.seek(5 * page)
        file.write(b"\xa5" * (4 * page))
    with pytest.raises(StoreError) as error:
        SQLiteStore.open(db)
    assert_one_line(error, str(db), "damaged", "backup")


def test_sqlite_store_refuses_a_folder_under_a_file(tmp_path: Path) -> None:
    """A path whose parent is a file cannot be created, whoever runs the server (even root)."""
    (tmp_path / "afile").write_text("x")
    path = tmp_path / "afile" / "chat.db"
    with pytest.raises(StoreError) as error:
        SQLiteStore.open(path)
    assert_one_line(error, "cannot create the folder", str(path.parent), "in the way", "--db")


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into read-only folders"
)
def test_sqlite_store_refuses_a_read_only_folder(tmp_path: Path) -> None:
    """A folder the server may not write to is reported as such, with what to do."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(StoreError) as error:
            SQLiteStore.open(folder / "chat.db")
        assert_one_line(error, str(folder / "chat.db"), "permissions")
    finally:
        folder.chmod(0o700)


@pytest.mark.parametrize("read_only", ["file", "folder"])
def test_sqlite_store_refuses_read_only_places_plainly(
    db: Path, read_only: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only file or folder is named as such (SQLite alone says 'disk I/O error').

    os.access stands in for a non-root user here, for whom the permission bits count."""
    SQLiteStore.open(db).close()
    denied = db if read_only == "file" else db.parent
    real_access = os.access

    def access(path: str | os.PathLike[str], mode: int) -> bool:
        return Path(path) != denied and real_access(path, mode)

    monkeypatch.setattr(os, "access", access)
    with pytest.raises(StoreError) as error:
        SQLiteStore.open(db)
    assert_one_line(error, str(db), f"{read_only} is read-only", "permissions")


def test_sqlite_store_refuses_a_folder_as_the_file(tmp_path: Path) -> None:
    """--db naming an existing folder is a clear mistake, said so."""
    with pytest.raises(StoreError) as error:
        SQLiteStore.open(tmp_path)
    assert_one_line(error, "is a folder")


def test_sqlite_store_refuses_a_second_server_on_the_same_file(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two servers on one file would assign the same ids and lose messages: the second is
    refused while the first holds the file, even when the first had nothing to migrate."""
    monkeypatch.setattr(sqlite_module, "BUSY_TIMEOUT_S", 0.05)
    SQLiteStore.open(db).close()
    first = SQLiteStore.open(db)
    try:
        with pytest.raises(StoreError) as error:
            SQLiteStore.open(db)
        assert_one_line(error, str(db), "in use", "another")
    finally:
        first.close()
    SQLiteStore.open(db).close()  # and the lock goes with the first server


def test_sqlite_store_disk_full_fails_the_batch_whole_and_the_retry_lands(
    opened: SQLiteStore,
) -> None:
    """A full database fails the commit with a StoreError, writes none of the batch, and the
    same batch commits once there is room again."""
    opened.commit(Batch([msg("#a", i) for i in range(1, 11)]))
    conn = opened._conn  # the test's only way to make the file "full": cap its pages
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count = {pages}")
    big = Batch([msg("#a", i, "y" * 2000) for i in range(11, 200)], [RoomRecord("#a", 0, "topic")])
    with pytest.raises(StoreError) as error:
        opened.commit(big)
    assert_one_line(error, "cannot save", "full", "free some disk space")
    assert [m.id for m in opened.recent("#a", 1000)] == list(range(1, 11))
    assert opened.load_rooms() == [RoomRecord("#a", 10)]
    conn.execute("PRAGMA max_page_count = 1073741823")
    opened.commit(big)
    assert len(opened.recent("#a", 1000)) == 199
    assert opened.load_rooms() == [RoomRecord("#a", 199, "topic")]


# A writer that commits batches of 10 as fast as it can and prints each committed last id.
KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from triochat.store import Batch, StoredMessage, open_store
    store = open_store(sys.argv[1], sys.argv[2])
    last = 0
    while True:
        batch = [StoredMessage("#a", last + k, time.time(), "say", "x", "y" * 100)
                 for k in range(1, 11)]
        store.commit(Batch(batch))
        last += 10
        print(last, flush=True)
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs kill -9")
@pytest.mark.parametrize("durability", DURABILITIES)
def test_sqlite_store_keeps_every_commit_after_kill_9(db: Path, durability: str) -> None:
    """A process killed mid-stream loses nothing whose commit had returned: every id it
    reported (as the hub would broadcast it) is in the file after a restart, with either
    durability (process: synchronous=NORMAL is enough against kill -9)."""
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(db), durability],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    reported = 0
    try:
        for line in child.stdout:
            reported = int(line)
            if reported >= 3000:
                break
    finally:
        child.send_signal(signal.SIGKILL)
        rest = child.communicate(timeout=30)[0]
    reported = max([reported, *(int(n) for n in rest.split())])
    assert reported >= 3000
    store = SQLiteStore.open(db)
    try:
        (room,) = store.load_rooms()
        assert room.last_id >= reported  # it may have committed more before it died
        stored = [m.id for m in store.recent("#a", room.last_id)]
        assert stored == list(range(1, room.last_id + 1))
    finally:
        store.close()


def test_sqlite_store_in_memory_path_needs_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLiteStore.open(':memory:') is SQLite's in-memory database; no file appears."""
    monkeypatch.chdir(tmp_path)
    store = SQLiteStore.open(":memory:")
    store.commit(Batch([msg("#a", 1)]))
    assert store.load_rooms() == [RoomRecord("#a", 1)]
    store.close()
    assert list(tmp_path.iterdir()) == []


def test_open_store_picks_memory_or_sqlite(db: Path) -> None:
    """--db :memory: is a MemoryStore; anything else is an SQLite file at that path."""
    memory = open_store(":memory:")
    assert isinstance(memory, MemoryStore)
    memory.close()
    store = open_store(str(db))
    assert isinstance(store, SQLiteStore)
    assert store.path == db
    store.close()


@pytest.mark.parametrize(("durability", "synchronous"), [("process", 1), ("power", 2)])
def test_open_store_durability_sets_sqlites_synchronous(
    db: Path, durability: str, synchronous: int
) -> None:
    """--durability process is synchronous=NORMAL (1), power is FULL (2), in WAL mode."""
    store = open_store(str(db), durability)
    assert isinstance(store, SQLiteStore)
    try:
        assert store._conn.execute("PRAGMA synchronous").fetchone() == (synchronous,)
        assert store._conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        store.close()


def test_open_store_default_durability_is_process(db: Path) -> None:
    """Without a choice the store is opened as --durability's default says (NORMAL)."""
    assert ServerConfig().durability == DEFAULT_DURABILITY == "process"
    store = open_store(str(db))
    assert isinstance(store, SQLiteStore)
    try:
        assert store._conn.execute("PRAGMA synchronous").fetchone() == (1,)
    finally:
        store.close()


def test_open_store_refuses_an_unknown_durability(db: Path) -> None:
    with pytest.raises(ValueError, match="durability"):
        open_store(str(db), "disk")
    assert not db.exists()


def test_default_db_path_is_in_the_user_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default database is triochat/triochat.db under the platform's data folder."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    path = default_db_path()
    assert path.name == "triochat.db"
    assert path.parent.name == "triochat"
    assert not path.parent.exists()  # created by SQLiteStore.open, not by asking
