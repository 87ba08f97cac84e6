"""What a client can ask for: one frozen command object per request. No I/O.

Both wire modes (and any later one) produce these, so the chat state never needs to
know how a request was spelled. Every text or name field is sanitised by the parsers
(:mod:`triochat.core.commands.table`), and room names are normalised (``Dev`` is
``#dev``). A ``room`` of None means "the member's current room".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from triochat.core.admin import AdminCommand

__all__ = [
    "DEFAULT_HISTORY",
    "MAX_HISTORY",
    "NOTIFY_LEVELS",
    "Away",
    "ChatCommand",
    "Command",
    "Hello",
    "Help",
    "History",
    "Invalid",
    "IrcAsk",
    "IrcHello",
    "IrcSay",
    "Join",
    "Me",
    "Mentions",
    "Msg",
    "Nick",
    "Notify",
    "Part",
    "Quit",
    "RoomKick",
    "Rooms",
    "Say",
    "Search",
    "Several",
    "Topic",
    "Who",
]

DEFAULT_HISTORY: Final = 20  # messages /history shows when no count is given
MAX_HISTORY: Final = 200  # messages one /history or scrollback request may ask for


@dataclass(frozen=True, slots=True)
class Say:
    """Say ``text`` in ``room``."""

    text: str
    room: str | None = None


@dataclass(frozen=True, slots=True)
class Me:
    """An action, shown as ``* alice waves``."""

    text: str
    room: str | None = None


@dataclass(frozen=True, slots=True)
class Nick:
    """Change one's name (also the plain-mode way to register)."""

    name: str


@dataclass(frozen=True, slots=True)
class Who:
    """List who is in ``room``."""

    room: str | None = None


@dataclass(frozen=True, slots=True)
class Msg:
    """A private message to one member, wherever they are."""

    to: str
    text: str


@dataclass(frozen=True, slots=True)
class Help:
    """List the commands."""


@dataclass(frozen=True, slots=True)
class Quit:
    """Leave the server."""


@dataclass(frozen=True, slots=True)
class Join:
    """Join ``room`` (creating it if new) and make it current."""

    room: str


@dataclass(frozen=True, slots=True)
class Part:
    """Leave ``room`` (``reason``: said to those who stay; IRC's part message)."""

    room: str | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Rooms:
    """List every room with its member count and topic."""


@dataclass(frozen=True, slots=True)
class Topic:
    """Show ``room``'s topic (``text`` None) or set it (``""`` clears it)."""

    text: str | None = None
    room: str | None = None


@dataclass(frozen=True, slots=True)
class History:
    """Replay up to ``limit`` stored messages of ``room`` older than ``before`` (or the latest).

    ``peer`` set: the asker's private conversation with that name instead of a room.
    """

    room: str | None = None
    limit: int = DEFAULT_HISTORY
    before: int | None = None
    peer: str | None = None
    around: int | None = None  # instead of before: the lines around this id (a search hit)


@dataclass(frozen=True, slots=True)
class Search:
    """Find the stored lines holding every one of ``terms`` (folded words of ``text``),
    in ``room`` (None: every room one is in), said by ``sender``, older than the
    search position ``before`` (None: the newest); see :mod:`triochat.core.search`."""

    terms: tuple[str, ...]
    text: str = ""  # the query as typed, without before:, echoed in the answer
    room: str | None = None
    sender: str | None = None
    before: int | None = None


@dataclass(frozen=True, slots=True)
class Hello:
    """JSON-mode registration: the first line of a JSON client.

    ``since`` maps rooms to the last id the client has seen there: the server rejoins
    those rooms and replays what came after (resume). ``rooms`` are more rooms to join.
    ``password`` logs into the registered name ``name``; ``server_password`` is the
    server's own (``--password-file``). Neither appears in a ``repr``.
    """

    name: str
    since: tuple[tuple[str, int], ...] = ()
    rooms: tuple[str, ...] = ()
    password: str | None = field(default=None, repr=False)
    server_password: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Invalid:
    """A request that cannot be carried out; the sender gets an error with ``code``."""

    code: str
    text: str


@dataclass(frozen=True, slots=True)
class Away:
    """Mark oneself away with ``text`` (``""``: back again)."""

    text: str = ""


NOTIFY_LEVELS: Final = ("all", "mentions", "none")  # per-room notification levels, loudest first


@dataclass(frozen=True, slots=True)
class Notify:
    """Show (``level`` None) or set a room's notification level (``room`` None: the current
    room): one of :data:`NOTIFY_LEVELS`."""

    room: str | None = None
    level: str | None = None


@dataclass(frozen=True, slots=True)
class Mentions:
    """List the lines that named the member since it was last here (registered only)."""


@dataclass(frozen=True, slots=True)
class RoomKick:
    """Put ``name`` out of ``room`` (its founder or an operator may); they may come back."""

    room: str
    name: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class IrcAsk:
    """An IRC request with no triochat command of its own (WHOIS, LUSERS, MODE, PING,
    CAP, NAMES ...): ``verb`` in upper case and its parameters, answered in numerics."""

    verb: str
    params: tuple[str, ...] = ()
    tags: str = ""  # its client-only tags ("+a=b;+c"), for PRIVMSG and NOTICE
    label: str = ""  # IRCv3 labeled-response: the label its answer carries


@dataclass(frozen=True, slots=True)
class IrcSay:
    """An IRC member's line in ``room`` that is more than a :class:`Say`: a NOTICE
    (shown as one to IRC members), or one with IRCv3 client-only tags (``+a=b;+c``,
    relayed to the members that asked for message-tags). Stored as a chat line."""

    text: str
    room: str
    notice: bool = False
    tags: str = ""


@dataclass(frozen=True, slots=True)
class IrcHello:
    """An IRC client has registered: NICK, USER and the capabilities it asked for."""

    nick: str
    user: str
    realname: str
    caps: frozenset[str] = frozenset()
    login: tuple[str, str] | None = field(default=None, repr=False)  # SASL PLAIN name, password
    capping: bool = False  # its CAP negotiation has not ended (it joins after CAP END)


@dataclass(frozen=True, slots=True)
class Several:
    """Several commands from one request line, handled in order (IRC's ``JOIN #a,#b``)."""

    commands: tuple[Command, ...]


ChatCommand = (
    Say
    | Me
    | Nick
    | Who
    | Msg
    | Help
    | Quit
    | Join
    | Part
    | Rooms
    | Topic
    | History
    | Away
    | Notify
    | Mentions
    | Search
)
IrcCommand = RoomKick | IrcAsk | IrcSay | IrcHello | Several  # made by the IRC protocol only
Command = (
    ChatCommand
    | Hello
    | Invalid
    | AdminCommand  # accounts and moderation: triochat.core.admin
    | IrcCommand
)
