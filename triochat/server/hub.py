"""The hub task: the one owner of all rooms, driving :mod:`triochat.core.state`.

Rules of this module:

* **Fan-in, then fan-out.** Every connection's reader sends its parsed input into one
  inbound channel; this task is its only receiver and the only caller of the chat
  state, so every member sees the same order and no lock exists anywhere.
* **Batches.** The hub drains what is queued (up to :data:`HUB_BATCH_LINES`) before it
  yields: one scheduler trip and one flush per connection per batch, not per line.
* **Commit, then send, without waiting.** Chat lines get their ids in the state; at
  the end of each batch its store writes are handed to the store's worker thread and
  its output stays held in the outboxes (up to a mark per connection) until the
  writer reports the commit; meanwhile the hub goes on with the next batches, whose
  writes the writer groups into the next transaction. So after a crash every line any
  client received is in the store, and the next id is larger than any id a client
  saw, while the event loop never waits for a disk. If the store fails, held output is
  released, members are told once that history is not being saved, chat goes on, and
  the store writer keeps retrying.
* **Never awaits a member.** Output goes into bounded outboxes; a full one drops that
  member as "too slow" (see :meth:`triochat.core.state.ChatState._put`).
* **Never waits for a password hash.** Password jobs the state queues run as tasks of
  their own: each reads the stored hash through the store's thread (in order, after
  the batches submitted before it) and hashes in a worker thread of its own
  (:data:`HASH_THREADS`), then sends a :class:`PasswordDone` back into the inbound
  channel. Every room goes on meanwhile.
* **In a cluster, the log numbers the lines.** With ``--redis`` the state publishes
  what the other nodes must know; at the end of each batch the hub hands it to the bus
  (:mod:`triochat.bus`), which sends it to Redis and delivers what the log
  reports back into the inbound channel as :class:`FromCluster`, lines included: they
  are stored and sent like any other batch. The hub never waits for Redis.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Final, TypeVar, TypeVarTuple, assert_never

import trio

from triochat.bus import Bus
from triochat.config import LOOPBACK, ServerConfig, is_trusted
from triochat.core import cluster
from triochat.core.codec import Mode
from triochat.core.commands import Command
from triochat.core.names import LOBBY
from triochat.core.passwords import Job, Outcome, check
from triochat.core.records import StoredMessage
from triochat.core.state import CACHE_MESSAGES, ChatState, Limits, Query
from triochat.logs import dropped_records
from triochat.server.connection import Connection
from triochat.server.liveness import Liveness
from triochat.store import MemoryStore, Store, StoreError, StoreWriter
from triochat.store.writer import PRUNE_EVERY_S, PRUNE_STEP_ROWS

__all__ = [
    "HASH_THREADS",
    "HUB_BATCH_LINES",
    "FromCluster",
    "Gone",
    "Hub",
    "HubMessage",
    "Input",
    "PasswordDone",
    "Register",
    "Stop",
    "Tick",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

INBOUND_QUEUE: Final = 1024  # messages from all readers; readers wait (TCP pushes back) beyond it
HUB_BATCH_LINES: Final = 256  # lines handled before committing, flushing and yielding to writers
STATUS_EVERY: Final = 60.0  # seconds between one-line status reports in the server log
MEMORY_RETAIN_MESSAGES: Final = 10_000  # per room, --db :memory: without --retain-messages
MAX_IN_FLIGHT: Final = 4  # uncommitted batches before the hub waits: bounds held output
READ_TIMEOUT: Final = 2.0  # seconds a replay may wait for the disk before the member is told
STORE_DOWN: Final = "history is not being saved right now (the server cannot write its database)"
STORE_UP: Final = "history is being saved again"
HASH_THREADS: Final = 1  # scrypt at a time: ~0.1 s and 32 MiB each; the loop keeps the other core


@dataclass(frozen=True, slots=True)
class Register:
    """A connection asks to join, in ``mode``, with its first command (if any)."""

    conn: Connection
    mode: Mode
    first: Command | None
    server_password: str | None = field(default=None, repr=False)  # a plain client's /pass


@dataclass(frozen=True, slots=True)
class Input:
    """Parsed lines from a registered connection, in order."""

    conn_id: int
    commands: list[Command]


@dataclass(frozen=True, slots=True)
class Gone:
    """A connection ended (``closed``, ``lost``, ...); the hub forgets it."""

    conn_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class Tick:
    """Housekeeping: presence summaries, the status line."""


@dataclass(frozen=True, slots=True)
class Stop:
    """Server shutdown: tell everyone, close every connection, end the hub task."""


@dataclass(frozen=True, slots=True)
class PasswordDone:
    """A password job is back from the worker thread."""

    job: Job
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class FromCluster:
    """What the cluster's log reported, in order (see :mod:`triochat.core.cluster`)."""

    items: list[cluster.ClusterIn]


HubMessage = Register | Input | Gone | Tick | Stop | PasswordDone | FromCluster


class Hub:
    """Owns the chat state; feed it :data:`HubMessage` objects through :attr:`inbound`."""

    def __init__(
        self,
        config: ServerConfig,
        store: Store | None = None,
        clock: Callable[[], float] = time.time,
        *,
        bus: Bus | None = None,
    ) -> None:
        self.config = config
        limits = Limits(
            history=config.history,
            coalesce_above=config.coalesce_above,
            max_rooms=config.max_rooms,
            max_rooms_per_member=config.max_rooms_per_member,
            resume_limit=config.resume_limit,
        )
        self.bus = bus
        self.state = ChatState(
            limits,
            clock,
            ops=config.ops,
            server_password=config.server_password,
            node=self.bus.node if self.bus is not None else None,
        )
        self.store: Store = store if store is not None else MemoryStore()
        # A memory store is written in the loop (it cannot fail and takes microseconds);
        # a database through one worker thread, in order.
        self._writer: StoreWriter | None = None
        self._retain_days = config.retain_days
        self._retain_messages = config.retain_messages
        if isinstance(self.store, MemoryStore):
            # Nothing outlives the process, but RAM is finite: keep the recent past.
            if self._retain_messages is None:
                self._retain_messages = MEMORY_RETAIN_MESSAGES
        else:
            self._writer = StoreWriter(
                self.store,
                self._committed,
                self._store_failed,
                retain_days=config.retain_days,
                retain_messages=config.retain_messages,
            )
        self._last_prune = 0.0
        self._send, self._receive = trio.open_memory_channel[HubMessage](INBOUND_QUEUE)
        self.flush_list: list[Connection] = []  # connections with output since the last flush
        self._commit_wait: trio.Event | None = None
        # Batches submitted and not yet committed, with the output marks they release.
        self._held: deque[tuple[int, list[tuple[Connection, int]]]] = deque()
        self._store_down = False
        self._last_status = 0.0
        self._hash_limiter = trio.CapacityLimiter(HASH_THREADS)
        self._jobs: trio.Nursery | None = None  # where password jobs run
        self._liveness = Liveness(clock)  # pings silent JSON members on each Tick
        self.stopped = trio.Event()

    @property
    def inbound(self) -> trio.MemorySendChannel[HubMessage]:
        """The channel into the hub, shared by every connection (do not close it).

        Connections share one handle rather than each owning a ``clone()``: the hub
        never waits for its senders to close (it ends on :class:`Stop`), and a clone per
        connection costs memory for nothing.
        """
        return self._send

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Load the rooms, then own them until a :class:`Stop` arrives (or cancellation)."""
        try:
            with self._receive:
                async with trio.open_nursery() as nursery:
                    if self.bus is not None:
                        await self.bus.check()  # an unreachable Redis: say so first
                    if self._writer is not None:
                        await nursery.start(self._writer.run)
                    await self._load()
                    if self.bus is not None:
                        rooms = {name: room.last_id for name, room in self.state.rooms.items()}
                        await nursery.start(self.bus.run, self._from_cluster, rooms)
                    self._jobs = nursery
                    nursery.start_soon(self._ticker, self._send.clone())
                    self._last_status = trio.current_time()
                    task_status.started()
                    try:
                        await self._loop()
                    finally:
                        if self.bus is not None:
                            with trio.move_on_after(self.config.flush_timeout) as scope:
                                scope.shield = True
                                await self.bus.leave()
                        if self._writer is not None:
                            with trio.move_on_after(self.config.flush_timeout) as scope:
                                scope.shield = True
                                await self._writer.aclose()
                        else:
                            self.store.close()
                    nursery.cancel_scope.cancel()
        finally:
            self.stopped.set()

    async def _load(self) -> None:
        """Restore every stored room, with its ids, topic and recent lines."""
        for room in await self._call(self.store.load_rooms):
            recent = await self._call(self.store.recent, room.name, CACHE_MESSAGES)
            self.state.load_room(
                room.name,
                room.last_id,
                room.topic,
                room.topic_by,
                room.topic_ts,
                recent,
                topic_locked=room.topic_locked,
            )
        rooms = len(self.state.rooms)
        log.info("history: %d rooms loaded", rooms)
        store = self.store
        self.state.load_access(
            await self._call(store.account_keys),
            await self._call(store.load_ops),
            await self._call(store.load_bans),
            await self._call(store.load_mutes),
        )
        access = self.state.access
        log.info(
            "accounts: %d registered, %d operators stored, %d bans, %d mutes",
            access.accounts,
            len(access.ops),
            len(access.bans),
            len(access.mutes),
        )

    async def _from_cluster(self, items: list[cluster.ClusterIn]) -> None:
        """The bus's way in: what the log reports joins the inbound queue."""
        await self._send.send(FromCluster(items))

    async def _ticker(self, send: trio.MemorySendChannel[HubMessage]) -> None:
        with send:
            while True:
                await trio.sleep(self.config.presence_interval)
                await send.send(Tick())

    # -- the loop ---------------------------------------------------------------------

    async def _loop(self) -> None:
        receive = self._receive
        state = self.state
        while True:
            message = await receive.receive()
            # Drain what is already queued without yielding, up to a bound: one trip
            # through the scheduler and one flush per connection per batch, not per line;
            # and the bound lets writers drain between batches.
            lines = 0
            running = True
            while True:
                match message:
                    case Input(conn_id=conn_id, commands=commands):
                        member = state.member(conn_id)
                        if member is None:
                            state.hold(conn_id, commands)  # its login is being checked
                        for command in commands:
                            if member is None or state.member(conn_id) is not member:
                                break  # it quit (or was dropped): the rest is moot
                            query = state.handle(member, command)
                            if query is not None:
                                await self._answer(query)
                        lines += len(commands)
                    case Register(conn=conn, mode=mode, first=first, server_password=secret):
                        _, query = state.register(
                            conn.id,
                            conn.peer,
                            conn,
                            mode,
                            first,
                            address=conn.host,
                            cleartext=_cleartext(conn),
                            server_password=secret,
                        )
                        if query is not None:
                            await self._answer(query)
                        lines += 1
                    case Gone(conn_id=conn_id, reason=reason):
                        state.gone(conn_id, reason)
                        lines += 1
                    case Tick():
                        state.tick()
                        self._status()
                        self._prune_memory()
                        self._liveness.sweep(state, trio.current_time())
                    case Stop():
                        state.stop()
                        running = False
                    case FromCluster(items=items):
                        for item in items:
                            state.apply(item)
                            if isinstance(item, cluster.ClusterUp) and item.resync:
                                assert self.bus is not None
                                self.bus.resync(state.resync_ops())
                        lines += len(items)
                    case PasswordDone(job=job, outcome=outcome):
                        member, query = state.password_done(job, outcome)
                        if query is not None:
                            await self._answer(query)
                        if member is not None:
                            for command in state.take_held(member.id):
                                if state.member(member.id) is not member:
                                    break
                                query = state.handle(member, command)
                                if query is not None:
                                    await self._answer(query)
                        lines += 1
                    case _:
                        assert_never(message)
                if state.accounts.jobs:
                    self._start_jobs()
                state.drop_too_slow()
                if not running or lines >= HUB_BATCH_LINES:
                    break
                try:
                    message = receive.receive_nowait()
                except trio.WouldBlock:
                    break
            await self._end_batch()
            if not running:
                return

    def _start_jobs(self) -> None:
        """Run the password jobs the state queued, each in a task of its own."""
        for job in self.state.take_jobs():
            if self._jobs is None:  # pragma: no cover - the loop runs inside run()
                raise RuntimeError("the hub is not running")
            self._jobs.start_soon(self._password_job, job)

    async def _password_job(self, job: Job) -> None:
        """Read the stored hash (if needed), hash in the worker thread, report back.

        The store read goes through the store's thread, so it sees every batch
        submitted before it (the hub submits its batch before it next yields). While
        the store is failing, or slower than :data:`READ_TIMEOUT`, the check fails as
        "unavailable" (not as a wrong password).
        """
        stored: str | None = None
        failure = "the store is not working right now" if self._store_down else ""
        if not failure and job.needs_stored_hash:
            failure = f"reading the account took over {READ_TIMEOUT:g} s"
            with trio.move_on_after(READ_TIMEOUT):
                try:
                    record = await self._call(self.store.account, job.key)
                except (StoreError, trio.ClosedResourceError) as exc:
                    failure = str(exc)
                else:
                    stored = None if record is None else record.password_hash
                    failure = ""
        if failure:
            outcome = Outcome(False, failure=failure)
        else:
            outcome = await trio.to_thread.run_sync(
                partial(check, job, stored), limiter=self._hash_limiter
            )
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self._send.send(PasswordDone(job, outcome))

    # -- the store: commit, then release -------------------------------------------------

    async def _end_batch(self) -> None:
        """Hand the batch's writes to the store; release its output once they are in.

        Pipelined: the hub does not wait for the commit. It notes each connection's
        mark (how much output this batch put there) and goes on with the next batch;
        the writer's ``on_committed`` releases the marks of every committed batch, in
        order. Output of a batch with nothing to store waits behind the last batch
        still in flight, so order is kept. Beyond :data:`MAX_IN_FLIGHT` uncommitted
        batches the hub waits (the inbound channel fills, and TCP pushes back).
        """
        if self.bus is not None:
            ops = self.state.take_published()
            if ops:
                for op in self.bus.publish(ops):
                    self.state.apply(cluster.Refused("unavailable", op))
        batch = self.state.take_batch()
        marks = [(conn, conn.mark()) for conn in self.flush_list]
        self.flush_list.clear()
        writer = self._writer
        if writer is None:  # the memory store: written in the loop, released at once
            if batch:
                self.store.commit(batch)
            _release(marks)
            return
        if batch:
            seq = writer.submit(batch)
            if self._store_down:
                _release(marks)  # members were told history is not being saved
            else:
                self._held.append((seq, marks))
        elif self._held:
            self._held[-1][1].extend(marks)
        else:
            _release(marks)
        while writer.submitted_seq - writer.committed_seq > MAX_IN_FLIGHT and not self._store_down:
            await self._commit_changed()

    async def _commit_changed(self) -> None:
        """Wait for the next commit (or failure) the writer reports."""
        self._commit_wait = trio.Event()
        await self._commit_wait.wait()

    async def _drain(self) -> None:
        """Submit what is pending and wait until the store holds all of it (if it is up)."""
        batch = self.state.take_batch()
        writer = self._writer
        if writer is None:
            if batch:
                self.store.commit(batch)
            return
        if batch:
            seq = writer.submit(batch)
            if self._held and not self._store_down:
                self._held.append((seq, []))
        while writer.committed_seq < writer.submitted_seq and not self._store_down:
            await self._commit_changed()

    def _committed(self, seq: int) -> None:
        """The store writer's callback: batches up to ``seq`` are in the database."""
        held = self._held
        while held and held[0][0] <= seq:
            _release(held.popleft()[1])
        if self._store_down:
            self._store_down = False
            log.warning("history: saving again")
            self.state.notice_all("history-saved", STORE_UP)
            self._flush_soon()
        if self._commit_wait is not None:
            self._commit_wait.set()

    def _store_failed(self, exc: StoreError) -> None:
        """The store writer's callback: a commit failed (it retries by itself).

        Held output is released: chat goes on, and members are told that history is
        not being saved until a commit succeeds again.
        """
        if not self._store_down:
            self._store_down = True
            log.error("history: %s; chat goes on, retrying", exc)
            while self._held:
                _release(self._held.popleft()[1])
            self.state.notice_all("history-unsaved", STORE_DOWN)
            self._flush_soon()
        if self._commit_wait is not None:
            self._commit_wait.set()

    def _flush_soon(self) -> None:
        """Send notices queued from a store callback with the next batch's output."""
        # The hub flushes after every batch; a Tick makes sure there is one soon.
        # (If the channel is full the hub is busy anyway, and a flush follows.)
        with contextlib.suppress(
            trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError
        ):
            self._send.send_nowait(Tick())

    async def _call(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        """Run a store function: in the loop for a memory store, else in its thread."""
        if self._writer is None:
            return fn(*args)
        return await self._writer.call(fn, *args)

    async def _answer(self, query: Query) -> None:
        """Read what the cache could not supply, in order, and replay it.

        The one place the hub waits for the disk: a replay must come before the
        member's next events, so the hub reads before it goes on. Reads are rare
        (scrollback, a resume past the cache), indexed, and bounded by
        :data:`READ_TIMEOUT`; while the store is failing none is attempted (it would
        queue behind the failing commits) and the member is told instead.
        """
        member = query.member
        while True:
            records: list[StoredMessage] = []
            skipped = 0
            failure = "the store is not working right now" if self._store_down else None
            if failure is None:
                await self._drain()  # the store must hold every line assigned so far
                with trio.move_on_after(READ_TIMEOUT):
                    try:
                        records, skipped = await self._read(query)
                    except StoreError as exc:
                        failure = str(exc)
                    else:
                        failure = ""
                if failure is None:
                    failure = f"reading it took over {READ_TIMEOUT:g} s"
            if failure:
                log.error("history: cannot read %s for [c%d]: %s", query.room, member.id, failure)
                text = f"the history of {query.room} cannot be read right now; try again later"
                self.state.tell_error(member, "history-unavailable", text)
            self.state.replay(query, records, skipped)
            next_query = self.state.continue_resume(member)
            if next_query is None:
                return
            query = next_query

    async def _read(self, query: Query) -> tuple[list[StoredMessage], int]:
        store = self.store
        if query.after is not None:
            return await self._call(store.since, query.room, query.after, query.limit)
        if query.before is not None:
            return await self._call(store.before, query.room, query.before, query.limit), 0
        return await self._call(store.recent, query.room, query.limit), 0

    # -- housekeeping -------------------------------------------------------------------

    def _prune_memory(self) -> None:
        """Retention for the memory store (a database's writer prunes in its thread)."""
        now = trio.current_time()
        if self._writer is not None or now - self._last_prune < PRUNE_EVERY_S:
            return
        self._last_prune = now
        self.store.prune(
            time.time(), self._retain_days, self._retain_messages, max_rows=PRUNE_STEP_ROWS
        )

    def _status(self) -> None:
        now = trio.current_time()
        if now - self._last_status < STATUS_EVERY:
            return
        self._last_status = now
        state = self.state
        lobby = state.rooms[LOBBY]
        log.info(
            "status: %d online (%d plain, %d json in %s), %d rooms, %d chat events so far, "
            "history %s, %d log records dropped%s",
            state.online,
            len(lobby.plain),
            len(lobby.json),
            LOBBY,
            len(state.rooms),
            state.chat_events,
            "NOT SAVED" if self._store_down else "saved",
            dropped_records(),
            "" if self.bus is None else f", cluster {'DOWN' if self.bus.down else 'up'}",
        )


def _cleartext(conn: Connection) -> bool:
    """A password sent on ``conn`` crosses a network unencrypted (not TLS, not loopback)."""
    return not conn.secure and conn.host is not None and not is_trusted(conn.host, LOOPBACK)


def _release(marks: list[tuple[Connection, int]]) -> None:
    """Send each connection its output up to the mark taken at its batch's end."""
    for conn, mark in marks:
        conn.flush(mark)
