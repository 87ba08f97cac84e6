"""Test a bot or integration against a real triochat server: in memory, in virtual time.

The server is the real one (:class:`~triochat.server.ChatServer`, the same hub and
rooms as ``triochat server``) but its connections are trio's in-memory streams, so a
test needs no port, no subprocess and no sleeps, and runs in trio's virtual time
(``autojump_clock``). See docs/testing.md for a bot tested in a dozen lines.

* :func:`open_test_server` starts a server on a nursery (history kept in memory).
* :class:`ChatClient` is a scripted member in JSON mode: ``join``, ``say``,
  ``expect(type, **fields)``, ``quiet``. :func:`open_client` connects one.
* :func:`connect_stream` is the in-memory stand-in for ``trio.open_tcp_stream``: hand
  it to the bot under test.
* :class:`Peer` is the far end of one connection at the level of lines: send lines,
  read lines or JSON events, expect exact lines, check that nothing else arrived.
  :func:`connect`, :func:`join` and :func:`join_json` open one.
* The pytest plugin (installed with triochat; see docs/testing.md) adds the fixtures
  ``triochat_config``, ``triochat_server`` and ``triochat_client``.

Every wait is bounded by a timeout in trio's clock (so virtual under
``autojump_clock``); a failed expectation raises ``AssertionError`` saying what came
instead.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from typing import Any, Final, Literal, Protocol

import trio
import trio.testing

from triochat.config import ServerConfig
from triochat.core.framing import LineBuffer
from triochat.core.names import room_name
from triochat.server import ChatServer
from triochat.store import Store

__all__ = [
    "LINE_TIMEOUT",
    "ChatClient",
    "ClientFactory",
    "JsonEvent",
    "Peer",
    "connect",
    "connect_stream",
    "join",
    "join_json",
    "open_client",
    "open_test_server",
]

LINE_TIMEOUT: Final = 5.0  # seconds (virtual under autojump_clock) before a read fails a test
PEER_BUFFER_BYTES: Final = 1 << 20  # longest line a test reads: far past any server limit
SHOWN_EVENTS: Final = 20  # events listed in a failure message (the latest ones)

JsonEvent = dict[str, Any]
"""One JSON-mode event as received: ``{"type": "say", "from": "bob", ...}``."""


class Peer:
    """The far end of one connection, as a test sees it: send lines, read lines.

    Attributes:
        stream: the connection (a memory stream, or TCP to a server process).
        remote: the server runs outside this trio run (another process), so
            :meth:`quiet` cannot wait for it to settle and asks it a question instead.
        mode: the wire mode, as chosen by the first line sent (a JSON ``hello``
            selects ``"json"``).
        eof: the server has closed the connection.
    """

    def __init__(self, stream: trio.abc.Stream, *, remote: bool = False) -> None:
        """Wrap ``stream``; ``remote`` if the server is another process."""
        self.stream = stream
        self.remote = remote
        self.mode: Literal["plain", "json"] = "plain"
        self.eof = False
        self._buffer = LineBuffer(PEER_BUFFER_BYTES)
        self._sent = False

    async def send(self, line: str | bytes) -> None:
        """Send one line (a newline is added to ``str`` lines; bytes go as they are)."""
        data = line if isinstance(line, bytes) else (line + "\n").encode()
        self._sent = True
        await self.stream.send_all(data)

    async def send_json(self, **fields: object) -> None:
        """Send one JSON-mode object (a first ``hello`` puts this peer in JSON mode)."""
        if not self._sent and fields.get("type") == "hello":
            self.mode = "json"
        await self.send(json.dumps(fields))

    async def next_line(self) -> str | None:
        """The next line received, or None once the server has closed (no timeout)."""
        while True:
            line = self._buffer.next_line()
            if isinstance(line, bytes):
                return line.decode()
            assert line is None, "line longer than the test buffer"
            if self.eof:
                return None
            data = await self.stream.receive_some()
            if not data:
                self.eof = True
            self._buffer.feed(data)

    async def line(self, timeout: float = LINE_TIMEOUT) -> str:
        """The next line received (fails the test on EOF or after ``timeout``)."""
        with trio.move_on_after(timeout):
            line = await self.next_line()
            if line is None:
                raise AssertionError("connection closed while a line was expected")
            return line
        raise AssertionError(f"no line within {timeout:g} s")

    async def event(self, timeout: float = LINE_TIMEOUT) -> JsonEvent:
        """The next line, parsed as a JSON-mode event."""
        return _parse(await self.line(timeout))

    async def expect(self, *lines: str) -> None:
        """The next lines are exactly ``lines``, in order."""
        for expected in lines:
            assert await self.line() == expected

    async def closed(self, timeout: float = LINE_TIMEOUT) -> list[str]:
        """Read until EOF; return the lines received on the way."""
        lines: list[str] = []
        with trio.fail_after(timeout):
            while (line := await self.next_line()) is not None:
                lines.append(line)
        return lines

    async def quiet(self, timeout: float = LINE_TIMEOUT) -> None:
        """Assert that nothing more has arrived, and nothing is on its way.

        In memory (the server in this trio run, with a memory store): wait until every
        task is blocked, then look; no time passes, so no timer fires. Against a
        server process that cannot be seen settling, so ask it: send ``/who`` (or its
        JSON request) and check that its reply is the very next line. Whatever the
        server had sent before answering, the answer comes after.
        """
        self._assert_nothing_buffered()
        if self.remote:
            await self._quiet_by_sentinel(timeout)
            return
        await trio.testing.wait_all_tasks_blocked()
        if self.eof:
            return  # closed and read to the end: nothing more can come
        received: list[bytes | bytearray] = []
        async with trio.open_nursery() as nursery:

            async def receive() -> None:
                received.append(await self.stream.receive_some())

            nursery.start_soon(receive)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()  # still waiting: nothing was there
        if received:
            data = received[0]
            self._buffer.feed(data)  # still there for the test to read
            if not data:
                self.eof = True
                raise AssertionError("the server closed the connection")
            raise AssertionError(f"unexpected data: {bytes(data)!r}")

    def _assert_nothing_buffered(self) -> None:
        """Fail if a line (or part of one) was received but not read by the test."""
        if len(self._buffer) or self._buffer.partial_bytes:
            line = self._buffer.next_line()
            raise AssertionError(f"unread data: {line!r} (and maybe more)")

    async def _quiet_by_sentinel(self, timeout: float) -> None:
        """Ask for the member list; fail if anything else comes back first."""
        if self.mode == "json":
            await self.send_json(type="who")
            event = await self.event(timeout)
            if event.get("type") != "who":
                raise AssertionError(f"unexpected event before the who reply: {_show(event)}")
        else:
            await self.send("/who")
            line = await self.line(timeout)
            if not line.startswith("*** online ("):
                raise AssertionError(f"unexpected line before the /who reply: {line!r}")


def connect_stream(
    nursery: trio.Nursery, server: ChatServer, *, lockstep: bool = False
) -> trio.abc.Stream:
    """A new in-memory connection to ``server``: the test's ``trio.open_tcp_stream``.

    The server's side is served in ``nursery``. ``lockstep`` means no buffering at
    all: every ``send_all`` waits for the other side to read (a reader that stalls).
    """
    pair = trio.testing.lockstep_stream_pair if lockstep else trio.testing.memory_stream_pair
    client, server_side = pair()
    nursery.start_soon(server.handle_stream, server_side)
    return client


def connect(nursery: trio.Nursery, server: ChatServer, *, lockstep: bool = False) -> Peer:
    """Open an in-memory connection to ``server``; ``lockstep`` means no buffering at all."""
    return Peer(connect_stream(nursery, server, lockstep=lockstep))


async def join(
    nursery: trio.Nursery, server: ChatServer, name: str, *, lockstep: bool = False
) -> Peer:
    """Connect in plain mode as ``name`` and read the welcome (and any history)."""
    peer = connect(nursery, server, lockstep=lockstep)
    await peer.send(f"/nick {name}")
    welcome = await peer.line()
    assert welcome.startswith(f"*** welcome, {name}!"), welcome
    await trio.testing.wait_all_tasks_blocked()
    return peer


async def join_json(nursery: trio.Nursery, server: ChatServer, name: str) -> Peer:
    """Connect in JSON mode as ``name`` and read the welcome event."""
    peer = connect(nursery, server)
    await peer.send_json(type="hello", name=name)
    welcome = await peer.event()
    assert welcome["type"] == "welcome", welcome
    assert welcome["name"] == name
    await trio.testing.wait_all_tasks_blocked()
    return peer


class ChatClient:
    """A scripted member in JSON mode: what a bot's test talks to the bot with.

    Get one from :func:`open_client`, the ``triochat_client`` fixture, or
    :meth:`register` on any :class:`Peer` (a TCP one included).

    Reading works like a cursor with one exception. :meth:`expect` reads events until
    one matches and consumes everything up to it (the failure message lists what it
    skipped). :meth:`join`, :meth:`part` and :meth:`say` wait for the server's
    confirmation but leave every other event unread, for a later :meth:`expect`. No
    wait ever skips an ``error`` event unless it asked for one: a refused request
    fails the test where it happened.

    Attributes:
        peer: the connection, at the level of lines.
        name: the name this member registered with.
        welcome: the server's ``welcome`` event.
        events: every event received, in order (consumed or not), for inspection.
        current: the current room, as the events received so far say.
    """

    def __init__(self, peer: Peer, name: str, welcome: JsonEvent) -> None:
        """Wrap ``peer``, already registered as ``name`` (see :meth:`register`)."""
        self.peer = peer
        self.name = name
        self.welcome = welcome
        self.events: list[JsonEvent] = []
        self.current: str | None = None
        self._unread: list[JsonEvent] = []
        self._received(welcome)

    @classmethod
    async def register(cls, peer: Peer, name: str, **hello: object) -> ChatClient:
        """Say ``hello`` as ``name`` on a new connection and read the welcome.

        ``hello`` adds fields to the request: ``since={"#dev": 41}`` to resume,
        ``rooms=["#dev"]`` to join more rooms.
        """
        await peer.send_json(type="hello", name=name, **hello)
        welcome = await peer.event()
        if welcome.get("type") != "welcome":
            raise AssertionError(f"{name} was not welcomed: {_show(welcome)}")
        return cls(peer, name, welcome)

    async def send(self, **fields: object) -> None:
        """Send one JSON request as it is, e.g. ``send(type="topic", text="news")``."""
        await self.peer.send_json(**fields)

    async def join(self, room: str, *, timeout: float = LINE_TIMEOUT) -> JsonEvent:
        """Join ``room`` (``dev`` or ``#dev``) and make it current.

        Returns your own ``join`` event (or, if you were in the room already, the
        ``current`` event). The room's ``topic`` and recent history follow, unread.

        Raises:
            ValueError: ``room`` is the current room already (as far as the events
                received so far say): the server would not answer at all. Use
                :meth:`send` to send such a request anyway.
        """
        name = room_name(room)
        if name == self.current:
            raise ValueError(f"{name} is already {self.name}'s current room")
        await self.send(type="join", room=name)
        joined: list[JsonEvent] = []

        def done(event: JsonEvent) -> bool:
            if _matches(event, {"type": "join", "room": name, "name": self.name}):
                joined.append(event)
                return False  # kept aside; the current event ends the reply
            return _matches(event, {"type": "current", "room": name})

        current = await self._wait(done, f"the join of {name}", timeout, consume=False)
        for event in joined:
            self._unread.remove(event)
        return joined[0] if joined else current

    async def part(self, room: str | None = None, *, timeout: float = LINE_TIMEOUT) -> JsonEvent:
        """Leave ``room`` (default: the current room); returns your own ``leave`` event."""
        request: dict[str, object] = {"type": "part"}
        want: dict[str, object] = {"type": "leave", "name": self.name}
        if room is not None:
            request["room"] = want["room"] = room_name(room)
        await self.send(**request)
        return await self._wait(_matcher(want), _describe(want), timeout, consume=False)

    async def say(
        self, text: str, room: str | None = None, *, timeout: float = LINE_TIMEOUT
    ) -> JsonEvent:
        """Say ``text`` (in ``room``, default the current one); returns the server's echo.

        The echo carries the message's ``id`` and ``ts``, and the text as the others
        see it (cleaned of control characters).
        """
        request: dict[str, object] = {"type": "say", "text": text}
        want: dict[str, object] = {"type": "say", "from": self.name}
        if room is not None:
            request["room"] = want["room"] = room_name(room)
        await self.send(**request)
        return await self._wait(_matcher(want), f"the echo of {text!r}", timeout, consume=False)

    async def expect(
        self, type: str | None = None, /, *, timeout: float = LINE_TIMEOUT, **fields: object
    ) -> JsonEvent:
        """Read events until one has ``type`` and every field given; return it.

        A field value may be a plain value (compared with ``==``), a compiled
        ``re.Pattern`` (searched in the text), or a function returning true for a
        match. ``from`` is a Python keyword: write ``from_="bob"``. Events before the
        match are consumed.

        Raises:
            AssertionError: no match within ``timeout``, the connection closed, or an
                ``error`` event came first (unless ``type`` is ``"error"``); the
                message lists the events seen meanwhile.
        """
        want = {key.removesuffix("_"): value for key, value in fields.items()}
        if type is not None:
            want["type"] = type
        return await self._wait(_matcher(want), _describe(want), timeout, consume=True)

    async def event(self, timeout: float = LINE_TIMEOUT) -> JsonEvent:
        """The next event, whatever it is (unread ones first)."""
        return await self._wait(lambda event: True, "any event", timeout, consume=True)

    async def quiet(self) -> None:
        """Assert that no event is unread and nothing more is on its way (see Peer.quiet)."""
        if self._unread:
            raise AssertionError(f"{self.name} has unread events:{_listing(self._unread)}")
        await self.peer.quiet()

    async def closed(self, timeout: float = LINE_TIMEOUT) -> list[JsonEvent]:
        """Read until the server closes the connection; return every event left unread."""
        arrived = [_parse(line) for line in await self.peer.closed(timeout)]
        for event in arrived:
            self._received(event)
        events, self._unread = self._unread + arrived, []
        return events

    async def quit(self, timeout: float = LINE_TIMEOUT) -> list[JsonEvent]:
        """Send ``quit`` and read until the server closes; return the events left unread."""
        await self.send(type="quit")
        return await self.closed(timeout)

    async def aclose(self) -> None:
        """Close the connection (the others see an ordinary leave)."""
        await self.peer.stream.aclose()

    def _received(self, event: JsonEvent) -> None:
        """Note an event as it arrives (whether a wait wants it or not)."""
        self.events.append(event)
        if event.get("type") in ("welcome", "current"):
            self.current = event.get("room")

    async def _wait(
        self, want: Callable[[JsonEvent], bool], what: str, timeout: float, *, consume: bool
    ) -> JsonEvent:
        """The first unread event ``want`` accepts, reading more as needed.

        ``consume``: drop the unread events before it too (a cursor), else keep them.
        """
        index = 0
        with trio.move_on_after(timeout):
            while True:
                if index == len(self._unread):
                    line = await self.peer.next_line()
                    if line is None:
                        raise AssertionError(
                            f"{self.name}: connection closed while waiting for {what}"
                            + _listing(self._unread[:index])
                        )
                    event = _parse(line)
                    self._received(event)
                    self._unread.append(event)
                event = self._unread[index]
                if want(event):
                    if consume:
                        del self._unread[: index + 1]
                    else:
                        del self._unread[index]
                    return event
                if event.get("type") == "error":
                    raise AssertionError(
                        f"{self.name}: error while waiting for {what}: {_show(event)}"
                        + _listing(self._unread[:index], "before it")
                    )
                index += 1
        raise AssertionError(
            f"{self.name}: {what} did not come within {timeout:g} s"
            + _listing(self._unread[:index])
        )


class ClientFactory(Protocol):
    """The ``triochat_client`` fixture: ``await triochat_client("alice")``."""

    async def __call__(self, name: str, **hello: object) -> ChatClient:
        """Connect a new :class:`ChatClient` registered as ``name``."""
        ...


async def open_test_server(
    nursery: trio.Nursery,
    *,
    config: ServerConfig | None = None,
    store: Store | None = None,
    **overrides: Any,
) -> ChatServer:
    """Start a server on ``nursery`` and return it once it is ready for connections.

    Args:
        nursery: where the server runs; it stops when the nursery is cancelled.
        config: the configuration (default: ``ServerConfig()``).
        store: where history is kept (default: in memory, like ``--db :memory:``).
        **overrides: :class:`~triochat.config.ServerConfig` fields to change, e.g.
            ``history=0`` or ``rate_limit=0``.
    """
    config = dataclasses.replace(config or ServerConfig(), **overrides)
    server = ChatServer(config, store)
    await nursery.start(server.run)
    return server


async def open_client(
    nursery: trio.Nursery, server: ChatServer, name: str, **hello: object
) -> ChatClient:
    """Connect a :class:`ChatClient` to ``server`` in memory as ``name``.

    Returns once the join has reached everyone (every task has settled), so a test
    can go on to expect what the others saw.
    """
    client = await ChatClient.register(connect(nursery, server), name, **hello)
    await trio.testing.wait_all_tasks_blocked()
    return client


def _parse(line: str) -> JsonEvent:
    """One received line as a JSON event, or a failure naming the line."""
    try:
        event = json.loads(line)
    except ValueError:
        raise AssertionError(f"not a JSON event: {line!r}") from None
    if not isinstance(event, dict):
        raise AssertionError(f"not a JSON event: {line!r}")
    return event


def _matcher(want: dict[str, object]) -> Callable[[JsonEvent], bool]:
    return lambda event: _matches(event, want)


def _matches(event: JsonEvent, want: dict[str, object]) -> bool:
    """True if ``event`` has every field of ``want`` (values, patterns or predicates)."""
    for key, expected in want.items():
        if key not in event:
            return False
        value = event[key]
        if isinstance(expected, re.Pattern):
            if not (isinstance(value, str) and expected.search(value)):
                return False
        elif callable(expected):
            if not expected(value):
                return False
        elif value != expected:
            return False
    return True


def _describe(want: dict[str, object]) -> str:
    """``say event with text='hi'``: an expectation, for failure messages."""
    kind = want.get("type")
    rest = ", ".join(f"{key}={_value(value)}" for key, value in want.items() if key != "type")
    head = f"{kind} event" if isinstance(kind, str) else "event"
    return f"{head} with {rest}" if rest else head


def _value(value: object) -> str:
    if isinstance(value, re.Pattern):
        return f"/{value.pattern}/"
    if callable(value):
        return getattr(value, "__name__", "<predicate>")
    return repr(value)


def _show(event: JsonEvent) -> str:
    """An event on one line, without its timestamp."""
    return json.dumps({key: value for key, value in event.items() if key != "ts"})


def _listing(events: list[JsonEvent], label: str = "seen instead") -> str:
    """The events seen while waiting, for a failure message (the latest ones)."""
    if not events:
        return f"; {label}: nothing"
    shown = events[-SHOWN_EVENTS:]
    more = f" ({len(events) - len(shown)} earlier not shown)" if len(events) > len(shown) else ""
    return f"; {label}{more}:\n" + "\n".join(f"  {_show(event)}" for event in shown)
