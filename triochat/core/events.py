"""What the room tells clients: frozen event objects. No I/O.

The room creates one event per thing that happens and hands it to the codecs in
:mod:`triochat.core.codec`, which turn it into bytes once per wire mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "Acted",
    "ErrorEvent",
    "Event",
    "HelpText",
    "Joined",
    "Left",
    "Presence",
    "Private",
    "Renamed",
    "Said",
    "ShuttingDown",
    "Welcome",
    "WhoList",
]

HELP_LINES: tuple[str, ...] = (
    "commands:",
    "  TEXT              say TEXT to the room (start with // to send a leading /)",
    "  /me ACTION        act: * alice waves",
    "  /msg NAME TEXT    private message to NAME",
    "  /nick NAME        change your name (letters, digits, _ . -; up to 24)",
    "  /who              list who is online",
    "  /help             this list",
    "  /quit             leave",
)


@dataclass(frozen=True, slots=True)
class Welcome:
    """Sent to a newcomer first: who they are and how many are here."""

    ts: float
    name: str
    online: int
    room: str


@dataclass(frozen=True, slots=True)
class Joined:
    """Someone joined."""

    ts: float
    name: str
    online: int


@dataclass(frozen=True, slots=True)
class Left:
    """Someone left, and why (``quit``, ``closed``, ``lost``, ``too slow``, ...)."""

    ts: float
    name: str
    online: int
    reason: str


@dataclass(frozen=True, slots=True)
class Presence:
    """Coalesced joins and leaves in a large room (one summary instead of N notices)."""

    ts: float
    joined: int
    left: int
    online: int
    names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Said:
    """A chat line. ``id`` strictly increases per room; ``history`` marks a replay."""

    ts: float
    id: int
    sender: str
    text: str
    history: bool = False


@dataclass(frozen=True, slots=True)
class Acted:
    """A ``/me`` action; numbered like :class:`Said`."""

    ts: float
    id: int
    sender: str
    text: str
    history: bool = False


@dataclass(frozen=True, slots=True)
class Renamed:
    """``old`` is now known as ``new``."""

    ts: float
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class WhoList:
    """Who is online, sorted; sent to the asker only."""

    ts: float
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Private:
    """A private message, delivered to its sender and its recipient."""

    ts: float
    sender: str
    to: str
    text: str


@dataclass(frozen=True, slots=True)
class HelpText:
    """The command list."""

    ts: float
    lines: tuple[str, ...] = field(default=HELP_LINES)


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """Something the client asked for failed; sent to that client only."""

    ts: float
    code: str
    text: str


@dataclass(frozen=True, slots=True)
class ShuttingDown:
    """The server is about to close every connection."""

    ts: float
    text: str = "server is shutting down"


Event = (
    Welcome
    | Joined
    | Left
    | Presence
    | Said
    | Acted
    | Renamed
    | WhoList
    | Private
    | HelpText
    | ErrorEvent
    | ShuttingDown
)
