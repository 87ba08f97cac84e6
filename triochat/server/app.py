"""The server: listeners, admission, each connection's lifecycle, and shutdown.

:class:`ChatServer` wires the pieces of :mod:`triochat.server` together: the hub task
(:mod:`~triochat.server.hub`), one task per connection that reads its commands
(:mod:`~triochat.server.session`) through its transport
(:mod:`~triochat.server.transport`), and writer tasks while output backs up
(:mod:`~triochat.server.connection`). TLS listeners put a handshake in front
(:mod:`~triochat.server.listeners`).

Rules of this module:

* Handlers take a ``trio.abc.Stream``, never a socket, so tests use memory streams.
* A connection's failure is that connection's business: transport errors end it as an
  ordinary leave, and nothing a peer does can raise out of :meth:`handle_stream`.
* Admission is decided before anything is allocated: shutting down, ``--max-clients``,
  ``--max-per-address`` and a ban on the address each refuse with one ``!`` line.
* Every accepted TCP socket gets keepalive (:func:`~triochat.server.transport.set_keepalive`),
  plain or TLS, before its handler starts.
* Shutdown is structured: stop accepting, let the hub tell everyone, give writers
  ``flush_timeout`` seconds to drain, then cancel what is left.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Final

import trio

from triochat.config import DEFAULT_HOST, DEFAULT_PORT, ServerConfig, is_trusted
from triochat.core.state import ChatState
from triochat.logs import RepeatLimiter
from triochat.server.connection import Connection
from triochat.server.hub import Gone, Hub, Stop
from triochat.server.listeners import Certificates, TlsDoor
from triochat.server.outbox import Outbox
from triochat.server.session import SILENT, leave_reason, read_commands
from triochat.server.transport import (
    RECEIVE_BYTES,
    Transport,
    for_stream,
    peer_address,
    set_keepalive,
)
from triochat.store import BanRecord, Store

__all__ = ["ChatServer"]

log = logging.getLogger(__name__)

ACCEPT_CAPACITY_ERRNOS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
ACCEPT_RETRY: Final = 0.1  # seconds to wait when out of descriptors, as trio.serve_listeners does
REFUSAL_TIMEOUT: Final = 1.0  # seconds to deliver a refusal line before just closing
REFUSAL_DRAIN_READS: Final = 16  # reads of a refused peer's input (at most 1 MiB) before closing

Handler = Callable[[trio.abc.Stream], Awaitable[None]]  # serves one accepted connection


class ChatServer:
    """A triochat server: the hub (every room) plus the connections feeding it.

    Typical use (what ``triochat server`` does)::

        server = ChatServer(ServerConfig())
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            listeners = await nursery.start(server.serve_tcp, "127.0.0.1", 30000)
            ...
            await server.shutdown()

    With TLS: ``await nursery.start(server.serve_tls, tls_listeners, certificates)``.
    Tests skip TCP: ``nursery.start_soon(server.handle_stream, memory_stream)``.
    """

    def __init__(self, config: ServerConfig | None = None, store: Store | None = None) -> None:
        """A server with ``config``, keeping history in ``store`` (default: in memory)."""
        self.config = config or ServerConfig()
        self.hub = Hub(self.config, store)
        self._ids = itertools.count(1)
        self._connections = 0
        self._per_address: dict[str, int] = {}  # live connections per untrusted address
        self._no_connections = trio.Event()
        self._no_connections.set()
        self._accept_scopes: set[trio.CancelScope] = set()  # one per serve_listeners call
        self._opening: set[trio.CancelScope] = set()  # connections still opening (TLS)
        self._scopes: set[trio.CancelScope] = set()  # one per live connection
        self._writers: trio.Nursery | None = None  # where backed-up connections' writers run
        self._stopping = False
        self._accept_errors = RepeatLimiter()  # out of descriptors: ~10 errors a second
        self._refusals = RepeatLimiter()  # a host hammering a full server

    @property
    def state(self) -> ChatState:
        """Who is where (read it between batches, e.g. in tests; the hub owns it)."""
        return self.hub.state

    @property
    def connections(self) -> int:
        """Connections currently being served."""
        return self._connections

    @property
    def stopping(self) -> bool:
        """:meth:`shutdown` has begun: no connection is accepted or admitted any more."""
        return self._stopping

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the hub task (and host writer tasks); returns after :meth:`shutdown`."""
        async with trio.open_nursery() as writers:
            self._writers = writers
            await self.hub.run(task_status=task_status)

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
        handler: Handler | None = None,
        task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept on ``listeners``; each connection gets ``handler`` (:meth:`handle_stream`).

        May run more than once at a time (plain and TLS listeners). Returns once
        :meth:`shutdown` has stopped accepting and every connection has closed (or
        been cancelled after the flush deadline).
        """
        handle = handler or self.handle_stream
        accepting = trio.CancelScope()
        if self._stopping:
            accepting.cancel()
        self._accept_scopes.add(accepting)
        try:
            async with trio.open_nursery() as handlers:
                with accepting:
                    async with trio.open_nursery() as acceptors:
                        for listener in listeners:
                            acceptors.start_soon(self._accept, listener, handlers, handle)
                        task_status.started(listeners)
        finally:
            self._accept_scopes.discard(accepting)

    async def serve_tls(
        self,
        listeners: list[trio.SocketListener],
        certificates: Certificates,
        *,
        task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept TLS connections on ``listeners`` with ``certificates`` (reloadable).

        Each connection's handshake runs in its own task under a deadline (see
        :class:`~triochat.server.listeners.TlsDoor`); then it is served like any other.
        """
        door = TlsDoor(self, certificates)
        await self.serve_listeners(listeners, handler=door.handle, task_status=task_status)

    @contextlib.contextmanager
    def opening(self, timeout: float) -> Iterator[trio.CancelScope]:
        """A deadline for a connection that is still opening (a TLS handshake).

        The scope is also cancelled when :meth:`shutdown` begins: nobody waits for a
        handshake only to be told that the server is going away.
        """
        with trio.move_on_after(timeout) as scope:
            if self._stopping:
                scope.cancel()
            self._opening.add(scope)
            try:
                yield scope
            finally:
                self._opening.discard(scope)

    async def _accept(
        self, listener: trio.SocketListener, handlers: trio.Nursery, handle: Handler
    ) -> None:
        """Accept connections forever, each served by ``handle`` in its own task.

        Like ``trio.serve_listeners`` (including its back-off when out of descriptors),
        minus its per-connection wrapper task frame: the handler closes the stream.
        Out of descriptors, the error repeats every ``ACCEPT_RETRY`` seconds; it is
        logged once per 10 s (``triochat.logs.REPEAT_INTERVAL``), with a count.
        Every accepted socket gets TCP keepalive before its handler starts.
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
                    set_keepalive(stream.socket)
                    handlers.start_soon(handle, stream)

    async def shutdown(self) -> None:
        """Stop accepting, tell every member, flush (bounded), then close everything."""
        if self._stopping:
            return
        self._stopping = True
        log.info("shutting down: %d connections", self._connections)
        for scope in (*self._accept_scopes, *self._opening):
            scope.cancel()
        # One deadline for the whole drain: the hub tells everyone, writers flush.
        with trio.move_on_after(self.config.flush_timeout):
            if not self.hub.stopped.is_set():
                await self.hub.inbound.send(Stop())
                await self.hub.stopped.wait()
            await self._no_connections.wait()
        if self._scopes:
            log.warning("%d connections did not flush in time; closing them", len(self._scopes))
        for scope in self._scopes:
            scope.cancel()

    # -- one connection -----------------------------------------------------------------

    def _refusal(self, host: str | None, address: str | None = None) -> str | None:
        """Why a new connection from ``host`` cannot be served, or None.

        ``host`` is the address counted for ``--max-per-address`` (None: not counted);
        ``address`` is the client's address itself, checked against the bans.
        """
        config = self.config
        if self._stopping:
            return "server is shutting down"
        ban = self.hub.state.address_ban(address)
        if ban is not None:
            return _banned(ban)
        if self._connections >= config.max_clients:
            return f"server full ({config.max_clients} clients); try again later"
        if host is not None and self._per_address.get(host, 0) >= config.max_per_address:
            return (
                f"too many connections from your address ({config.max_per_address}); "
                "close one and try again"
            )
        return None

    async def handle_stream(self, stream: trio.abc.Stream) -> None:
        """Serve one connection until it leaves, is dropped or the server stops.

        Never raises because of anything the peer does; a bug is logged, not spread.
        """
        peer, host = peer_address(stream)
        await self.serve_transport(for_stream(stream), peer, host)

    async def serve_transport(
        self, transport: Transport, peer: str, host: str | None, *, secure: bool = False
    ) -> None:
        """Serve one connection, whatever carries it (TCP, TLS, WebSocket, memory).

        ``peer`` names it in the log; ``host`` is its address, for per-address limits
        and bans (None: not counted). ``secure`` says the transport is encrypted (TLS),
        so passwords sent on it are not in the clear. The transport's stream is closed
        when it ends.
        """
        if self._writers is None:
            raise RuntimeError("start ChatServer.run before serving connections")
        stream = transport.stream
        conn_id = next(self._ids)
        config = self.config
        address = host
        if host is not None and (config.max_per_address == 0 or is_trusted(host, config.trusted)):
            host = None  # not counted
        refusal = self._refusal(host, address)
        if refusal is not None:
            repeats = self._refusals.allow(refusal, trio.current_time())
            if repeats is not None:
                more = (
                    f" (and {repeats.held} more in {repeats.seconds:.0f} s)" if repeats.held else ""
                )
                log.warning("[c%d] refused %s: %s%s", conn_id, peer, refusal, more)
            await _refuse(stream, refusal)
            return
        if host is not None:
            self._per_address[host] = self._per_address.get(host, 0) + 1
        self._connections += 1
        self._no_connections = trio.Event() if self._connections == 1 else self._no_connections
        hub = self.hub
        inbound = hub.inbound
        outbox = Outbox(config.send_queue, config.send_queue_bytes)
        conn = Connection(
            conn_id,
            peer,
            transport,
            outbox,
            self._writers,
            hub.flush_list,
            host=address,
            secure=secure,
        )
        scope = conn.scope  # cancelled by the hub to drop this member, or when done
        read_result: str | None = None
        told = False
        self._scopes.add(scope)
        try:
            try:
                with scope:
                    read_result = await read_commands(conn, inbound, config)
                    # The peer has stopped sending. Tell the hub now: it closes the
                    # connection once what is queued has been sent (cancelling this
                    # scope). A half-closed peer may still be reading; one that is
                    # not gets flush_timeout.
                    told = True
                    if read_result != SILENT:
                        await inbound.send(Gone(conn_id, leave_reason(read_result, conn)))
                    await trio.sleep(config.flush_timeout)
            finally:
                await conn.stop_writer()
                await _close(stream, config.flush_timeout)
        except* (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the peer went away while we closed our side, or the hub has stopped
        except* Exception:
            log.exception("[c%d] unexpected error serving %s; connection closed", conn_id, peer)
        finally:
            self._scopes.discard(scope)
            # Cancelled or failed before the hub heard (dropped, writer failed, shutdown,
            # a bug): tell it now. (For a member the hub dropped itself, this Gone finds
            # nobody and is ignored.)
            if not told:
                with (
                    trio.CancelScope(shield=True),
                    contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
                ):
                    await inbound.send(Gone(conn_id, leave_reason(read_result, conn)))
            self._connections -= 1
            if host is not None:
                if self._per_address[host] == 1:
                    del self._per_address[host]
                else:
                    self._per_address[host] -= 1
            if not self._connections:
                self._no_connections.set()


def _banned(ban: BanRecord) -> str:
    """The one line a banned address is refused with."""
    if ban.until is None:
        return "you are banned from this server"
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ban.until))
    return f"you are banned from this server until {when}"


async def _close(stream: trio.abc.Stream, timeout: float) -> None:
    """Close ``stream`` gracefully within ``timeout`` seconds, else forcefully.

    A TCP stream closes at once. TLS sends a ``close_notify`` first, which waits if the
    peer is not reading and its buffers are full; such a peer must not hold the
    connection open.
    """
    with trio.move_on_after(timeout):
        await stream.aclose()
        return
    await trio.aclose_forcefully(stream)


async def _refuse(stream: trio.abc.Stream, reason: str) -> None:
    """Send one error line (``! reason``) to a connection we cannot serve, and close it.

    Closing a socket with unread input makes the kernel reset the connection, which can
    destroy the refusal line before the peer reads it (a client that sent its first
    line at once). So: send, half-close, and read what the peer sends until it closes
    too, within ``REFUSAL_TIMEOUT``, before closing.
    """
    with trio.move_on_after(REFUSAL_TIMEOUT):
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await stream.send_all(f"! {reason}\n".encode())
            if isinstance(stream, trio.abc.HalfCloseableStream):
                await stream.send_eof()
            for _ in range(REFUSAL_DRAIN_READS):
                if not await stream.receive_some(RECEIVE_BYTES):
                    break
    await trio.aclose_forcefully(stream)
