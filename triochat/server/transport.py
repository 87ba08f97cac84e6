"""The transport seam: the only place that knows what a connection is made of.

Everything above this module reads and writes through one small interface, whatever
carries the bytes: ``try_read`` / ``wait_readable`` / ``try_write`` / ``send_all``.

* :class:`TcpTransport` is the fast path for plain TCP on POSIX: it reads the socket
  descriptor directly and parks in ``wait_readable``, and writes an idle socket with
  one non-blocking ``os.write``. Measured (docs/benchmarks.md): trio's
  ``receive_some`` keeps a chain of frames alive while it waits (about 1.5 KB per idle
  connection), and a writer task per line costs two scheduler trips per member.
* :class:`StreamTransport` works on any ``trio.abc.Stream``: memory streams in tests,
  WebSocket adapters. ``try_write`` always defers to the writer task.
* TLS has its own descriptor transport, :mod:`triochat.server.tls_transport` (OpenSSL
  on memory buffers), built on the same interface.

Errors that mean "the peer is gone" (reset, broken pipe, a closed stream) are raised as
:class:`ConnectionLost`, so callers need to know only one exception.

Every accepted TCP socket, TLS or not, gets :func:`set_keepalive`: a peer that vanishes
without a word (a laptop shut, a network gone) is found by the kernel within about two
minutes, with no task, timer or memory of ours per connection.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Awaitable
from typing import Final, Protocol

import trio

__all__ = [
    "KEEPALIVE_IDLE",
    "KEEPALIVE_INTERVAL",
    "KEEPALIVE_PROBES",
    "RECEIVE_BYTES",
    "USER_TIMEOUT_MS",
    "ConnectionLost",
    "StreamTransport",
    "TcpTransport",
    "Transport",
    "for_stream",
    "keepalive_options",
    "peer_address",
    "set_keepalive",
]

RECEIVE_BYTES: Final = 65536  # one read per 64 KiB: large enough for a paste, small per connection
KEEPALIVE_IDLE: Final = 60  # seconds of silence before the kernel probes a peer (Linux: 2 hours)
KEEPALIVE_INTERVAL: Final = 10  # seconds between probes that get no answer
KEEPALIVE_PROBES: Final = 5  # unanswered probes before the kernel gives up: 60 + 5 * 10 = 110 s
# Keepalive only probes a connection with nothing unacknowledged. A dead peer that we are
# still sending to is retried for about 15 minutes instead (tcp_retries2), unless
# TCP_USER_TIMEOUT bounds it: milliseconds output may stay unacknowledged, the same 110 s.
USER_TIMEOUT_MS: Final = (KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_PROBES) * 1000


class ConnectionLost(Exception):
    """The peer reset or broke the connection."""


class Transport(Protocol):
    """How a connection's bytes move. One reader and at most one writer at a time."""

    direct: bool  # try_write may write (False: always leave writing to the writer task)

    @property
    def stream(self) -> trio.abc.Stream:
        """The connection as a trio stream: to refuse it with a line, and to close it."""

    def try_read(self) -> bytes | None:
        """Bytes received (``b""`` at EOF), or None if there are none yet.

        Raises:
            ConnectionLost: the connection was reset.
        """

    def wait_readable(self) -> Awaitable[None]:
        """Wait until :meth:`try_read` has something (data, EOF or an error)."""

    def try_write(self, data: bytes) -> int:
        """Write without waiting; return how many bytes were taken (0 if none).

        Raises:
            OSError: the connection is broken (the writer task will report it).
        """

    async def send_all(self, data: bytes) -> None:
        """Write everything, waiting as long as the peer needs.

        Raises:
            ConnectionLost: the connection broke while sending.
        """


class TcpTransport:
    """A TCP socket on POSIX, read and written through its descriptor directly."""

    __slots__ = ("direct", "fd", "stream")

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream: trio.abc.Stream = stream
        self.fd = stream.socket.fileno()
        self.direct = True

    def try_read(self) -> bytes | None:
        try:
            return os.read(self.fd, RECEIVE_BYTES)
        except BlockingIOError:
            return None
        except OSError as exc:  # ECONNRESET and friends
            raise ConnectionLost(str(exc)) from None

    def wait_readable(self) -> Awaitable[None]:
        # A plain method returning trio's awaitable: an async def here would add one
        # suspended frame to every idle connection.
        return trio.lowlevel.wait_readable(self.fd)  # noqa: ASYNC105 - awaited by the caller

    def try_write(self, data: bytes) -> int:
        # os.write rather than send_all: no task switch, no wait. Only called while no
        # writer task runs, so the two never interleave. The descriptor stays valid:
        # the connection's outbox is abandoned before its stream is closed.
        try:
            return os.write(self.fd, data)
        except BlockingIOError:
            return 0

    async def send_all(self, data: bytes) -> None:
        await _send_all(self.stream, data)


class StreamTransport:
    """Any trio stream (memory, TLS, WebSocket): reads via ``receive_some``."""

    __slots__ = ("_pending", "direct", "stream")

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.direct = False
        self._pending: bytes | None = None

    def try_read(self) -> bytes | None:
        data, self._pending = self._pending, None
        return data

    async def wait_readable(self) -> None:
        try:
            self._pending = bytes(await self.stream.receive_some(RECEIVE_BYTES))
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ConnectionLost(str(exc)) from None

    def try_write(self, data: bytes) -> int:
        return 0

    async def send_all(self, data: bytes) -> None:
        await _send_all(self.stream, data)


async def _send_all(stream: trio.abc.Stream, data: bytes) -> None:
    """``stream.send_all``, with a peer gone raised as :class:`ConnectionLost`."""
    try:
        await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise ConnectionLost(str(exc)) from None


def keepalive_options() -> list[tuple[int, int, int]]:
    """The ``(level, option, value)`` triples :func:`set_keepalive` sets on this platform.

    ``SO_KEEPALIVE`` everywhere; the timings where the platform has them (Linux has all
    four; macOS calls the idle time ``TCP_KEEPALIVE``; Windows has none of the names).
    """
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    idle = getattr(socket, "TCP_KEEPIDLE", None) or getattr(socket, "TCP_KEEPALIVE", None)
    for option, value in (
        (idle, KEEPALIVE_IDLE),
        (getattr(socket, "TCP_KEEPINTVL", None), KEEPALIVE_INTERVAL),
        (getattr(socket, "TCP_KEEPCNT", None), KEEPALIVE_PROBES),
        (getattr(socket, "TCP_USER_TIMEOUT", None), USER_TIMEOUT_MS),
    ):
        if option is not None:
            options.append((socket.IPPROTO_TCP, option, value))
    return options


def set_keepalive(sock: trio.socket.SocketType) -> None:
    """Let the kernel find a vanished peer: probe after 60 s of silence, give up at 110 s.

    A peer that is gone then shows up as a reset on the next read, and its member
    leaves as "lost". Options the socket refuses (it may be reset already) are skipped.
    """
    for level, option, value in keepalive_options():
        with contextlib.suppress(OSError):
            sock.setsockopt(level, option, value)


def peer_address(stream: trio.abc.Stream) -> tuple[str, str | None]:
    """The peer as ``host:port`` for the log, and its address (None if it has none).

    Streams that are not IP sockets (memory streams in tests) have no address and are
    not subject to per-address limits. Under TLS the address is the TCP stream's.
    """
    while isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
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


def for_stream(stream: trio.abc.Stream) -> Transport:
    """The best transport for ``stream``: direct descriptor I/O for TCP on POSIX."""
    if os.name == "posix" and isinstance(stream, trio.SocketStream):
        return TcpTransport(stream)
    return StreamTransport(stream)
