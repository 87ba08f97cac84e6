"""The page's mentions and notifications, in headless Chromium (as tests/test_web_browser.py).

Per-room unread and mention counts in the room list; the browser's Notification API
asked for once (on the first line typed, a user gesture) and used only while the tab is
hidden, as each room's ``/notify`` level says. The Notification API and
``document.hidden`` are stubbed in the page, so nothing depends on the desktop.
"""

from __future__ import annotations

from typing import Any, Final

from tests.procs import BlockingServer
from tests.test_web_browser import (  # the fixtures too: one browser, one server, nc users
    Terminal,
    browser,
    chat,
    login,
    no_problems,
    tab,
    terminals,
    type_line,
    wait_text,
)
from tests.test_web_browser import pytestmark as pytestmark
from triochat.core.mentions import mention_spans

__all__ = ["browser", "chat", "terminals"]

STUB: Final = """
window.__notes = []; window.__asked = 0;
class FakeNotification {
  constructor(title, options) { window.__notes.push(`${title} | ${options.body}`); }
}
FakeNotification.permission = "default";
FakeNotification.requestPermission = () => {
  window.__asked++;
  FakeNotification.permission = "granted";
  return Promise.resolve("granted");
};
window.Notification = FakeNotification;
Object.defineProperty(Document.prototype, "hidden", {
  get: () => Boolean(window.__hidden), configurable: true,
});
"""


def _lobby_badges(page: Any, unread: str) -> str:
    """Wait for the lobby's unread count to read ``unread``; return its mention badge."""
    button = page.locator("#rooms button", has_text="#lobby")
    button.locator(".unread:not(.mentions)", has_text=unread).wait_for()
    marks = button.locator(".mentions")
    return str(marks.inner_text()) if marks.count() else ""


def test_web_page_notifications_and_counts(
    browser: Any, chat: BlockingServer, terminals: list[Terminal]
) -> None:
    alice = tab(browser, chat.web_url, None)
    alice.add_init_script(STUB)
    alice.reload()
    alice.wait_for_selector("html[data-ready]")
    login(alice, "alice")
    carol = Terminal(chat.port, "carol")
    terminals.append(carol)
    type_line(alice, "/join #dev")  # the first line typed: the one time it asks
    wait_text(alice, "you joined #dev")
    carol.say("alice: a question")
    assert _lobby_badges(alice, "1") == "@1"  # unread and naming you, in another room
    alice.evaluate("window.__hidden = true")
    carol.say("ALICE again")
    carol.say("just chatter")
    assert _lobby_badges(alice, "3") == "@2"
    assert alice.evaluate("window.__notes") == ["carol in #lobby | ALICE again"]
    type_line(alice, "/notify #lobby all")
    wait_text(alice, "notifications in #lobby: all")
    carol.say("more chatter")
    assert _lobby_badges(alice, "4") == "@2"
    type_line(alice, "/notify #lobby none")
    wait_text(alice, "notifications in #lobby: none")
    carol.say("alice, muted")
    assert _lobby_badges(alice, "5") == "@2"  # a muted room counts no mentions
    assert alice.evaluate("window.__notes") == [
        "carol in #lobby | ALICE again",
        "carol in #lobby | more chatter",
    ]
    assert alice.evaluate("window.__asked") == 1  # asked once, never again
    alice.locator("#rooms button", has_text="#lobby").click()
    alice.locator("#rooms button .mentions").wait_for(state="detached")  # looked at: cleared
    no_problems(alice)


RULE_CASES: Final = (
    "alice",
    "hi @Alice!",
    "ALICE. see you",
    "alice.smith was here",
    "malice aforethought",
    "alice_2 or alice-b",
    "alice, alice",
    "émile and alice\u00e9",
)


def test_web_mention_rule_is_the_cores(browser: Any, chat: BlockingServer) -> None:
    """mention.js marks exactly what triochat.core.mentions finds, on the same lines."""
    page = tab(browser, chat.web_url, None)
    found = page.evaluate(
        """async (texts) => {
          const { mentionRanges } = await import("/static/mention.js");
          return texts.map((text) => mentionRanges(text, "alice"));
        }""",
        list(RULE_CASES),
    )
    assert found == [[list(span) for span in mention_spans(text, "alice")] for text in RULE_CASES]
    no_problems(page)
