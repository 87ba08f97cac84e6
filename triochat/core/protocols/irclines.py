"""IRC lines: splitting one into tags, source, verb and parameters, and making one. No I/O.

RFC 1459/2812 framing as clients use it, with IRCv3 message tags: a line is at most
:data:`MAX_LINE_BYTES` bytes without its tags (triochat reads up to the server's line
limit, as on its other doors), and its tags at most :data:`MAX_TAG_BYTES` with the
``@`` and the space after them (:func:`too_long`: ``417`` beyond); the last parameter
may contain spaces when it starts with ``:``. The framing layer has already cut the
stream into lines and the reader decoded them (invalid UTF-8 is U+FFFD), so nothing
here can fail on bytes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

__all__ = [
    "MAX_LINE_BYTES",
    "MAX_TAG_BYTES",
    "IrcLine",
    "line",
    "numeric",
    "parse_line",
    "source",
    "time_tag",
    "too_long",
]

MAX_LINE_BYTES: Final = 512  # RFC 1459: a line, CR-LF included, without IRCv3 tags
MAX_TAG_BYTES: Final = 4096  # IRCv3 message-tags: a client's tag data is at most 4094, + "@" " "
MAX_PARAMS: Final = 15  # RFC 1459: at most 15 parameters
# Whose last parameter is text, sent with ":" even when one word (as servers do).
_TEXT_LAST: Final = frozenset({"PRIVMSG", "NOTICE", "TOPIC", "KICK", "QUIT", "ERROR"})
_WORD_LAST: Final = frozenset({"004", "221", "324", "333"})  # numerics ending in a word


@dataclass(frozen=True, slots=True)
class IrcLine:
    """One parsed IRC line."""

    verb: str  # upper case
    params: tuple[str, ...]
    tags: dict[str, str]


def parse_line(text: str) -> IrcLine | None:
    """Split one line (without its line end); None for a line with no verb."""
    text = text.strip("\r\n\0")
    tags: dict[str, str] = {}
    if text.startswith("@"):
        raw, _, text = text.partition(" ")
        for item in raw[1:].split(";"):
            key, _, value = item.partition("=")
            if key:
                tags[key] = value
    text = text.lstrip(" ")
    if text.startswith(":"):  # a source: clients need not send one; ignored
        _, _, text = text.partition(" ")
    text = text[: MAX_LINE_BYTES * 2]  # characters, not bytes: a bound, not the rule
    head, sep, trailing = text.partition(" :")
    words = head.split()
    if not words:
        return None
    if head.startswith(":"):  # "VERB :x" with nothing between
        return None
    params = words[1:]
    if sep:
        params.append(trailing)
    return IrcLine(words[0].upper(), tuple(params[:MAX_PARAMS]), tags)


def too_long(line: bytes, limit: int) -> bool:
    """Whether ``line`` (without its line end) is over the limits: its tags (``@`` and the
    space after them included) over :data:`MAX_TAG_BYTES`, or the rest over ``limit``."""
    if line.startswith(b"@"):
        end = line.find(b" ")
        tags = len(line) if end < 0 else end + 1
        if tags > MAX_TAG_BYTES:
            return True
        line = line[tags:]
    return len(line) > limit


def source(name: str, host: str) -> str:
    """A member's IRC source (``nick!user@host``); every mode's members look alike."""
    return f"{name}!{name}@{host}"


def line(src: str, verb: str, *params: str, tags: str = "") -> str:
    """One line (with CR-LF); the last parameter gets a ``:`` when it needs one."""
    parts = [f"@{tags} " if tags else "", f":{src} " if src else "", verb]
    if params:
        *middle, last = params
        for param in middle:
            parts.append(f" {param}")
        text = verb in _TEXT_LAST or (verb.isdigit() and verb not in _WORD_LAST)
        if text or not last or " " in last or last.startswith(":"):
            parts.append(f" :{last}")
        else:
            parts.append(f" {last}")
    return "".join(parts) + "\r\n"


def numeric(server: str, code: str, nick: str, *params: str) -> str:
    """A numeric reply to ``nick`` (``*`` before it has one)."""
    return line(server, code, nick or "*", *params)


def time_tag(ts: float) -> str:
    """IRCv3 server-time: ``time=2026-05-01T12:00:00.000Z``."""
    whole = int(ts)
    millis = int((ts - whole) * 1000)
    return "time=" + time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"
