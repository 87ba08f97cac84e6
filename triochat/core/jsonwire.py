"""JSON mode on the wire: the one schema of the server's events, both ways. No I/O.

Every event type is one row of :data:`EVENT_SPECS`: its JSON ``type``, its event class
and its fields in wire order. :func:`encode_event` (the server) and
:func:`decode_event` (the client, ``triochat.testing`` and the tests) both read the
rows, so a field is named once. docs/protocol.md describes the same objects for
people.

Rules of this module (a new event type is one new row, never a new branch):

* Every object has ``type`` first and ``ts`` last, the time in Unix seconds rounded
  to the millisecond. Field order follows the row, so the bytes stay stable.
* A field marked ``omit_empty`` is left out while it is false or empty (``history``,
  ``locked``, ``away``); decoding gives it the event class's default.
* A *derived* field (the ``text`` of a welcome, an account or a moderation event, the
  ``online`` count of a ``who``) is computed from the others when encoding, for
  clients that only print; decoding ignores it, since the event holds what it is made
  from. So ``decode_event(encode_event(e))`` is ``e`` with its times rounded to the
  millisecond: the round trip that tests/test_codec.py checks for every row.
* Decoding is strict about what it needs (a missing field or a wrong type raises
  :class:`MalformedEvent`) and lenient about what it does not know (extra fields are
  ignored, so a newer server's additions do not break an older reader). An unknown
  ``type`` raises :class:`UnknownEvent`, which a reader may skip.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from triochat.core.events import (
    AccountInfo,
    Acted,
    Away,
    BanInfo,
    BanList,
    Current,
    ErrorEvent,
    Event,
    Found,
    Gap,
    HelpText,
    HistoryEnd,
    Joined,
    Left,
    MentionInfo,
    MentionList,
    Moderated,
    Notice,
    NotifyInfo,
    Ping,
    Presence,
    Private,
    Renamed,
    RoomInfo,
    RoomList,
    Said,
    SearchResults,
    ShuttingDown,
    TopicInfo,
    Welcome,
    WhoList,
)
from triochat.core.wording import account_text, moderation_text, welcome_text

__all__ = [
    "EVENT_SPECS",
    "EventSpec",
    "MalformedEvent",
    "UnknownEvent",
    "decode_event",
    "encode_event",
    "event_object",
    "object_event",
]


class MalformedEvent(ValueError):
    """A line that is not a well-formed JSON event (not JSON, not an object, a field
    missing or of the wrong type)."""


class UnknownEvent(MalformedEvent):
    """A JSON object whose ``type`` this version does not know (a newer server's)."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"unknown event type {kind!r}")
        self.kind = kind


# --------------------------------------------------------------------------------------
# Field kinds: how one value goes to JSON and back, checking its type on the way back


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _load_str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("a string")
    return value


def _load_int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("an integer")
    return value


def _load_bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError("true or false")
    return value


def _load_time(value: object) -> float:
    if not _number(value):
        raise TypeError("a number")
    assert isinstance(value, int | float)
    return float(value)


def _load_until(value: object) -> float | None:
    return None if value is None else _load_time(value)


def _load_names(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise TypeError("a list of strings")
    return tuple(_load_str(item) for item in value)


def _dump_lines(value: tuple[str, ...]) -> str:
    return "\n".join(value)


def _load_lines(value: object) -> tuple[str, ...]:
    text = _load_str(value)
    return tuple(text.split("\n")) if text else ()


def _dump_pairs(value: tuple[tuple[str, str], ...]) -> dict[str, str]:
    return dict(value)


def _load_pairs(value: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise TypeError("an object of strings")
    return tuple((_load_str(key), _load_str(text)) for key, text in value.items())


def _same(value: Any) -> Any:
    return value


def _round(value: float) -> float:
    return round(value, 3)


@dataclass(frozen=True, slots=True)
class Kind:
    """How one field's value is written to JSON (``dump``) and read back (``load``)."""

    dump: Callable[[Any], object]
    load: Callable[[object], Any]


STR: Final = Kind(_same, _load_str)
INT: Final = Kind(_same, _load_int)
BOOL: Final = Kind(_same, _load_bool)
TIME: Final = Kind(_round, _load_time)  # Unix seconds, to the millisecond
UNTIL: Final = Kind(_same, _load_until)  # Unix seconds, or null: no end
NAMES: Final = Kind(list, _load_names)
LINES: Final = Kind(_dump_lines, _load_lines)  # lines joined by "\n" into one string
PAIRS: Final = Kind(_dump_pairs, _load_pairs)  # (name, text) pairs as one object


@dataclass(frozen=True, slots=True)
class Field:
    """One field of an event (or of a row in a list): attribute, JSON key and kind.

    ``derived`` computes a read-only field from the whole event (``attr`` is then
    unused); ``omit_empty`` leaves the key out while the value is false or empty.
    """

    key: str
    attr: str
    kind: Kind = STR
    omit_empty: bool = False
    derived: Callable[[Any], object] | None = None


def _f(key: str, kind: Kind = STR, *, attr: str = "", omit_empty: bool = False) -> Field:
    return Field(key, attr or key, kind, omit_empty)


def _derived(key: str, compute: Callable[[Any], object]) -> Field:
    return Field(key, "", derived=compute)


def _records(cls: type[Any], *fields: Field) -> Kind:
    """A list of small records (rooms, bans) as a list of objects."""

    def dump(rows: tuple[Any, ...]) -> list[dict[str, object]]:
        return [_dump_fields(row, fields, {}) for row in rows]

    def load(value: object) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise TypeError("a list of objects")
        return tuple(_load_fields(cls, fields, item, {}) for item in value)

    return Kind(dump, load)


@dataclass(frozen=True, slots=True)
class EventSpec:
    """One row of the schema: a JSON ``type``, its event class and its fields in order."""

    json_type: str
    cls: type[Any]
    fields: tuple[Field, ...]


def _spec(kind: str, cls: type[Any], *fields: Field) -> EventSpec:
    return EventSpec(kind, cls, fields)


# --------------------------------------------------------------------------------------
# The schema: one row per event type. docs/protocol.md says what each field means.

EVENT_SPECS: Final[tuple[EventSpec, ...]] = (
    _spec(
        "welcome",
        Welcome,
        _f("name"),
        _f("online", INT),
        _f("room"),
        _derived("text", lambda e: welcome_text(e.name, e.online)),
    ),
    _spec("join", Joined, _f("room"), _f("name"), _f("online", INT)),
    _spec("leave", Left, _f("room"), _f("name"), _f("online", INT), _f("reason")),
    _spec(
        "presence",
        Presence,
        _f("room"),
        _f("joined", INT),
        _f("left", INT),
        _f("online", INT),
        _f("names", NAMES),
    ),
    _spec(
        "say",
        Said,
        _f("room"),
        _f("id", INT),
        _f("from", attr="sender"),
        _f("text"),
        _f("history", BOOL, omit_empty=True),
        _f("notice", BOOL, omit_empty=True),
        _f("tags", omit_empty=True),
    ),
    _spec(
        "me",
        Acted,
        _f("room"),
        _f("id", INT),
        _f("from", attr="sender"),
        _f("text"),
        _f("history", BOOL, omit_empty=True),
    ),
    _spec("nick", Renamed, _f("old"), _f("new")),
    _spec(
        "who",
        WhoList,
        _f("room"),
        _f("names", NAMES),
        _derived("online", lambda e: len(e.names)),
        _f("away", PAIRS, omit_empty=True),
        _f("ops", NAMES, omit_empty=True),
    ),
    _spec("away", Away, _f("name"), _f("text")),
    _spec(
        "msg",
        Private,
        _f("from", attr="sender"),
        _f("to"),
        _f("text"),
        _f("id", INT, omit_empty=True),
        _f("history", BOOL, omit_empty=True),
    ),
    _spec("help", HelpText, _f("text", LINES, attr="lines")),
    _spec("error", ErrorEvent, _f("code"), _f("text")),
    _spec("shutdown", ShuttingDown, _f("text")),
    _spec("notice", Notice, _f("code"), _f("text")),
    _spec(
        "topic",
        TopicInfo,
        _f("room"),
        _f("topic"),
        _f("by"),
        _f("changed", BOOL),
        _f("locked", BOOL, omit_empty=True),
    ),
    _spec(
        "rooms",
        RoomList,
        _f("rooms", _records(RoomInfo, _f("room"), _f("online", INT), _f("topic"))),
    ),
    _spec("current", Current, _f("room")),
    _spec("gap", Gap, _f("room"), _f("skipped", INT)),
    _spec("history-end", HistoryEnd, _f("room"), _f("count", INT), _f("more", BOOL)),
    _spec(
        "account",
        AccountInfo,
        _f("action"),
        _f("name"),
        _derived("text", lambda e: account_text(e.action, e.name)),
    ),
    _spec(
        "mod",
        Moderated,
        _f("action"),
        _f("target"),
        _f("by"),
        _f("reason"),
        _f("until", UNTIL),
        _derived("text", moderation_text),
    ),
    _spec(
        "bans",
        BanList,
        _f(
            "bans",
            _records(
                BanInfo,
                _f("target"),
                _f("kind"),
                _f("by"),
                _f("reason"),
                _f("ts", TIME),
                _f("until", UNTIL),
            ),
        ),
    ),
    _spec("ping", Ping),
    _spec("notify", NotifyInfo, _f("room"), _f("level")),
    _spec(
        "mentions",
        MentionList,
        _f("since", TIME),
        _f(
            "mentions",
            _records(
                MentionInfo,
                _f("room"),
                _f("id", INT),
                _f("ts", TIME),
                _f("from", attr="sender"),
                _f("text"),
            ),
        ),
    ),
    _spec(
        "search",
        SearchResults,
        _f("query"),
        _f(
            "hits",
            _records(
                Found,
                _f("room"),
                _f("id", INT),
                _f("from", attr="sender"),
                _f("kind"),
                _f("text"),
                _f("ts", TIME),
            ),
        ),
        _f("more", INT, omit_empty=True),
    ),
)

_BY_CLASS: Final[Mapping[type[Any], EventSpec]] = {spec.cls: spec for spec in EVENT_SPECS}
_BY_TYPE: Final[Mapping[str, EventSpec]] = {spec.json_type: spec for spec in EVENT_SPECS}
# Fields an object may leave out, with the value they then take (the class's default).
_DEFAULTS: Final[Mapping[type[Any], Mapping[str, object]]] = {
    cls: {f.name: f.default for f in dataclasses.fields(cls) if f.default != dataclasses.MISSING}
    for cls in (*_BY_CLASS, RoomInfo, BanInfo, MentionInfo, Found)
}


# --------------------------------------------------------------------------------------
# Encoding and decoding


def _dump_fields(item: Any, fields: tuple[Field, ...], obj: dict[str, object]) -> dict[str, object]:
    for field in fields:
        if field.derived is not None:
            obj[field.key] = field.derived(item)
            continue
        value = getattr(item, field.attr)
        if field.omit_empty and not value:
            continue
        obj[field.key] = field.kind.dump(value)
    return obj


def _load_fields(
    cls: type[Any], fields: tuple[Field, ...], obj: object, values: dict[str, object]
) -> Any:
    if not isinstance(obj, dict):
        raise TypeError("an object")
    defaults = _DEFAULTS[cls]
    for field in fields:
        if field.derived is not None:
            continue
        if field.key not in obj:
            if field.attr in defaults:
                continue
            raise MalformedEvent(f"missing field {field.key!r}")
        try:
            values[field.attr] = field.kind.load(obj[field.key])
        except TypeError as exc:
            raise MalformedEvent(f"field {field.key!r} should be {exc}") from None
    return cls(**values)


def event_object(event: Event) -> dict[str, object]:
    """``event`` as the JSON object that goes on the wire (before serialising)."""
    spec = _BY_CLASS[type(event)]
    obj = _dump_fields(event, spec.fields, {"type": spec.json_type})
    obj["ts"] = round(event.ts, 3)
    return obj


def encode_event(event: Event) -> bytes:
    """``event`` as one JSON object line (``type`` first, ``ts`` last, UTF-8)."""
    return orjson.dumps(event_object(event), option=orjson.OPT_APPEND_NEWLINE)


def object_event(obj: object) -> Event:
    """The event a decoded JSON object stands for.

    Raises:
        UnknownEvent: ``type`` names no event this version knows.
        MalformedEvent: not an object, or a field is missing or of the wrong type.
    """
    if not isinstance(obj, dict):
        raise MalformedEvent("not a JSON object")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise MalformedEvent("no event type")
    spec = _BY_TYPE.get(kind)
    if spec is None:
        raise UnknownEvent(kind)
    try:
        ts = _load_time(obj.get("ts"))
    except TypeError:
        raise MalformedEvent(f"{kind}: field 'ts' should be a number") from None
    try:
        event: Event = _load_fields(spec.cls, spec.fields, obj, {"ts": ts})
    except MalformedEvent as exc:
        raise MalformedEvent(f"{kind}: {exc}") from None
    return event


def decode_event(line: bytes | str) -> Event:
    """One line the server sent in JSON mode, as its event.

    Raises:
        UnknownEvent: a well-formed object of an event type this version does not know.
        MalformedEvent: anything else that is not an event (not JSON, not an object,
            a field missing or of the wrong type).
    """
    try:
        obj = orjson.loads(line)
    except ValueError:  # bad UTF-8, and nesting past orjson's depth limit, too
        raise MalformedEvent("not JSON") from None
    return object_event(obj)
