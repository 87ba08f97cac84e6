"""When a commit is made in the event loop instead of the store's writer thread.

At a steady trickle (1000 lines/s from a few senders) nearly every line is its own hub
batch and so its own commit. Through the writer thread each one crossed threads twice:
the queue's wake-up, the GIL handed over and back (the two threads share a CPU), and
``TrioToken.run_sync_soon`` waking the event loop: about 8 context switches and 50-60 us
of CPU per line around a commit that itself costs about 25 us. With ``process``
durability (``synchronous=NORMAL``) a small commit writes to the page cache and never
waits for the disk, so :meth:`StoreWriter.submit` makes it at once, in the loop, when
all of these hold:

* the store says its commits are quick (:class:`CommitsInLoop`: ``power`` durability
  fsyncs every commit, so those always go to the thread);
* the batch is small: at most :data:`LOOP_COMMIT_MAX_MESSAGES` lines (room and
  private ones together) and no dropped room (deleting a room's lines is unbounded
  work);
* the writer thread is idle: everything queued before has been done (so order is
  kept: a read queued before sees exactly the batches submitted before it) and the
  thread is not indexing or checkpointing (it holds the store's lock while it works;
  the loop only tries the lock, never waits for it).

The kill -9 guarantee is the same as the thread's: the batch's output is released
after its ``COMMIT`` returned. What the loop must never do is a checkpoint (an fsync
of the WAL and of the database file): :meth:`CommitsInLoop.commit_in_loop` turns
SQLite's automatic checkpoints off, the thread's next write turns them on again, and
after :data:`CHECKPOINT_EVERY` commits in the loop the writer thread is asked to
checkpoint, so the WAL stays about as small as SQLite's own 1000-page limit keeps it.
A commit that fails in the loop is queued for the thread, which retries and reports
it as usual.
"""

from __future__ import annotations

import threading
import time
from typing import Final, Protocol, runtime_checkable

from triochat.store.base import Batch, StoreError
from triochat.store.writer_index import INDEX_BATCH, Indexes
from triochat.store.writer_ops import Checkpoint, Nudge, Op

__all__ = [
    "CHECKPOINT_EVERY",
    "LOOP_COMMIT_MAX_MESSAGES",
    "CommitsInLoop",
    "LoopCommitter",
    "cheap_enough",
    "checkpoint",
]

LOOP_COMMIT_MAX_MESSAGES: Final = 16  # lines: about 50 us in the loop; bursts' batches are larger
CHECKPOINT_EVERY: Final = 256  # loop commits (about 3 WAL pages each) between checkpoints


@runtime_checkable
class CommitsInLoop(Protocol):
    """A store whose small commits may run in the event loop (:class:`SQLiteStore`)."""

    @property
    def quick_commits(self) -> bool:
        """Whether a commit never waits for the disk (``synchronous=NORMAL``)."""
        ...

    def commit_in_loop(self, batch: Batch) -> None:
        """Commit without checkpointing (raises :class:`StoreError`)."""
        ...

    def checkpoint(self) -> None:
        """Checkpoint the WAL, automatic checkpoints on again (writer thread only)."""
        ...


def cheap_enough(batch: Batch) -> bool:
    """Whether ``batch`` is small enough to commit in the event loop."""
    lines = len(batch.messages) + len(batch.private)
    return lines <= LOOP_COMMIT_MAX_MESSAGES and not batch.dropped_rooms


def checkpoint(store: object) -> StoreError | None:
    """The writer thread's :class:`Checkpoint` (``store`` one that
    :class:`CommitsInLoop`); a failure is returned to report (the thread's next commit
    checkpoints by itself)."""
    assert isinstance(store, CommitsInLoop)
    try:
        store.checkpoint()
    except StoreError as exc:
        return exc
    return None


class LoopCommitter:
    """The event loop's side of it, for :class:`StoreWriter` (trio thread only)."""

    def __init__(self, store: CommitsInLoop, busy: threading.Lock, indexes: Indexes | None):
        """``busy`` is the lock the writer thread holds whenever it uses the store."""
        self._store = store
        self._busy = busy
        self._indexes = indexes
        self.commits = 0  # commits made in the loop so far
        self._unchecked = 0  # of them, since the last checkpoint was asked for

    @classmethod
    def of(
        cls, store: object, busy: threading.Lock, indexes: Indexes | None
    ) -> LoopCommitter | None:
        """One for ``store`` if its commits may run in the loop (else None)."""
        if isinstance(store, CommitsInLoop) and store.quick_commits:
            return cls(store, busy, indexes)
        return None

    def commit(self, batch: Batch) -> tuple[float, list[Op]] | None:
        """Commit ``batch`` now if it is cheap and the thread does not hold the store.

        The caller checks first that the thread has done everything queued before.

        Returns:
            None if not committed (the caller queues it for the thread: busy, too large,
            or it failed, and the thread retries and reports it); else the commit's
            duration and the operations to queue for the thread: a :class:`Nudge`
            when lines start to wait for the index (it sleeps on its queue; it indexes
            them within ``INDEX_DELAY_S``) and when a batch of them is due, a
            :class:`Checkpoint` every :data:`CHECKPOINT_EVERY` commits.
        """
        if not cheap_enough(batch) or not self._busy.acquire(blocking=False):
            return None
        indexes = self._indexes
        before = 0 if indexes is None else indexes.unindexed()
        try:
            started = time.perf_counter()
            self._store.commit_in_loop(batch)
            took = time.perf_counter() - started
        except StoreError:
            return None
        finally:
            self._busy.release()
        self.commits += 1
        wake: list[Op] = []
        if indexes is not None:
            after = indexes.unindexed()
            if (before == 0 < after) or (before < INDEX_BATCH <= after):
                wake.append(Nudge())
        self._unchecked += 1
        if self._unchecked >= CHECKPOINT_EVERY:
            self._unchecked = 0
            wake.append(Checkpoint())
        return took, wake
