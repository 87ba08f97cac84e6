"""Search in the asker's private lines (issue 21), shared by both stores.

Only the asker's own conversations are read: the query's ``mine`` is the account key
the session logged in with (never a name a client sent), so neither a third person nor
an operator can find a line of a conversation they are not in. ``peer`` narrows the
search to one conversation (``/search in:@NAME``).

Private volumes are small next to rooms' (two people, registered names only), so there
is no index: the asker's lines are read newest first and each is matched with
:func:`~triochat.core.search.holds_all`, the rule the memory store uses for rooms, until
a page is full. SQLite reads them through the ``(a, id)`` and ``(b, id)`` indexes of
``private_lines``; a ``LIKE`` prefilter would be wrong for accents (``cafe`` finds
``café``), so the words are matched in Python. Measured in
``docs/operations.md`` (*Search*).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from triochat.core.names import name_key
from triochat.core.records import SearchHit, StoredMessage, StoredPrivate, pair_of
from triochat.core.search import SearchQuery, holds_all

__all__ = ["PRIVATE_SEARCH_SQL", "private_hits", "private_params"]

# The asker's lines below a cursor, newest first (one conversation when a and b are set).
PRIVATE_SEARCH_SQL: Final = """
    SELECT a, b, id, ts, sender, recipient, text FROM (
        SELECT * FROM private_lines WHERE a = :key AND id < :before
        UNION ALL
        SELECT * FROM private_lines WHERE b = :key AND a <> b AND id < :before
    )
    WHERE (:a IS NULL OR (a = :a AND b = :b))
    ORDER BY id DESC
"""


def private_params(query: SearchQuery) -> dict[str, str | int | None]:
    """The parameters of :data:`PRIVATE_SEARCH_SQL` for ``query`` (``mine`` set)."""
    assert query.mine is not None, "a private search has the asker's key"
    a, b = pair_of(query.mine, query.peer) if query.peer is not None else (None, None)
    before = 2**63 - 1 if query.private_before is None else query.private_before
    return {"key": query.mine, "before": before, "a": a, "b": b}


def private_hits(lines: Iterable[StoredPrivate], query: SearchQuery) -> list[SearchHit]:
    """The first ``query.limit`` of ``lines`` (the asker's, newest first, below the
    cursor) that hold every word (and were said by ``query.sender``, if set)."""
    mine = query.mine
    if mine is None or query.limit <= 0:
        return []
    hits: list[SearchHit] = []
    for line in lines:
        if not holds_all(line.text, query.terms):
            continue
        if query.sender is not None and name_key(line.sender) != query.sender:
            continue
        hits.append(SearchHit(line.id, _as_message(line, mine), private=True))
        if len(hits) >= query.limit:
            break
    return hits


def _as_message(line: StoredPrivate, mine: str) -> StoredMessage:
    """A private line as a hit's message: its room is ``@`` and the other person's name."""
    other = line.b if line.a == mine else line.a
    name = line.sender if name_key(line.sender) == other else line.to
    return StoredMessage(f"@{name}", line.id, line.ts, "say", line.sender, line.text)
