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
    "has_visible",
    "is_noise",
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
# Also every Default_Ignorable_Code_Point (Unicode DerivedCoreProperties.txt): zero
# width spaces, word joiners, the BOM, Hangul fillers, tag characters and the like
# render as nothing and let a message look empty or two names look equal. Kept, as
# scripts and emoji need them: ZWNJ/ZWJ (U+200C/D: Persian, Indic, emoji sequences)
# and the variation selectors (U+180B-D, U+180F, U+FE00-F, U+E0100-E01EF).
_UNSAFE_CHARS: Final = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e"
    "\u200b\u200e\u200f\u202a-\u202e\u2028\u2029\u2060-\u206f\u3164\ufeff\uffa0"
    "\ufff0-\ufff8\ud800-\udfff\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0000-\U000e00ff\U000e01f0-\U000e0fff]"
)

# Terminal noise: C0 controls, DEL and C1 controls (what a stray key press sends).
_CONTROLS: Final = re.compile("[\x00-\x1f\x7f-\x9f]")

# Characters that are kept (see above) but show nothing on their own, plus the braille
# blank (U+2800), often used to post "empty" messages: a text made only of these and
# whitespace has nothing visible in it.
_INVISIBLE: Final = re.compile(
    "[\\s\u200c\u200d\u180b-\u180d\u180f\u2800\ufe00-\ufe0f\U000e0100-\U000e01ef]*"
)

# Names: unique under a confusable skeleton, not just case. Within the characters a
# name may use, Unicode's confusables table (UTS #39) maps "0" to "O", "1", "I" and
# "|" to "l", and "m" to "rn"; case folding joins "I" to "i" as well, so i, I, l, L
# and 1 are one letter for uniqueness, as are o, O and 0, and m and rn.
_SKELETON: Final = str.maketrans({"i": "l", "1": "l", "|": "l", "0": "o", "m": "rn"})


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


def sanitise(text: str) -> str:
    """Remove everything from ``text`` that could act on a terminal instead of being read.

    Strips ANSI CSI/OSC/DCS escape sequences, C0 and C1 control characters (tab is
    kept), DEL, Unicode bidi override/isolate characters, lone surrogates and the
    default-ignorable code points that render as nothing (zero width spaces, the BOM,
    Hangul fillers, tag characters), keeping the joiners and variation selectors that
    scripts and emoji need.
    Printable text, including emoji and non-Latin scripts, is left exactly as it was.
    """
    if text.isascii() and text.isprintable():  # fast path: nothing to remove
        return text
    return _UNSAFE_CHARS.sub("", _ESCAPES.sub("", text))


def is_noise(text: str) -> bool:
    """True if ``text`` is only whitespace, control characters and escape sequences.

    Such a line (a stray arrow key in netcat, a bare Enter) is ignored silently; a line
    of invisible *characters* (zero width spaces, fillers) is answered with an error.
    """
    return not _CONTROLS.sub("", _ESCAPES.sub("", text)).strip()


def has_visible(text: str) -> bool:
    """True if ``text`` (already sanitised) shows anything: not only blanks and joiners."""
    return _INVISIBLE.fullmatch(text) is None


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
    """The form under which names are compared for uniqueness.

    Case-insensitive and confusable-insensitive: ``alice``, ``ALICE``, ``aIice`` and
    ``a1ice`` have one key, so only one of them can be online at a time.
    """
    return name.casefold().translate(_SKELETON)
