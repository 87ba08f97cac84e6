"""Encoding events for the wire: plain lines as in docs/protocol.md, and JSON objects."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.deadlines import CPU_DEADLINE
from triochat.core.codec import (
    NOTICE,
    Mode,
    encode,
    encode_json,
    encode_plain,
    history_header,
    welcome_text,
)
from triochat.core.events import (
    HELP_LINES,
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

TS = 1795714800.123456  # a fixed server time; its local HH:MM is computed, not assumed

ALL_EVENTS: list[Event] = [
    Welcome(TS, "alice", 3, "#lobby"),
    Joined(TS, "#lobby", "dave", 4),
    Left(TS, "#lobby", "dave", 3, "quit"),
    Presence(TS, "#lobby", 37, 2, 512, ("a", "b")),
    Said(TS, "#lobby", 7, "bob", "hello"),
    Acted(TS, "#lobby", 8, "carol", "waves"),
    Renamed(TS, "bob", "robert"),
    WhoList(TS, "#lobby", ("alice", "carol", "robert")),
    Private(TS, "dave", "alice", "psst, lunch?"),
    HelpText(TS),
    ErrorEvent(TS, "no-such-user", "no such user: zed"),
    ShuttingDown(TS),
]


def clock(ts: float) -> str:
    return time.strftime("%H:%M", time.localtime(ts))


def decode(data: bytes) -> dict[str, Any]:
    """Check ``data`` is exactly one JSON line and return its object."""
    assert data.endswith(b"\n")
    assert data.count(b"\n") == 1
    obj = json.loads(data)
    assert isinstance(obj, dict)
    return obj


# --- plain mode -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "viewer", "line"),
    [
        (
            Welcome(TS, "alice", 3, "#lobby"),
            "alice",
            "*** welcome, alice! 3 online. Type /help for commands.\n",
        ),
        (Joined(TS, "#lobby", "alice", 3), "bob", "*** alice joined (3 online)\n"),
        (Joined(TS, "#lobby", "dave", 4), None, "*** dave joined (4 online)\n"),
        (Said(TS, "#lobby", 1, "alice", "hello"), "bob", "<alice> hello\n"),
        (Acted(TS, "#lobby", 2, "alice", "waves"), "bob", "* alice waves\n"),
        (Renamed(TS, "alice", "bob"), "carol", "*** alice is now known as bob\n"),
        (Renamed(TS, "alice", "bob"), None, "*** alice is now known as bob\n"),
        (Renamed(TS, "alice", "bob"), "bob", "*** you are now known as bob\n"),
        (Left(TS, "#lobby", "bob", 2, "quit"), "alice", "*** bob left (2 online)\n"),
        (Left(TS, "#lobby", "bob", 2, "closed"), "alice", "*** bob left (2 online)\n"),
        (Left(TS, "#lobby", "eve", 2, "too slow"), "alice", "*** eve left: too slow (2 online)\n"),
        (Left(TS, "#lobby", "eve", 2, "lost"), "alice", "*** eve left: lost (2 online)\n"),
        (Private(TS, "alice", "bob", "psst"), "bob", "*alice* psst\n"),
        (Private(TS, "bob", "dave", "sure"), "bob", "-> *dave* sure\n"),
        (Private(TS, "alice", "alice", "note to self"), "alice", "*alice* note to self\n"),
        (ErrorEvent(TS, "no-such-user", "no such user: zed"), "alice", "! no such user: zed\n"),
        (
            WhoList(TS, "#lobby", ("alice", "carol", "robert")),
            "alice",
            "*** online (3): alice, carol, robert\n",
        ),
        (WhoList(TS, "#lobby", ("alice",)), "alice", "*** online (1): alice\n"),
        (Presence(TS, "#lobby", 37, 2, 512), None, "*** 37 joined, 2 left (512 online)\n"),
        (Presence(TS, "#lobby", 3, 0, 103, ("a", "b", "c")), None, "*** 3 joined (103 online)\n"),
        (Presence(TS, "#lobby", 0, 4, 99), None, "*** 4 left (99 online)\n"),
        (ShuttingDown(TS), "alice", "*** server is shutting down\n"),
    ],
)
def test_encode_plain_matches_protocol_doc(event: Event, viewer: str | None, line: str) -> None:
    """Each event's plain line is exactly the form docs/protocol.md shows."""
    assert encode_plain(event, viewer) == line.encode()


def test_encode_plain_doc_example_sequence() -> None:
    """The 'Plain mode output' block of docs/protocol.md, reproduced event by event."""
    at = 1795714800.0
    events: list[tuple[Event, str | None]] = [
        (Welcome(at, "alice", 3, "#lobby"), "alice"),
        (Said(at - 300, "#lobby", 5, "bob", "morning", history=True), "alice"),
        (Acted(at - 240, "#lobby", 6, "carol", "waves", history=True), "alice"),
        (Joined(at, "#lobby", "dave", 4), "alice"),
        (Said(at, "#lobby", 7, "bob", "hello"), "alice"),
        (Acted(at, "#lobby", 8, "carol", "waves"), "alice"),
        (Renamed(at, "bob", "robert"), "alice"),
        (Private(at, "dave", "alice", "psst, lunch?"), "alice"),
        (Private(at, "alice", "dave", "sure"), "alice"),
        (WhoList(at, "#lobby", ("alice", "carol", "robert")), "alice"),
        (Left(at, "#lobby", "dave", 3, "quit"), "alice"),
        (Left(at, "#lobby", "eve", 2, "too slow"), "alice"),
        (ErrorEvent(at, "no-such-user", "no such user: zed"), "alice"),
        (ShuttingDown(at), "alice"),
    ]
    text = b"".join(encode_plain(event, viewer) for event, viewer in events).decode()
    assert text == (
        "*** welcome, alice! 3 online. Type /help for commands.\n"
        f"[{clock(at - 300)}] <bob> morning\n"
        f"[{clock(at - 240)}] * carol waves\n"
        "*** dave joined (4 online)\n"
        "<bob> hello\n"
        "* carol waves\n"
        "*** bob is now known as robert\n"
        "*dave* psst, lunch?\n"
        "-> *dave* sure\n"
        "*** online (3): alice, carol, robert\n"
        "*** dave left (3 online)\n"
        "*** eve left: too slow (2 online)\n"
        "! no such user: zed\n"
        "*** server is shutting down\n"
    )


def test_encode_plain_help_lines_each_start_with_notice_marker() -> None:
    """Help is several lines, one per HELP_LINES entry, each starting '*** '."""
    data = encode_plain(HelpText(TS), "alice").decode()
    assert data.endswith("\n")
    lines = data.removesuffix("\n").split("\n")
    assert len(lines) == len(HELP_LINES) > 1
    assert all(line.startswith("*** ") for line in lines)
    assert [line[4:] for line in lines] == list(HELP_LINES)
    for command in ("/me", "/msg", "/nick", "/who", "/help", "/quit"):
        assert command in data


def test_encode_plain_custom_help_lines() -> None:
    """HelpText.lines, not a hard-coded text, is what the plain codec renders."""
    assert encode_plain(HelpText(TS, ("one", "two"))) == b"*** one\n*** two\n"


@pytest.mark.parametrize(
    ("event", "rest"),
    [
        (Said(TS, "#lobby", 1, "bob", "morning", history=True), "<bob> morning\n"),
        (Acted(TS, "#lobby", 2, "carol", "waves", history=True), "* carol waves\n"),
    ],
)
def test_encode_plain_history_has_local_time_prefix(event: Event, rest: str) -> None:
    """Replayed chat lines start with the server's local [HH:MM]."""
    assert encode_plain(event, "alice") == f"[{clock(TS)}] {rest}".encode()


def test_encode_plain_live_chat_has_no_time_prefix() -> None:
    """Live (non-history) chat lines carry no [HH:MM] prefix."""
    assert not encode_plain(Said(TS, "#lobby", 1, "bob", "x")).startswith(b"[")
    assert not encode_plain(Acted(TS, "#lobby", 1, "bob", "x")).startswith(b"[")


def test_encode_plain_history_time_follows_ts() -> None:
    """The [HH:MM] prefix comes from each event's own ts, not the current time."""
    later = TS + 3 * 3600 + 17 * 60
    first = encode_plain(Said(TS, "#lobby", 1, "bob", "x", history=True))
    second = encode_plain(Said(later, "#lobby", 2, "bob", "x", history=True))
    assert first.startswith(f"[{clock(TS)}] ".encode())
    assert second.startswith(f"[{clock(later)}] ".encode())
    assert first != second


def test_encode_plain_non_ascii_is_utf8() -> None:
    """Plain output is UTF-8: emoji and CJK arrive intact."""
    data = encode_plain(Said(TS, "#lobby", 1, "bob", "caf\u00e9 \U0001f600 \u4f60\u597d"))
    assert data.decode("utf-8") == "<bob> caf\u00e9 \U0001f600 \u4f60\u597d\n"


# --- JSON mode --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            Welcome(TS, "alice", 2, "#lobby"),
            {
                "type": "welcome",
                "name": "alice",
                "online": 2,
                "room": "#lobby",
                "text": "welcome, alice! 2 online. Type /help for commands.",
            },
        ),
        (
            Joined(TS, "#lobby", "dave", 4),
            {"type": "join", "room": "#lobby", "name": "dave", "online": 4},
        ),
        (
            Left(TS, "#lobby", "eve", 2, "too slow"),
            {"type": "leave", "room": "#lobby", "name": "eve", "online": 2, "reason": "too slow"},
        ),
        (
            Left(TS, "#lobby", "bob", 1, "quit"),
            {"type": "leave", "room": "#lobby", "name": "bob", "online": 1, "reason": "quit"},
        ),
        (
            Presence(TS, "#lobby", 37, 2, 512, ("a", "b")),
            {
                "type": "presence",
                "room": "#lobby",
                "joined": 37,
                "left": 2,
                "online": 512,
                "names": ["a", "b"],
            },
        ),
        (
            Said(TS, "#lobby", 8, "alice", "hi all"),
            {"type": "say", "room": "#lobby", "id": 8, "from": "alice", "text": "hi all"},
        ),
        (
            Acted(TS, "#lobby", 9, "carol", "waves"),
            {"type": "me", "room": "#lobby", "id": 9, "from": "carol", "text": "waves"},
        ),
        (Renamed(TS, "bob", "robert"), {"type": "nick", "old": "bob", "new": "robert"}),
        (
            WhoList(TS, "#lobby", ("alice", "carol")),
            {"type": "who", "room": "#lobby", "names": ["alice", "carol"], "online": 2},
        ),
        (
            Private(TS, "dave", "alice", "psst"),
            {"type": "msg", "from": "dave", "to": "alice", "text": "psst"},
        ),
        (
            ErrorEvent(TS, "name-taken", "alice is taken"),
            {"type": "error", "code": "name-taken", "text": "alice is taken"},
        ),
        (ShuttingDown(TS), {"type": "shutdown", "text": "server is shutting down"}),
    ],
)
def test_encode_json_fields(event: Event, expected: dict[str, Any]) -> None:
    """Each event encodes to the documented type and fields plus ts, nothing else."""
    assert decode(encode_json(event)) == {**expected, "ts": 1795714800.123}


def test_encode_json_help_text_is_joined_lines() -> None:
    """The help event carries all help lines in one text field, newline-separated."""
    obj = decode(encode_json(HelpText(TS)))
    assert obj == {"type": "help", "ts": 1795714800.123, "text": "\n".join(HELP_LINES)}


@pytest.mark.parametrize("event", ALL_EVENTS, ids=lambda event: type(event).__name__)
def test_encode_json_type_and_rounded_ts_always_present(event: Event) -> None:
    """Every event is one line with a string type and ts as a float rounded to 1 ms."""
    obj = decode(encode_json(event))
    assert isinstance(obj["type"], str)
    assert isinstance(obj["ts"], float)
    assert obj["ts"] == round(TS, 3)


def test_encode_json_ts_rounding() -> None:
    """ts keeps milliseconds: rounded, not truncated, and whole seconds stay floats."""
    assert decode(encode_json(Joined(1795714800.9996, "#lobby", "a", 1)))["ts"] == 1795714801.0
    assert decode(encode_json(Joined(1795714800.0004, "#lobby", "a", 1)))["ts"] == 1795714800.0
    assert b'"ts":1795714800.0' in encode_json(Joined(1795714800.0, "#lobby", "a", 1))


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        (Said(TS, "#lobby", 7, "bob", "morning", history=True), "say"),
        (Acted(TS, "#lobby", 8, "bob", "yawns", history=True), "me"),
    ],
)
def test_encode_json_history_flag_only_on_replay(event: Said | Acted, kind: str) -> None:
    """ "history": true appears on replayed chat events and is absent from live ones."""
    replay = decode(encode_json(event))
    assert replay["type"] == kind
    assert replay["history"] is True
    assert replay["id"] == event.id
    live = decode(encode_json(dataclasses.replace(event, history=False)))
    assert "history" not in live
    assert live["id"] == event.id


@pytest.mark.parametrize("event", ALL_EVENTS, ids=lambda event: type(event).__name__)
def test_encode_json_no_history_key_on_other_events(event: Event) -> None:
    """Only replayed say/me carry a history key."""
    assert "history" not in decode(encode_json(event))


def test_encode_json_newline_in_text_stays_one_line() -> None:
    """A raw newline or CR in a text field is JSON-escaped, never splitting the line."""
    data = encode_json(Said(TS, "#lobby", 1, "bob", "line one\nline two\r\nthree"))
    assert data.count(b"\n") == 1
    assert b"\r" not in data
    assert decode(data)["text"] == "line one\nline two\r\nthree"


def test_encode_json_unicode_separators_stay_one_line() -> None:
    """U+2028/U+2029 and NEL in text do not add a newline byte to the JSON line."""
    text = "a\u2028b\u2029c\x85d"
    data = encode_json(Private(TS, "bob", "alice", text))
    assert data.count(b"\n") == 1
    assert decode(data)["text"] == text


def test_encode_json_non_ascii_readable_and_round_trips() -> None:
    """Non-ASCII text is emitted as UTF-8, not \\u escapes, and decodes back unchanged."""
    text = "caf\u00e9 \U0001f600 \u4f60\u597d \u05e9\u05dc\u05d5\u05dd"
    data = encode_json(Said(TS, "#lobby", 1, "bob", text))
    assert text.encode() in data
    assert b"\\u" not in data
    assert decode(data)["text"] == text


def test_encode_json_is_compact() -> None:
    """JSON lines use compact separators (no padding spaces) to keep lines short."""
    assert (
        encode_json(Joined(1.0, "#lobby", "a", 1))
        == b'{"type":"join","room":"#lobby","name":"a","online":1,"ts":1.0}\n'
    )


@settings(max_examples=150, deadline=CPU_DEADLINE)
@given(
    sender=st.text(min_size=1, max_size=24),
    text=st.text(),
    id_=st.integers(0, 2**53),
    history=st.booleans(),
)
def test_encode_json_say_round_trips(sender: str, text: str, id_: int, history: bool) -> None:
    """Any text survives encode_json and json.loads on exactly one line."""
    obj = decode(encode_json(Said(TS, "#lobby", id_, sender, text, history)))
    assert (obj["from"], obj["text"], obj["id"]) == (sender, text, id_)
    assert obj.get("history", False) is history


# --- encode / Mode / welcome_text -------------------------------------------------------


def test_encode_dispatches_on_mode() -> None:
    """encode() picks the codec from the mode and passes the viewer to the plain one."""
    event = Renamed(TS, "alice", "bob")
    assert encode(event, Mode.JSON, "bob") == encode_json(event)
    assert encode(event, Mode.PLAIN, "bob") == b"*** you are now known as bob\n"
    assert encode(event, Mode.PLAIN) == b"*** alice is now known as bob\n"


def test_encode_private_json_same_for_both_parties() -> None:
    """In JSON mode a private message encodes the same for sender and recipient."""
    event = Private(TS, "alice", "bob", "psst")
    assert encode(event, Mode.JSON, "alice") == encode(event, Mode.JSON, "bob")


def test_mode_values_are_wire_names() -> None:
    """The modes are the three documented wire modes, by value."""
    assert Mode("plain") is Mode.PLAIN
    assert Mode("json") is Mode.JSON
    assert Mode("irc") is Mode.IRC
    assert len(Mode) == 3


def test_welcome_text_names_member_count_and_help() -> None:
    """The welcome names the member, the head count and /help, as in the doc."""
    assert welcome_text("alice", 3) == "welcome, alice! 3 online. Type /help for commands."
    assert welcome_text("bob", 1) == "welcome, bob! 1 online. Type /help for commands."


@pytest.mark.parametrize("event", ALL_EVENTS, ids=lambda event: type(event).__name__)
def test_encode_plain_every_event_ends_with_one_newline(event: Event) -> None:
    """Every plain encoding is UTF-8 text ending in exactly one newline."""
    data = encode_plain(event, "alice")
    assert data.endswith(b"\n")
    assert not data.endswith(b"\n\n")
    data.decode("utf-8")


def test_history_header_counts_messages() -> None:
    """The plain-mode replay header names how many lines follow, in good English."""
    assert history_header(1) == b"*** last message:\n"
    assert history_header(20) == b"*** last 20 messages:\n"


_NAMES = st.from_regex(r"[A-Za-z0-9_.-]{1,24}", fullmatch=True)
_TEXTS = st.text(min_size=1, max_size=60)


@settings(max_examples=300, deadline=CPU_DEADLINE)
@given(sender=_NAMES, to=_NAMES, viewer=st.one_of(st.none(), _NAMES), text=_TEXTS)
def test_encode_plain_member_lines_never_look_like_server_notices(
    sender: str, to: str, viewer: str | None, text: str
) -> None:
    """No name or text makes a member's line start like a server notice or an error."""
    caused_by_member: list[Event] = [
        Said(TS, "#lobby", 1, sender, text),
        Acted(TS, "#lobby", 2, sender, text),
        Said(TS, "#lobby", 1, sender, text, history=True),
        Acted(TS, "#lobby", 2, sender, text, history=True),
        Private(TS, sender, to, text),
    ]
    for event in caused_by_member:
        line = encode_plain(event, viewer).decode()
        assert not line.startswith(NOTICE), line
        assert not line.startswith("! "), line


def test_encode_plain_every_server_notice_starts_with_marker() -> None:
    """Every line the server says on its own account starts with the notice marker."""
    member_caused = (Said, Acted, Private, ErrorEvent)
    for event in ALL_EVENTS:
        if isinstance(event, member_caused):
            continue
        for line in encode_plain(event, "alice").decode().splitlines():
            assert line.startswith(NOTICE), line
    assert history_header(3).startswith(NOTICE.encode())
