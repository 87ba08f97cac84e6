"""Framing: a byte stream in, lines out, with a hard bound on memory. No I/O, no trio.

A line is never buffered beyond ``max_line_bytes``: an overlong line is reported the
moment it crosses the limit and the rest of it is skipped as it arrives.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MAX_LINE_BYTES", "TOO_LONG", "LineBuffer", "LineTooLong"]

MAX_LINE_BYTES: Final = 4096  # IRC allows 512; pasted stack traces and URLs need more


class LineTooLong:
    """Marker yielded by :class:`LineBuffer` in place of a line over the limit."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "TOO_LONG"


TOO_LONG: Final = LineTooLong()


class LineBuffer:
    """Split a byte stream into lines, with a hard bound on what is buffered.

    Lines end with ``\\n``; a ``\\r`` just before it is dropped. A line longer than
    ``max_line_bytes`` is reported once as :data:`TOO_LONG` as soon as it crosses the
    limit; its remaining bytes are discarded up to and including the next newline, so
    memory use never exceeds ``max_line_bytes`` plus one chunk, however long the line.

    Modelled on h11's ``ReceiveBuffer``: ``feed`` data, then pull lines with
    ``next_line`` until it returns ``None``.
    """

    __slots__ = ("_buf", "_discarding", "_max", "_pos", "_ready")

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be at least 1")
        self._max = max_line_bytes
        self._buf = bytearray()
        self._discarding = False
        # A list read from _pos rather than a deque: an empty list is 56 bytes, an empty
        # deque over 600, and every idle connection holds one.
        self._ready: list[bytes | LineTooLong] = []
        self._pos = 0

    def __len__(self) -> int:
        """Number of complete lines (or TOO_LONG markers) waiting to be pulled."""
        return len(self._ready) - self._pos

    @property
    def partial_bytes(self) -> int:
        """Bytes of an unfinished line held in the buffer (never above the limit + 1)."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray) -> None:
        """Add received bytes; complete lines become available to :meth:`next_line`."""
        if not isinstance(data, bytes):
            data = bytes(data)
        start = 0
        limit = self._max
        while True:
            newline = data.find(b"\n", start)
            if newline < 0:
                if not self._discarding:
                    self._buf += data[start:]
                    # One byte of slack: the line may still end in "\r\n".
                    if len(self._buf) > limit + 1:
                        self._buf.clear()
                        self._discarding = True
                        self._ready.append(TOO_LONG)
                return
            if self._discarding:
                self._discarding = False
            else:
                if self._buf:
                    self._buf += data[start:newline]
                    line = bytes(self._buf)
                    self._buf.clear()
                else:
                    line = data[start:newline]
                if line.endswith(b"\r"):
                    line = line[:-1]
                self._ready.append(TOO_LONG if len(line) > limit else line)
            start = newline + 1

    def next_line(self) -> bytes | LineTooLong | None:
        """Return the next complete line (without its line end), or None if there is none."""
        ready = self._ready
        if self._pos >= len(ready):
            return None
        line = ready[self._pos]
        self._pos += 1
        if self._pos == len(ready):
            ready.clear()
            self._pos = 0
        return line

    def close(self) -> bytes | LineTooLong | None:
        """At end of stream: the unterminated last line, if one was being received.

        Returns :data:`TOO_LONG` if that line is over the limit and was not reported
        yet (it can sit one byte past the limit, in the slack kept for a ``\r``), and
        None if there is no such line or it was already reported.
        """
        line = bytes(self._buf).removesuffix(b"\r")
        self._buf.clear()
        if self._discarding or not line:
            return None
        if len(line) > self._max:
            return TOO_LONG
        return line
