"""The web front door in memory: HTTP answers, the upgrade, and WebSocket members.

A browser is played by wsproto's client side over trio memory streams, so these run in
virtual time with no port. The real thing (Chromium, the page) is tests/test_web_browser.py.
"""

from __future__ import annotations

import json
import logging
import socket
from collections import deque
from functools import partial
from typing import Any

import h11
import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Message,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.handshake import H11Handshake

from tests.conftest import StartServer
from tests.helpers import join
from triochat.server import ChatServer
from triochat.web import WebServer
from triochat.web.frames import MessageLines, text_frames, written_lines
from triochat.web.http import CSP, Assets, OriginPolicy, Reply, parse_origins, route
from triochat.web.server import KEEPALIVE_TIMEOUT, REQUEST_TIMEOUT
from triochat.web.stream import WebSocketStream

HOST = "localhost"  # the Host header every test request carries (a name of the server)
ORIGIN = f"http://{HOST}"  # so this is the page's own origin
WAIT = 5.0  # seconds (virtual where the test has autojump_clock) for any one reply


class WsPeer:
    """A browser's side of the chat WebSocket: wsproto's client over a memory stream."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.events: deque[Any] = deque()
        self.parts: list[str] = []
        self.messages: deque[str] = deque()
        self.close: CloseConnection | None = None
        self.eof = False

    async def handshake(self, origin: str | None = ORIGIN, host: str = HOST) -> int:
        """Ask for the upgrade; the status answered (101 when accepted)."""
        headers = [(b"origin", origin.encode())] if origin is not None else []
        await self.stream.send_all(
            self.ws.send(Request(host=host, target="/ws", extra_headers=headers))
        )
        while True:
            event = await self._event()
            if isinstance(event, AcceptConnection):
                return 101
            if isinstance(event, RejectConnection):
                return event.status_code

    async def _event(self) -> Any:
        with trio.fail_after(WAIT):
            while not self.events:
                if self.eof:
                    raise AssertionError("connection closed while an event was expected")
                data = await self.stream.receive_some()
                self.eof = not data
                self.ws.receive_data(bytes(data) or None)
                self.events.extend(self.ws.events())
        return self.events.popleft()

    async def send(self, text: str, *, finished: bool = True) -> None:
        """Send a text message (or, with ``finished=False``, the first part of one)."""
        await self.stream.send_all(self.ws.send(Message(data=text, message_finished=finished)))

    async def send_json(self, **fields: object) -> None:
        await self.send(json.dumps(fields))

    async def message(self) -> str:
        """The next whole text message."""
        while not self.messages:
            event = await self._event()
            if isinstance(event, TextMessage):
                self.parts.append(event.data)
                if event.message_finished:
                    self.messages.append("".join(self.parts))
                    self.parts = []
            elif isinstance(event, CloseConnection):
                self.close = event
                raise AssertionError(f"closed ({event.code}) while a message was expected")
            elif isinstance(event, Ping):
                await self.stream.send_all(self.ws.send(event.response()))
            else:
                self.events.appendleft(event)
                return ""
        return self.messages.popleft()

    async def event(self) -> dict[str, Any]:
        """The next message as a JSON event."""
        obj = json.loads(await self.message())
        assert isinstance(obj, dict)
        return obj

    async def event_of(self, kind: str) -> dict[str, Any]:
        """The next event of type ``kind`` (others are skipped)."""
        while (event := await self.event())["type"] != kind:
            pass
        return event

    async def closed(self) -> tuple[list[str], CloseConnection | None]:
        """Read to the end: the messages on the way, and the close frame (if one came)."""
        messages: list[str] = []
        while True:
            try:
                event = await self._event()
            except AssertionError:
                return messages, self.close
            if isinstance(event, TextMessage):
                messages.append(event.data)
            elif isinstance(event, CloseConnection):
                self.close = event
                if self.ws.state.name == "REMOTE_CLOSING":
                    await self.stream.send_all(self.ws.send(event.response()))
                return messages, event


def open_web(nursery: trio.Nursery, web: WebServer, *, lockstep: bool = False) -> trio.abc.Stream:
    """A connection to ``web``, served on ``nursery``; the client's end."""
    pair = trio.testing.lockstep_stream_pair if lockstep else trio.testing.memory_stream_pair
    client, server_side = pair()
    nursery.start_soon(web.handle_stream, server_side)
    return client


async def ws_join(nursery: trio.Nursery, web: WebServer, name: str, **hello: object) -> WsPeer:
    """Open the WebSocket, say hello as ``name`` and read the welcome."""
    peer = WsPeer(open_web(nursery, web))
    assert await peer.handshake() == 101
    await peer.send_json(type="hello", name=name, **hello)
    welcome = await peer.event()
    assert welcome["type"] == "welcome", welcome
    await trio.testing.wait_all_tasks_blocked()
    return peer


class HttpPeer:
    """A plain HTTP/1.1 client (h11) on one connection."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.http = h11.Connection(h11.CLIENT)

    async def get(
        self, target: str, *headers: tuple[str, str], method: str = "GET"
    ) -> tuple[h11.Response, bytes]:
        request = h11.Request(method=method, target=target, headers=[("Host", HOST), *headers])
        await self.stream.send_all(
            self.http.send(request) + (self.http.send(h11.EndOfMessage()) or b"")
        )
        response: h11.Response | None = None
        body = b""
        with trio.fail_after(WAIT):
            while True:
                event = self.http.next_event()
                if event is h11.NEED_DATA:
                    self.http.receive_data(bytes(await self.stream.receive_some()))
                elif isinstance(event, h11.Response):
                    response = event
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:
                    raise AssertionError(f"unexpected {event!r}")
        assert response is not None
        if self.http.our_state is h11.DONE and self.http.their_state is h11.DONE:
            self.http.start_next_cycle()
        return response, body


def headers_of(response: h11.Response) -> dict[str, str]:
    return {name.decode().lower(): value.decode() for name, value in response.headers}


@pytest.fixture
def web(server: ChatServer) -> WebServer:
    """The web front door of the default test server."""
    return WebServer(server)


# -- HTTP ------------------------------------------------------------------------------


async def test_web_http_index_is_strict_page(nursery: trio.Nursery, web: WebServer) -> None:
    """GET / is the page with a strict CSP and no inline script, style or handler to allow."""
    response, body = await HttpPeer(open_web(nursery, web)).get("/")
    headers = headers_of(response)
    assert response.status_code == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["content-security-policy"] == CSP
    assert CSP.startswith("default-src 'self';")
    assert "unsafe" not in CSP
    assert headers["x-content-type-options"] == "nosniff"
    page = body.decode()
    assert '<script type="module" src="/static/app.js"></script>' in page
    assert page.count("<script") == 1  # nothing inline
    assert "<style" not in page
    assert " style=" not in page
    assert " on" not in page.replace("\n", " ")
    assert "http://" not in page
    assert "https://" not in page


async def test_web_http_assets_have_types_and_fit_the_budget(
    nursery: trio.Nursery, web: WebServer
) -> None:
    """Each asset is served with its content type (no sniffing); all together under 80 KB."""
    peer = HttpPeer(open_web(nursery, web))
    expected = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    total = 0
    for name, asset in web.assets.files.items():
        response, body = await peer.get(f"/static/{name}")  # one keep-alive connection
        assert response.status_code == 200, name
        assert body == asset.body
        suffix = name[name.rfind(".") :]
        if suffix in expected:
            assert headers_of(response)["content-type"].startswith(expected[suffix]), name
        total += len(body)
    assert {"index.html", "app.js", "style.css"} <= set(web.assets.files)
    assert total < 80_000  # 72 KB: notify levels, badges, private history and search


async def test_web_http_etag_revalidates_with_304(nursery: trio.Nursery, web: WebServer) -> None:
    """An unchanged asset costs a 304 with no body; caches must revalidate (no-cache)."""
    peer = HttpPeer(open_web(nursery, web))
    first, _ = await peer.get("/static/app.js")
    etag = headers_of(first)["etag"]
    assert headers_of(first)["cache-control"] == "no-cache"
    again, body = await peer.get("/static/app.js", ("If-None-Match", etag))
    assert again.status_code == 304
    assert body == b""


async def test_web_http_errors_for_unknown_paths_and_methods(
    nursery: trio.Nursery, web: WebServer
) -> None:
    """Unknown paths are 404 (no way out of static/), other methods 405; HEAD has no body."""
    peer = HttpPeer(open_web(nursery, web))
    for target in ("/nope", "/static/", "/static/../http.py", "/static/%2e%2e/server.py"):
        response, _ = await peer.get(target)
        assert response.status_code == 404, target
        assert headers_of(response)["content-security-policy"] == CSP
    response, _ = await peer.get("/", method="DELETE")
    assert response.status_code == 405
    response, body = await peer.get("/static/style.css", method="HEAD")
    assert response.status_code == 200
    assert body == b""
    assert int(headers_of(response)["content-length"]) == len(web.assets.files["style.css"].body)


async def test_web_http_slow_request_is_closed(
    nursery: trio.Nursery, web: WebServer, autojump_clock: trio.testing.MockClock
) -> None:
    """A peer that never finishes its request head is closed after REQUEST_TIMEOUT (slowloris)."""
    client = open_web(nursery, web)
    start = trio.current_time()
    await client.send_all(b"GET / HTTP/1.1\r\nHost: chat.test\r\n")  # and never the blank line
    with trio.fail_after(REQUEST_TIMEOUT + 1):
        assert await client.receive_some() == b""
    assert trio.current_time() - start == pytest.approx(REQUEST_TIMEOUT)
    assert web.http_connections == 0


async def test_web_http_idle_keepalive_is_closed(
    nursery: trio.Nursery, web: WebServer, autojump_clock: trio.testing.MockClock
) -> None:
    """A kept-alive connection that asks for nothing more is closed after KEEPALIVE_TIMEOUT."""
    peer = HttpPeer(open_web(nursery, web))
    await peer.get("/")
    start = trio.current_time()
    with trio.fail_after(KEEPALIVE_TIMEOUT + 1):
        assert await peer.stream.receive_some() == b""
    assert trio.current_time() - start == pytest.approx(KEEPALIVE_TIMEOUT)


async def test_web_http_bad_request_gets_400(nursery: trio.Nursery, web: WebServer) -> None:
    """Garbage instead of HTTP is answered with a 400 and closed, not an unhandled error."""
    client = open_web(nursery, web)
    await client.send_all(b"\x16\x03\x01 this is not http\r\n\r\n")
    data = b""
    with trio.fail_after(WAIT):
        while chunk := await client.receive_some():
            data += chunk
    assert data.startswith(b"HTTP/1.1 400 ")


def test_web_route_is_a_fixed_table() -> None:
    """Only names in the asset table are served: no path reaches the file system."""
    assets = Assets({"index.html": b"<p>hi</p>", "app.js": b"1", "notes.txt": b"secret"})
    ok = route("GET", "/static/app.js?v=2", [], assets)
    assert isinstance(ok, Reply)
    assert ok.status == 200
    assert ok.body == b"1"
    assert isinstance(route("GET", "/", [], assets), Reply)
    for target in ("/static/notes.txt", "/static//app.js", "/static/./app.js", "/../app.js"):
        reply = route("GET", target, [], assets)
        assert isinstance(reply, Reply), target
        assert reply.status == 404, target


def test_web_origin_policy_same_host_or_listed() -> None:
    """Same host (any scheme: a TLS proxy in front) or a listed origin; 'null' never."""
    default = OriginPolicy()
    assert default.permits("http://chat.test", "chat.test")
    assert default.permits("https://Chat.Test", "chat.test")  # via a TLS-terminating proxy
    assert default.permits("http://chat.test:8080", "chat.test:8080")
    assert not default.permits("http://chat.test:8080", "chat.test")
    assert not default.permits("http://evil.test", "chat.test")
    assert not default.permits("null", "chat.test")
    assert not default.permits("http://chat.test@evil.test", "chat.test")
    assert default.permits(None, "chat.test")  # not a browser page: it could send anything
    listed = OriginPolicy(parse_origins("https://app.example.org, http://localhost:8000/"))
    assert listed.permits("https://app.example.org", "chat.test")
    assert listed.permits("http://localhost:8000", "chat.test")
    assert not listed.permits("http://app.example.org", "chat.test")
    assert OriginPolicy(parse_origins("*")).permits("http://anything.test", "chat.test")
    for bad in ("chat.test", "ftp://x.test", "https://x.test/path"):
        with pytest.raises(ValueError, match="not an origin"):
            parse_origins(bad)


# -- frames ----------------------------------------------------------------------------


def _server_pair() -> tuple[MessageLines, WSConnection]:
    """A server-side MessageLines and a client, past the handshake (as the server does it)."""
    client = WSConnection(ConnectionType.CLIENT)
    handshake = H11Handshake(ConnectionType.SERVER)
    handshake.receive_data(client.send(Request(host=HOST, target="/ws")))
    assert isinstance(next(handshake.events()), Request)
    client.receive_data(handshake.send(AcceptConnection()))
    assert isinstance(next(client.events()), AcceptConnection)
    assert isinstance(handshake.connection, Connection)
    return MessageLines(handshake.connection), client


@given(st.lists(st.text(min_size=1).filter(lambda t: "\n" not in t), max_size=8), st.text())
def test_web_text_frames_one_message_per_line(lines: list[str], rest: str) -> None:
    """Every complete line becomes one text message a client decodes to the same text."""
    rest = rest.replace("\n", "")
    data = b"".join(line.encode() + b"\n" for line in lines) + rest.encode()
    frames, left = text_frames(data)
    assert left == rest.encode()
    _, client = _server_pair()
    client.receive_data(frames)
    received = [e.data for e in client.events() if isinstance(e, TextMessage)]
    assert received == lines


def test_web_text_frames_length_encodings() -> None:
    """Lines of 125, 126, 65535 and 65536 bytes pick the 7-, 16- and 64-bit lengths right."""
    sizes = (1, 125, 126, 65535, 65536, 70000)
    frames, _ = text_frames(b"".join(b"x" * n + b"\n" for n in sizes))
    _, client = _server_pair()
    client.receive_data(frames)
    assert [len(e.data) for e in client.events() if isinstance(e, TextMessage)] == list(sizes)


def test_web_message_lines_partial_frames_stream_through() -> None:
    """A message arriving a byte at a time is passed on as it comes, its newline at the end."""
    lines, client = _server_pair()
    data = client.send(Message(data="héllo wörld"))
    out = b"".join(lines.receive(data[i : i + 1]).lines for i in range(len(data)))
    assert out == "héllo wörld\n".encode()


def test_web_message_lines_invalid_utf8_closes_1007() -> None:
    """A text message that is not UTF-8 closes the WebSocket with 1007, not a crash."""
    lines, _ = _server_pair()
    masked = bytes([0x81, 0x82, 0, 0, 0, 0, 0xFF, 0xFE])  # text, masked with zeros
    got = lines.receive(masked)
    assert got.closed
    assert got.reply[0] == 0x88  # an unmasked close frame (FIN + opcode 8)...
    assert int.from_bytes(got.reply[2:4], "big") == 1007  # ...with code 1007


# -- WebSocket members ------------------------------------------------------------------


async def test_web_ws_and_tcp_members_share_a_room(
    nursery: trio.Nursery, server: ChatServer, web: WebServer
) -> None:
    """A browser member and an nc member are in one conversation, in one order."""
    carol = await join(nursery, server, "carol")
    alice = await ws_join(nursery, web, "alice")
    await carol.expect("*** alice joined (2 online)")
    await alice.send_json(type="say", text="hi from the browser")
    said = await alice.event()
    assert (said["type"], said["from"], said["text"]) == ("say", "alice", "hi from the browser")
    await carol.expect("<alice> hi from the browser")
    await carol.send("hello <b>alice</b>")
    event = await alice.event()
    assert (event["from"], event["text"], event["room"]) == (
        "carol",
        "hello <b>alice</b>",
        "#lobby",
    )
    assert event["id"] == said["id"] + 1


async def test_web_ws_one_event_per_message(
    nursery: trio.Nursery, server: ChatServer, web: WebServer
) -> None:
    """A batch of events (a history replay) arrives as one message per event, not a blob."""
    carol = await join(nursery, server, "carol")
    await carol.send(b"".join(f"line {i}\n".encode() for i in range(5)))
    await trio.testing.wait_all_tasks_blocked()
    bob = await ws_join(nursery, web, "bob")
    replay = [await bob.event() for _ in range(5)]
    assert [e["text"] for e in replay] == [f"line {i}" for i in range(5)]
    assert all(e["history"] for e in replay)


async def test_web_ws_fragmented_message_is_one_line(
    nursery: trio.Nursery, server: ChatServer, web: WebServer
) -> None:
    """A message sent in several frames is one request, however it was cut."""
    alice = await ws_join(nursery, web, "alice")
    await alice.send('{"type": "say", ', finished=False)
    await alice.send('"text": "in two parts"}')
    assert (await alice.event())["text"] == "in two parts"


async def test_web_ws_oversized_message_is_refused_and_next_works(
    nursery: trio.Nursery, start_server: StartServer
) -> None:
    """A message over --max-line-bytes gets line-too-long, as on TCP; the next one works."""
    server = await start_server(max_line_bytes=100)
    alice = await ws_join(nursery, WebServer(server), "alice")
    await alice.send_json(type="say", text="x" * 500)
    error = await alice.event()
    assert (error["type"], error["code"]) == ("error", "line-too-long")
    await alice.send_json(type="say", text="short")
    assert (await alice.event())["text"] == "short"


async def test_web_ws_flood_is_paced(
    nursery: trio.Nursery, start_server: StartServer, autojump_clock: trio.testing.MockClock
) -> None:
    """The rate limit paces a browser exactly as it paces a TCP client: nothing dropped."""
    server = await start_server(rate_limit=5, burst=2)
    watcher = await join(nursery, server, "watcher")
    flooder = await ws_join(nursery, WebServer(server), "flooder")
    await watcher.expect("*** flooder joined (2 online)")
    start = trio.current_time()
    for i in range(7):
        await flooder.send_json(type="say", text=f"flood {i}")
    arrivals = []
    for i in range(7):
        await watcher.expect(f"<flooder> flood {i}")
        arrivals.append(trio.current_time() - start)
    assert arrivals[1] < 0.01  # the burst
    assert arrivals[6] == pytest.approx(1.0, abs=0.01)  # then 5 a second


async def test_web_ws_reader_that_never_reads_is_dropped_too_slow(
    nursery: trio.Nursery, start_server: StartServer
) -> None:
    """A browser tab that stops reading fills its bounded outbox and is dropped, alone."""
    server = await start_server(send_queue=8, rate_limit=0)
    web = WebServer(server)
    carol = await join(nursery, server, "carol")
    stalled = WsPeer(open_web(nursery, web, lockstep=True))
    assert await stalled.handshake() == 101
    await stalled.send_json(type="hello", name="stalled")
    await stalled.event()  # the welcome; from here on it never reads
    await carol.expect("*** stalled joined (2 online)")
    await carol.send(b"".join(b"spam %d\n" % i for i in range(200)))
    await carol.expect("*** stalled left: too slow (1 online)")  # carol's own lines are not echoed
    await carol.send("/who")
    await carol.expect("*** online (1): carol")


async def test_web_ws_max_clients_refusal_is_a_message(
    nursery: trio.Nursery, start_server: StartServer
) -> None:
    """Past --max-clients a browser is told why in a text message (the page shows it)."""
    server = await start_server(max_clients=1)
    web = WebServer(server)
    await join(nursery, server, "alice")
    extra = WsPeer(open_web(nursery, web))
    assert await extra.handshake() == 101
    messages, _ = await extra.closed()
    assert messages == ["! server full (1 clients); try again later"]


async def test_web_ws_ping_is_answered(nursery: trio.Nursery, web: WebServer) -> None:
    """A ping gets its pong, and chat goes on."""
    alice = await ws_join(nursery, web, "alice")
    await alice.stream.send_all(alice.ws.send(Ping(payload=b"are you there")))
    event = await alice._event()
    assert isinstance(event, Pong)
    assert event.payload == b"are you there"


async def test_web_ws_close_is_an_ordinary_leave(
    nursery: trio.Nursery, server: ChatServer, web: WebServer
) -> None:
    """A tab that closes its WebSocket leaves like a quit: answered close, no reason shown."""
    carol = await join(nursery, server, "carol")
    alice = await ws_join(nursery, web, "alice")
    await carol.expect("*** alice joined (2 online)")
    await alice.stream.send_all(alice.ws.send(CloseConnection(code=1000)))
    _, close = await alice.closed()
    assert close is not None
    assert close.code == 1000
    await carol.expect("*** alice left (1 online)")
    await trio.testing.wait_all_tasks_blocked()
    assert server.connections == 1  # carol's


async def test_web_ws_cross_origin_upgrade_refused(
    nursery: trio.Nursery, web: WebServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Another site's page gets 403 and one log line per burst, and never a session."""
    with caplog.at_level(logging.WARNING, logger="triochat.web.server"):
        for _ in range(3):
            peer = WsPeer(open_web(nursery, web))
            assert await peer.handshake(origin="https://evil.test") == 403
    refusals = [r for r in caplog.records if "refused a WebSocket" in r.getMessage()]
    assert len(refusals) == 1
    assert "'https://evil.test' is not allowed" in refusals[0].getMessage()
    assert web.chat.connections == 0


async def test_web_ws_listed_origin_and_no_origin_are_let_in(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """--web-origin admits another page; a non-browser client (no Origin) is admitted too."""
    web = WebServer(server, origins=("https://app.example.org",))
    assert await WsPeer(open_web(nursery, web)).handshake(origin="https://app.example.org") == 101
    assert await WsPeer(open_web(nursery, web)).handshake(origin=None) == 101
    assert await WsPeer(open_web(nursery, web)).handshake(origin="https://b.example.org") == 403


async def test_web_ws_plain_get_on_ws_path_is_400(nursery: trio.Nursery, web: WebServer) -> None:
    """GET /ws without the upgrade headers is a 400, not a hang or a crash."""
    response, _ = await HttpPeer(open_web(nursery, web)).get("/ws", ("Origin", ORIGIN))
    assert response.status_code == 400


async def test_web_ws_resume_replays_only_missed(
    nursery: trio.Nursery, server: ChatServer, web: WebServer
) -> None:
    """A tab reconnecting with `since` gets exactly what it missed: no duplicate, no gap."""
    carol = await join(nursery, server, "carol")
    alice = await ws_join(nursery, web, "alice")
    await carol.send("one")
    seen = await alice.event_of("say")
    await alice.stream.aclose()
    await carol.expect("*** alice joined (2 online)", "*** alice left: lost (1 online)")
    await carol.send("two")
    await carol.send("three")
    back = await ws_join(nursery, web, "alice", since={"#lobby": seen["id"]})
    replay = [await back.event_of("say") for _ in range(2)]
    assert [e["text"] for e in replay] == ["two", "three"]
    assert [e["id"] for e in replay] == [seen["id"] + 1, seen["id"] + 2]


async def test_web_shutdown_tells_browsers_and_closes(
    nursery: trio.Nursery,
    server: ChatServer,
    web: WebServer,
    autojump_clock: trio.testing.MockClock,
) -> None:
    """On shutdown a browser member gets the shutdown event, then a close frame."""
    alice = await ws_join(nursery, web, "alice")
    nursery.start_soon(server.shutdown)
    messages, close = await alice.closed()
    assert [json.loads(m)["type"] for m in messages] == ["shutdown"]
    assert close is not None
    assert close.code == 1000


async def test_web_upgrade_with_rejected_data_is_not_a_session(
    nursery: trio.Nursery, web: WebServer
) -> None:
    """A refused upgrade's body is plain text saying why (a browser shows nothing else)."""
    peer = WsPeer(open_web(nursery, web))
    assert await peer.handshake(origin="https://evil.test") == 403
    body = b""
    while not isinstance(event := await peer._event(), RejectData) or not event.body_finished:
        if isinstance(event, RejectData):
            body += event.data
    body += event.data
    assert b"may not open this chat" in body


async def test_web_http_oversized_head_gets_431(nursery: trio.Nursery, web: WebServer) -> None:
    """Request headers past 16 KiB are refused with 431 as they arrive, not buffered on."""
    client = open_web(nursery, web)
    await client.send_all(b"GET / HTTP/1.1\r\nHost: chat.test\r\nX-Junk: " + b"x" * 20000)
    data = b""
    with trio.fail_after(WAIT):
        while chunk := await client.receive_some():
            data += chunk
    assert data.startswith(b"HTTP/1.1 431 ")


@given(st.lists(st.binary(max_size=300).map(lambda b: b.replace(b"\n", b"")), max_size=6))
def test_web_written_lines_resumes_any_partial_write(lines: list[bytes]) -> None:
    """Cut anywhere, the lines left plus the bytes to skip rebuild exactly the same frames."""
    data = b"".join(line + b"\n" for line in lines)
    frames, _ = text_frames(data)
    for written in range(len(frames) + 1):
        taken, skip = written_lines(data, written)
        assert data[:taken].endswith(b"\n") or taken == 0
        rest, _ = text_frames(data[taken:])
        assert frames[:written] + rest[skip:] == frames


async def test_web_direct_write_partial_then_writer_keeps_frames_whole() -> None:
    """A direct write the kernel takes only part of, then send_all: the peer reads every line."""
    ours, theirs = trio.socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    lines_out, client = _server_pair()
    stream = WebSocketStream(trio.SocketStream(ours), lines_out.ws)
    assert stream.can_try_send
    sent = [f"{i:04d} ".encode() + b"x" * 700 for i in range(200)]
    data = b"".join(line + b"\n" for line in sent)
    taken = stream.try_send(data)
    assert 0 < taken < len(data)  # the socket buffer took some of it, not all
    assert data[:taken].endswith(b"\n")
    received: list[bytes] = []
    part = b""

    async def read() -> None:
        nonlocal part
        while len(received) < len(sent):
            client.receive_data(await theirs.recv(65536))
            for event in client.events():
                assert isinstance(event, TextMessage)
                part += event.data.encode()
                if event.message_finished:
                    received.append(part)
                    part = b""

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        await stream.send_all(data[taken:])
    assert received == sent
    await stream.aclose()
    theirs.close()


async def test_web_statistics_count_requests_upgrades_and_refusals(
    nursery: trio.Nursery, web: WebServer
) -> None:
    """statistics(): pages answered, WebSockets opened, upgrades refused by origin."""
    assert web.statistics().requests == 0
    page = HttpPeer(open_web(nursery, web))
    await page.get("/")
    await page.get("/static/app.js")
    await ws_join(nursery, web, "alice")
    foreign = WsPeer(open_web(nursery, web))
    assert await foreign.handshake(origin="https://elsewhere.example") == 403
    stats = web.statistics()
    assert (stats.requests, stats.upgrades, stats.refused) == (2, 1, {"origin": 1})
    assert stats.http_connections == web.http_connections


async def test_web_http_stage_is_limited_per_address(
    nursery: trio.Nursery, start_server: StartServer
) -> None:
    """One address cannot hold every page-loading slot: past --max-per-address, closed at once."""
    server = await start_server(max_per_address=1, trusted=())
    web = WebServer(server)
    streams = []
    for _ in range(2):
        client, server_side = trio.testing.memory_stream_pair()
        nursery.start_soon(
            partial(web.serve_stream, door="web", secure=False), server_side, "peer", "198.51.100.7"
        )
        await trio.testing.wait_all_tasks_blocked()
        streams.append(client)
    assert web.http_connections == 1
    assert web.statistics().refused == {"busy": 1}
    with trio.fail_after(WAIT):
        assert await streams[1].receive_some() == b""  # closed without a word
    response, _ = await HttpPeer(streams[0]).get("/")  # the first one is served
    assert response.status_code == 200
