"""What a client asks for: parse plain-text and JSON lines into commands. No I/O.

Both wire modes produce the same small set of frozen command objects, so the room
never needs to know how a request was spelled. Every text or name field is sanitised
here, and room names are normalised (``Dev`` is ``#dev``); the chat state can trust
what it receives. A ``room`` of None means "the member's current room".
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from triochat.core.admin import (
    JSON_TYPES,
    PLAIN_VERBS,
    AdminCommand,
    Problem,
    parse_admin_json,
    parse_admin_plain,
)
from triochat.core.hygiene import has_visible, is_noise, sanitise
from triochat.core.names import room_error, room_name

__all__ = [
    "DEFAULT_HISTORY",
    "MAX_HISTORY",
    "Command",
    "Hello",
    "Help",
    "History",
    "Invalid",
    "Join",
    "Me",
    "Msg",
    "Nick",
    "Part",
    "Quit",
    "Rooms",
    "Say",
    "Topic",
    "Who",
    "parse_json",
    "parse_plain",
    "parse_registration",
]


DEFAULT_HISTORY: Final = 20  # messages /history shows when no count is given
MAX_HISTORY: Final = 200  # messages one /history or scrollback request may ask for


@dataclass(frozen=True, slots=True)
class Say:
    """Say ``text`` in ``room``."""

    text: str
    room: str | None = None


@dataclass(frozen=True, slots=True)
class Me:
    """An action, shown as ``* alice waves``."""

    text: str
    room: str | None = None


@dataclass(frozen=True, slots=True)
class Nick:
    """Change one's name (also the plain-mode way to register)."""

    name: str


@dataclass(frozen=True, slots=True)
class Who:
    """List who is in ``room``."""

    room: str | None = None


@dataclass(frozen=True, slots=True)
class Msg:
    """A private message to one member, wherever they are."""

    to: str
    text: str


@dataclass(frozen=True, slots=True)
class Help:
    """List the commands."""


@dataclass(frozen=True, slots=True)
class Quit:
    """Leave the server."""


@dataclass(frozen=True, slots=True)
class Join:
    """Join ``room`` (creating it if new) and make it current."""

    room: str


@dataclass(frozen=True, slots=True)
class Part:
    """Leave ``room``."""

    room: str | None = None


@dataclass(frozen=True, slots=True)
class Rooms:
    """List every room with its member count and topic."""


@dataclass(frozen=True, slots=True)
class Topic:
    """Show ``room``'s topic (``text`` None) or set it (``""`` clears it)."""

    text: str | None = None
    room: str | None = None


@dataclass(frozen=True, slots=True)
class History:
    """Replay up to ``limit`` stored messages of ``room`` older than ``before`` (or the latest)."""

    room: str | None = None
    limit: int = DEFAULT_HISTORY
    before: int | None = None


@dataclass(frozen=True, slots=True)
class Hello:
    """JSON-mode registration: the first line of a JSON client.

    ``since`` maps rooms to the last id the client has seen there: the server rejoins
    those rooms and replays what came after (resume). ``rooms`` are more rooms to join.
    ``password`` logs into the registered name ``name``; ``server_password`` is the
    server's own (``--password-file``). Neither appears in a ``repr``.
    """

    name: str
    since: tuple[tuple[str, int], ...] = ()
    rooms: tuple[str, ...] = ()
    password: str | None = field(default=None, repr=False)
    server_password: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Invalid:
    """A request that cannot be carried out; the sender gets an error with ``code``."""

    code: str
    text: str


Command = (
    (Say | Me | Nick | Who | Msg | Help | Quit | Join | Part | Rooms | Topic | History | Hello)
    | Invalid
    | AdminCommand  # accounts and moderation: triochat.core.admin
)

UNKNOWN_HINT: Final = "type /help for the list of commands"
MAX_SINCE_ROOMS: Final = 50  # rooms a hello may resume: the per-member room limit
NOTHING_VISIBLE: Final = Invalid("empty", "that message has nothing visible in it; it was not sent")


def parse_plain(line: str) -> Command | None:
    """Parse one decoded line from a plain-mode (netcat/telnet) client.

    Returns None for a line that should be ignored (only whitespace, controls and
    escape sequences); a line of characters that show nothing (zero width spaces,
    Hangul fillers, tag characters) is an error. A line starting with ``//`` is text
    that starts with ``/``.
    """
    raw = line
    line = sanitise(line).strip()
    if not has_visible(line):
        return None if is_noise(raw) else NOTHING_VISIBLE
    if not line.startswith("/"):
        return Say(line)
    if line.startswith("//"):
        return Say(line[1:])
    # "/ me" is not "/me": the verb must follow the slash directly.
    verb, rest = ("", line[1:]) if line[1:2].isspace() else _split_word(line[1:])
    match verb.lower():
        case "me":
            if not rest:
                return Invalid("empty", "usage: /me ACTION")
            return Me(rest) if has_visible(rest) else NOTHING_VISIBLE
        case "nick":
            return Nick(rest) if rest else Invalid("bad-request", "usage: /nick NAME")
        case "who":
            return _room_arg(rest, Who) if rest else Who()
        case "join":
            return _room_arg(rest, Join) if rest else Invalid("bad-request", "usage: /join ROOM")
        case "part":
            return _room_arg(rest, Part) if rest else Part()
        case "rooms":
            return Rooms()
        case "topic":
            return Topic(rest) if rest else Topic()
        case "history":
            if not rest:
                return History()
            if not rest.isdigit() or not 1 <= int(rest) <= MAX_HISTORY:
                return Invalid("bad-request", f"usage: /history [N], N from 1 to {MAX_HISTORY}")
            return History(limit=int(rest))
        case "msg":
            to, text = _split_word(rest)
            if not to or not text:
                return Invalid("bad-request", "usage: /msg NAME TEXT")
            return Msg(to, text) if has_visible(text) else NOTHING_VISIBLE
        case "help":
            return Help()
        case "quit":
            return Quit()
        case "locktopic" | "unlocktopic":
            problem = room_error(rest) if rest else None
            if problem is not None:
                return Invalid("bad-room", problem)
            room = room_name(rest) if rest else None
            return _admin(parse_admin_plain(verb.lower(), rest, room))
        case admin if admin in PLAIN_VERBS:
            return _admin(parse_admin_plain(admin, rest))
        case _:
            return Invalid("unknown-command", f"unknown command /{verb}; {UNKNOWN_HINT}")


def _admin(parsed: AdminCommand | Problem) -> Command:
    """An account or moderation command, or the Invalid its parser's problem makes."""
    return Invalid(*parsed) if isinstance(parsed, tuple) else parsed


def _split_word(text: str) -> tuple[str, str]:
    """Split off the first word at any whitespace: ``"msg\tbob hi"`` -> ("msg", "bob hi")."""
    parts = text.split(maxsplit=1)
    if not parts:
        return "", ""
    return parts[0], parts[1].strip() if len(parts) > 1 else ""


def _room_arg(text: str, kind: Callable[[str], Command]) -> Command:
    """Build ``kind(room)`` from a typed room name, or the reason it is not one."""
    problem = room_error(text)
    if problem is not None:
        return Invalid("bad-room", problem)
    return kind(room_name(text))


def _room_field(obj: dict[str, object], *, required: bool = False) -> str | Invalid | None:
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


def _int_field(obj: dict[str, object], key: str, low: int, high: int) -> int | Invalid | None:
    """An optional integer field within ``[low, high]``."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return Invalid("bad-request", f"field {key!r} must be an integer from {low} to {high}")
    return value


def _since_field(obj: dict[str, object]) -> tuple[tuple[str, int], ...] | Invalid:
    """The hello's ``since``: an object mapping room names to the last id seen."""
    value = obj.get("since", {})
    if not isinstance(value, dict) or len(value) > MAX_SINCE_ROOMS:
        return Invalid("bad-request", "field 'since' must map at most 50 rooms to ids")
    since: dict[str, int] = {}
    for room, last in value.items():
        problem = room_error(room)
        if problem is not None:
            return Invalid("bad-room", problem)
        if isinstance(last, bool) or not isinstance(last, int) or last < 0:
            return Invalid("bad-request", "each id in 'since' must be an integer, 0 or more")
        since[room_name(room)] = last
    return tuple(since.items())


def _rooms_field(obj: dict[str, object]) -> tuple[str, ...] | Invalid:
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


def _secret_fields(obj: dict[str, object]) -> tuple[str | None, str | None] | Invalid:
    """The hello's optional ``password`` and ``server_password``."""
    found: list[str | None] = []
    for key in ("password", "server_password"):
        value = obj.get(key)
        if value is not None and not isinstance(value, str):
            return Invalid("bad-request", f"field {key!r} must be a string")
        found.append(None if value is None else sanitise(value).strip())
    return found[0], found[1]


def _field(obj: dict[str, object], key: str) -> str | Invalid:
    """Fetch a required string field, sanitised and stripped."""
    value = obj.get(key)
    if not isinstance(value, str):
        return Invalid("bad-request", f"field {key!r} must be a string")
    return sanitise(value).strip()


def parse_json(line: str) -> Command | None:
    """Parse one line from a JSON-mode client into a command.

    Malformed JSON, a non-object, an unknown ``type`` or a missing field gives an
    :class:`Invalid` command (the connection stays open). Blank lines are ignored.
    """
    if not line.strip():
        return None
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested thousands deep
        return Invalid("bad-json", "that line is not valid JSON")
    if not isinstance(obj, dict):
        return Invalid("bad-json", "each line must be one JSON object")
    kind = obj.get("type")
    room = _room_field(obj, required=kind == "join")
    if isinstance(room, Invalid):
        return room
    match kind:
        case "say" | "me":
            text = _field(obj, "text")
            if isinstance(text, Invalid):
                return text
            if not has_visible(text):
                # Blank: ignored, as in plain mode; invisible-only: the sender is told.
                return None if is_noise(str(obj["text"])) else NOTHING_VISIBLE
            return Say(text, room) if kind == "say" else Me(text, room)
        case "nick":
            name = _field(obj, "name")
            return name if isinstance(name, Invalid) else Nick(name)
        case "hello":
            name = _field(obj, "name")
            if isinstance(name, Invalid):
                return name
            since = _since_field(obj)
            if isinstance(since, Invalid):
                return since
            rooms = _rooms_field(obj)
            if isinstance(rooms, Invalid):
                return rooms
            secrets = _secret_fields(obj)
            if isinstance(secrets, Invalid):
                return secrets
            return Hello(name, since, rooms, *secrets)
        case "join":
            assert room is not None
            return Join(room)
        case "part":
            return Part(room)
        case "rooms":
            return Rooms()
        case "topic":
            if "text" not in obj:
                return Topic(None, room)
            text = _field(obj, "text")
            return text if isinstance(text, Invalid) else Topic(text, room)
        case "history":
            limit = _int_field(obj, "limit", 1, MAX_HISTORY)
            if isinstance(limit, Invalid):
                return limit
            before = _int_field(obj, "before", 1, 2**62)
            if isinstance(before, Invalid):
                return before
            return History(room, DEFAULT_HISTORY if limit is None else limit, before)
        case "msg":
            to = _field(obj, "to")
            if isinstance(to, Invalid):
                return to
            text = _field(obj, "text")
            if isinstance(text, Invalid):
                return text
            if not text:
                return Invalid("empty", "a private message needs some text")
            return Msg(to, text) if has_visible(text) else NOTHING_VISIBLE
        case "who":
            return Who(room)
        case "help":
            return Help()
        case "quit":
            return Quit()
        case str() if kind in JSON_TYPES:
            return _admin(parse_admin_json(kind, obj, room))
        case "pong":
            return None  # the answer to a ping: being heard from is all that counts
        case str():
            return Invalid("unknown-command", f"unknown type {sanitise(kind)[:40]!r}")
        case _:
            return Invalid("bad-request", "each object needs a string field 'type'")


def parse_registration(line: str) -> tuple[bool, Command | None]:
    """Decide the wire mode from a connection's first line.

    Returns ``(json_mode, command)``: a JSON ``hello`` object selects JSON mode and
    yields :class:`Hello` (or :class:`Invalid` if its fields are wrong); anything else
    selects plain mode and is parsed as a plain line (``/nick NAME`` then registers
    under that name).
    """
    stripped = line.strip()
    if stripped.startswith("{"):
        command = parse_json(stripped)
        if isinstance(command, Hello):
            return True, command
        if isinstance(command, Invalid) and _is_hello(stripped):
            return True, command  # a JSON client with a malformed hello: refused in JSON
    return False, parse_plain(line)


def _is_hello(line: str) -> bool:
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return False
    return isinstance(obj, dict) and obj.get("type") == "hello"
