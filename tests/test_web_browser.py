"""The page in a real browser: headless Chromium (Debian's) driven by Playwright's sync API.

Every test runs the real ``triochat server`` command (:class:`tests.procs.BlockingServer`)
and opens its page; people on raw TCP join the same rooms. Playwright's own browser
download is never used: the system's ``chromium`` is launched by path, and without it
these tests are skipped with the reason (``.ci/run`` installs it where it can).

Set ``TRIOCHAT_SCREENSHOT=PATH`` to have the screenshot test write the README's picture
there (``scripts/web_screenshot.sh`` does).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest

from tests.procs import BlockingServer
from triochat.client.view import NAME_COLOURS, name_colour

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

CHROMIUM: Final = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium on this machine (Debian: apt-get install chromium); the browser "
    "tests drive the system's Chromium and never download one",
)

# Flags that work in containers and sandboxes: no setuid sandbox, no GPU, nothing
# phoning home, so a test run needs no network but loopback.
CHROMIUM_ARGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
WAIT_MS: Final = 10_000  # any one thing the page must show, in ms (a cold Chromium is slow)
IO_TIMEOUT: Final = 10.0  # seconds for a raw TCP client's read
DESKTOP: Final = {"width": 1100, "height": 700}
PHONE: Final = {"width": 390, "height": 760}

Page = Any  # playwright.sync_api.Page (its stubs need no import at type-check time)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless Chromium for the module (contexts keep the tests apart)."""
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[*CHROMIUM_ARGS],
            timeout=30_000,
        )
        try:
            yield launched
        finally:
            launched.close()


def start(tmp_path: Path, *args: str, name: str = "server", port: int = 0) -> BlockingServer:
    """A real server on free ports (the web one too), its log in ``tmp_path``."""
    if "--db" not in args:
        args = ("--db", str(tmp_path / "chat.db"), *args)
    if "--web-port" not in args:
        args = (*args, "--web-port", "0")
    return BlockingServer.start(*args, port=port, log_path=str(tmp_path / f"{name}.log"))


@pytest.fixture
def chat(tmp_path: Path) -> Iterator[BlockingServer]:
    """A running server with its defaults (and a database in the test's folder)."""
    server = start(tmp_path)
    try:
        yield server
    finally:
        server.stop()


class Terminal:
    """Someone on ``nc``: plain-mode lines over TCP."""

    def __init__(self, port: int, name: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        self.pending = b""
        self.say(f"/nick {name}")
        assert self.line().startswith(f"*** welcome, {name}!")

    def say(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\n")

    def line(self) -> str:
        while b"\n" not in self.pending:
            data = self.sock.recv(65536)
            if not data:
                raise AssertionError(f"connection closed; pending {self.pending!r}")
            self.pending += data
        line, _, self.pending = self.pending.partition(b"\n")
        return line.decode()

    def wait_for(self, text: str) -> list[str]:
        """Read lines until one equals ``text``; return them all."""
        lines = [self.line()]
        while lines[-1] != text:
            lines.append(self.line())
        return lines

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    """Raw TCP members a test opens; closed at the end."""
    opened: list[Terminal] = []
    yield opened
    for terminal in opened:
        terminal.close()


def tab(browser: Any, url: str, name: str | None, **context: Any) -> Page:
    """A fresh browser tab on the page; logged in as ``name`` unless it is None."""
    page = browser.new_context(viewport=context.pop("viewport", DESKTOP), **context).new_page()
    page.set_default_timeout(WAIT_MS)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: problems.append(message.text) if message.type == "error" else None,
    )
    page.problems = problems
    page.goto(url)
    page.wait_for_selector("html[data-ready]")
    if name is not None:
        login(page, name)
    return page


def login(page: Page, name: str) -> None:
    page.fill("#name", name)
    page.press("#name", "Enter")
    wait_text(page, f"welcome, {name}!")


def type_line(page: Page, text: str) -> None:
    page.fill("#input", text)
    page.press("#input", "Enter")


def room_log(page: Page) -> Any:
    """The visible room's message list."""
    return page.locator("section.room-log:not([hidden]) ol.messages")


def wait_text(page: Page, text: str) -> None:
    """Wait until the visible room's log shows ``text``."""
    room_log(page).get_by_text(text, exact=False).last.wait_for()


def chat_texts(page: Page) -> list[str]:
    """The text of every chat line in the visible room, oldest first."""
    texts: list[str] = room_log(page).locator("li.chat .text").all_inner_texts()
    return texts


def log_lines(page: Page) -> list[str]:
    return [" ".join(t.split()) for t in room_log(page).locator("li").all_inner_texts()]


def no_problems(page: Page) -> None:
    """No script errors and no CSP violations were reported."""
    assert page.problems == []


# -- the conversation -------------------------------------------------------------------


def test_web_browser_two_tabs_and_a_terminal_talk(
    browser: Any, chat: BlockingServer, terminals: list[Terminal]
) -> None:
    """Two browser tabs and an nc user see each other's lines, in one order."""
    alice = tab(browser, chat.web_url, "alice")
    carol = Terminal(chat.port, "carol")
    terminals.append(carol)
    bob = tab(browser, chat.web_url, "bob")
    wait_text(alice, "bob joined")
    type_line(alice, "hello from a tab")
    wait_text(bob, "hello from a tab")
    carol.wait_for("<alice> hello from a tab")
    carol.say("hi tabs, from nc")
    wait_text(alice, "hi tabs, from nc")
    wait_text(bob, "hi tabs, from nc")
    type_line(bob, "/me waves")
    wait_text(alice, "* bob waves")
    wait_text(bob, "* bob waves")
    carol.wait_for("* bob waves")
    assert log_lines(alice)[-3:] == log_lines(bob)[-3:]  # the same order everywhere
    alice.locator("#people li", has_text="carol").wait_for()
    assert sorted(alice.locator("#people li").all_inner_texts()) == ["alice", "bob", "carol"]
    assert alice.locator("#people li.me").inner_text() == "alice"
    own = room_log(alice).locator("li.own")
    assert own.all_inner_texts()[-1].endswith("hello from a tab")
    no_problems(alice)
    no_problems(bob)


def test_web_browser_rooms_switch_unread_and_topic(
    browser: Any, chat: BlockingServer, terminals: list[Terminal]
) -> None:
    """Joining and switching rooms; unread counts and topics on the side; /msg set apart."""
    alice = tab(browser, chat.web_url, "alice")
    carol = Terminal(chat.port, "carol")
    terminals.append(carol)
    type_line(alice, "/join Dev")  # typed in any case, without the #
    wait_text(alice, "you joined #dev")
    assert alice.locator("#room-title").inner_text() == "#dev"
    type_line(alice, "/topic release on friday")  # goes to #dev, not the lobby
    wait_text(alice, "set the topic: release on friday")
    assert alice.locator("#topic").inner_text() == "release on friday"
    alice.locator("#rooms button", has_text="#lobby").click()
    alice.locator("#room-title", has_text="#lobby").wait_for()
    carol.say("/join #dev")
    carol.say("in dev: hello")
    carol.say("/join #lobby")
    carol.say("/msg alice psst")
    dev = alice.locator("#rooms button", has_text="#dev")
    dev.locator(".unread", has_text="1").wait_for()
    assert "release on friday" in dev.inner_text()
    private = room_log(alice).locator("li.private")
    private.wait_for()
    assert " ".join(private.inner_text().split()).endswith("carol → you: psst")
    dev.click()
    wait_text(alice, "in dev: hello")
    assert dev.locator(".unread").count() == 0
    alice.keyboard.press("ArrowUp")  # focus is back in the input: Up recalls the last line
    assert alice.input_value("#input") == "/topic release on friday"
    no_problems(alice)


def test_web_browser_markup_from_others_is_text(
    browser: Any, chat: BlockingServer, terminals: list[Terminal]
) -> None:
    """HTML in a message shows literally and never runs; only http(s) links are links."""
    alice = tab(browser, chat.web_url, "alice")
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    alice.on("dialog", on_dialog)
    carol = Terminal(chat.port, "carol")
    terminals.append(carol)
    attack = "<img src=x onerror=alert(1)><script>alert(2)</script>"
    carol.say(attack)
    carol.say("javascript:alert(3) and https://example.org/docs?a=1&b=2, see")
    carol.say("/topic <b onmouseover=alert(4)>bold</b>")
    wait_text(alice, attack)
    wait_text(alice, "https://example.org/docs")
    assert room_log(alice).locator("img, script, b").count() == 0
    links = room_log(alice).locator("a")
    assert links.count() == 1
    assert links.get_attribute("href") == "https://example.org/docs?a=1&b=2"
    assert links.get_attribute("rel") == "noopener noreferrer"
    assert alice.locator("#topic").inner_text() == "<b onmouseover=alert(4)>bold</b>"
    alice.locator("#rooms").hover()
    assert dialogs == []
    no_problems(alice)


def test_web_browser_history_and_load_older(
    browser: Any, tmp_path: Path, terminals: list[Terminal]
) -> None:
    """A newcomer sees the last --history lines; "load older" brings the rest, in order."""
    server = start(tmp_path, "--history", "5", "--rate-limit", "0")
    try:
        carol = Terminal(server.port, "carol")
        terminals.append(carol)
        for i in range(1, 31):
            carol.say(f"line {i}")
        carol.say("/who")
        carol.wait_for("*** online (1): carol")
        alice = tab(browser, server.web_url, "alice")
        wait_text(alice, "line 30")
        assert chat_texts(alice) == [f"line {i}" for i in range(26, 31)]
        older = alice.locator("section.room-log:not([hidden]) button.older")
        older.click()
        room_log(alice).get_by_text("line 1", exact=True).wait_for()
        assert chat_texts(alice) == [f"line {i}" for i in range(1, 31)]
        older.wait_for(state="hidden")  # nothing older is left
        no_problems(alice)
    finally:
        server.stop()


def test_web_browser_reconnects_after_restart_without_duplicates(
    browser: Any, tmp_path: Path, terminals: list[Terminal]
) -> None:
    """A server restart: the tab says it is reconnecting, then shows exactly what it missed."""
    first = start(tmp_path)
    port, web_port = first.port, first.web_port
    context = browser.new_context(viewport=DESKTOP)
    try:
        alice = context.new_page()
        alice.set_default_timeout(WAIT_MS)
        alice.goto(first.web_url)
        login(alice, "alice")
        carol = Terminal(port, "carol")
        carol.say("before the restart")
        wait_text(alice, "before the restart")
        carol.close()
        assert first.stop() == 0
        alice.locator("#status", has_text="reconnecting").wait_for()
        context.set_offline(True)  # hold the tab back while it misses something
        second = start(tmp_path, "--web-port", str(web_port), name="second", port=port)
        try:
            carol = Terminal(port, "carol")
            terminals.append(carol)
            carol.say("missed one")
            carol.say("missed two")
            carol.say("/who")
            carol.wait_for("*** online (1): carol")
            context.set_offline(False)
            alice.locator("#status", has_text="reconnected; 2 missed messages").wait_for()
            carol.say("after")
            wait_text(alice, "after")
            texts = chat_texts(alice)
            assert texts == ["before the restart", "missed one", "missed two", "after"]
            assert alice.locator("#room-title").inner_text() == "#lobby"
        finally:
            second.stop()
    finally:
        context.close()
        first.stop()


# -- safety ------------------------------------------------------------------------------


def test_web_browser_csp_blocks_injected_script(browser: Any, chat: BlockingServer) -> None:
    """The page is served under a strict CSP: even injected markup cannot run script."""
    page = tab(browser, chat.web_url, None)
    response = page.request.get(chat.web_url)
    csp = response.headers["content-security-policy"]
    assert csp.startswith("default-src 'self';")
    assert response.headers["x-content-type-options"] == "nosniff"
    page.evaluate(
        "document.body.insertAdjacentHTML('beforeend', '<img src=x onerror=\"window.pwned = 1\">')"
    )
    page.locator("img[src=x]").wait_for(state="attached")
    deadline = time.monotonic() + IO_TIMEOUT
    while not page.evaluate("document.querySelector('img[src=x]').complete"):
        assert time.monotonic() < deadline
        time.sleep(0.05)  # the image's error event has been dispatched once it is complete
    assert page.evaluate("window.pwned") is None
    assert any("Content Security Policy" in problem for problem in page.problems)


def test_web_browser_cross_origin_upgrade_refused(browser: Any, chat: BlockingServer) -> None:
    """A page from another origin cannot open the chat's WebSocket: 403, and one log line."""
    # The same server under another name is another origin; CSP would stop this page
    # from even trying, so it is bypassed here to reach the server's own check.
    page = tab(browser, chat.web_url.replace("127.0.0.1", "localhost"), None, bypass_csp=True)
    outcome = page.evaluate(
        """(url) => new Promise((done) => {
            const ws = new WebSocket(url);
            ws.onopen = () => done("open");
            ws.onclose = (event) => done(`closed ${event.code}`);
        })""",
        f"ws://127.0.0.1:{chat.web_port}/ws",
    )
    assert outcome == "closed 1006"
    deadline = time.monotonic() + IO_TIMEOUT
    while "refused a WebSocket" not in chat.log() and time.monotonic() < deadline:
        time.sleep(0.05)  # the log is written by another process: poll its file
    refusals = [line for line in chat.log().splitlines() if "refused a WebSocket" in line]
    assert len(refusals) == 1
    assert f"origin 'http://localhost:{chat.web_port}' is not allowed" in refusals[0]


# -- the page's own logic -----------------------------------------------------------------


def test_web_browser_name_colours_match_the_terminal(browser: Any, chat: BlockingServer) -> None:
    """The page picks each name's colour with the terminal client's hash (CRC-32)."""
    page = tab(browser, chat.web_url, None)
    names = ["alice", "Bob", "carol", "dave-2", "e.f_g", "X", "a" * 24, "ALICE"]
    got = page.evaluate(
        """async (names) => {
            const colour = await import("/static/colour.js");
            return [colour.NAME_COLOURS, names.map(colour.nameColour)];
        }""",
        names,
    )
    assert got[0] == len(NAME_COLOURS)
    expected = [NAME_COLOURS.index(name_colour(name)) for name in names]
    assert got[1] == expected
    assert got[1] == [zlib.crc32(n.casefold().encode()) % len(NAME_COLOURS) for n in names]


def test_web_browser_typed_commands_become_requests(browser: Any, chat: BlockingServer) -> None:
    """Typed lines become the protocol's JSON requests, in the current room."""
    page = tab(browser, chat.web_url, None)
    cases = {
        "hello": {"type": "say", "text": "hello", "room": "#dev"},
        "//slash": {"type": "say", "text": "/slash", "room": "#dev"},
        "/me waves": {"type": "me", "text": "waves", "room": "#dev"},
        "/join ops": {"type": "join", "room": "ops"},
        "/part": {"type": "part", "room": "#dev"},
        "/who #lobby": {"type": "who", "room": "#lobby"},
        "/topic": {"type": "topic", "room": "#dev"},
        "/history 5": {"type": "history", "room": "#dev", "limit": 5},
        "/msg bob lunch at noon": {"type": "msg", "to": "bob", "text": "lunch at noon"},
        "/NICK robert": {"type": "nick", "name": "robert"},
        "/rooms": {"type": "rooms"},
        "/register correct-horse": {"type": "register", "password": "correct-horse"},
        "/login alice correct-horse": {
            "type": "login",
            "name": "alice",
            "password": "correct-horse",
        },
        "/password old-one new-one": {"type": "password", "old": "old-one", "new": "new-one"},
        "/ban bob 2h spamming links": {
            "type": "ban",
            "target": "bob",
            "duration": "2h",
            "reason": "spamming links",
        },
        "/ban 10.0.0.0/8": {"type": "ban", "target": "10.0.0.0/8"},
        "/mute bob 10m": {"type": "mute", "name": "bob", "duration": "10m"},
        "/op carol": {"type": "op", "name": "carol"},
        "/locktopic": {"type": "topic-lock", "room": "#dev", "locked": True},
    }
    got = page.evaluate(
        """async (lines) => {
            const commands = await import("/static/commands.js");
            return lines.map((line) => commands.parseLine(line, "#dev"));
        }""",
        list(cases),
    )
    assert [item["request"] for item in got] == list(cases.values())
    errors = page.evaluate(
        """async () => {
            const commands = await import("/static/commands.js");
            return ["/me", "/history 999", "/frobnicate", "/msg bob"].map(
                (line) => commands.parseLine(line, "#dev").error);
        }"""
    )
    assert all(isinstance(error, str) and error for error in errors)


def test_web_browser_name_taken_and_remembered(browser: Any, chat: BlockingServer) -> None:
    """A taken name is said on the prompt; the name that worked is offered next time."""
    first = tab(browser, chat.web_url, "alice")
    second = tab(browser, chat.web_url, None)
    second.fill("#name", "ALICE")
    second.press("#name", "Enter")
    second.locator("#login-error", has_text="taken").wait_for()
    login(second, "alice2")
    second.reload()
    second.wait_for_selector("html[data-ready]")
    assert second.input_value("#name") == "alice2"
    no_problems(first)


# -- on a phone, and in the dark -------------------------------------------------------


def test_web_browser_phone_layout_and_keyboard(browser: Any, chat: BlockingServer) -> None:
    """On a phone the side bar is a drawer; Enter sends and Up recalls, keyboard only."""
    page = tab(browser, chat.web_url, "alice", viewport=PHONE, is_mobile=True, has_touch=True)
    side = page.locator("#side")
    assert page.locator("#menu").is_visible()
    box = side.bounding_box()
    assert box is not None
    assert box["x"] + box["width"] <= 0  # off screen
    page.locator("#input").focus()
    page.keyboard.type("typed on a phone")
    page.keyboard.press("Enter")
    wait_text(page, "typed on a phone")
    page.keyboard.press("ArrowUp")
    assert page.input_value("#input") == "typed on a phone"
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"]  # nothing wider than the screen
    page.locator("#menu").click()
    playwright_api.expect(side).to_be_in_viewport(ratio=1.0)
    assert page.locator("#menu").get_attribute("aria-expanded") == "true"
    no_problems(page)


def test_web_browser_dark_mode_is_dark(browser: Any, chat: BlockingServer) -> None:
    """With prefers-color-scheme: dark the page is light text on a dark background."""
    page = tab(browser, chat.web_url, "alice", color_scheme="dark")

    def luminance(css: str) -> float:
        channels = [int(part) for part in css[css.index("(") + 1 : css.index(")")].split(",")[:3]]
        return sum(channels) / (3 * 255)

    background = page.evaluate("getComputedStyle(document.querySelector('.log')).backgroundColor")
    text = page.evaluate("getComputedStyle(document.body).color")
    assert luminance(background) < 0.2
    assert luminance(text) > 0.8


def test_web_browser_screenshot(browser: Any, tmp_path: Path, terminals: list[Terminal]) -> None:
    """The README's picture: a tab in a conversation with a terminal user, a line that
    names alice, a room badge counting a mention and a /search answer (and it renders)."""
    server = start(tmp_path, "--rate-limit", "0")
    try:
        carol = Terminal(server.port, "carol")
        terminals.append(carol)
        carol.say("/topic release 1.4 on friday")
        carol.say("morning! the release build is green again")
        alice = tab(browser, server.web_url, "alice", viewport={"width": 960, "height": 680})
        type_line(alice, "/join #dev")
        wait_text(alice, "you joined #dev")
        alice.locator("#rooms button", has_text="#lobby").click()
        bob = tab(browser, server.web_url, "bob")
        type_line(bob, "/join #dev")
        wait_text(bob, "you joined #dev")
        type_line(alice, "great, I'll tag it after lunch")
        carol.wait_for("<alice> great, I'll tag it after lunch")
        carol.say("/me brings coffee")
        carol.say("@alice notes: https://example.org/release-notes")  # a mention
        type_line(bob, "/join #lobby")
        type_line(bob, "<b>is this bold?</b> nope, just text")
        type_line(alice, "/msg bob can you review #142?")
        wait_text(alice, "can you review")
        carol.say("/join #dev")
        carol.say("dev is quiet today")
        carol.say("alice: the release tag needs your key")  # a mention in another room
        alice.locator("#rooms .unread.mentions", has_text="@1").wait_for()
        wait_text(alice, "nope, just text")
        type_line(alice, "/search release")
        alice.locator("li.search .hit").nth(2).wait_for()  # three hits, two rooms
        head, stamp = alice.locator(".search-head"), room_log(alice).locator("li.line time")
        head_box, stamp_box = head.bounding_box(), stamp.first.bounding_box()
        assert head_box is not None
        assert stamp_box is not None
        assert head_box["x"] == stamp_box["x"]  # the answer lines up with the log's lines
        path = Path(os.environ.get("TRIOCHAT_SCREENSHOT") or tmp_path / "web-session.png")
        alice.locator("#input").blur()
        alice.screenshot(path=str(path))
        assert path.stat().st_size > 10_000
        assert json.loads(json.dumps(alice.problems)) == []
    finally:
        server.stop()


def test_web_browser_registered_name_reconnects_with_its_password(
    browser: Any, tmp_path: Path
) -> None:
    """After /register the tab keeps the password in memory and resumes with it."""
    first = start(tmp_path)
    try:
        alice = tab(browser, first.web_url, "alice")
        type_line(alice, "/register correct-horse-battery")
        wait_text(alice, "the name alice is registered to you")
        port, web_port = first.port, first.web_port
        assert first.stop() == 0
        alice.locator("#status", has_text="reconnecting").wait_for()
        second = start(tmp_path, "--web-port", str(web_port), name="second", port=port)
        try:
            alice.locator("#status", has_text="reconnected").wait_for()
            type_line(alice, "still me")
            wait_text(alice, "still me")
            assert alice.locator("#login").is_hidden()
            assert "correct-horse" not in alice.evaluate("JSON.stringify(localStorage)")
        finally:
            second.stop()
    finally:
        first.stop()
