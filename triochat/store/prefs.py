"""Accounts' own settings in SQLite: ``/notify`` levels and last-seen times.

The tables are made by the schema's migration (:mod:`triochat.store.schema`); these are
the statements the SQLite store runs on them, kept apart from :mod:`triochat.store.sqlite`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Final, assert_never

from triochat.core.records import DropPrefs, Pref, SaveNotify, SaveSeen
from triochat.store.sqlite_errors import error

__all__ = ["apply_prefs", "load_prefs"]

_SAVE_NOTIFY: Final = "INSERT OR REPLACE INTO notify (key, room, level) VALUES (?, ?, ?)"
_SAVE_SEEN: Final = "INSERT OR REPLACE INTO seen (key, ts) VALUES (?, ?)"


def apply_prefs(conn: sqlite3.Connection, prefs: Iterable[Pref]) -> None:
    """Write settings, in order (inside the batch's transaction)."""
    for pref in prefs:
        match pref:
            case SaveNotify(key=key, room=room, level=level):
                conn.execute(_SAVE_NOTIFY, (key, room, level))
            case SaveSeen(key=key, ts=ts):
                conn.execute(_SAVE_SEEN, (key, ts))
            case DropPrefs(key=key):
                conn.execute("DELETE FROM notify WHERE key = ?", (key,))
                conn.execute("DELETE FROM seen WHERE key = ?", (key,))
            case _:
                assert_never(pref)


def load_prefs(conn: sqlite3.Connection, path: Path) -> list[Pref]:
    """Every stored setting, as the changes that make it (levels, then times).

    Raises:
        StoreError: The database cannot be read.
    """
    try:
        levels = conn.execute("SELECT key, room, level FROM notify ORDER BY key, room").fetchall()
        seen = conn.execute("SELECT key, ts FROM seen ORDER BY key").fetchall()
    except sqlite3.Error as exc:
        raise error("cannot read", path, exc) from exc
    prefs: list[Pref] = [SaveNotify(*row) for row in levels]
    return prefs + [SaveSeen(*row) for row in seen]
