"""A WebSocket as a ``trio.abc.Stream`` of chat lines: what the session reads and writes.

The chat server serves any stream through its transport seam
(:class:`triochat.server.transport.StreamTransport`); this module makes an accepted
WebSocket one such stream, so a browser member gets the very same read loop, rate
limit, line limit, bounded outbox and "too slow" policy as a TCP member:

* ``receive_some`` returns the payloads of received messages, each followed by
  ``\\n`` (see :mod:`triochat.web.frames`); ``b""`` once the peer has closed, and
  ``trio.BrokenResourceError`` if the connection ended without a close frame (the
  member is then "lost", as after a TCP reset: a browser always says goodbye).
* ``send_all`` sends each complete line it is given as one text message.
* ``aclose`` performs the closing handshake (bounded by :data:`CLOSE_TIMEOUT`), then
  closes the connection underneath.

One reader (the session) and one writer (the connection's writer task) use it at
once; the reader's own replies (pongs, the answer to a close) take the same send lock
as the writer, so frames never interleave.
"""

from __future__ import annotations

from typing import Final

import trio
from wsproto.connection import Connection

from triochat.web.frames import CLOSE_NORMAL, MessageLines, text_frames

__all__ = ["CLOSE_TIMEOUT", "WebSocketStream"]

CLOSE_TIMEOUT: Final = 1.0  # seconds for the peer to answer our close frame (one round trip)
RECEIVE_BYTES: Final = 65536  # one read of the connection underneath, as the TCP transport


class WebSocketStream(trio.abc.Stream):
    """An accepted server-side WebSocket, read and written as lines (module docstring)."""

    def __init__(
        self, transport_stream: trio.abc.Stream, ws: Connection, trailing: bytes = b""
    ) -> None:
        """Wrap ``ws`` (wsproto, after the handshake) over ``transport_stream``.

        ``trailing`` is what the peer sent after its upgrade request, already read.
        """
        self.transport_stream = transport_stream
        self._messages = MessageLines(ws)
        self._trailing = trailing
        self._pending = b""  # received lines not yet returned
        self._partial = b""  # an outgoing line whose newline has not been sent yet
        self._send_lock = trio.StrictFIFOLock()
        self._eof = False
        self._closed = False

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Received chat input (at most ``max_bytes``); ``b""`` once the peer closed."""
        if self._closed:
            raise trio.ClosedResourceError("the WebSocket was closed")
        while not self._pending:
            if self._eof:
                return b""
            if self._trailing:
                data, self._trailing = self._trailing, b""
            else:
                data = bytes(await self.transport_stream.receive_some(RECEIVE_BYTES))
            got = self._messages.receive(data)
            if got.lost:
                self._eof = True
                raise trio.BrokenResourceError("the connection ended without a close frame")
            if got.reply:
                await self._send_raw(got.reply)
            self._eof = got.closed
            self._pending = got.lines
        if max_bytes is None or max_bytes >= len(self._pending):
            out, self._pending = self._pending, b""
        else:
            out, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
        return out

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send each complete line of ``data`` as one text message.

        Once the peer has closed, output is dropped (as a TCP peer that has gone would
        never read it); the reader has already seen the end of input.
        """
        if self._closed:
            raise trio.ClosedResourceError("the WebSocket was closed")
        frames, self._partial = text_frames(self._partial + bytes(data))
        if frames and not self._eof:
            await self._send_raw(frames)

    async def wait_send_all_might_not_block(self) -> None:
        """Wait until the connection underneath can take more."""
        await self.transport_stream.wait_send_all_might_not_block()

    async def _send_raw(self, data: bytes) -> None:
        async with self._send_lock:
            await self.transport_stream.send_all(data)

    async def aclose(self) -> None:
        """Close the WebSocket (close frame, the peer's answer), then the connection.

        Bounded by :data:`CLOSE_TIMEOUT`; when cancelled, just closes the connection.
        """
        if self._closed:
            return
        self._closed = True
        try:
            frame = self._messages.close(CLOSE_NORMAL)
            if frame:
                with trio.move_on_after(CLOSE_TIMEOUT):
                    await self._send_raw(frame)
                    # The closing handshake: read (and ignore) until the peer's close.
                    while not self._messages.closed:
                        data = await self.transport_stream.receive_some(RECEIVE_BYTES)
                        if self._messages.receive(bytes(data)).closed or not data:
                            break
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the peer is gone already
        finally:
            await trio.aclose_forcefully(self.transport_stream)
