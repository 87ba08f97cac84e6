"""The async side of a store: one long-lived thread owns it, commits are grouped.

Rules of this module:

* **The room never awaits a disk.** :meth:`StoreWriter.submit` only puts the batch on
  the writer thread's queue and returns its sequence number; the hub holds the batch's
  deliveries until ``on_committed`` reports that number (or a later one).
* **One thread owns the store.** :meth:`StoreWriter.run` starts a dedicated thread that
  makes every store call (commits, reads through :meth:`StoreWriter.call`, retention,
  the final close) in the order they were queued, so a read sees exactly the batches
  submitted before it. There is no thread hop per commit: the thread sleeps on its
  queue only when there is nothing to do, and reports back to the event loop with
  ``TrioToken.run_sync_soon`` (one wake-up per commit, none per message).
* **Group commit, never on a timer.** When a commit ends the thread takes every batch
  queued back to back behind it and commits them as ONE transaction at once: an idle
  server commits a lone line immediately, a busy one commits one group per disk round
  trip, whatever the message rate.
* **A failed commit is retried, never dropped.** On :class:`StoreError` the thread
  reports it (``on_error``), waits (:data:`RETRY_FIRST_S` doubling to
  :data:`RETRY_MAX_S`, timed by the event loop) and commits the same merged batch
  again; the store's ``(room, id)`` uniqueness makes a retry of a batch that partly
  landed harmless. Batches submitted meanwhile queue up behind it.
* **Search indexing in between** (a store that :class:`Indexes`): committed lines are
  indexed when the thread would wait, many per transaction (``writer_index``).
* **Retention in small steps.** A prune call deletes at most :data:`PRUNE_STEP_ROWS`
  rows; if there is more to do, the next step is queued behind whatever arrived
  meanwhile, so a large first prune never holds commits back for long.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, TypeVar, TypeVarTuple

import trio

from triochat.core.logevents import log_event
from triochat.latency import Latency, LatencyHistogram
from triochat.store.base import Batch, Store, StoreError
from triochat.store.retention import check_retention
from triochat.store.writer_index import Indexes, IndexPacer
from triochat.store.writer_ops import Call, Commit, Op, Prune, Stop, merge

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
        queued: operations waiting for the writer thread (commits, reads, prune steps).
        commit_seconds: time the landed commits took in the writer thread, in total
            (``commit_seconds / commits`` is the mean commit latency).
        calls: reads (and other calls) run in the writer thread so far.
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


class StoreWriter:
    """Owns a :class:`~triochat.store.base.Store` and runs its calls in a thread of its own.

    Start :meth:`run` in a nursery (``await nursery.start(writer.run)``), :meth:`submit`
    batches from the hub, :meth:`call` reads, and :meth:`aclose` under a deadline at
    shutdown. Every method is for the trio thread only; the store is called from the
    writer thread only (methods named ``_thread_*`` run there).
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
            store: The store; from now on only this writer's thread may call it.
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
        # Trio -> thread: the operations, in order. Thread -> trio: run_sync_soon.
        self._inbox: queue.SimpleQueue[Op] = queue.SimpleQueue()
        self._pacer = IndexPacer(store, self._index_failed) if isinstance(store, Indexes) else None
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._retry = threading.Event()  # set by trio when a failed commit may try again
        self._abandoned = False  # the close deadline passed: the thread skips what is left
        self._thread_done = trio.Event()  # the thread closed the store and ended
        self._crash: BaseException | None = None  # a bug in the thread (not a StoreError)
        self._nursery: trio.Nursery | None = None  # where retry back-offs sleep
        self._retry_pending: float | None = None  # a back-off no nursery could start yet
        self._submitted = 0  # sequence number of the last submitted batch
        self._committed = 0  # sequence number of the last committed batch
        self._uncommitted: deque[Commit] = deque()  # submitted, not yet reported committed
        self._waiting: set[Call[Any]] = set()  # calls whose callers wait
        self._prune_pending = False  # a retention pass is queued or under way
        self._pruned = 0  # rows deleted so far by the current retention pass
        self._running = False
        self._stopped = trio.Event()
        self._run_scope: trio.CancelScope | None = None
        self._closing = False
        self._closed = False
        # Counters for statistics(): plain numbers, bumped once per commit or call. The
        # thread writes only _taken and _calls; everything else is the trio thread's.
        self._queued_total = 0  # operations put on the queue
        self._taken = 0  # operations the thread has taken off it
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
            queued=self._queued_total - self._taken,
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
        op = Commit(batch, self._submitted)
        self._uncommitted.append(op)
        self._put(op)
        return self._submitted

    async def call(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        """Run ``fn(*args)`` in the writer thread after everything queued before it.

        Use it for the store's reads, e.g. ``await writer.call(store.since, room, 41,
        100)``: the result includes every batch submitted before this call and none
        submitted after it. While commits are failing, calls wait behind them.

        Raises:
            trio.ClosedResourceError: The writer closed before the call could run.
            Exception: Whatever ``fn`` raised, e.g. :class:`StoreError`.
        """
        if self._closing:
            raise trio.ClosedResourceError("the store is closing")
        op: Call[T] = Call(partial(fn, *args))
        self._waiting.add(op)
        self._put(op)
        try:
            await op.done.wait()
        finally:
            op.abandoned = True  # if it has not started yet, it never will
            self._waiting.discard(op)
        return op.result()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the writer thread; return once :meth:`aclose` has flushed the queue.

        Retention runs every :data:`PRUNE_EVERY_S` seconds, from the start, if a limit
        was given. Store errors never end this task; a bug in the thread does (raised).
        """
        if self._running or self._closed:
            raise RuntimeError("StoreWriter.run is already running, or the writer is closed")
        self._running = True
        try:
            with trio.CancelScope() as self._run_scope:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    self._start_thread()
                    if self._retain_days is not None or self._retain_messages is not None:
                        nursery.start_soon(self._prune_timer)
                    task_status.started()
                    await self._thread_done.wait()
                    nursery.cancel_scope.cancel()
            if self._crash is not None:
                raise self._crash
        finally:
            self._nursery = None
            self._running = False
            self._stopped.set()

    async def aclose(self) -> None:
        """Commit what is queued, then close the store (in the writer thread).

        Bound it with a cancel scope (``with trio.move_on_after(5): await
        writer.aclose()``): when the deadline passes, whatever is still queued is
        logged as not saved, waiting calls get ``trio.ClosedResourceError``, and the
        store is closed anyway (after the call in the writer thread, if any, ends).
        """
        if self._closed:
            return
        self._closing = True
        try:
            self._start_thread()  # a writer whose run() never started still flushes
            self._put(Stop())
            if self._running:
                await self._stopped.wait()
            if not self._thread_done.is_set():  # run() never started, or was cancelled
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    if self._retry_pending is not None:
                        nursery.start_soon(self._retry_after, self._retry_pending)
                        self._retry_pending = None
                    await self._thread_done.wait()
                    nursery.cancel_scope.cancel()
        finally:
            self._nursery = None
            self._closed = True
            if self._run_scope is not None:
                self._run_scope.cancel()
            if not self._thread_done.is_set():
                self._abandon()
                with trio.CancelScope(shield=True):
                    await self._thread_done.wait()

    # -- the trio side ------------------------------------------------------------------

    def _put(self, op: Op) -> None:
        self._queued_total += 1
        self._inbox.put(op)

    def _start_thread(self) -> None:
        if self._thread is None:
            self._token = trio.lowlevel.current_trio_token()
            self._thread = threading.Thread(
                target=self._thread_main, name="triochat-store-writer", daemon=True
            )
            self._thread.start()

    def _landed(self, seq: int, took: float, messages: int) -> None:
        """The thread committed batches up to ``seq`` (one transaction of ``took`` s)."""
        self._commit_seconds += took
        self._latency.observe(took)
        self._commits += 1
        self._messages += messages
        self._committed = seq
        uncommitted = self._uncommitted
        while uncommitted and uncommitted[0].seq <= seq:
            uncommitted.popleft()
        self._on_committed(seq)

    def _failed(self, exc: StoreError, seq: int, delay: float) -> None:
        """A commit failed: report it, and let the thread try again after ``delay``."""
        self._failures += 1
        self._report(exc, f"saving batches up to #{seq} failed; retrying in {delay:g} s")
        if self._abandoned:
            self._retry.set()
            return
        try:
            if self._nursery is None:
                raise RuntimeError("no nursery")
            self._nursery.start_soon(self._retry_after, delay)
        except RuntimeError:  # run() has ended (or is ending): aclose() starts the back-off
            self._retry_pending = delay

    async def _retry_after(self, delay: float) -> None:
        try:
            await trio.sleep(delay)
        finally:
            self._retry.set()  # a cancelled back-off (shutdown) lets the thread see it

    def _pruned_step(self, deleted: int, error: StoreError | None) -> None:
        """A retention step ended: queue the next one, or end the pass."""
        if error is not None:
            self._report(error, "retention failed; trying again later")
        self._pruned += deleted
        if deleted >= PRUNE_STEP_ROWS and not self._closing:
            self._put(Prune())  # behind whatever was submitted meanwhile
            return
        if self._pruned:
            log_event(log, "store.pruned", messages=self._pruned)
        self._pruned = 0
        self._prune_pending = False

    def _ended(self, close_error: StoreError | None, crash: BaseException | None) -> None:
        """The thread closed the store and ended."""
        if close_error is not None:
            self._report(close_error, "closing the store failed")
        self._crash = crash
        self._thread_done.set()

    async def _prune_timer(self) -> None:
        """Start a retention pass now and every :data:`PRUNE_EVERY_S` seconds."""
        while True:
            if not self._prune_pending and not self._closing:
                self._prune_pending = True
                self._put(Prune())
            await trio.sleep(PRUNE_EVERY_S)

    def _report(self, exc: StoreError, what: str) -> None:
        """Log a store failure and tell the owner."""
        log_event(log, "store.failed", what=what, reason=str(exc))
        if self._on_error is not None:
            self._on_error(exc)

    def _abandon(self) -> None:
        """The deadline passed: fail waiting calls, log what was not saved, stop the thread."""
        self._abandoned = True
        self._retry.set()
        for op in list(self._waiting):
            op.finish(None, trio.ClosedResourceError("the store closed first"))
        lost = list(self._uncommitted)
        self._uncommitted.clear()
        if lost:
            messages = sum(len(commit.batch.messages) for commit in lost)
            log_event(log, "store.unsaved_at_close", batches=len(lost), messages=messages)

    # -- the writer thread --------------------------------------------------------------

    def _soon(self, fn: Callable[..., object], *args: object) -> None:
        """Run ``fn(*args)`` in the trio thread (dropped if trio has already finished)."""
        assert self._token is not None
        with contextlib.suppress(trio.RunFinishedError):  # the process is ending
            self._token.run_sync_soon(fn, *args)

    def _thread_main(self) -> None:
        """Take operations off the queue and run them in order until :class:`Stop`."""
        inbox = self._inbox
        held: Op | None = None  # taken while grouping commits: it runs next
        crash: BaseException | None = None
        try:
            while True:
                if held is not None:
                    op, held = held, None
                else:
                    op = inbox.get() if self._pacer is None else self._pacer.next_op(inbox)
                    self._taken += 1
                if isinstance(op, Stop):
                    break
                if self._abandoned:
                    continue
                if isinstance(op, Commit):
                    group = [op]
                    while held is None:  # everything queued back to back: one transaction
                        try:
                            ahead = inbox.get_nowait()
                        except queue.Empty:
                            break
                        self._taken += 1
                        if isinstance(ahead, Commit):
                            group.append(ahead)
                        else:
                            held = ahead
                    self._thread_commit(group)
                elif isinstance(op, Call):
                    self._thread_call(op)
                else:
                    self._thread_prune()
        except BaseException as exc:  # a bug, not a disk: run() raises it
            crash = exc
        close_error: StoreError | None = None
        try:
            self._store.close()
        except StoreError as exc:
            close_error = exc
        self._soon(self._ended, close_error, crash)

    def _index_failed(self, exc: StoreError) -> None:
        self._soon(self._report, exc, "indexing for search failed; trying again later")

    def _thread_commit(self, group: list[Commit]) -> None:
        """Commit ``group`` as one transaction, retrying until it lands (or is abandoned)."""
        batch, seq = merge(group), group[-1].seq
        delay = RETRY_FIRST_S
        while True:
            started = time.perf_counter()
            try:
                self._store.commit(batch)
            except StoreError as exc:
                self._retry.clear()
                self._soon(self._failed, exc, seq, delay)
                del exc  # its traceback holds frames; do not keep them over the wait
                self._retry.wait()
                if self._abandoned:
                    return
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            self._soon(self._landed, seq, time.perf_counter() - started, len(batch.messages))
            return

    def _thread_call(self, op: Call[Any]) -> None:
        """Run a queued call unless its caller has gone, and hand back the outcome."""
        if op.abandoned:
            return
        self._calls += 1
        try:
            value = op.fn()
        except Exception as exc:
            self._soon(op.finish, None, exc)
        else:
            self._soon(op.finish, value, None)

    def _thread_prune(self) -> None:
        """Run one retention step (skipped once closing)."""
        deleted, error = 0, None
        if not self._closing:
            try:
                deleted = self._store.prune(
                    self._wall_clock(),
                    self._retain_days,
                    self._retain_messages,
                    max_rows=PRUNE_STEP_ROWS,
                )
            except StoreError as exc:
                error = exc
        self._soon(self._pruned_step, deleted, error)
