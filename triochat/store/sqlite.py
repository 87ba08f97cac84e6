"""The default store: one SQLite file in WAL mode, written from one thread.

It keeps history, and (schema v3) accounts, operators, bans and mutes; private history,
/notify levels and the search index come in later versions (triochat.store.schema).

Rules of this module:

* **One writing connection, one process.** A second server pointed at the same file is
  refused at start-up ("in use") by a lock on the file
  (:func:`~triochat.store.sqlite_open.lock_file`), instead of assigning the same ids and
  losing messages to ``INSERT OR IGNORE``. Other programs may read the file meanwhile.
  (Where there are no such locks, Windows, SQLite's exclusive locking mode is the lock,
  and nothing else can read the file while the server runs.)
* **Checkpoints out of the commit.** A second connection, in a thread of its own,
  checkpoints the WAL beside the commits (:mod:`triochat.store.checkpointer`); the
  writing connection never does inside a commit (``wal_autocheckpoint = 0``).
* **Calls are serialised by the caller.** The connection is made with
  ``check_same_thread=False`` because it is opened (and checked) at start-up, then
  handed to the one thread that uses it from then on: the
  :class:`~triochat.store.writer.StoreWriter`'s, one call at a time.
* **Transactions are explicit** (``isolation_level=None``): one ``BEGIN IMMEDIATE`` ...
  ``COMMIT`` per batch, and each retention chunk is its own short transaction.
* **Every failure is a StoreError** with one line saying what is wrong and what to do.

Durability is the operator's choice (``--durability``, :data:`DURABILITY`), and the
commit gate holds every line until its commit has returned in both:

* ``process`` (the default): WAL with ``synchronous=NORMAL``. A commit is in the
  kernel's page cache when ``commit`` returns: it survives ``kill -9``, a crash or an
  out-of-memory kill. The WAL is fsynced only at checkpoints, so a power cut or kernel
  crash can lose the last transactions (the file stays consistent, it ends earlier,
  and ``rooms.last_id`` with it: ids clients saw could be handed out again).
* ``power``: ``synchronous=FULL`` fsyncs the WAL before each commit returns, so a
  committed (and only then broadcast) batch survives a power cut too; one fsync per
  grouped commit, paid in latency and CPU (docs/benchmarks.md), not throughput.

``scripts/store_bench.py`` (2 vCPU VM, virtio disk, fsync about 0.2 ms): batches of 100
messages commit at 120,000-175,000 messages/s with NORMAL, 110,000-125,000 with FULL.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Any, Final, Literal

from triochat.core.records import Pref
from triochat.store.base import (
    AccountRecord,
    BanRecord,
    Batch,
    MuteRecord,
    OpRecord,
    RoomRecord,
    StoredMessage,
    StoreError,
    check_limit,
)
from triochat.store.checkpointer import Checkpointer
from triochat.store.prefs import apply_prefs, load_prefs
from triochat.store.retention import age_cutoff, check_retention
from triochat.store.search import SearchHit, SearchOff, SearchQuery, search
from triochat.store.search_backlog import SearchBacklog, unindexed_lines
from triochat.store.sqlite_changes import BAN_COLUMNS as _BAN_COLUMNS
from triochat.store.sqlite_changes import MUTE_COLUMNS as _MUTE_COLUMNS
from triochat.store.sqlite_changes import apply_change as _apply
from triochat.store.sqlite_errors import error as _error
from triochat.store.sqlite_errors import one_line as _one_line
from triochat.store.sqlite_open import ForeignDatabase, lock_file, prepare
from triochat.store.sqlite_private import PrivateLines, prune_private, write_private

__all__ = [
    "BUSY_TIMEOUT_S",
    "DEFAULT_DURABILITY",
    "DURABILITIES",
    "DURABILITY",
    "PRUNE_CHUNK_ROWS",
    "SYNCHRONOUS",
    "Durability",
    "ForeignDatabase",
    "SQLiteStore",
    "Synchronous",
]

Synchronous = Literal["NORMAL", "FULL"]
Durability = Literal["process", "power"]

# What a committed (and so delivered) line survives -> SQLite's synchronous setting.
DURABILITY: Final[dict[str, Synchronous]] = {"process": "NORMAL", "power": "FULL"}
DURABILITIES: Final = tuple(DURABILITY)
DEFAULT_DURABILITY: Final[Durability] = "process"  # kill -9 safe; no fsync per commit
SYNCHRONOUS: Final[Synchronous] = DURABILITY[DEFAULT_DURABILITY]
BUSY_TIMEOUT_S: Final = 2.0  # a lock held longer than this is another server, not a blip
PRUNE_CHUNK_ROWS: Final = 1000  # rows per retention transaction: short locks, small WAL


_COLUMNS: Final = "room, id, ts, kind, sender, text"
_UPSERT_ROOM: Final = """
    INSERT INTO rooms (name, last_id, topic, topic_by, topic_ts, topic_locked)
    VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT (name) DO UPDATE SET
        last_id = max(last_id, excluded.last_id),
        topic = excluded.topic, topic_by = excluded.topic_by, topic_ts = excluded.topic_ts,
        topic_locked = excluded.topic_locked
"""
_RAISE_LAST_ID: Final = """
    INSERT INTO rooms (name, last_id) VALUES (?, ?)
    ON CONFLICT (name) DO UPDATE SET last_id = max(last_id, excluded.last_id)
"""
_INSERT_MESSAGE: Final = f"INSERT OR IGNORE INTO messages ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
_DELETE_UP_TO: Final = """
    DELETE FROM messages WHERE room = ? AND id IN (
        SELECT id FROM messages WHERE room = ? AND id <= ? ORDER BY id LIMIT ?
    )
"""
_DELETE_OLDER: Final = """
    DELETE FROM messages WHERE (room, id) IN (
        SELECT room, id FROM messages WHERE ts < ? LIMIT ?
    )
"""


class SQLiteStore(PrivateLines):
    """History in one SQLite file; implements :class:`~triochat.store.base.Store`.

    Open it with :meth:`open`. All calls must be serialised by the caller (one at a
    time, from any one thread at a time).
    """

    def __init__(
        self,
        connection: sqlite3.Connection,
        path: Path,
        search: bool = True,
        backlog: SearchBacklog | None = None,
        checkpointer: Checkpointer | None = None,
        lock_fd: int | None = None,
    ) -> None:
        """Wrap an open, migrated connection; use :meth:`open` instead."""
        self._conn = connection
        # Checkpoints in a thread of their own (None: SQLite's own, in the commits).
        self.checkpointer = checkpointer
        self._lock_fd = lock_fd  # the file lock held until close (sqlite_open.lock_file)
        self._path = path
        self._search = search  # the full-text index is kept (triochat.store.search)
        # Committed lines not indexed yet (triochat.store.search_backlog).
        self._backlog = SearchBacklog() if backlog is None else backlog

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @classmethod
    def open(
        cls, path: str | Path, *, synchronous: Synchronous = SYNCHRONOUS, search_index: bool = True
    ) -> SQLiteStore:
        """Open (creating it and its folders if needed) and migrate a database.

        Args:
            path: The database file. ``~`` is expanded.
            synchronous: SQLite's ``synchronous`` setting; see the module docstring.
            search_index: Keep the full-text index (False drops it; True builds it).

        Returns:
            The store, holding the file's lock until :meth:`close`.

        Raises:
            StoreError: The folder cannot be created, the file cannot be opened or
                written, is not a database, is damaged, was written by a newer
                triochat, or is in use by another process.
            ForeignDatabase: The file is another program's database (left untouched).
        """
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous is 'NORMAL' or 'FULL', not {synchronous!r}")
        path = Path(path).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if isinstance(exc, FileExistsError | NotADirectoryError):
                reason = "a file is in the way"
            elif isinstance(exc, PermissionError):
                reason = "permission denied"
            else:
                reason = _one_line(exc.strerror or exc)
            raise StoreError(
                f"cannot create the folder {path.parent} for the database: {reason}; "
                "choose another --db or fix the folder"
            ) from exc
        if path.is_dir():
            raise StoreError(f"cannot open database {path}: it is a folder; give --db a file")
        # SQLite reports these as vague I/O errors; os.access says it plainly (root passes).
        if path.exists() and not os.access(path, os.W_OK):
            raise StoreError(
                f"cannot open database {path}: the file is read-only for this user; "
                "check its permissions or choose another --db"
            )
        if str(path) != ":memory:" and not os.access(path.parent, os.W_OK | os.X_OK):
            raise StoreError(
                f"cannot open database {path}: its folder is read-only for this user "
                "(SQLite writes a -wal file beside the database); "
                "check the folder's permissions or choose another --db"
            )
        lock_fd = lock_file(path)
        try:
            connection = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            _unlock(lock_fd)
            raise _error("cannot open", path, exc) from exc
        checkpointer = None
        try:
            prepare(connection, path, synchronous, search_index, exclusive=lock_fd is None)
            # What a process that ended without closing had not indexed yet.
            backlog = SearchBacklog(unindexed_lines(connection) if search_index else ())
            backlog.index(connection)
            if lock_fd is not None:  # a second connection can open the file: see checkpointer
                connection.execute("PRAGMA wal_autocheckpoint = 0")
                checkpointer = Checkpointer(path, synchronous, BUSY_TIMEOUT_S)
                checkpointer.start()
        except BaseException as exc:
            if checkpointer is not None:
                checkpointer.close()
            connection.close()
            _unlock(lock_fd)
            if isinstance(exc, sqlite3.Error):
                raise _error("cannot open", path, exc) from exc
            raise
        return cls(connection, path, search_index, backlog, checkpointer, lock_fd)

    def load_rooms(self) -> list[RoomRecord]:
        """Return every room, ordered by name."""
        try:
            rows = self._conn.execute(
                "SELECT name, last_id, topic, topic_by, topic_ts, topic_locked"
                " FROM rooms ORDER BY name"
            ).fetchall()
        except sqlite3.Error as exc:
            raise _error("cannot read", self._path, exc) from exc
        return [
            RoomRecord(name, last_id, topic, by, ts, bool(locked))
            for name, last_id, topic, by, ts, locked in rows
        ]

    def commit(self, batch: Batch) -> None:
        """Write ``batch`` in one transaction; see :meth:`Store.commit`."""
        if not batch:
            return
        highest: dict[str, int] = {}
        for message in batch.messages:
            if message.id > highest.get(message.room, 0):
                highest[message.room] = message.id
        conn = self._conn
        checkpointer = self.checkpointer
        if checkpointer is not None and checkpointer.long_wal:
            checkpointer.restart_from(conn)  # before BEGIN: see triochat.store.checkpointer
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for name in batch.dropped_rooms:  # first: the rest of the batch came after
                    conn.execute("DELETE FROM messages WHERE room = ?", (name,))
                    conn.execute("DELETE FROM rooms WHERE name = ?", (name,))
                if batch.rooms:
                    conn.executemany(
                        _UPSERT_ROOM,
                        [
                            (r.name, r.last_id, r.topic, r.topic_by, r.topic_ts, r.topic_locked)
                            for r in batch.rooms
                        ],
                    )
                if batch.messages:
                    conn.executemany(
                        _INSERT_MESSAGE,
                        [(m.room, m.id, m.ts, m.kind, m.sender, m.text) for m in batch.messages],
                    )
                    conn.executemany(_RAISE_LAST_ID, highest.items())
                for change in batch.changes:
                    _apply(conn, change)
                write_private(conn, batch.private)
                apply_prefs(conn, batch.prefs)
                conn.execute("COMMIT")
                if checkpointer is not None:
                    checkpointer.wrote()
                if self._search:  # indexed later, many at a time (search_backlog)
                    self._backlog.committed(batch.messages, batch.dropped_rooms)
            except BaseException:
                self._rollback()
                raise
        except sqlite3.Error as exc:
            raise _error("cannot save to", self._path, exc) from exc

    def recent(self, room: str, limit: int) -> list[StoredMessage]:
        """Return the last ``limit`` messages of ``room``, oldest first."""
        check_limit(limit)
        return self._read_back(
            f"SELECT {_COLUMNS} FROM messages WHERE room = ? ORDER BY id DESC LIMIT ?",
            (room, limit),
        )

    def since(
        self, room: str, after_id: int, limit: int, upto: int | None = None
    ) -> tuple[list[StoredMessage], int]:
        """Return the newest ``limit`` messages above ``after_id`` and how many were skipped."""
        check_limit(limit)
        top = 2**63 - 1 if upto is None else upto
        messages = self._read_back(
            f"SELECT {_COLUMNS} FROM messages WHERE room = ? AND id > ? AND id <= ?"
            " ORDER BY id DESC LIMIT ?",
            (room, after_id, top, limit),
        )
        if len(messages) < limit:
            return messages, 0
        # Only a full page can have skipped anything: count what lies below it.
        below = messages[0].id if messages else None
        try:
            (skipped,) = self._conn.execute(
                "SELECT count(*) FROM messages"
                " WHERE room = ? AND id > ? AND id < coalesce(?, id + 1)",
                (room, after_id, below),
            ).fetchone()
        except sqlite3.Error as exc:
            raise _error("cannot read", self._path, exc) from exc
        return messages, int(skipped)

    def before(self, room: str, before_id: int, limit: int) -> list[StoredMessage]:
        """Return the ``limit`` messages just before ``before_id``, oldest first."""
        check_limit(limit)
        return self._read_back(
            f"SELECT {_COLUMNS} FROM messages WHERE room = ? AND id < ? ORDER BY id DESC LIMIT ?",
            (room, before_id, limit),
        )

    def search(self, query: SearchQuery) -> list[SearchHit]:
        """Return the lines ``query`` finds, newest first (:mod:`triochat.store.search`);
        the committed lines not indexed yet are indexed first."""
        if not self._search:
            raise SearchOff("search is off on this server (--no-search-index)")
        try:
            self._backlog.index(self._conn)
            return search(self._conn, query)
        except sqlite3.Error as exc:
            raise _error("cannot search", self._path, exc) from exc

    def prune(
        self,
        now: float,
        retain_days: float | None,
        retain_messages: int | None,
        *,
        max_rows: int | None = None,
    ) -> int:
        """Delete messages beyond the retention limits, :data:`PRUNE_CHUNK_ROWS` per transaction.

        Retention by count costs an index walk of ``retain_messages`` entries per room
        that has more than that; retention by age uses the index on ``ts``.
        """
        check_retention(retain_days, retain_messages, max_rows)
        cutoff = age_cutoff(now, retain_days)
        deleted = 0
        try:
            if retain_messages is not None:
                deleted += self._prune_by_count(retain_messages, max_rows)
            if cutoff is not None:
                deleted += self._delete(_DELETE_OLDER, (cutoff,), max_rows, deleted)
                left = None if max_rows is None else max(0, max_rows - deleted)
                deleted += prune_private(self._conn, cutoff, left) if left != 0 else 0
        except sqlite3.Error as exc:
            raise _error("cannot prune", self._path, exc) from exc
        if deleted and self.checkpointer is not None:
            self.checkpointer.wrote()
        return deleted

    def unindexed(self) -> int:
        """How many committed lines wait to be indexed for search."""
        return len(self._backlog)

    def index_some(self, max_lines: int | None = None) -> int:
        """Index up to ``max_lines`` (None: all) of the committed lines waiting for the
        search index, oldest first, in one transaction; return how many.

        Raises:
            StoreError: Nothing was indexed; the lines wait for the next call.
        """
        try:
            indexed = self._backlog.index(self._conn, max_lines)
        except sqlite3.Error as exc:
            raise _error("cannot index for search in", self._path, exc) from exc
        if indexed and self.checkpointer is not None:
            self.checkpointer.wrote()
        return indexed

    def close(self) -> None:
        """Index what waits (if that fails, the next start does it), checkpoint the WAL
        into the database file and release the lock."""
        with contextlib.suppress(sqlite3.Error):
            self._backlog.index(self._conn)
        try:
            if self.checkpointer is not None:  # first: the last connection checkpoints
                with contextlib.suppress(sqlite3.Error):
                    self.checkpointer.close()
            self._conn.close()
        except sqlite3.Error as exc:
            raise _error("cannot close", self._path, exc) from exc
        finally:
            _unlock(self._lock_fd)
            self._lock_fd = None

    def account_keys(self) -> list[str]:
        """Return every account's name key, sorted."""
        return [str(key) for (key,) in self._select("SELECT key FROM accounts ORDER BY key")]

    def account(self, key: str) -> AccountRecord | None:
        """Return the account with name key ``key``, or None."""
        rows = self._select(
            "SELECT key, name, password_hash, created FROM accounts WHERE key = ?", (key,)
        )
        return AccountRecord(*rows[0]) if rows else None

    def load_ops(self) -> list[OpRecord]:
        """Return the stored operators, by key."""
        return [OpRecord(*row) for row in self._select("SELECT key, name FROM ops ORDER BY key")]

    def load_bans(self) -> list[BanRecord]:
        """Return every ban, oldest first (then by target)."""
        rows = self._select(f"SELECT {_BAN_COLUMNS} FROM bans ORDER BY ts, target")
        return [BanRecord(*row) for row in rows]

    def load_mutes(self) -> list[MuteRecord]:
        """Return every mute, oldest first (then by key)."""
        return [
            MuteRecord(*row)
            for row in self._select(f"SELECT {_MUTE_COLUMNS} FROM mutes ORDER BY ts, key")
        ]

    def load_prefs(self) -> list[Pref]:
        """Return accounts' /notify levels and last-seen times (triochat.store.prefs)."""
        return load_prefs(self._conn, self._path)

    def _select(self, sql: str, params: tuple[str, ...] = ()) -> list[Any]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _error("cannot read", self._path, exc) from exc

    def _read_back(self, sql: str, params: tuple[str | int, ...]) -> list[StoredMessage]:
        """Run a newest-first query and return its rows oldest first."""
        try:
            rows = self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _error("cannot read", self._path, exc) from exc
        rows.reverse()
        return [StoredMessage(*row) for row in rows]

    def _prune_by_count(self, keep: int, max_rows: int | None) -> int:
        """Delete all but the newest ``keep`` messages of each room, within the budget."""
        deleted = 0
        rooms = [name for (name,) in self._conn.execute("SELECT name FROM rooms")]
        for room in rooms:
            if max_rows is not None and deleted >= max_rows:
                break
            newest_doomed = self._conn.execute(
                "SELECT id FROM messages WHERE room = ? ORDER BY id DESC LIMIT 1 OFFSET ?",
                (room, keep),
            ).fetchone()
            if newest_doomed is not None:
                params = (room, room, newest_doomed[0])
                deleted += self._delete(_DELETE_UP_TO, params, max_rows, deleted)
        return deleted

    def _delete(
        self, sql: str, params: tuple[str | int | float, ...], max_rows: int | None, done: int
    ) -> int:
        """Run a chunked DELETE until it deletes less than a chunk or the budget is spent."""
        deleted = 0
        while max_rows is None or done + deleted < max_rows:
            chunk = PRUNE_CHUNK_ROWS
            if max_rows is not None:
                chunk = min(chunk, max_rows - done - deleted)
            count = self._conn.execute(sql, (*params, chunk)).rowcount
            deleted += count
            if count < chunk:
                break
        return deleted

    def _rollback(self) -> None:
        """End a failed transaction, if SQLite has not already rolled it back."""
        if self._conn.in_transaction:
            # The commit's own error is the one worth reporting, not the rollback's.
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")


def _unlock(fd: int | None) -> None:
    """Release the file lock (after the connections are closed: see lock_file)."""
    if fd is not None:
        os.close(fd)
