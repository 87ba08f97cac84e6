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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from triochat.core.commands import Command, IrcAsk, IrcHello
from triochat.core.hygiene import sanitise
from triochat.core.names import name_key
from triochat.core.passwords import JobKind
from triochat.core.protocols import IRC
from triochat.core.protocols.irclines import line, numeric
from triochat.core.protocols.ircregister import cap_reply, nick_problem, sasl_plain
from triochat.core.protocols.ircsession import IrcSession

if TYPE_CHECKING:
    from triochat.core.accounts import Accounts, Problem
    from triochat.core.model import Link, Member
    from triochat.core.passwords import Job, Outcome

__all__ = ["IrcArrivals", "Waiting"]

# admit(ticket, name, account key, IRC session) -> the member; name_problem(name, login)
Admit = Callable[[object, str, "str | None", IrcSession], "Member"]
NameProblem = Callable[[str, bool], "Problem | None"]


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
    authenticating: bool = False  # AUTHENTICATE PLAIN seen, credentials awaited
    caps: set[str] = field(default_factory=set)


class IrcArrivals:
    """IRC connections waiting to join; see the module docstring."""

    def __init__(self, accounts: Accounts, admit: Admit, name_problem: NameProblem) -> None:
        self._accounts = accounts
        self._admit = admit
        self._name_problem = name_problem
        self._waiting: dict[int, Waiting] = {}

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
        if not wait.authenticating:
            if params and params[0].upper() == "PLAIN":
                wait.authenticating = True
                self._send(wait, line("", "AUTHENTICATE", "+"))
            else:
                self._send(wait, numeric(server, "908", wait.nick, "PLAIN", "are available"))
                self._send(wait, numeric(server, "904", wait.nick, "SASL authentication failed"))
            return
        wait.authenticating = False
        credentials = sasl_plain(params[0] if params else "")
        if credentials is None:
            self._send(wait, numeric(server, "904", wait.nick, "SASL authentication failed"))
            return
        self._check(wait, *credentials)

    def password_done(self, job: Job, outcome: Outcome) -> Member | None:
        """Its SASL password is checked: 900 and 903, or 904; the member if it joins now."""
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
        """Whether a password job of ``conn_id`` is this one's (a waiting connection)."""
        return conn_id in self._waiting

    def gone(self, conn_id: int) -> None:
        self._waiting.pop(conn_id, None)

    def stop(self) -> None:
        for wait in self._waiting.values():
            wait.link.close()
        self._waiting.clear()
