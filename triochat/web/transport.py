"""A WebSocket member's transport: the chat server's seam, over a :class:`WebSocketStream`.

:class:`WebSocketTransport` is :class:`triochat.server.transport.StreamTransport` plus
the direct write (see :mod:`triochat.web.stream`): over plain TCP an idle member's
output is framed and written in the hub's flush, with no writer task, exactly as for
a TCP member. Reading goes through the stream (frames, pings and the close handshake
need it), like any stream transport.
"""

from __future__ import annotations

from typing import Final

import trio

from triochat.server.transport import ConnectionLost
from triochat.web.stream import WebSocketStream

__all__ = ["WebSocketTransport"]

RECEIVE_BYTES: Final = 65536  # one read of chat input, as the other transports


class WebSocketTransport:
    """The transport seam (``try_read`` / ``wait_readable`` / ``try_write`` / ``send_all``)."""

    __slots__ = ("_pending", "_ws", "direct", "stream")

    def __init__(self, ws: WebSocketStream) -> None:
        self.stream: trio.abc.Stream = ws  # what the server closes (and refuses through)
        self._ws = ws
        self.direct = ws.can_try_send
        self._pending: bytes | None = None

    def try_read(self) -> bytes | None:
        data, self._pending = self._pending, None
        return data

    async def wait_readable(self) -> None:
        try:
            self._pending = await self._ws.receive_some(RECEIVE_BYTES)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ConnectionLost(str(exc)) from None

    def try_write(self, data: bytes) -> int:
        return self._ws.try_send(data)

    async def send_all(self, data: bytes) -> None:
        try:
            await self._ws.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ConnectionLost(str(exc)) from None
