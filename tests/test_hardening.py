"""Bad input and bad peers: each test pins one protection, over in-memory streams."""

from __future__ import annotations

import contextlib
import logging
from functools import partial

import pytest
import trio
import trio.testing

from tests.conftest import StartServer
from tests.helpers import BreakableStream, Peer, connect, join, join_json
from triochat.server import ChatServer
from triochat.server.transport import StreamTransport
from triochat.testing import open_client


async def test_hardening_overlong_line_is_discarded_and_next_line_works(
    nursery: trio.Nursery, start_server: StartServer
) -> None:
    """A line over --max-line-bytes gets an error; nobody sees it; the next line works."""
    server = await start_server(max_line_bytes=100)
    alice = await join(nursery, server, "alice")
    bob = await join(nursery, server, "bob")
    await alice.expect("*** bob joined (2 online)")
    for _ in range(50):  # 5000 bytes in many chunks: rejected as it arrives
        await bob.send(b"x" * 100)
    await bob.expect("! line too long (over 100 bytes); it was discarded")
    await bob.send(b"y" * 100 + b"\nafter\n")
    await alice.expect("<bob> after")
    await alice.quiet()
    await bob.quiet()


async def test_hardening_overlong_unterminated_line_before_eof_gets_the_error(
    nursery: trio.Nursery, start_server: StartServer
) -> None:
    """A last line one byte over the limit, then EOF, was dropped without the error."""
    server = await start_server(max_line_bytes=100)
    alice = await join(nursery, server, "alice")
    bob = await join(nursery, server, "bob")
    await alice.expect("*** bob joined (2 online)")
    await bob.send(b"y" * 101)  # no newline: held as a possible "...\r\n" ending
    assert isinstance(bob.stream, trio.abc.HalfCloseableStream)
    await bob.stream.send_eof()
    assert await bob.closed() == ["! line too long (over 100 bytes); it was discarded"]
    await alice.expect("*** bob left (1 online)")


async def test_hardening_line_at_the_limit_is_accepted(
    nursery: trio.Nursery, start_server: StartServer
) -> None:
    """Exactly max-line-bytes (CRLF-terminated) is still a valid line."""
    server = await start_server(max_line_bytes=100)
    alice = await join(nursery, server, "alice")
    bob = await join(nursery, server, "bob")
    await alice.expect("*** bob joined (2 online)")
    await bob.send(b"z" * 100 + b"\r\n")
    await alice.expect("<bob> " + "z" * 100)


async def test_hardening_invalid_utf8_becomes_replacement_character(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """Invalid UTF-8 is shown as U+FFFD instead of dropping the line or the connection."""
    alice = await join(nursery, server, "alice")
    bob = await join(nursery, server, "bob")
    await alice.expect("*** bob joined (2 online)")
    await bob.send(b"caf\xe9 \xff\xfe ok\n")
    await alice.expect("<bob> caf\ufffd \ufffd\ufffd ok")


async def test_hardening_escapes_and_controls_are_removed_before_anyone_sees_them(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """ANSI CSI/OSC, C0/C1 controls, bare CR and bidi overrides never reach a terminal."""
    alice = await join(nursery, server, "alice")
    bob = await join(nursery, server, "bob")
    await alice.expect("*** bob joined (2 online)")
    hostile = "\x1b[2J\x1b]0;pwned\x07hi\x1b[31m red\x9b1m\x07\x08 \u202eevil\u202c\rthere\ttab"
    await bob.send(hostile)
    line = await alice.line()
    assert line == "<bob> hi red evilthere\ttab"
    await bob.send("\x1b[0m \x07 ")  # nothing left once cleaned: ignored, not an empty line
    await alice.quiet()
    await bob.quiet()  # ignored means no error to the sender either


async def test_hardening_flood_is_paced_not_dropped(
    nursery: trio.Nursery, start_server: StartServer, autojump_clock: trio.testing.MockClock
) -> None:
    """Over the rate limit lines are delivered later, all of them, after a full burst."""
    server = await start_server(rate_limit=5, burst=20)
    alice = await join(nursery, server, "alice")
    bob = await join(nursery, server, "bob")
    await alice.expect("*** bob joined (2 online)")
    start = trio.current_time()
    await bob.send(b"".join(f"line {i}\n".encode() for i in range(40)))
    arrivals = []
    for i in range(40):
        await alice.expect(f"<bob> line {i}")
        arrivals.append(trio.current_time() - start)
    assert arrivals[19] < 0.01  # the burst (a paste) goes through at once
    assert arrivals[20] == pytest.approx(0.2, abs=0.01)
    assert arrivals[39] == pytest.approx(4.0, abs=0.01)  # 20 more at 5 lines/s


async def test_hardening_flood_pushes_back_on_the_sender_only(
    nursery: trio.Nursery, start_server: StartServer, autojump_clock: trio.testing.MockClock
) -> None:
    """A flooder is read more slowly (its sends stall); others are not delayed."""
    server = await start_server(rate_limit=5, burst=2)
    alice = await join(nursery, server, "alice")
    flooder = await join(nursery, server, "flooder", lockstep=True)
    await alice.expect("*** flooder joined (2 online)")
    carol = await join(nursery, server, "carol")
    await alice.expect("*** carol joined (3 online)")
    sent_at: list[float] = []

    async def flood() -> None:
        for i in range(12):
            # Lockstep: send_all returns only once the server has read these bytes.
            await flooder.send(f"flood {i}")
            sent_at.append(trio.current_time())

    start = trio.current_time()
    nursery.start_soon(flood)
    await trio.sleep(0.5)
    await carol.send("not delayed")
    lines = [await alice.line() for _ in range(5)]
    assert "<carol> not delayed" in lines
    assert trio.current_time() - start == pytest.approx(0.5, abs=0.01)
    while len(sent_at) < 12:
        await alice.line()
    # 2 at once, then one every 0.2 s: the sender was slowed to the limit.
    assert sent_at[-1] - start >= 1.6


async def test_hardening_slow_reader_is_dropped_and_others_are_not_delayed(
    nursery: trio.Nursery, start_server: StartServer, autojump_clock: trio.testing.MockClock
) -> None:
    """A member that never reads is disconnected as 'too slow'; the rest get everything."""
    server = await start_server(send_queue=8, rate_limit=0)
    alice = await join(nursery, server, "alice")
    bob = await join(nursery, server, "bob")
    await alice.expect("*** bob joined (2 online)")
    stalled = await join(nursery, server, "stalled", lockstep=True)  # then never reads again
    await alice.expect("*** stalled joined (3 online)")
    await bob.expect("*** stalled joined (3 online)")
    start = trio.current_time()
    for i in range(50):
        await alice.send(f"message {i}")
    received = [await bob.line() for _ in range(51)]
    # Not delayed: no time passed (had the room waited on the stalled member, even
    # for a timeout, the virtual clock would have jumped; the name claimed it unchecked).
    assert trio.current_time() == start
    assert "*** stalled left: too slow (2 online)" in received
    assert [line for line in received if line.startswith("<")] == [
        f"<alice> message {i}" for i in range(50)
    ]
    await alice.expect("*** stalled left: too slow (2 online)")
    await stalled.closed()  # its connection was closed, not left hanging
    assert server.state.names() == ["alice", "bob"]


async def test_hardening_own_who_replies_fill_a_non_readers_queue_by_bytes(
    nursery: trio.Nursery, start_server: StartServer, autojump_clock: trio.testing.MockClock
) -> None:
    """A member's own /who replies count: one that never reads is dropped by bytes."""
    server = await start_server(send_queue=1024, send_queue_bytes=4096, rate_limit=0)
    alice = await join_json(nursery, server, "alice")
    stalled = await join(nursery, server, "stalled", lockstep=True)  # then never reads again
    assert (await alice.event())["type"] == "join"
    sent = 0
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        while sent < 300:  # 29-byte replies: about 140 fill 4096 bytes; 300 < 1024 events
            await stalled.send("/who")
            sent += 1
    assert sent < 300  # cut off while still sending
    left = await alice.event()
    assert (left["type"], left["name"], left["reason"]) == ("leave", "stalled", "too slow")
    assert server.state.names() == ["alice"]


async def test_hardening_reset_is_an_ordinary_leave(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """A connection reset mid-session is a leave ('lost'); the server carries on."""
    alice = await join(nursery, server, "alice")
    client, server_side = trio.testing.memory_stream_pair()
    breakable = BreakableStream(server_side)
    nursery.start_soon(server.handle_stream, breakable)
    bob = Peer(client)
    await bob.send("/nick bob")
    await bob.line()
    await alice.expect("*** bob joined (2 online)")
    breakable.reset()
    await alice.expect("*** bob left: lost (1 online)")
    carol = await join(nursery, server, "carol")
    await carol.send("still working")
    await alice.expect("*** carol joined (2 online)", "<carol> still working")


async def test_hardening_half_close_flushes_then_leaves(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """A client that half-closes (`nc -N`) still gets what was queued for it."""
    alice = await join(nursery, server, "alice")
    bob = await join(nursery, server, "bob")
    await alice.expect("*** bob joined (2 online)")
    await bob.send("/who")
    assert isinstance(bob.stream, trio.abc.HalfCloseableStream)
    await bob.stream.send_eof()
    assert await bob.closed() == ["*** online (2): alice, bob"]
    await alice.expect("*** bob left (1 online)")


class ExplodingStream(trio.abc.Stream):
    """A transport with a bug in it: receive_some raises an unexpected error."""

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        raise RuntimeError("boom")

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


async def test_hardening_unexpected_error_stays_in_its_connection(
    nursery: trio.Nursery, server: ChatServer, caplog: pytest.LogCaptureFixture
) -> None:
    """An unexpected error in one connection (inside its nursery) is logged, not raised."""
    alice = await join(nursery, server, "alice")
    with caplog.at_level(logging.ERROR):
        await server.handle_stream(ExplodingStream())  # returns instead of raising
    assert "unexpected error" in caplog.text
    await alice.send("/who")
    await alice.expect("*** online (1): alice")


async def test_hardening_max_clients_refuses_extra_connection(
    nursery: trio.Nursery, start_server: StartServer
) -> None:
    """Past --max-clients a connection gets one error line and is closed."""
    server = await start_server(max_clients=2)
    alice = await join(nursery, server, "alice")
    await join(nursery, server, "bob")
    await alice.expect("*** bob joined (2 online)")
    extra = connect(nursery, server)
    assert await extra.closed() == ["! server full (2 clients); try again later"]
    await alice.quiet()


async def test_hardening_shutdown_tells_everyone_and_is_bounded(
    nursery: trio.Nursery, server: ChatServer, autojump_clock: trio.testing.MockClock
) -> None:
    """Shutdown notifies every member, closes every connection, even one that never reads."""
    alice = await join(nursery, server, "alice")
    json_peer = connect(nursery, server)
    await json_peer.send_json(type="hello", name="jay")
    await json_peer.event()
    stalled = await join(nursery, server, "stalled", lockstep=True)
    await alice.expect("*** jay joined (2 online)", "*** stalled joined (3 online)")
    start = trio.current_time()
    await server.shutdown()
    assert trio.current_time() - start <= server.config.flush_timeout + 0.01
    assert await alice.closed() == ["*** server is shutting down"]
    lines = await json_peer.closed()
    assert len(lines) == 2  # the stalled join, then shutdown
    assert '"type":"shutdown"' in lines[-1]
    await stalled.closed()
    await trio.testing.wait_all_tasks_blocked()
    assert server.connections == 0
    late = connect(nursery, server)
    assert await late.line() == "! server is shutting down"


async def test_hardening_lone_surrogate_from_json_cannot_crash_the_room(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """A JSON "\\ud800" escape (unencodable as UTF-8) is stripped; the room keeps working."""
    alice = await join(nursery, server, "alice")
    jay = await open_client(nursery, server, "jay")
    await alice.expect("*** jay joined (2 online)")
    await jay.peer.send('{"type": "say", "text": "a\\ud800b"}')
    await alice.expect("<jay> ab")
    assert (await jay.expect("say", from_="jay"))["text"] == "ab"
    await alice.send("/who")
    await alice.expect("*** online (2): alice, jay")


async def test_hardening_deeply_nested_json_is_an_error_not_a_disconnect(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """JSON nested thousands deep (RecursionError in the parser) gets bad-json; we stay."""
    jay = await open_client(nursery, server, "jay")
    await jay.peer.send("[" * 4000)
    await jay.expect("error", code="bad-json")
    await jay.send(type="who")
    assert (await jay.expect("who"))["names"] == ["jay"]
    await jay.quiet()


async def test_hardening_malformed_json_hello_is_refused_in_json(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """A hello with a non-string name gets a JSON error, not a plain-mode guest join."""
    alice = await join(nursery, server, "alice")
    bot = connect(nursery, server)
    await bot.send_json(type="hello", name=5)
    lines = await bot.closed()
    assert len(lines) == 1
    assert '"code":"bad-request"' in lines[0]
    await alice.quiet()


def _connect_as(nursery: trio.Nursery, server: ChatServer, host: str | None, door: str) -> Peer:
    """An in-memory connection the server sees as from ``host``, come in by ``door``."""
    client, server_side = trio.testing.memory_stream_pair()
    serve = partial(
        server.serve_transport, StreamTransport(server_side), f"{host}:40000", host, door=door
    )
    nursery.start_soon(serve)
    return Peer(client)


async def test_server_statistics_count_doors_admissions_and_refusals(
    nursery: trio.Nursery, start_server: StartServer, autojump_clock: trio.testing.MockClock
) -> None:
    """statistics(): live connections and admissions per door, refusals per reason."""
    server = await start_server(max_clients=3, max_per_address=1, trusted=())
    assert server.statistics().connections == 0
    tls = _connect_as(nursery, server, "198.51.100.7", "tls")
    await trio.testing.wait_all_tasks_blocked()  # admitted first
    again = _connect_as(nursery, server, "198.51.100.7", "tls")  # one per address
    await trio.testing.wait_all_tasks_blocked()  # refused before the others come (trio
    plain = [connect(nursery, server), connect(nursery, server)]  # runs tasks in any order)
    await trio.testing.wait_all_tasks_blocked()
    full = connect(nursery, server)
    assert await again.line() == (
        "! too many connections from your address (1); close one and try again"
    )
    assert await full.line() == "! server full (3 clients); try again later"
    stats = server.statistics()
    assert stats.connections == 3
    assert stats.by_door == {"tls": 1, "plain": 2}
    assert stats.admitted == {"tls": 1, "plain": 2}
    assert stats.refused == {"per address": 1, "full": 1}
    await tls.stream.aclose()
    await trio.sleep(server.config.flush_timeout + 1)
    stats = server.statistics()
    assert (stats.connections, stats.by_door, stats.admitted["tls"]) == (2, {"plain": 2}, 1)
    await server.shutdown()
    late = connect(nursery, server)
    assert await late.line() == "! server is shutting down"
    assert server.statistics().refused["shutting down"] == 1
    for peer in plain:
        await peer.stream.aclose()


async def test_server_statistics_count_accepts_per_door(
    nursery: trio.Nursery, start_server: StartServer
) -> None:
    """The listener table counts what each door accepted (loopback TCP)."""
    server = await start_server()
    listeners = await nursery.start(server.serve_tcp, "127.0.0.1", 0)
    port = listeners[0].socket.getsockname()[1]
    for _ in range(2):
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            await stream.send_all(b"/nick alice\n")
            assert await stream.receive_some()
    stats = server.statistics().listeners
    assert stats.accepted == {"plain": 2}
    assert (stats.accept_errors, stats.handshakes, stats.handshake_failures) == (0, 0, {})
    await server.shutdown()
