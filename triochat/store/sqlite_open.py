"""Opening the SQLite file: lock it, switch to WAL, migrate, check (see sqlite.py)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]

from triochat.store.base import StoreError
from triochat.store.schema import MIGRATIONS, SCHEMA_VERSION, foreign_tables
from triochat.store.search import keep_search_index
from triochat.store.sqlite_errors import in_use
from triochat.store.sqlite_errors import one_line as _one_line

__all__ = ["ForeignDatabase", "lock_file", "prepare"]


class ForeignDatabase(StoreError):
    """``--db`` names another program's database: refused, and left as it was."""


def lock_file(path: Path) -> int | None:
    """Take the file lock a server holds on its database (creating the file if needed):
    the descriptor to keep open until the store's connections are closed, or None where
    there are no such locks (then SQLite's exclusive locking mode is the lock).

    An ``flock`` lock: separate from SQLite's own (``fcntl``) locks, which it leaves
    alone. Raises :class:`StoreError` if another process holds it.
    """
    if fcntl is None or str(path) == ":memory:":
        return None
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(
            f"cannot open database {path}: {_one_line(exc.strerror or exc)}; "
            "check the folder's permissions or choose another --db"
        ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise in_use("cannot open", path) from exc
    return fd


def prepare(
    connection: sqlite3.Connection,
    path: Path,
    synchronous: str,
    search_index: bool,
    *,
    exclusive: bool = True,
) -> None:
    """Lock the file (``exclusive``: SQLite's exclusive locking mode, where
    :func:`lock_file` has no lock), switch to WAL, migrate the schema, drop or build the
    search index (``search_index``), and check the file's pages."""
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
    if exclusive:
        connection.execute("PRAGMA locking_mode = EXCLUSIVE")
    (mode,) = connection.execute("PRAGMA journal_mode = WAL").fetchone()
    if mode != "wal" and not (in_memory and mode == "memory"):
        raise StoreError(
            f"cannot open database {path}: its file system does not support SQLite's "
            f"write-ahead log (journal mode stays {mode!r}); put it on a local disk"
        )
    connection.execute(f"PRAGMA synchronous = {synchronous}")
    connection.execute("BEGIN EXCLUSIVE")  # exclusive mode: the lock kept until close
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
        keep_search_index(connection, search_index)
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
