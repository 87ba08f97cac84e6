"""WebSocket messages <-> the chat's lines. No trio, no sockets: bytes in, bytes out.

The chat protocol is lines; in a browser it is WebSocket text messages, one JSON event
each. :class:`MessageLines` turns what a WebSocket peer sends into the byte stream of
lines the session's read loop already understands, and :func:`text_frames` turns the
session's output (a batch of lines) into one text message per line.

Rules of this module:

* **One message is one line.** A received message's payload is passed on as it
  arrives (wsproto hands over partial frames) and ends with ``\\n`` when the message
  does. So an oversized message meets the session's own :class:`LineBuffer` limit and
  is discarded as it arrives, never buffered whole, and the sender gets the same
  ``line-too-long`` error as on TCP; the connection goes on. (A newline inside a
  message splits it into lines, exactly as on TCP; the page never sends one.)
* **Binary messages are read like text**: their bytes go through the same decoding
  (invalid UTF-8 becomes U+FFFD) and the same limits.
* Pings are answered; a close is answered and ends the input; a protocol violation
  (bad masking, invalid UTF-8 in a text message, a control frame too long) closes
  with the code wsproto names.
* Outgoing frames are built here, not by wsproto: a server's frames are unmasked and
  we never compress, so a text frame is a 2-, 4- or 10-byte header and the line.
  That is the hot path of every broadcast to a browser. After a partial write,
  :func:`written_lines` says which lines went out whole and how much of the next one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from wsproto.connection import Connection, ConnectionState
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Ping,
    TextMessage,
)

__all__ = [
    "CLOSE_GOING_AWAY",
    "CLOSE_NORMAL",
    "MessageLines",
    "Received",
    "text_frames",
    "written_lines",
]

CLOSE_NORMAL: Final = 1000  # RFC 6455 7.4.1: the purpose is fulfilled
CLOSE_GOING_AWAY: Final = 1001  # RFC 6455 7.4.1: the server is going down
TEXT_FIN: Final = 0x81  # FIN + opcode 1 (text): one whole message per frame
LEN_16: Final = 126  # payload length marker: 16-bit length follows
LEN_64: Final = 127  # payload length marker: 64-bit length follows


def text_frames(data: bytes) -> tuple[bytes, bytes]:
    """Frame each complete line of ``data`` as one text message.

    Returns the frames and what followed the last newline (an incomplete line, kept by
    the caller for the next call). Empty lines are skipped: an empty message means
    nothing in the chat protocol.
    """
    lines = data.split(b"\n")
    rest = lines.pop()
    parts: list[bytes] = []
    append = parts.append
    for line in lines:
        size = len(line)
        if size < LEN_16:
            if not size:
                continue
            append(bytes((TEXT_FIN, size)))
        elif size < 65536:
            append(bytes((TEXT_FIN, LEN_16)) + size.to_bytes(2, "big"))
        else:
            append(bytes((TEXT_FIN, LEN_64)) + size.to_bytes(8, "big"))
        append(line)
    return b"".join(parts), rest


def written_lines(data: bytes, written: int) -> tuple[int, int]:
    """How far ``written`` bytes of ``text_frames(data)[0]`` got, in terms of ``data``.

    Returns the bytes of ``data`` whose frames went out whole (complete lines, newline
    included) and how many bytes of the next line's frame went out already (the caller
    skips those when it frames that line again). Only called after a partial write.
    """
    consumed = 0
    frame_end = 0
    for line in data.split(b"\n")[:-1]:
        size = len(line)
        frame = 0 if not size else size + (2 if size < LEN_16 else 4 if size < 65536 else 10)
        if frame_end + frame > written:
            return consumed, written - frame_end
        frame_end += frame
        consumed += size + 1
    return consumed, 0


@dataclass(slots=True)
class Received:
    """What one chunk of input from the peer amounts to.

    Attributes:
        lines: chat input for the session's line buffer (``b""`` if none).
        reply: bytes to send back at once (pongs, the answer to a close), or ``b""``.
        closed: the peer has closed (or broken) the WebSocket: no more input.
        lost: the connection ended without a close frame (a vanished peer, not a leave).
    """

    lines: bytes = b""
    reply: bytes = b""
    closed: bool = False
    lost: bool = False


class MessageLines:
    """A server-side WebSocket after the handshake, read as lines (see the module docstring)."""

    def __init__(self, ws: Connection) -> None:
        """Wrap ``ws``, a server-side wsproto connection that has accepted the upgrade."""
        self.ws = ws

    def receive(self, data: bytes) -> Received:
        """Feed bytes from the peer (``b""`` for end of stream); say what they amount to."""
        ws = self.ws
        if ws.state is ConnectionState.CLOSED:
            return Received(closed=True, lost=not data)
        ws.receive_data(data or None)
        out = Received()
        lines: list[bytes] = []
        replies: list[bytes] = []
        for event in ws.events():
            if isinstance(event, TextMessage):
                lines.append(event.data.encode())
                if event.message_finished:
                    lines.append(b"\n")
            elif isinstance(event, BytesMessage):
                lines.append(bytes(event.data))
                if event.message_finished:
                    lines.append(b"\n")
            elif isinstance(event, Ping):
                replies.append(ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                if ws.state is ConnectionState.REMOTE_CLOSING:  # the peer closes: answer
                    replies.append(ws.send(event.response()))
                elif ws.state is ConnectionState.OPEN:  # a protocol violation: we close
                    replies.append(ws.send(CloseConnection(code=event.code)))
                out.closed = True
                out.lost = not data  # end of stream: wsproto reports 1006, no frame came
                break
            # Pongs (we send no pings) and anything newer are ignored.
        out.lines = b"".join(lines)
        out.reply = b"".join(replies)
        return out

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> bytes:
        """The close frame to send, if one may still be sent (else ``b""``)."""
        if self.ws.state not in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            return b""
        return self.ws.send(CloseConnection(code=code, reason=reason or None))

    @property
    def closed(self) -> bool:
        """Both sides have sent their close frames, or the peer is gone."""
        return self.ws.state is ConnectionState.CLOSED
