"""A catch-up read from the cluster's log is stored, then replayed paced (no Redis here
but in the last test): the state never puts a backlog into members' send queues."""

from __future__ import annotations

import time
from typing import Final

import trio

from tests.helpers import FakeLink
from tests.redisproc import RedisServer
from triochat.bus.redis_bus import CATCH_UP, READ_COUNT, STALE_S, RedisBus
from triochat.core import cluster
from triochat.core.codec import Mode
from triochat.core.commands import Hello, Join, Nick
from triochat.core.names import LOBBY
from triochat.core.state import ChatState, Limits, Member
from triochat.store import MemoryStore

NOW: Final = 1795714800.0
QUEUE: Final = 100  # the member's send queue, in lines: far below the backlog
BACKLOG: Final = 600
WAIT: Final = 10.0  # real seconds for lines to cross Redis


def node(limits: Limits | None = None) -> ChatState:
    return ChatState(limits or Limits(), clock=lambda: NOW, node="here")


def member(state: ChatState, mode: Mode = Mode.JSON) -> tuple[Member, FakeLink]:
    link = FakeLink(QUEUE)
    first = Hello("reader") if mode is Mode.JSON else Nick("reader")
    joined = state.register(1, "test", link, mode, first)
    assert joined is not None
    link.lines()
    state.take_effects()
    return joined, link


def lines(first: int, count: int) -> tuple[cluster.Sequenced, ...]:
    return tuple(
        cluster.Sequenced(
            "there",
            n,
            cluster.Line(7, "talker", "talker", LOBBY, "say", f"line {n}", NOW, 0),
        )
        for n in range(first, first + count)
    )


def stored(state: ChatState) -> MemoryStore:
    store = MemoryStore()
    store.commit(state.take_effects().batch)
    return store


def test_cluster_backlog_is_stored_and_replayed_not_queued() -> None:
    """600 lines in one catch-up: none in the 100-line send queue, all in one paced
    replay of the stored lines, nobody cut off."""
    state = node()
    reader, link = member(state)
    state.apply(cluster.Backlog(LOBBY, lines(1, BACKLOG)))
    assert not link.cut_off
    assert link.sent == [b""]  # only the replay's place in the output
    (query,) = link.replays
    assert (query.member, query.room, query.after, query.upto) == (reader, LOBBY, 0, BACKLOG)
    link.serve(stored(state))
    said = [event for event in link.events() if event["type"] == "say"]
    assert [event["id"] for event in said] == list(range(1, BACKLOG + 1))
    assert state.rooms[LOBBY].last_id == BACKLOG


def test_cluster_same_lines_live_would_cut_the_member_off() -> None:
    """What the backlog avoids: the same lines delivered live overflow the queue."""
    state = node()
    _, link = member(state)
    for item in lines(1, BACKLOG):
        state.apply(item)
    assert link.cut_off


def test_cluster_backlog_read_twice_is_not_replayed_twice() -> None:
    """A catch-up read again (the log came back) replays nothing more."""
    state = node()
    _, link = member(state, Mode.PLAIN)
    state.apply(cluster.Backlog(LOBBY, lines(1, 300)))
    state.apply(cluster.Backlog(LOBBY, lines(1, 300)))
    assert len(link.replays) == 1
    state.apply(cluster.Backlog(LOBBY, lines(250, 100)))  # 301..349 are new
    assert [(q.after, q.upto) for q in link.replays] == [(0, 300), (300, 349)]


def test_cluster_backlog_over_the_resume_limit_says_how_many_were_skipped() -> None:
    """Beyond --resume-limit the oldest lines are skipped, and a gap notice counts them."""
    state = node(Limits(resume_limit=50))
    _, link = member(state)
    state.apply(cluster.Backlog(LOBBY, lines(1, 300)))
    link.serve(stored(state))
    events = link.events()
    assert events[0]["type"] == "gap"
    assert events[0]["skipped"] == 250
    assert [e["id"] for e in events if e["type"] == "say"] == list(range(251, 301))


class Sink:
    def __init__(self) -> None:
        self.items: list[cluster.ClusterIn] = []
        self.sizes: list[int] = []  # items per delivery
        self.changed = trio.Event()

    async def deliver(self, items: list[cluster.ClusterIn]) -> None:
        self.items.extend(items)
        self.sizes.append(len(items))
        self.changed.set()
        self.changed = trio.Event()

    def ids(self) -> list[int]:
        out: list[int] = []
        for item in self.items:
            if isinstance(item, cluster.Sequenced):
                out.append(item.id)
            elif isinstance(item, cluster.Backlog):
                out.extend(line.id for line in item.lines)
        return out


async def test_redis_bus_reads_a_large_batch_as_a_backlog(
    nursery: trio.Nursery, redis_server: RedisServer
) -> None:
    """A node that joins behind (more than CATCH_UP lines written since its last id)
    gets them as a Backlog; every line once, in order."""
    sender, receiver = RedisBus(redis_server.url, node="a"), RedisBus(redis_server.url, node="b")
    sink_a, sink_b = Sink(), Sink()
    with trio.fail_after(WAIT):
        await nursery.start(sender.run, sink_a.deliver, {LOBBY: 0})
    count = 2 * CATCH_UP + 100
    publish_lines(sender, count)
    with trio.fail_after(WAIT):
        while len(sink_a.ids()) < count:
            await sink_a.changed.wait()
        await nursery.start(receiver.run, sink_b.deliver, {LOBBY: 0})
        while len(sink_b.ids()) < count:
            await sink_b.changed.wait()
    assert sink_b.ids() == list(range(1, count + 1))
    assert any(isinstance(item, cluster.Backlog) for item in sink_b.items)
    assert receiver.statistics().catch_ups >= 1
    for bus in (sender, receiver):
        await bus.leave()


async def test_redis_bus_delivers_a_live_burst_live_in_bounded_pieces(
    nursery: trio.Nursery, redis_server: RedisServer
) -> None:
    """A node keeping up gets a burst (one read of more than CATCH_UP lines) live, not
    as a paced replay, handed to the hub at most CATCH_UP items at a time."""
    sender, receiver = RedisBus(redis_server.url, node="a"), RedisBus(redis_server.url, node="b")
    sink_a, sink_b = Sink(), Sink()
    with trio.fail_after(WAIT):
        await nursery.start(sender.run, sink_a.deliver, {LOBBY: 0})
        await nursery.start(receiver.run, sink_b.deliver, {LOBBY: 0})
    count = 2 * CATCH_UP + 100  # published in one call: read at once
    publish_lines(sender, count)
    with trio.fail_after(WAIT):
        while len(sink_b.ids()) < count:
            await sink_b.changed.wait()
    assert sink_b.ids() == list(range(1, count + 1))
    assert not any(isinstance(item, cluster.Backlog) for item in sink_b.items)
    assert receiver.statistics().catch_ups == 0
    assert max(sink_b.sizes) <= CATCH_UP
    for bus in (sender, receiver):
        await bus.leave()


class HeldSink(Sink):
    """A hub that can be held up: a delivery of lines waits while ``open`` is not set
    (other news, such as a node's arrival, goes through)."""

    def __init__(self) -> None:
        super().__init__()
        self.open = trio.Event()
        self.open.set()

    async def deliver(self, items: list[cluster.ClusterIn]) -> None:
        await super().deliver(items)
        if any(isinstance(item, cluster.Sequenced | cluster.Backlog) for item in items):
            await self.open.wait()


async def full_read_after_a_hold(
    nursery: trio.Nursery, redis_server: RedisServer, age_s: float
) -> tuple[RedisBus, HeldSink, int]:
    """Node b's hub is held while node a publishes more than READ_COUNT lines said
    ``age_s`` ago; then released, b reads them in a full read (READ_COUNT) and one more.
    Returns b, its sink, and its reads since the release."""
    sender, receiver = RedisBus(redis_server.url, node="a"), RedisBus(redis_server.url, node="b")
    sink_a, sink_b = Sink(), HeldSink()
    with trio.fail_after(WAIT):
        await nursery.start(sender.run, sink_a.deliver, {LOBBY: 0})
        await nursery.start(receiver.run, sink_b.deliver, {LOBBY: 0})
        sink_b.open = trio.Event()
        publish_lines(sender, 1)  # b's reader takes it to the hub, and waits there
        while len(sink_b.ids()) < 1:
            await sink_b.changed.wait()
        count = READ_COUNT + 200
        publish_lines(sender, count, first=2, ts=time.time() - age_s)
        while len(sink_a.ids()) < count + 1:  # all in Redis (a reads its own)
            await sink_a.changed.wait()
        reads = receiver.statistics().reads
        sink_b.open.set()
        while len(sink_b.ids()) < count + 1:
            await sink_b.changed.wait()
    reads = receiver.statistics().reads - reads
    assert sink_b.ids() == list(range(1, count + 2))
    await sender.leave()  # (b reads that too)
    return receiver, sink_b, reads


async def test_redis_bus_delivers_a_full_read_of_fresh_lines_live(
    nursery: trio.Nursery, redis_server: RedisServer
) -> None:
    """A node keeping up whose hub was busy finds READ_COUNT lines and more waiting: a
    burst, not a catch-up (before, every full read was: a one-node burst of 10,000
    lines went out as paced replays, 50x slower)."""
    receiver, sink, reads = await full_read_after_a_hold(nursery, redis_server, 0.0)
    assert reads == 2  # READ_COUNT, then the rest
    assert not any(isinstance(item, cluster.Backlog) for item in sink.items)
    assert receiver.statistics().catch_ups == 0
    assert max(sink.sizes) <= CATCH_UP
    await receiver.leave()


async def test_redis_bus_reads_a_full_read_of_stale_lines_as_a_backlog(
    nursery: trio.Nursery, redis_server: RedisServer
) -> None:
    """The same, but the lines were said more than STALE_S ago (the node had stalled):
    a catch-up, replayed paced."""
    receiver, sink, _ = await full_read_after_a_hold(nursery, redis_server, STALE_S + 5)
    assert any(isinstance(item, cluster.Backlog) for item in sink.items)
    assert receiver.statistics().catch_ups >= 1
    await receiver.leave()


def publish_lines(bus: RedisBus, count: int, first: int = 0, ts: float | None = None) -> None:
    """alice arrives and says ``count`` lines, all queued at once (one PUBLISH call
    up to MAX_BATCH_OPS), said at ``ts`` (default: now)."""
    bus.publish([cluster.Arrive(1, "alice", "alice", (LOBBY,))])
    said = time.time() if ts is None else ts
    bus.publish(
        [
            cluster.Line(1, "alice", "alice", LOBBY, "say", f"line {n}", said, 0)
            for n in range(first, first + count)
        ]
    )


def test_cluster_backlog_of_another_room_is_announced_to_plain_members() -> None:
    """A plain member whose current room is another one reads the catch-up under a
    "last N messages in ROOM" line, not as lines that seem to be about its room."""
    state = node()
    reader, link = member(state, Mode.PLAIN)
    state.handle(reader, Join("#dev"))
    link.lines()
    state.take_effects()
    state.apply(cluster.Backlog(LOBBY, lines(1, 300)))
    link.serve(stored(state))
    out = link.lines()
    assert out[0] == f"*** last 300 messages in {LOBBY}:"
    assert len(out) == 301
