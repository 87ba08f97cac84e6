"""A WebSocket as a ``trio.abc.Stream`` of chat lines: what the session reads and writes.

The chat server serves any stream through its transport seam
(:class:`triochat.server.transport.StreamTransport`); this module makes an accepted
WebSocket one such stream, so a browser member gets the very same read loop, rate
limit, line limit, bounded outbox and "too slow" policy as a TCP member:

* ``receive_some`` returns the payloads of received messages, each followed by
  ``\\n`` (see :mod:`triochat.web.frames`); ``b""`` once the peer has closed, and
  ``trio.BrokenResourceError`` if the connection ended without a close frame (the
  member is then "lost", as after a TCP reset: a browser always says goodbye).
* **Frames are paced.** Each read is charged to the connection's
  :class:`~triochat.web.frames.InputBudget` (frames and bytes per second, from the
  same ``--rate-limit`` and ``--burst`` as lines); once it is spent, ``receive_some``
  reads nothing until it refills, so the kernel buffer fills and TCP slows the sender,
  exactly as the session's line bucket does. A flood of empty or one-byte frames, which
  never completes a line, is read at that pace too; the other members never wait.
* ``send_all`` sends each complete line it is given as one text message.
* ``aclose`` performs the closing handshake (bounded by :data:`CLOSE_TIMEOUT`), then
  closes the connection underneath.

One reader (the session) and one writer (the connection's writer task) use it at
once; the reader's own replies (pongs, the answer to a close) take the same send lock
as the writer, so frames never interleave.

**The direct write.** Over plain TCP, :meth:`WebSocketStream.try_send` frames an idle
member's lines and writes them at once through
:class:`~triochat.server.transport.TcpTransport` (the one owner of descriptor I/O),
as the chat server does for TCP members, instead of starting a writer task per batch:
measured in docs/benchmarks.md (steady-mixed), the writer task per batch made a
WebSocket member's latency ten times a TCP member's. If the kernel takes part of a
frame, the lines before it count as sent, the rest goes back to the outbox, and the
bytes of that frame already written are skipped when it is framed again.
"""

from __future__ import annotations

import math
import os
from typing import Final

import trio
from wsproto.connection import Connection

from triochat.server.transport import TcpTransport
from triochat.web.frames import (
    CLOSE_NORMAL,
    InputBudget,
    MessageLines,
    text_frames,
    written_lines,
)

__all__ = ["CLOSE_TIMEOUT", "WebSocketStream"]

CLOSE_TIMEOUT: Final = 1.0  # seconds for the peer to answer our close frame (one round trip)
RECEIVE_BYTES: Final = 65536  # one read of the connection underneath, as the TCP transport


class WebSocketStream(trio.abc.Stream):
    """An accepted server-side WebSocket, read and written as lines (module docstring)."""

    def __init__(
        self,
        transport_stream: trio.abc.Stream,
        ws: Connection,
        trailing: bytes = b"",
        budget: InputBudget | None = None,
    ) -> None:
        """Wrap ``ws`` (wsproto, after the handshake) over ``transport_stream``.

        ``trailing`` is what the peer sent after its upgrade request, already read;
        ``budget`` paces reading (None: as fast as the peer sends).
        """
        self.transport_stream = transport_stream
        self._messages = MessageLines(ws)
        self._trailing = trailing
        self._budget = budget
        self._ready_at = -math.inf  # over budget: read nothing before this time
        self._more = False  # frames may be waiting in wsproto's buffer, not parsed yet
        self._pending = b""  # received lines not yet returned
        self._partial = b""  # an outgoing line whose newline has not been sent yet
        self._send_lock = trio.StrictFIFOLock()
        self._eof = False
        self._closed = False
        self._skip = 0  # bytes of the next line's frame already written (a partial write)
        self._whole = True  # no frame was cut off mid-way (a cancelled or failed send)
        self._direct = (
            TcpTransport(transport_stream)
            if os.name == "posix" and isinstance(transport_stream, trio.SocketStream)
            else None
        )

    @property
    def can_try_send(self) -> bool:
        """Whether :meth:`try_send` can ever write (plain TCP underneath)."""
        return self._direct is not None

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Received chat input (at most ``max_bytes``); ``b""`` once the peer closed."""
        if self._closed:
            raise trio.ClosedResourceError("the WebSocket was closed")
        while not self._pending:
            if self._eof:
                return b""
            if self._ready_at > trio.current_time():
                await trio.sleep_until(self._ready_at)  # back-pressure: the budget refills
            nbytes = 0
            if self._more:
                await trio.lowlevel.checkpoint()  # between pulls of one read: others run
                got = self._messages.pull()
            else:
                if self._trailing:
                    data, self._trailing = self._trailing, b""
                else:
                    data = bytes(await self.transport_stream.receive_some(RECEIVE_BYTES))
                got = self._messages.receive(data)
                nbytes = len(data)
            self._more = got.more
            if self._budget is not None:
                now = trio.current_time()
                self._ready_at = now + self._budget.charge(got.frames, nbytes, now)
            if got.lost:
                self._eof = True
                raise trio.BrokenResourceError("the connection ended without a close frame")
            self._eof = got.closed
            self._pending = got.lines
            if got.reply:
                await self._send_raw(got.reply)
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
        if self._skip:
            frames, self._skip = frames[self._skip :], 0
        if frames and not self._eof:
            await self._send_raw(frames)

    def try_send(self, data: bytes) -> int:
        """Send whole lines without waiting; return how many bytes of ``data`` were taken.

        0 means "use :meth:`send_all`": not plain TCP, a send in progress, or an
        incomplete line. Raises ``OSError`` if the connection is broken.
        """
        if self._direct is None or self._closed or self._partial or self._send_lock.locked():
            return 0
        if self._eof:
            return len(data)  # the peer has closed: dropped, as send_all does
        if not data.endswith(b"\n"):
            return 0
        frames, _ = text_frames(data)
        skip = self._skip
        out = frames[skip:] if skip else frames
        written = self._direct.try_write(out)
        if written == len(out):
            self._skip = 0
            return len(data)
        taken, self._skip = written_lines(data, skip + written)
        return taken

    async def wait_send_all_might_not_block(self) -> None:
        """Wait until the connection underneath can take more."""
        await self.transport_stream.wait_send_all_might_not_block()

    async def _send_raw(self, data: bytes) -> None:
        async with self._send_lock:
            self._whole = False
            await self.transport_stream.send_all(data)
            self._whole = True

    async def aclose(self) -> None:
        """Close the WebSocket (close frame, the peer's answer), then the connection.

        Bounded by :data:`CLOSE_TIMEOUT`; when cancelled, just closes the connection.
        """
        if self._closed:
            return
        self._closed = True
        try:
            # After a frame cut off mid-way the peer could not read a close frame.
            frame = self._messages.close(CLOSE_NORMAL) if self._whole and not self._skip else b""
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
