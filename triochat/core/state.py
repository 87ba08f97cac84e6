"""The chat state: the façade over members, rooms, names and history. No I/O, no trio.

Rules of this package (the modules behind the façade follow them too):

* **One owner.** The server's hub task is the only caller, so every member sees events
  in the same order and nothing needs a lock. Everything is synchronous: a step decides
  what a command means, changes the state, and queues bytes on members' links. Tests
  drive it with plain function calls and fake links.
* **It never waits for a member.** A full link makes that member "too slow"; it is
  disconnected at the end of the step, and everyone else carries on.
* **Each broadcast is encoded once per wire protocol and variant**, never once per
  member (:mod:`triochat.core.protocols`).
* **One drain point.** What a step asks of the world beyond members' links (the store's
  batch, what to publish to other nodes, password checks) collects in an
  :class:`~triochat.core.model.Effects`; the hub takes it once per batch
  (:meth:`ChatState.take_effects`) and commits the batch before it lets any queued
  byte go out, so nothing a client has seen can be missing after a crash.
* **Replays are paced** (:mod:`triochat.core.history`): a resume is queued on the
  member's link and read by the server as the connection drains.
* **Dispatch is a table.** A command's row in :data:`triochat.core.commands.COMMANDS`
  names its handler; :attr:`ChatState.handlers` maps those names to the methods of
  the parts: :mod:`~triochat.core.arrivals` (joining, names, leaving),
  :mod:`~triochat.core.talk` (chat, private messages, who, away),
  :mod:`~triochat.core.rooms` (and :mod:`~triochat.core.roomcare`: room quotas,
  expiry), :mod:`~triochat.core.accounts`,
  :mod:`~triochat.core.moderation`, and in a cluster :mod:`~triochat.core.remote`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from triochat.core import cluster
from triochat.core.access import Access
from triochat.core.accounts import Accounts, Problem
from triochat.core.arrivals import Arrival, Arrivals
from triochat.core.codec import Mode
from triochat.core.commands import COMMANDS, Command, Hello, Several
from triochat.core.events import Chat, Event, Notice, Presence
from triochat.core.history import Replays
from triochat.core.ircdesk import IrcDesk
from triochat.core.logevents import log_event
from triochat.core.model import CachedLine, Effects, Limits, Link, Member, Query, RoomState
from triochat.core.moderation import Moderation
from triochat.core.names import LOBBY
from triochat.core.notify import Notifications
from triochat.core.passwords import Job, Outcome
from triochat.core.records import BanRecord, Change, MuteRecord, OpRecord, Pref, StoredMessage
from triochat.core.remote import ClusterSide, RemoteMember
from triochat.core.roomcare import RoomCare
from triochat.core.rooms import Rooms
from triochat.core.talk import Talk
from triochat.core.world import World

__all__ = ["ChatState", "Limits", "Link", "Member", "Query", "RoomState", "StateStatistics"]

log = logging.getLogger(__name__)

Handler = Callable[[Member, Any], None]


@dataclass(frozen=True, slots=True)
class StateStatistics:
    """What the chat state has done since start (see :meth:`ChatState.statistics`)."""

    members: int  # on this node now
    rooms: int
    chat_lines: int  # numbered chat lines delivered (say and me)
    messages: dict[str, int]  # by kind: say, me, private
    deliveries: int  # events queued to members (a broadcast counts its audience)
    disconnects: dict[str, int]  # members gone, by reason (kicks and bans as one each)
    too_slow: int  # members dropped because they did not read


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
        self.access = Access(ops)
        self.world = world = World(limits, clock, self.access)
        self.members = world.members
        self.rooms = world.rooms
        self.accounts = Accounts(self, self.access, server_password)
        self.moderation = Moderation(self, self.access)
        self.cluster = ClusterSide(self, self.moderation, node) if node is not None else None
        world.cluster = self.cluster
        self.history = Replays(world)
        self.arrivals = Arrivals(world, self.accounts, self.history)
        self.talk = Talk(world, self.arrivals, self.access)
        self.room_care = RoomCare(world, self.access)
        self.room_ops = Rooms(world, self.arrivals, self.history, self.access, self.room_care)
        self.irc = IrcDesk(world, self.arrivals, self.access, self.handle)
        self.notifications = notes = Notifications(world)
        talk, rooms = self.talk, self.room_ops
        self.handlers: dict[str, Handler] = {
            "say": talk.say,
            "act": talk.say,
            "private": talk.private,
            "rename": lambda member, command: talk.rename(member, command.name),
            "who": lambda member, command: talk.who(member, command.room),
            "away": talk.away,
            "notify": notes.notify,
            "mentions": lambda member, command: notes.mentions(member),
            "help": lambda member, command: talk.help(member),
            "quit": lambda member, command: self.remove(member, "quit"),
            "join": lambda member, command: rooms.join(member, command.room),
            "part": lambda member, command: rooms.part(member, command.room, command.reason),
            "list_rooms": lambda member, command: rooms.list_rooms(member),
            "topic": lambda member, command: rooms.topic(member, command.text, command.room),
            "history": rooms.history,
            "search": self.history.search,
            "accounts": self.accounts.handle,
            "moderation": self.moderation.handle,
            "hello_again": lambda member, command: world.error(
                member, "bad-request", "already joined; use nick to change name"
            ),
            "invalid": lambda member, command: world.error(member, command.code, command.text),
            "irc": self.irc.ask,
            "room_kick": self.irc.room_kick,
            "several": self._several,
        }
        missing = {spec.handler for spec in COMMANDS} - set(self.handlers)
        if missing:  # pragma: no cover - tests/test_away.py checks every row
            raise RuntimeError(f"commands without a handler: {sorted(missing)}")
        # The dispatch proper: each command class straight to its row's handler.
        self._dispatch: dict[type, Handler] = {
            kind: self.handlers[spec.handler] for spec in COMMANDS for kind in spec.command
        }

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
        room.recent.extend(CachedLine(record) for record in recent)
        oldest = room.recent[0].record.id if room.recent else last_id + 1
        room.complete = oldest <= 1
        self.rooms[name] = room

    def load_private(self, last_id: int) -> None:
        """Restore the last private line id: stored private lines go on from it."""
        self.world.private_last_id = max(self.world.private_last_id, last_id)

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
                log_event(log, "accounts.op_unregistered", name=name)

    def load_prefs(self, prefs: Iterable[Pref]) -> None:
        """Restore accounts' /notify levels and last-seen times from the store."""
        self.notifications.load(prefs)

    # -- the steps the hub drives ---------------------------------------------------------

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
    ) -> Member | None:
        """A new connection in ``mode``, with its first command (if any).

        JSON clients must start with a valid ``hello``; a bad or taken name is refused
        and the link closed (returns None). Plain clients join as the name of a first
        ``/nick`` or as a guest. A first line that logs in (a hello with a ``password``
        for a registered name, a plain ``/login``) makes the connection *pending*: it
        returns None, and the member joins in :meth:`password_done`. ``address`` is the
        client's IP address; ``cleartext`` says a password sent on it crosses a network
        in the clear; ``server_password`` is what a plain client sent with ``/pass``.
        """
        arrival = Arrival(conn_id, peer, link, mode, address, cleartext)
        member, follow = self.arrivals.register(arrival, first, server_password)
        if member is not None:
            self._follow(member, follow)
        self.drop_too_slow()
        return member

    def handle(self, member: Member, command: Command) -> None:
        """Carry out one command from ``member``, by its row's handler."""
        self._dispatch[type(command)](member, command)
        if self.world.too_slow:
            self.drop_too_slow()

    def _several(self, member: Member, command: Several) -> None:
        for one in command.commands:
            if self.members.get(member.id) is not member:
                break  # it quit meanwhile
            self.handle(member, one)

    def hold(self, conn_id: int, commands: list[Command]) -> None:
        """Keep what a pending connection sends until it has joined."""
        self.arrivals.hold(conn_id, commands)

    def password_done(self, job: Job, outcome: Outcome) -> Member | None:
        """A password job is back from the worker thread: the member it concerns.

        A pending connection joins now (or is refused, or joins as a guest), resumes,
        and what it sent meanwhile is handled, in order.
        """
        member, resume, held = self.arrivals.password_done(job, outcome)
        if member is not None:
            if member.account is not None:
                self.notifications.tell_all(member)
            self._follow(member, resume)
            for command in held:
                if self.members.get(member.id) is not member:
                    break
                self._dispatch[type(command)](member, command)
        self.drop_too_slow()
        return member

    def _follow(self, member: Member, follow: Command | None) -> None:
        if isinstance(follow, Hello):
            self.room_ops.resume(member, follow)
        elif follow is not None:
            self._dispatch[type(follow)](member, follow)

    def gone(self, conn_id: int, reason: str) -> None:
        """The connection ``conn_id`` ended (``closed``, ``lost``, ...)."""
        self.arrivals.gone(conn_id, reason)
        self.drop_too_slow()

    def remove(self, member: Member, reason: str) -> None:
        """``member`` leaves the server; every room it was in is told."""
        self.arrivals.remove(member, reason)

    def drop_too_slow(self) -> None:
        """Disconnect every member whose queue overflowed."""
        world = self.world
        while world.too_slow:
            for member in world.take_too_slow():
                self.arrivals.remove(member, "too slow")

    def tick(self) -> None:
        """Housekeeping: presence summaries of large rooms; bans and mutes that ran out;
        empty rooms that expired (:mod:`triochat.core.roomcare`)."""
        now = self.world.clock()
        for what, change in self.access.expired(now):
            log_event(log, "moderation.expired", what=what)
            self.change(change, publish=False)
        for room in self.rooms.values():
            if room.pending_joined or room.pending_left:
                summary = Presence(
                    now,
                    room.name,
                    room.pending_joined,
                    room.pending_left,
                    room.online,
                    tuple(room.pending_names),
                )
                room.pending_joined = room.pending_left = 0
                room.pending_names.clear()
                self.world.broadcast(room, summary)
        self.room_care.expire(now)
        self.drop_too_slow()

    def apply(self, item: cluster.ClusterIn) -> None:
        """Apply what the cluster's log reports (see :mod:`triochat.core.remote`)."""
        if self.cluster is not None:
            self.cluster.apply(item)
            self.drop_too_slow()

    def stop(self) -> None:
        """Server shutdown: tell everyone, close every link."""
        self.arrivals.stop()

    def take_effects(self) -> Effects:
        """What the steps since the last call ask of the store, the cluster and the
        password worker (the one drain point; see the module rules)."""
        effects = self.world.take_effects()
        effects.jobs.extend(self.accounts.take_jobs())
        return effects

    def statistics(self) -> StateStatistics:
        """The state's counters now (cheap: sizes and plain ints)."""
        world = self.world
        return StateStatistics(
            members=len(world.members),
            rooms=len(world.rooms),
            chat_lines=world.chat_events,
            messages=dict(world.messages),
            deliveries=world.deliveries,
            disconnects=dict(world.disconnects),
            too_slow=world.too_slow_dropped,
        )

    # -- who is here ------------------------------------------------------------------

    @property
    def online(self) -> int:
        """Registered members, server-wide."""
        return len(self.members)

    @property
    def chat_events(self) -> int:
        """Chat lines since start."""
        return self.world.chat_events

    @property
    def pending(self) -> int:
        """Connections whose login is being checked."""
        return self.arrivals.pending

    def is_pending(self, conn_id: int) -> bool:
        """Whether the connection ``conn_id`` waits for its login to be checked."""
        return self.arrivals.is_pending(conn_id)

    def names(self, room: str = LOBBY) -> list[str]:
        """Members' names in ``room``, sorted without regard to case."""
        return self.world.names(room)

    def member(self, conn_id: int) -> Member | None:
        return self.members.get(conn_id)

    def all_members(self) -> list[Member]:
        """Every member, in the order they joined."""
        return list(self.members.values())

    def holder(self, name: str) -> Member | None:
        """The member using ``name`` (or a name too like it), if any."""
        return self.world.holder(name)

    def remote_holder(self, name: str) -> RemoteMember | None:
        """The member of another node using ``name`` (or one too like it), if any."""
        return self.world.remote_holder(name)

    def logged_in(self, key: str) -> list[Member]:
        """Members logged into the account with name key ``key``."""
        return [member for member in self.members.values() if member.account == key]

    def resync_ops(self) -> list[cluster.Op]:
        """Everything the other nodes must know of this one: rooms, topics, members."""
        return self.cluster.resync_ops() if self.cluster is not None else []

    def now(self) -> float:
        """The wall clock the state stamps events with."""
        return self.world.clock()

    def address_ban(self, host: str | None) -> BanRecord | None:
        """The ban in force on the address ``host``, if any (the accept loop asks)."""
        return self.access.address_ban(host, self.world.clock())

    # -- the port the helpers use (triochat.core.model.ChatPort) ----------------------------

    def tell(self, member: Member, event: Event) -> None:
        """Send one member an event."""
        self.world.tell(member, event)

    def error(self, member: Member, code: str, text: str) -> None:
        """Send one member an error."""
        self.world.error(member, code, text)

    def tell_error(self, member: Member, code: str, text: str) -> None:
        """Send one member an error, if it is still here (outside a command)."""
        if self.members.get(member.id) is member:
            self.world.error(member, code, text)

    def broadcast(self, room: RoomState, event: Event) -> None:
        """Send a room event to all its members."""
        self.world.broadcast(room, event)

    def everyone(self, event: Event) -> None:
        """Send a server-wide event to every member."""
        self.world.everyone(event)

    def notice_all(self, code: str, text: str) -> None:
        """Tell every member something about the server itself."""
        self.world.everyone(Notice(self.world.clock(), code, text))

    def change(self, change: Change, *, publish: bool = True) -> None:
        """Make an account, operator, ban or mute change, in memory and in the batch.

        In a cluster it is published too (unless ``publish`` is False: a ban running
        out runs out on every node by itself).
        """
        self.world.store_change(change)
        if publish:
            self.world.publish(cluster.Changed(change))

    def store_change(self, change: Change) -> None:
        """Apply and store a change another node made (not published again)."""
        self.world.store_change(change)

    def publish(self, op: cluster.Op) -> None:
        """Publish ``op`` to the other nodes (in a cluster; else nothing)."""
        self.world.publish(op)

    def save_room(self, room: RoomState) -> None:
        """Queue ``room``'s record (topic, lock) for the store."""
        self.world.save_room(room)

    def drop_room(self, room: RoomState, by: str) -> None:
        """Move everyone out of ``room`` (``by`` an operator) and delete it and its history."""
        self.room_care.drop(room, by)

    def room_for(self, member: Member, room: str | None) -> RoomState | None:
        """The room a command is about (default: current), or None after an error."""
        return self.room_ops.room_for(member, room)

    def room_or_new(self, name: str) -> RoomState:
        """The room ``name``, made (and stored) if this node has not heard of it yet."""
        return self.world.room_or_new(name)

    def guest_name(self) -> str:
        """A free guest name."""
        return self.arrivals.guest_name()

    def force_rename(self, member: Member, name: str) -> None:
        """Rename ``member`` without asking the cluster (it already decided)."""
        self.arrivals.set_name(member, name)

    def deliver_chat(
        self, room: RoomState, event: Chat, sender: Member | None, *, live: bool = True
    ) -> None:
        """Store, cache and broadcast a numbered chat line (``sender``: if on this node).

        ``live=False``: store and cache only (members get it as a replay instead).
        """
        self.talk.deliver_chat(room, event, sender, live=live)

    def log_in(self, member: Member, name: str, key: str) -> None:
        """``member`` proved the password of ``name``: give it the name and the account."""
        self.arrivals.log_in(member, name, key)
        if member.account == key:
            self.notifications.tell_all(member)

    def login_problem(self, name: str, member: Member | None) -> Problem | None:
        """Why ``member`` (None: a newcomer) cannot log in as ``name``, before any hashing."""
        return self.arrivals.login_problem(name, member)
