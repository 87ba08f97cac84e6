"""The memory store's writer: the :class:`~triochat.store.writer.StoreWriter` interface,
run in the event loop.

A memory store cannot fail and a commit takes microseconds, so a worker thread would
only add a hop per batch. :class:`InlineWriter` commits at :meth:`~InlineWriter.submit`,
runs reads at once, and prunes on a timer like the threaded writer; the hub uses either
through the same methods and never asks which one it has.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar, TypeVarTuple

import trio

from triochat.core.records import Batch
from triochat.latency import LatencyHistogram
from triochat.store.base import Store
from triochat.store.writer import PRUNE_EVERY_S, PRUNE_STEP_ROWS, WriterStatistics

__all__ = ["InlineWriter"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class InlineWriter:
    """Commits and reads in the event loop; see the module docstring."""

    def __init__(
        self,
        store: Store,
        on_committed: Callable[[int], None],
        *,
        retain_days: float | None = None,
        retain_messages: int | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._on_committed = on_committed
        self._retain_days = retain_days
        self._retain_messages = retain_messages
        self._wall_clock = wall_clock
        self._seq = 0
        self._closed = False
        self._pruned = 0
        self._calls = 0
        self._messages = 0
        self._commit_seconds = 0.0
        self._latency = LatencyHistogram()

    @property
    def store(self) -> Store:
        return self._store

    @property
    def submitted_seq(self) -> int:
        return self._seq

    @property
    def committed_seq(self) -> int:
        return self._seq

    def statistics(self) -> WriterStatistics:
        """The same numbers as :meth:`StoreWriter.statistics` (nothing ever queues or fails)."""
        return WriterStatistics(
            submitted=self._seq,
            committed=self._seq,
            commits=self._seq,
            messages=self._messages,
            failures=0,
            queued=0,
            commit_seconds=self._commit_seconds,
            calls=self._calls,
            commit_latency=self._latency.snapshot(),
        )

    def submit(self, batch: Batch) -> int:
        """Commit ``batch`` now; ``on_committed`` is called before this returns."""
        if self._closed:
            raise trio.ClosedResourceError("the store is closing; nothing more is saved")
        self._seq += 1
        started = time.perf_counter()
        self._store.commit(batch)
        took = time.perf_counter() - started
        self._commit_seconds += took
        self._latency.observe(took)
        self._messages += len(batch.messages)
        self._on_committed(self._seq)
        return self._seq

    async def call(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        """Run a read now (it sees every batch submitted before it)."""
        if self._closed:
            raise trio.ClosedResourceError("the store is closing")
        self._calls += 1
        return fn(*args)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Prune on a timer while retention is set (RAM is finite), until cancelled."""
        task_status.started()
        if self._retain_days is None and self._retain_messages is None:
            return
        while not self._closed:
            await trio.sleep(PRUNE_EVERY_S)
            self._pruned += self._store.prune(
                self._wall_clock(),
                self._retain_days,
                self._retain_messages,
                max_rows=PRUNE_STEP_ROWS,
            )

    async def aclose(self) -> None:
        """Close the store; nothing is pending."""
        if not self._closed:
            self._closed = True
            self._store.close()
