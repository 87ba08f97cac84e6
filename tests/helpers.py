"""Test doubles shared by the tests (the peers themselves are triochat.testing's)."""

from __future__ import annotations

from typing import Any

import trio

from triochat.core.history import mention_bytes, replay_bytes, search_bytes
from triochat.core.model import Query
from triochat.store import Store
from triochat.store.mentions import find_mentions
from triochat.store.reads import read_replay
from triochat.testing import Peer, connect, join, join_json
from triochat.testing._peer import parse_event

__all__ = ["BreakableStream", "FakeLink", "Peer", "connect", "join", "join_json"]


class FakeLink:
    """Records what the state queues for one member; ``room`` bounds the queue."""

    def __init__(self, room: int = 1000) -> None:
        self.sent: list[bytes] = []
        self.room = room
        self.replays: list[Query] = []  # paced replays asked for, not yet served
        self.slots: list[int] = []  # ... and their places in sent
        self.closed = False
        self.cut_off = False

    def put(self, data: bytes) -> bool:
        if len(self.sent) >= self.room:
            return False
        self.sent.append(data)
        return True

    def replay(self, query: Query) -> None:
        """A paced replay: recorded; :meth:`serve` answers it as the server would."""
        self.replays.append(query)
        self.sent.append(b"")  # its place in the output (an empty line, once served)
        self.slots.append(len(self.sent) - 1)

    def serve(self, store: Store, now: float = 0.0) -> None:
        """Fill every recorded replay from ``store``, in place, as the history reader does."""
        for query, at in zip(self.replays, self.slots, strict=True):
            if query.mentions is not None:
                self.sent[at] = mention_bytes(query, find_mentions(store, query.mentions), now)
                continue
            if query.search is not None:
                self.sent[at] = search_bytes(query, store.search(query.search), now)
                continue
            records, skipped = read_replay(store, query)
            self.sent[at] = b"".join(replay_bytes(query, records, len(records), skipped, now))
        self.replays.clear()
        self.slots.clear()

    def close(self) -> None:
        self.closed = True

    def cut(self) -> None:
        self.cut_off = True

    def lines(self) -> list[str]:
        out = [line for data in self.sent for line in data.decode().splitlines()]
        self.sent.clear()
        return out

    def events(self) -> list[dict[str, Any]]:
        """What was sent, as JSON events: read through the one schema (core.jsonwire)."""
        return [parse_event(line) for line in self.lines()]


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
