"""The hub task: the one owner of all rooms, driving :mod:`triochat.core.state`.

Rules of this module:

* **Fan-in, then fan-out.** Every connection's reader sends its parsed input into one
  inbound channel; this task is its only receiver and the only caller of the chat
  state, so every member sees the same order and no lock exists anywhere.
* **Batches.** The hub drains what is queued (up to :data:`HUB_BATCH_LINES`) before it
  yields: one scheduler trip and one flush per connection per batch, not per line.
* **Commit, then send, without waiting.** Chat lines get their ids in the state; at
  the end of each batch its store writes are handed to the store's writer thread and
  its output stays held in the outboxes (up to a mark per connection) until the
  writer reports the commit; meanwhile the hub goes on with the next batches, whose
  writes the writer groups into the next transaction. So after a crash every line any
  client received is in the store, while the event loop never waits for a disk. If the
  store fails, held output is released, members are told once, and chat goes on.
* **Never awaits a member.** Output goes into bounded outboxes; a full one drops that
  member as "too slow" (see :meth:`triochat.core.state.ChatState._put`).
* **Never waits for a password hash.** Password jobs run as tasks of their own (read
  the hash through the store's thread, in order; hash in a worker thread,
  :data:`HASH_THREADS`), then send a :class:`PasswordDone` into the inbound channel.
* **In a cluster, the log numbers the lines.** With ``--redis`` the hub hands what the
  state publishes to the bus (:mod:`triochat.bus`) at the end of each batch; what the
  log reports comes back as :class:`FromCluster`, stored and sent like any other batch.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, TypeVar, TypeVarTuple, assert_never

import trio

from triochat.bus import Bus
from triochat.config import LOOPBACK, ServerConfig, is_trusted
from triochat.core import cluster
from triochat.core.codec import Mode
from triochat.core.commands import Command
from triochat.core.lifecycle import Phase, Step
from triochat.core.logevents import log_event
from triochat.core.model import CACHE_MESSAGES
from triochat.core.passwords import Job, Outcome
from triochat.core.state import ChatState, Limits
from triochat.logs import dropped_records
from triochat.server.commit import STORE_DOWN, STORE_UP, CommitGate
from triochat.server.connection import Connection
from triochat.server.jobs import HASH_THREADS, PasswordJobs
from triochat.server.liveness import Liveness
from triochat.server.replays import READ_TIMEOUT, HistoryReader, ReplaySlot
from triochat.store import MemoryStore, Store, StoreWriter
from triochat.store.inline import InlineWriter

__all__ = [
    "HASH_THREADS",
    "HUB_BATCH_LINES",
    "STORE_DOWN",
    "STORE_UP",
    "FromCluster",
    "Gone",
    "Hub",
    "HubMessage",
    "HubStatistics",
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


@dataclass(frozen=True, slots=True)
class HubStatistics:
    """The hub now (see :meth:`Hub.statistics`); the status line formats these."""

    online: int  # members on this node
    by_mode: dict[str, int]  # ... by wire protocol ("plain", "json")
    pending_logins: int  # connections whose login is being checked
    rooms: int
    chat_events: int  # chat lines since start
    batches: int  # batches handled since start
    store_down: bool  # history is not being saved right now
    held_batches: int  # batches whose output waits for their commit
    replays: int  # paced replays filled since start
    replay_failures: int  # ... answered with "history unavailable"
    password_jobs: int  # password checks started since start
    lines_in: dict[str, int]  # lines received from members, by wire protocol


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
            max_registrations_per_hour=config.max_registrations_per_hour,
            trusted=config.trusted,
            min_password_length=config.min_password_length,
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
        self.flush_list: list[Connection] = []  # connections with output since the last flush
        self.replay_list: list[tuple[Connection, ReplaySlot]] = []  # new replays, for the reader
        self._send, self._receive = trio.open_memory_channel[HubMessage](INBOUND_QUEUE)
        self.gate = CommitGate(self.state.notice_all, self._flush_soon)
        # A memory store is written in the loop (it cannot fail and takes microseconds);
        # a database through its one writer thread, in order. Both look the same from here.
        self.writer: StoreWriter | InlineWriter
        if isinstance(self.store, MemoryStore):
            # Nothing outlives the process, but RAM is finite: keep the recent past.
            self.writer = InlineWriter(
                self.store,
                self.gate.committed,
                retain_days=config.retain_days,
                retain_messages=config.retain_messages or MEMORY_RETAIN_MESSAGES,
            )
        else:
            self.writer = StoreWriter(
                self.store,
                self.gate.committed,
                self.gate.failed,
                retain_days=config.retain_days,
                retain_messages=config.retain_messages,
            )
        self.gate.writer = self.writer
        store_down = self._store_down
        self.history = HistoryReader(self.writer.call, self.store, store_down, clock)
        self.jobs = PasswordJobs(
            self.writer.call, self.store, store_down, self._job_done, READ_TIMEOUT
        )
        self._batches = 0
        self._lines_in: dict[Mode, int] = {}
        self._last_status = 0.0
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

    def _store_down(self) -> bool:
        return self.gate.store_down

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Load the rooms, then own them until a :class:`Stop` arrives (or cancellation)."""
        try:
            with self._receive:
                async with trio.open_nursery() as nursery:
                    if self.bus is not None:
                        await self.bus.check()  # an unreachable Redis: say so first
                    await nursery.start(self.writer.run)
                    await self._load()
                    self.jobs.start_in(nursery)
                    self.history.start_in(nursery)
                    nursery.start_soon(self._ticker, self._send.clone())
                    self._last_status = trio.current_time()
                    nursery.start_soon(self._serve, nursery.cancel_scope)
                    if self.bus is not None:  # started with the cluster's lines in (see run)
                        rooms = {name: room.last_id for name, room in self.state.rooms.items()}
                        await nursery.start(self.bus.run, self._from_cluster, rooms)
                    task_status.started()
        finally:
            self.stopped.set()

    async def _serve(self, done: trio.CancelScope) -> None:
        """The loop until :class:`Stop` (running while the bus starts: it takes what the
        bus delivers); then leave the cluster, close the store, end the hub (``done``)."""
        try:
            await self._loop()
        finally:
            if self.bus is not None:
                with trio.move_on_after(self.config.flush_timeout) as scope:
                    scope.shield = True
                    await self.bus.leave()
            with trio.move_on_after(self.config.flush_timeout) as scope:
                scope.shield = True
                await self.writer.aclose()
        done.cancel()

    async def _load(self) -> None:
        """Restore every stored room, with its ids, topic and recent lines."""
        call = self.writer.call
        store = self.store
        self.state.load_private(await call(store.private_last_id))  # private ids go on
        for room in await call(store.load_rooms):
            recent = await call(store.recent, room.name, CACHE_MESSAGES)
            self.state.load_room(
                room.name,
                room.last_id,
                room.topic,
                room.topic_by,
                room.topic_ts,
                recent,
                topic_locked=room.topic_locked,
            )
        log_event(log, "store.loaded", rooms=len(self.state.rooms))
        self.state.load_access(
            await call(store.account_keys),
            await call(store.load_ops),
            await call(store.load_bans),
            await call(store.load_mutes),
        )
        self.state.load_prefs(await call(store.load_prefs))
        access = self.state.access
        log_event(
            log,
            "accounts.loaded",
            accounts=access.accounts,
            ops=len(access.ops),
            bans=len(access.bans),
            mutes=len(access.mutes),
        )

    async def _from_cluster(self, items: list[cluster.ClusterIn]) -> None:
        """The bus's way in: what the log reports joins the inbound queue."""
        await self._send.send(FromCluster(items))

    async def _job_done(self, job: Job, outcome: Outcome) -> None:
        """A password job's way back in."""
        await self._send.send(PasswordDone(job, outcome))

    async def _ticker(self, send: trio.MemorySendChannel[HubMessage]) -> None:
        with send:
            while True:
                await trio.sleep(self.config.presence_interval)
                await send.send(Tick())

    # -- the loop ---------------------------------------------------------------------

    async def _loop(self) -> None:
        receive = self._receive
        while True:
            message = await receive.receive()
            started = time.perf_counter()  # the batch's fan-out latency counts from here
            # Drain what is already queued without yielding, up to a bound: one trip
            # through the scheduler and one flush per connection per batch, not per line;
            # and the bound lets writers drain between batches.
            lines = 0
            running = True
            while True:
                lines += self._step(message)
                if isinstance(message, Stop):
                    running = False
                if not running or lines >= HUB_BATCH_LINES:
                    break
                try:
                    message = receive.receive_nowait()
                except trio.WouldBlock:
                    break
            await self._end_batch(started)
            if not running:
                return

    def _step(self, message: HubMessage) -> int:
        """Hand one message to the state; the number of lines it counts for the batch."""
        state = self.state
        match message:
            case Input(conn_id=conn_id, commands=commands):
                member = state.member(conn_id)
                if member is None:
                    state.hold(conn_id, commands)  # its login is being checked
                    return len(commands)
                lines_in = self._lines_in
                lines_in[member.mode] = lines_in.get(member.mode, 0) + len(commands)
                members = state.members
                for command in commands:
                    if members.get(conn_id) is not member:
                        break  # it quit (or was dropped): the rest is moot
                    state.handle(member, command)
                return len(commands)
            case Register(conn=conn, mode=mode, first=first, server_password=secret):
                conn.replay_list = self.replay_list
                member = state.register(
                    conn.id,
                    conn.peer,
                    conn,
                    mode,
                    first,
                    address=conn.host,
                    cleartext=_cleartext(conn),
                    server_password=secret,
                )
                if member is not None:
                    conn.step(Step.JOINED)
                elif state.is_pending(conn.id):
                    conn.step(Step.LOGIN)
            case Gone(conn_id=conn_id, reason=reason):
                state.gone(conn_id, reason)
            case Tick():
                state.tick()
                self._status()
                self._liveness.sweep(state, trio.current_time())
                return 0
            case Stop():
                state.stop()
            case FromCluster(items=items):
                lines = 0
                sequenced = cluster.Sequenced
                for item in items:
                    state.apply(item)
                    if type(item) is sequenced:  # (nearly every item: checked first)
                        lines += 1
                        continue
                    if isinstance(item, cluster.Backlog):  # stored now, replayed paced
                        lines += len(item.lines)
                        continue
                    lines += 1
                    if isinstance(item, cluster.ClusterUp) and item.resync:
                        assert self.bus is not None
                        self.bus.resync(state.resync_ops())
                return lines
            case PasswordDone(job=job, outcome=outcome):
                member = state.password_done(job, outcome)
                link = member.link if member is not None else None
                if isinstance(link, Connection) and link.phase is Phase.PENDING_LOGIN:
                    link.step(Step.JOINED)
            case _:
                assert_never(message)
        return 1

    async def _end_batch(self, started: float | None = None) -> None:
        """The one drain point: the state's effects go to the bus, the password jobs and
        the store (whose commit releases the batch's output); new replays to the reader."""
        self._batches += 1
        state = self.state
        effects = state.take_effects()
        if effects.published and self.bus is not None:
            refused = self.bus.publish(effects.published)
            for op in refused:
                state.apply(cluster.Refused("unavailable", op))
            if refused:  # what the refusals changed goes into this batch, or the next
                more = state.take_effects()
                effects.batch.messages.extend(more.batch.messages)
                effects.batch.rooms.extend(more.batch.rooms)
                effects.batch.changes.extend(more.batch.changes)
                effects.batch.private.extend(more.batch.private)
                effects.batch.prefs.extend(more.batch.prefs)
                effects.jobs.extend(more.jobs)
                state.world.effects.published.extend(more.published)
        if effects.jobs:
            self.jobs.start(effects.jobs)
        await self.gate.end_batch(effects.batch, self.flush_list, started)
        if self.replay_list:
            for conn, slot in self.replay_list:
                self.history.add(conn, slot)
            self.replay_list.clear()

    def _flush_soon(self) -> None:
        """Send notices queued from a store callback with the next batch's output."""
        # The hub flushes after every batch; a Tick makes sure there is one soon.
        # (If the channel is full the hub is busy anyway, and a flush follows.)
        with contextlib.suppress(
            trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError
        ):
            self._send.send_nowait(Tick())

    # -- numbers --------------------------------------------------------------------------

    def statistics(self) -> HubStatistics:
        """The hub's numbers now; cheap (counters and sizes only)."""
        state = self.state
        by_mode: dict[str, int] = {mode.value: 0 for mode in Mode}
        for member in state.members.values():
            by_mode[member.mode.value] += 1
        gate = self.gate.statistics()
        reader = self.history.statistics()
        return HubStatistics(
            online=state.online,
            by_mode=by_mode,
            pending_logins=state.pending,
            rooms=len(state.rooms),
            chat_events=state.chat_events,
            batches=self._batches,
            store_down=gate.store_down,
            held_batches=gate.held_batches,
            replays=reader.replays,
            replay_failures=reader.failures,
            password_jobs=self.jobs.statistics().started,
            lines_in={mode.value: self._lines_in.get(mode, 0) for mode in Mode},
        )

    def _status(self) -> None:
        now = trio.current_time()
        if now - self._last_status < STATUS_EVERY:
            return
        self._last_status = now
        stats = self.statistics()
        up = None if self.bus is None else not self.bus.down
        log_event(
            log,
            "status",
            online=stats.online,
            plain=stats.by_mode["plain"],
            json=stats.by_mode["json"],
            rooms=stats.rooms,
            chat_events=stats.chat_events,
            _history="NOT SAVED" if stats.store_down else "saved",
            saved=not stats.store_down,
            dropped=dropped_records(),
            _cluster="" if up is None else f", cluster {'up' if up else 'DOWN'}",
            cluster_up=up,
        )


def _cleartext(conn: Connection) -> bool:
    """A password sent on ``conn`` crosses a network unencrypted (not TLS, not loopback)."""
    return not conn.secure and conn.host is not None and not is_trusted(conn.host, LOOPBACK)
