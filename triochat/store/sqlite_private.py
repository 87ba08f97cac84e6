"""Private history in the SQLite store: the ``private_lines`` table (schema v4).

:class:`PrivateLines` is a mixin of :class:`~triochat.store.sqlite.SQLiteStore` (kept
apart so that module stays under the size limit). Its writes run inside the store's
batch transaction (:func:`write_private`); its reads are the store's private reads.

A conversation is keyed by the ordered pair of account keys ``(a, b)``; ids are
server-wide, so one number (the highest id a client saw) resumes all its conversations.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from triochat.core.records import StoredPrivate, pair_of
from triochat.store.base import check_limit
from triochat.store.sqlite_errors import error as _error

__all__ = ["PrivateLines", "prune_private", "write_private"]

_COLUMNS: Final = "a, b, id, ts, sender, recipient, text"
_INSERT: Final = f"INSERT OR IGNORE INTO private_lines ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
_RAISE_LAST: Final = "UPDATE private_last SET last_id = max(last_id, ?) WHERE one = 1"
# Every line of one account: as the smaller key, or as the larger (a note to oneself once).
_MINE: Final = f"""
    SELECT {_COLUMNS} FROM private_lines WHERE a = :key AND id > :after AND id <= :top
    UNION ALL
    SELECT {_COLUMNS} FROM private_lines WHERE b = :key AND a <> b AND id > :after AND id <= :top
"""
_DELETE_OLDER: Final = """
    DELETE FROM private_lines WHERE (a, b, id) IN (
        SELECT a, b, id FROM private_lines WHERE ts < ? LIMIT ?
    )
"""

_Row = tuple[str, str, int, float, str, str, str]


def write_private(conn: sqlite3.Connection, lines: Sequence[StoredPrivate]) -> None:
    """Insert ``lines`` and raise the stored last id (inside the caller's transaction)."""
    if not lines:
        return
    conn.executemany(_INSERT, [(p.a, p.b, p.id, p.ts, p.sender, p.to, p.text) for p in lines])
    conn.execute(_RAISE_LAST, (max(p.id for p in lines),))


def prune_private(conn: sqlite3.Connection, cutoff: float, max_rows: int | None) -> int:
    """Delete private lines older than ``cutoff``, at most ``max_rows`` (None: all)."""
    limit = -1 if max_rows is None else max_rows
    return int(conn.execute(_DELETE_OLDER, (cutoff, limit)).rowcount)


class PrivateLines:
    """The private reads of the SQLite store (see the module docstring)."""

    _conn: sqlite3.Connection
    _path: Path

    def private_last_id(self) -> int:
        """Return the highest private line id ever committed (0 if none)."""
        (last,) = self._private_rows("SELECT last_id FROM private_last WHERE one = 1", ())[0]
        return int(last)

    def private_since(
        self, key: str, after_id: int, limit: int, upto: int | None = None
    ) -> tuple[list[StoredPrivate], int]:
        """Return the newest ``limit`` private lines of ``key`` above ``after_id`` and how
        many older ones were skipped, oldest first."""
        check_limit(limit)
        top = 2**63 - 1 if upto is None else upto
        rows = self._private_rows(
            f"SELECT * FROM ({_MINE}) ORDER BY id DESC LIMIT :limit",
            {"key": key, "after": after_id, "top": top, "limit": limit},
        )
        lines = _lines(rows)
        if len(lines) < limit:
            return lines, 0
        below = lines[0].id - 1 if lines else top
        ((skipped,),) = self._private_rows(
            f"SELECT count(*) FROM ({_MINE})", {"key": key, "after": after_id, "top": below}
        )
        return lines, int(skipped)

    def private_between(
        self, one: str, other: str, before_id: int | None, limit: int
    ) -> list[StoredPrivate]:
        """Return the ``limit`` newest lines between ``one`` and ``other`` below
        ``before_id`` (None: the newest), oldest first."""
        check_limit(limit)
        a, b = pair_of(one, other)
        top = 2**63 - 1 if before_id is None else before_id
        rows = self._private_rows(
            f"SELECT {_COLUMNS} FROM private_lines WHERE a = ? AND b = ? AND id < ?"
            " ORDER BY id DESC LIMIT ?",
            (a, b, top, limit),
        )
        return _lines(rows)

    def private_range(
        self, one: str, other: str, after_id: int, before_id: int, limit: int, *, oldest: bool
    ) -> list[StoredPrivate]:
        """Return the oldest (or newest) ``limit`` lines between ``one`` and ``other``
        with ``after_id < id < before_id``, oldest first."""
        check_limit(limit)
        a, b = pair_of(one, other)
        order = "ASC" if oldest else "DESC"
        rows = self._private_rows(
            f"SELECT {_COLUMNS} FROM private_lines WHERE a = ? AND b = ? AND id > ? AND id < ?"
            f" ORDER BY id {order} LIMIT ?",
            (a, b, after_id, before_id, limit),
        )
        if oldest:
            rows.reverse()  # _lines turns newest-first rows round
        return _lines(rows)

    def private_peers(self, key: str) -> list[StoredPrivate]:
        """Return the newest line of each conversation of ``key``."""
        # SQLite takes a bare column's value from the row that max() picked.
        rows = self._private_rows(
            "SELECT a, b, max(id), ts, sender, recipient, text FROM private_lines"
            " WHERE a = :key OR b = :key GROUP BY a, b",
            {"key": key},
        )
        return [StoredPrivate(*row) for row in rows]

    def _private_rows(
        self, sql: str, params: tuple[str | int, ...] | dict[str, str | int]
    ) -> list[Any]:
        try:
            rows: list[Any] = self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _error("cannot read", self._path, exc) from exc
        return rows


def _lines(rows: list[_Row]) -> list[StoredPrivate]:
    """Newest-first rows as records, oldest first."""
    rows.reverse()
    return [StoredPrivate(*row) for row in rows]
