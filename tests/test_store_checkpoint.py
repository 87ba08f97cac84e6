"""WAL checkpoints out of the commit path (triochat.store.checkpointer).

The writer's connection never checkpoints inside a commit; a thread with its own
connection does, after commits; when it finds the WAL long, the writer copies the rest
once itself so that its next transaction starts the WAL over.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

import triochat.store.checkpointer as checkpointer_module
from triochat.store import Batch, SQLiteStore, StoredMessage
from triochat.store.checkpointer import Checkpointer

WAIT_S = 5.0  # real seconds for the thread to make its pass


def batch(first_id: int, lines: int = 1) -> Batch:
    return Batch(
        [
            StoredMessage("#a", i, 100.0 + i, "say", "bob", "hi")
            for i in range(first_id, first_id + lines)
        ]
    )


def long_wal(checkpointer: Checkpointer) -> bool:
    return checkpointer.long_wal  # (read afresh: the store's commit changes it)


@pytest.fixture
def opened(tmp_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore.open(tmp_path / "chat.db")
    yield store
    store.close()


def test_the_writers_connection_never_checkpoints_in_a_commit(opened: SQLiteStore) -> None:
    """SQLite's automatic checkpoint (in the commit crossing 1,000 pages) is off."""
    assert opened.checkpointer is not None
    with closing(opened._conn.execute("PRAGMA wal_autocheckpoint")) as cursor:
        assert cursor.fetchone() == (0,)


def test_the_checkpointer_passes_after_commits(opened: SQLiteStore) -> None:
    """Commits wake the thread, which copies the WAL into the database file."""
    checkpointer = opened.checkpointer
    assert checkpointer is not None
    for i in range(1, 21):
        opened.commit(batch(i))
    deadline = time.monotonic() + WAIT_S
    while checkpointer.passes == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert checkpointer.passes >= 1


def test_a_long_wal_is_started_over_by_the_writer(
    opened: SQLiteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass that finds the WAL long makes the writer copy the rest once, before its next
    transaction, which then starts the WAL over (instead of growing it further)."""
    assert opened.checkpointer is not None
    opened.checkpointer.close()  # the thread's; this test makes the passes itself
    checkpointer = Checkpointer(tmp_path / "chat.db", "NORMAL", 1.0)
    opened.checkpointer = checkpointer
    monkeypatch.setattr(checkpointer_module, "WAL_LONG_FRAMES", 20)
    for i in range(1, 31):
        opened.commit(batch(i))
    frames, copied = checkpointer.checkpoint()
    assert frames >= 20
    assert copied == frames
    assert long_wal(checkpointer)
    opened.commit(batch(31))  # not copied by a pass: the writer copies it first
    assert checkpointer.writer_passes == 1
    assert not long_wal(checkpointer)
    opened.commit(batch(32))
    frames, _ = checkpointer.checkpoint()
    assert frames < 20  # the WAL started over: only the last commits' frames are in it
    assert checkpointer.writer_passes == 1  # once, not at every commit


def test_another_connection_can_read_while_the_store_is_open(
    opened: SQLiteStore, tmp_path: Path
) -> None:
    """Without SQLite's exclusive locking mode the file can be read (sqlite3 CLI, a
    backup) while the server runs; a second server is still refused by the file lock."""
    opened.commit(batch(1, 3))
    with closing(sqlite3.connect(tmp_path / "chat.db")) as reader:
        (count,) = reader.execute("SELECT count(*) FROM messages").fetchone()
    assert count == 3
