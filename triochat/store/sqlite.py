"""The default store: one SQLite file in WAL mode, written from one thread.

It keeps history, and (schema v3) accounts, operators, bans and mutes.

Rules of this module:

* **One connection, one process.** The file is opened in exclusive locking mode and
  held for the process's life: a second server pointed at the same file is refused
  at start-up ("in use") instead of assigning the same ids and losing messages to
  ``INSERT OR IGNORE``. The price: nothing else can read the file while the server
  runs (stop it, or copy the file, to look inside).
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
from typing import Any, Final, Literal, assert_never

from triochat.core.records import (
    Change,
    DropAccount,
    DropBan,
    DropMute,
    DropOp,
    SaveAccount,
    SaveBan,
    SaveMute,
    SaveOp,
)
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
from triochat.store.retention import age_cutoff, check_retention
from triochat.store.schema import MIGRATIONS, SCHEMA_VERSION, foreign_tables
from triochat.store.sqlite_errors import error as _error
from triochat.store.sqlite_errors import one_line as _one_line

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


class ForeignDatabase(StoreError):
    """``--db`` names another program's database: refused, and left as it was."""


_COLUMNS: Final = "room, id, ts, kind, sender, text"
_UPSERT_ROOM: Final = """
    INSERT INTO rooms (name, last_id, topic, topic_by, topic_ts, topic_locked)
    VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT (name) DO UPDATE SET
        last_id = max(last_id, excluded.last_id),
        topic = excluded.topic, topic_by = excluded.topic_by, topic_ts = excluded.topic_ts,
        topic_locked = excluded.topic_locked
"""
_SAVE_ACCOUNT: Final = """
    INSERT INTO accounts (key, name, password_hash, created) VALUES (?, ?, ?, ?)
    ON CONFLICT (key) DO UPDATE SET password_hash = excluded.password_hash
"""
_BAN_COLUMNS: Final = "target, kind, shown, set_by, reason, ts, until"
_MUTE_COLUMNS: Final = "key, name, set_by, ts, until"
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


def _message(row: tuple[str, int, float, str, str, str]) -> StoredMessage:
    return StoredMessage(*row)


class SQLiteStore:
    """History in one SQLite file; implements :class:`~triochat.store.base.Store`.

    Open it with :meth:`open`. All calls must be serialised by the caller (one at a
    time, from any one thread at a time).
    """

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        """Wrap an open, migrated connection; use :meth:`open` instead."""
        self._conn = connection
        self._path = path

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @classmethod
    def open(cls, path: str | Path, *, synchronous: Synchronous = SYNCHRONOUS) -> SQLiteStore:
        """Open (creating it and its folders if needed) and migrate a database.

        Args:
            path: The database file. ``~`` is expanded.
            synchronous: SQLite's ``synchronous`` setting; see the module docstring.

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
        try:
            connection = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise _error("cannot open", path, exc) from exc
        try:
            _prepare(connection, path, synchronous)
        except sqlite3.Error as exc:
            connection.close()
            raise _error("cannot open", path, exc) from exc
        except BaseException:
            connection.close()
            raise
        return cls(connection, path)

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
                conn.execute("COMMIT")
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
        except sqlite3.Error as exc:
            raise _error("cannot prune", self._path, exc) from exc
        return deleted

    def close(self) -> None:
        """Checkpoint the WAL into the database file and release the lock."""
        try:
            self._conn.close()
        except sqlite3.Error as exc:
            raise _error("cannot close", self._path, exc) from exc

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
        return [_message(row) for row in rows]

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


def _apply(conn: sqlite3.Connection, change: Change) -> None:
    """Write one account, operator, ban or mute change (inside the batch's transaction)."""
    match change:
        case SaveAccount(record=a):
            conn.execute(_SAVE_ACCOUNT, (a.key, a.name, a.password_hash, a.created))
        case DropAccount(key=key):
            conn.execute("DELETE FROM accounts WHERE key = ?", (key,))
        case SaveOp(record=op):
            conn.execute("INSERT OR REPLACE INTO ops (key, name) VALUES (?, ?)", (op.key, op.name))
        case DropOp(key=key):
            conn.execute("DELETE FROM ops WHERE key = ?", (key,))
        case SaveBan(record=b):
            conn.execute(
                f"INSERT OR REPLACE INTO bans ({_BAN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (b.target, b.kind, b.shown, b.set_by, b.reason, b.ts, b.until),
            )
        case DropBan(target=target):
            conn.execute("DELETE FROM bans WHERE target = ?", (target,))
        case SaveMute(record=m):
            conn.execute(
                f"INSERT OR REPLACE INTO mutes ({_MUTE_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                (m.key, m.name, m.set_by, m.ts, m.until),
            )
        case DropMute(key=key):
            conn.execute("DELETE FROM mutes WHERE key = ?", (key,))
        case _:
            assert_never(change)


def _prepare(connection: sqlite3.Connection, path: Path, synchronous: Synchronous) -> None:
    """Lock the file, switch to WAL, migrate the schema and check the file's pages."""
    in_memory = str(path) == ":memory:"
    # Before anything is written (the journal mode is kept in the file): not ours, untouched.
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    foreign = foreign_tables(version, {str(row[0]) for row in rows})
    if foreign is not None:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise ForeignDatabase(
            f"cannot open database {path}: it is not triochat's (it holds the tables "
            f"{_one_line(shown)}); give --db a new file or triochat's own database"
        )
    connection.execute("PRAGMA locking_mode = EXCLUSIVE")
    (mode,) = connection.execute("PRAGMA journal_mode = WAL").fetchone()
    if mode != "wal" and not (in_memory and mode == "memory"):
        raise StoreError(
            f"cannot open database {path}: its file system does not support SQLite's "
            f"write-ahead log (journal mode stays {mode!r}); put it on a local disk"
        )
    connection.execute(f"PRAGMA synchronous = {synchronous}")
    connection.execute("BEGIN EXCLUSIVE")  # takes the lock we keep until close
    try:
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"cannot open database {path}: it was written by a newer triochat "
                f"(schema v{version}; this version knows up to v{SCHEMA_VERSION}); "
                "upgrade triochat or choose another --db"
            )
        for step in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[step]:
                connection.execute(statement)
        if version != SCHEMA_VERSION:
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    problems = [row[0] for row in connection.execute("PRAGMA quick_check(1)")]
    if problems != ["ok"]:
        raise StoreError(
            f"cannot open database {path}: the file is damaged ({_one_line(problems[0])}); "
            "move it aside or restore a backup, or choose another --db"
        )
