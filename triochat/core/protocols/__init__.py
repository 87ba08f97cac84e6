"""The wire protocols, one object each, and the sniffer that picks one. No I/O.

:data:`PROTOCOLS` maps each :class:`~triochat.core.codec.Mode` to its protocol object
(:class:`~triochat.core.protocols.base.WireProtocol`). :func:`sniff` reads a
connection's first line and says which protocol it speaks on the shared port.

Before it, :func:`stranger` spots a first line that is clearly no chat at all (a TLS
handshake, an HTTP request, an IRC client's registration) and :func:`directions` words
the one line that tells it where to go instead (:class:`Signposts`): nothing such a
line says is ever posted. A person's first line (``/nick bob``, any text) is never a
stranger: only the exact shapes that software sends count.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final, assert_never

from triochat.core.codec import Mode
from triochat.core.commands import Command, parse_registration
from triochat.core.protocols.base import WireProtocol
from triochat.core.protocols.irc import IRC, IrcProtocol
from triochat.core.protocols.json import JSON, JsonProtocol
from triochat.core.protocols.plain import PLAIN, PlainProtocol

__all__ = [
    "IRC",
    "JSON",
    "PLAIN",
    "PROTOCOLS",
    "TLS_RECORD",
    "IrcProtocol",
    "JsonProtocol",
    "PlainProtocol",
    "Signposts",
    "Stranger",
    "WireProtocol",
    "directions",
    "sniff",
    "stranger",
]

PROTOCOLS: Final[dict[Mode, WireProtocol]] = {Mode.PLAIN: PLAIN, Mode.JSON: JSON, Mode.IRC: IRC}

TLS_RECORD: Final = b"\x16\x03"  # a TLS handshake record, SSL 3.0 to TLS 1.3: a ClientHello
# What software sends first, never a person: an HTTP request line, and IRC's registration
# verbs as clients send them (upper case, their usual arguments; "nick bob" is chat).
_HTTP: Final = re.compile(r"(GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH|CONNECT|TRACE) \S+ HTTP/\d")
_IRC: Final = re.compile(
    r"CAP (LS|REQ|END|LIST)\b.*"  # CAP LS 302, the first line of every modern client
    r"|NICK :?\S+"  # NICK name, one argument
    r"|USER \S+ \S+ \S+ :?.+"  # USER user mode unused :real name
    r"|PASS :?\S+"  # PASS password, before NICK on a private server
)


class Stranger(enum.Enum):
    """A first line that speaks something other than triochat's chat."""

    TLS = "a TLS client"
    HTTP = "a web browser"
    IRC = "an IRC client"


@dataclass(frozen=True, slots=True)
class Signposts:
    """Where this server's other doors are, for a connection that came to the wrong one.

    Attributes:
        web: the web page's address (``http://HOST:PORT/``), or None: no web page.
        tls_port: the chat's TLS port, or None: no TLS.
        irc_port: the IRC port, or None: IRC is off.
        irc_tls_port: the IRC port over TLS, or None.
    """

    web: str | None = None
    tls_port: int | None = None
    irc_port: int | None = None
    irc_tls_port: int | None = None


def sniff(line: str) -> tuple[WireProtocol, Command | None]:
    """The protocol a connection speaks, from its first line, and that line's command.

    A JSON ``hello`` object (even a malformed one) picks JSON; anything else is plain
    text, where ``/nick NAME`` registers under that name and other text joins as a
    guest.
    """
    json_mode, command = parse_registration(line)
    return (JSON if json_mode else PLAIN), command


def stranger(first: bytes) -> Stranger | None:
    """What a connection's first line (or first bytes) speaks, if it is clearly not chat.

    ``first`` is the first line without its end, or the first bytes received: a TLS
    handshake has no line end to wait for, and is known by :data:`TLS_RECORD`.
    """
    if first.startswith(TLS_RECORD):
        return Stranger.TLS
    text = first.decode("utf-8", "replace").strip()
    if _HTTP.match(text):
        return Stranger.HTTP
    if _IRC.fullmatch(text):
        return Stranger.IRC
    return None


def directions(who: Stranger, signposts: Signposts) -> bytes:
    """The one line that tells ``who`` where to go, in the form its software shows.

    IRC clients get an IRC ``ERROR`` line; a browser an HTTP 400 response whose body is
    the line (as nginx does for HTTP on an HTTPS port); anything else a plain ``!`` line.
    """
    web = f"the web page is at {signposts.web}" if signposts.web else "this server has no web page"
    match who:
        case Stranger.IRC:
            if signposts.irc_port is None and signposts.irc_tls_port is None:
                where = "IRC is off on this server; use nc, `triochat client`" + (
                    f" or the web page at {signposts.web}" if signposts.web else ""
                )
            else:
                ports = [
                    f"{label}{port}"
                    for label, port in (
                        ("port ", signposts.irc_port),
                        ("TLS port ", signposts.irc_tls_port),
                    )
                    if port is not None
                ]
                where = f"IRC clients connect to {' or '.join(ports)}"
            return f"ERROR :this is triochat's own chat port; {where}\r\n".encode()
        case Stranger.HTTP:
            body = f"this is triochat's chat port, not its web page; {web}\n".encode()
            return (
                b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
            )
        case Stranger.TLS:
            if signposts.tls_port is None:
                where = "this server has no TLS port; connect without TLS"
            else:
                where = f"TLS is on port {signposts.tls_port}"
            return f"! this port is cleartext; {where}\n".encode()
        case _:
            assert_never(who)
