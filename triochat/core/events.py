"""What the server tells clients: frozen event objects. No I/O.

The chat state (:mod:`triochat.core.state`) creates one event per thing that happens
and hands it to the codecs in :mod:`triochat.core.codec`, which turn it into bytes
once per wire mode. Events about a room carry its normalised name (``"#dev"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from triochat.core.commands.table import HELP_LINES, OPERATOR_HELP_LINES

__all__ = [
    "HELP_LINES",
    "KICKED",
    "OPERATOR_HELP_LINES",
    "PRESENCE_NAMES",
    "AccountInfo",
    "Acted",
    "Away",
    "BanInfo",
    "BanList",
    "Chat",
    "Current",
    "ErrorEvent",
    "Event",
    "Found",
    "Gap",
    "HelpText",
    "HistoryEnd",
    "Joined",
    "Left",
    "MentionInfo",
    "MentionList",
    "Moderated",
    "Notice",
    "NotifyInfo",
    "Ping",
    "Presence",
    "Private",
    "Renamed",
    "RoomInfo",
    "RoomList",
    "Said",
    "SearchResults",
    "ShuttingDown",
    "TopicInfo",
    "Welcome",
    "WhoList",
]

PRESENCE_NAMES: Final = 10  # joiners named in one presence summary; the rest are counted


@dataclass(frozen=True, slots=True)
class Welcome:
    """Sent to a newcomer first: who they are and how many are in ``room``."""

    ts: float
    name: str
    online: int
    room: str


@dataclass(frozen=True, slots=True)
class Joined:
    """``name`` joined ``room`` (sent to the joiner too, as confirmation)."""

    ts: float
    room: str
    name: str
    online: int


KICKED: Final = "kicked from "  # how a Left reason for a kick out of a room begins


@dataclass(frozen=True, slots=True)
class Left:
    """``name`` left ``room``, and why (``quit``, ``part``, ``closed``, ``too slow``, ...).

    A room operator's kick is the reason ``kicked from #room by NAME: why`` (:data:`KICKED`).
    """

    ts: float
    room: str
    name: str
    online: int
    reason: str


@dataclass(frozen=True, slots=True)
class Presence:
    """Coalesced joins and leaves in a large room (one summary instead of N notices)."""

    ts: float
    room: str
    joined: int
    left: int
    online: int
    names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, init=False)
class Said:
    """A chat line. ``id`` strictly increases per room; ``history`` marks a replay.

    ``notice`` marks an IRC member's NOTICE: IRC members get it as a NOTICE, everyone
    else as a chat line (and it is stored as one).
    """

    ts: float
    room: str
    id: int
    sender: str
    text: str
    history: bool = False
    notice: bool = False
    tags: str = ""  # IRCv3 client-only tags it was sent with (never stored)

    def __init__(
        self,
        ts: float,
        room: str,
        id: int,
        sender: str,
        text: str,
        history: bool = False,
        notice: bool = False,
        tags: str = "",
    ) -> None:
        # Written out, one per chat line: the generated __init__ of a frozen dataclass
        # looks object.__setattr__ up again for every field (2.4x slower to build).
        set_field = object.__setattr__
        set_field(self, "ts", ts)
        set_field(self, "room", room)
        set_field(self, "id", id)
        set_field(self, "sender", sender)
        set_field(self, "text", text)
        set_field(self, "history", history)
        set_field(self, "notice", notice)
        set_field(self, "tags", tags)


@dataclass(frozen=True, slots=True)
class Acted:
    """A ``/me`` action; numbered like :class:`Said`."""

    ts: float
    room: str
    id: int
    sender: str
    text: str
    history: bool = False


Chat = Said | Acted


@dataclass(frozen=True, slots=True)
class Renamed:
    """``old`` is now known as ``new`` (names are server-wide)."""

    ts: float
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class WhoList:
    """Who is in ``room``, sorted; sent to the asker only.

    ``away`` pairs each away member's name with their message (``/away``), sorted;
    ``ops`` are the room's operators among ``names``: its founder, if any.
    """

    ts: float
    room: str
    names: tuple[str, ...]
    away: tuple[tuple[str, str], ...] = ()
    ops: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Away:
    """``name`` is away with ``text`` (``""``: back). Sent to ``name`` when they set it,
    and to whoever sends ``name`` a private message while it is set."""

    ts: float
    name: str
    text: str


@dataclass(frozen=True, slots=True)
class Private:
    """A private message, delivered to its sender and its recipient.

    Between two logged-in members it is stored and has an ``id`` (server-wide, rising:
    a client resumes its private lines with the highest one it saw); a guest's has
    ``id`` 0 and is never stored. ``history``: replayed from the store, not live.
    """

    ts: float
    sender: str
    to: str
    text: str
    id: int = 0
    history: bool = False


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
class Notice:
    """Something the server tells everyone about itself (e.g. history not being saved)."""

    ts: float
    code: str
    text: str


@dataclass(frozen=True, slots=True)
class ShuttingDown:
    """The server is about to close every connection."""

    ts: float
    text: str = "server is shutting down"


@dataclass(frozen=True, slots=True)
class TopicInfo:
    """A room's topic: shown on joining and on ``/topic``, broadcast when it changes.

    ``changed`` is True when ``by`` has just set it (a broadcast), False when it is
    only being shown to one member.
    """

    ts: float
    room: str
    topic: str
    by: str
    changed: bool = False
    locked: bool = False  # only operators may change it


@dataclass(frozen=True, slots=True)
class RoomInfo:
    """One row of :class:`RoomList`."""

    room: str
    online: int
    topic: str


@dataclass(frozen=True, slots=True)
class RoomList:
    """Every room with its member count and topic; sent to the asker only."""

    ts: float
    rooms: tuple[RoomInfo, ...]


@dataclass(frozen=True, slots=True)
class Current:
    """The member's current room (where plain text goes) is now ``room``."""

    ts: float
    room: str


@dataclass(frozen=True, slots=True)
class Gap:
    """``skipped`` stored messages of ``room`` were not replayed (over the resume limit)."""

    ts: float
    room: str
    skipped: int


@dataclass(frozen=True, slots=True)
class HistoryEnd:
    """Closes a replay of ``count`` messages of ``room`` asked for with ``history``.

    ``more`` is True when older messages exist before the oldest one sent.
    """

    ts: float
    room: str
    count: int
    more: bool


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """About the member's own account; sent to that member only.

    ``action`` is ``registered`` (its current name is now its account),
    ``logged-in`` (it proved the password of ``name`` and now has that name) or
    ``password-changed``.
    """

    ts: float
    action: str
    name: str


@dataclass(frozen=True, slots=True)
class Moderated:
    """An operator acted: sent to the member acted on, the rooms concerned and the operator.

    ``action`` is one of ``kick``, ``ban``, ``unban``, ``mute``, ``unmute``, ``op``,
    ``deop``, ``drop`` (an account was deleted), ``lock-topic``, ``unlock-topic``.
    ``target`` is a name, an address range or (for topic locks) a room. ``until`` is
    when a ban or mute ends (None: until lifted).
    """

    ts: float
    action: str
    target: str
    by: str
    reason: str = ""
    until: float | None = None


@dataclass(frozen=True, slots=True)
class BanInfo:
    """One row of :class:`BanList`."""

    target: str
    kind: str  # "name" or "address"
    by: str
    reason: str
    ts: float
    until: float | None


@dataclass(frozen=True, slots=True)
class BanList:
    """The bans in force; sent to the operator who asked."""

    ts: float
    bans: tuple[BanInfo, ...]


@dataclass(frozen=True, slots=True)
class Found:
    """One line of :class:`SearchResults`: where and when it was said, by whom."""

    room: str
    id: int  # its id in its room: ``/history ROOM around ID`` shows it in its place
    sender: str
    kind: str  # "say" or "me"
    text: str
    ts: float


@dataclass(frozen=True, slots=True)
class SearchResults:
    """A page of ``/search`` results for ``query`` (as typed), newest first.

    ``more`` is the value of ``before`` that asks for the next page (0: this was the
    last one).
    """

    ts: float
    query: str
    hits: tuple[Found, ...]
    more: int = 0


@dataclass(frozen=True, slots=True)
class Ping:
    """Are you there? Sent to a JSON member that has been silent for a while.

    The client answers ``{"type": "pong"}``; a member that does not answer in time is
    disconnected (reason ``no pong``). See :mod:`triochat.server.liveness`.
    """

    ts: float


@dataclass(frozen=True, slots=True)
class NotifyInfo:
    """A room's notification level for this member (``/notify``): ``all``, ``mentions``
    (the default) or ``none``. Sent when it is set or asked for, and for every room a
    member set, when it logs in."""

    ts: float
    room: str
    level: str


@dataclass(frozen=True, slots=True)
class MentionInfo:
    """One line that named the member (a row of :class:`MentionList`)."""

    room: str
    id: int
    ts: float
    sender: str
    text: str


@dataclass(frozen=True, slots=True)
class MentionList:
    """The answer to ``/mentions``: lines that named the member since ``since`` (when it
    was last seen; 0: never), newest first."""

    ts: float
    since: float
    mentions: tuple[MentionInfo, ...]


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
    | Notice
    | TopicInfo
    | RoomList
    | Current
    | Gap
    | HistoryEnd
    | AccountInfo
    | Moderated
    | BanList
    | Ping
    | Away
    | NotifyInfo
    | MentionList
    | SearchResults
)
