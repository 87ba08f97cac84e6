"""What the user typed, as the JSON request to send. No I/O, no trio.

Typed lines use the plain-mode syntax (``/me waves``, ``/join #dev``); the parsing is
the server's own (:func:`triochat.core.commands.parse_plain`), so a command means the
same on ``nc`` and in the client. What the client adds is the room: chat, ``/who``,
``/part``, ``/topic`` and ``/history`` name the client's current room explicitly,
so a line typed just before a ``current`` change on the server cannot land in the
wrong room.
"""

from __future__ import annotations

import re
from typing import Any, Final

from triochat.client.rooms import ClientRooms
from triochat.core.commands import Help, Invalid, Me, Msg, Nick, Quit, Say, Who, parse_plain
from triochat.core.hygiene import sanitise

__all__ = ["DEFAULT_HISTORY", "MAX_HISTORY", "Typed", "request_for"]

DEFAULT_HISTORY: Final = 20  # messages /history asks for by default (the server's default)
MAX_HISTORY: Final = 200  # the most one /history may ask for (the server's limit)
MAX_ROOM_CHARS: Final = 32  # after the "#" (the server's rule)

Typed = dict[str, Any] | Invalid | Quit | None  # a request, a local error, leave, or nothing

_ROOM_RE: Final = re.compile(r"[a-z0-9_.-]+")


def request_for(line: str, rooms: ClientRooms) -> Typed:
    """Translate one typed line into the request to send (or why not, or Quit)."""
    room_verb = _room_command(line, rooms)
    if room_verb is not None:
        return room_verb
    command = parse_plain(line)
    here: dict[str, Any] = {"room": rooms.current} if rooms.current else {}
    match command:
        case None | Invalid() | Quit():
            return command
        case Say(text=text):
            return {"type": "say", "text": text, **here}
        case Me(text=text):
            return {"type": "me", "text": text, **here}
        case Nick(name=name):
            return {"type": "nick", "name": name}
        case Msg(to=to, text=text):
            return {"type": "msg", "to": to, "text": text}
        case Who():
            return {"type": "who", **here}
        case Help():
            return {"type": "help"}
        case _:  # a registration line (Hello) cannot be typed
            return Invalid("unknown-command", "that cannot be typed here; type /help")


# --------------------------------------------------------------------------------------
# The room commands. The server's parser is learning these in the rooms rework; until
# the client is built on that, it reads them here, with the server's room-name rule.


def _room_name(text: str) -> str | Invalid:
    name = text.strip().lower().removeprefix("#")
    if not name:
        return Invalid("bad-room", "a room name needs at least one character after '#'")
    if len(name) > MAX_ROOM_CHARS:
        return Invalid("bad-room", f"a room name is at most {MAX_ROOM_CHARS} characters after '#'")
    if not name.isascii() or not _ROOM_RE.fullmatch(name):
        return Invalid(
            "bad-room", "a room name may contain only letters a-z, digits, '_', '.' and '-'"
        )
    return "#" + name


def _room_command(line: str, rooms: ClientRooms) -> dict[str, Any] | Invalid | None:
    """The request for ``/join``, ``/part``, ``/rooms``, ``/who``, ``/topic``, ``/history``.

    None when the line is not one of those commands.
    """
    stripped = sanitise(line).strip()
    if not stripped.startswith("/") or stripped.startswith("//") or stripped[1:2].isspace():
        return None
    current = rooms.current
    parts = stripped[1:].split(maxsplit=1)
    verb, rest = parts[0].lower(), parts[1].strip() if len(parts) > 1 else ""
    here: dict[str, Any] = {"room": current} if current else {}
    if verb in ("join", "part", "who") and rest:
        room = _room_name(rest)
        if isinstance(room, Invalid):
            return room
        return {"type": verb, "room": room}
    match verb:
        case "join":
            return Invalid("bad-request", "usage: /join ROOM")
        case "part" | "who":
            return {"type": verb, **here}
        case "rooms":
            return {"type": "rooms"}
        case "topic":
            return {"type": "topic", **here, **({"text": rest} if rest else {})}
        case "history":
            if rest and (not rest.isdigit() or not 1 <= int(rest) <= MAX_HISTORY):
                return Invalid("bad-request", f"usage: /history [N], N from 1 to {MAX_HISTORY}")
            request: dict[str, Any] = {
                "type": "history",
                **here,
                "limit": int(rest) if rest else DEFAULT_HISTORY,
            }
            before = rooms.history_before(current)
            if before is not None:
                request["before"] = before
            return request
    return None
