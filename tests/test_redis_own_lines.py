"""A node reads its own lines back from the log without decoding them (OwnLines).

Each line's entry carries a tag (the batch's, this process's, and the line's place);
the reader hands the hub the very ``Line`` the node published, with the log's id. The
read may come before or after the PUBLISH script's reply, a batch may be sent twice,
a node may restart under the same name, and Redis may lose its data: in each case the
line delivered must be the one the log holds, once. Identity (``is``) tells a line
reused from one decoded.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Final

import orjson
import pytest
import trio

from tests.redisproc import RedisServer
from triochat.bus import log as buslog
from triochat.bus import redis_bus
from triochat.bus.log import OwnLines, room_lines
from triochat.bus.redis_bus import RedisBus
from triochat.bus.redis_link import Entry
from triochat.core import cluster

ROOM: Final = "#lobby"
WAIT: Final = 10.0  # real seconds for anything to cross Redis


def line(text: str, conn: int = 1, name: str = "alice") -> cluster.Line:
    return cluster.Line(conn, name, name, ROOM, "say", text, time.time(), 0)


class Sink:
    """A node's ``deliver``: keeps what the log reported; answers a resync at once."""

    def __init__(self) -> None:
        self.items: list[cluster.ClusterIn] = []
        self.changed = trio.Event()
        self.bus: RedisBus | None = None

    async def deliver(self, items: list[cluster.ClusterIn]) -> None:
        self.items.extend(items)
        for item in items:
            if isinstance(item, cluster.ClusterUp) and item.resync and self.bus is not None:
                self.bus.resync([])
        self.changed.set()
        self.changed = trio.Event()

    def lines(self) -> list[cluster.Sequenced]:
        return [item for item in self.items if isinstance(item, cluster.Sequenced)]

    async def wait_for(self, count: int) -> list[cluster.Sequenced]:
        with trio.fail_after(WAIT):
            while len(self.lines()) < count:
                await self.changed.wait()
        return self.lines()


async def start(
    nursery: trio.Nursery,
    url: str,
    node: str,
    rooms: dict[str, int] | None = None,
    bus: RedisBus | None = None,
) -> tuple[RedisBus, Sink]:
    bus, sink = bus or RedisBus(url, node=node), Sink()
    sink.bus = bus
    with trio.fail_after(WAIT):
        await nursery.start(bus.run, sink.deliver, {ROOM: 0} if rooms is None else rooms)
    return bus, sink


def claim(bus: RedisBus, conn: int = 1, name: str = "alice") -> None:
    bus.publish([cluster.Arrive(conn, name, name, (ROOM,))])


async def published(bus: RedisBus, batches: int) -> None:
    with trio.fail_after(WAIT):
        while bus.statistics().batches < batches:  # noqa: ASYNC110 - a counter: no Event
            await trio.sleep(0.01)


# -- OwnLines on its own ------------------------------------------------------------------


def entry(line_id: int, op: cluster.Op, tag: bytes | None) -> Entry:
    fields = [b"e", orjson.dumps({**cluster.to_wire(op), "node": "a"})]
    if tag is not None:
        fields += [b"u", tag]
    return [b"%d-0" % line_id, fields]


def test_own_lines_tagged_entry_is_the_line_kept_once() -> None:
    """An entry tagged with a kept line's tag is that line (not decoded), once; the
    same tag again, or an untagged entry, is decoded from its JSON."""
    own = OwnLines()
    sent: list[cluster.Op] = [
        cluster.Arrive(1, "alice", "alice", (ROOM,)),
        line("one"),
        line("two"),
    ]
    assert own.keep(7, sent) == 2  # lines only
    assert len(own) == 2
    tag = own.prefix(7) + b"2"
    first, again, plain = room_lines(
        [entry(5, sent[1], tag), entry(6, sent[1], tag), entry(9, sent[2], None)], "a", own
    )
    assert first.line is sent[1]
    assert (first.node, first.id) == ("a", 5)
    assert again.line is not sent[1]
    assert again.line.text == "one"
    assert again.id == 6
    assert plain.line.text == "two"
    assert plain.line is not sent[2]
    assert len(own) == 1  # "two" was never read under its tag


def test_own_lines_refused_and_cleared_lines_are_forgotten() -> None:
    """A refused line (no entry will come) is dropped; clear() forgets every line."""
    own = OwnLines()
    own.keep(1, [line("one"), line("two"), line("three")])
    own.drop(1, [2])
    assert own.take(own.prefix(1) + b"2") is None
    assert len(own) == 2
    own.clear()
    assert len(own) == 0


def test_own_lines_keeps_at_most_the_newest(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines never read back (their entries trimmed) do not pile up: past the bound
    the oldest are forgotten."""
    monkeypatch.setattr(buslog, "MAX_OWN_LINES", 3)
    own = OwnLines()
    own.keep(1, [line("one"), line("two")])
    own.keep(2, [line("three"), line("four")])
    assert len(own) == 3
    assert own.take(own.prefix(1) + b"1") is None
    kept = own.take(own.prefix(2) + b"2")
    assert kept is not None
    assert kept.text == "four"


def test_own_lines_tags_differ_between_processes() -> None:
    """Two OwnLines (two processes of one node name) tag the same batch differently."""
    assert OwnLines().prefix(1) != OwnLines().prefix(1)


# -- against Redis ------------------------------------------------------------------------


async def test_own_line_read_back_before_the_scripts_reply(
    nursery: trio.Nursery, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader sees the line's entry before the PUBLISH reply is back: the line was
    kept before the call, so the one published is reused."""
    bus, sink = await start(nursery, redis_server.url, "a")
    claim(bus)
    await published(bus, 1)
    link = bus._link
    real = link.script

    async def reply_after_the_read(name: str, args: Sequence[Any]) -> Any:
        reply = await real(name, args)
        if name == "publish":
            await sink.wait_for(1)  # the entry was read and delivered first
        return reply

    monkeypatch.setattr(link, "script", reply_after_the_read)
    sent = line("hello")
    bus.publish([sent])
    (got,) = await sink.wait_for(1)
    assert got.line is sent
    assert (got.node, got.id) == ("a", 1)
    await published(bus, 2)
    assert len(bus._own) == 0


async def test_own_line_read_back_after_the_scripts_reply(
    nursery: trio.Nursery, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PUBLISH reply is back before the reader hands the entry over: still reused."""
    bus = RedisBus(redis_server.url, node="a")
    link = bus._link
    real = link.xread

    async def read_after_the_reply(*args: Any) -> Any:
        reply = await real(*args)
        if any(key != buslog.LOG_KEY and entries for key, entries in reply.items()):
            await published(bus, 2)
        return reply

    monkeypatch.setattr(link, "xread", read_after_the_reply)  # (before the reader starts)
    bus, sink = await start(nursery, redis_server.url, "a", bus=bus)
    claim(bus)
    await published(bus, 1)
    sent = line("hello")
    bus.publish([sent])
    (got,) = await sink.wait_for(1)
    assert got.line is sent
    assert got.id == 1


@pytest.mark.parametrize("ran", [True, False], ids=["reply-lost", "call-failed"])
async def test_own_line_of_a_batch_sent_again_is_reused_once(
    nursery: trio.Nursery, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, ran: bool
) -> None:
    """A PUBLISH call fails (after Redis ran it, or before); the batch goes again under
    its number after the link is back: the line is delivered once, the one sent."""
    bus, sink = await start(nursery, redis_server.url, "a")
    claim(bus)
    await published(bus, 1)
    link = bus._link
    real = link.script
    failed = False

    async def fail_once(name: str, args: Sequence[Any]) -> Any:
        nonlocal failed
        if name == "publish" and not failed:
            failed = True
            if ran:
                await real(name, args)
            raise OSError("connection reset")
        return await real(name, args)

    monkeypatch.setattr(link, "script", fail_once)
    sent = line("hello")
    bus.publish([sent])
    await published(bus, 2)
    bus.publish([line("after")])
    got = await sink.wait_for(2)
    assert [(item.id, item.line.text) for item in got] == [(1, "hello"), (2, "after")]
    assert got[0].line is sent
    assert bus.statistics().outages == 1
    assert len(bus._own) == 0


async def test_own_lines_of_another_process_of_the_same_node_are_decoded(
    nursery: trio.Nursery, redis_server: RedisServer
) -> None:
    """A node restarted under the same name numbers its batches from 1 again: an entry
    the old process wrote (batch 1, place 1) must not be taken for the new one's."""
    old, old_sink = await start(nursery, redis_server.url, "a")
    arrive = cluster.Arrive(1, "alice", "alice", (ROOM,))
    old.publish([arrive, line("from the old process")])  # batch 1, the line at place 2
    await old_sink.wait_for(1)
    assert old.statistics().batches == 1
    await old.leave()
    # The new process does not read the room yet (rooms: none; no room was made).
    new, new_sink = await start(nursery, redis_server.url, "a", rooms={})
    mine = line("from the new process")
    new.publish([arrive, mine])  # batch 1, the line at place 2 again
    await published(new, 1)
    assert len(new._own) == 1  # kept: its entry is not read yet
    new.publish([cluster.RoomMade(ROOM)])  # now it reads the room from its start
    got = await new_sink.wait_for(1)
    assert (got[0].id, got[0].line.text) == (1, "from the old process")
    assert got[0].line is not mine


async def test_own_lines_are_forgotten_when_redis_loses_its_data(
    nursery: trio.Nursery, redis_server: RedisServer
) -> None:
    """Lines sent but not read back when Redis restarts without its data are forgotten
    (their batches go again under new numbers), and the new ones are reused."""
    bus, sink = await start(nursery, redis_server.url, "a", rooms={})  # not reading ROOM
    claim(bus)
    await published(bus, 1)
    bus.publish([line("one"), line("two")])
    await published(bus, 2)
    assert len(bus._own) == 2  # never read back: the node does not read the room
    await redis_server.restart(keep_data=False)
    with trio.fail_after(WAIT):
        while not any(isinstance(i, cluster.ClusterUp) for i in sink.items):
            await sink.changed.wait()
    assert len(bus._own) == 0
    claim(bus)
    bus.publish([cluster.RoomMade(ROOM)])
    sent = line("three")
    bus.publish([sent])
    (got,) = await sink.wait_for(1)
    assert got.line is sent


async def test_own_line_refused_by_the_log_is_forgotten(
    nursery: trio.Nursery, redis_server: RedisServer
) -> None:
    """A line the script refuses (its name not held) gets no entry: it is not kept."""
    bus, sink = await start(nursery, redis_server.url, "a")
    bus.publish([line("nobody holds alice")])
    await published(bus, 1)
    assert [type(item) for item in sink.items] == [cluster.Refused]
    assert len(bus._own) == 0


async def test_lines_published_no_longer_count_against_the_queue_limit(
    nursery: trio.Nursery, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lines of a batch that went through leave the count of queued lines (the
    count OwnLines.keep returns): with room for 3, 3 and 3 more go through."""
    monkeypatch.setattr(redis_bus, "MAX_QUEUED_LINES", 3)
    bus, sink = await start(nursery, redis_server.url, "a")
    claim(bus)
    await published(bus, 1)
    assert bus.publish([line("one"), line("two"), line("three")]) == []
    await published(bus, 2)
    assert bus.publish([line("four"), line("five"), line("six")]) == []
    assert len(await sink.wait_for(6)) == 6
    await published(bus, 3)
    assert len(bus.publish([line(str(n)) for n in range(4)])) == 1  # past the limit
