"""Input hygiene: received text in, text safe to show on a terminal out. No I/O, no trio.

Text that reaches another person always goes through :func:`sanitise` first; the
parsers in :mod:`triochat.core.commands` do that for every field they return.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["decode_line", "has_visible", "is_noise", "sanitise"]

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
