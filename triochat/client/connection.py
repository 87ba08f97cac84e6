"""One connection to a server: JSON lines each way, and the hello that opens it.

:class:`Connection` works on any ``trio.abc.Stream`` (TCP, or a memory stream in the
tests). :func:`greet` sends a hello and waits for the answer, and reports what went
wrong, if anything, as a :class:`Refusal` that the session words for a first connect
(fatal) or a reconnect (mostly: try again).
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal

import trio

from triochat.core.framing import TOO_LONG, LineBuffer
from triochat.core.hygiene import sanitise

__all__ = ["Connection", "Refusal", "causes", "greet", "short_connect_error"]

MAX_EVENT_BYTES: Final = 1 << 20  # one server line: 4 KiB of text JSON-escaped is ~25 KiB
READ_BYTES: Final = 65536  # one receive_some


class Connection:
    """JSON events over a stream: one object per line each way.

    Sends are serialised: the input task's requests and the connection task's answers
    to the server's pings never interleave on the stream.
    """

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._lines = LineBuffer(MAX_EVENT_BYTES)
        self._eof = False
        self._sending = trio.StrictFIFOLock()

    async def send(self, obj: dict[str, Any]) -> None:
        """Send one request object."""
        data = (json.dumps(obj, ensure_ascii=False) + "\n").encode()
        async with self._sending:
            await self.stream.send_all(data)

    async def pong(self) -> None:
        """Answer the server's ``ping``, unless a request is being sent right now.

        Any line answers a ping, so one on its way already does; and the task that
        reads the server's events never waits behind a send the server is slow to take.
        """
        if self._sending.locked():
            return
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self.send({"type": "pong"})

    async def receive(self) -> dict[str, Any] | None:
        """Return the next event, or None once the server has closed the connection.

        A line that is not a JSON object (a plain-mode server message such as
        ``! server full``) becomes ``{"type": "text", "text": line}``; an oversized line
        becomes an ``error`` event. A reset connection counts as closed.
        """
        while True:
            line = self._lines.next_line()
            if line is None and self._eof:
                return None
            if line is None:
                try:
                    data = await self.stream.receive_some(READ_BYTES)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
                if data:
                    self._lines.feed(bytes(data))
                    continue
                self._eof = True
                line = self._lines.close()
                if line is None:
                    return None
            if line is TOO_LONG:
                return {"type": "error", "code": "line-too-long", "text": "oversized event"}
            assert isinstance(line, bytes)
            text = line.decode("utf-8", "replace")
            if not text.strip():
                continue
            try:
                event = json.loads(text)
            except ValueError:
                event = None
            if not isinstance(event, dict):
                return {"type": "text", "text": text}
            return event


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a hello did not end in a welcome."""

    kind: Literal["timeout", "closed", "error", "other"]
    text: str = ""  # the server's words, sanitised
    code: str = ""  # the error code, for kind "error"


async def greet(
    conn: Connection, hello: dict[str, Any], timeout: float
) -> dict[str, Any] | Refusal:
    """Send ``hello``; return the welcome event, or a :class:`Refusal` saying what came instead.

    Args:
        conn: a new connection.
        hello: the hello request (name, and for a resume ``since`` and ``rooms``).
        timeout: seconds to wait for the first answer.
    """
    first: dict[str, Any] | None = None
    with trio.move_on_after(timeout) as waited:
        # A failed send is reported by receive() below, which then sees the close.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await conn.send(hello)
        first = await conn.receive()
    if waited.cancelled_caught:
        return Refusal("timeout")
    if first is None:
        return Refusal("closed")
    kind = first.get("type")
    if kind == "welcome":
        return first
    text = sanitise(str(first.get("text", "")))
    if kind == "error":
        return Refusal("error", text, sanitise(str(first.get("code", ""))))
    return Refusal("other", text or sanitise(str(kind)))


def causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it was raised from or groups (trio wraps connect errors)."""
    yield exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from causes(inner)
    if exc.__cause__ is not None:
        yield from causes(exc.__cause__)


def short_connect_error(exc: BaseException) -> str:
    """A few words on why connecting failed, for a status line ("connection refused")."""
    for cause in causes(exc):
        if isinstance(cause, socket.gaierror):
            return "unknown host"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
    if isinstance(exc, trio.TooSlowError):
        return "no answer"
    return next(
        (c.strerror for c in causes(exc) if isinstance(c, OSError) and c.strerror),
        str(exc) or type(exc).__name__,
    ).lower()
