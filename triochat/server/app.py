"""The server: admission, each connection's lifecycle, and shutdown.

:class:`ChatServer` wires the pieces of :mod:`triochat.server` together: the hub task
(:mod:`~triochat.server.hub`), one task per connection that reads its commands
(:mod:`~triochat.server.session`) through its transport
(:mod:`~triochat.server.transport`), and writer tasks while output backs up
(:mod:`~triochat.server.connection`). Connections come in through the doors of its
listener table (:mod:`~triochat.server.listeners`); TLS doors put a handshake in front.

Rules of this module:

* Handlers take a ``trio.abc.Stream``, never a socket, so tests use memory streams.
* A connection's failure is that connection's business: transport errors end it as an
  ordinary leave, and nothing a peer does can raise out of :meth:`handle_stream`.
* Admission is decided before anything is allocated: shutting down, ``--max-clients``,
  ``--max-per-address`` and a ban on the address each refuse with one ``!`` line.
* Shutdown is structured: stop accepting, let the hub tell everyone, give writers
  ``flush_timeout`` seconds to drain, then cancel what is left.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import time
from dataclasses import dataclass
from typing import Final

import trio

from triochat.bus import Bus, ClusterError
from triochat.config import DEFAULT_HOST, DEFAULT_PORT, ServerConfig
from triochat.core.logevents import log_event
from triochat.core.protocols import IRC
from triochat.core.state import ChatState
from triochat.logs import RepeatLimiter
from triochat.server.certificates import Certificates
from triochat.server.connection import Connection
from triochat.server.hub import MEMORY_RETAIN_MESSAGES, Gone, Hub, Stop
from triochat.server.listeners import (
    AddressCounter,
    Door,
    Handler,
    Listeners,
    ListenerStatistics,
    TlsDoor,
)
from triochat.server.outbox import Outbox
from triochat.server.session import SILENT, leave_reason, read_commands
from triochat.server.transport import RECEIVE_BYTES, Transport, for_stream, peer_address
from triochat.store import BanRecord, Store

__all__ = ["ChatServer", "ServerStatistics"]

log = logging.getLogger(__name__)

REFUSAL_TIMEOUT: Final = 1.0  # seconds to deliver a refusal line before just closing
REFUSAL_DRAIN_READS: Final = 16  # reads of a refused peer's input (at most 1 MiB) before closing
# Why a connection was refused, as counted in ServerStatistics.refused.
REFUSED_STOPPING: Final = "shutting down"
REFUSED_BANNED: Final = "banned"
REFUSED_FULL: Final = "full"
REFUSED_PER_ADDRESS: Final = "per address"


@dataclass(frozen=True, slots=True)
class ServerStatistics:
    """What :meth:`ChatServer.statistics` reports.

    Attributes:
        connections: connections being served (members and those registering).
        by_door: the same, per door (``plain``, ``tls``, ``web``, ``web-tls``...).
        admitted: connections admitted so far, per door.
        refused: connections refused so far, per reason (``shutting down``,
            ``banned``, ``full``, ``per address``).
        listeners: the doors' own numbers (accepted, handshakes...).
    """

    connections: int
    by_door: dict[str, int]
    admitted: dict[str, int]
    refused: dict[str, int]
    listeners: ListenerStatistics


class ChatServer:
    """A triochat server: the hub (every room) plus the connections feeding it.

    Typical use (what ``triochat server`` does)::

        server = ChatServer(ServerConfig())
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            listeners = await nursery.start(server.serve_tcp, "127.0.0.1", 30000)
            ...
            await server.shutdown()

    With TLS: ``await nursery.start(server.serve_tls, tls_listeners, certificates)``;
    any door: ``await nursery.start(server.serve_door, Door(name, listeners, handler))``.
    Tests skip TCP: ``nursery.start_soon(server.handle_stream, memory_stream)``.
    """

    def __init__(
        self, config: ServerConfig | None = None, store: Store | None = None, bus: Bus | None = None
    ) -> None:
        """A server with ``config``, keeping history in ``store`` (default: in memory).

        ``bus`` links it to other nodes (default: a Redis bus if ``config.redis`` is
        set, else none).
        """
        self.config = config = config or ServerConfig()
        if bus is None and config.redis is not None:
            try:  # only a cluster needs the bus's code (and the redis extra)
                from triochat.bus.redis_bus import RedisBus
            except ImportError as exc:
                extra = "pip install 'triochat[redis]' (or '.[redis]' in a checkout)"
                raise ClusterError(
                    f"--redis needs {exc.name}, of the redis extra: {extra}"
                ) from None

            retain = config.retain_messages or MEMORY_RETAIN_MESSAGES
            bus = RedisBus(config.redis, room_retain=retain)
        self.hub = Hub(config, store, bus=bus)
        # The name IRC clients see (one server per process; tests may set it per server).
        IRC.server = config.irc_server_name or socket.gethostname() or "triochat"
        self.listeners = Listeners()
        self._ids = itertools.count(1)
        self._live = AddressCounter(config, config.max_clients)  # connections being served
        self._by_door: dict[str, int] = {}
        self._admitted: dict[str, int] = {}
        self._refused: dict[str, int] = {}
        self._no_connections = trio.Event()
        self._no_connections.set()
        self._scopes: set[trio.CancelScope] = set()  # one per live connection
        self._writers: trio.Nursery | None = None  # where backed-up connections' writers run
        self._stopping = False
        self._refusals = RepeatLimiter()  # a host hammering a full server

    @property
    def state(self) -> ChatState:
        """Who is where (read it between batches, e.g. in tests; the hub owns it)."""
        return self.hub.state

    @property
    def connections(self) -> int:
        """Connections currently being served."""
        return self._live.total

    @property
    def stopping(self) -> bool:
        """:meth:`shutdown` has begun: no connection is accepted or admitted any more."""
        return self._stopping

    def statistics(self) -> ServerStatistics:
        """The server's numbers now (copies: cheap, and safe to keep)."""
        return ServerStatistics(
            connections=self._live.total,
            by_door={door: n for door, n in self._by_door.items() if n},
            admitted=dict(self._admitted),
            refused=dict(self._refused),
            listeners=self.listeners.statistics(),
        )

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

    async def serve_door(
        self,
        door: Door,
        *,
        task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept on ``door`` (one row of the listener table) until :meth:`shutdown`.

        May run for several doors at a time. Returns once :meth:`shutdown` has stopped
        accepting and every connection has closed (or been cancelled after the flush
        deadline).
        """
        await self.listeners.serve(door, task_status=task_status)

    async def serve_listeners(
        self,
        listeners: list[trio.SocketListener],
        *,
        handler: Handler | None = None,
        task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept cleartext chat on ``listeners`` (the ``plain`` door; see :meth:`serve_door`).

        Each connection gets ``handler`` (default: :meth:`handle_stream`).
        """
        door = Door("plain", listeners, handler or self.handle_stream)
        await self.serve_door(door, task_status=task_status)

    async def serve_tls(
        self,
        listeners: list[trio.SocketListener],
        certificates: Certificates,
        *,
        task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept TLS chat on ``listeners`` with ``certificates`` (the ``tls`` door).

        Each connection's handshake runs in its own task under a deadline (see
        :class:`~triochat.server.listeners.TlsDoor`); then it is served like any other.
        """
        door = Door("tls", listeners, TlsDoor(self, certificates).handle)
        await self.serve_door(door, task_status=task_status)

    async def serve_irc(
        self,
        listeners: list[trio.SocketListener],
        *,
        task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept IRC clients on ``listeners`` (the ``irc`` door): the protocol is known."""
        door = Door("irc", listeners, self.handle_irc_stream)
        await self.serve_door(door, task_status=task_status)

    async def serve_irc_tls(
        self,
        listeners: list[trio.SocketListener],
        certificates: Certificates,
        *,
        task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept IRC over TLS on ``listeners`` (the ``irc-tls`` door), through the TLS door."""
        tls = TlsDoor(self, certificates, name="irc-tls", serve=self.serve_irc_transport)
        await self.serve_door(Door("irc-tls", listeners, tls.handle), task_status=task_status)

    async def handle_irc_stream(self, stream: trio.abc.Stream) -> None:
        """Serve one cleartext IRC connection (see :meth:`handle_stream`)."""
        peer, host = peer_address(stream)
        await self.serve_transport(for_stream(stream), peer, host, door="irc", irc=True)

    async def serve_irc_transport(
        self, transport: Transport, peer: str, host: str | None, *, secure: bool, door: str
    ) -> None:
        """Serve an IRC connection a TLS door has opened."""
        await self.serve_transport(transport, peer, host, secure=secure, door=door, irc=True)

    async def shutdown(self) -> None:
        """Stop accepting, tell every member, flush (bounded), then close everything."""
        if self._stopping:
            return
        self._stopping = True
        log_event(log, "server.shutting_down", connections=self._live.total)
        self.listeners.stop()
        # One deadline for the whole drain: the hub tells everyone, writers flush.
        with trio.move_on_after(self.config.flush_timeout):
            if not self.hub.stopped.is_set():
                await self.hub.inbound.send(Stop())
                await self.hub.stopped.wait()
            await self._no_connections.wait()
        if self._scopes:
            log_event(log, "server.flush_timeout", connections=len(self._scopes))
        for scope in self._scopes:
            scope.cancel()

    # -- one connection -----------------------------------------------------------------

    def _refusal(self, counted: str | None, address: str | None) -> tuple[str, str] | None:
        """Why a new connection cannot be served (the reason counted, the line), or None.

        ``counted`` is the address counted for ``--max-per-address`` (None: not
        counted); ``address`` is the client's address itself, checked against the bans.
        """
        config = self.config
        if self._stopping:
            return REFUSED_STOPPING, "server is shutting down"
        ban = self.hub.state.address_ban(address)
        if ban is not None:
            return REFUSED_BANNED, _banned(ban)
        full = self._live.full(counted)
        if full == "all":
            return REFUSED_FULL, f"server full ({config.max_clients} clients); try again later"
        if full == "address":
            return REFUSED_PER_ADDRESS, (
                f"too many connections from your address ({config.max_per_address}); "
                "close one and try again"
            )
        return None

    async def handle_stream(self, stream: trio.abc.Stream) -> None:
        """Serve one cleartext connection until it leaves, is dropped or the server stops.

        Never raises because of anything the peer does; a bug is logged, not spread.
        """
        peer, host = peer_address(stream)
        await self.serve_transport(for_stream(stream), peer, host)

    async def serve_stream(
        self, stream: trio.abc.Stream, peer: str, host: str | None, *, door: str, secure: bool
    ) -> None:
        """Serve a stream a door has opened (a :class:`~triochat.server.listeners.Serve`)."""
        await self.serve_transport(for_stream(stream), peer, host, secure=secure, door=door)

    async def serve_transport(
        self,
        transport: Transport,
        peer: str,
        host: str | None,
        *,
        secure: bool = False,
        door: str = "plain",
        irc: bool = False,
    ) -> None:
        """Serve one connection, whatever carries it (TCP, TLS, WebSocket, memory).

        ``peer`` names it in the log; ``host`` is its address, for per-address limits
        and bans (None: not counted). ``secure`` says the transport is encrypted (TLS),
        so passwords sent on it are not in the clear; ``door`` is the door it came in
        by, for the statistics; ``irc`` that it speaks IRC (the IRC doors). The
        transport's stream is closed when it ends.
        """
        if self._writers is None:
            raise RuntimeError("start ChatServer.run before serving connections")
        stream = transport.stream
        conn_id = next(self._ids)
        config = self.config
        counted = self._live.counted(host)
        refused = self._refusal(counted, host)
        if refused is not None:
            why, refusal = refused
            self._refused[why] = self._refused.get(why, 0) + 1
            repeats = self._refusals.allow(refusal, trio.current_time())
            if repeats is not None:
                held = repeats.held
                more = f" (and {held} more in {repeats.seconds:.0f} s)" if held else ""
                log_event(
                    log,
                    "connection.refused",
                    conn=conn_id,
                    address=peer,
                    reason=refusal,
                    _more=more,
                    repeated=held,
                )
            await _refuse(stream, refusal)
            return
        self._live.add(counted)
        self._by_door[door] = self._by_door.get(door, 0) + 1
        self._admitted[door] = self._admitted.get(door, 0) + 1
        if self._live.total == 1:
            self._no_connections = trio.Event()
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
            host=host,
            secure=secure,
        )
        scope = conn.scope  # cancelled by the hub to drop this member, or when done
        read_result: str | None = None
        told = False
        self._scopes.add(scope)
        try:
            try:
                with scope:
                    read_result = await read_commands(conn, inbound, config, irc=irc)
                    # The peer has stopped sending. Tell the hub now: it closes the
                    # connection once what is queued has been sent (cancelling this
                    # scope). A half-closed peer may still be reading; one that is
                    # not gets flush_timeout.
                    told = True
                    if read_result != SILENT:
                        await inbound.send(Gone(conn_id, leave_reason(read_result, conn)))
                        await trio.sleep(config.flush_timeout)
                    # else: it closed during the sniff, the hub never heard of it and
                    # nothing is queued: its per-address slot is free at once.
            finally:
                await conn.stop_writer()
                await _close(stream, config.flush_timeout)
        except* (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the peer went away while we closed our side, or the hub has stopped
        except* Exception:
            log_event(log, "connection.crashed", exc_info=True, conn=conn_id, address=peer)
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
            self._live.remove(counted)
            self._by_door[door] -= 1
            if not self._live.total:
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
