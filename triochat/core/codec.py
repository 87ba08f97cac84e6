"""Wire codecs: one event in, one line of bytes out. No I/O.

The room calls each codec once per event and wire mode in use and sends the same
bytes object to every member in that mode; only events addressed to one member
(welcome, errors, private messages, ``who``) are encoded per member.
"""

from __future__ import annotations

import enum
import json
import time
from typing import Final

from triochat.core.events import (
    Acted,
    ErrorEvent,
    Event,
    HelpText,
    Joined,
    Left,
    Presence,
    Private,
    Renamed,
    Said,
    ShuttingDown,
    Welcome,
    WhoList,
)

__all__ = [
    "NOTICE",
    "Mode",
    "encode",
    "encode_json",
    "encode_plain",
    "history_header",
    "welcome_text",
]

# Plain mode: every line the server says on its own account starts with NOTICE, and no
# line a member causes can: chat is "<name> text", an action "* name text", a private
# message "*name* text" or "-> *name* text", and names cannot contain "*" or spaces.
# So "* server is shutting down" (a member named "server" doing /me) can never be
# mistaken for "*** server is shutting down". IRC clients use the same convention.
NOTICE: Final = "*** "

# Leave reasons that need no explanation in a plain-mode notice.
_ORDINARY_LEAVES: Final = frozenset({"quit", "closed"})
_dumps: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class Mode(enum.Enum):
    """A connection's wire mode, chosen by its first line."""

    PLAIN = "plain"
    JSON = "json"


def welcome_text(name: str, online: int) -> str:
    """The human-readable welcome, shared by both codecs."""
    return f"welcome, {name}! {online} online. Type /help for commands."


def history_header(count: int) -> bytes:
    """The plain-mode line announcing a history replay (JSON events carry ``history``)."""
    if count == 1:
        return f"{NOTICE}last message:\n".encode()
    return f"{NOTICE}last {count} messages:\n".encode()


def _clock(ts: float) -> str:
    return time.strftime("%H:%M", time.localtime(ts))


def encode_plain(event: Event, viewer: str | None = None) -> bytes:
    """Encode ``event`` as human-readable line(s) for netcat/telnet users.

    ``viewer`` is the name of the member the line is for; it only matters for events
    that read differently to their subject (a private message, one's own rename).
    """
    match event:
        case Said(sender=sender, text=text, history=history):
            line = f"<{sender}> {text}"
        case Acted(sender=sender, text=text, history=history):
            line = f"* {sender} {text}"
        case _:
            history = False
            line = _plain_notice(event, viewer)
    if history:
        line = f"[{_clock(event.ts)}] {line}"
    return (line + "\n").encode()


def _plain_notice(event: Event, viewer: str | None) -> str:
    match event:
        case Welcome(name=name, online=online):
            return NOTICE + welcome_text(name, online)
        case Joined(name=name, online=online):
            return f"{NOTICE}{name} joined ({online} online)"
        case Left(name=name, online=online, reason=reason):
            if reason in _ORDINARY_LEAVES:
                return f"{NOTICE}{name} left ({online} online)"
            return f"{NOTICE}{name} left: {reason} ({online} online)"
        case Presence(joined=joined, left=left, online=online):
            parts = [f"{joined} joined"] if joined else []
            parts += [f"{left} left"] if left else []
            return f"{NOTICE}{', '.join(parts) or 'no change'} ({online} online)"
        case Renamed(old=old, new=new):
            if viewer == new:
                return f"{NOTICE}you are now known as {new}"
            return f"{NOTICE}{old} is now known as {new}"
        case WhoList(names=names):
            return f"{NOTICE}online ({len(names)}): {', '.join(names)}"
        case Private(sender=sender, to=to, text=text):
            if viewer == sender and viewer != to:
                return f"-> *{to}* {text}"
            return f"*{sender}* {text}"
        case HelpText(lines=lines):
            return "\n".join(f"{NOTICE}{line}" for line in lines)
        case ErrorEvent(text=text):
            return f"! {text}"
        case ShuttingDown(text=text):
            return f"{NOTICE}{text}"
        case Said() | Acted():  # pragma: no cover - handled by encode_plain
            raise AssertionError("chat events are encoded by encode_plain")


def encode_json(event: Event) -> bytes:
    """Encode ``event`` as one JSON object line (``type`` and ``ts`` always present)."""
    obj: dict[str, object]
    match event:
        case Welcome(name=name, online=online, room=room):
            obj = {
                "type": "welcome",
                "name": name,
                "online": online,
                "room": room,
                "text": welcome_text(name, online),
            }
        case Joined(name=name, online=online):
            obj = {"type": "join", "name": name, "online": online}
        case Left(name=name, online=online, reason=reason):
            obj = {"type": "leave", "name": name, "online": online, "reason": reason}
        case Presence(joined=joined, left=left, online=online, names=names):
            obj = {
                "type": "presence",
                "joined": joined,
                "left": left,
                "online": online,
                "names": list(names),
            }
        case Said(id=id_, sender=sender, text=text, history=history):
            obj = {"type": "say", "id": id_, "from": sender, "text": text}
            if history:
                obj["history"] = True
        case Acted(id=id_, sender=sender, text=text, history=history):
            obj = {"type": "me", "id": id_, "from": sender, "text": text}
            if history:
                obj["history"] = True
        case Renamed(old=old, new=new):
            obj = {"type": "nick", "old": old, "new": new}
        case WhoList(names=names):
            obj = {"type": "who", "names": list(names), "online": len(names)}
        case Private(sender=sender, to=to, text=text):
            obj = {"type": "msg", "from": sender, "to": to, "text": text}
        case HelpText(lines=lines):
            obj = {"type": "help", "text": "\n".join(lines)}
        case ErrorEvent(code=code, text=text):
            obj = {"type": "error", "code": code, "text": text}
        case ShuttingDown(text=text):
            obj = {"type": "shutdown", "text": text}
    obj["ts"] = round(event.ts, 3)
    return (_dumps(obj) + "\n").encode()


def encode(event: Event, mode: Mode, viewer: str | None = None) -> bytes:
    """Encode ``event`` for a member in ``mode``."""
    if mode is Mode.JSON:
        return encode_json(event)
    return encode_plain(event, viewer)
