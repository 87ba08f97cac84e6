"""The parsers of the command table's rows, one per command and wire mode. No I/O.

A plain parser gets the text after the verb (sanitised, stripped); a JSON parser the
request object and its already-parsed ``room`` field (None: the current room).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from triochat.core.admin import DropRoom, Problem, parse_admin_json, parse_admin_plain
from triochat.core.commands.fields import (
    NOTHING_VISIBLE,
    int_field,
    room_arg,
    rooms_field,
    secret_fields,
    since_field,
    split_word,
    text_field,
)
from triochat.core.commands.searching import json_history_around
from triochat.core.commands.types import (
    DEFAULT_HISTORY,
    MAX_HISTORY,
    NOTIFY_LEVELS,
    Away,
    Command,
    Hello,
    History,
    Invalid,
    Join,
    Me,
    Msg,
    Nick,
    Notify,
    Say,
    Topic,
)
from triochat.core.hygiene import has_visible, is_noise
from triochat.core.names import room_error, room_name

__all__ = [
    "MAX_AWAY_CHARS",
    "JsonParser",
    "PlainParser",
    "admin",
    "admin_json",
    "admin_plain",
    "away",
    "json_away",
    "json_chat",
    "json_droproom",
    "json_hello",
    "json_history",
    "json_join",
    "json_msg",
    "json_nick",
    "json_topic",
    "no_args",
    "plain_droproom",
    "plain_join",
    "plain_lock",
    "plain_me",
    "plain_msg",
]

MAX_AWAY_CHARS: Final = 200  # an away message is one short line

PlainParser = Callable[[str], Command]  # the text after the verb, sanitised and stripped
JsonParser = Callable[[dict[str, object], str | None], Command | None]  # object, its room


def admin(parsed: Command | Problem) -> Command:
    """An account or moderation command, or the Invalid its parser's problem makes."""
    return Invalid(*parsed) if isinstance(parsed, tuple) else parsed


def admin_plain(verb: str) -> PlainParser:
    return lambda rest: admin(parse_admin_plain(verb, rest))


def admin_json(kind: str) -> JsonParser:
    return lambda obj, room: admin(parse_admin_json(kind, obj, room))


# -- plain-mode parsers: the text after the verb ---------------------------------------


def plain_me(rest: str) -> Command:
    if not rest:
        return Invalid("empty", "usage: /me ACTION")
    return Me(rest) if has_visible(rest) else NOTHING_VISIBLE


def plain_join(rest: str) -> Command:
    return room_arg(rest, Join) if rest else Invalid("bad-request", "usage: /join ROOM")


def plain_droproom(rest: str) -> Command:
    return room_arg(rest, DropRoom) if rest else Invalid("bad-request", "usage: /droproom ROOM")


def plain_msg(rest: str) -> Command:
    to, text = split_word(rest)
    if not to or not text:
        return Invalid("bad-request", "usage: /msg NAME TEXT")
    return Msg(to, text) if has_visible(text) else NOTHING_VISIBLE


def away(text: str) -> Command:
    if len(text) > MAX_AWAY_CHARS:
        return Invalid("too-long", f"an away message is at most {MAX_AWAY_CHARS} characters")
    return Away(text if has_visible(text) else "")


def plain_lock(verb: str) -> PlainParser:
    def parse(rest: str) -> Command:
        problem = room_error(rest) if rest else None
        if problem is not None:
            return Invalid("bad-room", problem)
        room = room_name(rest) if rest else None
        return admin(parse_admin_plain(verb, rest, room))

    return parse


# -- JSON parsers: the object and its already-parsed room --------------------------------


def json_chat(kind: str) -> JsonParser:
    def parse(obj: dict[str, object], room: str | None) -> Command | None:
        text = text_field(obj, "text")
        if isinstance(text, Invalid):
            return text
        if not has_visible(text):
            # Blank: ignored, as in plain mode; invisible-only: the sender is told.
            return None if is_noise(str(obj["text"])) else NOTHING_VISIBLE
        return Say(text, room) if kind == "say" else Me(text, room)

    return parse


def json_nick(obj: dict[str, object], room: str | None) -> Command:
    name = text_field(obj, "name")
    return name if isinstance(name, Invalid) else Nick(name)


def json_hello(obj: dict[str, object], room: str | None) -> Command:
    name = text_field(obj, "name")
    if isinstance(name, Invalid):
        return name
    since = since_field(obj)
    if isinstance(since, Invalid):
        return since
    rooms = rooms_field(obj)
    if isinstance(rooms, Invalid):
        return rooms
    secrets = secret_fields(obj)
    if isinstance(secrets, Invalid):
        return secrets
    return Hello(name, since, rooms, *secrets)


def json_join(obj: dict[str, object], room: str | None) -> Command:
    assert room is not None  # the room field is required for a join
    return Join(room)


def json_droproom(obj: dict[str, object], room: str | None) -> Command:
    if room is None:
        return Invalid("bad-request", "droproom needs a field 'room'")
    return DropRoom(room)


def json_topic(obj: dict[str, object], room: str | None) -> Command:
    if "text" not in obj:
        return Topic(None, room)
    text = text_field(obj, "text")
    return text if isinstance(text, Invalid) else Topic(text, room)


def json_history(obj: dict[str, object], room: str | None) -> Command:
    limit = int_field(obj, "limit", 1, MAX_HISTORY)
    if isinstance(limit, Invalid):
        return limit
    limit = DEFAULT_HISTORY if limit is None else limit
    if obj.get("around") is not None:
        return json_history_around(obj, room, limit)
    before = int_field(obj, "before", 1, 2**62)
    if isinstance(before, Invalid):
        return before
    peer: str | None = None
    if "with" in obj:
        field = text_field(obj, "with")
        if isinstance(field, Invalid):
            return field
        peer = field
    return History(room, limit, before, peer)


def json_msg(obj: dict[str, object], room: str | None) -> Command:
    to = text_field(obj, "to")
    if isinstance(to, Invalid):
        return to
    text = text_field(obj, "text")
    if isinstance(text, Invalid):
        return text
    if not text:
        return Invalid("empty", "a private message needs some text")
    return Msg(to, text) if has_visible(text) else NOTHING_VISIBLE


def json_away(obj: dict[str, object], room: str | None) -> Command:
    if obj.get("text") is None:
        return Away()
    text = text_field(obj, "text")
    return text if isinstance(text, Invalid) else away(text)


def no_args(kind: Callable[[], Command]) -> tuple[PlainParser, JsonParser]:
    return (lambda rest: kind()), (lambda obj, room: kind())


_NOTIFY_USAGE: Final = "usage: /notify [ROOM] [all|mentions|none]"


def _notify(room: str | None, level: str | None) -> Command:
    if level is not None and level not in NOTIFY_LEVELS:
        return Invalid("bad-request", _NOTIFY_USAGE)
    return Notify(room, level)


def plain_notify(rest: str) -> Command:
    """``/notify``, ``/notify LEVEL``, ``/notify ROOM`` or ``/notify ROOM LEVEL``."""
    words = rest.split()
    if len(words) > 2:
        return Invalid("bad-request", _NOTIFY_USAGE)
    if len(words) == 1 and words[0].lower() in NOTIFY_LEVELS:
        return Notify(None, words[0].lower())
    if not words:
        return Notify()
    problem = room_error(words[0])
    if problem is not None:
        return Invalid("bad-room", problem)
    return _notify(room_name(words[0]), words[1].lower() if len(words) > 1 else None)


def json_notify(obj: dict[str, object], room: str | None) -> Command:
    level = obj.get("level")
    if level is not None and not isinstance(level, str):
        return Invalid("bad-request", "field 'level' must be all, mentions or none")
    return _notify(room, level)
