"""The transport seam: the only place that knows what a connection is made of.

Everything above this module reads and writes through one small interface, whatever
carries the bytes: ``try_read`` / ``wait_readable`` / ``try_write`` / ``send_all``.

* :class:`TcpTransport` is the fast path for plain TCP on POSIX: it reads the socket
  descriptor directly and parks in ``wait_readable``, and writes an idle socket with
  one non-blocking ``os.write``. Measured (docs/benchmarks.md): trio's
  ``receive_some`` keeps a chain of frames alive while it waits (about 1.5 KB per idle
  connection), and a writer task per line costs two scheduler trips per member.
* :class:`StreamTransport` works on any ``trio.abc.Stream``: memory streams in tests,
  TLS, WebSocket adapters. ``try_write`` always defers to the writer task.

Errors that mean "the peer is gone" (reset, broken pipe, a closed stream) are raised as
:class:`ConnectionLost`, so callers need to know only one exception.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable
from typing import Final, Protocol

import trio

__all__ = [
    "RECEIVE_BYTES",
    "ConnectionLost",
    "StreamTransport",
    "TcpTransport",
    "Transport",
    "for_stream",
]

RECEIVE_BYTES: Final = 65536  # one read per 64 KiB: large enough for a paste, small per connection


class ConnectionLost(Exception):
    """The peer reset or broke the connection."""


class Transport(Protocol):
    """How a connection's bytes move. One reader and at most one writer at a time."""

    stream: trio.abc.Stream
    direct: bool  # try_write may write (False: always leave writing to the writer task)

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
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ConnectionLost(str(exc)) from None


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
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ConnectionLost(str(exc)) from None


def for_stream(stream: trio.abc.Stream) -> Transport:
    """The best transport for ``stream``: direct descriptor I/O for TCP on POSIX."""
    if os.name == "posix" and isinstance(stream, trio.SocketStream):
        return TcpTransport(stream)
    return StreamTransport(stream)
