"""Opening the SQLite file: lock it, switch to WAL, migrate, check (see sqlite.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from triochat.store.base import StoreError
from triochat.store.schema import MIGRATIONS, SCHEMA_VERSION, foreign_tables
from triochat.store.search import keep_search_index
from triochat.store.sqlite_errors import one_line as _one_line

__all__ = ["ForeignDatabase", "prepare"]


class ForeignDatabase(StoreError):
    """``--db`` names another program's database: refused, and left as it was."""


def prepare(
    connection: sqlite3.Connection, path: Path, synchronous: str, search_index: bool
) -> None:
    """Lock the file, switch to WAL, migrate the schema, drop or build the search index
    (``search_index``), and check the file's pages."""
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
