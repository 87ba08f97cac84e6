"""One connection to a server: JSON lines each way, and the hello that opens it.

:class:`Connection` works on any ``trio.abc.Stream`` (TCP, or a memory stream in the
tests). :func:`greet` sends a hello and waits for the answer, and reports what went
wrong, if anything, as a :class:`Refusal` that the session words for a first connect
(fatal) or a reconnect (mostly: try again).

Events are decoded by the one JSON schema, :mod:`triochat.core.jsonwire`, into the
frozen event classes of :mod:`triochat.core.events`; what is not an event arrives as a
:class:`ServerText` (a plain-mode line) or an :class:`Unreadable` (an object this
client cannot read).
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import trio

from triochat.core.events import ErrorEvent, Event, Welcome
from triochat.core.framing import TOO_LONG, LineBuffer
from triochat.core.hygiene import sanitise
from triochat.core.jsonwire import MalformedEvent, UnknownEvent, event_object, object_event

__all__ = [
    "Connection",
    "Received",
    "Refusal",
    "ServerText",
    "Unreadable",
    "causes",
    "greet",
    "short_connect_error",
]

MAX_EVENT_BYTES: Final = 1 << 20  # one server line: 4 KiB of text JSON-escaped is ~25 KiB
READ_BYTES: Final = 65536  # one receive_some


@dataclass(frozen=True, slots=True)
class ServerText:
    """A line that is not JSON: a plain-mode message such as ``! server full``."""

    text: str


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A JSON object that is not an event this client can read.

    ``problem`` is empty for an event type this version does not know (a newer
    server's: skipped, as people need not see it), else what is wrong with it.
    ``obj`` is the object as received, for ``--json`` output.
    """

    obj: dict[str, Any] = field(hash=False)
    problem: str = ""


Received = Event | ServerText | Unreadable  # what Connection.receive returns


def receive_line(text: str) -> Received | None:
    """One line from the server as what it is (None: a blank line, to be skipped)."""
    if not text.strip():
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        obj = None
    if not isinstance(obj, dict):
        return ServerText(text)
    try:
        return object_event(obj)
    except UnknownEvent:
        return Unreadable(obj)
    except MalformedEvent as exc:
        return Unreadable(obj, str(exc))


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

    async def receive(self) -> Received | None:
        """Return the next event, or None once the server has closed the connection.

        A line that is not a JSON object (a plain-mode server message such as
        ``! server full``) becomes a :class:`ServerText`, an object that is not an event
        an :class:`Unreadable`, and an oversized line an ``error`` event. A reset
        connection counts as closed.
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
                return ErrorEvent(time.time(), "line-too-long", "oversized event")
            assert isinstance(line, bytes)
            received = receive_line(line.decode("utf-8", "replace"))
            if received is not None:
                return received


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a hello did not end in a welcome."""

    kind: Literal["timeout", "closed", "error", "other"]
    text: str = ""  # the server's words, sanitised
    code: str = ""  # the error code, for kind "error"


async def greet(conn: Connection, hello: dict[str, Any], timeout: float) -> Welcome | Refusal:
    """Send ``hello``; return the welcome event, or a :class:`Refusal` saying what came instead.

    Args:
        conn: a new connection.
        hello: the hello request (name, and for a resume ``since`` and ``rooms``).
        timeout: seconds to wait for the first answer.
    """
    first: Received | None = None
    with trio.move_on_after(timeout) as waited:
        # A failed send is reported by receive() below, which then sees the close.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await conn.send(hello)
        first = await conn.receive()
    if waited.cancelled_caught:
        return Refusal("timeout")
    if first is None:
        return Refusal("closed")
    match first:
        case Welcome():
            return first
        case ErrorEvent(code=code, text=text):
            return Refusal("error", sanitise(text), sanitise(code))
        case ServerText(text=text):
            return Refusal("other", sanitise(text))
        case Unreadable(obj=obj):
            return Refusal("other", sanitise(str(obj.get("text") or obj.get("type"))))
        case _:
            text = getattr(first, "text", "")
            return Refusal("other", sanitise(text or str(event_object(first)["type"])))


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
