"""Arriving and leaving: registration, pending logins, names, rooms entered and left. No I/O.

A connection's first line decides how it joins (:meth:`Arrivals.register`): a JSON
``hello`` (its name, or refused and closed), a plain ``/nick`` or ``/login``, or
anything else as a guest. A first line that logs in makes the connection *pending*
while its password is checked in the hub's worker; what it sends meanwhile is held, in
order, and handled once it has joined (:meth:`Arrivals.password_done`). Passwords are
never hashed here (:mod:`triochat.core.accounts` queues the jobs).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Final

from triochat.core import cluster
from triochat.core.accounts import Accounts, Problem
from triochat.core.admin import Login
from triochat.core.codec import Mode
from triochat.core.commands import Command, Hello, Invalid, IrcHello, Nick
from triochat.core.events import (
    PRESENCE_NAMES,
    AccountInfo,
    Current,
    ErrorEvent,
    Joined,
    Left,
    Renamed,
    ShuttingDown,
    Welcome,
)
from triochat.core.history import Replays
from triochat.core.ircarrivals import IrcArrivals
from triochat.core.logevents import log_event
from triochat.core.model import Link, Member, RoomState
from triochat.core.names import LOBBY, name_error, name_key
from triochat.core.passwords import Job, JobKind, Outcome
from triochat.core.protocols import PROTOCOLS
from triochat.core.protocols.ircsession import IrcSession
from triochat.core.world import World, until_text

__all__ = ["MAX_HELD_COMMANDS", "Arrival", "Arrivals"]

log = logging.getLogger(__name__)

MAX_HELD_COMMANDS: Final = 256  # lines a connection may send while its login is checked


@dataclass(frozen=True, slots=True)
class Arrival:
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

    arrival: Arrival
    first: Hello | Login
    held: list[Command] = field(default_factory=list)  # what it sent meanwhile


class Arrivals:
    """Joining, names and leaving; see the module docstring."""

    def __init__(self, world: World, accounts: Accounts, history: Replays) -> None:
        self._world = world
        self._accounts = accounts
        self._history = history
        self._pending: dict[int, _Pending] = {}  # connections whose login is being checked
        # IRC connections not members yet (nick in use, SASL, CAP END awaited).
        self.irc = IrcArrivals(
            accounts, self._admit_irc, self._irc_name_problem, self.login_problem, world.put
        )
        self._guests = 0

    # -- names --------------------------------------------------------------------------

    def name_problem(
        self, name: str, member: Member | None = None, *, login: bool = False
    ) -> Problem | None:
        """Why ``name`` cannot be used (by ``member``), as (error code, text).

        A registered name is only for a member logged into it, or (``login``) about to
        be: its password is being checked.
        """
        world = self._world
        problem = name_error(name)
        if problem is not None:
            return "bad-name", problem
        key = name_key(name)
        ban = world.access.name_ban(key, world.clock())
        if ban is not None:
            return "banned", f"the name {name} is banned{until_text(ban.until, world.clock())}"
        holder = world.by_name.get(key)
        held = holder.name if holder is not None and holder is not member else None
        remote = world.cluster.holder(key) if world.cluster is not None else None
        if remote is not None:
            held = remote.name
        if held is not None:
            if held.casefold() == name.casefold():
                return "name-taken", f"the name {name} is taken"
            return "name-taken", f"the name {name} is taken: it looks too much like {held}"
        registered = world.access.registered(key)
        if registered and not login and (member is None or member.account != key):
            return "name-registered", f"the name {name} is registered; /login {name} PASSWORD"
        return None

    def login_problem(self, name: str, member: Member | None) -> Problem | None:
        """Why ``member`` (None: a newcomer) cannot log in as ``name``, before any hashing."""
        problem = name_error(name)
        if problem is not None:
            return "bad-name", problem
        key = name_key(name)
        if not self._world.access.registered(key):
            return "no-such-account", f"the name {name} is not registered"
        if member is not None:
            if member.account == key and name_key(member.name) == key:
                return "bad-request", f"you are logged in as {member.name} already"
            if self._world.muted(member) is not None:
                return "muted", "you are muted: you cannot change your name"
        return self.name_problem(name, member, login=True)

    def guest_name(self) -> str:
        # In a cluster, a guest name carries its node's tag, so nodes do not race for one.
        world = self._world
        node = world.cluster.node if world.cluster is not None else None
        prefix = "guest-" if node is None else f"guest-{node[:4]}-"
        while True:
            self._guests += 1
            name = f"{prefix}{self._guests}"
            if name_key(name) not in world.by_name and world.remote_holder(name) is None:
                return name

    def set_name(self, member: Member, name: str) -> None:
        """Give ``member`` the name ``name`` (its old one is free at once); tell everyone."""
        world = self._world
        old = member.name
        if world.by_name.get(name_key(old)) is member:
            del world.by_name[name_key(old)]
        member.name = name
        world.by_name[name_key(name)] = member
        event = Renamed(world.clock(), old, name)
        world.everyone(event, skip=member)
        world.tell(member, event)  # in plain mode: "you are now known as ..."

    # -- arriving -----------------------------------------------------------------------

    def register(
        self, arrival: Arrival, first: Command | None, server_password: str | None
    ) -> tuple[Member | None, Command | None]:
        """A new connection with its first command; see ChatState.register.

        Returns the member (None: refused, or pending) and what the façade does next:
        the hello to resume, or a first command to handle.
        """
        if isinstance(first, Hello) and first.server_password is not None:
            server_password = first.server_password
        problem = self._accounts.gate(arrival.where, server_password)
        if problem is not None:
            self._refuse(arrival, _wanted(first), problem)
            return None, None
        sent_password = server_password is not None
        if isinstance(first, IrcHello):
            member = self.irc.arrive(arrival, arrival.conn_id, arrival.link, arrival.where, first)
            if member is not None and sent_password:
                self._accounts.warn_cleartext(member)
            return member, None
        if arrival.mode is Mode.JSON:
            if isinstance(first, Invalid):
                problem = (first.code, first.text)
            elif isinstance(first, Hello):
                problem = self.name_problem(first.name, login=first.password is not None)
            else:  # pragma: no cover - the sniffer only picks JSON for a hello
                problem = ("bad-request", "a JSON client must start with hello")
            password = first.password if isinstance(first, Hello) else None
            if problem is None and password is not None:
                assert isinstance(first, Hello)
                if self._world.access.registered(name_key(first.name)):
                    problem = self._start_login(arrival, first, password)
                    if problem is None:
                        return None, None
            if problem is not None:
                self._refuse(arrival, _wanted(first), problem)
                return None, None
            assert isinstance(first, Hello)
            member = self.admit(arrival, first.name, since=dict(first.since))
            if first.password is not None:
                text = f"the name {first.name} is not registered (the password was not used)"
                self._world.error(member, "no-such-account", text)
            if sent_password:
                self._accounts.warn_cleartext(member)
            return member, first
        if isinstance(first, Nick | Login):
            if isinstance(first, Nick):
                problem = self.name_problem(first.name)
                if problem is None:
                    member = self.admit(arrival, first.name)
                    if sent_password:
                        self._accounts.warn_cleartext(member)
                    return member, None
            else:
                problem = self.login_problem(first.name, None) or self._start_login(
                    arrival, first, first.password
                )
                if problem is None:
                    return None, None
            conn, peer, name, why = arrival.conn_id, arrival.peer, first.name, problem[1]
            log_event(log, "join.as_guest", conn=conn, name=name, address=peer, reason=why)
            member = self.admit(arrival, self.guest_name())
            self._world.error(member, problem[0], f"{problem[1]}; you joined as {member.name}")
            if sent_password or isinstance(first, Login):
                self._accounts.warn_cleartext(member)
            return member, None
        member = self.admit(arrival, self.guest_name())
        if sent_password:
            self._accounts.warn_cleartext(member)
        return member, first

    def _admit_irc(
        self, ticket: object, name: str, account: str | None, session: IrcSession
    ) -> Member:
        assert isinstance(ticket, Arrival)
        member = self.admit(ticket, name, account=account, irc=session)
        if account is not None:
            log_event(log, "login.sasl", conn=member.id, name=member.name)
        return member

    def _irc_name_problem(self, name: str, login: bool) -> Problem | None:
        return self.name_problem(name, login=login)

    def _refuse(self, arrival: Arrival, wanted: str, problem: Problem) -> None:
        """Tell a connection why it cannot join, and close it."""
        conn, peer, why = arrival.conn_id, arrival.peer, problem[1]
        log_event(log, "join.refused", conn=conn, name=wanted, address=peer, reason=why)
        # A brand-new link has room; if it is already gone, nobody is listening.
        event = ErrorEvent(self._world.clock(), *problem)
        arrival.link.put(PROTOCOLS[arrival.mode].encode(event))
        arrival.link.close()

    def _start_login(self, arrival: Arrival, first: Hello | Login, password: str) -> Problem | None:
        """Check a first line's password in the hub's worker; the connection waits."""
        problem = self._accounts.start(
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
        if conn_id in self.irc:
            self.irc.hold(conn_id, commands)
            return
        pending = self._pending.get(conn_id)
        if pending is None:
            return
        pending.held.extend(commands)
        if len(pending.held) > MAX_HELD_COMMANDS:
            del self._pending[conn_id]
            log_event(log, "login.flooded", conn=conn_id)
            pending.arrival.link.cut()

    def password_done(
        self, job: Job, outcome: Outcome
    ) -> tuple[Member | None, Hello | None, list[Command]]:
        """A password job is back from the worker thread.

        Returns the member it concerns, the hello to resume (a pending JSON login) and
        what the connection sent while it waited, for the façade to handle in order.
        """
        if self.irc.owns(job.conn_id):
            return self.irc.password_done(job, outcome), None, []
        pending = self._pending.pop(job.conn_id, None)
        if pending is None:
            member = self._world.members.get(job.conn_id)
            if member is None:
                self._accounts.finished(job, outcome)  # a failure still counts
                return None, None, []
            self._accounts.member_done(member, job, outcome)
            return member, None, []
        arrival, first = pending.arrival, pending.first
        problem = self._accounts.finished(job, outcome) or self.name_problem(first.name, login=True)
        if problem is not None and arrival.mode is Mode.JSON:
            self._refuse(arrival, first.name, problem)
            return None, None, []
        if problem is not None:
            member = self.admit(arrival, self.guest_name())
            self._world.error(member, problem[0], f"{problem[1]}; you joined as {member.name}")
        else:
            since = dict(first.since) if isinstance(first, Hello) else None
            member = self.admit(arrival, first.name, since=since, account=job.key)
            log_event(log, "login.succeeded", conn=member.id, name=member.name)
        self._accounts.warn_cleartext(member)
        resume = first if problem is None and isinstance(first, Hello) else None
        return member, resume, pending.held

    def log_in(self, member: Member, name: str, key: str) -> None:
        """``member`` proved the password of ``name``: give it the name and the account."""
        problem = self.name_problem(name, member, login=True)  # taken meanwhile?
        if problem is not None:
            self._world.error(member, *problem)
            return
        member.account = key
        if member.name != name:
            old = member.name
            self.set_name(member, name)
            self._world.publish(cluster.Rename(member.id, old, name_key(old), name, name_key(name)))
            log_event(log, "member.renamed", conn=member.id, old=old, name=name)
        log_event(log, "login.succeeded", conn=member.id, name=member.name)
        self._world.tell(member, AccountInfo(self._world.clock(), "logged-in", member.name))

    def admit(
        self,
        arrival: Arrival,
        name: str,
        *,
        since: dict[str, int] | None = None,
        account: str | None = None,
        irc: IrcSession | None = None,
    ) -> Member:
        world = self._world
        conn_id, peer, mode = arrival.conn_id, arrival.peer, arrival.mode
        member = Member(conn_id, peer, arrival.link, name, mode, irc=irc)
        member.address, member.cleartext, member.account = (
            arrival.address,
            arrival.cleartext,
            account,
        )
        world.members[conn_id] = member
        world.by_name[name_key(name)] = member
        lobby = world.rooms[LOBBY]
        online = len(world.members)
        log_event(
            log,
            "member.joined",
            conn=conn_id,
            name=name,
            address=peer,
            protocol=mode.value,
            online=online,
        )
        if not PROTOCOLS[mode].joins_lobby:  # an IRC client: it joins what it wants
            world.publish(cluster.Arrive(conn_id, name, name_key(name), ()))
            world.tell(member, Welcome(world.clock(), name, online, ""))
            return member
        self.enter(member, lobby)
        world.publish(cluster.Arrive(conn_id, name, name_key(name), (LOBBY,)))
        world.tell(member, Welcome(world.clock(), name, lobby.online, LOBBY))
        if since is None or LOBBY not in since:
            self._history.recent(member, lobby, world.limits.history, header=True)
        return member

    # -- rooms entered and left -----------------------------------------------------------

    def enter(self, member: Member, room: RoomState, *, announce_self: bool = False) -> None:
        """Put ``member`` in ``room``, make it current, and tell the room."""
        world = self._world
        if not room.online and room.name != LOBBY:  # the lobby is the server's: no founder
            room.founder = member.id  # its operator until it leaves (see triochat.core.ircdesk)
        room.add(member)
        member.rooms.append(room.name)
        member.current = room.name
        now = world.clock()
        joined = Joined(now, room.name, member.name, room.online)
        if announce_self:  # a /join: confirm it (a newcomer's welcome does that instead)
            world.tell(member, joined)
            if member.mode is Mode.JSON:
                world.tell(member, Current(now, room.name))
        if room.online > world.limits.coalesce_above:
            room.pending_joined += 1
            if len(room.pending_names) < PRESENCE_NAMES:
                room.pending_names.append(member.name)
            return
        world.broadcast(room, joined, skip=member)

    def exit(self, member: Member, room: RoomState, reason: str) -> None:
        """Take ``member`` out of ``room`` and tell the others (not the member)."""
        world = self._world
        room.discard(member)
        member.rooms.remove(room.name)
        if room.founder == member.id:
            room.founder = None
        if room.online >= world.limits.coalesce_above:
            room.pending_left += 1
            return
        world.broadcast(room, Left(world.clock(), room.name, member.name, room.online, reason))

    # -- leaving ------------------------------------------------------------------------

    def remove(self, member: Member, reason: str) -> None:
        """``member`` leaves the server; tell every room it was in.

        A member leaving of its own accord has its link closed, so what is queued is
        sent and then the connection ends; a member that is "too slow" is cut off.
        """
        world = self._world
        if world.members.get(member.id) is not member:
            return  # already gone (a Gone after the state dropped it itself)
        del world.members[member.id]
        world.note_left(member)
        key = name_key(member.name)
        del world.by_name[key]
        world.publish(cluster.Leave(member.id, member.name, key, reason))
        world.count(world.disconnects, _reason_label(reason))
        if reason == "too slow":
            world.too_slow_dropped += 1
            member.link.cut()
        else:
            member.link.close()
        for name in list(member.rooms):
            self.exit(member, world.rooms[name], reason)
        online = len(world.members)
        log_event(
            log, "member.left", conn=member.id, name=member.name, reason=reason, online=online
        )

    def gone(self, conn_id: int, reason: str) -> None:
        """The connection ``conn_id`` ended (``closed``, ``lost``, ...)."""
        self._pending.pop(conn_id, None)  # its password check's outcome will find nobody
        self.irc.gone(conn_id)
        member = self._world.members.get(conn_id)
        if member is not None:
            self.remove(member, reason)

    def stop(self) -> None:
        """Server shutdown: tell everyone, close every link."""
        world = self._world
        world.everyone(ShuttingDown(world.clock()))
        for member in world.take_too_slow():
            member.link.cut()
        for member in world.members.values():
            member.link.close()
        for pending in self._pending.values():
            pending.arrival.link.close()
        self._pending.clear()
        self.irc.stop()
        log_event(log, "server.members_told", members=len(world.members))
        for member in world.members.values():
            world.note_left(member)
        world.members.clear()
        world.by_name.clear()
        if world.cluster is not None:
            world.cluster.clear()
        for room in world.rooms.values():
            room.clear()

    @property
    def pending(self) -> int:
        """Connections whose login is being checked."""
        return len(self._pending)

    def is_pending(self, conn_id: int) -> bool:
        return conn_id in self._pending

    def is_waiting(self, conn_id: int) -> bool:
        """An IRC connection waits for a nick that is free (it has not joined yet)."""
        return conn_id in self.irc


def _reason_label(reason: str) -> str:
    """A leave reason as a bounded label (kicks and bans carry who and why: one each)."""
    for kind in ("kicked", "banned", "room dropped"):
        if reason.startswith(kind):
            return kind
    return reason if len(reason) <= 24 else "other"


def _wanted(first: Command | None) -> str:
    """The name a first line asked for, for the log."""
    if isinstance(first, Hello | Nick | Login):
        return first.name
    return "a malformed hello" if isinstance(first, Invalid) else "a guest name"
