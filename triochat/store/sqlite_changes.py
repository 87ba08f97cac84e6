"""Accounts, operators, bans and mutes as SQLite statements (inside a batch's transaction).

The reads of the same tables are :class:`triochat.store.sqlite.SQLiteStore`'s ``load_*``
methods; the column lists are shared with them from here.
"""

from __future__ import annotations

import sqlite3
from typing import Final, assert_never

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

__all__ = ["BAN_COLUMNS", "MUTE_COLUMNS", "apply_change"]

SAVE_ACCOUNT: Final = """
    INSERT INTO accounts (key, name, password_hash, created) VALUES (?, ?, ?, ?)
    ON CONFLICT (key) DO UPDATE SET password_hash = excluded.password_hash
"""
BAN_COLUMNS: Final = "target, kind, shown, set_by, reason, ts, until"
MUTE_COLUMNS: Final = "key, name, set_by, ts, until"


def apply_change(conn: sqlite3.Connection, change: Change) -> None:
    """Write one account, operator, ban or mute change (inside the batch's transaction)."""
    match change:
        case SaveAccount(record=a):
            conn.execute(SAVE_ACCOUNT, (a.key, a.name, a.password_hash, a.created))
        case DropAccount(key=key):
            conn.execute("DELETE FROM accounts WHERE key = ?", (key,))
        case SaveOp(record=op):
            conn.execute("INSERT OR REPLACE INTO ops (key, name) VALUES (?, ?)", (op.key, op.name))
        case DropOp(key=key):
            conn.execute("DELETE FROM ops WHERE key = ?", (key,))
        case SaveBan(record=b):
            conn.execute(
                f"INSERT OR REPLACE INTO bans ({BAN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (b.target, b.kind, b.shown, b.set_by, b.reason, b.ts, b.until),
            )
        case DropBan(target=target):
            conn.execute("DELETE FROM bans WHERE target = ?", (target,))
        case SaveMute(record=m):
            conn.execute(
                f"INSERT OR REPLACE INTO mutes ({MUTE_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                (m.key, m.name, m.set_by, m.ts, m.until),
            )
        case DropMute(key=key):
            conn.execute("DELETE FROM mutes WHERE key = ?", (key,))
        case _:
            assert_never(change)
