"""Rendering: what a person sees for each event, and that peers' text stays inert."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import typing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from rich.text import Text

from triochat.client.connection import Unreadable
from triochat.client.render import RENDERERS, STYLE_AWAY
from triochat.client.view import (
    HISTORY_FOOTER,
    HISTORY_HEADER,
    NAME_COLOURS,
    STYLE_ERROR,
    STYLE_ME_ACTION,
    STYLE_NOTICE,
    STYLE_OWN,
    STYLE_PRIVATE,
    ChatView,
    make_console,
    name_colour,
    render_event,
)
from triochat.core.events import Away, Event, Ping, WhoList
from triochat.core.jsonwire import event_object, object_event

TS = datetime(2026, 11, 26, 17, 40, 5, tzinfo=UTC).timestamp()
SGR = re.compile(r"\x1b\[[0-9;]*m")  # the only escapes rich itself may emit for styles
HOSTILE = [
    "\x1b[2J\x1b[H",  # clear the screen, cursor home
    "\x1b]0;pwned\x07",  # retitle the terminal (OSC)
    "\x1b]8;;http://evil\x1b\\",  # OSC 8 hyperlink
    "\x9b1A",  # 8-bit CSI: cursor up
    "\x1b[1A\r",  # cursor up, carriage return
    "\x08\x08\x7f",  # backspaces and DEL
    "\u202eevil\u202c",  # bidi override (Trojan Source)
    "\x07\x00\x0c",  # bell, NUL, form feed
]


def wire(obj: dict[str, Any]) -> Event:
    """The event a JSON object stands for (``ts``, ``room`` and ``online`` filled in if
    left out)."""
    return object_event({"ts": TS, "room": "", "online": 1, **obj})


def say(text: str, sender: str = "bob", **extra: Any) -> Event:
    return wire({"type": "say", "ts": TS, "id": 1, "from": sender, "text": text, **extra})


def terminal_console() -> Console:
    return make_console(
        file=io.StringIO(), force_terminal=True, color_system="truecolor", width=100
    )


def printed(console: Console) -> str:
    file = console.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


def styles_at(line: Text, fragment: str) -> str:
    """Every style covering the first character of ``fragment`` in ``line``."""
    start = line.plain.index(fragment)
    styles = [str(span.style) for span in line.spans if span.start <= start < span.end]
    return " ".join([str(line.style), *styles])


def render(event: Event, me: str = "alice") -> Text:
    line = render_event(event, me, UTC)
    assert line is not None
    return line


def test_render_say_starts_with_server_time() -> None:
    """Every line starts with the server's HH:MM, not the client's clock."""
    assert render(say("hello")).plain == "17:40 <bob> hello"


def test_render_markup_in_text_stays_literal() -> None:
    """A peer's [bold] or [link=...] is shown as typed, not interpreted as rich markup."""
    text = "[bold red]loud[/] [link=http://evil.example]click[/link]"
    console = terminal_console()
    ChatView(console, "alice", tz=UTC).show(say(text, sender="[blink]bob"))
    plain = SGR.sub("", printed(console))
    assert text in plain
    assert "[blink]bob" in plain
    assert "\x1b]8" not in printed(console)  # no hyperlink escape was produced


def test_render_emoji_code_stays_literal() -> None:
    """A peer's :smile: is not turned into an emoji by the console."""
    console = terminal_console()
    ChatView(console, "alice", tz=UTC).show(say(":smile: :thumbs_up:"))
    assert ":smile: :thumbs_up:" in SGR.sub("", printed(console))


def test_render_escapes_and_controls_in_text_are_removed() -> None:
    """Escape sequences and control characters in a peer's text never reach the terminal."""
    console = terminal_console()
    view = ChatView(console, "alice", tz=UTC)
    for hostile in HOSTILE:
        view.show(say(f"a{hostile}b"))
    out = SGR.sub("", printed(console))
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", out)
    assert out.count("<bob> ab") == len(HOSTILE) - 1  # the bidi case keeps "evil"


def test_render_escapes_in_name_and_reason_are_removed() -> None:
    """A hostile name or leave reason is sanitised like text (the server is not trusted)."""
    events = [
        {"type": "join", "ts": TS, "name": "ev\x1b[31mil\x07", "online": 2},
        {"type": "leave", "ts": TS, "name": "x", "online": 1, "reason": "\x1b]0;t\x07bye"},
        {"type": "nick", "ts": TS, "old": "a\x9b2J", "new": "b\x1b[2J"},
        {"type": "who", "ts": TS, "names": ["\x1b[2Jz"], "online": 1},
    ]
    console = terminal_console()
    view = ChatView(console, "alice", tz=UTC)
    for event in events:
        view.show(wire(event))
    out = SGR.sub("", printed(console))
    assert "\x1b" not in out
    assert "\x07" not in out
    assert "\x9b" not in out
    assert "evil joined" in out
    assert "left: bye" in out


@given(st.text(), st.text())
def test_render_any_text_prints_only_style_escapes(text: str, sender: str) -> None:
    """Whatever a peer sends as name or text, the console output holds no control codes."""
    console = terminal_console()
    ChatView(console, "alice", tz=UTC).show(say(text, sender=sender))
    out = SGR.sub("", printed(console))
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", out)


def test_view_plain_output_when_not_a_terminal() -> None:
    """When stdout is not a terminal, output is plain text without escape codes."""
    file = io.StringIO()
    view = ChatView(make_console(file=file), "alice", tz=UTC)
    view.show(say("hi", sender="alice"))
    view.show(
        wire({"type": "error", "ts": TS, "code": "no-such-user", "text": "no such user: zed"})
    )
    view.show(wire({"type": "me", "ts": TS, "id": 2, "from": "bob", "text": "waves"}))
    assert file.getvalue() == ("17:40 <alice> hi\n17:40 ! no such user: zed\n17:40 * bob waves\n")


def test_view_long_line_is_not_wrapped_in_plain_output() -> None:
    """A long message stays one line when piped, so scripts can process it line by line."""
    file = io.StringIO()
    ChatView(make_console(file=file), "alice", tz=UTC).show(say("word " * 60))
    assert file.getvalue().count("\n") == 1


def test_name_colour_is_stable_and_spread() -> None:
    """A name always gets the same colour, regardless of case, and names differ."""
    assert name_colour("alice") == name_colour("alice") == name_colour("ALICE")
    colours = {name_colour(f"user{i}") for i in range(50)}
    assert colours <= set(NAME_COLOURS)
    assert len(colours) > len(NAME_COLOURS) // 2
    line = render(say("hi"))
    assert name_colour("bob") in styles_at(line, "bob")


def test_render_own_line_set_apart() -> None:
    """The user's own lines carry a distinct style; other people's do not."""
    assert STYLE_OWN in styles_at(render(say("mine", sender="alice")), "mine")
    assert STYLE_OWN in styles_at(render(say("mine", sender="Alice")), "mine")
    assert STYLE_OWN not in styles_at(render(say("theirs")), "theirs")


def test_render_me_is_italic() -> None:
    """/me actions are italic and read as "* bob waves"."""
    line = render(wire({"type": "me", "ts": TS, "id": 3, "from": "bob", "text": "waves"}))
    assert line.plain == "17:40 * bob waves"
    assert STYLE_ME_ACTION in styles_at(line, "waves")


def test_render_join_leave_rename_are_dim() -> None:
    """Joins, leaves and renames are dim notices; a leave shows an unusual reason only."""
    join = render(wire({"type": "join", "ts": TS, "name": "dave", "online": 4}))
    quit_ = render(wire({"type": "leave", "ts": TS, "name": "dave", "online": 3, "reason": "quit"}))
    slow = render(
        wire({"type": "leave", "ts": TS, "name": "eve", "online": 2, "reason": "too slow"})
    )
    nick = render(wire({"type": "nick", "ts": TS, "old": "bob", "new": "robert"}))
    assert join.plain == "17:40 → dave joined (4 online)"
    assert quit_.plain == "17:40 ← dave left (3 online)"
    assert slow.plain == "17:40 ← eve left: too slow (2 online)"
    assert nick.plain == "17:40 bob is now known as robert"
    for line in (join, quit_, slow, nick):
        assert STYLE_NOTICE in str(line.style) or any(
            str(span.style) == STYLE_NOTICE and span.start == 0 for span in line.spans
        )


def test_render_own_rename_says_you() -> None:
    """A confirmed rename of the user reads "you are now known as ..."."""
    line = render(wire({"type": "nick", "ts": TS, "old": "alice", "new": "ally"}))
    assert line.plain == "17:40 you are now known as ally"


def test_render_private_messages_stand_out() -> None:
    """Private messages, received or sent, are worded as such and styled apart."""
    incoming = render(
        wire({"type": "msg", "ts": TS, "from": "dave", "to": "alice", "text": "psst"})
    )
    outgoing = render(
        wire({"type": "msg", "ts": TS, "from": "alice", "to": "dave", "text": "sure"})
    )
    assert incoming.plain == "17:40 *dave* → you: psst"
    assert outgoing.plain == "17:40 you → *dave*: sure"
    assert STYLE_PRIVATE in styles_at(incoming, "→ you")
    assert STYLE_PRIVATE in styles_at(outgoing, "you →")


def test_render_error_is_red() -> None:
    """Errors from the server are shown red with a "!" mark."""
    line = render(wire({"type": "error", "ts": TS, "code": "no-such-user", "text": "no such user"}))
    assert line.plain == "17:40 ! no such user"
    assert STYLE_ERROR in styles_at(line, "no such")


def test_render_who_presence_help_shutdown() -> None:
    """The less common events each have a readable line."""
    who = render(wire({"type": "who", "ts": TS, "names": ["alice", "bob"], "online": 2}))
    presence = render(
        wire({"type": "presence", "ts": TS, "joined": 3, "left": 1, "online": 9, "names": ["a"]})
    )
    help_ = render(wire({"type": "help", "ts": TS, "text": "commands:\n  /who   who"}))
    shutdown = render(wire({"type": "shutdown", "ts": TS, "text": "server is shutting down"}))
    assert who.plain == "17:40 online (2): alice, bob"
    assert presence.plain == "17:40 3 joined (a, …), 1 left (9 online)"
    assert help_.plain.startswith("17:40 commands:\n        /who           who\n")
    assert "exit, Ctrl-D" in help_.plain
    assert shutdown.plain == "17:40 ! server is shutting down"


def test_render_pings_are_not_shown_and_odd_times_do_not_crash() -> None:
    """A ping has no line; a time the platform cannot show reads --:--."""
    assert render_event(Ping(TS), "alice", UTC) is None
    assert render(wire({"type": "join", "ts": 1e300, "name": "x"})).plain.startswith("--:-- ")


def test_render_every_event_type_has_a_renderer() -> None:
    """A new event type without a row in the renderer table fails here."""
    assert set(RENDERERS) == set(typing.get_args(Event))


def test_view_unreadable_event_is_reported_to_people_and_passed_to_tools() -> None:
    """A malformed event is one error line for a person, and passed on as it came in --json;
    an unknown type (a newer server's) is not shown to a person at all."""
    people, tools = io.StringIO(), io.StringIO()
    broken = Unreadable({"type": "say", "text": "\x1b[2Jx"}, "say: missing field 'room'")
    future = Unreadable({"type": "hologram"})
    for view in (
        ChatView(make_console(file=people), "alice", tz=UTC),
        ChatView(make_console(file=tools), "alice", json_lines=True),
    ):
        view.show_unreadable(broken)
        view.show_unreadable(future)
    assert (
        people.getvalue()
        .splitlines()[0]
        .endswith("! the server sent an event this client cannot read (say: missing field 'room')")
    )
    assert len(people.getvalue().splitlines()) == 1
    assert [json.loads(line) for line in tools.getvalue().splitlines()] == [
        {"type": "say", "text": "x"},
        {"type": "hologram"},
    ]


def test_view_history_is_marked_earlier() -> None:
    """Replayed history sits between an "earlier" header and a "now" footer, dimmed."""
    file = io.StringIO()
    view = ChatView(make_console(file=file), "alice", tz=UTC)
    view.show(say("old one", history=True))
    view.show(say("old two", history=True))
    view.show(say("new"))
    assert file.getvalue().splitlines() == [
        HISTORY_HEADER,
        "17:40 <bob> old one",
        "17:40 <bob> old two",
        HISTORY_FOOTER,
        "17:40 <bob> new",
    ]
    assert "dim" in str(render(say("old", history=True)).style)


def test_view_follows_own_rename() -> None:
    """After a confirmed rename the view's name (and the prompt hook) follow it."""
    seen: list[str] = []
    view = ChatView(make_console(file=io.StringIO()), "alice", tz=UTC)
    view.on_rename = seen.append
    view.show(wire({"type": "nick", "ts": TS, "old": "alice", "new": "ally"}))
    view.show(wire({"type": "nick", "ts": TS, "old": "bob", "new": "rob"}))
    assert view.me == "ally"
    assert seen == ["ally"]


def test_view_json_lines_are_one_sanitised_object_each() -> None:
    """--json prints each event as one JSON line (for jq), with strings re-sanitised."""
    file = io.StringIO()
    view = ChatView(make_console(file=file), "alice", json_lines=True)
    view.show(say("hi\x1b[2J ünï", sender="bob"))
    view.notice("client chatter is not JSON and is not printed")
    lines = file.getvalue().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0]) == event_object(say("hi ünï", sender="bob"))


def test_view_output_goes_through_the_above_guard() -> None:
    """Every printed line is wrapped by the terminal's "print above the prompt" guard."""
    calls: list[str] = []
    file = io.StringIO()

    class Guard:
        def __enter__(self) -> None:
            calls.append(f"enter:{file.getvalue().count(chr(10))}")

        def __exit__(self, *exc: object) -> None:
            calls.append(f"exit:{file.getvalue().count(chr(10))}")

    view = ChatView(make_console(file=file), "alice", above=Guard, tz=UTC)
    view.show(say("one"))
    view.notice("two")
    assert calls == ["enter:0", "exit:1", "enter:1", "exit:2"]


# ---------------------------------------------------------------------------------------
# Rooms


def event(kind: str, **fields: Any) -> Event:
    return wire({"type": kind, "ts": TS, **fields})


@pytest.mark.parametrize(
    ("shown", "plain"),
    [
        (event("join", room="#dev", name="alice", online=3), "→ you joined #dev (3 online)"),
        (event("join", room="#dev", name="bob", online=3), "→ bob joined (3 online)"),
        (event("leave", room="#dev", name="ALICE", online=2, reason="part"), "← you left #dev"),
        (
            event("leave", room="#dev", name="alice", online=2, reason="kicked from #dev by bo: x"),
            "← you were kicked from #dev by bo: x",
        ),
        (
            event("leave", room="#dev", name="bob", online=2, reason="part"),
            "← bob left: part (2 online)",
        ),
        (event("current", room="#ops"), "now in #ops"),
        (event("topic", room="#dev", topic="ship it", by="bob"), "topic: ship it (set by bob)"),
        (event("topic", room="#dev", topic="", by=""), "no topic"),
        (
            event("topic", room="#dev", topic="ship", by="bob", changed=True),
            "bob set the topic: ship",
        ),
        (event("topic", room="#dev", topic="", by="bob", changed=True), "bob cleared the topic"),
        (
            event("gap", room="#dev", skipped=7),
            "! 7 earlier messages were not replayed (/history shows older ones)",
        ),
        (
            event("history-end", room="#dev", count=5, more=True),
            "── end of /history (more: /history more) ──",
        ),
        (event("history-end", room="#dev", count=5, more=False), "── end of /history ──"),
    ],
)
def test_render_room_events(shown: Event, plain: str) -> None:
    """Joins, parts, switches, topics, gaps and the end of /history read as sentences."""
    assert render(shown).plain == f"17:40 {plain}"


def test_render_rooms_list_one_room_per_line() -> None:
    """/rooms lists each room with its count and topic; a hostile topic stays inert."""
    rooms = [
        {"room": "#dev", "online": 2, "topic": "[bold]ship\x1b[2J it"},
        {"room": "#lobby", "online": 5, "topic": ""},
    ]
    assert render(event("rooms", rooms=rooms)).plain.splitlines() == [
        "17:40 rooms (2):",
        "      #dev    2 online  [bold]ship it",
        "      #lobby  5 online",
    ]


def test_render_tag_names_the_room_before_the_line() -> None:
    """A line from another room starts with that room's name, in the room's colour."""
    line = render_event(say("hi"), "alice", UTC, tag="#ops")
    assert line is not None
    assert line.plain == "17:40 #ops <bob> hi"
    assert name_colour("#ops") in styles_at(line, "#ops")


def test_view_quiet_events_only_reach_json() -> None:
    """A quiet event (the prompt already says it) is printed for tools, not for people."""
    people, tools = io.StringIO(), io.StringIO()
    ChatView(make_console(file=people), "alice", tz=UTC).show(
        event("current", room="#x"), quiet=True
    )
    ChatView(make_console(file=tools), "alice", json_lines=True).show(
        event("current", room="#x"), quiet=True
    )
    assert people.getvalue() == ""
    assert json.loads(tools.getvalue())["room"] == "#x"


def test_view_report_goes_to_stderr_in_json_mode() -> None:
    """Connection news is a chat line for people and a stderr line beside --json output."""
    out, err = io.StringIO(), io.StringIO()
    view = ChatView(make_console(file=out), "alice", json_lines=True, errors=make_console(file=err))
    view.report("reconnected; 2 missed messages")
    assert out.getvalue() == ""
    assert err.getvalue() == "triochat: reconnected; 2 missed messages\n"
    chat = io.StringIO()
    ChatView(make_console(file=chat), "alice").report("reconnected; 0 missed messages")
    assert chat.getvalue() == "reconnected; 0 missed messages\n"


def test_view_notice_closes_a_history_block() -> None:
    """A client notice after a replay ("reconnected; ...") comes after the "now" footer."""
    file = io.StringIO()
    view = ChatView(make_console(file=file), "alice", tz=UTC)
    view.show(say("missed", history=True))
    view.report("reconnected; 1 missed message")
    view.show(say("live"))
    assert file.getvalue().splitlines() == [
        HISTORY_HEADER,
        "17:40 <bob> missed",
        HISTORY_FOOTER,
        "reconnected; 1 missed message",
        "17:40 <bob> live",
    ]


def test_view_history_end_closes_the_block_itself() -> None:
    """The end of a /history reply is its own footer; no "now" line is added before it."""
    file = io.StringIO()
    view = ChatView(make_console(file=file), "alice", tz=UTC)
    view.show(say("older", history=True))
    view.show(event("history-end", room="#lobby", count=1, more=False))
    assert file.getvalue().splitlines() == [
        HISTORY_HEADER,
        "17:40 <bob> older",
        "17:40 ── end of /history ──",
    ]


@pytest.mark.parametrize(
    ("shown", "plain"),
    [
        (Away(TS, "alice", "lunch"), "you are marked away: lunch"),
        (Away(TS, "Alice", ""), "you are back (no longer away)"),
        (Away(TS, "bob", "in a meeting"), "bob is away: in a meeting"),
        (Away(TS, "bob", ""), "bob is back"),
        (
            WhoList(TS, "#dev", ("alice", "bob", "carol"), (("bob", "lunch"), ("carol", "x"))),
            "online (3): alice, bob, carol; away: bob (lunch), carol (x)",
        ),
        (WhoList(TS, "#dev", ("alice",)), "online (1): alice"),
    ],
)
def test_render_away_and_who_with_away(shown: Event, plain: str) -> None:
    """Away events read differently to their subject; /who lists away members' messages."""
    assert render(shown).plain == f"17:40 {plain}"


def test_render_away_message_is_sanitised_and_styled() -> None:
    """An away message is a peer's text: no escapes, shown in the away style."""
    line = render(Away(TS, "bob", "gone\x1b[2J fishing"))
    assert line.plain == "17:40 bob is away: gone fishing"
    assert STYLE_AWAY in styles_at(line, "gone")


# ---------------------------------------------------------------------------------------
# The page's side of /away (run with node, with a minimal stand-in for the DOM)

STATIC = Path(__file__).resolve().parent.parent / "triochat" / "web" / "static"
NODE = shutil.which("node")
FAKE_DOM = """
class Node {
  constructor(tag, text = "") { this.tag = tag; this.children = []; this.text = text; }
  append(...nodes) {
    for (const n of nodes) this.children.push(typeof n === "string" ? new Node("#text", n) : n);
  }
  get textContent() {
    return this.tag === "#text" ? this.text : this.children.map((c) => c.textContent).join("");
  }
}
globalThis.document = {
  createElement: (tag) => new Node(tag),
  createTextNode: (text) => new Node("#text", text),
};
"""


def run_page_script(script: str) -> Any:
    """Run an ES module ``script`` beside the page's modules; return what it prints (JSON)."""
    assert NODE is not None
    done = subprocess.run(
        [NODE, "--input-type=module", "-e", FAKE_DOM + script],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=STATIC,
        check=True,
    )
    return json.loads(done.stdout)


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_page_commands_translate_away() -> None:
    """The page sends /away MESSAGE as an away request, and /away alone as a clear."""
    lines = ["/away at lunch", "/away", "/AWAY  back at 3  "]
    script = f"""
    const {{ parseLine }} = await import("{(STATIC / "commands.js").as_uri()}");
    console.log(JSON.stringify({json.dumps(lines)}.map((line) => parseLine(line, "#dev"))));
    """
    assert run_page_script(script) == [
        {"request": {"type": "away", "text": "at lunch"}},
        {"request": {"type": "away", "text": ""}},
        {"request": {"type": "away", "text": "back at 3"}},
    ]


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_page_away_lines_read_like_the_terminal() -> None:
    """The page words Away events as the terminal client does (its own, and others')."""
    events = [event_object(Away(TS, *pair)) for pair in AWAY_CASES]
    script = f"""
    const {{ awayLine }} = await import("{(STATIC / "view.js").as_uri()}");
    const lines = {json.dumps(events)}.map((event) => awayLine(event, "alice"));
    console.log(JSON.stringify(lines.map((line) => line.children[1].textContent)));
    """
    page = run_page_script(script)
    terminal = [render(Away(TS, *pair)).plain.removeprefix("17:40 ") for pair in AWAY_CASES]
    assert page == terminal


AWAY_CASES = [("alice", "lunch"), ("Alice", ""), ("bob", "in a meeting"), ("bob", "")]
