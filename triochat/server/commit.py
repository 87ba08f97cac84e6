"""The commit gate: a batch's output goes out only once its writes are in the store.

The hub ends each batch with :meth:`CommitGate.end_batch`: the batch's writes are
handed to the store's writer and each connection's output is held at a *mark* (how
much of it this batch put there) until the writer reports the commit; meanwhile the hub
goes on with the next batches, whose writes the writer groups into the next
transaction. So after a crash every line any client received is in the store, and the
next id is larger than any id a client saw, while the event loop never waits for a
disk. Output of a batch with nothing to store waits behind the last batch still in
flight, so order is kept. Beyond :data:`MAX_IN_FLIGHT` uncommitted batches the hub
waits (its inbound channel fills, and TCP pushes back).

If the store fails, held output is released, members are told once that history is
not being saved, chat goes on, and the writer keeps retrying.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

import trio

from triochat.core.logevents import log_event
from triochat.core.records import Batch
from triochat.latency import Latency, LatencyHistogram
from triochat.server.connection import Connection
from triochat.store import StoreError

__all__ = ["MAX_IN_FLIGHT", "STORE_DOWN", "STORE_UP", "CommitGate", "GateStatistics", "Writer"]

log = logging.getLogger(__name__)

MAX_IN_FLIGHT: Final = 4  # uncommitted batches before the hub waits: bounds held output
STORE_DOWN: Final = "history is not being saved right now (the server cannot write its database)"
STORE_UP: Final = "history is being saved again"


class Writer(Protocol):
    """What the gate needs of a store writer (threaded or inline)."""

    @property
    def submitted_seq(self) -> int: ...
    @property
    def committed_seq(self) -> int: ...
    def submit(self, batch: Batch) -> int: ...


@dataclass(frozen=True, slots=True)
class GateStatistics:
    """The commit gate now (see :meth:`CommitGate.statistics`)."""

    store_down: bool  # commits are failing: output is not held, members were told
    held_batches: int  # batches whose output waits for their commit
    waits: int  # times the hub waited because MAX_IN_FLIGHT batches were uncommitted
    fanout_latency: Latency  # a batch's first line taken to its output released, per batch


class CommitGate:
    """Holds each batch's output until its commit; see the module docstring."""

    def __init__(self, notice_all: Callable[[str, str], None], flush_soon: Callable[[], None]):
        """``notice_all(code, text)`` tells every member; ``flush_soon`` asks for a flush."""
        self._notice_all = notice_all
        self._flush_soon = flush_soon
        self.writer: Writer | None = None  # set before the first batch
        self.store_down = False
        # Batches submitted and not yet committed, with the output marks they release.
        self._held: deque[tuple[int, list[tuple[Connection, int]], float]] = deque()
        self._changed: trio.Event | None = None
        self._waits = 0
        self._latency = LatencyHistogram()

    async def end_batch(
        self, batch: Batch, flush_list: list[Connection], started: float | None = None
    ) -> None:
        """Submit ``batch``; hold the output of ``flush_list``'s connections until it is in.

        ``started`` (``time.perf_counter()``) is when the batch's first line was taken:
        its release is counted in the fan-out latency from then (default: now).
        """
        writer = self.writer
        assert writer is not None
        since = time.perf_counter() if started is None else started
        seq = writer.submit(batch) if batch else 0
        if not self._held and (seq <= writer.committed_seq or self.store_down):
            # Nothing to wait for: no earlier batch is held, and this one stores nothing,
            # or is in already (the memory store commits at submit), or the store is
            # down (members were told). The usual case in memory: no marks to keep.
            if flush_list:
                for conn in flush_list:
                    conn.flush()  # up to its mark now
                flush_list.clear()
                self._latency.observe(time.perf_counter() - since)
        else:
            marks = [(conn, conn.outbox.mark()) for conn in flush_list]  # as Connection.mark()
            flush_list.clear()
            if batch:
                self._held.append((seq, marks, since))
                self._release_committed()
            else:
                self._held[-1][1].extend(marks)  # behind the last batch still in flight
        while writer.submitted_seq - writer.committed_seq > MAX_IN_FLIGHT and not self.store_down:
            self._waits += 1
            await self._wait_for_change()

    async def _wait_for_change(self) -> None:
        self._changed = trio.Event()
        await self._changed.wait()

    def _release_committed(self) -> None:
        assert self.writer is not None
        held, seq = self._held, self.writer.committed_seq
        while held and held[0][0] <= seq:
            _, marks, since = held.popleft()
            self._release(marks, since)

    def committed(self, seq: int) -> None:
        """The writer's callback: batches up to ``seq`` are in the database."""
        held = self._held
        while held and held[0][0] <= seq:
            _, marks, since = held.popleft()
            self._release(marks, since)
        if self.store_down:
            self.store_down = False
            log_event(log, "store.commit_back")
            self._notice_all("history-saved", STORE_UP)
            self._flush_soon()
        if self._changed is not None:
            self._changed.set()

    def failed(self, exc: StoreError) -> None:
        """The writer's callback: a commit failed (it retries by itself).

        Held output is released: chat goes on, and members are told that history is
        not being saved until a commit succeeds again.
        """
        if not self.store_down:
            self.store_down = True
            log_event(log, "store.commit_failed", reason=str(exc))
            while self._held:
                _, marks, since = self._held.popleft()
                self._release(marks, since)
            self._notice_all("history-unsaved", STORE_DOWN)
            self._flush_soon()
        if self._changed is not None:
            self._changed.set()

    def statistics(self) -> GateStatistics:
        """The gate's numbers now (cheap: counters and a copy of the buckets)."""
        return GateStatistics(
            self.store_down, len(self._held), self._waits, self._latency.snapshot()
        )

    def _release(self, marks: list[tuple[Connection, int]], since: float) -> None:
        """Release ``marks`` and count the batch's fan-out latency (if it had output)."""
        if marks:
            _release(marks)
            self._latency.observe(time.perf_counter() - since)


def _release(marks: list[tuple[Connection, int]]) -> None:
    """Send each connection its output up to the mark taken at its batch's end."""
    for conn, mark in marks:
        conn.flush(mark)
