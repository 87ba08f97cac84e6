"""Search in the SQLite store: the full-text index's schema and its one query.

The index is an FTS5 table without content of its own (``content=''``): it holds
only the words, and the line itself is read from ``messages``. ``messages`` has no
integer rowid (it is keyed by ``(room, id)``), so ``search_rows`` gives each indexed
line a ``docid``, in the order lines arrive; the index's rowid is that docid, and a
search reads docids downwards (newest first) and pages by them.

They are kept in step with ``messages``:

* **Inserts** are indexed after their commit, by the writer thread, many lines per
  transaction (:mod:`triochat.store.search_backlog`); a search indexes what is still
  waiting before it reads, so it finds every committed line. Inside the commit, as
  two statements per commit, the index cost a one-line commit about 4x its CPU: FTS5
  pays a fixed cost per transaction (a new segment and its bookkeeping), whatever the
  ``detail`` or merge settings. A trigger (one statement per row) was worse still:
  FTS5 writes its pending words out at every statement's end (measured: 45,000
  against 300,000 messages per CPU second).
* **Deletes** (retention, ``/droproom``) are taken out by a trigger (a contentless
  FTS5 table is told the words it held, from the deleted row): whatever deletes
  messages, the index follows. Deletes run in retention's bounded chunks, off the
  chat's path.

The migration that makes them indexes what a database already holds.

``unicode61`` (with accents removed) rather than ``trigram``: chat is searched for
words, trigram indexes three times the tokens (a larger index and slower inserts, on
the store writer's path) and finds fragments of words nobody asked for.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Final

from triochat.core.names import name_key
from triochat.core.records import SearchHit, StoredMessage, StoredPrivate
from triochat.core.search import SearchQuery, fts_match
from triochat.core.search_pages import merge_hits
from triochat.store.base import StoreError
from triochat.store.private_search import PRIVATE_SEARCH_SQL, private_hits, private_params

__all__ = [
    "SEARCH_AUTOMERGE",
    "SEARCH_MIGRATION",
    "SEARCH_REBUILD",
    "SearchHit",
    "SearchOff",
    "SearchQuery",
    "keep_search_index",
    "search",
]

SEARCH_MIGRATION: Final[tuple[str, ...]] = (
    """
    CREATE TABLE search_rows (
        docid INTEGER PRIMARY KEY,
        room TEXT NOT NULL,
        id INTEGER NOT NULL,
        UNIQUE (room, id)
    )
    """,
    """
    CREATE VIRTUAL TABLE search_index USING fts5(
        text, content = '', tokenize = 'unicode61 remove_diacritics 2'
    )
    """,
    # What the database holds already, oldest first, so docids follow arrival.
    "INSERT INTO search_rows (room, id) SELECT room, id FROM messages ORDER BY ts, room, id",
    """
    INSERT INTO search_index (rowid, text)
    SELECT r.docid, m.text FROM search_rows r JOIN messages m ON m.room = r.room AND m.id = r.id
    """,
    """
    CREATE TRIGGER messages_unindexed AFTER DELETE ON messages BEGIN
        INSERT INTO search_index (search_index, rowid, text)
            SELECT 'delete', docid, old.text FROM search_rows
            WHERE room = old.room AND id = old.id;
        DELETE FROM search_rows WHERE room = old.room AND id = old.id;
    END
    """,
)

_SEARCH: Final = """
    SELECT r.docid, m.room, m.id, m.ts, m.kind, m.sender, m.text
    FROM search_index s
    JOIN search_rows r ON r.docid = s.rowid
    JOIN messages m ON m.room = r.room AND m.id = r.id
    WHERE search_index MATCH :match AND s.rowid < :before
      AND (:rooms IS NULL OR r.room IN (SELECT value FROM json_each(:rooms)))
      AND (:sender IS NULL OR triochat_name_key(m.sender) = :sender)
    ORDER BY s.rowid DESC
    LIMIT :limit
"""


_SEARCH_TABLES: Final[tuple[str, ...]] = (
    """
    CREATE TABLE search_rows (
        docid INTEGER PRIMARY KEY,
        room TEXT NOT NULL,
        id INTEGER NOT NULL,
        UNIQUE (room, id)
    )
    """,
    # columnsize = 0: no per-line size table (only ranking reads it; hits come in
    # docid order), one B-tree insert less per line: about 20 % of the indexing CPU.
    """
    CREATE VIRTUAL TABLE search_index USING fts5(
        text, content = '', columnsize = 0, tokenize = 'unicode61 remove_diacritics 2'
    )
    """,
    "INSERT INTO search_rows (room, id) SELECT room, id FROM messages ORDER BY ts, room, id",
    """
    INSERT INTO search_index (rowid, text)
    SELECT r.docid, m.text FROM search_rows r JOIN messages m ON m.room = r.room AND m.id = r.id
    """,
    """
    CREATE TRIGGER messages_unindexed AFTER DELETE ON messages BEGIN
        INSERT INTO search_index (search_index, rowid, text)
            SELECT 'delete', docid, old.text FROM search_rows
            WHERE room = old.room AND id = old.id;
        DELETE FROM search_rows WHERE room = old.room AND id = old.id;
    END
    """,
)

# v7: the index again, without the size table (columnsize = 0), from what is stored
# (also where --no-search-index had dropped it: the opening drops it again if asked).
SEARCH_REBUILD: Final[tuple[str, ...]] = (
    "DROP TRIGGER IF EXISTS messages_unindexed",
    "DROP TABLE IF EXISTS search_index",
    "DROP TABLE IF EXISTS search_rows",
    *_SEARCH_TABLES,
)


# FTS5 writes each indexing transaction's words as a new segment and merges segments
# as they pile up: by default once 4 of a level wait, so a line's words are rewritten
# about log4(lines) times. At 16 they are rewritten half as often: indexing a burst
# (1,000 lines a transaction on top of 20,000) cost 2.1-3.3 us a line in FTS5 instead
# of 4.5-5.1. The price is at most 15 segments a level instead of 3 for a search to
# look a word up in (a b-tree seek each): searches are few and read newest first.
SEARCH_AUTOMERGE: Final = 16


class SearchOff(StoreError):
    """The server runs with ``--no-search-index``: there is no index to search."""


def keep_search_index(conn: sqlite3.Connection, keep: bool) -> None:
    """Drop the index (``keep`` False: ``--no-search-index``), or build it if it was
    dropped (indexing every stored line again), inside the opening transaction."""
    (there,) = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'search_rows'"
    ).fetchone()
    if keep and not there:
        for statement in _SEARCH_TABLES:  # the current schema's (v7)
            conn.execute(statement)
    if keep:  # FTS5 keeps it in the index's own config table; setting it again is cheap
        conn.execute(
            "INSERT INTO search_index (search_index, rank) VALUES ('automerge', ?)",
            (SEARCH_AUTOMERGE,),
        )
    elif there:
        conn.execute("DROP TRIGGER messages_unindexed")
        conn.execute("DROP TABLE search_index")
        conn.execute("DROP TABLE search_rows")


def search(conn: sqlite3.Connection, query: SearchQuery) -> list[SearchHit]:
    """The lines ``query`` finds, newest first (see :class:`SearchQuery`)."""
    if not query.terms or query.limit <= 0:
        return []
    mine: list[SearchHit] = []
    if query.mine is not None:  # the asker's own private lines: see private_search
        lines = conn.execute(PRIVATE_SEARCH_SQL, private_params(query))
        mine = private_hits((StoredPrivate(*line) for line in lines), query)
    if query.rooms == ():
        return mine
    conn.create_function("triochat_name_key", 1, name_key, deterministic=True)
    params = {
        "match": fts_match(query.terms),
        "before": 2**63 - 1 if query.before is None else query.before,
        "rooms": None if query.rooms is None else json.dumps(list(query.rooms)),
        "sender": query.sender,
        "limit": query.limit,
    }
    rows = conn.execute(_SEARCH, params).fetchall()
    found = [SearchHit(docid, StoredMessage(*rest)) for docid, *rest in rows]
    return merge_hits(found, mine, query.limit)
