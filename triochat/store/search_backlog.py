"""The lines committed but not yet in the search index, and indexing them.

A commit does not touch the full-text index (:mod:`triochat.store.search`): FTS5 pays
a fixed cost per transaction (a new segment, its structure record, the averages and
the document sizes: about 120 us of CPU on a 2-vCPU machine, four times a one-line
commit's own cost), and at a steady trickle nearly every line is its own commit. So
the store notes each committed line here, and the writer thread indexes them later,
many per transaction (:mod:`triochat.store.writer_index` says when), where a line
costs about 10 us at 100 a transaction. A line's delivery never waits for its
indexing.

Rules of this module:

* **Indexed means listed in** ``search_rows``. A line gets its ``search_rows`` row and
  its words in the same transaction, so the delete trigger (which takes a line's words
  out only through its ``search_rows`` row) never touches a line not indexed yet, and
  a line deleted before it was indexed (retention, ``/droproom``) is simply skipped.
* **In order of arrival.** Lines are indexed in the order they were committed, so
  ``docid`` (a hit's ``seq``) still follows arrival, and within a room the indexed
  lines are always the oldest ones: the lines above the room's highest indexed id.
  That is how :func:`unindexed_lines` finds, at start-up, what a process that ended
  (``kill -9``, a crash) had not indexed yet.
* **In runs.** The backlog keeps a room's consecutive ids committed back to back as
  one run (``room``, first, last), and a run's ``search_rows`` come from one range
  of ``messages``' key in one statement: a statement per line (``executemany``) cost
  3.5-4.2 us a line, more than FTS5's own work; a run costs 0.8-1.0 us a line.
* **A search indexes first.** :meth:`SQLiteStore.search` runs in the writer thread
  after every batch submitted before it, and indexes what is pending before it reads,
  so a line is found as soon as it is committed.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, Final

from triochat.core.records import StoredMessage

__all__ = ["SearchBacklog", "index_lines", "unindexed_lines"]

_NEW_ROWS: Final = """
    INSERT OR IGNORE INTO search_rows (room, id)
    SELECT room, id FROM messages WHERE room = ? AND id BETWEEN ? AND ? ORDER BY id
"""
_NEW_WORDS: Final = """
    INSERT INTO search_index (rowid, text)
    SELECT r.docid, m.text FROM search_rows r JOIN messages m ON m.room = r.room AND m.id = r.id
    WHERE r.docid > ?
"""
# Per room, the lines above its highest indexed id (the rooms table lists every room
# that has messages), oldest first, as the v6 migration orders an existing database.
# Each room's top first (MATERIALIZED, CROSS JOIN: a range of the primary key per room;
# left to itself the planner scanned every stored line, 0.12 s at 200,000).
_UNINDEXED: Final = """
    WITH tops (room, top) AS MATERIALIZED (
        SELECT k.name, coalesce((SELECT max(r.id) FROM search_rows r WHERE r.room = k.name), 0)
        FROM rooms k
    )
    SELECT m.room, m.id FROM tops t CROSS JOIN messages m ON m.room = t.room AND m.id > t.top
    ORDER BY m.ts, m.room, m.id
"""


def index_lines(conn: sqlite3.Connection, runs: Sequence[tuple[str, int, int]]) -> None:
    """Index ``runs`` (``(room, first id, last id)``, in order of arrival) inside the
    caller's transaction: a line no longer stored, or already indexed, is skipped."""
    (top,) = conn.execute("SELECT coalesce(max(docid), 0) FROM search_rows").fetchone()
    conn.executemany(_NEW_ROWS, runs)
    conn.execute(_NEW_WORDS, (top,))


def unindexed_lines(conn: sqlite3.Connection) -> list[tuple[str, int]]:
    """The stored lines not in the index yet, oldest first (see the module's rules)."""
    return [(str(room), int(id)) for room, id in conn.execute(_UNINDEXED)]


class SearchBacklog:
    """The committed lines waiting to be indexed, oldest first, as runs of consecutive
    ids (in memory only: after a restart :func:`unindexed_lines` finds them again)."""

    __slots__ = ("_count", "_runs")

    def __init__(self, lines: Iterable[tuple[str, int]] = ()) -> None:
        self._runs: deque[list[Any]] = deque()  # [room, first id, last id], oldest first
        self._count = 0
        self._add(lines)

    def __len__(self) -> int:
        return self._count

    def committed(self, messages: Iterable[StoredMessage], dropped: Iterable[str]) -> None:
        """Note a commit's lines (after its ``COMMIT``); a dropped room's waiting lines
        are forgotten first (a room made again counts its ids from 1)."""
        gone = set(dropped)
        if gone and self._runs:
            self._runs = deque(run for run in self._runs if run[0] not in gone)
            self._count = sum(run[2] - run[1] + 1 for run in self._runs)
        self._add((m.room, m.id) for m in messages)

    def _add(self, lines: Iterable[tuple[str, int]]) -> None:
        runs = self._runs
        last = runs[-1] if runs else None
        count = 0
        for room, id in lines:
            count += 1
            if last is not None and last[2] + 1 == id and last[0] == room:
                last[2] = id
            else:
                last = [room, id, id]
                runs.append(last)
        self._count += count

    def index(self, conn: sqlite3.Connection, max_lines: int | None = None) -> int:
        """Index the oldest ``max_lines`` waiting lines (None: all) in one transaction;
        return how many were taken. On an error nothing is taken (the caller's
        ``sqlite3.Error`` to report; the lines wait for the next try)."""
        count = self._count if max_lines is None else min(max_lines, self._count)
        if count <= 0:
            return 0
        taken: list[tuple[str, int, int]] = []
        left = count
        for room, first, last in self._runs:
            size = min(last - first + 1, left)
            taken.append((room, first, first + size - 1))
            left -= size
            if not left:
                break
        conn.execute("BEGIN IMMEDIATE")
        try:
            index_lines(conn, taken)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # the statement's own error is the one to report
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise
        for _ in range(len(taken) - 1):
            self._runs.popleft()
        head = self._runs[0]
        if taken[-1][2] == head[2]:
            self._runs.popleft()
        else:
            head[1] = taken[-1][2] + 1
        self._count -= count
        return count
