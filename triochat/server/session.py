"""One connection's input: bytes -> lines -> commands -> the hub, registration included.

:func:`read_commands` is the one read loop of a connection. Its first line (or a
second of silence) registers the connection and picks its wire mode; every later line
is parsed in that mode. A plain first line ``/pass SECRET`` (the server password) is
kept and the line after it registers. A first line that is clearly another protocol (a
TLS handshake, an HTTP request, an IRC client: ``core.protocols.stranger``) gets one
line saying where this server's door for it is, and the connection ends unregistered:
the hub never hears of it. Flood control is a token bucket: past the burst the loop
simply stops reading for a while, the kernel buffer fills and TCP slows that sender
down; nothing is dropped.

It returns (or raises) only for the peer's own reasons; the leave reason a member's
room sees is decided in one place, :func:`leave_reason`.
"""

from __future__ import annotations

import logging
from typing import Final

import trio

from triochat.config import ServerConfig
from triochat.core.admin import Pass
from triochat.core.codec import Mode
from triochat.core.commands import Command, Invalid
from triochat.core.framing import TOO_LONG, LineBuffer, LineTooLong
from triochat.core.logevents import log_event
from triochat.core.protocols import (
    IRC,
    PLAIN,
    TLS_RECORD,
    Signposts,
    Stranger,
    WireProtocol,
    directions,
    sniff,
    stranger,
)
from triochat.core.protocols.irclines import MAX_TAG_BYTES
from triochat.core.protocols.irclines import too_long as irc_too_long
from triochat.core.protocols.ircregister import IrcRegistration, RegState
from triochat.core.ratelimit import TokenBucket
from triochat.server.connection import Connection
from triochat.server.hub import HubMessage, Input, Register
from triochat.server.transport import ConnectionLost

__all__ = [
    "INPUT_BATCH",
    "IRC_REGISTRATION_TIMEOUT",
    "SILENT",
    "leave_reason",
    "read_commands",
    "signposts",
]

INPUT_BATCH: Final = 64  # commands per hub message: fewer wake-ups, yet the hub stays fair
SILENT: Final = "silent"  # connected and left without a word: no join, no leave
WRONG_DOOR_TIMEOUT: Final = 1.0  # seconds to deliver the line saying where to go
IRC_REGISTRATION_TIMEOUT: Final = 60.0  # seconds an IRC client has to register (CAP, SASL)
IRC_TIMED_OUT: Final = b"ERROR :Closing link (registration timed out)\r\n"

log = logging.getLogger(__name__)


async def read_commands(
    conn: Connection,
    inbound: trio.MemorySendChannel[HubMessage],
    config: ServerConfig,
    *,
    irc: bool = False,
) -> str:
    """Read until the peer stops sending; return why (``closed``, ``lost``, ``silent``).

    ``irc``: the connection came in by the IRC door, so it speaks IRC (no sniffing);
    its registration (:class:`~triochat.core.protocols.ircregister.IrcRegistration`)
    is answered here, before the hub hears of it. Raises ``trio.BrokenResourceError``
    or ``trio.ClosedResourceError`` if the hub has stopped. (One function rather than
    several: every frame suspended here is memory that each idle connection holds.)
    """
    transport = conn.transport
    # IRC: up to the line limit after the tags, whose own limit comes on top (IRCv3).
    buffer = LineBuffer(config.max_line_bytes + (MAX_TAG_BYTES if irc else 0))
    protocol: WireProtocol | None = None  # the wire protocol, once registered
    bucket = TokenBucket(config.rate_limit, config.burst, trio.current_time())
    deadline = trio.current_time() + config.registration_timeout
    pending: list[Command] = []
    secret: str | None = None  # the server password, from a plain first line /pass
    head = b""  # the first bytes, until there are enough to tell a TLS handshake
    registration = IrcRegistration(IRC.server) if irc else None
    irc_deadline = trio.current_time() + IRC_REGISTRATION_TIMEOUT
    eof = False
    try:
        while True:
            line = buffer.next_line()
            if line is None:
                # Everything received so far is parsed: hand it to the hub as one message,
                # one trip through the scheduler per chunk read rather than per line.
                if pending:
                    await inbound.send(Input(conn.id, pending))
                    pending = []
                data = None if eof else transport.try_read()
                if data is None and not eof:
                    if registration is not None and protocol is None:
                        # IRC: no guest after a silence; a client that never registers
                        # is told so and closed.
                        with trio.move_on_at(irc_deadline):
                            await transport.wait_readable()
                            continue
                        await transport.send_all(IRC_TIMED_OUT)
                        return SILENT
                    if protocol is None:  # not registered yet: wait at most until the deadline
                        with trio.move_on_at(deadline):
                            await transport.wait_readable()
                            continue
                        # A second of silence: join as a guest in plain mode.
                        protocol = PLAIN
                        await inbound.send(Register(conn, protocol.mode, None, secret))
                        continue
                    await transport.wait_readable()
                    continue
                if data:
                    conn.heard = trio.current_time()  # alive (see server.liveness)
                    if protocol is None and registration is None and len(head) < len(TLS_RECORD):
                        head += data[: len(TLS_RECORD) - len(head)]
                        if head == TLS_RECORD:  # a TLS handshake has no line end to wait for
                            await _wrong_door(conn, config, Stranger.TLS)
                            return SILENT
                    if transport.direct:
                        await trio.lowlevel.checkpoint()  # as receive_some would: stay fair
                    buffer.feed(data)
                    continue
                eof = True
                line = buffer.close()  # an unterminated last line still counts
                if line is None:
                    return "closed" if protocol is not None else SILENT
            if registration is not None and protocol is None:
                if not isinstance(line, bytes) or irc_too_long(line, config.max_line_bytes):
                    await transport.send_all(registration.too_long().encode())
                    continue
                reply = registration.feed(_decode(line))
                if reply:
                    await transport.send_all(reply.encode())
                if registration.state is RegState.QUIT:
                    return SILENT
                if registration.state is RegState.DONE:
                    protocol = IRC
                    hello = registration.hello
                    await inbound.send(Register(conn, Mode.IRC, hello, registration.password))
                continue
            if protocol is None:
                other = stranger(line) if isinstance(line, bytes) else None
                if other is not None:
                    await _wrong_door(conn, config, other)
                    return SILENT
                sniffed, command = _registration(line, config.max_line_bytes)
                if isinstance(command, Pass) and secret is None:
                    secret = command.secret  # the next line registers, with a fresh second
                    deadline = trio.current_time() + config.registration_timeout
                    continue
                protocol = sniffed
                await inbound.send(Register(conn, protocol.mode, command, secret))
                continue
            # Flood control: past the burst, stop reading for a while.
            delay = bucket.take(trio.current_time())
            if delay:
                if pending:
                    await inbound.send(Input(conn.id, pending))
                    pending = []
                await trio.sleep(delay)
            if not isinstance(line, bytes) or (irc and irc_too_long(line, config.max_line_bytes)):
                command = _too_long(config.max_line_bytes)
            else:
                command = _parse(protocol, line)
            if command is not None:
                pending.append(command)
                if len(pending) >= INPUT_BATCH:
                    await inbound.send(Input(conn.id, pending))
                    pending = []
    except ConnectionLost:
        return "lost"


def leave_reason(read_result: str | None, conn: Connection) -> str:
    """The one place a leave reason is decided.

    ``read_result`` is what :func:`read_commands` returned, or None if it did not
    return (cancelled: dropped by the hub, shut down, or the writer failed). A writer
    that hit a reset means "lost" whatever the reader saw; otherwise the reader's
    reason; otherwise "closed".
    """
    if conn.failed:
        return "lost"
    return read_result or "closed"


async def _wrong_door(conn: Connection, config: ServerConfig, who: Stranger) -> None:
    """Tell ``who`` where its door is, in one line (the caller then ends the connection)."""
    log_event(log, "connection.wrong_door", conn=conn.id, client=who.value, address=conn.peer)
    with trio.move_on_after(WRONG_DOOR_TIMEOUT):
        await conn.transport.send_all(directions(who, signposts(config, _local_host(conn))))


def signposts(config: ServerConfig, host: str | None = None) -> Signposts:
    """Where ``config``'s other doors are; ``host`` is how the peer reached this one.

    ``host`` (default: ``--host``) goes into the web page's address.
    """
    host = host or config.host
    web = None
    if config.web_port is not None:
        scheme = "https" if config.tls_cert is not None and not config.web_cleartext else "http"
        where = f"[{host}]" if ":" in host else host
        web = f"{scheme}://{where}:{config.web_port}/"
    tls = config.tls_cert is not None
    return Signposts(
        web=web,
        tls_port=config.tls_port if tls else None,
        irc_port=config.irc_port,
        irc_tls_port=config.irc_tls_port if tls else None,
    )


def _local_host(conn: Connection) -> str | None:
    """The address the peer connected to (None: not a socket, or it cannot be read)."""
    stream = conn.transport.stream
    if not isinstance(stream, trio.SocketStream):
        return None
    try:
        host = stream.socket.getsockname()[0]
    except OSError:
        return None
    return host if isinstance(host, str) else None


def _registration(line: bytes | LineTooLong, limit: int) -> tuple[WireProtocol, Command | None]:
    """The protocol a first line picks (the sniffer), and its command."""
    if line is TOO_LONG:
        return PLAIN, _too_long(limit)
    assert isinstance(line, bytes)
    return sniff(_decode(line))


def _parse(protocol: WireProtocol, line: bytes) -> Command | None:
    """One line in ``protocol``; a protocol that is UTF-8 only refuses other bytes."""
    if protocol.utf8_only:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            return Invalid("invalid-utf8", "that line is not UTF-8; it was discarded")
        return protocol.parse(text)
    return protocol.parse(_decode(line))


def _decode(line: bytes) -> str:
    """UTF-8 with U+FFFD for invalid bytes; the parsers sanitise every field they return."""
    return line.decode("utf-8", "replace")


def _too_long(limit: int) -> Invalid:
    return Invalid("line-too-long", f"line too long (over {limit} bytes); it was discarded")
