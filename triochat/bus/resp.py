"""A thin Redis client on trio: RESP2 over one trio stream, parsed by hiredis.

:class:`Connection` sends commands packed by ``hiredis.pack_command`` with one
``send_all`` and parses the replies with a ``hiredis.Reader`` (C, sans-IO) fed from
``receive_some``. Several commands go out as one write and come back in order
(:meth:`Connection.pipeline`). One exchange at a time per connection (a lock); a
connection that an exchange left half done (cancelled, timed out, cut) is closed and
refuses further calls, so the next reply read can never be the answer to an older
question: the caller opens a new one (:class:`~triochat.bus.redis_link.RedisLink`
does).

Why not a full client: under trio, coredis (on anyio) cost 0.2-0.36 ms of CPU per call,
a bare trio socket 25 us; this is the bare socket plus hiredis's parser (see
docs/benchmarks.md, "The Redis link"). No timeouts of its own besides the connect
timeout: callers put calls in cancel scopes (``trio.fail_after``).
"""

from __future__ import annotations

import ssl
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import hiredis
import trio

__all__ = [
    "Address",
    "Arg",
    "Connection",
    "LinkClosed",
    "ProtocolError",
    "ReplyError",
    "parse_url",
]

DEFAULT_PORT: Final = 6379
RECEIVE_BYTES: Final = 65536  # one receive_some; a 1000-entry XREAD reply is ~200 KB
_MORE: Final = Ellipsis  # what the reader returns while a reply is incomplete (never a reply)

Arg = str | bytes | int | float  # what pack_command takes
ProtocolError = hiredis.ProtocolError  # bytes that are not RESP (not a Redis at the address)


class ReplyError(Exception):
    """Redis answered a command with an error reply (``-ERR ...``, ``-NOSCRIPT ...``)."""


class LinkClosed(ConnectionError):
    """The connection ended (Redis closed it, or an earlier exchange was cut short)."""


@dataclass(frozen=True, slots=True)
class Address:
    """Where Redis is and how to log in, from a ``redis://`` or ``rediss://`` URL."""

    host: str
    port: int = DEFAULT_PORT
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False


def parse_url(url: str) -> Address:
    """``redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?password=..&db=..]``, or ``rediss://``.

    Raises:
        ValueError: not such a URL (the message never holds the password).
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ValueError("expected redis://[:PASSWORD@]HOST[:PORT][/DB] (or rediss://)")
    port = parts.port or DEFAULT_PORT  # (a port that is not a number: ValueError)
    query = dict(urllib.parse.parse_qsl(parts.query))
    db_text = parts.path.strip("/") or query.get("db", "0")
    if not db_text.isdigit():
        raise ValueError(f"the database must be a number, not {db_text!r}")
    password = parts.password
    if password is None:
        password = query.get("password")
    username = parts.username or None
    return Address(
        host=parts.hostname,
        port=port,
        db=int(db_text),
        username=urllib.parse.unquote(username) if username else None,
        password=urllib.parse.unquote(password) if password is not None else None,
        tls=parts.scheme == "rediss",
    )


class Connection:
    """One connection to Redis; :meth:`open` it, :meth:`call` or :meth:`pipeline`."""

    def __init__(self, stream: trio.abc.Stream, *, decode: bool = True) -> None:
        """``decode``: bulk strings come back as ``str`` (UTF-8, bad bytes replaced);
        False: as ``bytes``, for a caller that decodes only what it needs (the log
        reader: an entry of this node's own line is never decoded)."""
        self._stream = stream
        if decode:
            self._reader = hiredis.Reader(
                notEnoughData=_MORE, replyError=ReplyError, encoding="utf-8", errors="replace"
            )
        else:
            self._reader = hiredis.Reader(notEnoughData=_MORE, replyError=ReplyError)
        self._lock = trio.StrictFIFOLock()
        self._closed = False  # by aclose(), or by an exchange cut short
        self.calls = 0  # exchanges made (one per call or pipeline)

    @classmethod
    async def open(cls, address: Address, *, decode: bool = True) -> Connection:
        """Connect, log in (``AUTH``) and choose the database (``SELECT``).

        ``decode``: as for the constructor.

        Raises :class:`OSError` if Redis cannot be reached, :class:`ReplyError` if it
        refuses the password or the database. Bounded by the caller's cancel scope.
        """
        stream: trio.abc.Stream
        if address.tls:
            stream = await trio.open_ssl_over_tcp_stream(
                address.host, address.port, ssl_context=ssl.create_default_context()
            )
        else:
            stream = await trio.open_tcp_stream(address.host, address.port)
        conn = cls(stream, decode=decode)
        hello: list[Sequence[Arg]] = []
        if address.password is not None:
            user = (address.username,) if address.username else ()
            hello.append(("AUTH", *user, address.password))
        if address.db:
            hello.append(("SELECT", address.db))
        try:
            if hello:
                for reply in await conn.pipeline(hello):
                    if isinstance(reply, ReplyError):
                        raise reply
        except BaseException:
            await conn.aclose()
            raise
        return conn

    @property
    def usable(self) -> bool:
        """No exchange was cut short and Redis has not closed it."""
        return not self._closed

    async def call(self, *args: Arg) -> Any:
        """One command; its reply (a str (bytes if not ``decode``), int, None or list of them).

        Raises :class:`ReplyError` for an error reply, :class:`LinkClosed` (or another
        :class:`OSError`, :class:`trio.BrokenResourceError`) if the connection failed.
        """
        (reply,) = await self.pipeline((args,))
        if isinstance(reply, ReplyError):
            raise reply
        return reply

    async def pipeline(self, commands: Sequence[Sequence[Arg]]) -> list[Any]:
        """Send ``commands`` in one write; their replies in order (error replies as
        :class:`ReplyError` instances, not raised)."""
        async with self._lock:
            if self._closed:
                raise LinkClosed("the connection to Redis was closed")
            try:
                pack: Any = hiredis.pack_command  # (its stub takes a 1-tuple only)
                request = b"".join([pack(tuple(c)) for c in commands])
                await self._stream.send_all(request)
                replies: list[Any] = []
                reader = self._reader
                while len(replies) < len(commands):
                    reply = reader.gets()
                    if reply is _MORE:
                        data = await self._stream.receive_some(RECEIVE_BYTES)
                        if not data:
                            raise LinkClosed("Redis closed the connection")
                        reader.feed(bytes(data))
                    else:
                        replies.append(reply)
            except BaseException:  # cut short: what comes next on it would be out of step
                await self.aclose()
                raise
            self.calls += 1
            return replies

    async def aclose(self) -> None:
        """Close the connection (further calls raise :class:`LinkClosed`)."""
        self._closed = True
        await trio.aclose_forcefully(self._stream)
