"""The page's polish, in headless Chromium (as tests/test_web_browser.py), plus the
name palette's contrast, checked from style.css without a browser.

/help as a table; no "topic: none"; the welcome line stays at the bottom below the
replayed history and its "earlier messages" divider, also after loading older ones;
"enter its password below" for a registered name; the room browser; mentions.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any, Final

import pytest

from tests.procs import BlockingServer
from tests.test_web_browser import (  # the fixtures too: one browser, one server, nc users
    Terminal,
    browser,
    chat,
    chat_texts,
    no_problems,
    room_log,
    start,
    tab,
    terminals,
    type_line,
    wait_text,
)
from tests.test_web_browser import pytestmark as needs_chromium

CSS: Final = resources.files("triochat.web").joinpath("static", "style.css").read_text()
MIN_CONTRAST: Final = 4.5  # WCAG AA for normal text


def _theme(block: str) -> dict[str, str]:
    return dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})", block))


def _luminance(colour: str) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _hue(colour: str) -> float:
    r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    high, low = max(r, g, b), min(r, g, b)
    if high == low:
        return 0.0
    if high == r:
        hue = (g - b) / (high - low) % 6
    elif high == g:
        hue = (b - r) / (high - low) + 2
    else:
        hue = (r - g) / (high - low) + 4
    return hue * 60


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_web_name_palette_contrast_and_spread(scheme: str) -> None:
    """Every name colour reads at 4.5:1 or better on every background a name sits on,
    in light and dark; the 14 hues are apart, neighbouring slots (where a name moves
    when its own is taken) most of all. The old palette had five near-twins."""
    light = _theme(CSS[: CSS.index("@media (prefers-color-scheme: dark)")])
    dark = {**light, **_theme(CSS[CSS.index("@media (prefers-color-scheme: dark)") :])}
    theme = light if scheme == "light" else dark
    names = [theme[f"nc{i}"] for i in range(14)]
    backgrounds = [theme[key] for key in ("panel", "bg", "own", "private-bg", "mention-bg")]
    for colour in names:
        for background in backgrounds:
            assert contrast(colour, background) >= MIN_CONTRAST, (colour, background)
    hues = [_hue(c) for c in names]

    def apart(a: float, b: float) -> float:
        return min(abs(a - b), 360 - abs(a - b))

    assert min(apart(a, b) for i, a in enumerate(hues) for b in hues[i + 1 :]) >= 10
    assert min(apart(hues[i], hues[i + 1]) for i in range(13)) >= 50


# -- in the browser -------------------------------------------------------------------

__all__ = ["browser", "chat", "terminals"]  # fixtures, used by name below


@needs_chromium
def test_web_page_names_met_get_different_colours(browser: Any, chat: BlockingServer) -> None:
    """alice and carol hash to one slot; on a page the second one met takes the next
    free slot, and every name keeps its slot (the hash alone stays the terminal's)."""
    page = tab(browser, chat.web_url, None)
    got = page.evaluate(
        """async (names) => {
            const colour = await import("/static/colour.js");
            return [names.map(colour.nameColour), names.map(colour.pageColour)];
        }""",
        ["alice", "carol", "alice", "bob"],
    )
    hashed, shown = got
    assert hashed[0] == hashed[1]  # the collision this guards against
    assert shown[0] == hashed[0]
    assert shown[1] != shown[0]
    assert shown[2] == shown[0]
    assert len({*shown}) == 3
    no_problems(page)


@needs_chromium
def test_web_page_help_is_a_table(browser: Any, chat: BlockingServer) -> None:
    """/help is a table of usage and meaning, one row per command, its columns aligned."""
    alice = tab(browser, chat.web_url, "alice")
    type_line(alice, "/help")
    table = room_log(alice).locator("table.help")
    table.wait_for()
    usages = table.locator("td.usage").all_inner_texts()
    assert "/login NAME PASSWORD" in usages
    assert "/msg NAME TEXT" in usages
    row = table.locator("tr", has_text="/login NAME PASSWORD")
    assert row.locator("td").nth(1).inner_text() == "take your registered name"
    lefts = {
        round(box["x"])
        for box in table.locator("td:nth-child(2)").evaluate_all(
            "cells => cells.map(c => c.getBoundingClientRect().toJSON())"
        )
    }
    assert len(lefts) == 1  # one text column
    assert room_log(alice).locator("pre").count() == 0
    no_problems(alice)


@needs_chromium
def test_web_page_no_topic_none(browser: Any, chat: BlockingServer) -> None:
    """A room without a topic says nothing about it (no "topic: none" line)."""
    alice = tab(browser, chat.web_url, "alice")
    type_line(alice, "/join #quiet")
    wait_text(alice, "you joined #quiet")
    type_line(alice, "/topic")
    type_line(alice, "/who")
    wait_text(alice, "online in #quiet")
    assert "topic: none" not in room_log(alice).inner_text()
    no_problems(alice)


@needs_chromium
def test_web_page_welcome_stays_at_the_bottom(
    browser: Any, tmp_path: Path, terminals: list[Terminal]
) -> None:
    """The replay goes above your welcome, under an "earlier messages" divider; loading
    older messages puts them under the divider too, and the welcome stays last."""
    server = start(tmp_path, "--history", "3", "--rate-limit", "0")
    try:
        carol = Terminal(server.port, "carol")
        terminals.append(carol)
        for i in range(1, 8):
            carol.say(f"line {i}")
        carol.say("/who")
        carol.wait_for("*** online (1): carol")
        alice = tab(browser, server.web_url, "alice")
        wait_text(alice, "line 7")
        items = room_log(alice).locator("li")
        texts = [" ".join(t.split()) for t in items.all_inner_texts()]
        assert texts[0] == "earlier messages"
        assert "welcome, alice!" in texts[-1]
        assert chat_texts(alice) == ["line 5", "line 6", "line 7"]
        room_log(alice).locator("..").locator("button.older").click()
        room_log(alice).get_by_text("line 1", exact=True).wait_for()
        texts = [" ".join(t.split()) for t in items.all_inner_texts()]
        assert texts[0] == "earlier messages"
        assert "welcome, alice!" in texts[-1]
        assert chat_texts(alice) == [f"line {i}" for i in range(1, 8)]
        no_problems(alice)
    finally:
        server.stop()


@needs_chromium
def test_web_page_registered_name_asks_for_its_password(browser: Any, chat: BlockingServer) -> None:
    """A registered name on the login form: "enter its password below", focus there."""
    alice = tab(browser, chat.web_url, "alice")
    type_line(alice, "/register correct-horse-battery")
    wait_text(alice, "the name alice is registered to you")
    type_line(alice, "/quit")
    other = tab(browser, chat.web_url, None)
    other.fill("#name", "alice")
    other.press("#name", "Enter")
    error = other.locator("#login-error", has_text="enter its password below")
    error.wait_for()
    assert error.inner_text() == "the name alice is registered: enter its password below"
    assert other.evaluate("document.activeElement.id") == "password"
    other.fill("#password", "correct-horse-battery")
    other.press("#password", "Enter")
    wait_text(other, "welcome, alice!")


@needs_chromium
def test_web_page_room_browser_lists_and_joins(
    browser: Any, chat: BlockingServer, terminals: list[Terminal]
) -> None:
    """The room browser lists every room with its members and topic; a click joins."""
    carol = Terminal(chat.port, "carol")
    terminals.append(carol)
    carol.say("/join #design")
    carol.say("/topic new logo")
    carol.wait_for("*** carol set the topic: new logo")
    alice = tab(browser, chat.web_url, "alice")
    alice.click("#browse")
    row = alice.locator("#browser tr", has_text="#design")
    row.wait_for()
    assert row.locator("td.count").inner_text() == "1"
    assert row.locator("td.topic-cell").inner_text() == "new logo"
    lobby = alice.locator("#browser tr", has_text="#lobby")
    assert lobby.locator("button").inner_text() == "open"  # you are in it
    row.locator("button", has_text="join").click()
    wait_text(alice, "you joined #design")
    assert alice.locator("#browser").is_hidden()
    assert alice.locator("#room-title").inner_text() == "#design"
    assert "/rooms" not in room_log(alice).inner_text()
    no_problems(alice)


@needs_chromium
def test_web_page_mention_is_highlighted(
    browser: Any, chat: BlockingServer, terminals: list[Terminal]
) -> None:
    """A live line naming you (word-bounded, any case, @ or not) is marked; others not."""
    alice = tab(browser, chat.web_url, "alice")
    carol = Terminal(chat.port, "carol")
    terminals.append(carol)
    carol.say("hey @Alice, lunch?")
    carol.say("malice is not a name")
    carol.say("done")
    wait_text(alice, "done")
    marked = room_log(alice).locator("li.mention")
    assert marked.count() == 1
    assert marked.locator("mark.mention").inner_text() == "@Alice"
    type_line(alice, "alice talks about alice")
    wait_text(alice, "alice talks about alice")
    assert room_log(alice).locator("li.mention").count() == 1  # your own line is not one
    no_problems(alice)
