"""Parsing a line into a command, for each wire mode, off the command table. No I/O.

:func:`parse_plain` and :func:`parse_json` look the verb or ``type`` up in the table's
parsers (:data:`triochat.core.commands.table.PLAIN` and ``JSON``);
:func:`parse_registration` picks the wire mode from a connection's first line.
"""

from __future__ import annotations

import json
from typing import Final

import orjson

from triochat.core.commands.fields import NOTHING_VISIBLE, room_field, split_word
from triochat.core.commands.table import JSON, PLAIN, UNKNOWN_HINT
from triochat.core.commands.types import Command, Hello, Invalid, Say
from triochat.core.hygiene import has_visible, is_noise, sanitise
from triochat.core.passwords import secret_problem

__all__ = ["SECRET_VERBS", "parse_json", "parse_plain", "parse_registration"]

# Verbs whose line carries a password, and the error code for one with invisible
# characters in it: a password is refused rather than silently changed by sanitise().
SECRET_VERBS: Final = {
    "register": "weak-password",
    "login": "bad-password",
    "password": "weak-password",
}


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
    verb, rest = ("", line[1:]) if line[1:2].isspace() else split_word(line[1:])
    parser = PLAIN.get(verb.lower())
    if parser is None:
        return Invalid("unknown-command", f"unknown command /{verb}; {UNKNOWN_HINT}")
    code = SECRET_VERBS.get(verb.lower())
    problem = secret_problem(raw) if code is not None else None
    if code is not None and problem is not None:
        return Invalid(code, problem)
    return parser(rest)


def parse_json(line: str) -> Command | None:
    """Parse one line from a JSON-mode client into a command.

    Malformed JSON, a non-object, an unknown ``type`` or a missing field gives an
    :class:`Invalid` command (the connection stays open). Blank lines are ignored.
    """
    if not line.strip():
        return None
    try:
        obj = _loads(line)
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested thousands deep
        return Invalid("bad-json", "that line is not valid JSON")
    if not isinstance(obj, dict):
        return Invalid("bad-json", "each line must be one JSON object")
    kind = obj.get("type")
    room = room_field(obj, required=kind == "join")
    if isinstance(room, Invalid):
        return room
    if not isinstance(kind, str):
        return Invalid("bad-request", "each object needs a string field 'type'")
    if kind == "pong":
        return None  # the answer to a ping: being heard from is all that counts
    parser = JSON.get(kind)
    if parser is None:
        return Invalid("unknown-command", f"unknown type {sanitise(kind)[:40]!r}")
    return parser(obj, room)


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
        obj = _loads(line)
    except (ValueError, RecursionError):
        return False
    return isinstance(obj, dict) and obj.get("type") == "hello"


def _loads(line: str) -> object:
    """``line`` as JSON: orjson, ten times the json module's speed, for the lines it reads.

    orjson refuses a lone surrogate escape (``"\\ud83d"``, which a browser's
    ``JSON.stringify`` writes for half an emoji); the json module takes such a line as
    it always did, and sanitise() then drops what cannot be sent. (Integers past 64 bits
    come back as floats, which every field that wants an integer refuses.) Deep nesting
    raises RecursionError from the json module: the caller's to catch.
    """
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(line)
