"""The chat state's nouns: members, rooms, limits, replays, effects, and the port. No I/O.

Everything here is plain data; the behaviour lives in the modules that use it
(:mod:`triochat.core.fanout`, :mod:`~triochat.core.arrivals`,
:mod:`~triochat.core.history`, :mod:`~triochat.core.talk`, the account, moderation
and cluster helpers) and the façade that ties them together
(:mod:`triochat.core.state`). The helpers never see the façade itself: they are
given a :class:`ChatPort`, the narrow set of operations they may use.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

from triochat.core import cluster
from triochat.core.codec import Mode
from triochat.core.mentions import MentionQuery
from triochat.core.passwords import MIN_PASSWORD_CHARS
from triochat.core.records import Batch, Change, StoredMessage, StoredPrivate
from triochat.core.search import SearchQuery

if TYPE_CHECKING:
    from triochat.core.access import Access
    from triochat.core.events import Chat, Event
    from triochat.core.passwords import Job
    from triochat.core.protocols.ircsession import IrcSession

__all__ = [
    "CACHE_MESSAGES",
    "CachedLine",
    "ChatPort",
    "Effects",
    "Limits",
    "Link",
    "Member",
    "Query",
    "RemoteMember",
    "RoomState",
]

CACHE_MESSAGES: Final = 200  # recent chat lines kept in memory per room: replays and /history


class StoredReplay(Protocol):
    """A replay that reads and frames its own lines (an IRC ``CHATHISTORY`` request).

    ``read`` runs in the store's thread with the store (its ``before``, ``since`` and
    ``recent``; for a nick, the asker's ``private_range`` and ``private_peers``),
    ``render`` makes the bytes the member gets of what was read.
    """

    def read(self, store: Any) -> Sequence[StoredMessage | StoredPrivate]:
        """The stored lines it asks for, oldest first."""

    def render(self, records: Sequence[StoredMessage | StoredPrivate]) -> list[bytes]:
        """Those lines as the member's protocol frames them."""


class Link(Protocol):
    """How the state reaches one member's connection (the server implements it)."""

    def put(self, data: bytes) -> bool:
        """Queue ``data``; False if the queue is full (the member is too slow)."""

    def replay(self, query: Query) -> None:
        """Queue a replay of stored lines here, in order with what is put around it.

        The server reads the lines and writes them as the connection drains; they
        never count against the queue that :meth:`put` fills.
        """

    def close(self) -> None:
        """Send what is queued, then end the connection."""

    def cut(self) -> None:
        """End the connection now, dropping what is queued."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The tunables the state enforces (a subset of the server's configuration)."""

    history: int = 20  # lines replayed on joining a room; 0 = none
    coalesce_above: int = 100  # above this many members, joins/leaves become summaries
    max_rooms: int = 1000  # rooms on the server
    max_rooms_per_member: int = 50  # rooms one member may be in at once
    resume_limit: int = 1000  # messages replayed per room on resume; older ones become a gap
    max_registrations_per_hour: int = 3  # names one address may register an hour; 0 = no limit
    # Exempt from per-address limits (--trusted); the server passes loopback by default.
    trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    min_password_length: int = MIN_PASSWORD_CHARS  # shortest password an account may set


@dataclass(eq=False, slots=True)
class Member:
    """One registered connection."""

    id: int
    peer: str
    link: Link
    name: str
    mode: Mode
    rooms: list[str] = field(default_factory=list)  # in the order joined
    current: str | None = None
    address: str | None = None  # the client's IP address (None: not an IP connection)
    cleartext: bool = False  # a password sent on this connection crosses a network unencrypted
    account: str | None = None  # the name key of the account it logged into (or registered)
    warned: bool = False  # told about its cleartext password already
    away: str = ""  # its /away message ("": here)
    irc: IrcSession | None = None  # an IRC client's own state (user, capabilities)
    notify: dict[str, str] = field(default_factory=dict)  # a guest's /notify levels, by room


@dataclass(slots=True)
class CachedLine:
    """A cached chat line with its replay encoding per mode, made on first use."""

    record: StoredMessage
    encoded: dict[Mode, bytes] | None = None  # made on the first replay (most have none)


@dataclass(eq=False, slots=True)
class RoomState:
    """One room: its members by wire protocol, its topic, ids and recent lines."""

    name: str
    last_id: int = 0
    topic: str = ""
    topic_by: str = ""
    topic_ts: float = 0.0
    topic_locked: bool = False  # only operators may change the topic
    founder: int | None = None  # the member (id) who entered it empty: its operator till they leave
    # By wire protocol, so a broadcast encodes once per protocol, then runs a tight loop.
    by_mode: dict[Mode, dict[int, Member]] = field(default_factory=dict)
    remote: dict[str, str] = field(default_factory=dict)  # other nodes' members: token -> name
    floor: int = 0  # in a cluster: the next id must be larger (see cluster.ID_JUMP)
    recent: deque[CachedLine] = field(default_factory=lambda: deque(maxlen=CACHE_MESSAGES))
    complete: bool = True  # the cache holds every stored line (no older ones on disk)
    pending_joined: int = 0
    pending_left: int = 0
    pending_names: list[str] = field(default_factory=list)
    empty_since: float | None = None  # when the tick first saw it empty (see roomcare)

    @property
    def online(self) -> int:
        return sum(map(len, self.by_mode.values())) + len(self.remote)

    def members(self) -> Iterator[Member]:
        for members in self.by_mode.values():
            yield from members.values()

    def local(self, mode: Mode) -> dict[int, Member]:
        """This room's members in ``mode`` (empty if none)."""
        return self.by_mode.get(mode, {})

    def add(self, member: Member) -> None:
        members = self.by_mode.get(member.mode)
        if members is None:
            members = self.by_mode[member.mode] = {}
        members[member.id] = member

    def discard(self, member: Member) -> None:
        members = self.by_mode.get(member.mode)
        if members is not None:
            members.pop(member.id, None)

    def clear(self) -> None:
        self.by_mode.clear()
        self.remote.clear()


@dataclass(frozen=True, slots=True)
class Query:
    """A replay of stored lines for one member, queued on its link (:meth:`Link.replay`).

    ``after`` asks for lines with a larger id (resume; at most ``limit``, the newest
    ones, with a gap notice for those skipped); ``before`` for lines with a smaller id
    (scrollback); neither, for the latest ``limit``. ``upto`` is the room's last id when
    it was asked: newer lines reach the member live, so the replay stops there.
    """

    member: Member
    room: str
    limit: int
    after: int | None = None
    before: int | None = None
    header: bool = False  # plain: announce the replay with a "last N messages" line
    end: bool = False  # JSON: close the replay with a history-end event
    upto: int | None = None
    elsewhere: bool = False  # plain: the room is not the member's current one
    # Private history instead of a room's: (the asker's account key, the other's key, or
    # "" for every conversation of the asker). ``room`` is then "@NAME" or "@".
    private: tuple[str, str] | None = None
    plan: StoredReplay | None = None  # reads and frames itself (the fields above unused)
    search: SearchQuery | None = None  # a /search instead: the store's search answers it
    mentions: MentionQuery | None = None  # a /mentions instead: the index, then the rule


@dataclass(slots=True)
class Effects:
    """What a step of the chat state asks of the world, drained once per batch.

    ``batch`` is for the store (committed before any output of the step is sent);
    ``published`` for the other nodes of a cluster; ``jobs`` are password checks for
    the worker thread. Output to members is already queued on their links.
    """

    batch: Batch = field(default_factory=Batch)
    published: list[cluster.Op] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.batch) or bool(self.published) or bool(self.jobs)


@dataclass(eq=False, slots=True)
class RemoteMember:
    """A member of another node of the cluster, as its node announced it."""

    token: str
    node: str
    name: str
    rooms: list[str] = field(default_factory=list)


class ChatPort(Protocol):
    """What the helpers (accounts, moderation, the cluster side) may ask of the state."""

    limits: Limits
    access: Access
    members: dict[int, Member]
    rooms: dict[str, RoomState]

    def now(self) -> float: ...
    def tell(self, member: Member, event: Event) -> None: ...
    def error(self, member: Member, code: str, text: str) -> None: ...
    def broadcast(self, room: RoomState, event: Event) -> None: ...
    def everyone(self, event: Event) -> None: ...
    def notice_all(self, code: str, text: str) -> None: ...
    def change(self, change: Change, *, publish: bool = True) -> None: ...
    def store_change(self, change: Change) -> None: ...
    def publish(self, op: cluster.Op) -> None: ...
    def save_room(self, room: RoomState) -> None: ...
    def drop_room(self, room: RoomState, by: str) -> None: ...
    def room_for(self, member: Member, room: str | None) -> RoomState | None: ...
    def room_or_new(self, name: str) -> RoomState: ...
    def holder(self, name: str) -> Member | None: ...
    def remote_holder(self, name: str) -> RemoteMember | None: ...
    def logged_in(self, key: str) -> list[Member]: ...
    def all_members(self) -> list[Member]: ...
    def remove(self, member: Member, reason: str) -> None: ...
    def guest_name(self) -> str: ...
    def force_rename(self, member: Member, name: str) -> None: ...
    def deliver_chat(
        self, room: RoomState, event: Chat, sender: Member | None, *, live: bool = True
    ) -> None: ...
    def log_in(self, member: Member, name: str, key: str) -> None: ...
    def login_problem(self, name: str, member: Member | None) -> tuple[str, str] | None: ...


def members_of(rooms: Iterable[RoomState]) -> Iterator[Member]:
    """Every local member of ``rooms`` (a member in two rooms comes twice)."""
    for room in rooms:
        yield from room.members()
