"""A WebSocket member's transport: the chat server's seam, over a :class:`WebSocketStream`.

:class:`WebSocketTransport` is :class:`triochat.server.transport.StreamTransport` plus
the direct write (see :mod:`triochat.web.stream`): over plain TCP an idle member's
output is framed and written in the hub's flush, with no writer task, exactly as for
a TCP member. Reading goes through the stream (frames, pings and the close handshake
need it), like any stream transport.
"""

from __future__ import annotations

from triochat.server.transport import StreamTransport
from triochat.web.stream import WebSocketStream

__all__ = ["WebSocketTransport"]


class WebSocketTransport(StreamTransport):
    """A :class:`StreamTransport` over a WebSocket whose idle writes go out directly."""

    __slots__ = ("_ws",)

    def __init__(self, ws: WebSocketStream) -> None:
        super().__init__(ws)  # reads and backed-up writes go through the stream
        self._ws = ws
        self.direct = ws.can_try_send

    def try_write(self, data: bytes) -> int:
        return self._ws.try_send(data)
