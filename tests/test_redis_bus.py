"""The bus in this process: a RedisBus against a real redis-server, and an injected bus.

Two buses on one Redis play two nodes (no chat server around them), so the bus's own
numbers (:meth:`RedisBus.statistics`) can be read after each step. The hub is given
its bus and never builds one: a fake bus shows what the hub calls.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Final

import trio
import trio.testing

from tests.redisproc import RedisServer
from triochat.bus import Bus, BusStatistics, Deliver
from triochat.bus.redis_bus import RedisBus
from triochat.config import ServerConfig
from triochat.core import cluster
from triochat.server import ChatServer
from triochat.server.hub import INBOUND_QUEUE

ROOM: Final = "#lobby"
WAIT: Final = 10.0  # real seconds for anything to cross Redis


class Sink:
    """A node's ``deliver``: keeps what the log reported."""

    def __init__(self) -> None:
        self.items: list[cluster.ClusterIn] = []
        self.changed = trio.Event()

    async def deliver(self, items: list[cluster.ClusterIn]) -> None:
        self.items.extend(items)
        self.changed.set()
        self.changed = trio.Event()

    async def wait_for(self, lines: int) -> None:
        with trio.fail_after(WAIT):
            while sum(isinstance(item, cluster.Sequenced) for item in self.items) < lines:
                await self.changed.wait()


def line(i: int) -> cluster.Line:
    return cluster.Line(1, "alice", "alice", ROOM, "say", f"line {i}", time.time(), 0)


async def test_redis_bus_statistics_count_publishing_and_reading(
    nursery: trio.Nursery, redis_server: RedisServer
) -> None:
    """statistics(): operations published in batches on one node, items read on the other."""
    sender, receiver = RedisBus(redis_server.url, node="a"), RedisBus(redis_server.url, node="b")
    sink_a, sink_b = Sink(), Sink()
    with trio.fail_after(WAIT):
        await nursery.start(sender.run, sink_a.deliver, {ROOM: 0})
        await nursery.start(receiver.run, sink_b.deliver, {ROOM: 0})
    fresh = sender.statistics()
    assert fresh == BusStatistics("a", False, 0, 0, 0, 0, 0, 0, 0)
    sender.publish([cluster.Arrive(1, "alice", "alice", (ROOM,))])
    sender.publish([line(i) for i in range(5)])
    await sink_b.wait_for(5)
    stats = sender.statistics()
    assert (stats.published, stats.queued, stats.refused, stats.down) == (6, 0, 0, False)
    assert 1 <= stats.batches <= 2  # everything queued goes in one call, at most two here
    read = receiver.statistics()
    assert read.received == len(sink_b.items) >= 6  # the arrival and the five lines
    assert read.reads >= 1
    assert read.published == 0
    for bus in (sender, receiver):
        await bus.leave()


async def test_a_joining_node_has_the_room_lines_before_it_is_started(
    nursery: trio.Nursery, redis_server: RedisServer
) -> None:
    """run() is started only once the lines the room streams held are delivered.

    The server opens its doors after that, so a member joining a room on a new node is
    replayed the lines said there before the node came up.
    """
    sender, witness = RedisBus(redis_server.url, node="a"), RedisBus(redis_server.url, node="b")
    sink_a, sink_b = Sink(), Sink()
    with trio.fail_after(WAIT):
        await nursery.start(sender.run, sink_a.deliver, {ROOM: 0})
        await nursery.start(witness.run, sink_b.deliver, {ROOM: 0})
    sender.publish([cluster.Arrive(1, "alice", "alice", (ROOM,))])
    sender.publish([line(i) for i in range(3)])
    await sink_b.wait_for(3)  # in Redis now

    late, sink_late = RedisBus(redis_server.url, node="c"), Sink()
    with trio.fail_after(WAIT):
        await nursery.start(late.run, sink_late.deliver, {ROOM: 0})
    texts = [item.line.text for item in sink_late.items if isinstance(item, cluster.Sequenced)]
    assert texts == ["line 0", "line 1", "line 2"]
    for bus in (sender, witness, late):
        await bus.leave()


async def test_a_node_started_again_under_its_name_is_heard(
    nursery: trio.Nursery, redis_server: RedisServer
) -> None:
    """A bus started again under a node name used before numbers its batches after the
    old one's: the script skips a number it has seen (as a retry), so none is lost."""
    witness, sink = RedisBus(redis_server.url, node="b"), Sink()
    with trio.fail_after(WAIT):
        await nursery.start(witness.run, sink.deliver, {ROOM: 0})
    for first in (0, 3):  # the same node twice, one after the other
        node = RedisBus(redis_server.url, node="a")
        async with trio.open_nursery() as process:
            with trio.fail_after(WAIT):
                await process.start(node.run, Sink().deliver, {ROOM: 0})
            node.publish([cluster.Arrive(1, "alice", "alice", (ROOM,))])
            node.publish([line(i) for i in range(first, first + 3)])
            await sink.wait_for(first + 3)
            await node.leave()
            process.cancel_scope.cancel()
    texts = [item.line.text for item in sink.items if isinstance(item, cluster.Sequenced)]
    assert texts == [f"line {i}" for i in range(6)]
    await witness.leave()


class FakeBus:
    """A :class:`Bus` that records what the hub asks of it (no Redis anywhere)."""

    node = "fake"
    url = "fake://"
    down = False

    def __init__(self) -> None:
        self.checked = False
        self.running = False
        self.left = False
        self.published: list[cluster.Op] = []
        self.got_line = trio.Event()
        self.deliveries = 0

    async def check(self) -> None:
        self.checked = True

    async def run(
        self,
        deliver: Deliver,
        rooms: Mapping[str, int],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        self.running = True
        for _ in range(self.deliveries):  # a long catch-up, before started
            await deliver([cluster.Remote("other", cluster.RoomMade("#dev"))])
        task_status.started()
        await trio.sleep_forever()

    def publish(self, ops: Iterable[cluster.Op]) -> list[cluster.Op]:
        self.published.extend(ops)
        if any(isinstance(op, cluster.Line) for op in self.published):
            self.got_line.set()
        return []

    def resync(self, ops: list[cluster.Op]) -> None:
        self.published.extend(ops)

    async def leave(self) -> None:
        self.left = True

    def statistics(self) -> BusStatistics:
        return BusStatistics(self.node, False, 0, len(self.published), 0, 0, 0, 0, 0)


async def test_hub_uses_the_bus_it_is_given(nursery: trio.Nursery) -> None:
    """The bus is injected: the hub checks, runs, publishes to and leaves the one it got."""
    fake = FakeBus()
    bus: Bus = fake
    server = ChatServer(ServerConfig(), bus=bus)
    assert server.hub.bus is fake
    await nursery.start(server.run)
    assert fake.checked
    assert fake.running
    client, server_side = trio.testing.memory_stream_pair()
    nursery.start_soon(server.handle_stream, server_side)
    await client.send_all(b"/nick alice\nhello\n")
    with trio.fail_after(WAIT):
        await fake.got_line.wait()  # "hello", published to the cluster
    await server.shutdown()
    assert fake.left
    await client.aclose()


async def test_the_hub_takes_what_the_bus_delivers_while_it_starts(nursery: trio.Nursery) -> None:
    """The hub's loop runs while the bus starts: a catch-up longer than the hub's queue
    is taken in, not left waiting on a loop that would only start after it."""
    fake = FakeBus()
    fake.deliveries = INBOUND_QUEUE * 2
    server = ChatServer(ServerConfig(), bus=fake)
    with trio.fail_after(WAIT):
        await nursery.start(server.run)
    assert "#dev" in server.hub.state.rooms
    await server.shutdown()
    assert fake.left
