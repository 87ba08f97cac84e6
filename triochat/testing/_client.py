"""A scripted member in JSON mode: :class:`ChatClient`, and the expectations it checks."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final, Protocol

import trio
import trio.testing

from triochat.core.names import room_name
from triochat.server import ChatServer
from triochat.testing._peer import (
    LINE_TIMEOUT,
    JsonEvent,
    Peer,
    connect,
    parse_event,
    show_event,
)

__all__ = ["ChatClient", "ClientFactory", "open_client"]

SHOWN_EVENTS: Final = 20  # events listed in a failure message (the latest ones)


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
            raise AssertionError(f"{name} was not welcomed: {show_event(welcome)}")
        return cls(peer, name, welcome)

    async def send(self, **fields: object) -> None:
        """Send one JSON request as it is, e.g. ``send(type="topic", text="news")``."""
        await self.peer.send_json(**fields)

    async def join(self, room: str, *, timeout: float = LINE_TIMEOUT) -> JsonEvent:
        """Join ``room`` (``dev`` or ``#dev``) and make it current.

        Returns your own ``join`` event (or, if you were in the room already, the
        ``current`` event). The room's ``topic`` and recent history follow, unread.
        """
        name = room_name(room)
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
        arrived = [parse_event(line) for line in await self.peer.closed(timeout)]
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
        kind = event.get("type")
        mine = event.get("name") == self.name
        if kind in ("welcome", "current"):
            self.current = event.get("room")
        elif kind == "leave" and mine and event.get("room") == self.current:
            self.current = None  # a current event follows, unless it was the last room

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
                    event = parse_event(line)
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
                        f"{self.name}: error while waiting for {what}: {show_event(event)}"
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


def _listing(events: list[JsonEvent], label: str = "seen instead") -> str:
    """The events seen while waiting, for a failure message (the latest ones)."""
    if not events:
        return f"; {label}: nothing"
    shown = events[-SHOWN_EVENTS:]
    more = f" ({len(events) - len(shown)} earlier not shown)" if len(events) > len(shown) else ""
    return f"; {label}{more}:\n" + "\n".join(f"  {show_event(event)}" for event in shown)
