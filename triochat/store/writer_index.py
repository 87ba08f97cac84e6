"""When the store's writer thread indexes committed lines for search.

A store with a search index to keep (:class:`Indexes`: the SQLite store, see
:mod:`triochat.store.search_backlog`) indexes its lines after their commit, in the
writer thread, many per transaction. :meth:`IndexPacer.next_op` is where that thread
waits for its next operation, and indexes in between:

* once :data:`INDEX_BATCH` lines wait, or the oldest has waited :data:`INDEX_DELAY_S`;
* at most :data:`INDEX_CHUNK` lines a transaction (a few milliseconds), and a queued
  operation (a commit, a read) goes first while fewer than that wait, so a line's
  commit waits for at most one chunk;
* after a failure (a full disk), not again for :data:`INDEX_RETRY_S`; the lines stay
  waiting, and a search indexes them itself (or says it cannot).

Nothing here decides what a search finds: a search indexes whatever still waits before
it reads, so the pace only moves work between transactions.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import Final, Protocol, runtime_checkable

from triochat.store.base import StoreError
from triochat.store.writer_ops import Op

__all__ = ["INDEX_BATCH", "INDEX_CHUNK", "INDEX_DELAY_S", "INDEX_RETRY_S", "IndexPacer", "Indexes"]

INDEX_BATCH: Final = 100  # lines that make indexing due (about 10 us a line at this size)
INDEX_DELAY_S: Final = 0.5  # or the oldest waiting line's age
INDEX_CHUNK: Final = 1000  # lines per indexing transaction at most (a few ms)
INDEX_RETRY_S: Final = 5.0  # after a failed indexing transaction


@runtime_checkable
class Indexes(Protocol):
    """A store that indexes committed lines later (:class:`~triochat.store.SQLiteStore`)."""

    def unindexed(self) -> int:
        """How many committed lines wait to be indexed."""
        ...

    def index_some(self, max_lines: int | None = None) -> int:
        """Index up to ``max_lines`` of them (raises :class:`StoreError`)."""
        ...


class IndexPacer:
    """Takes the writer thread's next operation, indexing when it is due (thread only)."""

    def __init__(
        self,
        store: Indexes,
        on_error: Callable[[StoreError], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._on_error = on_error  # called in the writer thread
        self._clock = clock
        self._since: float | None = None  # when lines were first seen waiting
        self._retry_at = 0.0

    def next_op(self, inbox: queue.SimpleQueue[Op]) -> Op:
        """The next operation off ``inbox``, indexing while it is due."""
        store = self._store
        while True:
            waiting = store.unindexed()
            if not waiting:
                self._since = None
                return inbox.get()
            now = self._clock()
            if self._since is None:
                self._since = now
            if now < self._retry_at:
                wait = self._retry_at - now
            elif waiting >= INDEX_BATCH:
                wait = 0.0
            else:
                wait = self._since + INDEX_DELAY_S - now
            if wait > 0 or (waiting < INDEX_CHUNK and not inbox.empty()):
                try:
                    return inbox.get(timeout=wait) if wait > 0 else inbox.get_nowait()
                except queue.Empty:
                    continue
            self._index()

    def _index(self) -> None:
        try:
            self._store.index_some(INDEX_CHUNK)
        except StoreError as exc:
            self._retry_at = self._clock() + INDEX_RETRY_S
            self._on_error(exc)
            return
        if not self._store.unindexed():
            self._since = None
