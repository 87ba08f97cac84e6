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
* **Frames are counted, and parsed a few at a time.** Each call parses at most
  ``limit`` frames of what was fed (an empty frame costs wsproto about 11 us, and one
  64 KiB read holds 10,000 of them); :class:`Received` says how many it parsed and
  whether more may be waiting, so the caller can charge them to an
  :class:`InputBudget` and read no more while it is spent. A message in more than
  :data:`MAX_MESSAGE_FRAMES` frames closes the connection with 1009: empty
  continuation frames would otherwise never complete a line, and so never meet the
  line rate limit.
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
    "CLOSE_TOO_BIG",
    "FRAMES_PER_LINE",
    "MAX_MESSAGE_FRAMES",
    "PULL_FRAMES",
    "InputBudget",
    "MessageLines",
    "Received",
    "text_frames",
    "written_lines",
]

CLOSE_NORMAL: Final = 1000  # RFC 6455 7.4.1: the purpose is fulfilled
CLOSE_GOING_AWAY: Final = 1001  # RFC 6455 7.4.1: the server is going down
CLOSE_TOO_BIG: Final = 1009  # RFC 6455 7.4.1: a message too big to process
# A browser sends each message as one frame; other clients may fragment, and send pings.
# Four frames per line of --rate-limit / --burst leaves them room and still bounds a
# flood of empty frames to 20 a second by default (1.65 million in 10 s before).
FRAMES_PER_LINE: Final = 4
MAX_MESSAGE_FRAMES: Final = 128  # frames of one message; a 4 KiB line in 32-byte pieces fits
PULL_FRAMES: Final = 64  # frames parsed per call at most: ~0.7 ms of wsproto, then others run
MAX_HEADER: Final = 14  # bytes of a client frame's header at most (10 + a 4-byte mask)
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


class InputBudget:
    """How fast one WebSocket's input is read: frames and bytes per second, with bursts.

    Two token buckets, derived from the line limits so one setting tunes both: per
    second ``rate`` lines become ``rate * FRAMES_PER_LINE`` frames and ``rate`` full
    lines of bytes (``line_bytes`` plus a frame header each); the bursts likewise from
    ``burst``. What is spent past a burst is borrowed: :meth:`charge` says how long to
    read nothing, as :class:`triochat.core.ratelimit.TokenBucket` does for lines.
    A ``rate`` of 0 (or less) disables it, as it disables the line limit. No I/O: the
    caller supplies the clock.
    """

    __slots__ = ("_byte_burst", "_byte_rate", "_bytes", "_frame_burst", "_frame_rate",
                 "_frames", "_last")  # fmt: skip

    def __init__(self, rate: float, burst: int, line_bytes: int, now: float) -> None:
        """A full budget at ``now`` for ``rate`` lines a second, ``burst`` at once."""
        self._frame_rate = rate * FRAMES_PER_LINE
        self._byte_rate = rate * (line_bytes + MAX_HEADER)
        self._frame_burst = self._frames = float(max(burst, 1) * FRAMES_PER_LINE)
        self._byte_burst = self._bytes = float(max(burst, 1) * (line_bytes + MAX_HEADER))
        self._last = now

    def charge(self, frames: int, nbytes: int, now: float) -> float:
        """Spend ``frames`` and ``nbytes``; return how many seconds to read nothing (0: go on)."""
        if self._frame_rate <= 0:
            return 0.0
        elapsed = max(0.0, now - self._last)
        self._last = max(self._last, now)  # a clock stepping back must not earn tokens twice
        self._frames = min(self._frame_burst, self._frames + elapsed * self._frame_rate) - frames
        self._bytes = min(self._byte_burst, self._bytes + elapsed * self._byte_rate) - nbytes
        return max(0.0, -self._frames / self._frame_rate, -self._bytes / self._byte_rate)


@dataclass(slots=True)
class Received:
    """What one chunk of input from the peer amounts to.

    Attributes:
        lines: chat input for the session's line buffer (``b""`` if none).
        reply: bytes to send back at once (pongs, the answer to a close), or ``b""``.
        closed: the peer has closed (or broken) the WebSocket: no more input.
        lost: the connection ended without a close frame (a vanished peer, not a leave).
        frames: frames parsed (data frames or pieces of them, and control frames).
        more: the limit was reached: frames may be waiting (call :meth:`MessageLines.pull`).
    """

    lines: bytes = b""
    reply: bytes = b""
    closed: bool = False
    lost: bool = False
    frames: int = 0
    more: bool = False


class MessageLines:
    """A server-side WebSocket after the handshake, read as lines (see the module docstring)."""

    def __init__(self, ws: Connection) -> None:
        """Wrap ``ws``, a server-side wsproto connection that has accepted the upgrade."""
        self.ws = ws
        self._fragments = 0  # frames of the message under way

    def receive(self, data: bytes, limit: int = PULL_FRAMES) -> Received:
        """Feed bytes from the peer (``b""`` for end of stream); parse up to ``limit`` frames.

        Call only when the last call's :attr:`Received.more` was False (everything fed
        before is parsed), so the end of stream comes after every frame before it.
        """
        if self.ws.state is ConnectionState.CLOSED:
            return Received(closed=True, lost=not data)
        self.ws.receive_data(data or None)
        return self.pull(limit, eof=not data)

    def pull(self, limit: int = PULL_FRAMES, *, eof: bool = False) -> Received:
        """Parse up to ``limit`` more frames of what was fed already; say what they amount to."""
        ws = self.ws
        out = Received()
        lines: list[bytes] = []
        replies: list[bytes] = []
        frames = 0
        # Parsed lazily: stopping early leaves the rest in wsproto's buffer, intact.
        for event in ws.events():
            frames += 1
            if isinstance(event, TextMessage | BytesMessage):
                data = event.data
                lines.append(data.encode() if isinstance(data, str) else bytes(data))
                if event.message_finished:
                    lines.append(b"\n")
                    self._fragments = 0
                elif event.frame_finished:
                    self._fragments += 1
                    # Endless pieces of one line: we close (unless we are closing already,
                    # when the rest is read only until the peer's answer, bounded by time).
                    if self._fragments > MAX_MESSAGE_FRAMES and ws.state is ConnectionState.OPEN:
                        reason = f"a message in more than {MAX_MESSAGE_FRAMES} frames"
                        replies.append(ws.send(CloseConnection(CLOSE_TOO_BIG, reason)))
                        out.closed = True
                        break
            elif isinstance(event, Ping):
                replies.append(ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                if ws.state is ConnectionState.REMOTE_CLOSING:  # the peer closes: answer
                    replies.append(ws.send(event.response()))
                elif ws.state is ConnectionState.OPEN:  # a protocol violation: we close
                    replies.append(ws.send(CloseConnection(code=event.code)))
                out.closed = True
                out.lost = eof  # end of stream: wsproto reports 1006, no frame came
                break
            # Pongs (we send no pings) and anything newer are ignored.
            if frames >= limit:
                out.more = True
                break
        out.frames = frames
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
