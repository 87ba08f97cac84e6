"""Field helpers shared by the plain and JSON parsers of the command table. No I/O."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from triochat.core.commands.types import Command, Invalid
from triochat.core.hygiene import sanitise
from triochat.core.names import PRIVATE_SINCE, room_error, room_name
from triochat.core.passwords import secret_problem

__all__ = [
    "MAX_SINCE_ROOMS",
    "NOTHING_VISIBLE",
    "int_field",
    "room_arg",
    "room_field",
    "rooms_field",
    "secret_fields",
    "since_field",
    "split_word",
    "text_field",
]

MAX_SINCE_ROOMS: Final = 50  # rooms a hello may resume: the per-member room limit
NOTHING_VISIBLE: Final = Invalid("empty", "that message has nothing visible in it; it was not sent")


def split_word(text: str) -> tuple[str, str]:
    """Split off the first word at any whitespace: ``"msg\tbob hi"`` -> ("msg", "bob hi")."""
    parts = text.split(maxsplit=1)
    if not parts:
        return "", ""
    return parts[0], parts[1].strip() if len(parts) > 1 else ""


def room_arg(text: str, kind: Callable[[str], Command]) -> Command:
    """Build ``kind(room)`` from a typed room name, or the reason it is not one."""
    problem = room_error(text)
    if problem is not None:
        return Invalid("bad-room", problem)
    return kind(room_name(text))


def room_field(obj: dict[str, object], *, required: bool = False) -> str | Invalid | None:
    """The optional (or required) ``room`` field of a JSON request, normalised."""
    value = obj.get("room")
    if value is None and not required:
        return None
    if not isinstance(value, str):
        return Invalid("bad-request", "field 'room' must be a string")
    problem = room_error(value)
    if problem is not None:
        return Invalid("bad-room", problem)
    return room_name(value)


def int_field(obj: dict[str, object], key: str, low: int, high: int) -> int | Invalid | None:
    """An optional integer field within ``[low, high]``."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return Invalid("bad-request", f"field {key!r} must be an integer from {low} to {high}")
    return value


def since_field(obj: dict[str, object]) -> tuple[tuple[str, int], ...] | Invalid:
    """The hello's ``since``: an object mapping room names to the last id seen (and
    ``"@"`` to the last private line id seen: registered members' private history)."""
    value = obj.get("since", {})
    if not isinstance(value, dict) or len(value) > MAX_SINCE_ROOMS:
        return Invalid("bad-request", "field 'since' must map at most 50 rooms to ids")
    since: dict[str, int] = {}
    for room, last in value.items():
        problem = None if room == PRIVATE_SINCE else room_error(room)
        if problem is not None:
            return Invalid("bad-room", problem)
        if isinstance(last, bool) or not isinstance(last, int) or last < 0:
            return Invalid("bad-request", "each id in 'since' must be an integer, 0 or more")
        since[room if room == PRIVATE_SINCE else room_name(room)] = last
    return tuple(since.items())


def rooms_field(obj: dict[str, object]) -> tuple[str, ...] | Invalid:
    """The hello's optional ``rooms``: a list of room names to join."""
    value = obj.get("rooms", [])
    if not isinstance(value, list) or len(value) > MAX_SINCE_ROOMS:
        return Invalid("bad-request", "field 'rooms' must be a list of at most 50 rooms")
    rooms: list[str] = []
    for room in value:
        if not isinstance(room, str):
            return Invalid("bad-request", "field 'rooms' must be a list of room names")
        problem = room_error(room)
        if problem is not None:
            return Invalid("bad-room", problem)
        rooms.append(room_name(room))
    return tuple(dict.fromkeys(rooms))


def secret_fields(obj: dict[str, object]) -> tuple[str | None, str | None] | Invalid:
    """The hello's optional ``password`` and ``server_password``.

    The account password is never sanitised: one with invisible characters is refused.
    """
    found: list[str | None] = []
    for key in ("password", "server_password"):
        value = obj.get(key)
        if value is not None and not isinstance(value, str):
            return Invalid("bad-request", f"field {key!r} must be a string")
        problem = secret_problem(value) if key == "password" and value is not None else None
        if problem is not None:
            return Invalid("bad-password", problem)
        found.append(None if value is None else sanitise(value).strip())
    return found[0], found[1]


def text_field(obj: dict[str, object], key: str) -> str | Invalid:
    """Fetch a required string field, sanitised and stripped."""
    value = obj.get(key)
    if not isinstance(value, str):
        return Invalid("bad-request", f"field {key!r} must be a string")
    return sanitise(value).strip()
