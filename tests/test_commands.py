"""Parsing client lines: plain text, JSON objects, and the registration line."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.deadlines import CPU_DEADLINE
from triochat.core.commands import (
    Command,
    Hello,
    Help,
    History,
    Invalid,
    Join,
    Me,
    Msg,
    Nick,
    Part,
    Quit,
    Rooms,
    Say,
    Topic,
    Who,
    parse_json,
    parse_plain,
    parse_registration,
)


def j(**fields: object) -> str:
    """One JSON line as a client would send it."""
    return json.dumps(fields)


def assert_invalid(command: Command | None, code: str) -> Invalid:
    assert isinstance(command, Invalid), command
    assert command.code == code
    assert command.text
    return command


# --- dataclasses ------------------------------------------------------------------------


def test_commands_are_frozen_and_compare_by_value() -> None:
    """Commands are immutable values: equal fields compare equal and assignment fails."""
    assert Say("hi") == Say("hi")
    assert Say("hi") != Say("bye")
    assert Nick("hi") != Hello("hi")  # type: ignore[comparison-overlap]
    assert Msg("bob", "x") == Msg("bob", "x")
    assert Who() == Who()
    with pytest.raises(dataclasses.FrozenInstanceError):
        Say("hi").text = "bye"  # type: ignore[misc]


# --- parse_plain ------------------------------------------------------------------------


def test_parse_plain_text_is_say() -> None:
    """An ordinary line is said to the room, with surrounding whitespace trimmed."""
    assert parse_plain("hello world") == Say("hello world")
    assert parse_plain("  padded  ") == Say("padded")
    assert parse_plain("not /a command") == Say("not /a command")


def test_parse_plain_double_slash_is_text() -> None:
    """'//x' sends text starting with a single '/' instead of running a command."""
    assert parse_plain("//x") == Say("/x")
    assert parse_plain("//me is not an action") == Say("/me is not an action")
    assert parse_plain("//") == Say("/")


@pytest.mark.parametrize("line", ["", " ", "\t", "  \t  ", "\x1b[2J", "\x07\x00", "\x1b[A\r"])
def test_parse_plain_blank_is_ignored(line: str) -> None:
    """Lines empty or only whitespace (after sanitising) are ignored, not said."""
    assert parse_plain(line) is None


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("/me waves", Me("waves")),
        ("/ME waves hello", Me("waves hello")),
        ("/nick bob", Nick("bob")),
        ("/Nick  bob  ", Nick("bob")),
        ("/who", Who()),
        ("/WHO", Who()),
        ("/who #dev", Who("#dev")),
        ("/who Dev", Who("#dev")),
        ("/join #Dev", Join("#dev")),
        ("/join dev", Join("#dev")),
        ("/part", Part()),
        ("/part #dev", Part("#dev")),
        ("/rooms", Rooms()),
        ("/topic", Topic()),
        ("/topic release on friday", Topic("release on friday")),
        ("/history", History()),
        ("/history 5", History(limit=5)),
        ("/msg bob psst, lunch?", Msg("bob", "psst, lunch?")),
        ("/MsG bob  spaced   text ", Msg("bob", "spaced   text")),
        ("/help", Help()),
        ("/HELP", Help()),
        ("/quit", Quit()),
        ("/Quit", Quit()),
        ("  /quit  ", Quit()),
    ],
)
def test_parse_plain_commands(line: str, command: Command) -> None:
    """Each slash command parses to its command object; the verb's case is ignored."""
    assert parse_plain(line) == command


@pytest.mark.parametrize(
    ("line", "usage"),
    [
        ("/me", "usage: /me ACTION"),
        ("/me   ", "usage: /me ACTION"),
        ("/nick", "usage: /nick NAME"),
        ("/nick  ", "usage: /nick NAME"),
        ("/msg", "usage: /msg NAME TEXT"),
        ("/msg bob", "usage: /msg NAME TEXT"),
        ("/msg bob   ", "usage: /msg NAME TEXT"),
    ],
)
def test_parse_plain_missing_args_is_invalid_with_usage(line: str, usage: str) -> None:
    """A command without its arguments gets an error carrying the usage text."""
    command = parse_plain(line)
    assert isinstance(command, Invalid)
    assert command.code in {"empty", "bad-request"}
    assert usage in command.text


@pytest.mark.parametrize("line", ["/frobnicate", "/dance now", "/", "/ me"])
def test_parse_plain_unknown_command(line: str) -> None:
    """An unknown verb gets 'unknown-command' with a pointer to /help."""
    command = assert_invalid(parse_plain(line), "unknown-command")
    assert "/help" in command.text


def test_parse_plain_unknown_command_text_is_sanitised() -> None:
    """The echoed unknown verb carries no escape sequence back to the sender's terminal."""
    command = assert_invalid(parse_plain("/x\x1b]0;pwned\x07y"), "unknown-command")
    assert "\x1b" not in command.text
    assert "\x07" not in command.text
    assert "/xy" in command.text


def test_parse_plain_strips_controls_from_fields() -> None:
    """Control characters and escapes are removed from every parsed field."""
    assert parse_plain("hi\x1b[2J there\x07") == Say("hi there")
    assert parse_plain("/me\x00 waves\x1b[31m") == Me("waves")
    assert parse_plain("/nick bo\x1b[31mb") == Nick("bob")
    assert parse_plain("/msg al\u202eice se\x9b2Jcret") == Msg("alice", "secret")
    assert parse_plain("\x1b[2J/quit") == Quit()


@settings(max_examples=200, deadline=CPU_DEADLINE)
@given(st.text())
def test_parse_plain_never_raises_and_fields_are_clean(line: str) -> None:
    """Any text parses without error; text fields hold no ESC or line breaks."""
    command = parse_plain(line)
    if command is None:
        return
    for value in dataclasses.astuple(command):
        if value is None:
            continue  # an optional room left out
        assert isinstance(value, str)
        assert "\x1b" not in value
        assert "\n" not in value
        assert "\r" not in value


# --- parse_json -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "command"),
    [
        (j(type="say", text="hi all"), Say("hi all")),
        (j(type="me", text="waves"), Me("waves")),
        (j(type="nick", name="bob"), Nick("bob")),
        (j(type="who"), Who()),
        (j(type="msg", to="bob", text="psst"), Msg("bob", "psst")),
        (j(type="help"), Help()),
        (j(type="quit"), Quit()),
        (j(type="hello", name="alice"), Hello("alice")),
        (j(type="say", text="  trimmed  "), Say("trimmed")),
        (
            j(type="say", text="caf\u00e9 \U0001f600 \u4f60\u597d"),
            Say("caf\u00e9 \U0001f600 \u4f60\u597d"),
        ),
        (j(type="who", extra="ignored"), Who()),
        ('  {"type":"quit"}  ', Quit()),
    ],
)
def test_parse_json_each_type(line: str, command: Command) -> None:
    """Every documented request type parses to its command object."""
    assert parse_json(line) == command


@pytest.mark.parametrize(
    "line", ["{not json", '{"type": "say", "text": "hi"', "say hi", "{'type': 'say'}", "{}{}"]
)
def test_parse_json_malformed_is_bad_json(line: str) -> None:
    """A line that is not valid JSON gets 'bad-json'."""
    assert_invalid(parse_json(line), "bad-json")


@pytest.mark.parametrize("line", ["[1, 2]", "[]", "5", "1.5", '"say"', "null", "true", "NaN"])
def test_parse_json_non_object_is_bad_json(line: str) -> None:
    """Valid JSON that is not an object (list, number, string, null) gets 'bad-json'."""
    assert_invalid(parse_json(line), "bad-json")


@pytest.mark.parametrize(
    "line",
    ["[" * 50, "[" * 4096, '{"a":[' * 682, '{"type": "say", "text": "hi", "x": ' + "[" * 4000],
)
def test_parse_json_deeply_nested_is_bad_json(line: str) -> None:
    """Deep nesting that fits in one 4096-byte line gets bad-json (bug: RecursionError)."""
    assert len(line.encode()) <= 4096
    assert_invalid(parse_json(line), "bad-json")


@pytest.mark.parametrize("kind", ["dance", "SAY", "", "welcome"])
def test_parse_json_unknown_type(kind: str) -> None:
    """A string type that is not a request gets 'unknown-command' naming it."""
    command = assert_invalid(parse_json(j(type=kind, text="x")), "unknown-command")
    assert repr(kind) in command.text


def test_parse_json_unknown_type_is_sanitised_and_truncated() -> None:
    """The echoed unknown type carries no escape and is cut to a short excerpt."""
    command = assert_invalid(parse_json(j(type="\x1b[2J" + "x" * 500)), "unknown-command")
    assert "\x1b" not in command.text
    assert len(command.text) < 100


@pytest.mark.parametrize(
    "line",
    [
        j(text="no type"),
        j(type=5),
        j(type=None),
        j(type=["say"]),
        j(type="say"),
        j(type="say", text=5),
        j(type="say", text=None),
        j(type="me", text=["waves"]),
        j(type="nick"),
        j(type="nick", name=7),
        j(type="hello", name={"first": "a"}),
        j(type="msg", text="psst"),
        j(type="msg", to="bob"),
        j(type="msg", to=1, text="psst"),
        j(type="msg", to="bob", text=False),
    ],
)
def test_parse_json_missing_or_mistyped_field_is_bad_request(line: str) -> None:
    """A missing type, or a required field missing or not a string, gets 'bad-request'."""
    command = assert_invalid(parse_json(line), "bad-request")
    assert "'" in command.text  # names the offending field


def test_parse_json_msg_without_text_is_empty() -> None:
    """A private message whose text is blank gets an error rather than being sent."""
    assert_invalid(parse_json(j(type="msg", to="bob", text="  \x07 ")), "empty")


@pytest.mark.parametrize("kind", ["say", "me"])
def test_parse_json_blank_text_is_ignored(kind: str) -> None:
    """A say/me whose text is blank after sanitising is ignored like a blank plain line."""
    assert parse_json(j(type=kind, text=" \x1b[2J\t ")) is None


@pytest.mark.parametrize("line", ["", "   ", "\t", " \t "])
def test_parse_json_blank_line_is_ignored(line: str) -> None:
    """A blank line in JSON mode is ignored, not a bad-json error."""
    assert parse_json(line) is None


def test_parse_json_strips_controls_from_string_values() -> None:
    """Control characters and ANSI escapes inside JSON strings are stripped from every field."""
    assert parse_json('{"type": "say", "text": "\\u001b[2Jhi\\u0007"}') == Say("hi")
    assert parse_json('{"type": "me", "text": "\\u009b2Jwaves\\u202e"}') == Me("waves")
    assert parse_json('{"type": "nick", "name": "bo\\u001b]0;x\\u0007b"}') == Nick("bob")
    assert parse_json('{"type": "hello", "name": "\\u2066al\\u0000ice"}') == Hello("alice")
    assert parse_json(
        '{"type": "msg", "to": "b\\u200fob", "text": "line\\nbreak\\r\\u2028"}'
    ) == Msg("bob", "linebreak")


def test_parse_json_lone_surrogate_yields_encodable_text() -> None:
    """A JSON \\ud800 escape must not reach the room (bug: Say('a\\ud800b') cannot be encoded)."""
    command = parse_json('{"type": "say", "text": "a\\ud800b"}')
    assert isinstance(command, Say | Invalid)
    if isinstance(command, Say):
        command.text.encode("utf-8")


@settings(max_examples=200, deadline=CPU_DEADLINE)
@given(
    kind=st.sampled_from(["say", "me", "nick", "msg", "hello"]),
    value=st.text(),
)
def test_parse_json_string_fields_always_clean(kind: str, value: str) -> None:
    """Whatever a JSON client puts in a string field comes out without ESC or line breaks."""
    command = parse_json(json.dumps({"type": kind, "text": value, "name": value, "to": value}))
    if command is None:
        return
    for field_value in dataclasses.astuple(command):
        if field_value is None or field_value == ():
            continue  # an optional room, or a hello's empty since/rooms
        assert isinstance(field_value, str)
        assert "\x1b" not in field_value
        assert "\n" not in field_value


# --- parse_registration -----------------------------------------------------------------


def test_parse_registration_hello_selects_json_mode() -> None:
    """A JSON hello object as the first line selects JSON mode and yields Hello."""
    assert parse_registration(j(type="hello", name="alice")) == (True, Hello("alice"))
    assert parse_registration('  {"type":"hello","name":"bob"}  ') == (True, Hello("bob"))


def test_parse_registration_hello_with_bad_name_stays_json() -> None:
    """A hello with an invalid name still selects JSON mode (the room refuses the name)."""
    assert parse_registration(j(type="hello", name="bad name")) == (True, Hello("bad name"))


def test_parse_registration_nick_selects_plain_mode() -> None:
    """'/nick NAME' as the first line registers in plain mode."""
    assert parse_registration("/nick bob") == (False, Nick("bob"))


def test_parse_registration_text_is_plain_say() -> None:
    """Any other first line selects plain mode and is handled as a plain line."""
    assert parse_registration("hello everyone") == (False, Say("hello everyone"))
    assert parse_registration("/who") == (False, Who())
    assert parse_registration("   ") == (False, None)


def test_parse_registration_broken_json_is_plain_say() -> None:
    """A first line that looks like JSON but is not parses as plain text."""
    assert parse_registration("{not json") == (False, Say("{not json"))


@pytest.mark.parametrize(
    "line",
    [j(type="say", text="hi"), j(type="nick", name="bob"), j(type="quit"), "[1, 2]", "{}"],
)
def test_parse_registration_other_json_is_plain_mode(line: str) -> None:
    """Only a hello selects JSON mode; any other JSON line is plain text said as-is."""
    assert parse_registration(line) == (False, Say(line))


@pytest.mark.parametrize(
    "line", ["\u200b", "\u200b\u200b \ufeff", "\u3164", "\U000e0041\U000e0042", "/me \u200d"]
)
def test_parse_plain_invisible_only_message_is_an_error(line: str) -> None:
    """A message of zero width characters was broadcast as an empty-looking line."""
    command = parse_plain(line)
    assert isinstance(command, Invalid)
    assert command.code == "empty"


@pytest.mark.parametrize("kind", ["say", "me"])
def test_parse_json_invisible_only_message_is_an_error(kind: str) -> None:
    """The JSON spelling of an invisible-only message gets the same error."""
    command = parse_json(json.dumps({"type": kind, "text": "\u200b\u3164"}))
    assert isinstance(command, Invalid)
    assert command.code == "empty"


def test_parse_msg_invisible_only_text_is_an_error() -> None:
    """A private message with nothing visible is refused in both modes."""
    for command in (
        parse_plain("/msg bob \u200d\u2800"),
        parse_json(json.dumps({"type": "msg", "to": "bob", "text": "\ufeff"})),
    ):
        assert isinstance(command, Invalid)
        assert command.code == "empty"
