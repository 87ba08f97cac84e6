"""The JSON schema both ways: decode_event(encode_event(e)) is e, for every event type."""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.deadlines import CPU_DEADLINE
from triochat.core import events
from triochat.core.codec import encode_json
from triochat.core.events import (
    Away,
    BanInfo,
    BanList,
    Event,
    Found,
    HelpText,
    MentionInfo,
    MentionList,
    Moderated,
    Ping,
    RoomInfo,
    Said,
    SearchResults,
    Welcome,
    WhoList,
)
from triochat.core.jsonwire import (
    EVENT_SPECS,
    MalformedEvent,
    UnknownEvent,
    decode_event,
    encode_event,
    event_object,
    object_event,
)

TS = 1795714800.123456

EVENT_CLASSES: tuple[type[Any], ...] = typing.get_args(Event)

# Strategies come from the event classes' own annotations, not from the schema's table,
# so a wrong kind in a row of the table shows up as a failed round trip.
_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)  # UTF-8 encodable
# Times: 0, or from 1e-4 s on. Between 1e-9 and 1e-4 orjson writes a float in decimal
# form (0.00001) where the json module writes 1e-05: the same number, another spelling
# (test_jsonwire_small_floats_differ_in_form_only). No event carries such a time.
_TIME = st.just(0.0) | st.floats(min_value=1e-4, max_value=4e9, allow_nan=False)
_LINE = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\n"), max_size=12)
_BY_ANNOTATION: dict[str, st.SearchStrategy[Any]] = {
    "str": _TEXT,
    "int": st.integers(min_value=-(2**63), max_value=2**63),
    "float": _TIME,
    "bool": st.booleans(),
    "float | None": st.none() | _TIME,
    "tuple[str, ...]": st.lists(_TEXT, max_size=4).map(tuple),
    # A /who's away pairs have one entry per name (the wire sends them as an object).
    "tuple[tuple[str, str], ...]": st.lists(
        st.tuples(_TEXT, _TEXT), max_size=4, unique_by=lambda pair: pair[0]
    ).map(tuple),
}


def _record(cls: type[Any]) -> st.SearchStrategy[Any]:
    hints = {f.name: f.type for f in dataclasses.fields(cls)}
    return st.builds(cls, **{name: _BY_ANNOTATION[str(hint)] for name, hint in hints.items()})


_BY_ANNOTATION["tuple[RoomInfo, ...]"] = st.lists(_record(RoomInfo), max_size=3).map(tuple)
_BY_ANNOTATION["tuple[BanInfo, ...]"] = st.lists(_record(BanInfo), max_size=3).map(tuple)
_BY_ANNOTATION["tuple[MentionInfo, ...]"] = st.lists(_record(MentionInfo), max_size=3).map(tuple)
_BY_ANNOTATION["tuple[Found, ...]"] = st.lists(_record(Found), max_size=3).map(tuple)

# Help lines travel as one string joined by newlines: a line cannot hold a newline, and
# a list of one empty line reads back as no lines (the server never sends either).
_HELP = st.builds(
    HelpText,
    ts=_TIME,
    lines=st.lists(_LINE, min_size=1, max_size=4).filter(lambda ls: ls != [""]).map(tuple),
)


def _any_event() -> st.SearchStrategy[Event]:
    return st.one_of([_HELP if cls is HelpText else _record(cls) for cls in EVENT_CLASSES])


def _as_sent(event: Event) -> Event:
    """``event`` as the wire carries it: times to the millisecond."""
    if isinstance(event, BanList):
        bans = tuple(dataclasses.replace(ban, ts=round(ban.ts, 3)) for ban in event.bans)
        event = dataclasses.replace(event, bans=bans)
    if isinstance(event, MentionList):
        found = tuple(dataclasses.replace(m, ts=round(m.ts, 3)) for m in event.mentions)
        event = dataclasses.replace(event, mentions=found, since=round(event.since, 3))
    if isinstance(event, SearchResults):
        hits = tuple(dataclasses.replace(hit, ts=round(hit.ts, 3)) for hit in event.hits)
        event = dataclasses.replace(event, hits=hits)
    return dataclasses.replace(event, ts=round(event.ts, 3))


def test_jsonwire_every_event_type_has_one_row() -> None:
    """A new event class without a row in the schema fails here, not on the wire."""
    assert sorted(spec.cls.__name__ for spec in EVENT_SPECS) == sorted(
        cls.__name__ for cls in EVENT_CLASSES
    )
    assert len({spec.json_type for spec in EVENT_SPECS}) == len(EVENT_SPECS)


@settings(max_examples=400, deadline=CPU_DEADLINE)
@given(_any_event())
def test_jsonwire_round_trip(event: Event) -> None:
    """decode(encode(e)) == e (times rounded to ms); encoding again gives the same bytes."""
    data = encode_event(event)
    decoded = decode_event(data)
    assert decoded == _as_sent(event)
    assert encode_event(decoded) == data
    assert decode_event(data.decode()) == decoded  # str lines decode the same


def test_jsonwire_encode_json_is_encode_event() -> None:
    """The codec's old name is the same encoder (the server still imports it)."""
    assert encode_json is encode_event


def test_jsonwire_derived_fields_are_written_and_ignored_on_reading() -> None:
    """welcome's text and who's online are computed; a reader takes the real fields."""
    obj = event_object(Welcome(TS, "alice", 3, "#lobby"))
    assert obj["text"] == "welcome, alice! 3 online. Type /help for commands."
    obj["text"] = "hello there"
    assert object_event(obj) == Welcome(round(TS, 3), "alice", 3, "#lobby")
    who = event_object(WhoList(TS, "#x", ("a", "b"), (("b", "lunch"),)))
    assert who["online"] == 2
    assert who["away"] == {"b": "lunch"}
    assert "away" not in event_object(WhoList(TS, "#x", ("a",)))


def test_jsonwire_away_event() -> None:
    """/away's event: name and text, as docs/protocol.md shows it."""
    line = encode_event(Away(TS, "bob", "lunch"))
    assert line == b'{"type":"away","name":"bob","text":"lunch","ts":1795714800.123}\n'
    assert decode_event(line) == Away(1795714800.123, "bob", "lunch")


def test_jsonwire_optional_fields_take_the_class_defaults() -> None:
    """Fields left out while empty (history, locked, away; a mod's reason) read back."""
    assert decode_event('{"type":"say","room":"#a","id":1,"from":"b","text":"t","ts":1}') == Said(
        1.0, "#a", 1, "b", "t", history=False
    )
    assert decode_event('{"type":"mod","action":"kick","target":"b","by":"o","ts":2}') == Moderated(
        2.0, "kick", "b", "o"
    )


def test_jsonwire_extra_fields_are_ignored() -> None:
    """A newer server's extra fields do not stop an older reader."""
    assert decode_event('{"type":"ping","ts":5,"nonce":"x"}') == Ping(5.0)


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"ts": 1}', "no event type"),
        ('{"type": "say", "room": "#a", "id": 1, "from": "b", "text": "t"}', "'ts'"),
        ('{"type": "say", "room": "#a", "id": 1, "from": "b", "ts": 1}', "missing field 'text'"),
        ('{"type": "say", "room": "#a", "id": "1", "from": "b", "text": "", "ts": 1}', "'id'"),
        ('{"type": "join", "room": "#a", "name": "b", "online": true, "ts": 1}', "'online'"),
        ('{"type": "topic", "room": "#a", "topic": "", "by": "", "changed": 1, "ts": 1}', "true"),
        ('{"type": "who", "room": "#a", "names": ["a", 2], "ts": 1}', "'names'"),
        ('{"type": "rooms", "rooms": [{"room": "#a", "online": 1}], "ts": 1}', "'topic'"),
        ('{"type": "bans", "bans": [7], "ts": 1}', "'bans'"),
        ('{"type": "who", "room": "#a", "names": [], "away": [], "ts": 1}', "'away'"),
    ],
)
def test_jsonwire_malformed_lines_raise_a_value_error(line: str | bytes, says: str) -> None:
    """Every malformed line is one MalformedEvent (a ValueError) saying what is wrong."""
    with pytest.raises(MalformedEvent, match=says) as caught:
        decode_event(line)
    assert isinstance(caught.value, ValueError)
    assert not isinstance(caught.value, UnknownEvent)


def test_jsonwire_unknown_type_is_its_own_error() -> None:
    """A type from the future is UnknownEvent, naming it, so a reader can skip it."""
    with pytest.raises(UnknownEvent) as caught:
        decode_event('{"type": "hologram", "ts": 1}')
    assert caught.value.kind == "hologram"
    assert isinstance(caught.value, MalformedEvent)


def test_jsonwire_help_lines_join_and_split() -> None:
    """The help text is one string of lines; the default lines come back as they were."""
    assert decode_event(encode_event(HelpText(TS))) == HelpText(round(TS, 3))
    assert json.loads(encode_event(HelpText(TS, ())))["text"] == ""
    assert decode_event(encode_event(HelpText(TS, ()))) == HelpText(round(TS, 3), ())


def test_jsonwire_module_lists_every_event() -> None:
    """The events module's Event union is what the schema covers (no stragglers)."""
    assert set(EVENT_CLASSES) <= {getattr(events, name) for name in events.__all__}


@settings(max_examples=400, deadline=CPU_DEADLINE)
@given(_any_event())
def test_jsonwire_bytes_are_the_json_modules(event: Event) -> None:
    """orjson writes exactly what ``json.dumps(ensure_ascii=False)`` would: compact,
    UTF-8 unescaped, the same escapes and float digits, one newline at the end."""
    stdlib = json.dumps(event_object(event), ensure_ascii=False, separators=(",", ":"))
    assert encode_event(event) == (stdlib + "\n").encode()


@pytest.mark.parametrize("value", [1e-9, 1e-05, 9.99e-05])
def test_jsonwire_small_floats_differ_in_form_only(value: float) -> None:
    """The one known difference from ``json.dumps``: floats in [1e-9, 1e-4) are written
    in decimal form; they read back as the same number."""
    assert orjson.dumps(value) != json.dumps(value).encode()
    assert orjson.loads(orjson.dumps(value)) == json.loads(json.dumps(value)) == value


def test_jsonwire_deep_nesting_is_malformed_not_a_crash() -> None:
    """A hostile server's "[[[[..." thousands deep is a malformed line to the reader."""
    with pytest.raises(MalformedEvent, match="not JSON"):
        decode_event("[" * 5000 + "]" * 5000)
