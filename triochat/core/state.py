"""The chat state: members, names, rooms, topics and recent history. No I/O, no trio.

Rules of this module:

* One owner. The server's hub task is the only caller, so every member sees events
  in the same order and nothing needs a lock. Everything here is synchronous: it
  decides what a command means, changes the state, and queues bytes on members'
  links. Tests drive it with plain function calls and fake links.
* It never waits for a member. A :class:`Link` whose queue is full makes
  :meth:`Link.put` return False; that member is disconnected as "too slow" once the
  current message is handled, and everyone else carries on.
* Each broadcast is encoded at most once per wire mode (and, for plain members, once
  per "is this your current room" variant), never once per member.
* Chat lines get their id here, strictly increasing per room, and are added to
  :attr:`ChatState.batch` for the store. The hub commits that batch before it lets any
  queued byte go out, so nothing a client has seen can be missing after a crash.
* Replays that the recent-history cache cannot serve are returned to the hub as a
  :class:`Query`; the hub reads the store and hands the rows back to
  :meth:`ChatState.replay`, in order, before it handles the next command.
* In a cluster (``node`` is set) the chat log numbers chat lines: :meth:`_chat`
  publishes a :class:`~triochat.core.cluster.Line` and every node delivers it when the
  log hands it back with its id (:meth:`apply`). Presence, renames, private messages,
  rooms and topics are applied here at once and published for the other nodes. The
  other nodes' members, what to publish (:meth:`take_published`, for the hub) and what
  the log reports are :attr:`ChatState.cluster`'s (:mod:`triochat.core.remote`).
* Passwords are never hashed here. Account commands (:mod:`triochat.core.accounts`)
  queue jobs that the hub runs in a worker thread (:meth:`ChatState.take_jobs`); the
  outcome comes back as :meth:`ChatState.password_done`. A connection whose first line
  logs in is *pending* until then: what it sends meanwhile is held, in order, and
  handled once it has joined. Operators' commands live in
  :mod:`triochat.core.moderation`; who may do what, in :mod:`triochat.core.access`.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final, Protocol, assert_never

from triochat.core import cluster
from triochat.core.access import Access
from triochat.core.accounts import Accounts, Problem
from triochat.core.admin import (
    Ban,
    Bans,
    ChangePassword,
    Deop,
    Drop,
    Kick,
    LockTopic,
    Login,
    Mute,
    Op,
    Pass,
    Register,
    Unban,
    Unmute,
)
from triochat.core.codec import Mode, encode, encode_json, encode_plain, history_header
from triochat.core.commands import (
    Command,
    Hello,
    Help,
    History,
    Invalid,
    Join,
    Me,
    Msg,
    Nick,
    Part,
    Quit,
    Rooms,
    Say,
    Topic,
    Who,
)
from triochat.core.durations import format_remaining
from triochat.core.events import (
    HELP_LINES,
    OPERATOR_HELP_LINES,
    PRESENCE_NAMES,
    AccountInfo,
    Acted,
    Chat,
    Current,
    ErrorEvent,
    Event,
    Gap,
    HelpText,
    HistoryEnd,
    Joined,
    Left,
    Notice,
    Presence,
    Private,
    Renamed,
    RoomInfo,
    RoomList,
    Said,
    ShuttingDown,
    TopicInfo,
    Welcome,
    WhoList,
)
from triochat.core.moderation import Moderation
from triochat.core.names import LOBBY, name_error, name_key
from triochat.core.passwords import Job, JobKind, Outcome
from triochat.core.records import (
    BanRecord,
    Batch,
    Change,
    MuteRecord,
    OpRecord,
    RoomRecord,
    StoredMessage,
    chat_event,
    stored_message,
)
from triochat.core.remote import ClusterSide, RemoteMember

__all__ = [
    "CACHE_MESSAGES",
    "ChatState",
    "Limits",
    "Link",
    "Member",
    "Query",
    "RoomState",
]

log = logging.getLogger(__name__)

CACHE_MESSAGES: Final = 200  # recent chat lines kept in memory per room: replays and most resumes
MAX_TOPIC_CHARS: Final = 300  # one line in any client; IRC networks allow 300-390
MAX_HELD_COMMANDS: Final = 256  # lines a connection may send while its login is checked


class Link(Protocol):
    """How the state reaches one member's connection (the server implements it)."""

    def put(self, data: bytes) -> bool:
        """Queue ``data``; False if the queue is full (the member is too slow)."""

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


@dataclass(frozen=True, slots=True)
class _Arrival:
    """A connection that asked to join, before it is a member."""

    conn_id: int
    peer: str
    link: Link
    mode: Mode
    address: str | None
    cleartext: bool

    @property
    def where(self) -> str:
        """What the failed-login throttle counts it by: its address, else its peer."""
        return self.address if self.address is not None else self.peer


@dataclass(slots=True)
class _Pending:
    """A connection whose first line logs in: it joins once the password is checked."""

    arrival: _Arrival
    first: Hello | Login
    held: list[Command] = field(default_factory=list)  # what it sent meanwhile


@dataclass(slots=True)
class _Replay:
    """A cached chat line with its replay encoding per mode, made on first use."""

    record: StoredMessage
    encoded: dict[Mode, bytes] = field(default_factory=dict)

    def bytes_for(self, mode: Mode) -> bytes:
        data = self.encoded.get(mode)
        if data is None:
            data = self.encoded[mode] = encode(chat_event(self.record), mode)
        return data


@dataclass(eq=False, slots=True)
class RoomState:
    """One room: its members split by wire mode, its topic, ids and recent lines."""

    name: str
    last_id: int = 0
    topic: str = ""
    topic_by: str = ""
    topic_ts: float = 0.0
    topic_locked: bool = False  # only operators may change the topic
    # Split by wire mode so a broadcast encodes once per mode, then runs a tight loop.
    plain: dict[int, Member] = field(default_factory=dict)
    json: dict[int, Member] = field(default_factory=dict)
    remote: dict[str, str] = field(default_factory=dict)  # other nodes' members: token -> name
    floor: int = 0  # in a cluster: the next id must be larger (see cluster.ID_JUMP)
    recent: deque[_Replay] = field(default_factory=lambda: deque(maxlen=CACHE_MESSAGES))
    complete: bool = True  # the cache holds every stored line (no older ones on disk)
    pending_joined: int = 0
    pending_left: int = 0
    pending_names: list[str] = field(default_factory=list)

    @property
    def online(self) -> int:
        return len(self.plain) + len(self.json) + len(self.remote)

    def members(self) -> Iterable[Member]:
        yield from self.plain.values()
        yield from self.json.values()


@dataclass(frozen=True, slots=True)
class Query:
    """Stored lines the cache cannot supply: the hub reads them, then calls replay().

    ``after`` asks for lines with a larger id (resume; at most ``limit``, the newest
    ones, with a count of those skipped); ``before`` for lines with a smaller id
    (scrollback); neither, for the latest ``limit``.
    """

    member: Member
    room: str
    limit: int
    after: int | None = None
    before: int | None = None
    header: bool = False  # plain: announce the replay with a "last N messages" line
    end: bool = False  # JSON: close the replay with a history-end event


class ChatState:
    """Everything the server knows about who is where. See the module rules."""

    def __init__(
        self,
        limits: Limits,
        clock: Callable[[], float],
        *,
        ops: Iterable[str] = (),
        server_password: str | None = None,
        node: str | None = None,
    ) -> None:
        """A state with ``limits``, reading the wall clock from ``clock``.

        ``ops`` are the names given with ``--op`` (operators once registered);
        ``server_password`` is what every connection must give first (None: nothing);
        ``node`` is this server's name in a cluster (None: a server on its own).
        """
        self.limits = limits
        self._clock = clock
        self.access = Access(ops)
        self.accounts = Accounts(self, self.access, server_password)
        self.moderation = Moderation(self, self.access)
        self._pending: dict[int, _Pending] = {}  # connections whose login is being checked
        self._pending_held: dict[int, list[Command]] = {}  # joined; their held lines are next
        self.members: dict[int, Member] = {}
        self.rooms: dict[str, RoomState] = {LOBBY: RoomState(LOBBY)}
        self._by_name: dict[str, Member] = {}
        self._guests = 0
        self._too_slow: list[Member] = []
        self.batch = Batch()
        self.chat_events = 0  # chat lines since start, for the status line
        self._resume_plan: dict[int, list[tuple[str, int]]] = {}  # rooms still to resume
        self.cluster = ClusterSide(self, node) if node is not None else None

    # -- start-up ---------------------------------------------------------------------

    def load_room(
        self,
        name: str,
        last_id: int,
        topic: str = "",
        topic_by: str = "",
        topic_ts: float = 0.0,
        recent: Iterable[StoredMessage] = (),
        topic_locked: bool = False,
    ) -> None:
        """Restore a room from the store: its ids go on from ``last_id``."""
        room = self.rooms.get(name) or RoomState(name)
        room.last_id, room.topic, room.topic_by, room.topic_ts = last_id, topic, topic_by, topic_ts
        room.topic_locked = topic_locked
        room.recent.extend(_Replay(record) for record in recent)
        oldest = room.recent[0].record.id if room.recent else last_id + 1
        room.complete = oldest <= 1
        self.rooms[name] = room

    def load_access(
        self,
        accounts: Iterable[str],
        ops: Iterable[OpRecord],
        bans: Iterable[BanRecord],
        mutes: Iterable[MuteRecord],
    ) -> None:
        """Restore registered names (their keys), operators, bans and mutes from the store."""
        self.access.load(accounts, ops, bans, mutes)
        for key, name in sorted(self.access.config_op_names.items()):
            if not self.access.registered(key):
                log.warning(
                    "--op %s: no account of that name is registered, so it has no powers; "
                    "register it at once (anyone who registers it becomes an operator)",
                    name,
                )

    # -- who is here ------------------------------------------------------------------

    @property
    def online(self) -> int:
        """Registered members, server-wide."""
        return len(self.members)

    def names(self, room: str = LOBBY) -> list[str]:
        """Members' names in ``room``, sorted without regard to case."""
        state = self.rooms.get(room)
        if state is None:
            return []
        names = [m.name for m in state.members()]
        names.extend(state.remote.values())
        return sorted(names, key=str.casefold)

    def member(self, conn_id: int) -> Member | None:
        return self.members.get(conn_id)

    def all_members(self) -> list[Member]:
        """Every member, in the order they joined."""
        return list(self.members.values())

    def holder(self, name: str) -> Member | None:
        """The member using ``name`` (or a name too like it), if any."""
        return self._by_name.get(name_key(name))

    def remote_holder(self, name: str) -> RemoteMember | None:
        """The member of another node using ``name`` (or one too like it), if any."""
        return self.cluster.holder(name_key(name)) if self.cluster is not None else None

    def publish(self, op: cluster.Op) -> None:
        """Publish ``op`` to the other nodes (in a cluster; else nothing)."""
        if self.cluster is not None:
            self.cluster.publish(op)

    def take_published(self) -> list[cluster.Op]:
        """What to publish to the other nodes since the last call, in order."""
        return self.cluster.take_published() if self.cluster is not None else []

    def apply(self, item: cluster.ClusterIn) -> None:
        """Apply what the cluster's log reports (see :mod:`triochat.core.remote`)."""
        if self.cluster is not None:
            self.cluster.apply(item)

    def resync_ops(self) -> list[cluster.Op]:
        """Everything the other nodes must know of this one: rooms, topics, members."""
        return self.cluster.resync_ops() if self.cluster is not None else []

    def logged_in(self, key: str) -> list[Member]:
        """Members logged into the account with name key ``key``."""
        return [member for member in self.members.values() if member.account == key]

    def now(self) -> float:
        """The wall clock the state stamps events with."""
        return self._clock()

    def address_ban(self, host: str | None) -> BanRecord | None:
        """The ban in force on the address ``host``, if any (the accept loop asks)."""
        return self.access.address_ban(host, self._clock())

    # -- delivery ---------------------------------------------------------------------

    def _put(self, member: Member, data: bytes) -> None:
        """Queue ``data`` for one member, never waiting.

        Policy on a full queue: the member is not reading fast enough to keep up, so it
        is disconnected as "too slow" once the current message is handled. Buffering
        without bound would let one stalled client exhaust the server's memory;
        waiting for it would stall everyone else.
        """
        if not member.link.put(data):
            self._too_slow.append(member)

    def _tell(self, member: Member, event: Event) -> None:
        """Send an event to one member, encoded for its mode and point of view."""
        self._put(member, encode(event, member.mode, member.name, member.current))

    def _error(self, member: Member, code: str, text: str) -> None:
        self._tell(member, ErrorEvent(self._clock(), code, text))

    def tell(self, member: Member, event: Event) -> None:
        """Send one member an event (for the account and moderation helpers)."""
        self._tell(member, event)

    def error(self, member: Member, code: str, text: str) -> None:
        """Send one member an error (for the account and moderation helpers)."""
        self._error(member, code, text)

    def change(self, change: Change, *, publish: bool = True) -> None:
        """Make an account, operator, ban or mute change, in memory and in the batch.

        In a cluster it is published too (unless ``publish`` is False: a ban running
        out runs out on every node by itself).
        """
        self.access.apply(change)
        self.batch.changes.append(change)
        if publish:
            self.publish(cluster.Changed(change))

    def save_room(self, room: RoomState) -> None:
        """Queue ``room``'s record (topic, lock) for the store."""
        self.batch.rooms.append(_record(room))

    def room_for(self, member: Member, room: str | None) -> RoomState | None:
        """The room a command is about (default: current), or None after an error."""
        return self._target(member, room, must_be_in=False)

    def _broadcast(self, room: RoomState, event: Event, skip: Member | None = None) -> None:
        """Send a room event to its members but ``skip``, encoded once per variant.

        The hottest loop of the server (one iteration per delivery): the puts are
        inlined rather than going through :meth:`_put` (measured: a call per
        delivery was a fifth of a burst's CPU).
        """
        too_slow = self._too_slow
        if room.json:
            data = encode_json(event)
            for member in room.json.values():
                if member is not skip and not member.link.put(data):
                    too_slow.append(member)
        if room.plain:
            here = there = b""
            name = room.name
            for member in room.plain.values():
                if member is skip:
                    continue
                if member.current == name:
                    here = here or encode_plain(event, None, name)
                    if not member.link.put(here):
                        too_slow.append(member)
                else:  # tagged with the room's name (the prefix depends only on the room)
                    there = there or encode_plain(event, None, "")
                    if not member.link.put(there):
                        too_slow.append(member)

    def _everyone(self, event: Event, skip: Member | None = None) -> None:
        """Send a server-wide event (a rename, shutdown) to every member but ``skip``."""
        encoded: dict[Mode, bytes] = {}
        for member in self.members.values():
            if member is not skip:
                data = encoded.get(member.mode)
                if data is None:
                    data = encoded[member.mode] = encode(event, member.mode)
                self._put(member, data)

    def broadcast(self, room: RoomState, event: Event) -> None:
        """Send a room event to all its members (for :mod:`triochat.core.remote`)."""
        self._broadcast(room, event)

    def everyone(self, event: Event) -> None:
        """Send a server-wide event to every member (for :mod:`triochat.core.remote`)."""
        self._everyone(event)

    def guest_name(self) -> str:
        """A free guest name (for :mod:`triochat.core.remote`)."""
        return self._guest_name()

    def room_or_new(self, name: str) -> RoomState:
        """The room ``name``, made (and stored) if this node has not heard of it yet."""
        room = self.rooms.get(name)
        if room is None:
            room = self.rooms[name] = RoomState(name)
            self.batch.rooms.append(_record(room))
        return room

    def force_rename(self, member: Member, name: str) -> None:
        """Rename ``member`` without asking the cluster (it already decided)."""
        old = member.name
        if self._by_name.get(name_key(old)) is member:
            del self._by_name[name_key(old)]
        member.name = name
        self._by_name[name_key(name)] = member
        event = Renamed(self._clock(), old, name)
        self._everyone(event, skip=member)
        self._tell(member, event)

    def notice_all(self, code: str, text: str) -> None:
        """Tell every member something about the server itself."""
        self._everyone(Notice(self._clock(), code, text))

    def tell_error(self, member: Member, code: str, text: str) -> None:
        """Send one member an error (for failures outside a command, e.g. a store read)."""
        if self.members.get(member.id) is member:
            self._error(member, code, text)

    def take_too_slow(self) -> list[Member]:
        """Members whose queue overflowed since the last call (the hub removes them)."""
        slow, self._too_slow = self._too_slow, []
        return slow

    def take_batch(self) -> Batch:
        """What must be committed before the output queued so far may be sent."""
        batch, self.batch = self.batch, Batch()
        return batch

    # -- joining and leaving ------------------------------------------------------------

    def _name_problem(
        self, name: str, member: Member | None = None, *, login: bool = False
    ) -> tuple[str, str] | None:
        """Why ``name`` cannot be used (by ``member``), as (error code, text).

        A registered name is only for a member logged into it, or (``login``) about to
        be: its password is being checked.
        """
        problem = name_error(name)
        if problem is not None:
            return "bad-name", problem
        key = name_key(name)
        ban = self.access.name_ban(key, self._clock())
        if ban is not None:
            return "banned", f"the name {name} is banned{_until(ban.until, self._clock())}"
        holder = self._by_name.get(key)
        held = holder.name if holder is not None and holder is not member else None
        remote = self.cluster.holder(key) if self.cluster is not None else None
        if remote is not None:
            held = remote.name
        if held is not None:
            if held.casefold() == name.casefold():
                return "name-taken", f"the name {name} is taken"
            return "name-taken", f"the name {name} is taken: it looks too much like {held}"
        registered = self.access.registered(key)
        if registered and not login and (member is None or member.account != key):
            return "name-registered", f"the name {name} is registered; /login {name} PASSWORD"
        return None

    def login_problem(self, name: str, member: Member | None) -> Problem | None:
        """Why ``member`` (None: a newcomer) cannot log in as ``name``, before any hashing."""
        problem = name_error(name)
        if problem is not None:
            return "bad-name", problem
        key = name_key(name)
        if not self.access.registered(key):
            return "no-such-account", f"the name {name} is not registered"
        if member is not None:
            if member.account == key and name_key(member.name) == key:
                return "bad-request", f"you are logged in as {member.name} already"
            if self._muted(member) is not None:
                return "muted", "you are muted: you cannot change your name"
        return self._name_problem(name, member, login=True)

    def log_in(self, member: Member, name: str, key: str) -> None:
        """``member`` proved the password of ``name``: give it the name and the account."""
        problem = self._name_problem(name, member, login=True)  # taken meanwhile?
        if problem is not None:
            self._error(member, *problem)
            return
        member.account = key
        if member.name != name:
            self._rename(member, name)
        log.info("[c%d] %s logged in", member.id, member.name)
        self._tell(member, AccountInfo(self._clock(), "logged-in", member.name))

    def _guest_name(self) -> str:
        # In a cluster, a guest name carries its node's tag, so nodes do not race for one.
        node = self.cluster.node if self.cluster is not None else None
        prefix = "guest-" if node is None else f"guest-{node[:4]}-"
        while True:
            self._guests += 1
            name = f"{prefix}{self._guests}"
            if name_key(name) not in self._by_name and self.remote_holder(name) is None:
                return name

    def register(
        self,
        conn_id: int,
        peer: str,
        link: Link,
        mode: Mode,
        first: Command | None,
        *,
        address: str | None = None,
        cleartext: bool = False,
        server_password: str | None = None,
    ) -> tuple[Member | None, Query | None]:
        """A new connection in ``mode``, with its first command (if any).

        JSON clients must start with a valid ``hello``; a bad or taken name is refused
        and the link closed (returns None). Plain clients join as the name of a first
        ``/nick`` or as a guest. Returns the member and, for a resume the cache cannot
        serve, a :class:`Query` for the hub.

        A first line that logs in (a hello with a ``password`` for a registered name, a
        plain ``/login``) makes the connection *pending*: it returns ``(None, None)``,
        and the member joins in :meth:`password_done`. ``address`` is the client's IP
        address; ``cleartext`` says a password sent on it crosses a network in the
        clear; ``server_password`` is what a plain client sent with ``/pass``.
        """
        arrival = _Arrival(conn_id, peer, link, mode, address, cleartext)
        if isinstance(first, Hello) and first.server_password is not None:
            server_password = first.server_password
        problem = self.accounts.gate(arrival.where, server_password)
        if problem is not None:
            self._refuse(arrival, _wanted(first), problem)
            return None, None
        sent_password = server_password is not None
        if mode is Mode.JSON:
            if isinstance(first, Invalid):
                problem = (first.code, first.text)
            elif isinstance(first, Hello):
                problem = self._name_problem(first.name, login=first.password is not None)
            else:  # pragma: no cover - parse_registration only picks JSON for a hello
                problem = ("bad-request", "a JSON client must start with hello")
            password = first.password if isinstance(first, Hello) else None
            if problem is None and password is not None:
                assert isinstance(first, Hello)
                if self.access.registered(name_key(first.name)):
                    problem = self._start_login(arrival, first, password)
                    if problem is None:
                        return None, None
            if problem is not None:
                self._refuse(arrival, _wanted(first), problem)
                return None, None
            assert isinstance(first, Hello)
            member = self._admit(arrival, first.name, since=dict(first.since))
            if first.password is not None:
                text = f"the name {first.name} is not registered (the password was not used)"
                self._error(member, "no-such-account", text)
            if sent_password:
                self.accounts.warn_cleartext(member)
            return member, self._resume(member, first)
        if isinstance(first, Nick | Login):
            if isinstance(first, Nick):
                problem = self._name_problem(first.name)
                if problem is None:
                    member = self._admit(arrival, first.name)
                    if sent_password:
                        self.accounts.warn_cleartext(member)
                    return member, None
            else:
                problem = self.login_problem(first.name, None) or self._start_login(
                    arrival, first, first.password
                )
                if problem is None:
                    return None, None
            log.info("[c%d] refused %r from %s: %s", conn_id, first.name, peer, problem[1])
            member = self._admit(arrival, self._guest_name())
            self._error(member, problem[0], f"{problem[1]}; you joined as {member.name}")
            if sent_password or isinstance(first, Login):
                self.accounts.warn_cleartext(member)
            return member, None
        member = self._admit(arrival, self._guest_name())
        if sent_password:
            self.accounts.warn_cleartext(member)
        if first is not None:
            return member, self.handle(member, first)
        return member, None

    def _refuse(self, arrival: _Arrival, wanted: str, problem: tuple[str, str]) -> None:
        """Tell a connection why it cannot join, and close it."""
        log.info("[c%d] refused %r from %s: %s", arrival.conn_id, wanted, arrival.peer, problem[1])
        # A brand-new link has room; if it is already gone, nobody is listening.
        event = ErrorEvent(self._clock(), *problem)
        arrival.link.put(encode(event, arrival.mode))
        arrival.link.close()

    def _start_login(
        self, arrival: _Arrival, first: Hello | Login, password: str
    ) -> tuple[str, str] | None:
        """Check a first line's password in the hub's worker; the connection waits."""
        problem = self.accounts.start(
            JobKind.LOGIN, arrival.conn_id, first.name, arrival.where, password
        )
        if problem is None:
            self._pending[arrival.conn_id] = _Pending(arrival, first)
        return problem

    def hold(self, conn_id: int, commands: list[Command]) -> None:
        """Keep what a pending connection sends until it has joined (others: ignored).

        Past :data:`MAX_HELD_COMMANDS` the connection is cut: no client needs to send
        that much before its login is answered.
        """
        pending = self._pending.get(conn_id)
        if pending is None:
            return
        pending.held.extend(commands)
        if len(pending.held) > MAX_HELD_COMMANDS:
            del self._pending[conn_id]
            log.info("[c%d] sent too much while its login was checked; cut", conn_id)
            pending.arrival.link.cut()

    def take_jobs(self) -> list[Job]:
        """Password jobs queued since the last call, for the hub's worker thread."""
        return self.accounts.take_jobs()

    def password_done(self, job: Job, outcome: Outcome) -> tuple[Member | None, Query | None]:
        """A password job is back from the worker thread.

        Returns the member it concerns and, for a pending hello with ``since``, the
        resume :class:`Query`. A pending connection joins now (or is refused, or joins
        as a guest); the hub then handles :meth:`take_held`.
        """
        pending = self._pending.pop(job.conn_id, None)
        if pending is None:
            member = self.members.get(job.conn_id)
            if member is None:
                self.accounts.finished(job, outcome)  # a failure still counts
                return None, None
            self.accounts.member_done(member, job, outcome)
            return member, None
        arrival, first = pending.arrival, pending.first
        problem = self.accounts.finished(job, outcome) or self._name_problem(first.name, login=True)
        if problem is not None and arrival.mode is Mode.JSON:
            self._refuse(arrival, first.name, problem)
            return None, None
        if problem is not None:
            member = self._admit(arrival, self._guest_name())
            self._error(member, problem[0], f"{problem[1]}; you joined as {member.name}")
        else:
            since = dict(first.since) if isinstance(first, Hello) else None
            member = self._admit(arrival, first.name, since=since, account=job.key)
            log.info("[c%d] %s logged in", member.id, member.name)
        self.accounts.warn_cleartext(member)
        self._pending_held[member.id] = pending.held
        if problem is None and isinstance(first, Hello):
            return member, self._resume(member, first)
        return member, None

    def take_held(self, conn_id: int) -> list[Command]:
        """What a connection sent while its login was checked (after :meth:`password_done`)."""
        return self._pending_held.pop(conn_id, [])

    def _admit(
        self,
        arrival: _Arrival,
        name: str,
        *,
        since: dict[str, int] | None = None,
        account: str | None = None,
    ) -> Member:
        conn_id, peer, mode = arrival.conn_id, arrival.peer, arrival.mode
        member = Member(conn_id, peer, arrival.link, name, mode)
        member.address, member.cleartext, member.account = (
            arrival.address,
            arrival.cleartext,
            account,
        )
        self.members[conn_id] = member
        self._by_name[name_key(name)] = member
        lobby = self.rooms[LOBBY]
        log.info(
            "[c%d] %s joined from %s (%s, %d online)", conn_id, name, peer, mode.value, self.online
        )
        self._add_to_room(member, lobby)
        self.publish(cluster.Arrive(conn_id, name, name_key(name), (LOBBY,)))
        self._tell(member, Welcome(self._clock(), name, lobby.online, LOBBY))
        if since is None or LOBBY not in since:
            self._replay_recent(member, lobby, self.limits.history, header=True)
        return member

    def _add_to_room(self, member: Member, room: RoomState, *, announce_self: bool = False) -> None:
        """Put ``member`` in ``room``, make it current, and tell the room."""
        (room.json if member.mode is Mode.JSON else room.plain)[member.id] = member
        member.rooms.append(room.name)
        member.current = room.name
        now = self._clock()
        joined = Joined(now, room.name, member.name, room.online)
        if announce_self:  # a /join: confirm it (a newcomer's welcome does that instead)
            self._tell(member, joined)
            if member.mode is Mode.JSON:
                self._tell(member, Current(now, room.name))
        if room.online > self.limits.coalesce_above:
            room.pending_joined += 1
            if len(room.pending_names) < PRESENCE_NAMES:
                room.pending_names.append(member.name)
            return
        self._broadcast(room, joined, skip=member)

    def _remove_from_room(self, member: Member, room: RoomState, reason: str) -> None:
        """Take ``member`` out of ``room`` and tell the others (not the member)."""
        (room.json if member.mode is Mode.JSON else room.plain).pop(member.id, None)
        member.rooms.remove(room.name)
        if room.online >= self.limits.coalesce_above:
            room.pending_left += 1
            return
        self._broadcast(room, Left(self._clock(), room.name, member.name, room.online, reason))

    def remove(self, member: Member, reason: str) -> None:
        """``member`` leaves the server; tell every room it was in.

        A member leaving of its own accord has its link closed, so what is queued is
        sent and then the connection ends; a member that is "too slow" is cut off.
        """
        if self.members.get(member.id) is not member:
            return  # already gone (a Gone after the state dropped it itself)
        del self.members[member.id]
        key = name_key(member.name)
        del self._by_name[key]
        self.publish(cluster.Leave(member.id, member.name, key, reason))
        if reason == "too slow":
            member.link.cut()
        else:
            member.link.close()
        for name in list(member.rooms):
            self._remove_from_room(member, self.rooms[name], reason)
        log.info("[c%d] %s left: %s (%d online)", member.id, member.name, reason, self.online)

    def gone(self, conn_id: int, reason: str) -> None:
        """The connection ``conn_id`` ended (``closed``, ``lost``, ...)."""
        self._pending.pop(conn_id, None)  # its password check's outcome will find nobody
        self._pending_held.pop(conn_id, None)
        member = self.members.get(conn_id)
        if member is not None:
            self.remove(member, reason)

    def drop_too_slow(self) -> None:
        """Disconnect every member whose queue overflowed."""
        while self._too_slow:
            self.remove(self._too_slow.pop(), "too slow")

    def tick(self) -> None:
        """Housekeeping: presence summaries of large rooms; bans and mutes that ran out."""
        for what, change in self.access.expired(self._clock()):
            log.info("%s ran out", what)
            self.change(change, publish=False)
        for room in self.rooms.values():
            if room.pending_joined or room.pending_left:
                summary = Presence(
                    self._clock(),
                    room.name,
                    room.pending_joined,
                    room.pending_left,
                    room.online,
                    tuple(room.pending_names),
                )
                room.pending_joined = room.pending_left = 0
                room.pending_names.clear()
                self._broadcast(room, summary)

    def stop(self) -> None:
        """Server shutdown: tell everyone, close every link."""
        self._everyone(ShuttingDown(self._clock()))
        for member in self._too_slow:
            member.link.cut()
        self._too_slow.clear()
        for member in self.members.values():
            member.link.close()
        for pending in self._pending.values():
            pending.arrival.link.close()
        self._pending.clear()
        log.info("shutdown: %d members told", self.online)
        self.members.clear()
        self._by_name.clear()
        if self.cluster is not None:
            self.cluster.clear()
        for room in self.rooms.values():
            room.plain.clear()
            room.json.clear()
            room.remote.clear()

    # -- commands -----------------------------------------------------------------------

    def handle(self, member: Member, command: Command) -> Query | None:
        """Carry out one command from ``member``; a Query if the store must be read."""
        match command:
            case Say(text=text, room=room):
                self._chat(member, room, "say", text)
            case Me(text=text, room=room):
                self._chat(member, room, "me", text)
            case Nick(name=name):
                self._rename(member, name)
            case Who(room=room):
                target = self._target(member, room, must_be_in=False)
                if target is not None:
                    names = tuple(self.names(target.name))
                    self._tell(member, WhoList(self._clock(), target.name, names))
            case Msg(to=to, text=text):
                self._private(member, to, text)
            case Help():
                if self.access.is_op(member.account):
                    lines = (*HELP_LINES, *OPERATOR_HELP_LINES)
                    self._tell(member, HelpText(self._clock(), lines))
                else:
                    self._tell(member, HelpText(self._clock()))
            case Quit():
                self.remove(member, "quit")
            case Join(room=room):
                return self._join(member, room, None)
            case Part(room=room):
                self._part(member, room)
            case Rooms():
                self._list_rooms(member)
            case Topic(text=text, room=room):
                self._topic(member, text, room)
            case History(room=room, limit=limit, before=before):
                target = self._target(member, room, must_be_in=False)
                if target is not None:
                    return self._history(member, target, limit, before)
            case Hello():
                self._error(member, "bad-request", "already joined; use nick to change name")
            case Invalid(code=code, text=text):
                self._error(member, code, text)
            case Register() | Login() | ChangePassword() | Pass():
                self.accounts.handle(member, command)
            case Op() | Deop() | Kick() | Ban() | Unban() | Bans() | Mute() | Unmute() | Drop():
                self.moderation.handle(member, command)
            case LockTopic():
                self.moderation.handle(member, command)
            case _:
                assert_never(command)
        return None

    def _muted(self, member: Member) -> MuteRecord | None:
        """The mute in force on ``member``'s name, if any."""
        if not self.access.mutes:
            return None
        return self.access.mute(name_key(member.name), self._clock())

    def _refuse_muted(self, member: Member) -> bool:
        """If ``member`` is muted, tell it so and return True."""
        mute = self._muted(member)
        if mute is None:
            return False
        text = f"you are muted{_until(mute.until, self._clock())}: you can read but not speak"
        self._error(member, "muted", text)
        return True

    def _target(self, member: Member, room: str | None, *, must_be_in: bool) -> RoomState | None:
        """The room a command is about (default: current), or None after an error."""
        if room is None:
            room = member.current
            if room is None:
                self._error(member, "no-room", "you are in no room; /join one first")
                return None
        state = self.rooms.get(room)
        if state is None:
            self._error(member, "no-such-room", f"no such room: {room}")
            return None
        if must_be_in and room not in member.rooms:
            self._error(member, "not-in-room", f"you are not in {room}; /join it first")
            return None
        return state

    def _chat(self, member: Member, room_name: str | None, kind: str, text: str) -> None:
        room = self._target(member, room_name, must_be_in=True)
        if room is None or self._refuse_muted(member):
            return
        now = self._clock()
        if self.cluster is not None:  # the cluster's log numbers it; see apply()
            floor = max(room.floor, room.last_id)
            line = cluster.Line(
                member.id, member.name, name_key(member.name), room.name, kind, text, now, floor
            )
            self.cluster.publish(line)
            return
        room.last_id += 1
        event: Chat
        if kind == "say":
            event = Said(now, room.name, room.last_id, member.name, text)
        else:
            event = Acted(now, room.name, room.last_id, member.name, text)
        self.deliver_chat(room, event, member)

    def deliver_chat(self, room: RoomState, event: Chat, sender: Member | None) -> None:
        """Store, cache and broadcast a numbered chat line (``sender``: if on this node)."""
        record = stored_message(event)
        self.batch.messages.append(record)
        if len(room.recent) == room.recent.maxlen:
            room.complete = False  # the oldest cached line is about to be only on disk
        room.recent.append(_Replay(record))
        self.chat_events += 1
        # A plain member's terminal already shows its own line; JSON clients get theirs
        # back, to show the server's order, id and time.
        skip = sender if sender is not None and sender.mode is Mode.PLAIN else None
        self._broadcast(room, event, skip=skip)

    def _rename(self, member: Member, name: str) -> None:
        old = member.name
        if name == old:
            self._error(member, "bad-request", f"you are already {name}")
            return
        problem = self._name_problem(name, member)
        if problem is None and self._muted(member) is not None:
            problem = ("muted", "you are muted: you cannot change your name")
        if problem is not None:
            log.info("[c%d] refused rename of %s to %r: %s", member.id, old, name, problem[1])
            self._error(member, *problem)
            return
        if member.account is not None and name_key(name) != member.account:
            member.account = None  # one is logged in while one holds the name
        del self._by_name[name_key(old)]
        member.name = name
        self._by_name[name_key(name)] = member
        self.publish(cluster.Rename(member.id, old, name_key(old), name, name_key(name)))
        log.info("[c%d] %s is now known as %s", member.id, old, name)
        event = Renamed(self._clock(), old, name)
        self._everyone(event, skip=member)
        self._tell(member, event)  # in plain mode: "you are now known as ..."

    def _private(self, member: Member, to: str, text: str) -> None:
        if self._refuse_muted(member):
            return
        target = self._by_name.get(name_key(to))
        if target is None:
            remote = self.remote_holder(to)
            if remote is None:
                self._error(member, "no-such-user", f"no such user: {to}")
                return
            now = self._clock()
            key = name_key(member.name)
            op = cluster.Private(member.id, member.name, key, remote.token, remote.name, text, now)
            self.publish(op)
            self._tell(member, Private(now, member.name, remote.name, text))
            return
        event = Private(self._clock(), member.name, target.name, text)
        self._tell(target, event)
        if target is not member:
            self._tell(member, event)

    def _join(self, member: Member, name: str, after: int | None) -> Query | None:
        room = self.rooms.get(name)
        if room is not None and name in member.rooms:
            # Already in it: it becomes (or stays) current, and the member is told so
            # either way: a client waiting for a reply to its join gets one.
            member.current = name
            self._tell(member, Current(self._clock(), name))
            return None
        if len(member.rooms) >= self.limits.max_rooms_per_member:
            limit = self.limits.max_rooms_per_member
            self._error(member, "too-many-rooms", f"you are in {limit} rooms already; /part one")
            return None
        if room is None:
            if len(self.rooms) >= self.limits.max_rooms:
                self._error(member, "too-many-rooms", "this server has no room for more rooms")
                return None
            room = self.rooms[name] = RoomState(name)
            self.batch.rooms.append(_record(room))
            log.info("[c%d] %s created %s", member.id, member.name, name)
            self.publish(cluster.RoomMade(name))
        self._add_to_room(member, room, announce_self=True)
        self.publish(cluster.Enter(member.id, member.name, name_key(member.name), name))
        if room.topic:
            topic = TopicInfo(
                self._clock(), name, room.topic, room.topic_by, False, room.topic_locked
            )
            self._tell(member, topic)
        if after is not None:
            return self._since(member, room, after)
        self._replay_recent(member, room, self.limits.history, header=True)
        return None

    def _part(self, member: Member, room_name: str | None) -> None:
        room = self._target(member, room_name, must_be_in=True)
        if room is None:
            return
        self._remove_from_room(member, room, "part")
        key = name_key(member.name)
        self.publish(cluster.Exit(member.id, member.name, key, room.name, "part"))
        self._tell(member, Left(self._clock(), room.name, member.name, room.online, "part"))
        if member.current == room.name:
            member.current = member.rooms[-1] if member.rooms else None
            if member.current is not None:
                self._tell(member, Current(self._clock(), member.current))

    def _list_rooms(self, member: Member) -> None:
        rooms = tuple(
            RoomInfo(room.name, room.online, room.topic)
            for room in sorted(self.rooms.values(), key=lambda r: r.name)
        )
        self._tell(member, RoomList(self._clock(), rooms))

    def _topic(self, member: Member, text: str | None, room_name: str | None) -> None:
        room = self._target(member, room_name, must_be_in=text is not None)
        if room is None:
            return
        now = self._clock()
        if text is None:
            topic = TopicInfo(now, room.name, room.topic, room.topic_by, False, room.topic_locked)
            self._tell(member, topic)
            return
        if room.topic_locked and not self.access.is_op(member.account):
            text = f"the topic of {room.name} is locked: only operators may change it"
            self._error(member, "topic-locked", text)
            return
        if self._refuse_muted(member):
            return
        if len(text) > MAX_TOPIC_CHARS:
            self._error(member, "too-long", f"a topic is at most {MAX_TOPIC_CHARS} characters")
            return
        room.topic, room.topic_by, room.topic_ts = text, member.name, now
        self.batch.rooms.append(_record(room))
        self.publish(cluster.TopicSet(room.name, text, member.name, now, room.topic_locked))
        log.info("[c%d] %s set the topic of %s", member.id, member.name, room.name)
        changed = TopicInfo(now, room.name, text, member.name, True, room.topic_locked)
        self._broadcast(room, changed)

    # -- history ----------------------------------------------------------------------

    def _replay_recent(self, member: Member, room: RoomState, limit: int, *, header: bool) -> None:
        """Replay the latest ``limit`` lines of ``room`` from the cache (joining)."""
        if limit <= 0 or not room.recent:
            return
        entries = list(room.recent)[-limit:]
        if header and member.mode is Mode.PLAIN:
            self._put(member, history_header(len(entries)))
        mode = member.mode
        for entry in entries:
            self._put(member, entry.bytes_for(mode))

    def _history(
        self, member: Member, room: RoomState, limit: int, before: int | None
    ) -> Query | None:
        """``/history``: from the cache if it covers the request, else a Query."""
        cached = [e for e in room.recent if before is None or e.record.id < before]
        if len(cached) >= limit or room.complete:
            records = [e.record for e in cached[-limit:]]
            self.replay(Query(member, room.name, limit, None, before, True, True), records, 0)
            return None
        return Query(member, room.name, limit, None, before, header=True, end=True)

    def _since(self, member: Member, room: RoomState, after: int) -> Query | None:
        """Resume: every line of ``room`` after id ``after`` (up to the resume limit)."""
        limit = self.limits.resume_limit
        newer = [e.record for e in room.recent if e.record.id > after]
        oldest_cached = room.recent[0].record.id if room.recent else room.last_id + 1
        if room.complete or oldest_cached <= after + 1:
            skipped = max(0, len(newer) - limit)
            self.replay(Query(member, room.name, limit, after), newer[skipped:], skipped)
            return None
        return Query(member, room.name, limit, after)

    def _resume(self, member: Member, hello: Hello) -> Query | None:
        """After a hello: replay the lobby since its id, then (re)join the other rooms.

        Returns the first Query the cache cannot serve; the hub calls
        :meth:`continue_resume` after answering it, until it returns None.
        """
        self._resume_plan[member.id] = [*hello.since, *((room, -1) for room in hello.rooms)]
        return self.continue_resume(member)

    def continue_resume(self, member: Member) -> Query | None:
        """Go on with a resume after a Query was answered (see :meth:`_resume`)."""
        plan = self._resume_plan.get(member.id)
        if plan is None:
            return None
        while plan:
            room_name, after = plan.pop(0)
            if room_name == LOBBY:
                query = self._since(member, self.rooms[LOBBY], after) if after >= 0 else None
            elif room_name in member.rooms:
                continue
            else:
                query = self._join(member, room_name, after if after >= 0 else None)
            if query is not None:
                return query
        self._resume_plan.pop(member.id, None)
        if member.current != LOBBY and LOBBY in member.rooms and member.mode is Mode.JSON:
            member.current = LOBBY  # a resumed client starts where a new one would
            self._tell(member, Current(self._clock(), LOBBY))
        return None

    def replay(self, query: Query, records: list[StoredMessage], skipped: int) -> None:
        """Send ``records`` (oldest first) to the member that asked, as history.

        ``skipped`` older lines did not fit: a :class:`Gap` says how many.
        """
        member = query.member
        if self.members.get(member.id) is not member:
            return  # it left while the store was being read
        now = self._clock()
        if skipped:
            self._tell(member, Gap(now, query.room, skipped))
        if query.header and member.mode is Mode.PLAIN:
            where = query.room if query.room != member.current else None
            self._put(member, history_header(len(records), where))
        for record in records:
            self._tell(member, chat_event(record))
        if query.end and member.mode is Mode.JSON:
            oldest = records[0].id if records else query.before or 1
            self._tell(member, HistoryEnd(now, query.room, len(records), oldest > 1))


def _record(room: RoomState) -> RoomRecord:
    """A snapshot of ``room`` for the store (created, or its topic changed)."""
    return RoomRecord(
        room.name, room.last_id, room.topic, room.topic_by, room.topic_ts, room.topic_locked
    )


def _until(until: float | None, now: float) -> str:
    """`` (9m more)`` for a ban or mute that ends, ``""`` for one until lifted."""
    return "" if until is None else f" ({format_remaining(until - now)} more)"


def _wanted(first: Command | None) -> str:
    """The name a first line asked for, for the log."""
    if isinstance(first, Hello | Nick | Login):
        return first.name
    return "a malformed hello" if isinstance(first, Invalid) else "a guest name"
