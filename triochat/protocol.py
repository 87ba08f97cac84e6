"""Framing and input hygiene: bytes in, clean text out. No I/O, no trio.

Rules of this module:

* Nothing here awaits or imports trio; every function is a pure transformation that a
  plain synchronous test can drive byte by byte.
* A line is never buffered beyond ``max_line_bytes``: an overlong line is reported the
  moment it crosses the limit and the rest of it is skipped as it arrives.
* Text that reaches another person always goes through :func:`sanitise` first.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "MAX_LINE_BYTES",
    "MAX_NAME_CHARS",
    "TOO_LONG",
    "LineBuffer",
    "LineTooLong",
    "decode_line",
    "name_error",
    "name_key",
    "sanitise",
]

MAX_LINE_BYTES: Final = 4096  # IRC allows 512; pasted stack traces and URLs need more
MAX_NAME_CHARS: Final = 24  # long enough for "firstname.lastname", short enough for a column

_NAME_RE: Final = re.compile(r"[A-Za-z0-9_.-]+")

# ANSI escape sequences, in their 7-bit (ESC-prefixed) and 8-bit (C1) spellings:
# CSI ... final byte; OSC / DCS / SOS / PM / APC strings up to BEL or ST (or end of text);
# and the two-byte ESC + one-character forms.
_ESCAPES: Final = re.compile(
    r"""
      (?:\x1b\[|\x9b) [0-?]* [\x20-/]* [@-~]?                    # CSI
    | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]) .*? (?:\x07|\x1b\\|\x9c|$)   # OSC, DCS, ...
    | \x1b [\x20-/]* [\x30-~]?                                   # other ESC sequences
    """,
    re.VERBOSE | re.DOTALL,
)

# What is left after escapes are gone: C0 controls but tab, DEL, C1 controls, and the
# Unicode bidi embedding/override/isolate marks that can reorder what a reader sees
# (CVE-2021-42574, "Trojan Source"), the Unicode line/paragraph separators, and lone
# surrogates (JSON "\ud800" escapes), which cannot be encoded as UTF-8 at all.
_UNSAFE_CHARS: Final = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069\ud800-\udfff]"
)


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

    def close(self) -> bytes | None:
        """At end of stream: return an unterminated last line, if one was being received."""
        line = bytes(self._buf).removesuffix(b"\r")
        self._buf.clear()
        if self._discarding or not line or len(line) > self._max:
            return None
        return line


def sanitise(text: str) -> str:
    """Remove everything from ``text`` that could act on a terminal instead of being read.

    Strips ANSI CSI/OSC/DCS escape sequences, C0 and C1 control characters (tab is
    kept), DEL, Unicode bidi override/isolate characters and lone surrogates.
    Printable text, including emoji and non-Latin scripts, is left exactly as it was.
    """
    if text.isprintable():  # fast path: the common case has nothing to remove
        return text
    return _UNSAFE_CHARS.sub("", _ESCAPES.sub("", text))


def decode_line(line: bytes) -> str:
    """Decode one received line as UTF-8 (invalid bytes become U+FFFD) and sanitise it."""
    return sanitise(line.decode("utf-8", "replace"))


def name_error(name: str) -> str | None:
    """Return why ``name`` is not a valid nickname, or None if it is valid."""
    if not name:
        return "a name needs at least one character"
    if len(name) > MAX_NAME_CHARS:
        return f"a name is at most {MAX_NAME_CHARS} characters"
    if not _NAME_RE.fullmatch(name):
        return "a name may contain only letters A-Z, digits, '_', '.' and '-'"
    return None


def name_key(name: str) -> str:
    """The form under which names are compared: unique without regard to case."""
    return name.casefold()
