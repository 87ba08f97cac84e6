"""Dead peers are found: TCP keepalive on every accepted socket, ping/pong in JSON mode.

The ping tests run in virtual time (``autojump_clock``): minutes of silence take no
real time, and the two-minute promise is checked on trio's clock.
"""

from __future__ import annotations

import functools
import io
import json
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from tests.test_tls import make_tls_files
from triochat.client.linesource import ChannelLineSource
from triochat.client.session import SessionEnd, chat_session
from triochat.client.view import ChatView, make_console
from triochat.core.codec import encode_json
from triochat.core.commands import parse_json
from triochat.core.events import Ping
from triochat.server.listeners import TlsDoor
from triochat.server.liveness import PING_EVERY, PONG_TIMEOUT
from triochat.server.transport import keepalive_options
from triochat.testing import Peer, connect_stream, join, join_json, open_test_server
from triochat.web import WebServer

TWO_MINUTES = 120.0  # the promise: a vanished laptop leaves the room within this


# -- TCP keepalive -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["plain", "tls", "web"])
async def test_keepalive_set_on_every_accepted_socket(
    nursery: trio.Nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Accepted sockets probe a silent peer after 60 s, give up at 110 s (the kernel's: hours)."""
    server = await open_test_server(nursery)
    accepted: trio.MemorySendChannel[trio.SocketStream]
    accepted, received = trio.open_memory_channel[trio.SocketStream](1)

    async def capture(stream: trio.abc.Stream) -> None:
        assert isinstance(stream, trio.SocketStream)
        await accepted.send(stream)

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    if kind == "plain":
        serve = functools.partial(server.serve_listeners, listeners, handler=capture)
    elif kind == "web":

        async def serve_http(web: WebServer, stream: trio.abc.Stream, *args: object) -> None:
            await capture(stream)  # the socket the page and its WebSocket would use
            await trio.sleep_forever()  # (returning would close it)

        monkeypatch.setattr(WebServer, "_serve_http", serve_http)
        serve = functools.partial(WebServer(server).serve_listeners, listeners)
    else:
        monkeypatch.setattr(TlsDoor, "handle", lambda door, stream: capture(stream))
        tls = make_tls_files(tmp_path / "tls")
        serve = functools.partial(server.serve_tls, listeners, tls.certificates)
    await nursery.start(serve)
    port = listeners[0].socket.getsockname()[1]
    async with await trio.open_tcp_stream("127.0.0.1", port):
        with trio.fail_after(5):
            stream = await received.receive()
        async with stream:
            options = keepalive_options()
            assert len(options) == 5  # Linux: SO_KEEPALIVE, idle, interval, count, user timeout
            for level, option, value in options:
                assert stream.socket.getsockopt(level, option) == value
    await server.shutdown()


# -- ping / pong --------------------------------------------------------------------------


async def read_until(peer: Peer, kind: str, timeout: float) -> dict[str, Any]:
    """The next event of ``kind`` (others before it are skipped)."""
    with trio.fail_after(timeout):
        while (event := await peer.event(timeout))["type"] != kind:
            pass
    return event


async def test_liveness_silent_json_member_is_pinged_then_dropped(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A JSON member that vanished (sends nothing, answers nothing) leaves within two minutes."""
    server = await open_test_server(nursery)
    watcher = await join(nursery, server, "watcher")
    laptop = await join_json(nursery, server, "laptop")
    await watcher.expect("*** laptop joined (2 online)")
    last_heard = trio.current_time()
    ping = await laptop.event(timeout=PING_EVERY + 5)
    assert ping["type"] == "ping"
    assert isinstance(ping["ts"], float)
    assert trio.current_time() - last_heard >= PING_EVERY
    error = await laptop.event(timeout=PONG_TIMEOUT + 5)  # the laptop is gone: nobody reads
    assert (error["type"], error["code"]) == ("error", "no-pong")
    assert await laptop.closed() == []
    await watcher.expect("*** laptop left: no pong (1 online)")
    assert trio.current_time() - last_heard < TWO_MINUTES
    assert server.state.names() == ["watcher"]


async def test_liveness_answering_pings_keeps_a_quiet_member(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A member that only ever answers pings stays for as long as it likes; pong gets no reply."""
    server = await open_test_server(nursery)
    lurker = await join_json(nursery, server, "lurker")
    start = trio.current_time()
    pings = 0
    while trio.current_time() - start < 10 * 60:
        ping = await lurker.event(timeout=PING_EVERY + 5)
        assert ping["type"] == "ping"
        pings += 1
        await lurker.send_json(type="pong")
    assert pings >= 10 * 60 // (PING_EVERY + 5)
    await lurker.quiet()  # the pong itself is not answered
    assert server.state.names() == ["lurker"]


async def test_liveness_any_line_counts_as_an_answer(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A member that talks is not pinged; one that answers a ping with chat is not dropped."""
    server = await open_test_server(nursery)
    bot = await join_json(nursery, server, "bot")
    for _ in range(5):  # a line every 30 s: never silent for PING_EVERY
        await trio.sleep(PING_EVERY - 15)
        await bot.send_json(type="say", text="tick")
        assert (await bot.event())["type"] == "say"
    await bot.quiet()
    await read_until(bot, "ping", PING_EVERY + 5)
    await bot.send_json(type="say", text="still here")
    await read_until(bot, "say", 5)
    await trio.sleep(PONG_TIMEOUT + 5)
    assert server.state.names() == ["bot"]


async def test_liveness_plain_members_are_not_pinged(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """Someone on nc is never sent a ping they could not answer (TCP keepalive covers them)."""
    server = await open_test_server(nursery)
    person = await join(nursery, server, "person")
    await trio.sleep(10 * 60)
    await person.quiet()
    assert server.state.names() == ["person"]


async def test_liveness_pong_is_accepted_silently(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """An unasked-for pong is not an unknown command: no error comes back."""
    assert parse_json('{"type": "pong"}') is None
    server = await open_test_server(nursery)
    bot = await join_json(nursery, server, "bot")
    await bot.send_json(type="pong")
    await bot.quiet()


def test_liveness_ping_encoding() -> None:
    """The ping event on the wire: its type and the server's time, nothing else."""
    assert json.loads(encode_json(Ping(1795714800.1234))) == {"type": "ping", "ts": 1795714800.123}


async def test_liveness_client_answers_pings(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """The terminal client answers every ping, silently: an idle user stays in the room."""
    server = await open_test_server(nursery)
    watcher = await join(nursery, server, "watcher")
    keys, lines = trio.open_memory_channel[str](1)
    console = make_console(file=io.StringIO(), record=True, width=120)
    view = ChatView(console, "idle", errors=make_console(file=io.StringIO(), record=True))
    ended: list[SessionEnd] = []
    done = trio.Event()

    async def run() -> None:
        stream = connect_stream(nursery, server)
        ended.append(await chat_session(stream, "idle", ChannelLineSource(lines), view))
        done.set()

    nursery.start_soon(run)
    await watcher.expect("*** idle joined (2 online)")
    await trio.sleep(10 * 60)
    assert server.state.names() == ["idle", "watcher"]
    assert "ping" not in console.export_text(clear=False)
    await watcher.quiet()
    await keys.aclose()  # end of input: the client quits
    await watcher.expect("*** idle left (1 online)")
    with trio.fail_after(5):
        await done.wait()
    assert ended == [SessionEnd.QUIT]


async def test_liveness_client_pong_never_interleaves_with_a_request(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A ping that arrives while a request is being sent is answered by that request alone."""
    from triochat.client.connection import Connection

    client_side, server_side = trio.testing.lockstep_stream_pair()  # every send waits
    conn = Connection(client_side)
    nursery.start_soon(conn.send, {"type": "say", "text": "x" * 100})
    await trio.testing.wait_all_tasks_blocked()
    await conn.pong()  # the say is still being sent: no second writer on the stream
    received = await server_side.receive_some()
    assert received == b'{"type": "say", "text": "' + b"x" * 100 + b'"}\n'
