"""The IRC protocol: what IRC clients and bots send and read. No I/O.

Only the IRC door speaks it (the protocol is known there, never sniffed). Before a
connection registers, :mod:`triochat.core.protocols.ircregister` answers it; after,
:meth:`IrcProtocol.parse` turns each line into a command: ``QUIT`` and ``AWAY`` into
triochat's own, everything else into an :class:`~triochat.core.commands.IrcAsk` that
the IRC desk (:mod:`triochat.core.ircdesk`) checks and maps onto triochat's commands
(``JOIN`` -> ``Join``, ``PRIVMSG #room`` -> ``Say``, CTCP ACTION -> ``Me``, ``PRIVMSG
nick`` -> ``Msg``, ``NICK`` -> ``Nick``, ``KICK`` -> ``RoomKick``...), answering in
numerics where IRC wants them.

Events become IRC lines (:mod:`triochat.core.protocols.ircevents`): chat is
``PRIVMSG``, joins, parts, quits, renames, kicks and topics are the IRC messages, the
server's own notices are ``NOTICE`` from the server name. A room's IRC members are
grouped by the tags they asked for (``server-time``, ``message-tags``), and each
event is encoded once per group present, never once per member.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from triochat.core.codec import Mode
from triochat.core.commands import Away, Command, IrcAsk
from triochat.core.events import Acted, Private, Said
from triochat.core.hygiene import sanitise
from triochat.core.protocols.ircevents import encode_irc
from triochat.core.protocols.irclines import parse_line
from triochat.core.protocols.ircsession import ECHO, VARIANTS, variant_tags

if TYPE_CHECKING:
    from triochat.core.events import Event
    from triochat.core.model import Member

__all__ = ["IRC", "IrcProtocol"]

DEFAULT_SERVER_NAME: Final = "triochat"
MAX_CLIENT_TAGS: Final = 4094  # IRCv3: client-only tags may take up to 4094 bytes
_TAG_KEY: Final = re.compile(r"\+[A-Za-z0-9./-]+")
_LABEL: Final = re.compile(r"[A-Za-z0-9._~+/=-]+")  # nothing a tag value would escape
MAX_LABEL: Final = 64


class IrcProtocol:
    """IRC lines each way (RFC 1459/2812 as clients use them, and some IRCv3)."""

    mode: Mode = Mode.IRC
    echoes_own_chat: bool = False  # unless it asked for echo-message (see fanout)
    pinged: bool = True  # PING :server; any line back counts
    # The room's replay on joining is the IRC desk's, after NAMES and per client: none
    # for one with draft/chathistory (it asks), PRIVMSGs for others (core/ircplayback.py).
    replays_on_join: bool = False
    joins_lobby: bool = False  # an IRC client joins the channels it wants
    utf8_only: bool = True  # ISUPPORT UTF8ONLY: a line that is not UTF-8 gets FAIL

    def __init__(self) -> None:
        self.server = DEFAULT_SERVER_NAME  # the server's name, set by the server at start

    def parse(self, line: str) -> Command | None:
        parsed = parse_line(line)
        if parsed is None:
            return None
        verb, params = parsed.verb, parsed.params
        if verb == "PONG":
            return None  # being heard from is all that counts
        if verb == "AWAY":
            return Away(sanitise(params[0]).strip()[:200] if params else "")
        if verb in ("PRIVMSG", "NOTICE", "TAGMSG") and parsed.tags:
            client = ";".join(
                f"{key}={value}" if value else key
                for key, value in parsed.tags.items()
                if key.startswith("+") and _TAG_KEY.fullmatch(key) and " " not in value
            )
            return IrcAsk(verb, params, client[:MAX_CLIENT_TAGS], _label(parsed.tags))
        return IrcAsk(verb, params, label=_label(parsed.tags))

    def encode(self, event: Event, viewer: str | None = None, current: str | None = None) -> bytes:
        return encode_irc(event, self.server, viewer or "*", False, False).encode()

    def encode_for(self, event: Event, member: Member) -> bytes:
        irc = member.irc
        stamp, tags = variant_tags(irc.variant) if irc is not None else (False, False)
        own = isinstance(event, Private) and event.sender == member.name != event.to
        if own and (irc is None or ECHO not in irc.caps):
            return b""  # its own private message: only with echo-message
        return encode_irc(event, self.server, member.name, stamp, tags).encode()

    def fanout(
        self,
        event: Event,
        members: dict[int, Member],
        room: str,
        skip: Member | None,
        too_slow: list[Member],
    ) -> None:
        # A chat line's skip is its sender: one that asked for echo-message gets it too.
        if (
            skip is not None
            and isinstance(event, Said | Acted)
            and skip.irc is not None
            and ECHO in skip.irc.caps
        ):
            skip = None
        # One encoding per variant present; per member, one integer read and a put.
        # (Every member in IRC mode has its session: arrivals admit it with one.)
        encoded: list[bytes] = [b""] * VARIANTS
        server = self.server
        for member in members.values():
            if member is skip:
                continue
            variant = member.irc.variant  # type: ignore[union-attr]
            data = encoded[variant]
            if not data:
                data = encoded[variant] = encode_irc(
                    event, server, "*", *variant_tags(variant)
                ).encode()
            put = member.link.put  # an attribute read, then a call: see PlainProtocol
            if not put(data):
                too_slow.append(member)

    def replay_header(self, count: int, room: str | None) -> bytes | None:
        return None

    def replay_end(self, room: str, count: int, more: bool, ts: float) -> bytes | None:
        return None


def _label(tags: dict[str, str]) -> str:
    """The ``label`` tag (labeled-response), if it is one a reply can carry back."""
    label = tags.get("label", "")
    return label if 0 < len(label) <= MAX_LABEL and _LABEL.fullmatch(label) else ""


IRC: Final = IrcProtocol()
