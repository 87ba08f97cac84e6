"""The client session against a real server object over memory streams, and its inputs.

No sockets here: every client talks to the suite's in-memory server (the ``server`` and
``start_server`` fixtures) over ``triochat.testing.connect_stream``; the other members
are triochat.testing ChatClients; servers that misbehave are scripted with
``FakeServer`` on the same line peer. The "user" types through a memory channel; what
the user would see is recorded by a rich Console. Races are sequenced with events
(``RecordingView.wait_for``), never sleeps; time is virtual (``autojump_clock``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from datetime import UTC
from typing import Any

import pytest
import trio
import trio.testing

from tests.conftest import StartServer
from triochat.client.linesource import (
    CLEAR_LINE,
    ChannelLineSource,
    LineEditor,
    PipeLineSource,
    Terminal,
    lines_from,
)
from triochat.client.reconnect import STABLE_CONNECTION, Backoff
from triochat.client.session import Connection, SessionEnd, chat_session
from triochat.client.view import ChatView, make_console
from triochat.core.events import Away, ErrorEvent, Event, Private, Said, Welcome, WhoList
from triochat.core.jsonwire import encode_event, object_event
from triochat.server import ChatServer
from triochat.testing import ChatClient, Peer, connect_stream, open_client

TIME = re.compile(r"^(\d\d:\d\d|--:--) ", re.MULTILINE)


class RecordingView(ChatView):
    """A ChatView on recording consoles that can be awaited until some text appears."""

    def __init__(self, me: str) -> None:
        super().__init__(
            make_console(file=io.StringIO(), record=True, width=120),
            me,
            errors=make_console(file=io.StringIO(), record=True, width=120),
            tz=UTC,
        )
        self._changed = trio.Event()

    def show(self, event: Event, tag: str = "", *, quiet: bool = False) -> None:
        super().show(event, tag, quiet=quiet)
        self._changed.set()

    def notice(self, text: str, style: str = "") -> None:
        super().notice(text, style)
        self._changed.set()

    def screen(self) -> str:
        """What the user has seen so far, without the HH:MM stamps."""
        return TIME.sub("", self.console.export_text(clear=False))

    def errors_text(self) -> str:
        return self.errors.export_text(clear=False)

    async def wait_for(self, text: str) -> None:
        with trio.fail_after(30):
            while text not in self.screen():
                self._changed = trio.Event()
                await self._changed.wait()


async def member(nursery: trio.Nursery, server: ChatServer, name: str) -> ChatClient:
    """Another member of the room in JSON mode (a bot's-eye view), welcomed as ``name``."""
    client = await open_client(nursery, server, name)
    assert client.welcome["name"] == name, client.welcome
    return client


class Keyboard:
    """The user's typing: a line source the test feeds one line at a time."""

    def __init__(self) -> None:
        self.send, receive = trio.open_memory_channel[str](100)
        self.source = ChannelLineSource(receive)

    async def type(self, line: str) -> None:
        await self.send.send(line)


async def start_client(
    nursery: trio.Nursery, stream: trio.abc.Stream, name: str, lines: Any, **options: Any
) -> tuple[RecordingView, trio.MemoryReceiveChannel[SessionEnd]]:
    """Run a session in the background; its ending arrives on the returned channel."""
    view = RecordingView(name)
    send, receive = trio.open_memory_channel[SessionEnd](1)

    async def run() -> None:
        end = await chat_session(stream, name, lines, view, peer="test:1", **options)
        send.send_nowait(end)

    nursery.start_soon(run)
    await view.wait_for("welcome")
    return view, receive


async def test_session_join_welcome_and_others_joining(
    nursery: trio.Nursery, server: ChatServer, autojump_clock: Any
) -> None:
    """The user sees the welcome, then other people joining, as dim notices."""
    keys = Keyboard()
    view, _ = await start_client(nursery, connect_stream(nursery, server), "alice", keys.source)
    assert "welcome, alice! 1 online" in view.screen()
    await member(nursery, server, "dave")
    await view.wait_for("→ dave joined (2 online)")


async def test_session_say_me_who_in_server_order(
    nursery: trio.Nursery, server: ChatServer, autojump_clock: Any
) -> None:
    """Typed text, /me and /who reach the server as JSON and come back in its order."""
    dave = await member(nursery, server, "dave")
    keys = Keyboard()
    view, _ = await start_client(nursery, connect_stream(nursery, server), "alice", keys.source)
    await keys.type("hello [bold]world[/bold] :smile:")
    said = await dave.expect("say", from_="alice")
    assert said["text"] == "hello [bold]world[/bold] :smile:"
    await view.wait_for("<alice> hello [bold]world[/bold] :smile:")
    await keys.type("/me waves")
    await dave.expect("me", text="waves")
    await view.wait_for("* alice waves")
    await keys.type("//etc/passwd is a path")
    await dave.expect("say", text="/etc/passwd is a path")
    await keys.type("/who")
    await view.wait_for("online (2): alice, dave")
    await dave.send(type="say", text="hi alice")
    await view.wait_for("<dave> hi alice")


async def test_session_private_messages(
    nursery: trio.Nursery, server: ChatServer, autojump_clock: Any
) -> None:
    """/msg sends privately; private messages both ways are shown as private."""
    dave = await member(nursery, server, "dave")
    keys = Keyboard()
    view, _ = await start_client(nursery, connect_stream(nursery, server), "alice", keys.source)
    await keys.type("/msg dave lunch?")
    await dave.expect("msg", to="dave", text="lunch?")
    await view.wait_for("you → *dave*: lunch?")
    await dave.send(type="msg", to="alice", text="sure")
    await view.wait_for("*dave* → you: sure")
    await keys.type("/msg zed hello")
    await view.wait_for("! no such user")


async def test_session_rename_follows_the_new_name(
    nursery: trio.Nursery, server: ChatServer, autojump_clock: Any
) -> None:
    """/nick renames; the view then treats the new name as the user's own."""
    dave = await member(nursery, server, "dave")
    keys = Keyboard()
    view, _ = await start_client(nursery, connect_stream(nursery, server), "alice", keys.source)
    await keys.type("/nick ally")
    await dave.expect("nick", old="alice", new="ally")
    await view.wait_for("you are now known as ally")
    assert view.me == "ally"
    await dave.send(type="nick", name="david")
    await view.wait_for("dave is now known as david")


async def test_session_others_leaving_shown(
    nursery: trio.Nursery, server: ChatServer, autojump_clock: Any
) -> None:
    """When someone quits, the user sees them leave with the new count."""
    dave = await member(nursery, server, "dave")
    keys = Keyboard()
    view, _ = await start_client(nursery, connect_stream(nursery, server), "alice", keys.source)
    await dave.send(type="quit")
    await view.wait_for("← dave left (1 online)")


async def test_session_history_is_marked_earlier(
    nursery: trio.Nursery, server: ChatServer, autojump_clock: Any
) -> None:
    """Chat from before the user joined is replayed under an "earlier" header."""
    dave = await member(nursery, server, "dave")
    await dave.send(type="say", text="before you came")
    await dave.send(type="me", text="yawns")
    await dave.expect("me")
    keys = Keyboard()
    view, _ = await start_client(nursery, connect_stream(nursery, server), "alice", keys.source)
    await view.wait_for("* dave yawns")
    await dave.send(type="say", text="now live")
    await view.wait_for("now live")
    lines = view.screen().splitlines()
    start = lines.index("── earlier messages ──")
    assert lines[start + 1 : start + 5] == [
        "<dave> before you came",
        "* dave yawns",
        "── now ──",
        "<dave> now live",
    ]


async def test_session_end_of_input_waits_for_the_server(
    nursery: trio.Nursery, server: ChatServer, autojump_clock: Any
) -> None:
    """At EOF every line is sent, and the session ends (exit 0) only after the server has them."""
    dave = await member(nursery, server, "dave")
    lines = [f"build {n} passed" for n in range(30)]  # above the burst: rate limited
    view = RecordingView("ci")
    end = await chat_session(connect_stream(nursery, server), "ci", lines_from(lines), view)
    assert end is SessionEnd.QUIT
    assert end.exit_code == 0
    assert "<ci> build 29 passed" in view.screen()  # the server's echo arrived first
    await dave.expect("leave", name="ci", reason="quit")
    assert [e["text"] for e in dave.events if e["type"] == "say"] == lines
    assert view.errors_text() == ""


@pytest.mark.parametrize("word", ["/quit", "exit", "/QUIT", " quit "])
async def test_session_quit_words_leave(
    nursery: trio.Nursery, server: ChatServer, autojump_clock: Any, word: str
) -> None:
    """/quit and exit leave cleanly with exit 0; later input is not sent."""
    dave = await member(nursery, server, "dave")
    view = RecordingView("alice")
    end = await chat_session(
        connect_stream(nursery, server), "alice", lines_from([word, "not sent"]), view
    )
    assert end is SessionEnd.QUIT
    await dave.expect("leave", name="alice", reason="quit")
    assert not any(e.get("text") == "not sent" for e in dave.events)


async def test_session_local_usage_error_keeps_going(
    nursery: trio.Nursery, server: ChatServer, autojump_clock: Any
) -> None:
    """A malformed command gets a red usage line locally; the session carries on."""
    dave = await member(nursery, server, "dave")
    keys = Keyboard()
    view, _ = await start_client(nursery, connect_stream(nursery, server), "alice", keys.source)
    await keys.type("/msg dave")
    await view.wait_for("! usage: /msg NAME TEXT")
    await keys.type("/frobnicate")
    await view.wait_for("! unknown command /frobnicate")
    await keys.type("still here")
    await dave.expect("say", text="still here")


async def test_session_help_lists_commands(
    nursery: trio.Nursery, server: ChatServer, autojump_clock: Any
) -> None:
    """/help lists the commands, including the client's own ways to leave."""
    keys = Keyboard()
    view, _ = await start_client(nursery, connect_stream(nursery, server), "alice", keys.source)
    await keys.type("/help")
    await view.wait_for("exit, Ctrl-D")
    for command in ("/me ACTION", "/msg NAME TEXT", "/nick NAME", "/who", "/quit"):
        assert command in view.screen()


@pytest.mark.parametrize(
    ("name", "reason"),
    [("Dave", "taken"), ("bad name!", "may contain only"), ("x" * 25, "at most 24")],
)
async def test_session_refused_name_shows_server_reason(
    nursery: trio.Nursery, server: ChatServer, autojump_clock: Any, name: str, reason: str
) -> None:
    """A taken or invalid name ends the session non-zero with the server's own reason."""
    await member(nursery, server, "dave")
    view = RecordingView(name)
    end = await chat_session(
        connect_stream(nursery, server), name, lines_from(["never sent"]), view
    )
    assert end is SessionEnd.REFUSED
    assert end.exit_code == 1
    assert reason in view.errors_text()
    assert "--name" in view.errors_text()


async def test_session_server_full_is_explained(
    nursery: trio.Nursery, start_server: StartServer, autojump_clock: Any
) -> None:
    """A plain-text refusal (server full) is shown, not mistaken for a protocol error."""
    server = await start_server(max_clients=1)
    await member(nursery, server, "dave")
    view = RecordingView("alice")
    end = await chat_session(connect_stream(nursery, server), "alice", lines_from([]), view)
    assert end is SessionEnd.REFUSED
    assert "server full" in view.errors_text()


async def test_session_server_shutdown(
    nursery: trio.Nursery, server: ChatServer, autojump_clock: Any
) -> None:
    """A server shutdown is shown in the chat and ends the session with exit 1."""
    keys = Keyboard()
    view, ended = await start_client(nursery, connect_stream(nursery, server), "alice", keys.source)
    await server.shutdown()
    end = await ended.receive()
    assert end is SessionEnd.SHUTDOWN
    assert end.exit_code == 1
    assert "! server is shutting down" in view.screen()
    assert "test:1 shut down" in view.errors_text()


async def _pump(source: trio.abc.Stream, sink: trio.abc.Stream) -> None:
    while data := await source.receive_some(65536):
        await sink.send_all(data)


async def test_session_lost_connection(
    nursery: trio.Nursery, server: ChatServer, autojump_clock: Any
) -> None:
    """When the connection drops without a shutdown notice, the user is told; exit 1."""
    client, near = trio.testing.memory_stream_pair()
    far = connect_stream(nursery, server)
    keys = Keyboard()
    async with trio.open_nursery() as wire:
        wire.start_soon(_pump, near, far)
        wire.start_soon(_pump, far, near)
        view, ended = await start_client(nursery, client, "alice", keys.source)
        wire.cancel_scope.cancel()
    await near.aclose()  # the cable is cut: the client sees the stream end
    end = await ended.receive()
    assert end is SessionEnd.LOST
    assert end.exit_code == 1
    assert "lost the connection to test:1" in view.errors_text()
    await far.aclose()


class FakeServer:
    """The server's side of a memory stream, played by the test, for misbehaving servers.

    Kept beside the real server for what that one cannot be made to do: never welcome,
    send odd lines, not close after a quit, refuse a reconnect for good, or answer a
    resume with a replay chosen event by event while the test checks each request the
    client sends. The client's requests are read with the suite's one line peer,
    triochat.testing.Peer.
    """

    def __init__(self) -> None:
        self.client, server_side = trio.testing.memory_stream_pair()
        self.peer = Peer(server_side)

    async def send(self, event: Event | None = None, /, **fields: object) -> None:
        """Send one event in JSON mode, encoded as the server would.

        ``fields`` are the event's JSON fields instead (read through the schema first,
        so a fake event is always a well-formed one).
        """
        await self.peer.send(encode_event(event if event is not None else object_event(fields)))

    async def request(self) -> dict[str, Any]:
        """The next request the client sent (bounded wait): a JSON object, not an event."""
        request = json.loads(await self.peer.line())
        assert isinstance(request, dict), request
        return request

    async def drain(self) -> None:
        """Read and ignore what the client sends, until either side closes."""
        with contextlib.suppress(trio.ClosedResourceError):  # the test closed its side
            while await self.peer.next_line() is not None:
                pass

    async def close(self) -> None:
        """Close the server's side: the client sees its connection end."""
        await self.peer.stream.aclose()


async def test_session_quit_unconfirmed_times_out(
    nursery: trio.Nursery, autojump_clock: Any
) -> None:
    """If the server never closes after quit, the client gives up after the idle timeout."""
    fake = FakeServer()
    await fake.send(Welcome(0, "alice", 1, "#lobby"))
    nursery.start_soon(fake.drain)
    view = RecordingView("alice")
    start = trio.current_time()
    end = await chat_session(fake.client, "alice", lines_from(["x"]), view, quit_idle_timeout=10)
    assert end is SessionEnd.UNCONFIRMED
    assert end.exit_code == 1
    assert trio.current_time() - start == pytest.approx(10)
    assert "may not have been delivered" in view.errors_text()


async def test_session_quit_waits_while_server_still_talks(
    nursery: trio.Nursery, autojump_clock: Any
) -> None:
    """The quit timeout counts silence, so a slowly digesting server is waited for."""
    fake = FakeServer()
    await fake.send(Welcome(0, "ci", 1, "#lobby"))
    nursery.start_soon(fake.drain)

    async def slow_echoes() -> None:
        for n in range(6):
            await trio.sleep(8)  # each gap is under the 10 s idle timeout
            await fake.send(Said(0, "#lobby", n, "ci", f"line {n}"))
        await fake.close()

    nursery.start_soon(slow_echoes)
    view = RecordingView("ci")
    end = await chat_session(fake.client, "ci", lines_from(["x"]), view, quit_idle_timeout=10)
    assert end is SessionEnd.QUIT
    assert "<ci> line 5" in view.screen()


class SlowToReturnStream(trio.abc.Stream):
    """A client stream whose send_all returns only after everything else has run."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)
        await trio.testing.wait_all_tasks_blocked()

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_session_quit_confirmed_before_send_returns(
    nursery: trio.Nursery, autojump_clock: Any
) -> None:
    """A server that closes before our quit's send_all returns is still a clean quit (exit 0)."""
    fake = FakeServer()
    await fake.send(Welcome(0, "bot", 1, "#lobby"))

    async def close_on_quit() -> None:
        while (await fake.request())["type"] != "quit":
            pass
        await fake.close()

    nursery.start_soon(close_on_quit)
    view = RecordingView("bot")
    stream = SlowToReturnStream(fake.client)
    end = await chat_session(stream, "bot", lines_from(["/who"]), view)
    assert end is SessionEnd.QUIT
    assert view.errors_text() == ""


async def test_session_no_welcome(nursery: trio.Nursery, autojump_clock: Any) -> None:
    """Connecting to something that never answers ends with a clear message, not a hang."""
    fake = FakeServer()
    nursery.start_soon(fake.drain)
    view = RecordingView("alice")
    end = await chat_session(fake.client, "alice", lines_from([]), view, welcome_timeout=5)
    assert end is SessionEnd.LOST
    assert "no welcome from the server within 5s" in view.errors_text()


async def test_session_non_json_and_odd_lines_are_shown_safely(
    nursery: trio.Nursery, autojump_clock: Any
) -> None:
    """Non-JSON lines, unknown event types and bad JSON mid-session neither crash nor inject."""
    fake = FakeServer()
    await fake.send(Welcome(0, "alice", 1, "#lobby"))
    await fake.peer.send(b"* plain \x1b[2Jnotice\n[1, 2]\n\n")
    await fake.peer.send('{"type": "from-the-future", "ts": 0}')
    await fake.send(Said(0, "#lobby", 1, "bob", "after"))
    await fake.peer.send('{"type": "say", "ts": 0, "id": 2, "from": "bob", "text": "\\u001b[2J"}')
    await fake.peer.send(
        b'{"type": "say", "ts": 0, "room": "#lobby", "id": 3, "from": "bob", "text": "tail"}'
    )
    await fake.close()
    view = RecordingView("alice")
    end = await chat_session(fake.client, "alice", Keyboard().source, view)
    assert end is SessionEnd.LOST
    screen = view.screen()
    assert "* plain notice" in screen
    assert "[1, 2]" in screen
    assert "<bob> after" in screen
    assert "cannot read (say: missing field 'room')" in screen  # a malformed event: said so
    assert "future" not in screen  # an unknown type is a newer server's: skipped
    assert "<bob> tail" in screen
    assert "\x1b" not in screen


async def test_connection_discards_oversized_event() -> None:
    """A server line over the client's limit is reported once, and the next line works."""
    client, server = trio.testing.memory_stream_pair()
    conn = Connection(client)
    await server.send_all(
        b'{"type": "say", "text": "'
        + b"x" * (2 << 20)
        + b'"}\n{"type": "who", "room": "#a", "names": [], "ts": 1}\n'
    )
    first = await conn.receive()
    assert isinstance(first, ErrorEvent)
    assert first.code == "line-too-long"
    assert await conn.receive() == WhoList(1.0, "#a", ())


# ---------------------------------------------------------------------------------------
# Reconnecting


class Wire:
    """A cable between one client and the server that the test can cut."""

    def __init__(self, nursery: trio.Nursery, server: ChatServer) -> None:
        self.client, self._near = trio.testing.memory_stream_pair()
        self.far = connect_stream(nursery, server)
        self._scope = trio.CancelScope()
        nursery.start_soon(self._carry)

    async def _carry(self) -> None:
        with self._scope:
            async with trio.open_nursery() as pumps:
                pumps.start_soon(_pump, self._near, self.far)
                pumps.start_soon(_pump, self.far, self._near)

    async def cut(self, *, server_notices: bool = True) -> None:
        """The client sees its stream end; the server too, unless ``server_notices`` is False."""
        self._scope.cancel()
        await self._near.aclose()
        if server_notices:
            await self.far.aclose()
        await trio.testing.wait_all_tasks_blocked()


class Dialer:
    """The client's way back to a server: records when it dials, and can be held or failed."""

    def __init__(self, nursery: trio.Nursery, server: ChatServer) -> None:
        self.nursery = nursery
        self.server = server
        self.times: list[float] = []
        self.gate = trio.Event()  # dialling waits for this, so the test says when
        self.fail_first = 0  # this many dials fail with "connection refused"
        self.before: list[Any] = []  # callables run (and awaited) before each dial
        self._dialled = trio.Event()

    async def wait_for_dials(self, count: int) -> None:
        """Return once the client has dialled ``count`` times (bounded)."""
        with trio.fail_after(300):
            while len(self.times) < count:
                self._dialled = trio.Event()
                await self._dialled.wait()

    async def __call__(self) -> trio.abc.Stream:
        self.times.append(trio.current_time())
        self._dialled.set()
        await self.gate.wait()
        if self.before:
            await self.before.pop(0)()
        if len(self.times) <= self.fail_first:
            raise ConnectionRefusedError(111, "Connection refused")
        return connect_stream(self.nursery, self.server)


def no_jitter() -> Backoff:
    return Backoff(lambda: 0.0)


async def test_session_reconnects_and_shows_only_missed_messages(
    nursery: trio.Nursery, server: ChatServer, autojump_clock: Any
) -> None:
    """After a lost connection the client rejoins as itself and shows what it missed, once."""
    dave = await member(nursery, server, "dave")
    wire, dial, keys = Wire(nursery, server), Dialer(nursery, server), Keyboard()
    view, _ = await start_client(
        nursery, wire.client, "alice", keys.source, reconnect=dial, backoff=no_jitter()
    )
    await dave.send(type="say", text="one")
    await view.wait_for("<dave> one")
    await wire.cut()
    await dave.expect("leave", name="alice")
    await dave.send(type="say", text="two")
    await dave.send(type="me", text="sighs")
    await dave.expect("me", text="sighs")
    await keys.type("anyone?")
    await view.wait_for("not connected; not sent: anyone?")
    dial.gate.set()
    await view.wait_for("reconnected; 2 missed messages")
    await dave.expect("join", name="alice")
    await keys.type("back")
    await dave.expect("say", text="back")
    screen = view.screen()
    assert "connection lost; reconnecting in 1 s" in screen
    assert screen.count("<dave> one") == 1
    assert screen.index("<dave> two") < screen.index("* dave sighs") < screen.index("reconnected")
    assert not any(e.get("text") == "anyone?" for e in dave.events)
    assert view.errors_text() == ""


async def test_session_reconnect_waits_until_the_server_lets_go_of_the_name(
    nursery: trio.Nursery, server: ChatServer, autojump_clock: Any
) -> None:
    """While the server still holds the old connection, "name taken" means try again."""
    wire, dial = Wire(nursery, server), Dialer(nursery, server)
    dial.gate.set()
    view, _ = await start_client(
        nursery, wire.client, "alice", Keyboard().source, reconnect=dial, backoff=no_jitter()
    )

    async def server_notices() -> None:
        await wire.far.aclose()
        await trio.testing.wait_all_tasks_blocked()

    dial.before = [trio.lowlevel.checkpoint, server_notices]
    await wire.cut(server_notices=False)
    await view.wait_for("reconnected; 0 missed messages")
    assert "test:1 still has alice; reconnecting in 1 s" in view.screen()
    assert len(dial.times) == 2
    assert view.errors_text() == ""


async def test_session_reconnects_across_a_server_restart(
    nursery: trio.Nursery, server: ChatServer, start_server: StartServer, autojump_clock: Any
) -> None:
    """A shutdown is a reason to reconnect; the new server's ids starting at 1 still show."""
    dave = await member(nursery, server, "dave")
    keys = Keyboard()
    restarted = await start_server()
    dial = Dialer(nursery, restarted)
    dial.gate.set()
    view, ended = await start_client(
        nursery,
        connect_stream(nursery, server),
        "alice",
        keys.source,
        reconnect=dial,
        backoff=no_jitter(),
    )
    for n in range(3):
        await dave.send(type="say", text=f"old {n}")
    await view.wait_for("<dave> old 2")
    await server.shutdown()
    await view.wait_for("reconnected; 0 missed messages")
    erin = await member(nursery, restarted, "erin")
    await erin.send(type="say", text="fresh start")
    await view.wait_for("<erin> fresh start")
    assert "! server is shutting down" in view.screen()
    await keys.send.aclose()
    assert await ended.receive() is SessionEnd.QUIT


async def test_session_redial_follows_the_backoff_schedule(
    nursery: trio.Nursery, server: ChatServer, autojump_clock: Any
) -> None:
    """Failed dials are spaced 0.5, 1, 2, ... 30, 30 s apart; /quit then ends at once."""
    wire, dial, keys = Wire(nursery, server), Dialer(nursery, server), Keyboard()
    dial.gate.set()
    dial.fail_first = 1000
    view, ended = await start_client(
        nursery, wire.client, "alice", keys.source, reconnect=dial, backoff=no_jitter()
    )
    await wire.cut()
    lost = trio.current_time()
    await dial.wait_for_dials(9)
    gaps = [b - a for a, b in zip([lost, *dial.times], dial.times, strict=False)]
    assert gaps == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    for seconds in (2, 4, 8, 16, 30):
        assert f"connection refused; reconnecting in {seconds} s" in view.screen()
    quit_at = trio.current_time()
    await keys.type("/quit")
    assert await ended.receive() is SessionEnd.QUIT
    assert trio.current_time() == quit_at


async def test_session_reconnect_countdown_lives_in_the_prompt(
    nursery: trio.Nursery, server: ChatServer, autojump_clock: Any
) -> None:
    """On a terminal the countdown updates the prompt each second instead of adding lines."""
    wire, dial = Wire(nursery, server), Dialer(nursery, server)
    dial.gate.set()
    dial.fail_first = 1
    view, _ = await start_client(
        nursery, wire.client, "alice", Keyboard().source, reconnect=dial, backoff=no_jitter()
    )
    prompts: list[str] = []
    view.on_prompt = prompts.append
    await wire.cut()
    await view.wait_for("reconnected")
    assert prompts == [
        "(connection lost; reconnecting in 1 s) alice #lobby> ",
        "(reconnecting ...) alice #lobby> ",
        "(connection refused; reconnecting in 1 s) alice #lobby> ",
        "(reconnecting ...) alice #lobby> ",
        "alice #lobby> ",
    ]
    assert "reconnecting in" not in view.screen()  # the prompt said it
    assert "lost the connection to test:1" in view.screen()


async def test_session_stable_connection_starts_the_schedule_over(
    nursery: trio.Nursery, server: ChatServer, autojump_clock: Any
) -> None:
    """A connection that lasted is news when lost: the first wait is half a second again."""
    backoff = no_jitter()
    backoff.attempt = 5
    wire, dial = Wire(nursery, server), Dialer(nursery, server)
    dial.gate.set()
    view, _ = await start_client(
        nursery, wire.client, "alice", Keyboard().source, reconnect=dial, backoff=backoff
    )
    autojump_clock.jump(STABLE_CONNECTION)
    await wire.cut()
    await view.wait_for("reconnected")
    assert "reconnecting in 1 s" in view.screen()
    assert backoff.attempt == 1


async def test_session_reconnect_refused_for_good(
    nursery: trio.Nursery, autojump_clock: Any
) -> None:
    """A hello error other than "name taken" on reconnect ends the session with the reason."""
    first, second = FakeServer(), FakeServer()
    await first.send(type="welcome", ts=0, name="alice", online=1, room="#lobby", text="hi")
    await second.send(type="error", ts=0, code="bad-name", text="names changed")
    dialled = iter([second.client])

    async def dial() -> trio.abc.Stream:
        return next(dialled)

    nursery.start_soon(second.drain)
    view = RecordingView("alice")
    session = chat_session(
        first.client, "alice", Keyboard().source, view, reconnect=dial, backoff=no_jitter()
    )
    await first.close()
    assert await session is SessionEnd.REFUSED
    assert "cannot rejoin as 'alice': names changed" in view.errors_text()


async def test_session_resume_asks_for_what_was_missed_in_each_room(
    nursery: trio.Nursery, autojump_clock: Any
) -> None:
    """The hello names the last id shown per room; the replay is shown once, in order, tagged."""
    first, second = FakeServer(), FakeServer()
    dialled = iter([second.client])

    async def dial() -> trio.abc.Stream:
        return next(dialled)

    keys = Keyboard()
    await first.send(type="welcome", ts=0, name="alice", online=2, room="#lobby", text="welcome")
    view, ended = await start_client(
        nursery, first.client, "alice", keys.source, reconnect=dial, backoff=no_jitter()
    )
    assert await first.request() == {"type": "hello", "name": "alice"}
    await first.send(type="say", ts=0, room="#lobby", id=41, **{"from": "bob"}, text="lobby 41")
    await keys.type("/join Dev")
    assert await first.request() == {"type": "join", "room": "#dev"}
    await first.send(type="join", ts=0, room="#dev", name="alice", online=1)
    await first.send(type="current", ts=0, room="#dev")
    await first.send(type="say", ts=0, room="#dev", id=7, **{"from": "bob"}, text="dev 7")
    await view.wait_for("<bob> dev 7")
    await first.close()

    hello = await second.request()
    assert hello == {"type": "hello", "name": "alice", "since": {"#lobby": 41, "#dev": 7}}
    await second.send(type="welcome", ts=0, name="alice", online=2, room="#lobby", text="hi")
    for n in (41, 42):
        await second.send(
            type="say", ts=0, room="#lobby", id=n, history=True, **{"from": "bob"}, text=f"L{n}"
        )
    await second.send(type="join", ts=0, room="#dev", name="alice", online=1)
    await second.send(type="current", ts=0, room="#dev")
    await second.send(type="topic", ts=0, room="#dev", topic="ship it", by="bob", changed=False)
    await second.send(type="gap", ts=0, room="#dev", skipped=5)
    await second.send(
        type="me", ts=0, room="#dev", id=13, history=True, **{"from": "bob"}, text="D13"
    )
    await second.send(type="current", ts=0, room="#lobby")
    assert await second.request() == {"type": "join", "room": "#dev"}
    assert await second.request() == {"type": "who", "room": "#dev"}
    await second.send(type="current", ts=0, room="#dev")
    await second.send(type="who", ts=0, room="#dev", names=["alice", "bob"], online=2)
    await view.wait_for("reconnected; 2 missed messages (5 older ones were not replayed")
    screen = view.screen()
    assert "L41" not in screen
    assert screen.index("#lobby <bob> L42") < screen.index("topic: ship it (set by bob)")
    assert screen.index("topic: ship it") < screen.index("* bob D13") < screen.index("reconnected")
    assert "online (2)" not in screen  # the marker's answer is not shown
    await keys.type("still here")
    assert await second.request() == {"type": "say", "text": "still here", "room": "#dev"}
    await keys.send.aclose()
    assert await second.request() == {"type": "quit"}
    await second.close()
    assert await ended.receive() is SessionEnd.QUIT


# ---------------------------------------------------------------------------------------
# Rooms


class PromptView(RecordingView):
    """A RecordingView with a prompt line, as on a terminal: remembers the last prompt."""

    def __init__(self, me: str) -> None:
        super().__init__(me)
        self.prompt = ""
        self.on_prompt = self._set

    def _set(self, prompt: str) -> None:
        self.prompt = prompt
        self._changed.set()

    async def wait_for_prompt(self, prompt: str) -> None:
        with trio.fail_after(30):
            while self.prompt != prompt:
                self._changed = trio.Event()
                await self._changed.wait()


async def start_prompt_client(
    nursery: trio.Nursery, server: ChatServer, name: str, keys: Keyboard, **options: Any
) -> tuple[PromptView, trio.MemoryReceiveChannel[SessionEnd]]:
    """Like start_client, with a prompt line to check."""
    view = PromptView(name)
    send, receive = trio.open_memory_channel[SessionEnd](1)
    stream = options.pop("stream", None) or connect_stream(nursery, server)

    async def run() -> None:
        end = await chat_session(stream, name, keys.source, view, peer="test:1", **options)
        send.send_nowait(end)

    nursery.start_soon(run)
    await view.wait_for("welcome")
    return view, receive


async def test_session_rooms_tag_other_rooms_and_count_unread(
    nursery: trio.Nursery, server: ChatServer, autojump_clock: Any
) -> None:
    """Lines from a room that is not current are tagged; the prompt counts them until /join."""
    dave = await member(nursery, server, "dave")
    keys = Keyboard()
    view, _ = await start_prompt_client(nursery, server, "alice", keys)
    assert view.prompt == "alice #lobby> "
    await keys.type("/join Dev")
    await view.wait_for("→ you joined #dev (1 online)")
    await view.wait_for_prompt("alice #dev> ")
    await dave.send(type="say", text="lunch?")
    await view.wait_for("#lobby <dave> lunch?")
    await view.wait_for_prompt("alice #dev [#lobby 1]> ")
    await keys.type("in a minute")
    await view.wait_for("<alice> in a minute")  # in #dev, the current room: no tag
    await keys.type("/join #lobby")
    await view.wait_for("now in #lobby")
    await view.wait_for_prompt("alice #lobby> ")
    await dave.send(type="who")
    await dave.expect("who")
    assert not any(e.get("text") == "in a minute" for e in dave.events)


async def test_session_rooms_typed_text_goes_to_the_room_just_joined(
    nursery: trio.Nursery, server: ChatServer, autojump_clock: Any
) -> None:
    """A line piped right after /join lands in the new room, not where the client was."""
    dave = await member(nursery, server, "dave")
    await dave.join("#dev")
    view = RecordingView("ci")
    end = await chat_session(
        connect_stream(nursery, server), "ci", lines_from(["/join #dev", "build ok"]), view
    )
    assert end is SessionEnd.QUIT
    said = await dave.expect("say", from_="ci")
    assert (said["room"], said["text"]) == ("#dev", "build ok")


async def test_session_rooms_topic_rooms_who_history_part(
    nursery: trio.Nursery, server: ChatServer, autojump_clock: Any
) -> None:
    """/topic, /rooms, /who, /history (paging back) and /part, as a person sees them."""
    dave = await member(nursery, server, "dave")
    await dave.join("#dev")
    for n in range(1, 31):
        await dave.send(type="say", room="#dev", text=f"old {n}")
    await dave.expect("say", text="old 30")
    keys = Keyboard()
    view, _ = await start_prompt_client(nursery, server, "alice", keys)
    await keys.type("/join #dev")
    await view.wait_for("<dave> old 30")  # the replay on joining: the last 20
    assert "old 10\n" not in view.screen()
    await keys.type("/topic ship it friday")
    await view.wait_for("alice set the topic: ship it friday")
    await keys.type("/rooms")
    await view.wait_for("#dev    2 online  ship it friday")  # aligned under "#lobby"
    await keys.type("/who")
    await view.wait_for("online (2): alice, dave")
    await keys.type("/history 3")  # the room's last 3, though the replay showed them
    await view.wait_for("── end of /history (more: /history more) ──")
    screen = view.screen()
    reply = screen[screen.rindex("── earlier messages ──") :]
    assert reply.index("<dave> old 28") < reply.index("<dave> old 30") < reply.index("end of")
    assert "old 27\n" not in reply
    await keys.type("/history more")  # the 3 before those
    page = "<dave> old 25\n<dave> old 26\n<dave> old 27\n── end of /history (more: /history more)"
    await view.wait_for(page)
    await keys.type("/history 30")
    await view.wait_for("<dave> old 1\n")
    await view.wait_for("── end of /history ──")
    await keys.type("/part")
    await view.wait_for("← you left #dev")
    await view.wait_for_prompt("alice #lobby> ")
    await dave.expect("leave", room="#dev", name="alice", reason="part")


async def test_session_resume_across_a_lost_connection_keeps_rooms_and_place(
    nursery: trio.Nursery, server: ChatServer, autojump_clock: Any
) -> None:
    """After a cut the client is back in every room and the same current room; misses shown once."""
    dave = await member(nursery, server, "dave")
    await dave.join("#dev")
    keys, wire, dial = Keyboard(), Wire(nursery, server), Dialer(nursery, server)
    view, _ = await start_prompt_client(
        nursery, server, "alice", keys, stream=wire.client, reconnect=dial, backoff=no_jitter()
    )
    await keys.type("/join #ops")
    await view.wait_for("→ you joined #ops")
    await keys.type("/join #dev")
    await view.wait_for("→ you joined #dev")
    await dave.send(type="say", room="#dev", text="before the cut")
    await view.wait_for("<dave> before the cut")
    await wire.cut()
    await dave.expect("leave", room="#dev", name="alice")
    await dave.send(type="say", room="#dev", text="missed in dev")
    await dave.send(type="say", room="#lobby", text="missed in lobby")
    await dave.expect("say", text="missed in lobby")
    dial.gate.set()
    await view.wait_for("reconnected; 2 missed messages")
    await view.wait_for_prompt("alice #dev [#lobby 1]> ")
    screen = view.screen()
    assert screen.count("before the cut") == 1
    assert "<dave> missed in dev" in screen
    assert "#lobby <dave> missed in lobby" in screen
    await keys.type("/rooms")
    await view.wait_for("#ops    1 online")  # aligned under "#lobby"
    await keys.type("back")
    said = await dave.expect("say", from_="alice")
    assert (said["room"], said["text"]) == ("#dev", "back")


async def test_session_resume_beyond_the_servers_limit_says_how_many_were_skipped(
    nursery: trio.Nursery, start_server: StartServer, autojump_clock: Any
) -> None:
    """Missing more than the resume limit: the newest are replayed, the rest are counted."""
    server = await start_server(resume_limit=2)
    dave = await member(nursery, server, "dave")
    wire, dial = Wire(nursery, server), Dialer(nursery, server)
    view, _ = await start_client(
        nursery, wire.client, "alice", Keyboard().source, reconnect=dial, backoff=no_jitter()
    )
    await dave.send(type="say", text="seen")
    await view.wait_for("<dave> seen")
    await wire.cut()
    for n in range(1, 6):
        await dave.send(type="say", text=f"missed {n}")
    await dave.expect("say", text="missed 5")
    dial.gate.set()
    await view.wait_for(
        "reconnected; 2 missed messages (3 older ones were not replayed; /history shows them)"
    )
    screen = view.screen()
    assert "missed 3" not in screen
    assert screen.index("<dave> missed 4") < screen.index("<dave> missed 5")


# ---------------------------------------------------------------------------------------
# Line sources


async def test_lines_from_yields_lines_then_eof() -> None:
    """The injectable line source gives its lines in order, then None for EOF."""
    source = lines_from(["a", "b"])
    assert [await source.receive_line() for _ in range(3)] == ["a", "b", None]


async def test_pipe_line_source_reads_a_pipe_until_eof() -> None:
    """Piped stdin: lines without their endings (\\n or \\r\\n), bad UTF-8 replaced, then EOF."""
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"one\r\ntw\xffo\nlast without newline")
    os.close(write_fd)
    try:
        source = PipeLineSource(read_fd)
        got = [await source.receive_line() for _ in range(4)]
    finally:
        os.close(read_fd)
    assert got == ["one", "tw\ufffdo", "last without newline", None]


def test_line_editor_typing_and_editing_keys() -> None:
    """Insert, cursor movement (also split escape sequences), kills and Enter."""
    editor = LineEditor()
    assert editor.feed("helo") == []
    editor.feed("\x1b[")
    editor.feed("D")  # Left arrow, split across two reads
    editor.feed("l")
    assert (editor.text, editor.cursor) == ("hello", 4)
    editor.feed("\x05 world\x17")  # End, type, Ctrl-W kills the word
    assert editor.text == "hello "
    editor.feed("\x7f\x7f")  # Backspace twice
    assert editor.text == "hell"
    editor.feed("\x01\x0b")  # Home, Ctrl-K
    assert editor.text == ""
    editor.feed("abc\x1b[D\x15")  # Ctrl-U kills to the start
    assert (editor.text, editor.cursor) == ("c", 0)
    assert editor.feed("\x1b[3~x\r") == ["x"]  # Delete, type, Enter


def test_line_editor_ignores_controls_and_unknown_escapes() -> None:
    """Tabs, bells, function keys and Alt+key never end up in the sent line."""
    editor = LineEditor()
    assert editor.feed("a\t\x07\x1b[15~\x1bxb\x1bOPc\n") == ["abc"]


def test_line_editor_paste_and_eof() -> None:
    """A pasted block gives one line per newline; Ctrl-D ends input only on an empty line."""
    editor = LineEditor()
    assert editor.feed("one\ntwo\nthr") == ["one", "two"]
    assert editor.feed("\x04") == []  # not empty: Ctrl-D deletes (nothing at the end)
    assert editor.feed("\x01\x04\x04\x04\x04") == [None]
    assert editor.feed("ünï €\r") == ["ünï €"]


def test_line_editor_history() -> None:
    """Up and Down walk previous lines and come back to the line being typed."""
    editor = LineEditor()
    editor.feed("first\rsecond\rdraft")
    editor.feed("\x1b[A")
    assert editor.text == "second"
    editor.feed("\x1b[A\x1b[A")
    assert editor.text == "first"
    editor.feed("\x1b[B\x1b[B")
    assert editor.text == "draft"


def test_line_editor_render_scrolls_long_lines() -> None:
    """A line wider than the terminal scrolls sideways so one screen row always holds it."""
    editor = LineEditor()
    editor.feed("x" * 50 + "END")
    drawn = editor.render("me> ", 20)
    assert drawn.startswith(CLEAR_LINE + "me> ")
    visible = drawn[len(CLEAR_LINE) : drawn.rindex("\r")]
    assert visible.endswith("END")
    assert len(visible) < 20
    editor.feed("\x01")
    drawn = editor.render("me> ", 20)
    assert drawn.endswith("\r\x1b[4C")  # cursor right after the prompt


def test_line_editor_render_wide_characters() -> None:
    """Cursor placement counts terminal cells, so CJK and emoji do not misplace it."""
    editor = LineEditor()
    editor.feed("日本\x1b[D")
    assert editor.render("> ", 80) == f"{CLEAR_LINE}> 日本\r\x1b[4C"


async def test_terminal_output_does_not_clobber_typing() -> None:
    """On a terminal, incoming output is printed above the typed text, which is redrawn."""
    master, slave = os.openpty()
    out = os.fdopen(os.dup(slave), "w", encoding="utf-8")
    screen = bytearray()

    async def read_until(text: bytes) -> None:
        with trio.fail_after(10):
            while text not in screen:
                screen.extend(await trio.to_thread.run_sync(os.read, master, 4096))

    try:
        with Terminal("alice> ", infd=slave, out=out) as terminal:
            async with trio.open_nursery() as nursery:
                got: list[str | None] = []

                async def read_line() -> None:
                    got.append(await terminal.receive_line())

                nursery.start_soon(read_line)
                os.write(master, b"half-typ")
                await read_until(b"alice> half-typ")
                screen.clear()
                with terminal.above():
                    out.write("<bob> incoming\n")
                await read_until(b"alice> half-typ")
                assert bytes(screen).startswith(CLEAR_LINE.encode() + b"<bob> incoming\r\n")
                os.write(master, b"ed\r")
        assert got == ["half-typed"]
    finally:
        out.close()
        os.close(master)
        os.close(slave)


# ---------------------------------------------------------------------------------------
# /away


async def test_session_away_is_sent_and_its_events_shown(
    nursery: trio.Nursery, autojump_clock: Any
) -> None:
    """/away MESSAGE and /away go to the server as away requests; Away events and a /who
    with away members read as sentences (the server's side is played by the test)."""
    fake = FakeServer()
    await fake.send(Welcome(0, "alice", 2, "#lobby"))
    keys = Keyboard()
    view, _ = await start_client(nursery, fake.client, "alice", keys.source)
    assert (await fake.request())["type"] == "hello"
    await keys.type("/away at lunch")
    assert await fake.request() == {"type": "away", "text": "at lunch"}
    await fake.send(Away(0, "alice", "at lunch"))
    await view.wait_for("you are marked away: at lunch")
    await keys.type("/msg bob hi")
    assert await fake.request() == {"type": "msg", "to": "bob", "text": "hi"}
    await fake.send(Private(0, "alice", "bob", "hi"))
    await fake.send(Away(0, "bob", "in a meeting"))
    await view.wait_for("bob is away: in a meeting")
    await fake.send(WhoList(0, "#lobby", ("alice", "bob"), (("bob", "in a meeting"),)))
    await view.wait_for("online (2): alice, bob; away: bob (in a meeting)")
    await keys.type("/away")
    assert await fake.request() == {"type": "away", "text": ""}
    await fake.send(Away(0, "alice", ""))
    await view.wait_for("you are back (no longer away)")
