"""A page of ``/search`` hits from two lists: room lines and the asker's private lines.

See :mod:`triochat.core.search`: each list has its own order of arrival, the page is
their merge by time, and the next page's cursor holds the last position shown in each.
No I/O.
"""

from __future__ import annotations

from triochat.core.records import SearchHit
from triochat.core.search import SearchQuery, pack_position

__all__ = ["merge_hits", "next_position"]


def merge_hits(rooms: list[SearchHit], private: list[SearchHit], limit: int) -> list[SearchHit]:
    """The newest ``limit`` of two lists, each newest first in its own order, by time.

    Each list is taken in its own order (a prefix of each), so the next page's cursor,
    the last position shown in each, leaves out nothing and repeats nothing."""
    out: list[SearchHit] = []
    i = j = 0
    while len(out) < limit and (i < len(rooms) or j < len(private)):
        if j >= len(private) or (i < len(rooms) and rooms[i].message.ts >= private[j].message.ts):
            out.append(rooms[i])
            i += 1
        else:
            out.append(private[j])
            j += 1
    return out


def next_position(query: SearchQuery | None, page: list[SearchHit]) -> int:
    """The cursor of the page after ``page`` (the last position shown in each list)."""
    room = None if query is None else query.before
    private = None if query is None else query.private_before
    for hit in page:
        if hit.private:
            private = hit.seq
        else:
            room = hit.seq
    return pack_position(room, private)
