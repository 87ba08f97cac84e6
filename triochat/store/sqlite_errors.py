"""SQLite's errors in words for the person running the server (no I/O)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

from triochat.store.base import StoreError

__all__ = ["IN_USE", "error", "in_use", "one_line"]

# A database another process holds (SQLite's lock, or the server's: sqlite_open.lock_file).
IN_USE: Final = (
    "it is in use by another process, perhaps another triochat server",
    "stop that process or choose another --db",
)
# What each SQLite primary result code means to the person running the server.
_REASONS: Final[dict[int, tuple[str, str]]] = {
    sqlite3.SQLITE_CORRUPT: (
        "the file is damaged",
        "move it aside or restore a backup, or choose another --db",
    ),
    sqlite3.SQLITE_NOTADB: (
        "the file is not an SQLite database",
        "move it aside, or choose another --db",
    ),
    sqlite3.SQLITE_FULL: ("the disk or the database is full", "free some disk space"),
    sqlite3.SQLITE_BUSY: IN_USE,
    sqlite3.SQLITE_LOCKED: IN_USE,
    sqlite3.SQLITE_CANTOPEN: (
        "the file or its folder cannot be opened for writing",
        "check the folder's permissions or choose another --db",
    ),
    sqlite3.SQLITE_READONLY: (
        "the file or its folder is read-only",
        "check the permissions or choose another --db",
    ),
    sqlite3.SQLITE_PERM: (
        "permission denied",
        "check the permissions or choose another --db",
    ),
    sqlite3.SQLITE_IOERR: ("the disk reported an input/output error", "check the disk"),
}


def one_line(text: object) -> str:
    """Return ``text`` as one line: runs of whitespace, newlines included, become a space."""
    return " ".join(str(text).split())


def in_use(action: str, path: Path | str) -> StoreError:
    """The error for a database another process holds (found without SQLite's help)."""
    reason, advice = IN_USE
    return StoreError(f"{action} database {path}: {reason}; {advice}")


def error(action: str, path: Path | str, exc: sqlite3.Error) -> StoreError:
    """Turn a sqlite3 error into one line: what failed, why, and what to do.

    Args:
        action: What was being done, e.g. ``"cannot save to"``.
        path: The database file.
        exc: The error SQLite raised.
    """
    code = getattr(exc, "sqlite_errorcode", None)
    reason, advice = _REASONS.get(
        code & 0xFF if isinstance(code, int) else -1,
        ("SQLite failed", "check the disk and the file"),
    )
    return StoreError(f"{action} database {path}: {reason} ({one_line(exc)}); {advice}")
