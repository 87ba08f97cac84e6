"""Paced replays: stored lines read off the loop and written as a connection drains.

The chat state queues a :class:`~triochat.core.model.Query` on a member's link
(:meth:`Connection.replay <triochat.server.connection.Connection.replay>`): the
connection puts a :class:`ReplaySlot` at that place in its output, and the hub hands
the slot to the :class:`HistoryReader` at the end of its batch, after the batch's
writes were submitted (so a read sees every line numbered before it).

* **Never in the send queue.** A slot's lines do not count against the member's send
  queue: a client that missed thousands of lines gets them all, however small its
  queue, instead of being dropped as "too slow" and reconnecting forever.
* **Never in the hub.** Reads run in the reader's tasks; the hub never waits for them.
* **Paced and bounded.** One slot per connection is read at a time, and the next only
  once the connection has written the last (at most ``--resume-limit`` lines are held
  per connection); reads take turns per address (:data:`READS_PER_ADDRESS`) and
  server-wide (:data:`READS_AT_ONCE`), and each address has a budget of
  :data:`READ_RATE` reads a second after a burst of :data:`READ_BURST` (more than one
  client's resume of 50 rooms), so a client resuming in a loop gets one client's share
  of the disk and the CPU, and others' chat does not wait for it.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import trio

from triochat.core.events import ErrorEvent, MentionInfo
from triochat.core.history import mention_bytes, replay_bytes, search_bytes
from triochat.core.logevents import log_event
from triochat.core.model import Query
from triochat.core.protocols import PROTOCOLS
from triochat.core.ratelimit import TokenBucket
from triochat.core.records import SearchHit, StoredMessage, StoredPrivate
from triochat.store import Store, StoreError
from triochat.store.mentions import find_mentions
from triochat.store.reads import read_replay
from triochat.store.search import SearchOff

__all__ = [
    "READS_AT_ONCE",
    "READS_PER_ADDRESS",
    "READ_TIMEOUT",
    "HistoryReader",
    "ReaderStatistics",
    "ReplaySlot",
]

log = logging.getLogger(__name__)

READ_TIMEOUT: Final = 2.0  # seconds a replay may wait for the disk before the member is told
READS_AT_ONCE: Final = 1  # replay reads queued to the store at once: a commit waits for one at most
READS_PER_ADDRESS: Final = 1  # ... from one address (its connections take turns)
READ_RATE: Final = 20.0  # replay reads per second per address, after a burst of ...
READ_BURST: Final = 60  # ... (a hello resumes at most 50 rooms: one client never waits)
_BUCKETS_KEPT: Final = 4096  # addresses whose read budget is remembered (idle ones go first)


class ReplaySlot:
    """A replay's place in a connection's output, filled with bytes once read."""

    __slots__ = ("at", "chunks", "drained", "finished", "query")

    def __init__(self, query: Query, at: int) -> None:
        self.query = query
        self.at = at  # the outbox position it stands at: output put after it comes after it
        self.chunks: deque[bytes] = deque()
        self.finished = False  # filled (or abandoned): once chunks is empty, it is done
        self.drained = trio.Event()  # set once finished and written (or abandoned)

    def fill(self, chunks: list[bytes]) -> None:
        self.chunks.extend(chunks)
        self.finished = True
        if not self.chunks:
            self.drained.set()

    def take(self, max_bytes: int) -> bytes | None:
        """The next bytes to write (about ``max_bytes``), or None if none are ready."""
        chunks = self.chunks
        if not chunks:
            return None
        out: list[bytes] = []
        size = 0
        while chunks and size < max_bytes:
            data = chunks.popleft()
            out.append(data)
            size += len(data)
        if not chunks and self.finished:
            self.drained.set()
        return b"".join(out)

    def unsend(self, rest: bytes) -> None:
        """Put back what a direct write did not take."""
        self.chunks.appendleft(rest)

    def abandon(self) -> None:
        """The connection ended: nothing more is read or written."""
        self.chunks.clear()
        self.finished = True
        self.drained.set()


class Replayer(Protocol):
    """What the reader needs of a connection (:class:`~triochat.server.connection.Connection`)."""

    host: str | None
    peer: str

    def resume_output(self) -> None:
        """Write what became ready (a slot was filled), without releasing anything new."""


@dataclass(frozen=True, slots=True)
class ReaderStatistics:
    """What the history reader has done since start (see :meth:`HistoryReader.statistics`)."""

    replays: int  # slots filled
    lines: int  # stored lines read for them
    failures: int  # replays answered with "history unavailable"
    active: int  # connections with a replay under way now


@dataclass(slots=True)
class _Queue:
    slots: deque[ReplaySlot] = field(default_factory=deque)


class HistoryReader:
    """Reads the stored lines of each replay slot, one connection's slots in order."""

    def __init__(
        self,
        call: Callable[..., Awaitable[Any]],
        store: Store,
        store_down: Callable[[], bool],
        clock: Callable[[], float],
    ) -> None:
        """``call`` runs a store read in order after the submitted batches (the writer's)."""
        self._call = call
        self._store = store
        self._store_down = store_down
        self._clock = clock
        self._nursery: trio.Nursery | None = None
        self._queues: dict[Replayer, _Queue] = {}
        self._total = trio.CapacityLimiter(READS_AT_ONCE)
        self._per_address: dict[str, trio.CapacityLimiter] = {}
        self._budgets: dict[str, tuple[TokenBucket, float]] = {}  # address -> (bucket, last use)
        self._replays = self._lines = self._failures = 0

    def start_in(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery

    def add(self, conn: Replayer, slot: ReplaySlot) -> None:
        """Read ``slot`` after ``conn``'s earlier slots (the hub calls this per batch)."""
        queue = self._queues.get(conn)
        if queue is not None:
            queue.slots.append(slot)
            return
        if self._nursery is None:  # pragma: no cover - the hub starts the reader first
            raise RuntimeError("the history reader is not running")
        queue = self._queues[conn] = _Queue(deque([slot]))
        self._nursery.start_soon(self._serve, conn, queue)

    async def _serve(self, conn: Replayer, queue: _Queue) -> None:
        try:
            while queue.slots:
                slot = queue.slots.popleft()
                if slot.finished:
                    continue  # abandoned: the connection ended
                chunks = await self._read(conn, slot.query)
                if not slot.drained.is_set():  # not abandoned while it was read
                    slot.fill(chunks)
                conn.resume_output()
                await slot.drained.wait()
        finally:
            del self._queues[conn]

    async def _read(self, conn: Replayer, query: Query) -> list[bytes]:
        failure = "the store is not working right now" if self._store_down() else None
        records: Sequence[StoredMessage | StoredPrivate] = []
        hits: list[SearchHit] = []
        found: list[MentionInfo] | None = None  # a /mentions's; None: its recent lines
        skipped = 0
        told: str | None = None  # the member's error text, when not the usual one
        if failure is None:
            where = conn.host if conn.host is not None else conn.peer
            delay = self._budget(where)
            if delay:
                await trio.sleep(delay)  # a resume loop reads at READ_RATE, no faster
            limiter = self._per_address.get(where)
            if limiter is None:
                limiter = self._per_address[where] = trio.CapacityLimiter(READS_PER_ADDRESS)
            try:
                async with limiter, self._total:
                    failure = f"reading it took over {READ_TIMEOUT:g} s"
                    with trio.move_on_after(READ_TIMEOUT):
                        if query.search is not None:  # a /search: the store's index
                            hits = await self._call(self._store.search, query.search)
                        elif query.mentions is not None:  # None: no index, the recent lines
                            found = await self._call(find_mentions, self._store, query.mentions)
                        else:
                            records, skipped = await self._fetch(query)
                        failure = None
            except SearchOff as exc:  # --no-search-index: said as it is, not logged
                failure = told = str(exc)
            except (StoreError, trio.ClosedResourceError) as exc:
                failure = str(exc) or "the store is closing"
            finally:
                if limiter.borrowed_tokens == 0 and not limiter.statistics().tasks_waiting:
                    self._per_address.pop(where, None)
        now = self._clock()
        if failure is not None:
            member = query.member
            what = "search" if query.search is not None else f"the history of {query.room}"
            if query.mentions is not None:
                what = "older mentions"  # the recent lines' come after the error
            text = told or f"{what} cannot be read right now; try again later"
            if told is None:
                self._failures += 1
                log_event(
                    log, "history.read_failed", room=query.room, conn=member.id, reason=failure
                )
            event = ErrorEvent(now, "history-unavailable", text)
            error = PROTOCOLS[member.mode].encode(event, member.name, member.current)
            if query.mentions is not None:
                return [error, mention_bytes(query, None, now)]
            return [error, *replay_bytes(query, (), 0, 0, now)]
        self._replays += 1
        if query.mentions is not None:
            self._lines += 0 if found is None else len(found)
            return [mention_bytes(query, found, now)]
        if query.search is not None:
            self._lines += len(hits)
            return [search_bytes(query, hits, now)]
        self._lines += len(records)
        return replay_bytes(query, records, len(records), skipped, now)

    def _budget(self, where: str) -> float:
        """Spend one read of ``where``'s budget; how long to wait before it."""
        now = trio.current_time()
        entry = self._budgets.get(where)
        if entry is None:
            if len(self._budgets) >= _BUCKETS_KEPT:
                idle = sorted(self._budgets, key=lambda key: self._budgets[key][1])
                for key in idle[: _BUCKETS_KEPT // 4]:
                    del self._budgets[key]
            entry = (TokenBucket(READ_RATE, READ_BURST, now), now)
        bucket = entry[0]
        self._budgets[where] = (bucket, now)
        return bucket.take(now)

    async def _fetch(self, query: Query) -> tuple[Sequence[StoredMessage | StoredPrivate], int]:
        """One read in the store's turn (see :func:`triochat.store.reads.read_replay`)."""
        result: tuple[Sequence[StoredMessage | StoredPrivate], int]
        result = await self._call(read_replay, self._store, query)
        return result

    def statistics(self) -> ReaderStatistics:
        return ReaderStatistics(self._replays, self._lines, self._failures, len(self._queues))
