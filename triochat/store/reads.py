"""What a replay reads: one function from a :class:`~triochat.core.model.Query` to the
store's records, shared by the server's history reader and the tests' fake links.

An IRC ``CHATHISTORY`` query carries its own plan of reads. A room's query reads the
room (``since`` for a resume, ``before`` for scrollback); a private one reads only the
asker's own lines, by the account key the state put in the query (never a name the
client sent): every conversation of the asker on a resume, or the asker's
conversation with one account for ``/history @NAME``.
"""

from __future__ import annotations

from collections.abc import Sequence

from triochat.core.model import Query
from triochat.store.base import Store, StoredMessage, StoredPrivate

__all__ = ["read_replay"]


def read_replay(store: Store, query: Query) -> tuple[Sequence[StoredMessage | StoredPrivate], int]:
    """The records of ``query`` (oldest first) and how many older ones were skipped."""
    if query.plan is not None:  # an IRC CHATHISTORY request: its own reads, in one call
        return query.plan.read(store), 0
    if query.private is not None:
        mine, other = query.private
        if not other:
            return store.private_since(mine, query.after or 0, query.limit, query.upto)
        before = query.before if query.before is not None else (query.upto or 0) + 1
        return store.private_between(mine, other, before, query.limit), 0
    if query.after is not None:
        return store.since(query.room, query.after, query.limit, query.upto)
    before = query.before if query.before is not None else (query.upto or 0) + 1
    return store.before(query.room, before, query.limit), 0
