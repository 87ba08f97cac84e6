"""The in-memory server and its connections, and :class:`Peer`: lines over a connection."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Final, Literal

import trio
import trio.testing

from triochat.config import ServerConfig
from triochat.core.events import Event
from triochat.core.framing import LineBuffer
from triochat.core.jsonwire import MalformedEvent, decode_event, event_object
from triochat.server import ChatServer
from triochat.store import Store

__all__ = [
    "LINE_TIMEOUT",
    "JsonEvent",
    "Peer",
    "connect",
    "connect_stream",
    "join",
    "join_json",
    "open_test_server",
    "parse_event",
    "read_event",
    "show_event",
]

LINE_TIMEOUT: Final = 5.0  # seconds (virtual under autojump_clock) before a read fails a test
PEER_BUFFER_BYTES: Final = 1 << 20  # longest line a test reads: far past any server limit

JsonEvent = dict[str, Any]
"""One JSON-mode event as its wire object: ``{"type": "say", "from": "bob", ...}``.

Made from the decoded event by the one schema (:mod:`triochat.core.jsonwire`), so it
has exactly the fields docs/protocol.md lists, and a line that does not match the
schema fails the test where it arrived."""


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
        """The next line, as a JSON-mode event's wire object (checked against the schema)."""
        return parse_event(await self.line(timeout))

    async def typed_event(self, timeout: float = LINE_TIMEOUT) -> Event:
        """The next line, as its event (:mod:`triochat.core.events`: ``Said``, ``WhoList``...)."""
        return read_event(await self.line(timeout))

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
        task is blocked, then look; no time passes, so no timer fires. A server
        process cannot be seen settling, so ask it a question and check that the
        answer is the very next line: whatever the server had sent before answering
        comes first. The question is a ``rooms`` request in JSON mode (it has an
        answer in any state) and ``/who`` in plain mode (which needs a current room).
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
        """Ask the server something; fail if anything else comes back first."""
        if self.mode == "json":
            await self.send_json(type="rooms")
            event = await self.event(timeout)
            if event.get("type") != "rooms":
                raise AssertionError(
                    f"unexpected event before the rooms reply: {show_event(event)}"
                )
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


def read_event(line: str) -> Event:
    """One received line as its event, or a failure naming the line and what is wrong."""
    try:
        return decode_event(line)
    except MalformedEvent as exc:
        raise AssertionError(f"not a JSON event ({exc}): {line!r}") from None


def parse_event(line: str) -> JsonEvent:
    """One received line as a JSON event's wire object, or a failure naming the line.

    The line is decoded by the schema (:func:`read_event`) and its object rebuilt
    from the event, so tests match on the documented fields and nothing else.
    """
    return event_object(read_event(line))


def show_event(event: JsonEvent) -> str:
    """An event on one line, without its timestamp."""
    return json.dumps({key: value for key, value in event.items() if key != "ts"})
