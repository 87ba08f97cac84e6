"""The room-to-writer outbox: bounded, never blocks the room, wakes its one writer."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from triochat.outbox import Outbox


async def test_outbox_batches_everything_queued() -> None:
    """Items queued while the writer was busy come out as one joined batch, in order."""
    outbox = Outbox(10)
    for item in (b"a\n", b"b\n", b"c\n"):
        outbox.put_nowait(item)
    assert await outbox.get_batch(1024) == b"a\nb\nc\n"
    assert len(outbox) == 0


async def test_outbox_batch_respects_max_bytes() -> None:
    """A batch stops once it reaches max_bytes; the rest waits for the next one."""
    outbox = Outbox(10)
    for _ in range(4):
        outbox.put_nowait(b"x" * 10)
    assert await outbox.get_batch(20) == b"x" * 20
    assert await outbox.get_batch(20) == b"x" * 20


def test_outbox_full_raises_wouldblock() -> None:
    """The bound holds: the room learns at once that a member is too slow."""
    outbox = Outbox(2)
    outbox.put_nowait(b"1")
    outbox.put_nowait(b"2")
    with pytest.raises(trio.WouldBlock):
        outbox.put_nowait(b"3")
    assert len(outbox) == 2


def test_outbox_put_after_close_raises_closed() -> None:
    """Once closed (member gone), further puts are refused, not silently queued."""
    outbox = Outbox(2)
    outbox.close()
    with pytest.raises(trio.ClosedResourceError):
        outbox.put_nowait(b"late")


async def test_outbox_wakes_a_parked_writer(nursery: trio.Nursery) -> None:
    """A writer waiting on an empty outbox is woken by the first put."""
    outbox = Outbox(4)
    got: list[bytes | None] = []

    async def writer() -> None:
        got.append(await outbox.get_batch(1024))

    nursery.start_soon(writer)
    await trio.testing.wait_all_tasks_blocked()
    assert got == []
    outbox.put_nowait(b"hello\n")
    await trio.testing.wait_all_tasks_blocked()
    assert got == [b"hello\n"]


async def test_outbox_close_drains_then_returns_none(nursery: trio.Nursery) -> None:
    """close() lets the writer flush what is queued, then tells it to stop."""
    outbox = Outbox(4)
    outbox.put_nowait(b"last words\n")
    outbox.close()
    assert await outbox.get_batch(1024) == b"last words\n"
    assert await outbox.get_batch(1024) is None
    parked = Outbox(4)
    results: list[bytes | None] = [b"sentinel"]

    async def writer() -> None:
        results[0] = await parked.get_batch(1024)

    nursery.start_soon(writer)
    await trio.testing.wait_all_tasks_blocked()
    parked.close()
    await trio.testing.wait_all_tasks_blocked()
    assert results == [None]


async def test_outbox_waiting_writer_can_be_cancelled() -> None:
    """A cancelled get_batch unparks cleanly; a later put does not wake a dead task."""
    outbox = Outbox(4)
    with trio.move_on_after(0.01) as scope:
        await outbox.get_batch(1024)
    assert scope.cancelled_caught
    outbox.put_nowait(b"after\n")  # must not reschedule the cancelled task
    assert await outbox.get_batch(1024) == b"after\n"


async def test_outbox_second_waiter_is_refused(nursery: trio.Nursery) -> None:
    """Only one writer per outbox: a second concurrent get_batch is a bug, said loudly."""
    outbox = Outbox(4)
    nursery.start_soon(outbox.get_batch, 1024)
    await trio.testing.wait_all_tasks_blocked()
    with pytest.raises(trio.BusyResourceError):
        await outbox.get_batch(1024)
    outbox.close()


def test_outbox_needs_room_for_one_item() -> None:
    """A zero-sized outbox would drop every member at once; it is refused."""
    with pytest.raises(ValueError, match="at least one"):
        Outbox(0)
