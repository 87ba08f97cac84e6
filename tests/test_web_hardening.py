"""The web door under attack: DNS rebinding, WebSocket frame floods, HTTP-stage slowloris.

The logic runs in memory and in virtual time (tests.test_web's peers); one loopback test
for each attack runs the real ``triochat server`` and measures what others see: an
observer's ``/who`` round trip during a frame flood, page loads from a second local
address (127.0.0.2) during a slowloris, with ``--trusted none``.
"""

from __future__ import annotations

import logging
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Final

import pytest
import trio
import trio.testing
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection
from wsproto.events import AcceptConnection, CloseConnection, Message, Request

from tests.conftest import StartServer
from tests.helpers import join
from tests.procs import BlockingServer
from tests.test_web import HOST, WAIT, HttpPeer, WsPeer, _server_pair, open_web, ws_join
from triochat.config import ServerConfig
from triochat.server import ChatServer
from triochat.web import WebServer
from triochat.web.frames import (
    FRAMES_PER_LINE,
    MAX_MESSAGE_FRAMES,
    InputBudget,
    MessageLines,
)
from triochat.web.http import HostPolicy, host_name, parse_hosts
from triochat.web.server import MAX_HTTP_CONNECTIONS, REQUEST_TIMEOUT
from triochat.web.slots import HttpSlots, address_group

IO_TIMEOUT: Final = 10.0  # seconds for any one blocking read in the loopback tests
EVIL: Final = "evil.example:30080"  # a hostile page's name, rebound to this server


def _client_frames(*parts: tuple[str, bool]) -> bytes:
    """What a WebSocket client sends for these (text, message_finished) parts."""
    client = Connection(ConnectionType.CLIENT)
    return b"".join(client.send(Message(data=text, message_finished=end)) for text, end in parts)


# -- DNS rebinding ----------------------------------------------------------------------


def test_web_host_names_are_normalised() -> None:
    """Ports, case, a trailing dot and IPv6 brackets do not hide a name; junk is no name."""
    assert host_name("Chat.Example.:8080") == "chat.example"
    assert host_name("[::0:1]:30080") == "::1"
    assert host_name("127.0.0.1") == "127.0.0.1"
    for junk in ("", ":80", "[::1", "a@b", "[::1]x"):
        assert host_name(junk) is None, junk
    assert parse_hosts("Chat.Example.org, 10.0.0.1,*") == ("chat.example.org", "10.0.0.1", "*")
    for bad in ("chat.example.org:80", "a/b", "x@y"):
        with pytest.raises(ValueError, match="not a host name"):
            parse_hosts(bad)


def test_web_host_policy_names_and_addresses() -> None:
    """Only this server's names and addresses; any address when it listens on every one."""
    policy = HostPolicy.build(("localhost", "box"), ("127.0.0.1",))
    for ok in ("localhost:30080", "LOCALHOST", "box", "127.0.0.1:1", None):
        assert policy.permits(ok), ok
    for refused in (EVIL, "127.0.0.2", "[::1]:30080", "box.evil.example", "a@b"):
        assert not policy.permits(refused), refused
    everywhere = HostPolicy.build(("localhost",), ("::",))
    assert everywhere.permits("203.0.113.9:30080")  # an address cannot be rebound
    assert not everywhere.permits(EVIL)
    assert HostPolicy.build(("*",), ()).permits(EVIL)


async def test_web_rebinding_request_is_refused_421(
    nursery: trio.Nursery, server: ChatServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Host evil.example with its own Origin (a rebound page) gets 421, page and upgrade alike."""
    web = WebServer(server)
    stream = open_web(nursery, web)
    await stream.send_all(f"GET / HTTP/1.1\r\nHost: {EVIL}\r\n\r\n".encode())
    data = b""
    with caplog.at_level(logging.WARNING, logger="triochat.web.server"), trio.fail_after(WAIT):
        while chunk := await stream.receive_some():
            data += chunk
    assert data.startswith(b"HTTP/1.1 421 ")
    rebound = WsPeer(open_web(nursery, web))
    with caplog.at_level(logging.WARNING, logger="triochat.web.server"):
        assert await rebound.handshake(origin=f"http://{EVIL}", host=EVIL) == 421
    assert web.statistics().refused == {"host": 2}
    assert web.statistics().upgrades == 0
    lines = [
        r.getMessage() for r in caplog.records if "does not name this server" in r.getMessage()
    ]
    assert len(lines) == 1  # the second within 10 s is counted, not logged
    assert await WsPeer(open_web(nursery, web)).handshake() == 101  # localhost is served


async def test_web_host_setting_replaces_the_names(
    nursery: trio.Nursery, start_server: StartServer
) -> None:
    """--web-host chat.example.org: that name is served, localhost no longer; addresses are."""
    server = await start_server(web_hosts=("chat.example.org",))
    web = WebServer(server)
    origin = "http://chat.example.org"
    assert await WsPeer(open_web(nursery, web)).handshake(origin, "chat.example.org") == 101
    assert await WsPeer(open_web(nursery, web)).handshake() == 421  # localhost
    address = "127.0.0.1:30080"  # --host, an address: always this server
    assert await WsPeer(open_web(nursery, web)).handshake(f"http://{address}", address) == 101


def test_web_rebinding_refused_on_loopback(tmp_path: Path) -> None:
    """The real server: a rebound name gets 421, its own address:port gets the page."""
    server = BlockingServer.start("--db", ":memory:", log_path=str(tmp_path / "server.log"))
    try:
        for host, status in ((EVIL, b"421"), (f"127.0.0.1:{server.web_port}", b"200")):
            with socket.create_connection(("127.0.0.1", server.web_port), IO_TIMEOUT) as sock:
                sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
                assert sock.recv(65536).split(b" ", 2)[1] == status, host
    finally:
        server.stop()
    assert "does not name this server" in (tmp_path / "server.log").read_text()


# -- WebSocket frame floods ---------------------------------------------------------------


def test_web_input_budget_paces_frames_and_bytes() -> None:
    """Past the burst, frames (and bytes) are borrowed: the wait pays them back at the rate."""
    budget = InputBudget(rate=5, burst=2, line_bytes=100, now=0.0)
    frames = 2 * FRAMES_PER_LINE  # the burst
    assert budget.charge(frames, 0, now=0.0) == 0.0
    assert budget.charge(20, 0, now=0.0) == pytest.approx(20 / (5 * FRAMES_PER_LINE))
    bytes_budget = InputBudget(rate=5, burst=2, line_bytes=100, now=0.0)
    assert bytes_budget.charge(1, 2 * 114 + 570, now=0.0) == pytest.approx(1.0)  # 570 B at 570/s
    assert InputBudget(rate=0, burst=2, line_bytes=100, now=0.0).charge(10**6, 10**9, 0.0) == 0


def test_web_message_lines_parse_a_bounded_number_of_frames() -> None:
    """10,000 empty frames in one read are parsed 64 at a time, not all at once."""
    lines, _ = _server_lines()
    flood = _client_frames(("a", False), *[("", False)] * 10_000)
    got = lines.receive(flood, limit=64)
    assert (got.frames, got.more, got.closed) == (64, True, False)
    assert lines.pull(10).frames == 10


def test_web_message_in_too_many_frames_closes_1009() -> None:
    """A message that never ends (empty continuation frames) is closed with 1009."""
    lines, _ = _server_lines()
    got = lines.receive(_client_frames(*[("", False)] * (MAX_MESSAGE_FRAMES + 1)), limit=10**6)
    assert got.closed
    assert not got.lost
    closing = Connection(ConnectionType.CLIENT)
    closing.receive_data(got.reply)
    (event,) = closing.events()
    assert isinstance(event, CloseConnection)
    assert event.code == 1009
    whole, _ = _server_lines()  # fragmented within the cap: one line
    pieces = [("x", False)] * (MAX_MESSAGE_FRAMES - 1) + [("y", True)]
    assert whole.receive(_client_frames(*pieces), limit=10**6).lines == b"x" * 127 + b"y\n"


def _server_lines() -> tuple[MessageLines, WSConnection]:
    """A server-side MessageLines after a handshake, and the client that made it."""
    return _server_pair()


async def test_web_empty_frame_flood_is_read_at_the_frame_rate(
    nursery: trio.Nursery, start_server: StartServer, autojump_clock: trio.testing.MockClock
) -> None:
    """Empty continuation frames (no line ever completes) are read at 4 per line of budget."""
    server = await start_server(rate_limit=5, burst=2)
    watcher = await join(nursery, server, "watcher")
    flooder = await ws_join(nursery, WebServer(server), "flooder")
    await watcher.expect("*** flooder joined (2 online)")
    start = trio.current_time()
    # Ten messages of 100 empty frames each (under the per-message cap), then a line.
    message = [("", False)] * 99 + [("", True)]
    flood = _client_frames_on(flooder, message * 10 + [('{"type":"say","text":"end"}', True)])
    await flooder.stream.send_all(flood)
    assert await watcher.line(timeout=1000.0) == "<flooder> end"
    took = trio.current_time() - start
    # 1001 frames at 5 x 4 = 20 a second past the burst of 2 x 4: about 50 s, not at once.
    assert took == pytest.approx((1001 - 2 * FRAMES_PER_LINE) / (5 * FRAMES_PER_LINE), rel=0.05)
    await watcher.send("/who")
    await watcher.expect("*** online (2): flooder, watcher")


def _client_frames_on(peer: WsPeer, parts: list[tuple[str, bool]]) -> bytes:
    """What ``peer``'s own wsproto client sends for these parts (its masking state)."""
    return b"".join(peer.ws.send(Message(data=text, message_finished=end)) for text, end in parts)


async def test_web_endless_message_is_closed_1009(nursery: trio.Nursery, web: WebServer) -> None:
    """Through the server: a message in more frames than the cap ends with a 1009 close."""
    flooder = await ws_join(nursery, web, "flooder")
    await flooder.stream.send_all(_client_frames_on(flooder, [("", False)] * 200))
    _, close = await flooder.closed()
    assert close is not None
    assert close.code == 1009


@pytest.fixture
def web(server: ChatServer) -> WebServer:
    """The web front door of the default test server."""
    return WebServer(server)


# -- HTTP-stage slowloris -----------------------------------------------------------------


def open_from(nursery: trio.Nursery, web: WebServer, host: str) -> trio.abc.Stream:
    """A connection to ``web`` from address ``host``; the client's end."""
    client, server_side = trio.testing.memory_stream_pair()
    serve = partial(web.serve_stream, door="web", secure=False)
    nursery.start_soon(serve, server_side, f"{host}:1234", host)
    return client


async def _read_all(stream: trio.abc.Stream, timeout: float = WAIT) -> bytes:
    data = b""
    with trio.fail_after(timeout):
        while chunk := await stream.receive_some():
            data += chunk
    return data


async def _closed(streams: list[trio.abc.Stream]) -> int:
    """How many of ``streams`` the server has closed (read to EOF), without waiting."""
    ended: list[bytes] = []

    async def read(stream: trio.abc.Stream) -> None:
        ended.append(bytes(await stream.receive_some()))

    async with trio.open_nursery() as readers:
        for stream in streams:
            readers.start_soon(read, stream)
        await trio.testing.wait_all_tasks_blocked()
        readers.cancel_scope.cancel()
    assert set(ended) <= {b""}
    return len(ended)


async def test_web_slowloris_from_one_address_gives_way_to_another(
    nursery: trio.Nursery, web: WebServer
) -> None:
    """A trusted address holding every slot (GET / HT, never finished) yields one to a newcomer."""
    holders = [open_from(nursery, web, "127.0.0.1") for _ in range(MAX_HTTP_CONNECTIONS)]
    for stream in holders:
        await stream.send_all(b"GET / HT")
    await trio.testing.wait_all_tasks_blocked()
    assert web.http_connections == MAX_HTTP_CONNECTIONS
    response, _ = await HttpPeer(open_from(nursery, web, "198.51.100.7")).get("/")
    assert response.status_code == 200
    assert web.statistics().evicted == 1
    assert await _closed(holders) == 1  # one holder was closed, without a word
    more = open_from(nursery, web, "127.0.0.1")  # the holder itself cannot take its own
    assert await _read_all(more) == b""
    assert web.statistics().refused == {"busy": 1}


async def test_web_slowloris_from_many_addresses_leaves_room(
    nursery: trio.Nursery, start_server: StartServer
) -> None:
    """13 addresses x --max-per-address 20 fill the stage; a 14th address still loads the page."""
    server = await start_server(trusted=())
    web = WebServer(server)
    for i in range(13):
        for _ in range(20):
            await open_from(nursery, web, f"198.51.100.{i + 1}").send_all(b"GET / HT")
    await trio.testing.wait_all_tasks_blocked()
    assert web.http_connections == MAX_HTTP_CONNECTIONS
    # 260 asked: the last 4 (the 13th address, holding fewer) took slots of the others.
    assert (web.statistics().refused, web.statistics().evicted) == ({}, 4)
    for _ in range(3):
        response, _ = await HttpPeer(open_from(nursery, web, "203.0.113.5")).get("/")
        assert response.status_code == 200
    assert web.statistics().evicted == 4 + 3


async def test_web_slots_share_and_eviction_order() -> None:
    """Per-address share, IPv6 /64 as one address, and the oldest idle connection goes first."""
    slots = HttpSlots(ServerConfig(max_per_address=2, trusted=()), limit=3)
    scopes = [trio.CancelScope() for _ in range(6)]
    first = slots.admit("2001:db8::1", scopes[0])
    second = slots.admit("2001:db8::2", scopes[1])  # the same /64
    assert not isinstance(first, str)
    assert not isinstance(second, str)
    assert slots.admit("2001:db8::3", scopes[2]) == "address"
    first.answering = True  # being answered: evicted last
    third = slots.admit("192.0.2.1", scopes[2])
    assert not isinstance(third, str)
    assert slots.admit("192.0.2.9", scopes[3]) != "all"  # takes the /64's idle one
    assert scopes[1].cancel_called
    assert not scopes[0].cancel_called
    assert slots.admit("192.0.2.1", scopes[4]) == "all"  # nobody holds more than 192.0.2.1
    assert address_group("::ffff:192.0.2.1") == "192.0.2.1"
    assert address_group(None) is None


async def test_web_keepalive_idle_is_bounded_by_the_head_deadline(
    nursery: trio.Nursery, web: WebServer, autojump_clock: trio.testing.MockClock
) -> None:
    """A kept-alive connection must send its next head within 10 s of the last answer."""
    peer = HttpPeer(open_web(nursery, web))
    await peer.get("/")
    start = trio.current_time()
    assert await _read_all(peer.stream, timeout=30.0) == b""
    assert trio.current_time() - start == pytest.approx(REQUEST_TIMEOUT) == pytest.approx(10.0)


async def test_web_oversized_head_in_one_write_gets_431(
    nursery: trio.Nursery, web: WebServer
) -> None:
    """A complete 20 KB head in one write is refused as one in pieces is (it got 200)."""
    client = open_web(nursery, web)
    head = f"GET / HTTP/1.1\r\nHost: {HOST}\r\nX-Junk: {'x' * 20000}\r\n\r\n"
    await client.send_all(head.encode())
    assert (await _read_all(client)).startswith(b"HTTP/1.1 431 ")


async def test_web_pipelined_requests_are_each_within_the_head_limit(
    nursery: trio.Nursery, web: WebServer
) -> None:
    """Three 6 KB heads in one write are three requests, each under 16 KiB: all answered."""
    client = open_web(nursery, web)
    head = f"GET /static/app.js HTTP/1.1\r\nHost: {HOST}\r\nX-Pad: {'x' * 6000}\r\n\r\n"
    await client.send_all(head.encode() * 2 + head.replace("HTTP/1.1", "HTTP/1.0").encode())
    data = await _read_all(client)
    assert data.count(b"HTTP/1.1 200 ") == 3


# -- on loopback: what the others see -------------------------------------------------------


@pytest.fixture
def untrusting_server(tmp_path: Path) -> Iterator[BlockingServer]:
    """``triochat server --trusted none`` on loopback: every address gets only its share."""
    log = str(tmp_path / "server.log")
    running = BlockingServer.start("--db", ":memory:", "--trusted", "none", log_path=log)
    try:
        yield running
    finally:
        running.stop()


def _observer(port: int) -> socket.socket:
    """A plain chat member, welcomed."""
    sock = socket.create_connection(("127.0.0.1", port), IO_TIMEOUT)
    sock.sendall(b"/nick observer\n")
    data = b""
    while b"welcome" not in data:
        data += sock.recv(65536)
    return sock


def _who_round_trips(sock: socket.socket, count: int) -> list[float]:
    """Seconds from sending /who to its answer, ``count`` times, 0.1 s apart."""
    trips = []
    for _ in range(count):
        time.sleep(0.1)
        start = time.perf_counter()
        sock.sendall(b"/who\n")
        data = b""
        while b"*** online" not in data:
            chunk = sock.recv(65536)
            assert chunk, "the server closed the observer"
            data += chunk
        trips.append(time.perf_counter() - start)
    return trips


def _flood(port: int, stop: threading.Event, counts: list[int]) -> None:
    """A page sending empty continuation frames as fast as TCP takes them; closed, it reconnects.

    The message never ends, so no line ever completes for the line rate limit to see.
    ``counts`` gets the number of connections it opened.
    """
    opened = 0
    while not stop.is_set():
        try:
            sock = socket.create_connection(("127.0.0.1", port), IO_TIMEOUT)
        except OSError:
            stop.wait(0.01)
            continue
        opened += 1
        with sock:
            ws = WSConnection(ConnectionType.CLIENT)
            host = f"127.0.0.1:{port}"
            origin = [(b"origin", f"http://{host}".encode())]
            try:
                sock.sendall(ws.send(Request(host=host, target="/ws", extra_headers=origin)))
                while not any(isinstance(e, AcceptConnection) for e in ws.events()):
                    data = sock.recv(65536)
                    if not data:
                        raise ConnectionResetError("refused")
                    ws.receive_data(data)
                hello = f'{{"type":"hello","name":"flood{threading.get_ident() % 1000}x{opened}"}}'
                sock.sendall(ws.send(Message(data=hello)))
                empty = [Message(data="", message_finished=False)] * 10_000
                chunk = b"".join(ws.send(part) for part in empty)  # 60 KB of frames
                sock.settimeout(0.1)
                sent = 0  # of chunk, so that a partial send never cuts a frame
                while not stop.is_set():
                    try:
                        sent = (sent + sock.send(chunk[sent:])) % len(chunk)
                    except TimeoutError:
                        continue  # the server reads slowly: that is the point
            except OSError:
                continue  # closed (1009 and the end): open another
    counts.append(opened)


def test_web_frame_flood_costs_an_observer_nothing_on_loopback(
    untrusting_server: BlockingServer,
) -> None:
    """Two pages flooding empty frames: an nc member's /who still answers within 50 ms.

    Before the frame budget the loop sat at 97-100 % CPU and /who took 434 ms (median).
    """
    observer = _observer(untrusting_server.port)
    baseline = statistics.median(_who_round_trips(observer, 3))
    stop = threading.Event()
    counts: list[int] = []
    flooders = [
        threading.Thread(
            target=_flood, args=(untrusting_server.web_port, stop, counts), daemon=True
        )
        for _ in range(2)
    ]
    for flooder in flooders:
        flooder.start()
    try:
        time.sleep(0.5)  # the floods are under way, and past their bursts
        trips = _who_round_trips(observer, 15)
    finally:
        stop.set()
        for flooder in flooders:
            flooder.join(IO_TIMEOUT)
        observer.close()
    print(f"/who: {baseline * 1000:.2f} ms alone; during the flood (ms):")
    print(" ".join(f"{trip * 1000:.1f}" for trip in sorted(trips)), f"connections: {counts}")
    assert statistics.median(trips) < 0.05
    assert max(trips) < 0.5  # (a loaded CI machine: the median is the measure)


def _slowloris(port: int, stop: threading.Event, addresses: list[str]) -> None:
    """20 connections per address sending ``GET / HT`` and never more, re-opened when closed."""
    held: list[tuple[str, socket.socket | None]] = [(a, None) for a in addresses for _ in range(20)]
    try:
        while not stop.is_set():
            for i, (address, sock) in enumerate(held):
                if sock is not None:
                    try:
                        if sock.recv(1) not in (b"",):
                            continue
                    except BlockingIOError:
                        continue  # still held
                    except OSError:
                        pass
                    sock.close()
                new = socket.socket()
                new.bind((address, 0))
                new.settimeout(IO_TIMEOUT)
                try:
                    new.connect(("127.0.0.1", port))
                    new.sendall(b"GET / HT")
                except OSError:
                    new.close()
                    held[i] = (address, None)
                    continue
                new.setblocking(False)
                held[i] = (address, new)
            stop.wait(0.05)
    finally:
        for _, sock in held:
            if sock is not None:
                sock.close()


def _page_load(port: int) -> bool:
    """GET / from 127.0.0.2: True if the page came (200 and the whole body)."""
    try:
        with socket.socket() as sock:
            sock.bind(("127.0.0.2", 0))
            sock.settimeout(IO_TIMEOUT)
            sock.connect(("127.0.0.1", port))
            host = f"127.0.0.1:{port}"
            sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    except OSError:
        return False
    return data.startswith(b"HTTP/1.1 200 ") and data.rstrip().endswith(b"</html>")


def test_web_slowloris_leaves_page_loads_to_others_on_loopback(
    untrusting_server: BlockingServer,
) -> None:
    """15 addresses x 20 unfinished heads (300 > 256 slots): 20 of 20 loads from 127.0.0.2 work.

    Before, 33 of 35 page loads from another host failed while the slots were held.
    """
    port = untrusting_server.web_port
    stop = threading.Event()
    addresses = ["127.0.0.1", *(f"127.0.0.{i}" for i in range(3, 17))]
    attacker = threading.Thread(target=_slowloris, args=(port, stop, addresses), daemon=True)
    attacker.start()
    try:
        time.sleep(1.0)  # every slot is taken, and re-taken as it is freed
        loads = [_page_load(port) for _ in range(20)]
    finally:
        stop.set()
        attacker.join(IO_TIMEOUT)
    print(f"page loads from 127.0.0.2 during the slowloris: {sum(loads)} of {len(loads)}")
    assert all(loads)


async def test_web_metrics_door_does_not_check_host(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """The --metrics-port door (no page) answers a scraper whatever name it asks by."""
    door = WebServer(server, page=False)  # no monitor here: every path is a 404, never a 421
    stream = open_web(nursery, door)
    await stream.send_all(b"GET /metrics HTTP/1.1\r\nHost: chat.internal:30090\r\n\r\n")
    response = b""
    with trio.fail_after(WAIT):
        while b"\r\n\r\n" not in response:
            response += await stream.receive_some()
    assert response.startswith(b"HTTP/1.1 404 ")
    assert door.statistics().refused == {}
