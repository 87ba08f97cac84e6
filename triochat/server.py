"""The network side: one reader task per connection (plus a writer while output backs up).

Each connection has a reader task (bytes -> lines -> commands -> the room's inbound
channel, paced by a token bucket) and, whenever output backs up, a writer task (the
member's outbox -> ``send_all``, one call per batch). While the peer keeps up, the
room's output is written straight to its socket and no writer task exists (see
:mod:`triochat.outbox` for why). Neither task ever sees another connection; everything
shared lives in the room task.

Rules of this module:

* Handlers take a ``trio.abc.Stream``, never a socket, so tests use memory streams.
  The one exception is an optimisation, not a different path: for a plain TCP stream
  the reader parks in ``wait_readable`` on the descriptor and the room may write to an
  idle socket directly (``os.read``/``os.write``), because trio's ``receive_some`` and
  ``send_all`` cost memory per idle connection and scheduler trips per line. Behaviour
  is the same; the end-to-end tests over real sockets cover that path.
* A connection's failure is that connection's business: transport errors end it as an
  ordinary leave, and nothing a peer does can raise out of :meth:`handle_stream`.
* Shutdown is structured: stop accepting, let the room tell everyone, give writers
  ``flush_timeout`` seconds to drain, then cancel what is left.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import os
from typing import Final

import trio

from triochat.config import DEFAULT_HOST, DEFAULT_PORT, ServerConfig, is_trusted
from triochat.core.codec import Mode
from triochat.core.commands import Command, Invalid, parse_json, parse_plain, parse_registration
from triochat.core.framing import TOO_LONG, LineBuffer, LineTooLong
from triochat.core.ratelimit import TokenBucket
from triochat.logs import RepeatLimiter
from triochat.outbox import Outbox
from triochat.room import Conn, Gone, Input, Register, Room, RoomMessage, Stop

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "ChatServer", "ServerConfig"]

log = logging.getLogger(__name__)

RECEIVE_BYTES: Final = 65536  # one recv per 64 KiB: large enough for a paste, small per connection
WRITE_BATCH_BYTES: Final = 262144  # flush at most 256 KiB per send_all, so one batch stays cheap
ACCEPT_CAPACITY_ERRNOS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
ACCEPT_RETRY: Final = 0.1  # seconds to wait when out of descriptors, as trio.serve_listeners does
REFUSAL_TIMEOUT: Final = 1.0  # seconds to deliver a refusal line before just closing
REFUSAL_DRAIN_READS: Final = 16  # reads of a refused peer's input (at most 1 MiB) before closing
INPUT_BATCH: Final = 64  # commands per room message: fewer wake-ups, yet the room stays fair


class _Closed(Exception):
    """The peer closed or broke its side; carries the leave reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ChatServer:
    """A triochat server: a room plus the connections feeding it.

    Typical use (what ``triochat server`` does)::

        server = ChatServer(ServerConfig())
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            listeners = await nursery.start(server.serve_tcp, "127.0.0.1", 30000)
            ...
            await server.shutdown()

    Tests skip TCP: ``nursery.start_soon(server.handle_stream, memory_stream)``.
    """

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()
        self.room = Room(self.config)
        self._ids = itertools.count(1)
        self._connections = 0
        self._per_address: dict[str, int] = {}  # live connections per untrusted address
        self._no_connections = trio.Event()
        self._no_connections.set()
        self._accept_scope = trio.CancelScope()
        self._scopes: set[trio.CancelScope] = set()  # one per live connection
        self._writers: trio.Nursery | None = None  # where backed-up connections' writers run
        self._stopping = False
        self._accept_errors = RepeatLimiter()  # out of descriptors: ~10 errors a second

    @property
    def connections(self) -> int:
        """Connections currently being served."""
        return self._connections

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the room task (and host writer tasks); returns after :meth:`shutdown`."""
        async with trio.open_nursery() as writers:
            self._writers = writers
            await self.room.run(task_status=task_status)

    async def serve_tcp(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``host:port`` and serve every connection until :meth:`shutdown`.

        Reports the listeners (with the real port when ``port`` is 0) through
        ``task_status``. Raises ``OSError`` if the address cannot be bound.
        """
        listeners = await trio.open_tcp_listeners(port, host=host)
        await self.serve_listeners(listeners, task_status=task_status)

    async def serve_listeners(
        self,
        listeners: list[trio.SocketListener],
        *,
        task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept on ``listeners``; each connection gets :meth:`handle_stream`.

        Returns once :meth:`shutdown` has stopped accepting and every connection has
        closed (or been cancelled after the flush deadline).
        """
        async with trio.open_nursery() as handlers:
            with self._accept_scope:
                async with trio.open_nursery() as acceptors:
                    for listener in listeners:
                        acceptors.start_soon(self._accept, listener, handlers)
                    task_status.started(listeners)

    async def _accept(self, listener: trio.SocketListener, handlers: trio.Nursery) -> None:
        """Accept connections forever, each served by :meth:`handle_stream`.

        Like ``trio.serve_listeners`` (including its back-off when out of descriptors),
        minus its per-connection wrapper task frame: handle_stream closes the stream.
        Out of descriptors, the error repeats every ``ACCEPT_RETRY`` seconds; it is
        logged once per 10 s (``triochat.logs.REPEAT_INTERVAL``), with a count.
        """
        async with listener:
            while True:
                try:
                    stream = await listener.accept()
                except OSError as exc:
                    if exc.errno not in ACCEPT_CAPACITY_ERRNOS:
                        raise
                    reason = os.strerror(exc.errno or 0)
                    repeats = self._accept_errors.allow(reason, trio.current_time())
                    if repeats is not None and repeats.held:
                        log.error(
                            "cannot accept a connection (%s); retrying every %g s "
                            "(repeated %d times in the last %.0f s)",
                            reason,
                            ACCEPT_RETRY,
                            repeats.held,
                            repeats.seconds,
                        )
                    elif repeats is not None:
                        log.error(
                            "cannot accept a connection (%s); retrying in %g s",
                            reason,
                            ACCEPT_RETRY,
                        )
                    await trio.sleep(ACCEPT_RETRY)
                else:
                    handlers.start_soon(self.handle_stream, stream)

    async def shutdown(self) -> None:
        """Stop accepting, tell every member, flush (bounded), then close everything."""
        if self._stopping:
            return
        self._stopping = True
        log.info("shutting down: %d connections", self._connections)
        self._accept_scope.cancel()
        # One deadline for the whole drain: the room tells everyone, writers flush.
        with trio.move_on_after(self.config.flush_timeout):
            if not self.room.stopped.is_set():
                await self.room.inbound.send(Stop())
                await self.room.stopped.wait()
            await self._no_connections.wait()
        if self._scopes:
            log.warning("%d connections did not flush in time; closing them", len(self._scopes))
        for scope in self._scopes:
            scope.cancel()

    # -- one connection -----------------------------------------------------------------

    async def handle_stream(self, stream: trio.abc.Stream) -> None:
        """Serve one connection until it leaves, is dropped or the server stops.

        Never raises because of anything the peer does; a bug is logged, not spread.
        (One function rather than several: every frame suspended here is memory that
        each idle connection holds.)
        """
        if self._writers is None:
            raise RuntimeError("start ChatServer.run before serving connections")
        conn_id = next(self._ids)
        peer, host = _peer(stream)
        config = self.config
        if self._stopping:
            await _refuse(stream, conn_id, peer, "server is shutting down")
            return
        if self._connections >= config.max_clients:
            full = f"server full ({config.max_clients} clients); try again later"
            await _refuse(stream, conn_id, peer, full)
            return
        if host is not None and (config.max_per_address == 0 or is_trusted(host, config.trusted)):
            host = None  # not counted
        if host is not None:
            count = self._per_address.get(host, 0)
            if count >= config.max_per_address:
                await _refuse(
                    stream,
                    conn_id,
                    peer,
                    f"too many connections from your address ({config.max_per_address}); "
                    "close one and try again",
                )
                return
            self._per_address[host] = count + 1
        self._connections += 1
        self._no_connections = trio.Event() if self._connections == 1 else self._no_connections
        inbound = self.room.inbound
        link = _Link(self._writers, stream)
        outbox = link.outbox = Outbox(
            config.send_queue, link, max_bytes=config.send_queue_bytes, direct=link.fd >= 0
        )
        scope = link.scope  # cancelled by the room to drop this member, or when done
        gone = Gone(conn_id, "closed")
        told = False
        self._scopes.add(scope)
        try:
            async with stream:
                try:
                    with scope:
                        conn = Conn(conn_id, peer, outbox, scope)
                        try:
                            await self._reader(stream, link.fd, conn, inbound)
                        except _Closed as closed:
                            gone = Gone(conn_id, closed.reason)
                        # The peer has stopped sending. Tell the room now: it closes our
                        # outbox, and once what is queued has been sent the connection
                        # ends (this scope is cancelled). A half-closed peer may still be
                        # reading; one that is not gets flush_timeout.
                        told = True
                        await _tell_gone(inbound, gone)
                        await trio.sleep(config.flush_timeout)
                finally:
                    await link.stop_writer()
        except* (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the peer went away while we closed our side
        except* Exception:
            log.exception("[c%d] unexpected error serving %s; connection closed", conn_id, peer)
        finally:
            self._scopes.discard(scope)
            if link.failed and not told:
                gone = Gone(conn_id, "lost")  # the writer hit a reset or a vanished peer
            # Cancelled or failed before the room heard (dropped, writer failed,
            # shutdown, a bug): tell it now. (For a member the room dropped itself, this
            # Gone finds nobody and is ignored.)
            if not told:
                with trio.CancelScope(shield=True):
                    await _tell_gone(inbound, gone)
            self._connections -= 1
            if host is not None:
                if self._per_address[host] == 1:
                    del self._per_address[host]
                else:
                    self._per_address[host] -= 1
            if not self._connections:
                self._no_connections.set()

    async def _reader(
        self,
        stream: trio.abc.Stream,
        fd: int,
        conn: Conn,
        inbound: trio.MemorySendChannel[RoomMessage],
    ) -> None:
        """Turn received bytes into room messages until EOF (raises :class:`_Closed`).

        ``fd`` is the socket to read directly, or -1 to use ``stream.receive_some``.
        """
        config = self.config
        buffer = LineBuffer(config.max_line_bytes)

        # Registration: the first line (or its absence after a second) picks the mode.
        first: bytes | LineTooLong | None = None
        timed_out = True
        with trio.move_on_after(config.registration_timeout):
            first = await _next_line(stream, buffer)
            timed_out = False
        if first is None and not timed_out:
            raise _Closed("closed")  # connected and left without a word: no join, no leave
        json_mode = False
        command: Command | None = None
        if first is TOO_LONG:
            command = _too_long(config.max_line_bytes)
        elif isinstance(first, bytes):
            json_mode, command = parse_registration(_decode(first))
        mode = Mode.JSON if json_mode else Mode.PLAIN
        await _send(inbound, Register(conn, mode, command))

        parse = parse_json if json_mode else parse_plain
        bucket = TokenBucket(config.rate_limit, config.burst, trio.current_time())
        pending: list[Command] = []
        while True:
            line = buffer.next_line()
            if line is None:
                # Everything received so far is parsed: hand it to the room as one message,
                # one trip through the scheduler per chunk read rather than per line.
                if pending:
                    await _send(inbound, Input(conn.id, pending))
                    pending = []
                # Inline rather than a helper coroutine: this is where every idle
                # connection waits, and each suspended frame is memory per connection.
                # On a TCP socket, read the descriptor directly and park in
                # wait_readable: trio's receive_some keeps a chain of frames and context
                # managers alive while it waits (about 1.5 KB per idle connection).
                if fd < 0:
                    try:
                        data = await stream.receive_some(RECEIVE_BYTES)
                    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                        raise _Closed("lost") from exc
                else:
                    try:
                        data = os.read(fd, RECEIVE_BYTES)
                    except BlockingIOError:
                        data = None  # (not awaiting in here: that keeps the error alive)
                    except OSError as exc:  # ECONNRESET and friends
                        raise _Closed("lost") from exc
                    if data is None:
                        await trio.lowlevel.wait_readable(fd)
                        continue
                    await trio.lowlevel.checkpoint()  # as receive_some would: stay fair
                if data:
                    buffer.feed(data)
                    continue
                line = buffer.close()  # EOF: an unterminated last line still counts
                if line is None:
                    raise _Closed("closed")
            # Flood control: past the burst, stop reading for a while. The kernel buffer
            # fills and TCP slows this sender down; nothing is dropped.
            delay = bucket.take(trio.current_time())
            if delay:
                if pending:
                    await _send(inbound, Input(conn.id, pending))
                    pending = []
                await trio.sleep(delay)
            if line is TOO_LONG:
                command = _too_long(config.max_line_bytes)
            else:
                assert isinstance(line, bytes)
                command = parse(_decode(line))
            if command is not None:
                pending.append(command)
                if len(pending) >= INPUT_BATCH:
                    await _send(inbound, Input(conn.id, pending))
                    pending = []


class _Link:
    """One connection's sending side: starts and stops its writer task on demand.

    Implements :class:`~triochat.outbox.OutboxOwner`. The writer runs in the server's
    writer nursery, inside its own cancel scope, and only while output is backed up.
    """

    __slots__ = (
        "failed",
        "fd",
        "outbox",
        "scope",
        "stream",
        "writer_done",
        "writer_scope",
        "writers",
    )

    def __init__(self, writers: trio.Nursery, stream: trio.abc.Stream) -> None:
        self.writers = writers
        self.stream = stream
        self.fd = _direct_fd(stream)  # -1 unless try_write may be used
        self.outbox: Outbox | None = None
        self.scope = trio.CancelScope()  # the connection's: cancelled to end it
        self.writer_scope: trio.CancelScope | None = None
        self.writer_done: trio.Event | None = None
        self.failed = False

    def start_writer(self) -> None:
        self.writer_scope = trio.CancelScope()
        self.writer_done = trio.Event()
        self.writers.start_soon(self._write, self.writer_scope, self.writer_done)

    def end(self) -> None:
        self.scope.cancel()

    def try_write(self, data: bytes) -> int:
        """A non-blocking write straight to the socket (only used when ``fd >= 0``).

        ``os.write`` rather than trio's ``send_all``: no task switch, no wait. It is only
        called while no writer task is running, so the two never interleave.
        """
        # The descriptor was looked up once: the outbox is abandoned (so this is never
        # called again) before the stream, and with it the descriptor, is closed.
        try:
            return os.write(self.fd, data)
        except BlockingIOError:
            return 0

    async def _write(self, scope: trio.CancelScope, done: trio.Event) -> None:
        """Drain the outbox, one ``send_all`` per batch; end when it is empty.

        If the room has closed the outbox (the member quit, was refused, or the server
        is stopping), an empty outbox also ends the connection. A transport error ends
        it as "lost".
        """
        outbox = self.outbox
        assert outbox is not None
        try:
            with scope:
                try:
                    while (data := outbox.take(WRITE_BATCH_BYTES)) is not None:
                        await self.stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self.failed = True
                    outbox.abandon()
                    self.scope.cancel()
                    return
            if outbox.closed and not outbox.writing:
                self.scope.cancel()
        finally:
            done.set()

    async def stop_writer(self) -> None:
        """Cancel a running writer and wait for it, so the stream can be closed."""
        if self.writer_scope is not None and self.writer_done is not None:
            self.writer_scope.cancel()
            with trio.CancelScope(shield=True):
                await self.writer_done.wait()
        if self.outbox is not None:
            self.outbox.abandon()


def _direct_fd(stream: trio.abc.Stream) -> int:
    """The socket descriptor of a TCP stream on POSIX, for direct I/O; else -1.

    Anything else (TLS, memory streams in tests, Windows) always goes through trio's
    ``receive_some`` and the writer task's ``send_all``.
    """
    if os.name != "posix" or not isinstance(stream, trio.SocketStream):
        return -1
    return stream.socket.fileno()


async def _next_line(stream: trio.abc.Stream, buffer: LineBuffer) -> bytes | LineTooLong | None:
    """The next line, reading as needed; None at a clean EOF."""
    while True:
        line = buffer.next_line()
        if line is not None:
            return line
        try:
            data = await stream.receive_some(RECEIVE_BYTES)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise _Closed("lost") from exc
        if not data:
            return buffer.close()
        buffer.feed(data)


async def _send(inbound: trio.MemorySendChannel[RoomMessage], message: RoomMessage) -> None:
    try:
        await inbound.send(message)
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise _Closed("server stopping") from exc


async def _tell_gone(inbound: trio.MemorySendChannel[RoomMessage], gone: Gone) -> None:
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await inbound.send(gone)  # (suppressed: the room has already stopped)


def _decode(line: bytes) -> str:
    """UTF-8 with U+FFFD for invalid bytes; the parsers sanitise every field they return."""
    return line.decode("utf-8", "replace")


def _too_long(limit: int) -> Invalid:
    return Invalid("line-too-long", f"line too long (over {limit} bytes); it was discarded")


def _peer(stream: trio.abc.Stream) -> tuple[str, str | None]:
    """The peer as ``host:port`` for the log, and its address (None if it has none).

    Streams that are not IP sockets (memory streams in tests) have no address and are
    not subject to per-address limits.
    """
    if isinstance(stream, trio.SocketStream):
        try:
            address = stream.socket.getpeername()
        except OSError:
            return "unknown peer", None
        if isinstance(address, tuple):
            host, port = address[0], address[1]
            return (f"[{host}]:{port}" if ":" in host else f"{host}:{port}"), host
        return str(address), None
    return type(stream).__name__, None


async def _refuse(stream: trio.abc.Stream, conn_id: int, peer: str, reason: str) -> None:
    """Send one error line (``! reason``) to a connection we cannot serve, and close it.

    Closing a socket with unread input makes the kernel reset the connection, which can
    destroy the refusal line before the peer reads it (a client that sent its first
    line at once). So: send, half-close, and read what the peer sends until it closes
    too, within ``REFUSAL_TIMEOUT``, before closing.
    """
    log.warning("[c%d] refused %s: %s", conn_id, peer, reason)
    with trio.move_on_after(REFUSAL_TIMEOUT):
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await stream.send_all(f"! {reason}\n".encode())
            if isinstance(stream, trio.abc.HalfCloseableStream):
                await stream.send_eof()
            for _ in range(REFUSAL_DRAIN_READS):
                if not await stream.receive_some(RECEIVE_BYTES):
                    break
    await trio.aclose_forcefully(stream)
