"""One connection's sending side: its outbox, its transport, and the flush policy.

:class:`Connection` is what the chat state knows a member by (it implements
:class:`triochat.core.state.Link`: ``put`` / ``close`` / ``cut``), and what the hub
flushes once per batch, after the store has committed the batch:

* **An idle connection is written directly.** If no writer task is running and the
  transport can write without waiting (plain TCP), the released output goes out in one
  non-blocking write, the way asyncio's ``transport.write`` does.
* **A writer task exists only while output is backed up.** What the kernel does not
  take at once (or everything, on transports without direct writes) stays queued and
  a writer task drains it with one ``send_all`` per batch, then ends. At most one
  writer runs per connection, so ordering is kept; a peer that stops reading makes the
  outbox fill until the state drops it as "too slow".
* **Closing is part of the output.** ``close`` only marks the connection; the flush
  that releases its last output ends it, once everything has been written.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Final

import trio

from triochat.core.lifecycle import Phase, Step, advance
from triochat.server.outbox import Outbox
from triochat.server.replays import ReplaySlot
from triochat.server.transport import ConnectionLost, Transport

if TYPE_CHECKING:
    from triochat.core.model import Query

__all__ = ["WRITE_BATCH_BYTES", "Connection"]

_CLOSING: Final = Phase.CLOSING

WRITE_BATCH_BYTES: Final = 262144  # at most 256 KiB per send_all, so one batch stays cheap


class Connection:
    """The hub's handle on one connection (see the module docstring)."""

    __slots__ = (
        "_writers",
        "failed",
        "heard",
        "host",
        "id",
        "outbox",
        "peer",
        "phase",
        "put",
        "replay_list",
        "replays",
        "scope",
        "secure",
        "transport",
        "writer_done",
        "writer_scope",
        "writing",
    )

    def __init__(
        self,
        conn_id: int,
        peer: str,
        transport: Transport,
        outbox: Outbox,
        writers: trio.Nursery,
        flush_list: list[Connection],
        *,
        host: str | None = None,
        secure: bool = False,
        replay_list: list[tuple[Connection, ReplaySlot]] | None = None,
    ) -> None:
        self.id = conn_id
        self.peer = peer
        self.host = host  # the client's IP address (None: not an IP connection, e.g. memory)
        self.secure = secure  # encrypted (TLS): a password sent on it is not in the clear
        self.transport = transport
        self.outbox = outbox
        self.scope = trio.CancelScope()  # the connection's: cancelled to end it
        self._writers = writers  # where this connection's writer task runs, when it does
        # The hot path: the state's put goes straight to the outbox (one call per
        # delivery), which puts this connection on the hub's flush list when needed.
        outbox.attach(self, flush_list)  # type: ignore[arg-type]
        self.put = outbox.put
        # Paced replays at their places in the output (see triochat.server.replays), and
        # where new ones are handed to the hub (which gives them to its history reader).
        self.replays: deque[ReplaySlot] | None = None  # made on the first (most have none)
        self.replay_list = replay_list if replay_list is not None else []
        self.phase = Phase.REGISTERING  # see triochat.core.lifecycle
        self.writing = False  # a writer task is running (or about to)
        self.writer_scope: trio.CancelScope | None = None
        self.writer_done: trio.Event | None = None
        self.failed = False  # the writer hit a reset or a vanished peer
        # When bytes last arrived (trio.current_time()), stamped by the reader; the
        # hub's liveness sweep pings a JSON member that has been silent too long.
        self.heard = trio.current_time()

    # -- Link, for the chat state ------------------------------------------------------

    def replay(self, query: Query) -> None:
        """Queue a replay of stored lines here, after what was put so far."""
        slot = ReplaySlot(query, self.outbox.put_total)
        if self.outbox.closed:
            return  # ended (or cut off): nothing will be written, so nothing is read
        if self.replays is None:
            self.replays = deque()
        self.replays.append(slot)
        self.replay_list.append((self, slot))

    @property
    def closing(self) -> bool:
        """close() was called: the connection ends once its output is written."""
        return self.phase is _CLOSING

    def step(self, step: Step) -> None:
        """Move on to the next phase of the connection's life (see the lifecycle table)."""
        self.phase = advance(self.phase, step)

    def close(self) -> None:
        """Send what is queued (at the next flush), then end the connection."""
        self.phase = advance(self.phase, Step.CLOSE)
        self.outbox.touch()

    def cut(self) -> None:
        """End the connection now, dropping what is queued ("too slow")."""
        self.phase = Phase.GONE
        self.outbox.abandon()
        self._drop_replays()
        self.scope.cancel()

    def _drop_replays(self) -> None:
        replays, self.replays = self.replays, None
        while replays:
            replays.popleft().abandon()

    # -- the flush policy ------------------------------------------------------------------

    def mark(self) -> int:
        """End of the hub's batch: the mark that releases this batch's output later.

        Takes the connection off the flush list; its next put puts it back on.
        """
        return self.outbox.mark()

    def flush(self, mark: int | None = None) -> None:
        """Release output up to ``mark`` (default: all) and send it.

        Directly if the connection is idle, else via the writer. A closing connection
        ends once everything it was sent has been written.
        """
        outbox = self.outbox
        if mark is None:
            mark = outbox.mark()
        if outbox.closed and self.phase is not _CLOSING:
            return  # cut off
        if self.writing:
            outbox.release(mark)
            return  # the running writer picks it up (and ends the connection if closing)
        if self.replays:
            outbox.release(mark)
            self._flush_with_replays()
            return
        # The usual case, kept lean (once per member per batch): no replay under way, and
        # on a direct transport release, write and put back the rest in one call.
        transport = self.transport
        if transport.direct:
            more = outbox.write_released(mark, transport, WRITE_BATCH_BYTES)
        else:
            outbox.release(mark)
            more = outbox.ready > 0
        if more:
            self._start_writer()
        elif self.phase is _CLOSING and not len(outbox):
            self._end()

    def _flush_with_replays(self) -> None:
        """:meth:`flush` when replay slots stand in the output: they are written in turn."""
        outbox = self.outbox
        if self.transport.direct:
            item = self._next()
            if item is not None:
                data, slot = item
                try:
                    sent = self.transport.try_write(data)
                except OSError:
                    sent = 0  # the writer's send_all meets the same error and reports it
                if sent < len(data):
                    (outbox if slot is None else slot).unsend(data[sent:])
                elif slot is None:
                    outbox.sent()
        if self._ready():
            self._start_writer()
        elif self.phase is _CLOSING and not len(outbox) and not self.replays:
            self._end()

    def resume_output(self) -> None:
        """Write what became ready without a new release (a replay slot was filled)."""
        self.flush(0)

    def _next(self) -> tuple[bytes, ReplaySlot | None] | None:
        """The next bytes to write, in order, and the replay slot they came from, if any."""
        outbox = self.outbox
        replays = self.replays
        while replays:
            slot = replays[0]
            if outbox.taken < slot.at:  # output put before the slot goes first
                data = outbox.take(WRITE_BATCH_BYTES, slot.at)
                return None if data is None else (data, None)
            data = slot.take(WRITE_BATCH_BYTES)
            if data is not None:
                outbox.sent()
                return data, slot
            if not slot.finished:
                return None  # its lines are being read
            replays.popleft()
        data = outbox.take(WRITE_BATCH_BYTES)
        return None if data is None else (data, None)

    def _ready(self) -> bool:
        """Whether :meth:`_next` has something to write now (written slots are let go)."""
        outbox = self.outbox
        replays = self.replays
        while replays and replays[0].finished and not replays[0].chunks:
            if outbox.taken < replays[0].at:
                break
            replays.popleft()
        for slot in replays or ():
            if outbox.taken < slot.at:
                return outbox.ready > 0
            if slot.chunks:
                return True
            if not slot.finished:
                return False
        return outbox.ready > 0

    def _end(self) -> None:
        self.phase = advance(self.phase, Step.END)
        self.outbox.closed = True
        self._drop_replays()
        self.scope.cancel()

    def _start_writer(self) -> None:
        self.writing = True
        self.writer_scope = trio.CancelScope()
        self.writer_done = trio.Event()
        self._writers.start_soon(self._write, self.writer_scope, self.writer_done)

    async def _write(self, scope: trio.CancelScope, done: trio.Event) -> None:
        """Drain the released output, one ``send_all`` per batch; then end the task.

        If the connection is closing, an empty outbox also ends the connection. A
        transport error ends it as "lost".
        """
        outbox = self.outbox
        try:
            with scope:
                try:
                    while (item := self._next()) is not None:
                        await self.transport.send_all(item[0])
                except ConnectionLost:
                    self.failed = True
                    self.cut()
                    return
                self.writing = False
                if self.closing and not len(outbox) and not self.replays:
                    self._end()
        finally:
            done.set()

    async def stop_writer(self) -> None:
        """Cancel a running writer and wait for it, so the stream can be closed."""
        if self.writer_scope is not None and self.writer_done is not None:
            self.writer_scope.cancel()
            with trio.CancelScope(shield=True):
                await self.writer_done.wait()
        self.outbox.abandon()
        self._drop_replays()
