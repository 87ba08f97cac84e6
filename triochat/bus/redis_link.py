"""The Redis client, behind a small adapter: the only module the bus calls Redis through.

:class:`RedisLink` offers the few calls the bus makes (``PING``, ``GET``, ``SET NX``,
``XREAD`` and the Lua scripts of :mod:`triochat.bus.scripts`) and the errors that mean
"Redis is away", in plain Python types. It runs on :mod:`triochat.bus.resp` (hiredis's
parser over a trio stream; hiredis is the redis extra: without it ``--redis`` is one
clear error) with two connections: one for the blocking ``XREAD`` of the log reader,
one for everything else (the publisher's and the heartbeat's calls, one at a time).
A connection that failed or whose call was cut short is replaced at the next call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

import trio

from triochat.bus.bus import ClusterError
from triochat.bus.url import redacted

if TYPE_CHECKING:
    from triochat.bus.resp import Address, Arg, Connection

__all__ = ["CONNECT_TIMEOUT", "Entry", "RedisLink", "entry_value", "reason"]

CONNECT_TIMEOUT: Final = 5.0  # seconds to reach Redis (and log in) on each (re)connect

# A stream entry as XREAD returns it, undecoded: ``[id, [field, value, ...]]`` (bytes;
# the fields None if the entry was deleted since). See :func:`entry_value`.
Entry = list[Any]

_MISSING: Final = (
    "--redis needs hiredis, the redis extra: pip install '.[redis]' "
    "in a checkout (or 'triochat[redis]')"
)


class RedisLink:
    """One client for Redis at ``url``; enter it (``async with link:``) to use it.

    ``url`` is the address to show (its password masked, :func:`redacted`); the
    address given, password and all, is kept for the connections only.
    """

    def __init__(self, url: str) -> None:
        """Raises :class:`ClusterError` if the client library is missing or ``url`` is bad."""
        self.url = redacted(url)
        try:
            from triochat.bus import resp
        except ImportError:  # pragma: no cover - the test environment has it
            raise ClusterError(_MISSING) from None
        try:
            self._address: Address = resp.parse_url(url)
        except ValueError as exc:
            raise ClusterError(f"--redis {self.url}: {exc}") from None
        self._resp = resp
        self.errors: tuple[type[BaseException], ...] = (
            resp.ReplyError,
            OSError,  # LinkClosed too
            trio.TooSlowError,
            trio.BrokenResourceError,
            trio.ClosedResourceError,
            resp.ProtocolError,
        )
        self._calls: Connection | None = None  # PING, GET, SET, the scripts
        self._reads: Connection | None = None  # the blocking XREAD
        self._scripts: dict[str, tuple[str, str]] = {}  # name -> (SHA1, source)
        self._connecting = trio.Lock()  # one (re)connect at a time: none is leaked

    async def _connect(self, *, decode: bool = True) -> Connection:
        with trio.fail_after(CONNECT_TIMEOUT):
            return await self._resp.Connection.open(self._address, decode=decode)

    async def _conn(self) -> Connection:
        async with self._connecting:
            conn = self._calls
            if conn is None or not conn.usable:
                self._calls = None
                conn = self._calls = await self._connect()
            return conn

    async def call(self, *args: Arg) -> Any:
        """One command on the calls connection (reconnecting first if it is gone)."""
        return await (await self._conn()).call(*args)

    async def check(self) -> None:
        """Make sure Redis answers (with a connection of its own, closed after).

        Raises :class:`ClusterError` with the reason if not.
        """
        try:
            conn = await self._connect()
            try:
                with trio.fail_after(CONNECT_TIMEOUT):
                    await conn.call("PING")
            finally:
                await conn.aclose()
        except self.errors as exc:
            raise ClusterError(f"cannot reach Redis at {self.url}: {reason(exc)}") from None

    async def __aenter__(self) -> RedisLink:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        calls, reads = self._calls, self._reads
        self._calls = self._reads = None
        try:  # (each close raises Cancelled when cancelled, after closing)
            if calls is not None:
                await calls.aclose()
        finally:
            if reads is not None:
                await reads.aclose()

    def register(self, name: str, source: str) -> None:
        """Make the Lua script ``source`` callable as ``name`` (:meth:`script`)."""
        self._scripts[name] = (hashlib.sha1(source.encode()).hexdigest(), source)

    def registered(self, name: str) -> bool:
        """Whether :meth:`register` has made ``name`` callable."""
        return name in self._scripts

    async def script(self, name: str, args: Sequence[Arg]) -> Any:
        """Run the script registered as ``name`` with ``args`` (no keys); its reply.

        ``EVALSHA``; if Redis does not have the script (it restarted), ``EVAL`` once,
        which loads it for the next calls.
        """
        sha, source = self._scripts[name]
        try:
            return await self.call("EVALSHA", sha, 0, *args)
        except self._resp.ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        return await self.call("EVAL", source, 0, *args)

    async def scripts(self, calls: Sequence[tuple[str, Sequence[Arg]]]) -> list[Any]:
        """Several scripts in one round trip (pipelined); their replies in order.

        Raises the first error reply (after loading any script Redis lacked).
        """
        conn = await self._conn()
        commands = [("EVALSHA", self._scripts[name][0], 0, *args) for name, args in calls]
        replies = await conn.pipeline(commands)
        for i, reply in enumerate(replies):
            if isinstance(reply, self._resp.ReplyError):
                if not str(reply).startswith("NOSCRIPT"):
                    raise reply
                replies[i] = await self.script(*calls[i])
        return replies

    async def ping(self) -> None:
        await self.call("PING")

    async def get(self, key: str) -> str | None:
        value = await self.call("GET", key)
        return None if value is None else str(value)

    async def set_nx(self, key: str, value: str) -> None:
        """``SET key value NX``: set it unless it exists."""
        await self.call("SET", key, value, "NX")

    async def xread(
        self, positions: Mapping[str, str], count: int, block_ms: int | None
    ) -> dict[str, list[Entry]]:
        """``XREAD COUNT count [BLOCK block_ms] STREAMS ...``: new entries per stream
        (``block_ms`` None: at once, what is there), as they came (bytes, see
        :data:`Entry`): the reader decodes only what it uses.

        On a connection of its own, so that the other calls never wait behind it.
        """
        conn = self._reads
        if conn is None or not conn.usable:
            self._reads = None
            conn = self._reads = await self._connect(decode=False)
        keys = list(positions)
        block = () if block_ms is None else ("BLOCK", block_ms)
        reply = await conn.call(
            "XREAD", "COUNT", count, *block, "STREAMS", *keys, *positions.values()
        )
        if not reply:
            return {}
        return {key.decode(): entries for key, entries in reply}


def entry_value(fields: list[bytes] | None, name: bytes = b"e") -> bytes:
    """The value of field ``name`` of an entry's ``fields`` (empty if it has none)."""
    if fields:
        for i in range(0, len(fields) - 1, 2):
            if fields[i] == name:
                return fields[i + 1]
    return b""


def reason(exc: BaseException) -> str:
    """Why a call failed, in a few words."""
    if isinstance(exc, trio.TooSlowError):
        return "no answer in time"
    return str(exc) or type(exc).__name__
