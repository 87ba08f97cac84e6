"""/search in the page (Chromium): a hit is a button; clicking it shows the line in place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.test_web_browser import (  # noqa: F401 - the fixtures are used by name
    Terminal,
    browser,
    no_problems,
    room_log,
    start,
    tab,
    terminals,
    type_line,
    wait_text,
)
from triochat.web.http import Assets


def test_web_search_hit_click_scrolls_to_the_line(
    browser: Any,  # noqa: F811 - the module-scoped fixture imported above
    tmp_path: Path,
    terminals: list[Terminal],  # noqa: F811
) -> None:
    server = start(tmp_path, "--history", "5", "--rate-limit", "0")
    try:
        carol = Terminal(server.port, "carol")
        terminals.append(carol)
        for i in range(1, 121):
            carol.say("the needle is here" if i == 10 else f"line {i}")
        carol.say("/who")
        carol.wait_for("*** online (1): carol")
        alice = tab(browser, server.web_url, "alice")
        wait_text(alice, "line 120")
        type_line(alice, "/search needle")
        hit = room_log(alice).locator("li.search button.hit")
        hit.wait_for()
        assert "the needle is here" in hit.inner_text()
        hit.click()
        target = room_log(alice).locator("li.jumped")
        target.wait_for()
        assert "the needle is here" in target.inner_text()
        assert target.get_attribute("data-id") == hit.get_attribute("data-id")
        page_box = alice.locator("#log").bounding_box()
        box = target.bounding_box()
        assert page_box["y"] <= box["y"] <= page_box["y"] + page_box["height"]  # in view
        no_problems(alice)
    finally:
        server.stop()


def test_web_search_script_is_served() -> None:
    assert Assets().get("search.js") is not None
