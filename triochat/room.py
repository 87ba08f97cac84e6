"""The room task: sole owner of members, names and history.

Rules of this module:

* Only :meth:`Room.run` (one task) touches room state, so every member sees events in
  the same order and no lock exists anywhere.
* The room never awaits a member. Output goes into each member's bounded outbox with
  ``put_nowait``; a member whose outbox is full is disconnected as "too slow" (its
  connection is cancelled) and everybody else carries on undisturbed.
* Each broadcast event is encoded at most once per wire mode, and the same bytes
  object is queued for every member in that mode.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Final

import trio

from triochat.config import ServerConfig
from triochat.core.codec import Mode, encode, encode_json, encode_plain, history_header
from triochat.core.commands import (
    Command,
    Hello,
    Help,
    Invalid,
    Me,
    Msg,
    Nick,
    Quit,
    Say,
    Who,
)
from triochat.core.events import (
    Acted,
    ErrorEvent,
    Event,
    HelpText,
    Joined,
    Left,
    Presence,
    Private,
    Renamed,
    Said,
    ShuttingDown,
    Welcome,
    WhoList,
)
from triochat.core.names import name_error, name_key
from triochat.logs import dropped_records
from triochat.outbox import Outbox

__all__ = ["Conn", "Gone", "Input", "Register", "Room", "RoomMessage", "Stop"]

log = logging.getLogger(__name__)

INBOUND_QUEUE: Final = 1024  # messages from all readers; readers wait (TCP pushes back) beyond it
ROOM_BATCH_LINES: Final = 256  # lines handled before flushing outboxes and yielding to writers
PRESENCE_NAMES: Final = 10  # joiners named in one presence summary; the rest are counted
STATUS_EVERY: Final = 60.0  # seconds between one-line status reports in the server log


@dataclass(eq=False, slots=True)
class Conn:
    """The room's handle on one connection: where its output goes, how to cut it off."""

    id: int
    peer: str
    outbox: Outbox
    cancel_scope: trio.CancelScope


@dataclass(frozen=True, slots=True)
class Register:
    """A connection asks to join, in ``mode``, with its first command (if any)."""

    conn: Conn
    mode: Mode
    first: Command | None


@dataclass(frozen=True, slots=True)
class Input:
    """Parsed lines from a registered (or registering) connection, in order."""

    conn_id: int
    commands: list[Command]


@dataclass(frozen=True, slots=True)
class Gone:
    """A connection ended (``closed``, ``lost``, ...); the room forgets it."""

    conn_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class Tick:
    """Housekeeping: flush presence summaries, log status."""


@dataclass(frozen=True, slots=True)
class Stop:
    """Server shutdown: tell everyone, close every outbox, end the room task."""


RoomMessage = Register | Input | Gone | Tick | Stop


@dataclass(eq=False, slots=True)
class Member:
    conn: Conn
    name: str
    mode: Mode


@dataclass(slots=True)
class _Replay:
    """A history entry, with its replay encoding cached per mode on first use."""

    event: Said | Acted
    encoded: dict[Mode, bytes] = field(default_factory=dict)

    def bytes_for(self, mode: Mode) -> bytes:
        data = self.encoded.get(mode)
        if data is None:
            data = self.encoded[mode] = encode(replace(self.event, history=True), mode)
        return data


class Room:
    """One chat room. Feed it :data:`RoomMessage` objects through :meth:`inbound`."""

    def __init__(self, config: ServerConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.name = config.room
        self._clock = clock
        self._send, self._receive = trio.open_memory_channel[RoomMessage](INBOUND_QUEUE)
        # Members by connection id, split by wire mode so a broadcast encodes once per
        # mode and then runs a tight loop per mode.
        self._plain: dict[int, Member] = {}
        self._json: dict[int, Member] = {}
        self._by_name: dict[str, Member] = {}
        self._history: deque[_Replay] = deque(maxlen=config.history)
        self._next_id = 1
        self._guests = 0
        self._too_slow: list[Member] = []
        self._dirty: list[Outbox] = []  # outboxes with output not yet flushed
        self._pending_joined = 0
        self._pending_left = 0
        self._pending_names: list[str] = []
        self._last_status = 0.0
        self.stopped = trio.Event()

    # -- public API -----------------------------------------------------------------

    @property
    def inbound(self) -> trio.MemorySendChannel[RoomMessage]:
        """The channel into the room, shared by every connection (do not close it).

        Connections share one handle rather than each owning a ``clone()``: the room
        never waits for its senders to close (it ends on :class:`Stop`), and a clone per
        connection costs memory for nothing.
        """
        return self._send

    @property
    def online(self) -> int:
        """How many members are in the room."""
        return len(self._by_name)

    def names(self) -> list[str]:
        """Members' names, sorted without regard to case."""
        return sorted((m.name for m in self._by_name.values()), key=str.casefold)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the room until a :class:`Stop` arrives (or the task is cancelled)."""
        try:
            with self._receive:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._ticker, self._send.clone())
                    self._last_status = trio.current_time()
                    task_status.started()
                    await self._loop()
                    nursery.cancel_scope.cancel()
        finally:
            self.stopped.set()

    # -- the loop ---------------------------------------------------------------------

    async def _ticker(self, send: trio.MemorySendChannel[RoomMessage]) -> None:
        with send:
            while True:
                await trio.sleep(self.config.presence_interval)
                await send.send(Tick())

    async def _loop(self) -> None:
        receive = self._receive
        while True:
            message = await receive.receive()
            # Drain what is already queued without yielding, up to a bound: one trip
            # through the scheduler and one flush per outbox per batch, not per line;
            # and the bound lets writers drain between batches, so a burst from many
            # senders at once does not fill healthy members' outboxes.
            lines = 0
            running = True
            while running:
                running = self._handle(message)
                lines += len(message.commands) if isinstance(message, Input) else 1
                if lines >= ROOM_BATCH_LINES:
                    break
                try:
                    message = receive.receive_nowait()
                except trio.WouldBlock:
                    break
            dirty, self._dirty = self._dirty, []
            for outbox in dirty:
                outbox.flush()
            if not running:
                return

    def _handle(self, message: RoomMessage) -> bool:
        match message:
            case Input(conn_id=conn_id, commands=commands):
                member = self._member(conn_id)
                if member is not None:
                    for command in commands:
                        self._command(member, command)
                        if member.conn.outbox.closed:
                            break  # it quit: the rest of its batch is moot
            case Register():
                self._register(message)
            case Gone(conn_id=conn_id, reason=reason):
                member = self._member(conn_id)
                if member is not None:
                    self._remove(member, reason)
            case Tick():
                self._tick()
            case Stop():
                self._stop()
                return False
        while self._too_slow:
            member = self._too_slow.pop()
            if self._by_name.get(name_key(member.name)) is member:
                self._remove(member, "too slow")
        return True

    # -- output -----------------------------------------------------------------------

    def _member(self, conn_id: int) -> Member | None:
        return self._plain.get(conn_id) or self._json.get(conn_id)

    def _deliver(self, member: Member, data: bytes) -> None:
        """Queue ``data`` for one member, never waiting.

        Policy on a full outbox (``send_queue`` events or ``send_queue_bytes`` bytes,
        whichever comes first): the member is not reading fast enough to keep up with
        the room, so it is disconnected with the reason "too slow" (after the current
        message is handled). Buffering without bound would let one stalled client
        exhaust the server's memory; waiting for it would stall everyone else. Replies
        to the member's own requests (``/who``, ``/help``, errors) come through here
        too, so they count: a client cannot make the server hold unbounded output by
        asking for it and never reading the answers.
        """
        try:
            if member.conn.outbox.put_nowait(data):
                self._dirty.append(member.conn.outbox)  # flushed at the end of the batch
        except trio.WouldBlock:
            self._too_slow.append(member)
        except trio.ClosedResourceError:
            pass  # its writer has gone; the connection's Gone message is on its way

    def _tell(self, member: Member, event: Event) -> None:
        """Send an event to one member, encoded for its mode and from its point of view."""
        self._deliver(member, encode(event, member.mode, member.name))

    def _broadcast(self, event: Event, skip: Member | None = None) -> None:
        """Send an event to everyone but ``skip``, encoded once per wire mode."""
        if self._json:
            data = encode_json(event)
            for member in self._json.values():
                if member is not skip:
                    self._deliver(member, data)
        if self._plain:
            data = encode_plain(event)
            for member in self._plain.values():
                if member is not skip:
                    self._deliver(member, data)

    def _error(self, member: Member, code: str, text: str) -> None:
        self._tell(member, ErrorEvent(self._clock(), code, text))

    # -- joining and leaving ------------------------------------------------------------

    def _name_problem(self, name: str, member: Member | None = None) -> tuple[str, str] | None:
        """Why ``name`` cannot be used (by ``member``), as (error code, text)."""
        problem = name_error(name)
        if problem is not None:
            return "bad-name", problem
        holder = self._by_name.get(name_key(name))
        if holder is not None and holder is not member:
            if holder.name.casefold() == name.casefold():
                return "name-taken", f"the name {name} is taken"
            return "name-taken", f"the name {name} is taken: it looks too much like {holder.name}"
        return None

    def _guest_name(self) -> str:
        while True:
            self._guests += 1
            name = f"guest-{self._guests}"
            if name_key(name) not in self._by_name:
                return name

    def _register(self, reg: Register) -> None:
        conn = reg.conn
        first = reg.first
        if reg.mode is Mode.JSON:
            assert isinstance(first, Hello | Invalid)
            if isinstance(first, Invalid):
                problem: tuple[str, str] | None = (first.code, first.text)
            else:
                problem = self._name_problem(first.name)
            if problem is not None:
                wanted = first.name if isinstance(first, Hello) else "a malformed hello"
                log.info("[c%d] refused %r from %s: %s", conn.id, wanted, conn.peer, problem[1])
                refusal = ErrorEvent(self._clock(), *problem)
                # A brand-new outbox has room; if it is already gone, there is nobody to tell.
                with contextlib.suppress(trio.ClosedResourceError):
                    conn.outbox.put_nowait(encode_json(refusal))
                    conn.outbox.flush()
                conn.outbox.close()
                return
            assert isinstance(first, Hello)
            self._admit(conn, first.name, Mode.JSON)
            return
        if isinstance(first, Nick):
            problem = self._name_problem(first.name)
            if problem is None:
                self._admit(conn, first.name, Mode.PLAIN)
                return
            log.info("[c%d] refused %r from %s: %s", conn.id, first.name, conn.peer, problem[1])
            member = self._admit(conn, self._guest_name(), Mode.PLAIN)
            self._error(member, problem[0], f"{problem[1]}; you joined as {member.name}")
            return
        member = self._admit(conn, self._guest_name(), Mode.PLAIN)
        if first is not None:
            self._command(member, first)

    def _admit(self, conn: Conn, name: str, mode: Mode) -> Member:
        member = Member(conn, name, mode)
        (self._json if mode is Mode.JSON else self._plain)[conn.id] = member
        self._by_name[name_key(name)] = member
        online = self.online
        now = self._clock()
        log.info(
            "[c%d] %s joined from %s (%s, %d online)", conn.id, name, conn.peer, mode.value, online
        )
        self._tell(member, Welcome(now, name, online, self.name))
        if self._history and mode is Mode.PLAIN:
            self._deliver(member, history_header(len(self._history)))
        for entry in self._history:
            self._deliver(member, entry.bytes_for(mode))
        if online > self.config.coalesce_above:
            self._pending_joined += 1
            if len(self._pending_names) < PRESENCE_NAMES:
                self._pending_names.append(name)
            return member
        # Everyone but the newcomer, who has just had its welcome.
        self._broadcast(Joined(now, name, online), skip=member)
        return member

    def _remove(self, member: Member, reason: str) -> None:
        """Take ``member`` out of the room and tell the others.

        A member leaving of its own accord has its outbox closed, so its writer flushes
        what is queued and then ends the connection; a member that is "too slow" is cut
        off at once by cancelling its connection.
        """
        conn = member.conn
        (self._json if member.mode is Mode.JSON else self._plain).pop(conn.id, None)
        del self._by_name[name_key(member.name)]
        if reason == "too slow":
            conn.cancel_scope.cancel()
            conn.outbox.abandon()
        else:
            conn.outbox.close()
        online = self.online
        log.info("[c%d] %s left: %s (%d online)", conn.id, member.name, reason, online)
        if online >= self.config.coalesce_above:
            self._pending_left += 1
            return
        self._broadcast(Left(self._clock(), member.name, online, reason))

    def _tick(self) -> None:
        if self._pending_joined or self._pending_left:
            self._broadcast(
                Presence(
                    self._clock(),
                    self._pending_joined,
                    self._pending_left,
                    self.online,
                    tuple(self._pending_names),
                )
            )
            self._pending_joined = self._pending_left = 0
            self._pending_names.clear()
        now = trio.current_time()
        if now - self._last_status >= STATUS_EVERY:
            self._last_status = now
            log.info(
                "status: room %s, %d online (%d plain, %d json), %d chat events so far, "
                "%d log records dropped",
                self.name,
                self.online,
                len(self._plain),
                len(self._json),
                self._next_id - 1,
                dropped_records(),
            )

    def _stop(self) -> None:
        event = ShuttingDown(self._clock())
        self._broadcast(event)
        for member in self._too_slow:
            member.conn.cancel_scope.cancel()
            member.conn.outbox.abandon()
        self._too_slow.clear()
        for member in [*self._plain.values(), *self._json.values()]:
            member.conn.outbox.close()
        log.info("room %s closed; %d members told", self.name, self.online)
        self._plain.clear()
        self._json.clear()
        self._by_name.clear()

    # -- commands -----------------------------------------------------------------------

    def _command(self, member: Member, command: Command) -> None:
        match command:
            case Say(text=text):
                self._chat(member, Said(self._clock(), self._take_id(), member.name, text))
            case Me(text=text):
                self._chat(member, Acted(self._clock(), self._take_id(), member.name, text))
            case Nick(name=name):
                self._rename(member, name)
            case Who():
                self._tell(member, WhoList(self._clock(), tuple(self.names())))
            case Msg(to=to, text=text):
                self._private(member, to, text)
            case Help():
                self._tell(member, HelpText(self._clock()))
            case Quit():
                self._remove(member, "quit")
            case Hello():
                self._error(member, "bad-request", "already joined; use nick to change name")
            case Invalid(code=code, text=text):
                self._error(member, code, text)

    def _take_id(self) -> int:
        event_id = self._next_id
        self._next_id += 1
        return event_id

    def _chat(self, member: Member, event: Said | Acted) -> None:
        if self.config.history:
            self._history.append(_Replay(event))
        # A plain member's terminal already shows its own line; JSON clients get theirs
        # back, to show the server's order and time.
        self._broadcast(event, skip=member if member.mode is Mode.PLAIN else None)

    def _rename(self, member: Member, name: str) -> None:
        old = member.name
        if name == old:
            self._error(member, "bad-request", f"you are already {name}")
            return
        problem = self._name_problem(name, member)
        if problem is not None:
            log.info("[c%d] refused rename of %s to %r: %s", member.conn.id, old, name, problem[1])
            self._error(member, *problem)
            return
        del self._by_name[name_key(old)]
        member.name = name
        self._by_name[name_key(name)] = member
        log.info("[c%d] %s is now known as %s", member.conn.id, old, name)
        event = Renamed(self._clock(), old, name)
        self._broadcast(event, skip=member)
        self._tell(member, event)  # in plain mode: "you are now known as ..."

    def _private(self, member: Member, to: str, text: str) -> None:
        target = self._by_name.get(name_key(to))
        if target is None:
            self._error(member, "no-such-user", f"no such user: {to}")
            return
        event = Private(self._clock(), member.name, target.name, text)
        self._tell(target, event)
        if target is not member:
            self._tell(member, event)
