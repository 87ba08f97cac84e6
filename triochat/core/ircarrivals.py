"""IRC clients arriving: a nick in use, SASL PLAIN, and ``CAP END``, at the hub. No I/O.

The reader answers most of an IRC client's registration itself
(:mod:`triochat.core.protocols.ircregister`); what needs the chat state comes here as
an :class:`~triochat.core.commands.IrcHello`: the NICK (is it free? ``433`` if not) and
SASL PLAIN credentials (checked against triochat's accounts in the hub's password
worker, like ``/login``: ``900``/``903`` or ``904``). A connection waits here, not yet
a member, until its nick is free and its capability negotiation has ended; what it
sends meanwhile (another ``NICK``, ``CAP END``, ``QUIT``...) is handed to
:meth:`IrcArrivals.hold` in order. A registered nick needs SASL (or a free nick and
``IDENTIFY`` afterwards).

SASL goes on after registration too (sasl-3.2): a member's ``AUTHENTICATE``
(:meth:`IrcArrivals.authenticate`, from the IRC desk) logs it in to the account
without renaming it (IRC keeps account and nick apart; ``NICK`` to the account's name
is then allowed), answered ``900``/``903`` or ``904`` like SASL at registration, and a
client may authenticate again as another account. The SASL exchange itself (chunks,
``905``, ``906``) is :class:`~triochat.core.protocols.ircsasl.SaslExchange`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from triochat.core.commands import Command, IrcAsk, IrcHello
from triochat.core.hygiene import sanitise
from triochat.core.logevents import log_event
from triochat.core.names import name_key
from triochat.core.passwords import JobKind
from triochat.core.protocols import IRC
from triochat.core.protocols.irclines import line, numeric, source
from triochat.core.protocols.ircregister import cap_reply, nick_problem
from triochat.core.protocols.ircsasl import SaslExchange
from triochat.core.protocols.ircsession import SASL, IrcSession

if TYPE_CHECKING:
    from triochat.core.accounts import Accounts, Problem
    from triochat.core.model import Link, Member
    from triochat.core.passwords import Job, Outcome

__all__ = ["IrcArrivals", "Waiting"]

log = logging.getLogger(__name__)

# admit(ticket, name, account key, IRC session) -> the member; name_problem(name, login);
# login_problem(account name, member); put(member, data) as World.put
Admit = Callable[[object, str, "str | None", IrcSession], "Member"]
NameProblem = Callable[[str, bool], "Problem | None"]
LoginProblem = Callable[[str, "Member"], "Problem | None"]
Put = Callable[["Member", bytes], None]


@dataclass(slots=True)
class Waiting:
    """An IRC connection that has asked to join and is not a member yet."""

    ticket: object  # what the arrivals admit it by (their Arrival)
    conn_id: int
    link: Link
    where: str  # what the failed-login throttle counts it by
    nick: str
    session: IrcSession
    capping: bool  # CAP negotiation not ended yet
    account: str | None = None  # the account key SASL proved
    checking: bool = False  # its SASL password is being checked
    sasl: SaslExchange = field(default_factory=SaslExchange)
    caps: set[str] = field(default_factory=set)


class IrcArrivals:
    """IRC connections waiting to join; see the module docstring."""

    def __init__(
        self,
        accounts: Accounts,
        admit: Admit,
        name_problem: NameProblem,
        login_problem: LoginProblem,
        put: Put,
    ) -> None:
        self._accounts = accounts
        self._admit = admit
        self._name_problem = name_problem
        self._login_problem = login_problem
        self._put = put
        self._waiting: dict[int, Waiting] = {}
        self._exchanges: dict[int, SaslExchange] = {}  # members within an AUTHENTICATE exchange
        self._checking: dict[int, Member] = {}  # members whose SASL password is being checked

    def __contains__(self, conn_id: int) -> bool:
        return conn_id in self._waiting

    def arrive(
        self, ticket: object, conn_id: int, link: Link, where: str, hello: IrcHello
    ) -> Member | None:
        """An IRC client asks to join: the member, or None while it waits here."""
        session = IrcSession(hello.user, hello.realname, hello.caps)
        wait = Waiting(ticket, conn_id, link, where, hello.nick, session, hello.capping)
        wait.caps = set(hello.caps)
        self._waiting[conn_id] = wait
        if hello.login is not None:
            self._check(wait, *hello.login)
            return None
        return self._try(wait)

    def _send(self, wait: Waiting, text: str) -> None:
        wait.link.put(text.encode())

    def _check(self, wait: Waiting, name: str, password: str) -> None:
        problem = self._accounts.start(JobKind.LOGIN, wait.conn_id, name, wait.where, password)
        if problem is not None:
            self._send(wait, numeric(IRC.server, "904", wait.nick, problem[1]))
            return
        wait.checking = True

    def _try(self, wait: Waiting) -> Member | None:
        """Admit ``wait`` if it is ready and its nick is free (else 433, and it waits)."""
        if wait.capping or wait.checking or not wait.nick:
            return None
        logged_in = wait.account is not None and wait.account == name_key(wait.nick)
        problem = self._name_problem(wait.nick, logged_in)
        if problem is not None:
            text = problem[1]
            if problem[0] == "name-registered":
                text = f"{wait.nick} is registered: log in with SASL, or take another nick"
            self._send(wait, numeric(IRC.server, "433", "*", wait.nick, text))
            return None
        aborted = wait.sasl.abort(IRC.server, wait.nick)  # registered with SASL unfinished
        if aborted:
            self._send(wait, aborted)
        del self._waiting[wait.conn_id]
        wait.session.set_caps(frozenset(wait.caps))
        account = wait.account if logged_in else None
        return self._admit(wait.ticket, wait.nick, account, wait.session)

    def hold(self, conn_id: int, commands: list[Command]) -> Member | None:
        """What a waiting connection sends, in order: the member if it joins now."""
        wait = self._waiting[conn_id]
        server = IRC.server
        for command in commands:
            verb = command.verb if isinstance(command, IrcAsk) else "*"
            params = command.params if isinstance(command, IrcAsk) else ()
            if verb == "QUIT":
                del self._waiting[conn_id]
                self._send(wait, line("", "ERROR", "Closing link"))
                wait.link.close()
                return None
            if verb == "NICK":
                name = sanitise(params[0]).strip() if params else ""
                problem = nick_problem(server, wait.nick or "*", name)
                if problem is not None:
                    self._send(wait, problem)
                    continue
                wait.nick = name
            elif verb == "CAP":
                sub = params[0].upper() if params else ""
                wait.capping = sub != "END" and (wait.capping or sub in ("LS", "REQ"))
                reply = cap_reply(server, wait.nick, params, wait.caps)
                if reply:
                    self._send(wait, reply)
            elif verb == "AUTHENTICATE":
                self._authenticate(wait, params)
            elif verb in ("USER", "PASS", "PONG"):
                continue
            else:
                self._send(wait, numeric(server, "451", wait.nick, verb, "You have not registered"))
                continue
            member = self._try(wait)
            if member is not None:
                return member
        return None

    def _authenticate(self, wait: Waiting, params: tuple[str, ...]) -> None:
        server = IRC.server
        if wait.checking:
            return
        if wait.account is not None and not wait.sasl.active:  # sasl-3.1: once before joining
            self._send(wait, numeric(server, "907", wait.nick, "You have already authenticated"))
            return
        reply, credentials = wait.sasl.step(server, wait.nick, params)
        if reply:
            self._send(wait, reply)
        if credentials is not None:
            self._check(wait, *credentials)

    def authenticate(self, member: Member, params: tuple[str, ...]) -> None:
        """``AUTHENTICATE`` from a member: SASL after registration (the module docstring)."""
        server, nick = IRC.server, member.name
        if member.irc is None or SASL not in member.irc.caps:
            self._put(member, numeric(server, "904", nick, "SASL authentication failed").encode())
            return
        if member.id in self._checking:
            return  # one check at a time, as before joining
        exchange = self._exchanges.pop(member.id, None) or SaslExchange()
        reply, credentials = exchange.step(server, nick, params)
        if exchange.active:
            self._exchanges[member.id] = exchange
        if reply:
            self._put(member, reply.encode())
        if credentials is None:
            return
        name, password = credentials
        where = member.address if member.address is not None else member.peer
        problem = self._login_problem(name, member) or self._accounts.start(
            JobKind.LOGIN, member.id, name, where, password
        )
        if problem is not None:
            text = f"SASL authentication failed: {problem[1]}"
            self._put(member, numeric(server, "904", nick, text).encode())
            return
        self._checking[member.id] = member

    def _member_done(self, member: Member, job: Job, outcome: Outcome) -> None:
        """A member's SASL password is checked: logged in (900, 903), or 904."""
        server, nick = IRC.server, member.name
        problem = self._accounts.finished(job, outcome) or self._login_problem(job.name, member)
        if problem is not None:
            text = f"SASL authentication failed: {problem[1]}"
            self._put(member, numeric(server, "904", nick, text).encode())
            return
        member.account = job.key
        log_event(log, "login.sasl", conn=member.id, name=job.name)
        logged_in = f"You are now logged in as {job.name}"
        self._put(
            member, numeric(server, "900", nick, source(nick, server), job.name, logged_in).encode()
        )
        self._put(member, numeric(server, "903", nick, "SASL authentication successful").encode())

    def password_done(self, job: Job, outcome: Outcome) -> Member | None:
        """Its SASL password is checked: 900 and 903, or 904; the member if it joins now
        (or the member that authenticated after registering)."""
        member = self._checking.pop(job.conn_id, None)
        if member is not None:
            self._member_done(member, job, outcome)
            return member
        wait = self._waiting.get(job.conn_id)
        if wait is None:
            self._accounts.finished(job, outcome)
            return None
        wait.checking = False
        problem = self._accounts.finished(job, outcome)
        server, nick = IRC.server, wait.nick or "*"
        if problem is not None:
            self._send(
                wait, numeric(server, "904", nick, f"SASL authentication failed: {problem[1]}")
            )
        else:
            wait.account = job.key
            wait.nick = job.name  # the account's name is the nick it joins as
            who = f"{job.name}!{job.name}@{server}"
            self._send(
                wait,
                numeric(server, "900", nick, who, job.name, f"You are now logged in as {job.name}"),
            )
            self._send(wait, numeric(server, "903", nick, "SASL authentication successful"))
        return self._try(wait)

    def owns(self, conn_id: int) -> bool:
        """Whether a password job of ``conn_id`` is this one's (waiting, or SASL after)."""
        return conn_id in self._waiting or conn_id in self._checking

    def gone(self, conn_id: int) -> None:
        self._waiting.pop(conn_id, None)
        self._exchanges.pop(conn_id, None)
        self._checking.pop(conn_id, None)  # its outcome still counts (Arrivals.password_done)

    def stop(self) -> None:
        for wait in self._waiting.values():
            wait.link.close()
        self._waiting.clear()
        self._exchanges.clear()
        self._checking.clear()
