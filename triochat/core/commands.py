"""What a client asks for: parse plain-text and JSON lines into commands. No I/O.

Both wire modes produce the same small set of frozen command objects, so the room
never needs to know how a request was spelled. Every text or name field is sanitised
here; the room can trust what it receives.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from triochat.core.hygiene import has_visible, is_noise, sanitise

__all__ = [
    "Command",
    "Hello",
    "Help",
    "Invalid",
    "Me",
    "Msg",
    "Nick",
    "Quit",
    "Say",
    "Who",
    "parse_json",
    "parse_plain",
    "parse_registration",
]


@dataclass(frozen=True, slots=True)
class Say:
    """Say ``text`` to the room."""

    text: str


@dataclass(frozen=True, slots=True)
class Me:
    """An action, shown as ``* alice waves``."""

    text: str


@dataclass(frozen=True, slots=True)
class Nick:
    """Change one's name (also the plain-mode way to register)."""

    name: str


@dataclass(frozen=True, slots=True)
class Who:
    """List who is online."""


@dataclass(frozen=True, slots=True)
class Msg:
    """A private message to one member."""

    to: str
    text: str


@dataclass(frozen=True, slots=True)
class Help:
    """List the commands."""


@dataclass(frozen=True, slots=True)
class Quit:
    """Leave the room."""


@dataclass(frozen=True, slots=True)
class Hello:
    """JSON-mode registration: the first line of a JSON client."""

    name: str


@dataclass(frozen=True, slots=True)
class Invalid:
    """A request that cannot be carried out; the sender gets an error with ``code``."""

    code: str
    text: str


Command = Say | Me | Nick | Who | Msg | Help | Quit | Hello | Invalid

UNKNOWN_HINT: Final = "type /help for the list of commands"
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
            return Who()
        case "msg":
            to, text = _split_word(rest)
            if not to or not text:
                return Invalid("bad-request", "usage: /msg NAME TEXT")
            return Msg(to, text) if has_visible(text) else NOTHING_VISIBLE
        case "help":
            return Help()
        case "quit":
            return Quit()
        case _:
            return Invalid("unknown-command", f"unknown command /{verb}; {UNKNOWN_HINT}")


def _split_word(text: str) -> tuple[str, str]:
    """Split off the first word at any whitespace: ``"msg\tbob hi"`` -> ("msg", "bob hi")."""
    parts = text.split(maxsplit=1)
    if not parts:
        return "", ""
    return parts[0], parts[1].strip() if len(parts) > 1 else ""


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
    match kind:
        case "say" | "me":
            text = _field(obj, "text")
            if isinstance(text, Invalid):
                return text
            if not has_visible(text):
                # Blank: ignored, as in plain mode; invisible-only: the sender is told.
                return None if is_noise(str(obj["text"])) else NOTHING_VISIBLE
            return Say(text) if kind == "say" else Me(text)
        case "nick" | "hello":
            name = _field(obj, "name")
            if isinstance(name, Invalid):
                return name
            return Nick(name) if kind == "nick" else Hello(name)
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
            return Who()
        case "help":
            return Help()
        case "quit":
            return Quit()
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
