"""``/mentions`` from the store: the search index finds, the mention rule confirms.

The index (:meth:`~triochat.store.base.Store.search`: SQLite's FTS5 index, or the
memory store's scan) finds the lines of the asker's rooms that hold the words of its
name, newest first, a page at a time; :func:`triochat.core.mentions.names` confirms
each (``alice`` found in "alice.smith" is not a mention). Lines said by the asker or
older than its last-seen time are left out.

The store orders lines by arrival, not by time: a page holding a line older than the
last-seen time is read to its end, and the next page is not read. At most
:data:`MAX_CANDIDATES` lines are confirmed, so a name that is a common word costs a
bounded time in the store's thread (the memory store's runs in the event loop: its
scan of 100,000 lines where every line holds the name but none names the asker took
0.8 s on a 2-vCPU machine, two scans where a ``/search`` page makes one).
"""

from __future__ import annotations

from typing import Final

from triochat.core.events import MentionInfo
from triochat.core.mentions import MentionQuery, names
from triochat.core.search import SearchQuery, words
from triochat.store.base import Store
from triochat.store.search import SearchOff

__all__ = ["MAX_CANDIDATES", "MENTION_PAGE", "find_mentions"]

MENTION_PAGE: Final = 200  # candidate lines read per index lookup
MAX_CANDIDATES: Final = 2000  # candidate lines one /mentions confirms at most (time bound)


def find_mentions(store: Store, ask: MentionQuery) -> list[MentionInfo] | None:
    """The lines ``ask`` finds, newest first; None if the store has no search index."""
    terms = words(ask.name)
    if not terms or not ask.rooms or ask.limit <= 0:
        return [] if terms else None
    me = ask.name.casefold()
    found: list[MentionInfo] = []
    before: int | None = None
    read = 0
    while read < MAX_CANDIDATES:
        # A first page, then the rest at once: the memory store scans every line of the
        # rooms per call, so at most two calls (SQLite reads only what it returns).
        page = (MENTION_PAGE if before is None else MAX_CANDIDATES) - read
        try:
            hits = store.search(SearchQuery(terms, ask.rooms, None, before, page))
        except SearchOff:
            return None
        read += len(hits)
        older = False
        for hit in hits:
            line = hit.message
            if line.ts <= ask.since:
                older = True
            elif line.sender.casefold() != me and names(line.text, ask.name):
                found.append(MentionInfo(line.room, line.id, line.ts, line.sender, line.text))
        if older or len(hits) < page or len(found) >= ask.limit:
            break
        before = hits[-1].seq
    found.sort(key=lambda m: (m.ts, m.room, m.id), reverse=True)
    return found[: ask.limit]
