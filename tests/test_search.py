"""/search through the whole server (parsers, state, history reader, store), both wire modes."""

from __future__ import annotations

import re
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.conftest import StartServer
from triochat.client.render import render_event
from triochat.client.requests import request_for
from triochat.client.rooms import ClientRooms
from triochat.config import ServerConfig
from triochat.core.commands import Invalid, Search, parse_json, parse_plain
from triochat.core.events import Found, SearchResults
from triochat.core.search import SEARCH_PAGE
from triochat.server import ChatServer
from triochat.store import SQLiteStore, writer_index
from triochat.testing import Peer, join, join_json


async def _until(peer: Peer, kind: str) -> dict[str, Any]:
    while (event := await peer.event())["type"] != kind:
        pass
    return event


async def _said(peer: Peer, count: int) -> None:
    for _ in range(count):
        await _until(peer, "say")


def test_search_parsers_read_filters_anywhere() -> None:
    command = parse_plain("/search from:Bob deploy IN:#Dev the Fix before:12")
    assert command == Search(
        ("deploy", "the", "fix"), "from:Bob deploy IN:#Dev the Fix", "#dev", "Bob", 12
    )
    assert isinstance(parse_plain("/search in:#dev"), Invalid)  # no words
    assert isinstance(parse_plain("/search before:x deploy"), Invalid)
    assert isinstance(parse_plain("/search " + " ".join(f"w{i}" for i in range(9))), Invalid)
    json_command = parse_json('{"type":"search","text":"Deploy","room":"dev","from":"bob"}')
    assert json_command == Search(("deploy",), "in:#dev from:bob Deploy", "#dev", "bob", None)
    assert isinstance(parse_json('{"type":"search","text":"x","from":3}'), Invalid)


async def test_search_json_finds_only_lines_of_ones_rooms(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    alice = await join_json(nursery, server, "alice")
    bob = await join_json(nursery, server, "bob")
    await bob.send_json(type="join", room="#secret")
    await bob.send_json(type="say", room="#secret", text="deploy the secret plan")
    await _said(bob, 1)
    await alice.send_json(type="say", text="Deploy at noon")
    await alice.send_json(type="say", text="lunch first")
    await _said(alice, 2)
    await alice.send_json(type="search", text="deploy")
    result = await _until(alice, "search")
    assert [(h["room"], h["from"], h["text"]) for h in result["hits"]] == [
        ("#lobby", "alice", "Deploy at noon")
    ]
    assert "more" not in result
    assert result["query"] == "deploy"
    await alice.send_json(type="search", text="deploy", room="#secret")
    error = await _until(alice, "error")
    assert error["code"] == "not-in-room"
    await bob.send_json(type="search", text="deploy", room="#secret")
    assert [h["text"] for h in (await _until(bob, "search"))["hits"]] == ["deploy the secret plan"]


async def test_search_plain_pages_newest_first_and_filters_by_sender(
    nursery: trio.Nursery, start_server: StartServer
) -> None:
    server = await start_server(rate_limit=0, send_queue=100_000)
    ann = await join(nursery, server, "ann")
    bob = await join_json(nursery, server, "bob")
    for n in range(SEARCH_PAGE + 5):
        await bob.send_json(type="say", text=f"needle {n}")
    await ann.send("/me needle in a haystack")
    await _said(bob, SEARCH_PAGE + 5)
    await _until(bob, "me")
    await ann.send("/search needle")
    while not (line := await ann.line()).startswith('*** search "needle"'):
        pass
    assert line == f'*** search "needle": {SEARCH_PAGE}+ found, newest first'
    hits = [await ann.line() for _ in range(SEARCH_PAGE)]
    assert re.fullmatch(r"\*\*\*   #lobby \d+ \[[-\d: ]+\] \* ann needle in a haystack", hits[0])
    assert hits[1].endswith(f"<bob> needle {SEARCH_PAGE + 4}")
    more = await ann.line()
    assert more.startswith("*** more: /search before:")
    assert more.endswith(" needle")
    assert (await ann.line()).startswith("*** /history ROOM around ID")
    await ann.send(more.removeprefix("*** more: "))
    header = await ann.line()
    assert header == '*** search "needle": 6 found, newest first'
    rest = [await ann.line() for _ in range(7)]
    assert rest[-2].endswith("<bob> needle 0")
    assert rest[-1].startswith("*** /history ROOM around ID")  # no "more" line: the last page
    await ann.send("/search from:ANN needle")
    assert (await ann.line()).endswith("1 found, newest first")
    assert (await ann.line()).endswith("* ann needle in a haystack")


async def test_search_operator_searches_every_room(nursery: trio.Nursery, tmp_path: Path) -> None:
    store = SQLiteStore.open(tmp_path / "chat.db")
    server = ChatServer(ServerConfig(ops=("boss",)), store)
    await nursery.start(server.run)
    bob = await join_json(nursery, server, "bob")
    await bob.send_json(type="join", room="#hidden")
    await bob.send_json(type="say", room="#hidden", text="quiet words")
    await _said(bob, 1)
    boss = await join_json(nursery, server, "boss")
    await boss.send_json(type="register", password="correct-horse")
    await _until(boss, "account")
    await boss.send_json(type="search", text="quiet")
    result = await _until(boss, "search")
    assert [(h["room"], h["id"]) for h in result["hits"]] == [("#hidden", 1)]
    await server.shutdown()


async def test_history_around_a_hit_shows_it_in_its_place(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    store = SQLiteStore.open(tmp_path / "chat.db")
    server = ChatServer(ServerConfig(rate_limit=0, send_queue=100_000), store)
    await nursery.start(server.run)
    alice = await join_json(nursery, server, "alice")
    total = 260  # past the hub's cache: read from the store
    for n in range(total):
        await alice.send_json(type="say", text="target line" if n == 30 else f"m{n}")
    await _said(alice, total)
    await alice.send_json(type="search", text="target")
    (hit,) = (await _until(alice, "search"))["hits"]
    await alice.send_json(type="history", room=hit["room"], around=hit["id"], limit=9)
    page = [await alice.event() for _ in range(10)]
    assert [e["id"] for e in page[:9]] == list(range(hit["id"] - 4, hit["id"] + 5))
    assert page[4]["text"] == "target line"
    assert page[9]["type"] == "history-end"
    await server.shutdown()


@pytest.mark.parametrize("line", ["/history #lobby around 3", "/history around 3"])
async def test_history_around_plain(nursery: trio.Nursery, server: ChatServer, line: str) -> None:
    ann = await join(nursery, server, "ann")
    for n in range(1, 40):
        await ann.send(f"line {n}")
    await ann.send(line)
    while "last" not in await ann.line():
        pass
    shown = [await ann.line() for _ in range(5)]  # ids 1..12 exist before 3 + 10 + 1
    assert shown[2].endswith("<ann> line 3")


def test_client_sends_search_with_filters_as_fields() -> None:
    rooms = ClientRooms()
    assert request_for("/search in:#dev from:bob deploy  now before:7", rooms) == {
        "type": "search",
        "text": "deploy now",
        "room": "#dev",
        "from": "bob",
        "before": 7,
    }
    assert request_for("/history #dev around 42", rooms) == {
        "type": "history",
        "room": "#dev",
        "limit": 20,
        "around": 42,
    }


def test_client_renders_hits_as_a_table() -> None:
    hits = (
        Found("#dev", 42, "bob", "say", "deploy at noon", 1_800_000_000.0),
        Found("#lobby", 7, "ann", "me", "deploys", 1_799_000_000.0),
    )
    line = render_event(SearchResults(1_800_000_100.0, "deploy", hits, 99), "alice", UTC)
    assert line is not None
    rows = line.plain.splitlines()
    assert rows[0].endswith('search "deploy": 2+ found, newest first')
    assert re.fullmatch(r" +#dev   42 \d{4}-\d\d-\d\d \d\d:\d\d  bob deploy at noon", rows[1])
    assert re.fullmatch(r" +#lobby  7 \d{4}-\d\d-\d\d \d\d:\d\d  ann deploys", rows[2])
    assert rows[3].strip() == "more: /search before:99 deploy"
    empty = render_event(SearchResults(1.0, "zzz", ()), "alice", UTC)
    assert empty is not None
    assert empty.plain.endswith('search "zzz": nothing found')


async def test_search_with_the_index_off_says_so(nursery: trio.Nursery, tmp_path: Path) -> None:
    store = SQLiteStore.open(tmp_path / "chat.db", search_index=False)
    server = ChatServer(ServerConfig(no_search_index=True), store)
    await nursery.start(server.run)
    ann = await join(nursery, server, "ann")
    await ann.send("/search anything")
    assert await ann.line() == "! search is off on this server (--no-search-index)"
    await ann.send("/rooms")
    assert await ann.line() == "*** rooms (1):"  # the connection goes on
    await server.shutdown()


async def test_search_right_after_a_line_finds_it_before_it_is_indexed(
    nursery: trio.Nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite indexes lines after their commit, in batches; a search in between indexes
    what waits first, so the line just sent is found (the pacer would wait a minute)."""
    monkeypatch.setattr(writer_index, "INDEX_DELAY_S", 60.0)
    store = SQLiteStore.open(tmp_path / "chat.db")
    server = ChatServer(ServerConfig(), store)
    await nursery.start(server.run)
    alice = await join_json(nursery, server, "alice")
    await alice.send_json(type="say", text="fresh needle")
    await alice.send_json(type="search", text="needle")  # not waiting for the echo
    result = await _until(alice, "search")
    assert [h["text"] for h in result["hits"]] == ["fresh needle"]
    await server.shutdown()
