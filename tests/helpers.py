"""Test doubles shared by the tests (the peers themselves are triochat.testing's)."""

from __future__ import annotations

import json
from typing import Any

import trio

from triochat.testing import Peer, connect, join, join_json

__all__ = ["BreakableStream", "FakeLink", "Peer", "connect", "join", "join_json"]


class FakeLink:
    """Records what the state queues for one member; ``room`` bounds the queue."""

    def __init__(self, room: int = 1000) -> None:
        self.sent: list[bytes] = []
        self.room = room
        self.closed = False
        self.cut_off = False

    def put(self, data: bytes) -> bool:
        if len(self.sent) >= self.room:
            return False
        self.sent.append(data)
        return True

    def close(self) -> None:
        self.closed = True

    def cut(self) -> None:
        self.cut_off = True

    def lines(self) -> list[str]:
        out = [line for data in self.sent for line in data.decode().splitlines()]
        self.sent.clear()
        return out

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines()]


class BreakableStream(trio.abc.Stream):
    """Wraps a stream; after :meth:`reset`, every call fails like a TCP reset would."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.broken = trio.Event()

    def reset(self) -> None:
        self.broken.set()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self.broken.is_set():
            raise trio.BrokenResourceError("connection reset by peer")
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        async with trio.open_nursery() as nursery:
            result: list[bytes | bytearray] = []

            async def receive() -> None:
                result.append(await self.inner.receive_some(max_bytes))
                nursery.cancel_scope.cancel()

            async def broken() -> None:
                await self.broken.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(receive)
            nursery.start_soon(broken)
        if result and not self.broken.is_set():
            return result[0]
        raise trio.BrokenResourceError("connection reset by peer")

    async def aclose(self) -> None:
        await self.inner.aclose()
