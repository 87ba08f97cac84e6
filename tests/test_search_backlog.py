"""SQLite indexes committed lines for search later, in batches: nothing is missed.

A commit leaves its lines to the writer thread (triochat.store.search_backlog); a search
indexes what waits first; a process that ended without closing has its waiting lines
indexed at the next start; the writer's pacer (triochat.store.writer_index) indexes in
between operations, and backs off after a failure.
"""

from __future__ import annotations

import queue
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import trio

from triochat.core.search import SearchQuery
from triochat.store import Batch, SQLiteStore, StoredMessage, StoreError, StoreWriter
from triochat.store.search import SEARCH_AUTOMERGE
from triochat.store.writer_index import INDEX_BATCH, INDEX_CHUNK, INDEX_RETRY_S, IndexPacer
from triochat.store.writer_ops import Op, Prune

NOW = 1_700_000_000.0


def say(room: str, id: int, text: str) -> StoredMessage:
    return StoredMessage(room, id, NOW + id, "say", "bob", text)


def hits(store: SQLiteStore, word: str) -> list[tuple[str, int]]:
    found = store.search(SearchQuery((word,), None, limit=1000))
    return [(hit.message.room, hit.message.id) for hit in found]


def counts(path: Path) -> tuple[int, int, int]:
    """Lines stored, lines in search_rows, lines with words in the index; FTS5's check."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("INSERT INTO search_index (search_index, rank) VALUES ('integrity-check', 1)")
        (kept,) = conn.execute("SELECT count(*) FROM messages").fetchone()
        (rows,) = conn.execute("SELECT count(*) FROM search_rows").fetchone()
        conn.execute(
            "CREATE VIRTUAL TABLE temp.words USING fts5vocab(main, search_index, instance)"
        )
        documents = {doc for (doc,) in conn.execute("SELECT DISTINCT doc FROM words")}
        docids = {docid for (docid,) in conn.execute("SELECT docid FROM search_rows")}
        assert documents == docids  # the index holds words of exactly the rows listed
        return int(kept), int(rows), len(documents)
    finally:
        conn.close()


def test_a_commit_leaves_indexing_to_later_and_a_search_indexes_first(tmp_path: Path) -> None:
    store = SQLiteStore.open(tmp_path / "chat.db")
    try:
        store.commit(Batch([say("#a", 1, "needle one"), say("#b", 1, "needle two")]))
        assert store.unindexed() == 2
        (rows,) = store._conn.execute("SELECT count(*) FROM search_rows").fetchone()
        assert rows == 0  # the commit did not touch the index
        assert hits(store, "needle") == [("#b", 1), ("#a", 1)]
        assert store.unindexed() == 0
        store.commit(Batch([say("#a", 2, "needle three")]))
        assert store.index_some(10) == 1
        assert store.index_some(10) == 0
        assert hits(store, "needle") == [("#a", 2), ("#b", 1), ("#a", 1)]
    finally:
        store.close()


def test_lines_deleted_before_they_were_indexed_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    store = SQLiteStore.open(path)
    store.commit(Batch([say("#a", i, f"word {i}") for i in range(1, 6)]))
    store.commit(Batch([say("#b", 1, "word old b")]))
    assert store.prune(NOW, None, 2) == 3  # #a keeps 4 and 5, never indexed
    store.commit(Batch([say("#c", 1, "word c")]))
    store.commit(Batch([], dropped_rooms=["#b"]))
    store.commit(Batch([say("#b", 1, "word new b")]))  # a room made again counts from 1
    assert hits(store, "word") == [("#b", 1), ("#c", 1), ("#a", 5), ("#a", 4)]
    assert hits(store, "old") == []
    store.close()
    assert counts(path) == (4, 4, 4)


def test_runs_of_lines_are_indexed_in_arrival_order_in_any_chunks(tmp_path: Path) -> None:
    """The backlog keeps consecutive ids of a room as one run: rooms interleaved, ids
    with gaps and chunks that end inside a run still index every line once, and
    docids (a hit's seq) follow arrival."""
    path = tmp_path / "chat.db"
    store = SQLiteStore.open(path)
    order = [("#a", 1), ("#a", 2), ("#a", 3), ("#b", 1), ("#a", 4), ("#a", 6), ("#a", 7)]
    order += [("#b", i) for i in range(2, 12)] + [("#c", 1), ("#d", 2), ("#a", 8)]
    for room, id in order:
        store.commit(Batch([say(room, id, f"word {room} {id}")]))
    assert store.unindexed() == len(order)
    assert [store.index_some(n) for n in (2, 3, 1, 7, 100, 5)] == [2, 3, 1, 7, 7, 0]
    found = store.search(SearchQuery(("word",), None, limit=1000))
    assert [(hit.message.room, hit.message.id) for hit in reversed(found)] == order
    assert [hit.seq for hit in reversed(found)] == list(range(1, len(order) + 1))
    store.close()
    assert counts(path) == (len(order), len(order), len(order))


def test_a_killed_process_has_its_waiting_lines_indexed_at_the_next_start(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    store = SQLiteStore.open(path)
    store.commit(Batch([say("#a", 1, "needle indexed")]))
    assert hits(store, "needle") == [("#a", 1)]
    store.close()
    # Another process commits and ends without closing: nothing indexes its lines.
    script = f"""
        import os
        from triochat.store import Batch, SQLiteStore, StoredMessage
        store = SQLiteStore.open({str(path)!r})
        store.commit(Batch([StoredMessage("#b", 1, {NOW + 5}, "say", "bob", "needle b1")]))
        store.commit(Batch([StoredMessage("#a", 2, {NOW + 6}, "say", "bob", "needle a2")]))
        assert store.unindexed() == 2
        os._exit(0)
    """
    subprocess.run([sys.executable, "-c", textwrap.dedent(script)], check=True, timeout=60)
    conn = sqlite3.connect(path)
    try:
        (rows,) = conn.execute("SELECT count(*) FROM search_rows").fetchone()
        assert rows == 1  # stored, not indexed
    finally:
        conn.close()
    store = SQLiteStore.open(path)
    try:
        assert store.unindexed() == 0  # indexed while opening
        (rows,) = store._conn.execute("SELECT count(*) FROM search_rows").fetchone()
        assert rows == 3
        assert hits(store, "needle") == [("#a", 2), ("#b", 1), ("#a", 1)]
    finally:
        store.close()
    assert counts(path) == (3, 3, 3)


class FakeIndex:
    """An :class:`Indexes` store: ``waiting`` lines; indexing can fail, and puts an
    operation on the inbox (so the pacer's next wait returns at once)."""

    def __init__(self, inbox: queue.SimpleQueue[Op], waiting: int) -> None:
        self.inbox = inbox
        self.waiting = waiting
        self.calls = 0
        self.fail = False

    def unindexed(self) -> int:
        return self.waiting

    def index_some(self, max_lines: int | None = None) -> int:
        self.calls += 1
        self.inbox.put(Prune())
        if self.fail:
            raise StoreError("the disk is full")
        taken = self.waiting if max_lines is None else min(max_lines, self.waiting)
        self.waiting -= taken
        return taken


def test_the_pacer_indexes_when_due_and_lets_queued_operations_go_first() -> None:
    inbox: queue.SimpleQueue[Op] = queue.SimpleQueue()
    now = [0.0]
    store = FakeIndex(inbox, INDEX_BATCH - 1)
    errors: list[StoreError] = []
    pacer = IndexPacer(store, errors.append, clock=lambda: now[0])
    inbox.put(Prune())
    assert isinstance(pacer.next_op(inbox), Prune)  # not due: the operation
    assert store.calls == 0
    store.waiting = INDEX_BATCH  # due, but an operation is queued: it goes first
    inbox.put(Prune())
    assert isinstance(pacer.next_op(inbox), Prune)
    assert store.calls == 0
    assert isinstance(pacer.next_op(inbox), Prune)  # nothing queued: it indexes, then waits
    assert (store.calls, store.waiting) == (1, 0)
    store.waiting = 1  # one line, old enough: due too
    now[0] = 100.0
    inbox.put(Prune())
    assert isinstance(pacer.next_op(inbox), Prune)
    assert store.calls == 1  # first seen now: not yet
    assert inbox.empty()
    now[0] = 101.0
    assert isinstance(pacer.next_op(inbox), Prune)
    assert (store.calls, store.waiting, errors) == (2, 0, [])


def test_the_pacer_reports_a_failure_and_waits_before_trying_again() -> None:
    inbox: queue.SimpleQueue[Op] = queue.SimpleQueue()
    now = [0.0]
    store = FakeIndex(inbox, INDEX_CHUNK)  # so many that even a queued operation waits
    store.fail = True
    errors: list[StoreError] = []
    pacer = IndexPacer(store, errors.append, clock=lambda: now[0])
    assert isinstance(pacer.next_op(inbox), Prune)
    assert store.calls == 1
    assert [str(e) for e in errors] == ["the disk is full"]
    inbox.put(Prune())
    assert isinstance(pacer.next_op(inbox), Prune)  # still backing off
    assert store.calls == 1
    store.fail = False
    now[0] = INDEX_RETRY_S + 0.1
    assert isinstance(pacer.next_op(inbox), Prune)
    assert (store.calls, store.waiting, len(errors)) == (2, 0, 1)


@pytest.mark.parametrize("durability", ["NORMAL", "FULL"])
def test_the_writer_indexes_in_the_background(tmp_path: Path, durability: str) -> None:
    path = tmp_path / "chat.db"
    store = SQLiteStore.open(path, synchronous=durability)  # type: ignore[arg-type]

    async def main() -> None:
        writer = StoreWriter(store, lambda seq: None)
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            for n in range(1, INDEX_BATCH + 1):
                writer.submit(Batch([say("#a", n, f"line {n}")]))
            for _ in range(1000):  # up to 10 s
                if not store.unindexed() and writer.committed_seq == INDEX_BATCH:
                    break
                await trio.sleep(0.01)
            else:
                pytest.fail("the writer did not index the lines")
            await writer.aclose()

    trio.run(main)
    assert counts(path) == (INDEX_BATCH, INDEX_BATCH, INDEX_BATCH)


def test_the_index_merges_its_segments_16_at_a_time(tmp_path: Path) -> None:
    """FTS5's automerge is set to 16 when the index is kept (new or existing file), so
    indexing rewrites each line's words half as often as FTS5's default of 4."""
    path = tmp_path / "chat.db"
    SQLiteStore.open(path).close()
    conn = sqlite3.connect(path)
    try:
        conn.execute("DELETE FROM search_index_config WHERE k = 'automerge'")  # as before
        conn.commit()
    finally:
        conn.close()
    SQLiteStore.open(path).close()
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT v FROM search_index_config WHERE k = 'automerge'").fetchall()
    finally:
        conn.close()
    assert rows == [(SEARCH_AUTOMERGE,)] == [(16,)]
