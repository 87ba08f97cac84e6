"""The SQLite schema, as forward migrations (pure data, no I/O).

Rules of this module:

* ``PRAGMA user_version`` is the schema version. ``MIGRATIONS[n]`` takes a database
  from version ``n`` to ``n + 1``; a new database runs them all from 0, so the path
  every old database takes is the path every test database takes too.
* A migration is never edited once released: a change is a new migration, and
  ``tests/test_store_sqlite.py`` opens a database written by hand in the previous
  schema.
* Statements are run one by one inside the store's transaction (``executescript``
  would commit first), so a migration lands whole or not at all.

History:

* v1: rooms (name, topic) and messages keyed by ``(room, id)``.
* v2: ``rooms.last_id``, so a room's ids keep rising after retention deleted its
  messages; filled from the messages, and every room that has messages gets a row.
  An index on ``messages.ts`` for retention by age.
* v3: accounts and moderation. ``accounts`` (salted scrypt hashes, keyed by the name's
  uniqueness key), ``ops`` (operators made with ``/op``), ``bans`` (on a name key or an
  address range, with an optional end) and ``mutes``; ``rooms.topic_locked``.
* v4: private history. ``private_lines`` keyed by the ordered pair of account keys
  ``(a, b)`` and a server-wide id, with the sender's and recipient's names as shown;
  ``private_last`` holds the highest id ever given (retention cannot lower it).
* v5: accounts' own settings: ``notify`` (a ``/notify`` level per account and room) and
  ``seen`` (when each account's last connection left, for ``/mentions``).
* v6: search, the full-text index of the messages (``search_rows``, ``search_index`` and
  the triggers that keep them in step; see :mod:`triochat.store.search`), filled from
  the messages already there.
* v7: the search index rebuilt without its per-line size table (``columnsize = 0``:
  cheaper to write; nothing read it), from the messages; where ``--no-search-index``
  had dropped it, it is built and the opening drops it again.
"""

from __future__ import annotations

from typing import Final

from triochat.store.search import SEARCH_MIGRATION, SEARCH_REBUILD

__all__ = ["MIGRATIONS", "OWN_TABLES", "SCHEMA_VERSION", "foreign_tables"]

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 0 -> 1
    (
        """
        CREATE TABLE rooms (
            name TEXT PRIMARY KEY,
            topic TEXT NOT NULL DEFAULT '',
            topic_by TEXT NOT NULL DEFAULT '',
            topic_ts REAL NOT NULL DEFAULT 0
        )
        """,
        # WITHOUT ROWID: the primary key is the table, so a room's history is one
        # contiguous range of the b-tree and replay reads are range scans.
        """
        CREATE TABLE messages (
            room TEXT NOT NULL,
            id INTEGER NOT NULL,
            ts REAL NOT NULL,
            kind TEXT NOT NULL,
            sender TEXT NOT NULL,
            text TEXT NOT NULL,
            PRIMARY KEY (room, id)
        ) WITHOUT ROWID
        """,
    ),
    # 1 -> 2
    (
        "ALTER TABLE rooms ADD COLUMN last_id INTEGER NOT NULL DEFAULT 0",
        "INSERT OR IGNORE INTO rooms (name) SELECT DISTINCT room FROM messages",
        """
        UPDATE rooms SET last_id = (
            SELECT coalesce(max(id), 0) FROM messages WHERE messages.room = rooms.name
        )
        """,
        "CREATE INDEX messages_by_ts ON messages (ts)",
    ),
    # 2 -> 3
    (
        "ALTER TABLE rooms ADD COLUMN topic_locked INTEGER NOT NULL DEFAULT 0",
        """
        CREATE TABLE accounts (
            key TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            password_hash TEXT NOT NULL,
            created REAL NOT NULL
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE ops (
            key TEXT PRIMARY KEY,
            name TEXT NOT NULL
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE bans (
            target TEXT PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('name', 'address')),
            shown TEXT NOT NULL,
            set_by TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            ts REAL NOT NULL,
            until REAL
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE mutes (
            key TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            set_by TEXT NOT NULL,
            ts REAL NOT NULL,
            until REAL
        ) WITHOUT ROWID
        """,
    ),
    # private history
    (
        # WITHOUT ROWID: a conversation is one contiguous range of the b-tree.
        """
        CREATE TABLE private_lines (
            a TEXT NOT NULL,
            b TEXT NOT NULL,
            id INTEGER NOT NULL,
            ts REAL NOT NULL,
            sender TEXT NOT NULL,
            recipient TEXT NOT NULL,
            text TEXT NOT NULL,
            PRIMARY KEY (a, b, id),
            CHECK (a <= b)
        ) WITHOUT ROWID
        """,
        "CREATE INDEX private_lines_by_a ON private_lines (a, id)",
        "CREATE INDEX private_lines_by_b ON private_lines (b, id)",
        "CREATE INDEX private_lines_by_ts ON private_lines (ts)",
        """
        CREATE TABLE private_last (
            one INTEGER PRIMARY KEY CHECK (one = 1),
            last_id INTEGER NOT NULL
        )
        """,
        "INSERT INTO private_last (one, last_id) VALUES (1, 0)",
    ),
    # v5: accounts' own settings (triochat.store.prefs)
    (
        """
        CREATE TABLE notify (
            key TEXT NOT NULL,
            room TEXT NOT NULL,
            level TEXT NOT NULL CHECK (level IN ('all', 'mentions', 'none')),
            PRIMARY KEY (key, room)
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE seen (
            key TEXT PRIMARY KEY,
            ts REAL NOT NULL
        ) WITHOUT ROWID
        """,
    ),
    # v6, search: the full-text index (self-contained: renumbering it is safe)
    SEARCH_MIGRATION,
    # v7, the search index without its size table (columnsize = 0), rebuilt
    SEARCH_REBUILD,
)

SCHEMA_VERSION: Final = len(MIGRATIONS)  # what this version of triochat writes

OWN_TABLES: Final = frozenset({"rooms", "messages"})  # what every version from v1 has


def foreign_tables(version: int, tables: set[str]) -> list[str] | None:
    """The tables of a database that is not triochat's (None: it is ours, or empty).

    ``version`` is its ``PRAGMA user_version``, ``tables`` its table names. A database
    triochat made has its version set in the transaction that made its tables, so
    tables at version 0, or a version this triochat knows without triochat's tables,
    are another program's. A version above :data:`SCHEMA_VERSION` is left to the
    "written by a newer triochat" refusal (a newer schema's tables are not known here).
    """
    tables = {name for name in tables if not name.startswith("sqlite_")}
    if version == 0 and tables:
        return sorted(tables)
    if 0 < version <= SCHEMA_VERSION and not tables >= OWN_TABLES:
        return sorted(tables)
    return None
