"""An IRC connection's registration, as a small state machine the reader drives. No I/O.

Before it is a member, an IRC client sends ``PASS``, ``NICK``, ``USER`` and ``CAP``
lines in any order. :class:`IrcRegistration` answers each (``CAP LS``/``REQ``/
``LIST``, ``461`` for missing parameters, ``432`` for a name triochat refuses,
``451`` for anything else, ``ERROR`` for ``QUIT``) and says when the client is ready
to join: a NICK and a USER, and no capability negotiation in progress (``CAP LS``
holds registration until ``CAP END``). The hub then checks the name against the
others (``433`` when taken: the client stays here, waiting for another NICK).

States: ``OPEN`` (collecting) -> ``DONE`` (ready: :attr:`IrcRegistration.hello`) or
``QUIT`` (answered with ERROR; close).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from triochat.core.commands import IrcHello
from triochat.core.hygiene import sanitise
from triochat.core.names import name_error
from triochat.core.protocols.irclines import line, numeric, parse_line
from triochat.core.protocols.ircsasl import SaslExchange
from triochat.core.protocols.ircsession import CAPS, SASL

__all__ = ["IrcRegistration", "RegState", "cap_reply", "nick_problem"]


class RegState(enum.Enum):
    """Where a registration is."""

    OPEN = "open"
    DONE = "done"
    QUIT = "quit"


def nick_problem(server: str, nick: str, name: str) -> str | None:
    """A ``431``/``432`` line if triochat refuses ``name`` as a nick, else None."""
    if not name:
        return numeric(server, "431", nick, "No nickname given")
    problem = name_error(name)
    if problem is not None:
        return numeric(server, "432", nick, name, f"Erroneous nickname: {problem}")
    return None


def cap_reply(server: str, nick: str, params: tuple[str, ...], caps: set[str]) -> str:
    """The answer to ``CAP LS``/``LIST``/``REQ`` (``caps``: changed in place by REQ)."""
    sub = params[0].upper() if params else ""
    if sub == "LS":
        version = params[1] if len(params) > 1 else ""
        offered = " ".join(
            f"{cap}={value}" if value and version >= "302" else cap for cap, value in CAPS.items()
        )
        return line(server, "CAP", nick or "*", "LS", offered)
    if sub == "LIST":
        return line(server, "CAP", nick or "*", "LIST", " ".join(sorted(caps)))
    if sub == "REQ":
        asked = params[1].split() if len(params) > 1 else []
        adding = [cap for cap in asked if not cap.startswith("-")]
        removing = [cap[1:] for cap in asked if cap.startswith("-")]
        if not asked or any(cap not in CAPS for cap in [*adding, *removing]):
            return line(server, "CAP", nick or "*", "NAK", " ".join(asked))
        caps.update(adding)
        caps.difference_update(removing)
        return line(server, "CAP", nick or "*", "ACK", " ".join(asked))
    if sub == "END":
        return ""
    return numeric(server, "410", nick, sub or "*", "Invalid CAP command")


@dataclass(slots=True)
class IrcRegistration:
    """One connection's registration (see the module docstring)."""

    server: str
    state: RegState = RegState.OPEN
    nick: str = ""
    user: str = ""
    realname: str = ""
    password: str | None = field(default=None, repr=False)
    caps: set[str] = field(default_factory=set)
    capping: bool = False  # CAP LS or REQ seen, CAP END not yet
    sasl: tuple[str, str] | None = field(default=None, repr=False)
    _exchange: SaslExchange = field(default_factory=SaslExchange, repr=False)

    def feed(self, text: str) -> str:
        """Take one line; return what to answer (maybe nothing). See :attr:`state`."""
        parsed = parse_line(text)
        if parsed is None or self.state is not RegState.OPEN:
            return ""
        verb, params, server = parsed.verb, parsed.params, self.server
        nick = self.nick or "*"
        reply = ""
        match verb:
            case "PASS":
                if not params:
                    return numeric(server, "461", nick, "PASS", "Not enough parameters")
                self.password = params[0]
            case "NICK":
                name = sanitise(params[0]).strip() if params else ""
                problem = nick_problem(server, nick, name)
                if problem is not None:
                    return problem
                self.nick = name
            case "USER":
                if len(params) < 4 or not params[0] or not params[3]:
                    return numeric(server, "461", nick, "USER", "Not enough parameters")
                self.user, self.realname = sanitise(params[0])[:16], sanitise(params[3])[:100]
            case "CAP":
                sub = params[0].upper() if params else ""
                if sub in ("LS", "REQ"):
                    self.capping = True
                elif sub == "END":
                    self.capping = False
                reply = cap_reply(server, self.nick, params, self.caps)
            case "AUTHENTICATE":
                return self._authenticate(params)
            case "QUIT":
                self.state = RegState.QUIT
                return line("", "ERROR", "Closing link (quit before registering)")
            case "PING":
                return line(server, "PONG", server, params[0] if params else "")
            case "PONG":
                pass
            case _:
                return numeric(server, "451", nick, verb, "You have not registered")
        if self.nick and self.user and not self.capping:
            # Registered with SASL unfinished: it is aborted (906), the client joins as is.
            reply += self._exchange.abort(server, self.nick)
            self.state = RegState.DONE
        return reply

    def too_long(self) -> str:
        """The answer to a line over the limit (``417``); the line itself is dropped."""
        return numeric(self.server, "417", self.nick or "*", "Input line was too long")

    def _authenticate(self, params: tuple[str, ...]) -> str:
        """SASL PLAIN (:mod:`~triochat.core.protocols.ircsasl`), chunks and all."""
        server, nick = self.server, self.nick or "*"
        if SASL not in self.caps:
            return numeric(server, "904", nick, "SASL authentication failed")
        reply, credentials = self._exchange.step(server, nick, params)
        if credentials is None:
            return reply
        # Checked against the account at the hub, which the client joins now (it waits
        # there for CAP END: triochat.core.ircarrivals).
        self.sasl = credentials
        self.state = RegState.DONE
        return ""

    @property
    def hello(self) -> IrcHello:
        """What the hub registers (once :attr:`state` is DONE)."""
        caps = frozenset(self.caps)
        return IrcHello(self.nick, self.user, self.realname, caps, self.sasl, self.capping)
