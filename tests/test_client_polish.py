"""The client's polish: contrast, mentions and the bell, aligned columns, Tab, --quiet.

Pure rendering is checked through rich's own export (the SGR codes a terminal gets,
and the SVG a dark and a light theme would draw); the session parts run against the
in-memory server, in virtual time.
"""

from __future__ import annotations

import argparse
import io
import re
from datetime import UTC
from typing import Any

import pytest
import trio
from rich.console import Console
from rich.terminal_theme import DEFAULT_TERMINAL_THEME, SVG_EXPORT_THEME

from tests.test_client import Keyboard, RecordingView, member
from tests.test_ui import TS, render, say, wire
from triochat.client.chat import chat_session
from triochat.client.completion import COMMAND_WORDS, complete
from triochat.client.linesource import LineEditor
from triochat.client.options import add_client_arguments
from triochat.client.render import STYLE_MENTION, help_rows, is_mention
from triochat.client.view import BELL, ChatView, make_console
from triochat.core.commands import HELP_LINES, OPERATOR_HELP_LINES
from triochat.server import ChatServer
from triochat.testing import connect_stream

SGR = re.compile(r"\x1b\[([0-9;]*)m")


def sgr_codes(text: Any) -> list[set[str]]:
    """The SGR parameters in force for each styled run of a rendered line."""
    console = make_console(
        file=io.StringIO(), force_terminal=True, color_system="truecolor", width=200
    )
    console.print(text, soft_wrap=True)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    return [set(m.group(1).split(";")) for m in SGR.finditer(out) if m.group(1)]


def styles_over(line: Any, fragment: str) -> list[str]:
    start = line.plain.index(fragment)
    return [str(s.style) for s in line.spans if s.start <= start < s.end] + [str(line.style)]


# --------------------------------------------------------------------------------------
# Contrast


def test_render_live_line_is_not_dim() -> None:
    """A live line is at full contrast: only its HH:MM stamp is dim (the stamp's dim was
    once the base style of the whole line, so live chat looked like join/leave noise)."""
    line = render(say("hello there"))
    assert "dim" not in " ".join(styles_over(line, "hello there"))
    assert "dim" in " ".join(styles_over(line, "17:40"))
    dim_runs = [codes for codes in sgr_codes(line) if "2" in codes]
    assert len(dim_runs) == 1  # the stamp


def test_render_history_and_notices_stay_dim() -> None:
    """Replayed history and notices (joins) are the dim lines."""
    assert "dim" in " ".join(styles_over(render(say("old", history=True)), "old"))
    joined = render(wire({"type": "join", "ts": TS, "name": "dave", "online": 2}))
    assert "dim" in " ".join(styles_over(joined, "dave"))


@pytest.mark.parametrize("theme", [DEFAULT_TERMINAL_THEME, SVG_EXPORT_THEME])
def test_render_own_line_readable_on_dark_and_light(theme: Any) -> None:
    """Your own line has no background band (a dark band on a light theme hid it) and
    draws in the theme's own foreground, on both a light and a dark theme."""
    line = render(say("mine", sender="alice"))
    assert not any(code.startswith("48") for codes in sgr_codes(line) for code in codes)
    console = Console(record=True, file=io.StringIO(), width=80, force_terminal=True)
    console.print(line)
    svg = console.export_svg(theme=theme)
    fg = theme.foreground_color.hex
    assert fg in svg.lower() or fg.upper() in svg


# --------------------------------------------------------------------------------------
# Mentions


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("alice: lunch?", True),
        ("ping @Alice", True),
        ("thanks, ALICE.", True),
        ("malice aforethought", False),
        ("alice.smith is here", False),
        ("alice-bot says hi", False),
        ("nobody", False),
    ],
)
def test_is_mention_word_bounded_case_folded(text: str, named: bool) -> None:
    """alice and @alice name you, in any case, but not inside a longer word or name."""
    assert is_mention(say(text), "alice") is named


def test_mention_highlighted_only_live_and_from_others() -> None:
    """The name is highlighted in a live line from someone else; not in history or your own."""
    line = render(say("hey @alice look"))
    assert STYLE_MENTION in styles_over(line, "@alice")
    assert STYLE_MENTION not in styles_over(line, "look")
    assert not is_mention(say("hey alice", history=True), "alice")
    assert not is_mention(say("I am alice", sender="alice"), "alice")
    assert STYLE_MENTION not in " ".join(styles_over(render(say("alice", history=True)), "alice"))


def _terminal_view(*, bell: bool = True, terminal: bool = True) -> tuple[ChatView, io.StringIO]:
    file = io.StringIO()
    console = make_console(file=file, force_terminal=terminal, width=100)
    return ChatView(console, "alice", tz=UTC, bell=bell), file


def test_view_rings_the_bell_for_a_mention() -> None:
    """A live mention rings the terminal's bell; other lines, --no-bell and pipes do not."""
    view, out = _terminal_view()
    view.show(say("nothing for you"))
    assert BELL not in out.getvalue()
    view.show(say("alice, look"))
    assert out.getvalue().count(BELL) == 1
    quiet, out = _terminal_view(bell=False)
    quiet.show(say("alice, look"))
    assert BELL not in out.getvalue()
    piped, out = _terminal_view(terminal=False)
    piped.show(say("alice, look"))
    assert BELL not in out.getvalue()


def test_client_flags_no_bell_and_quiet() -> None:
    """--no-bell and --quiet exist and default to off."""
    parser = argparse.ArgumentParser()
    add_client_arguments(parser)
    assert not parser.parse_args([]).no_bell
    args = parser.parse_args(["--no-bell", "--quiet"])
    assert args.no_bell
    assert args.quiet


# --------------------------------------------------------------------------------------
# Columns


def test_help_columns_line_up_across_sections() -> None:
    """Every command's text starts in one column, operators' and the client's rows too
    (the server pads each section to its own width, and /login touched its text)."""
    line = render(wire({"type": "help", "ts": TS, "text": "\n".join(HELP_LINES)}))
    rows = [r for r in help_rows((*HELP_LINES, *OPERATOR_HELP_LINES)) if isinstance(r, tuple)]
    assert ("/login NAME PASSWORD", "take your registered name") in rows
    assert (
        "/ban TARGET [TIME] [REASON]",
        "ban a NAME or ADDRESS[/PREFIX]; TIME 10m, 2h, 7d",
    ) in rows
    columns = set()
    for text_line in line.plain.splitlines()[1:]:
        if m := re.match(r"^ +\S+(?: \S+)*?  +(\S)", text_line):
            columns.add(m.start(1))
    assert len(columns) == 1, line.plain


# --------------------------------------------------------------------------------------
# Tab


def test_complete_commands_names_and_rooms() -> None:
    """Tab completes a command at the line's start, a name (also after @) and a room."""
    names = ["alice", "Albert", "bob"]
    assert complete("/hel", names) == "/help "
    assert complete("/hi", names) == "/history"  # /history and /history more agree so far
    assert complete("hi b", names) == "hi bob "
    assert complete("hi @B", names) == "hi @bob "
    assert complete("hi al", names) is None  # alice and Albert agree on no more
    assert complete("hi alb", names) == "hi Albert "
    assert complete("/join #d", names, ["#dev", "#lobby"]) == "/join #dev "
    assert complete("hi zed", names) is None
    assert "/quit" in COMMAND_WORDS
    assert "/history more" in COMMAND_WORDS


def test_line_editor_tab_uses_the_completer() -> None:
    """Tab in the editor replaces the text before the cursor; the rest stays."""
    editor = LineEditor()
    editor.completer = lambda before: complete(before, ["bob"])
    editor.feed("hi b!\x1b[D")  # the cursor before "!"
    editor.feed("\t")
    assert editor.text == "hi bob !"
    editor.feed("\x1b[F\x7f")  # End, Backspace
    assert editor.text == "hi bob "
    assert editor.feed("\r") == ["hi bob "]
    plain = LineEditor()
    plain.feed("a\tb")
    assert plain.text == "ab"  # no completer: Tab does nothing


# --------------------------------------------------------------------------------------
# --quiet


async def test_session_quiet_hides_the_replay_not_history_replies(
    nursery: trio.Nursery, server: ChatServer, autojump_clock: Any
) -> None:
    """--quiet: the replay on joining is not printed; a typed /history still is."""
    dave = await member(nursery, server, "dave")
    await dave.send(type="say", text="from before")
    await dave.expect("say", text="from before")
    quiet_keys = Keyboard()
    quiet = await _start_quiet(nursery, server, "carol", quiet_keys)
    await dave.send(type="say", text="live now")
    await quiet.wait_for("<dave> live now")
    assert "from before" not in quiet.screen()
    await quiet_keys.type("/history 5")
    await quiet.wait_for("<dave> from before")


async def _start_quiet(
    nursery: trio.Nursery, server: ChatServer, name: str, keys: Keyboard
) -> RecordingView:
    """A session as ``--quiet`` makes it: the view does not show the replay."""
    view = RecordingView(name)
    view.replay = False
    stream = connect_stream(nursery, server)
    nursery.start_soon(lambda: chat_session(stream, name, keys.source, view))
    await view.wait_for("welcome")
    return view
