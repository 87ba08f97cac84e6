"""Test a bot or integration against a real triochat server: in memory, in virtual time.

The server is the real one (:class:`~triochat.server.ChatServer`, the same hub and
rooms as ``triochat server``) but its connections are trio's in-memory streams, so a
test needs no port, no subprocess and no sleeps, and runs in trio's virtual time
(``autojump_clock``). See docs/testing.md for a bot tested in a dozen lines.

* :class:`Peer` is the far end of one connection: send lines, read lines or JSON
  events, expect exact lines, check that nothing else arrived.
* :func:`connect` opens a raw connection; :func:`join` and :func:`join_json` also
  register under a name (plain or JSON mode) and read the welcome.
* The pytest plugin (enabled by installing triochat; see docs/testing.md) adds the
  fixtures ``triochat_server`` and ``triochat_config``.
"""

from __future__ import annotations

import json
from typing import Any, Final

import trio
import trio.testing

from triochat.core.framing import LineBuffer
from triochat.server import ChatServer

__all__ = ["LINE_TIMEOUT", "Peer", "connect", "join", "join_json"]

LINE_TIMEOUT: Final = 5.0  # seconds (virtual under autojump_clock) before a read fails a test


class Peer:
    """The far end of one connection, as a test sees it: send lines, read lines."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._buffer = LineBuffer(1 << 20)
        self.eof = False

    async def send(self, line: str | bytes) -> None:
        """Send one line (a newline is added to ``str`` lines)."""
        data = line if isinstance(line, bytes) else (line + "\n").encode()
        await self.stream.send_all(data)

    async def send_json(self, **fields: object) -> None:
        """Send one JSON-mode object."""
        await self.send(json.dumps(fields))

    async def line(self, timeout: float = LINE_TIMEOUT) -> str:
        """The next line received (fails the test on EOF or after ``timeout``)."""
        with trio.fail_after(timeout):
            while True:
                line = self._buffer.next_line()
                if isinstance(line, bytes):
                    return line.decode()
                assert line is None, "line longer than the test buffer"
                if self.eof:
                    raise AssertionError("connection closed while a line was expected")
                data = await self.stream.receive_some()
                if not data:
                    self.eof = True
                self._buffer.feed(data)

    async def event(self, timeout: float = LINE_TIMEOUT) -> dict[str, Any]:
        """The next line, parsed as a JSON-mode event."""
        obj = json.loads(await self.line(timeout))
        assert isinstance(obj, dict)
        return obj

    async def expect(self, *lines: str) -> None:
        """The next lines are exactly ``lines``, in order."""
        for expected in lines:
            assert await self.line() == expected

    async def closed(self, timeout: float = LINE_TIMEOUT) -> list[str]:
        """Read until EOF; return the lines received on the way."""
        lines: list[str] = []
        with trio.fail_after(timeout):
            while not self.eof:
                data = await self.stream.receive_some()
                if not data:
                    self.eof = True
                self._buffer.feed(data)
                while isinstance(line := self._buffer.next_line(), bytes):
                    lines.append(line.decode())
        return lines

    async def quiet(self) -> None:
        """Assert nothing more has arrived once every task has settled."""
        await trio.testing.wait_all_tasks_blocked()
        assert self._buffer.next_line() is None
        with trio.move_on_after(0.01):
            data = await self.stream.receive_some()
            raise AssertionError(f"unexpected data: {data!r}")


def connect(nursery: trio.Nursery, server: ChatServer, *, lockstep: bool = False) -> Peer:
    """Open an in-memory connection to ``server``; ``lockstep`` means no buffering at all."""
    pair = trio.testing.lockstep_stream_pair if lockstep else trio.testing.memory_stream_pair
    client, server_side = pair()
    nursery.start_soon(server.handle_stream, server_side)
    return Peer(client)


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
