"""Paced replays in a connection's output: in order, outside the send queue, before closing."""

from __future__ import annotations

import trio

from tests.helpers import FakeLink
from tests.test_outbox import FakeTransport, _connection
from triochat.core.codec import Mode
from triochat.core.model import Member, Query


def _query() -> Query:
    member = Member(1, "test", FakeLink(), "alice", Mode.PLAIN)
    return Query(member, "#lobby", 1000, after=0, upto=3)


async def test_a_replay_slot_keeps_its_place_in_the_output(nursery: trio.Nursery) -> None:
    """Put before, the slot, put after: written in that order, whenever the slot fills."""
    transport = FakeTransport()
    conn, _ = _connection(nursery, transport)
    conn.put(b"before\n")
    conn.replay(_query())
    conn.put(b"after\n")
    ((_, slot),) = conn.replay_list
    conn.flush()
    assert transport.direct_writes == [b"before\n"]  # "after" waits for the slot
    slot.fill([b"one\n", b"two\n"])
    conn.resume_output()
    await trio.testing.wait_all_tasks_blocked()
    written = b"".join(transport.direct_writes + transport.sent)
    assert written == b"before\none\ntwo\nafter\n"
    assert slot.drained.is_set()


async def test_replayed_lines_never_count_against_the_send_queue(
    nursery: trio.Nursery,
) -> None:
    """A slot far bigger than the outbox's limit is written whole; the member stays."""
    transport = FakeTransport(room=0)  # the kernel takes nothing at once: a writer drains
    conn, _ = _connection(nursery, transport, limit=2)
    conn.replay(_query())
    ((_, slot),) = conn.replay_list
    slot.fill([b"%d\n" % n for n in range(500)])
    assert conn.put(b"live\n")  # the live queue is still empty: it takes this
    conn.flush()
    await trio.testing.wait_all_tasks_blocked()
    assert b"".join(transport.sent) == b"".join(b"%d\n" % n for n in range(500)) + b"live\n"


async def test_closing_waits_for_a_replay_being_read(nursery: trio.Nursery) -> None:
    """A member that quits while its replay is read gets the replay, then the end."""
    transport = FakeTransport()
    conn, _ = _connection(nursery, transport)
    conn.replay(_query())
    ((_, slot),) = conn.replay_list
    conn.put(b"bye\n")
    conn.close()
    conn.flush()
    assert not conn.scope.cancel_called  # not ended: the slot is still to come
    slot.fill([b"old\n"])
    conn.resume_output()
    await trio.testing.wait_all_tasks_blocked()
    assert b"".join(transport.direct_writes + transport.sent) == b"old\nbye\n"
    assert conn.scope.cancel_called


async def test_a_cut_connection_abandons_its_replays(nursery: trio.Nursery) -> None:
    transport = FakeTransport()
    conn, _ = _connection(nursery, transport)
    conn.replay(_query())
    ((_, slot),) = conn.replay_list
    conn.cut()
    assert slot.finished
    assert slot.drained.is_set()  # the reader waiting on it moves on


async def test_a_replay_asked_of_an_ended_connection_is_never_read(
    nursery: trio.Nursery,
) -> None:
    """The state may queue a replay on a connection that has just ended: nothing waits."""
    transport = FakeTransport()
    conn, _ = _connection(nursery, transport)
    conn.cut()
    conn.replay(_query())
    assert conn.replay_list == []
