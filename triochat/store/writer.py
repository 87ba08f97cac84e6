"""The async side of a store: every call in one worker thread, in order, commits grouped.

Rules of this module:

* **The room never awaits a disk.** :meth:`StoreWriter.submit` only appends to a queue
  and returns the batch's sequence number; the hub holds the batch's deliveries until
  ``on_committed`` reports that number (or a later one).
* **One thread at a time, in submission order.** Commits, reads (:meth:`StoreWriter.call`)
  and retention run one after another through a ``trio.CapacityLimiter(1)``, in the
  order they were asked for, so a read sees exactly the batches submitted before it.
* **Grouped commits.** While one commit is in the thread, newly submitted batches wait;
  the next commit merges every batch queued back to back into one transaction. Under
  load that is one transaction per disk round trip, whatever the message rate.
* **A failed commit is retried, never dropped.** On :class:`StoreError` the writer
  calls ``on_error``, waits (:data:`RETRY_FIRST_S` doubling to :data:`RETRY_MAX_S`) and
  commits the same merged batch again; the store's ``(room, id)`` uniqueness makes a
  retry of a batch that partly landed harmless. Batches submitted meanwhile queue up.
* **Retention in small steps.** A prune call deletes at most :data:`PRUNE_STEP_ROWS`
  rows; if there is more to do, the next step is queued behind whatever arrived
  meanwhile, so a large first prune never holds commits back for long.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, Generic, TypeVar, TypeVarTuple, assert_never

import trio

from triochat.core.logevents import log_event
from triochat.latency import Latency, LatencyHistogram
from triochat.store.base import Batch, Store, StoreError
from triochat.store.retention import check_retention

__all__ = [
    "PRUNE_EVERY_S",
    "PRUNE_STEP_ROWS",
    "RETRY_FIRST_S",
    "RETRY_MAX_S",
    "StoreWriter",
    "WriterStatistics",
]

RETRY_FIRST_S: Final = 0.5  # first wait after a failed commit: long enough for a blip to pass
RETRY_MAX_S: Final = 30.0  # the doubling's cap: space freed on a full disk is used within 30 s
PRUNE_EVERY_S: Final = 60.0  # retention is in days or message counts; once a minute is plenty
PRUNE_STEP_ROWS: Final = 1000  # rows per prune step (a few ms); commits queued meanwhile go first

log = logging.getLogger(__name__)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


@dataclass(frozen=True, slots=True)
class WriterStatistics:
    """What :meth:`StoreWriter.statistics` reports.

    Attributes:
        submitted: batches submitted so far (the last sequence number handed out).
        committed: batches committed so far (the last sequence number reported).
        commits: transactions that landed (each holds one or more grouped batches).
        messages: chat messages those transactions saved.
        failures: commit attempts that failed (each was retried).
        queued: operations waiting for the worker thread (commits, reads, prune steps).
        commit_seconds: time the landed commits took in the worker thread, in total
            (``commit_seconds / commits`` is the mean commit latency).
        calls: reads (and other calls) run in the worker thread so far.
        commit_latency: the landed commits' durations, in buckets.
    """

    submitted: int
    committed: int
    commits: int
    messages: int
    failures: int
    queued: int
    commit_seconds: float
    calls: int
    commit_latency: Latency


@dataclass(slots=True)
class _Commit:
    batch: Batch
    seq: int


@dataclass(slots=True)
class _Prune:
    pass


class _Call(Generic[T]):
    """A read (or any store function) waiting for its turn in the worker thread."""

    __slots__ = ("abandoned", "done", "error", "fn", "value")

    def __init__(self, fn: Callable[[], T]) -> None:
        self.fn = fn
        self.done = trio.Event()
        self.abandoned = False  # the caller was cancelled while it waited
        self.value: T | None = None
        self.error: BaseException | None = None

    def finish(self, value: T | None, error: BaseException | None) -> None:
        """Record the outcome (the first one only) and wake the caller."""
        if not self.done.is_set():
            self.value, self.error = value, error
            self.done.set()

    def result(self) -> T:
        """Return the value, or raise the error, of a finished call."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]  # None only when T includes None


_Op = _Commit | _Call[Any] | _Prune


def _merge(commits: list[_Commit]) -> Batch:
    """Return one batch holding every commit's rooms and messages, in order."""
    if len(commits) == 1:
        return commits[0].batch
    merged = Batch()
    for commit in commits:
        merged.extend(commit.batch)  # a later batch's dropped rooms take earlier lines too
    return merged


class StoreWriter:
    """Owns a :class:`~triochat.store.base.Store` and runs its calls off the event loop.

    Start :meth:`run` in a nursery (``await nursery.start(writer.run)``), :meth:`submit`
    batches from the hub, :meth:`call` reads, and :meth:`aclose` under a deadline at
    shutdown. Every method is for the trio thread only.
    """

    def __init__(
        self,
        store: Store,
        on_committed: Callable[[int], None],
        on_error: Callable[[StoreError], None] | None = None,
        *,
        retain_days: float | None = None,
        retain_messages: int | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """Wrap ``store``.

        Args:
            store: The store; from now on only this writer may call it.
            on_committed: Called (in the trio thread) after each successful commit with
                the sequence number of the last batch it included.
            on_error: Called with each :class:`StoreError` of a commit or prune (the
                writer also logs it and retries commits on its own).
            retain_days: Prune messages older than this many days (None: keep).
            retain_messages: Prune all but the last this many messages per room
                (None: keep).
            wall_clock: The clock retention compares message timestamps with.

        Raises:
            ValueError: A negative retention limit.
        """
        check_retention(retain_days, retain_messages, None)
        self._store = store
        self._on_committed = on_committed
        self._on_error = on_error
        self._retain_days = retain_days
        self._retain_messages = retain_messages
        self._wall_clock = wall_clock
        self._limiter = trio.CapacityLimiter(1)
        self._queue: deque[_Op] = deque()
        self._wakeup = trio.Event()
        self._submitted = 0  # sequence number of the last submitted batch
        self._committed = 0  # sequence number of the last committed batch
        self._in_flight: list[_Commit] = []  # popped from the queue, not yet committed
        self._prune_pending = False  # a retention pass is queued or under way
        self._pruned = 0  # rows deleted so far by the current retention pass
        self._running = False
        self._stopped = trio.Event()
        self._run_scope: trio.CancelScope | None = None
        self._closing = False
        self._closed = False
        # Counters for statistics(): plain numbers, bumped once per commit or call.
        self._commits = 0
        self._messages = 0
        self._failures = 0
        self._commit_seconds = 0.0
        self._calls = 0
        self._latency = LatencyHistogram()

    @property
    def store(self) -> Store:
        """The store this writer owns (call it only through :meth:`call`)."""
        return self._store

    @property
    def submitted_seq(self) -> int:
        """Sequence number of the last batch submitted (0 if none)."""
        return self._submitted

    @property
    def committed_seq(self) -> int:
        """Sequence number of the last batch committed (0 if none)."""
        return self._committed

    def statistics(self) -> WriterStatistics:
        """The writer's numbers so far (cheap: counters kept as it goes)."""
        return WriterStatistics(
            submitted=self._submitted,
            committed=self._committed,
            commits=self._commits,
            messages=self._messages,
            failures=self._failures,
            queued=len(self._queue),
            commit_seconds=self._commit_seconds,
            calls=self._calls,
            commit_latency=self._latency.snapshot(),
        )

    def submit(self, batch: Batch) -> int:
        """Queue ``batch`` for the next commit; never blocks.

        The batch is the writer's from now on: do not change it (a retry writes it again).

        Returns:
            The batch's sequence number (1, 2, 3, ...): ``on_committed`` reports it, or a
            later one, once the batch is in the store.

        Raises:
            trio.ClosedResourceError: :meth:`aclose` was called.
        """
        if self._closing:
            raise trio.ClosedResourceError("the store is closing; nothing more is saved")
        self._submitted += 1
        self._queue.append(_Commit(batch, self._submitted))
        self._wakeup.set()
        return self._submitted

    async def call(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        """Run ``fn(*args)`` in the worker thread after everything queued before it.

        Use it for the store's reads, e.g. ``await writer.call(store.since, room, 41,
        100)``: the result includes every batch submitted before this call and none
        submitted after it. While commits are failing, calls wait behind them.

        Raises:
            trio.ClosedResourceError: The writer closed before the call could run.
            Exception: Whatever ``fn`` raised, e.g. :class:`StoreError`.
        """
        if self._closing:
            raise trio.ClosedResourceError("the store is closing")
        op: _Call[T] = _Call(partial(fn, *args))
        self._queue.append(op)
        self._wakeup.set()
        try:
            await op.done.wait()
        finally:
            op.abandoned = True  # if it has not started yet, it never will
        return op.result()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Work through the queue until :meth:`aclose` has flushed it (or cancels this task).

        Retention runs every :data:`PRUNE_EVERY_S` seconds, from the start, if a limit
        was given. Store errors never end this task.
        """
        if self._running or self._closed:
            raise RuntimeError("StoreWriter.run is already running, or the writer is closed")
        self._running = True
        try:
            with trio.CancelScope() as self._run_scope:
                async with trio.open_nursery() as nursery:
                    if self._retain_days is not None or self._retain_messages is not None:
                        nursery.start_soon(self._prune_timer)
                    task_status.started()
                    await self._work()
                    nursery.cancel_scope.cancel()
        finally:
            self._running = False
            self._stopped.set()

    async def aclose(self) -> None:
        """Commit what is queued, then close the store.

        Bound it with a cancel scope (``with trio.move_on_after(5): await
        writer.aclose()``): when the deadline passes, whatever is still queued is
        logged as not saved, waiting calls get ``trio.ClosedResourceError``, and the
        store is closed anyway (after the call in the worker thread, if any, ends).
        """
        if self._closed:
            return
        self._closing = True
        self._wakeup.set()
        try:
            if self._running:
                await self._stopped.wait()
            else:
                await self._work()
        finally:
            self._closed = True
            if self._run_scope is not None:
                self._run_scope.cancel()
            self._abandon_queue()
            with trio.CancelScope(shield=True):
                failure = await self._attempt(self._store.close)
            if failure is not None:
                self._report(failure, "closing the store failed")

    async def _work(self) -> None:
        """Run queued operations in order; return once closing with an empty queue."""
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup = trio.Event()
                await self._wakeup.wait()
                continue
            op = self._queue.popleft()
            match op:
                case _Commit():
                    self._in_flight = [op]
                    while self._queue and isinstance(head := self._queue[0], _Commit):
                        self._queue.popleft()
                        self._in_flight.append(head)
                    await self._commit(_merge(self._in_flight), self._in_flight[-1].seq)
                    self._in_flight = []
                case _Call():
                    await self._call(op)
                case _Prune():
                    await self._prune()
                case _:
                    assert_never(op)

    async def _commit(self, batch: Batch, seq: int) -> None:
        """Commit ``batch`` (batches up to ``seq``), retrying with back-off until it lands."""
        delay = RETRY_FIRST_S
        while True:
            started = time.perf_counter()
            failure = await self._attempt(partial(self._store.commit, batch))
            if failure is None:
                took = time.perf_counter() - started
                self._commit_seconds += took
                self._latency.observe(took)
                break
            self._failures += 1
            self._report(failure, f"saving batches up to #{seq} failed; retrying in {delay:g} s")
            del failure  # its traceback holds frames; do not keep them over the wait
            await trio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
        self._committed = seq
        self._commits += 1
        self._messages += len(batch.messages)
        self._on_committed(seq)

    async def _call(self, op: _Call[Any]) -> None:
        """Run a queued call unless its caller has gone, and hand back the outcome."""
        if op.abandoned:
            return
        self._calls += 1
        try:
            value = await trio.to_thread.run_sync(op.fn, limiter=self._limiter)
        except Exception as exc:
            op.finish(None, exc)
        else:
            op.finish(value, None)
        finally:
            op.finish(None, trio.ClosedResourceError("the store writer stopped"))

    async def _prune(self) -> None:
        """Run one retention step; queue the next if there may be more to delete."""
        if self._closing:
            self._prune_pending = False
            return
        step = partial(
            self._store.prune,
            self._wall_clock(),
            self._retain_days,
            self._retain_messages,
            max_rows=PRUNE_STEP_ROWS,
        )
        try:
            deleted = await trio.to_thread.run_sync(step, limiter=self._limiter)
        except StoreError as exc:
            self._report(exc, "retention failed; trying again later")
            deleted = 0
        self._pruned += deleted
        if deleted >= PRUNE_STEP_ROWS:
            self._queue.append(_Prune())  # behind whatever was submitted meanwhile
            return
        if self._pruned:
            log_event(log, "store.pruned", messages=self._pruned)
        self._pruned = 0
        self._prune_pending = False

    async def _prune_timer(self) -> None:
        """Start a retention pass now and every :data:`PRUNE_EVERY_S` seconds."""
        while True:
            if not self._prune_pending and not self._closing:
                self._prune_pending = True
                self._queue.append(_Prune())
                self._wakeup.set()
            await trio.sleep(PRUNE_EVERY_S)

    async def _attempt(self, fn: Callable[[], object]) -> StoreError | None:
        """Run ``fn`` in the worker thread; return its StoreError instead of raising it."""
        try:
            await trio.to_thread.run_sync(fn, limiter=self._limiter)
        except StoreError as exc:
            return exc
        return None

    def _report(self, exc: StoreError, what: str) -> None:
        """Log a store failure and tell the owner."""
        log_event(log, "store.failed", what=what, reason=str(exc))
        if self._on_error is not None:
            self._on_error(exc)

    def _abandon_queue(self) -> None:
        """After close: fail waiting calls, and log the batches that were not saved."""
        lost = list(self._in_flight)
        self._in_flight = []
        while self._queue:
            op = self._queue.popleft()
            if isinstance(op, _Commit):
                lost.append(op)
            elif isinstance(op, _Call):
                op.finish(None, trio.ClosedResourceError("the store closed first"))
        if lost:
            messages = sum(len(commit.batch.messages) for commit in lost)
            log_event(log, "store.unsaved_at_close", batches=len(lost), messages=messages)
