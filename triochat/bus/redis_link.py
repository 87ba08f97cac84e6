"""The Redis client, behind a small adapter: the only module that imports one.

:class:`RedisLink` offers the few calls the bus makes (``PING``, ``GET``, ``SET NX``,
``XREAD`` and the Lua scripts of :mod:`triochat.bus.scripts`) and the errors that mean
"Redis is away", in plain Python types. Today it runs on coredis (an optional extra:
without it ``--redis`` is one clear error); swapping the client library changes this
module only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

import trio

from triochat.bus.bus import ClusterError, first_leaf
from triochat.bus.url import redacted

if TYPE_CHECKING:
    import coredis

__all__ = ["CONNECT_TIMEOUT", "Entry", "RedisLink", "reason"]

CONNECT_TIMEOUT: Final = 5.0  # seconds to reach Redis at start-up

Entry = tuple[str, str]  # a stream entry: its id, and its "e" field


class RedisLink:
    """One client for Redis at ``url``; enter it (``async with link:``) to use it.

    ``url`` is the address to show (its password masked, :func:`redacted`); the
    address given, password and all, is kept for the client only.
    """

    def __init__(self, url: str) -> None:
        """Raises :class:`ClusterError` if the client library is missing or ``url`` is bad."""
        self._secret_url = url
        self.url = redacted(url)
        logging.getLogger("coredis").setLevel(logging.WARNING)  # it logs each retry as info
        self.errors = _redis_errors()
        self._client = self._new_client()
        self._scripts: dict[str, Any] = {}

    def _new_client(self) -> coredis.Redis[str]:
        try:
            import coredis
        except ImportError:  # pragma: no cover - the test environment has it
            raise ClusterError(
                "--redis needs coredis, the redis extra: pip install '.[redis]' "
                "in a checkout (or 'triochat[redis]')"
            ) from None
        try:
            return coredis.Redis.from_url(
                self._secret_url, decode_responses=True, connect_timeout=CONNECT_TIMEOUT
            )
        except ValueError as exc:
            problem = str(exc).replace(self._secret_url, self.url)
            raise ClusterError(f"--redis {self.url}: {problem}") from None

    async def check(self) -> None:
        """Make sure Redis answers (with a client of its own, closed after).

        Raises :class:`ClusterError` with the reason if not.
        """
        client = self._new_client()
        failure: BaseException | None = None
        try:  # the client's task group wraps what its connection raised in a group
            with trio.fail_after(CONNECT_TIMEOUT):
                async with client:
                    await client.ping()
        except* self.errors as group:
            failure = first_leaf(group)
        if failure is not None:
            raise ClusterError(f"cannot reach Redis at {self.url}: {reason(failure)}")

    async def __aenter__(self) -> RedisLink:
        await self._client.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._client.__aexit__(exc_type, exc, traceback)

    def register(self, name: str, source: str) -> None:
        """Make the Lua script ``source`` callable as ``name`` (:meth:`script`)."""
        self._scripts[name] = self._client.register_script(source)

    def registered(self, name: str) -> bool:
        """Whether :meth:`register` has made ``name`` callable."""
        return name in self._scripts

    async def script(self, name: str, args: Sequence[str | int]) -> Any:
        """Run the script registered as ``name`` with ``args`` (no keys); its reply."""
        return await self._scripts[name](args=list(args))

    async def ping(self) -> None:
        await self._client.ping()

    async def get(self, key: str) -> str | None:
        return await self._client.get(key)

    async def set_nx(self, key: str, value: str) -> None:
        """``SET key value NX``: set it unless it exists."""
        from coredis.tokens import PureToken

        await self._client.set(key, value, condition=PureToken.NX)

    async def xread(
        self, positions: Mapping[str, str], count: int, block_ms: int
    ) -> dict[str, list[Entry]]:
        """``XREAD COUNT count BLOCK block_ms STREAMS ...``: new entries per stream."""
        reply = await self._client.xread(dict(positions), count=count, block=block_ms)
        if not reply:
            return {}
        return {
            str(key): [
                (str(entry.identifier), str(entry.field_values.get("e", ""))) for entry in entries
            ]
            for key, entries in reply.items()
        }


def _redis_errors() -> tuple[type[BaseException], ...]:
    """What a call to Redis raises when Redis is away (coredis runs on anyio)."""
    try:
        import anyio
        import coredis.exceptions
    except ImportError:  # pragma: no cover - the test environment has it
        raise ClusterError(
            "--redis needs coredis, the redis extra: pip install '.[redis]' "
            "in a checkout (or 'triochat[redis]')"
        ) from None
    return (
        coredis.exceptions.RedisError,
        OSError,
        trio.TooSlowError,
        anyio.ClosedResourceError,
        anyio.BrokenResourceError,
    )


def reason(exc: BaseException) -> str:
    """Why a call failed, in a few words."""
    if isinstance(exc, trio.TooSlowError):
        return "no answer in time"
    return str(exc) or type(exc).__name__
