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


async def test_outbox_flush_wakes_a_parked_writer_once_per_batch(nursery: trio.Nursery) -> None:
    """Puts only queue; the flush at the end of the room's batch wakes the writer once."""
    outbox = Outbox(4)
    got: list[bytes | None] = []

    async def writer() -> None:
        got.append(await outbox.get_batch(1024))

    nursery.start_soon(writer)
    await trio.testing.wait_all_tasks_blocked()
    assert outbox.put_nowait(b"hello\n") is True  # first put: caller must flush
    assert outbox.put_nowait(b"again\n") is False  # already due for a flush
    await trio.testing.wait_all_tasks_blocked()
    assert got == []  # not woken per put
    outbox.flush()
    await trio.testing.wait_all_tasks_blocked()
    assert got == [b"hello\nagain\n"]


async def test_outbox_idle_writer_is_bypassed_with_a_direct_write(nursery: trio.Nursery) -> None:
    """With try_write, a flush to a parked writer writes directly and leaves it parked."""
    written: list[bytes] = []

    def try_write(data: bytes) -> int:
        written.append(data)
        return len(data)

    outbox = Outbox(4, try_write)
    got: list[bytes | None] = []

    async def writer() -> None:
        got.append(await outbox.get_batch(1024))

    nursery.start_soon(writer)
    await trio.testing.wait_all_tasks_blocked()
    outbox.put_nowait(b"a\n")
    outbox.put_nowait(b"b\n")
    outbox.flush()
    await trio.testing.wait_all_tasks_blocked()
    assert written == [b"a\nb\n"]  # one write for the batch
    assert got == []  # the writer task was never woken
    outbox.close()


async def test_outbox_partial_direct_write_hands_the_rest_to_the_writer(
    nursery: trio.Nursery,
) -> None:
    """What the kernel does not take at once is queued, in order, for the writer."""
    outbox = Outbox(4, lambda data: 3)
    got: list[bytes | None] = []

    async def writer() -> None:
        got.append(await outbox.get_batch(1024))

    nursery.start_soon(writer)
    await trio.testing.wait_all_tasks_blocked()
    outbox.put_nowait(b"hello\n")
    outbox.flush()
    await trio.testing.wait_all_tasks_blocked()
    assert got == [b"lo\n"]


async def test_outbox_direct_write_error_goes_to_the_writer(nursery: trio.Nursery) -> None:
    """A failing direct write loses nothing: the writer gets the data (and the error)."""

    def broken(data: bytes) -> int:
        raise ConnectionResetError

    outbox = Outbox(4, broken)
    got: list[bytes | None] = []

    async def writer() -> None:
        got.append(await outbox.get_batch(1024))

    nursery.start_soon(writer)
    await trio.testing.wait_all_tasks_blocked()
    outbox.put_nowait(b"x\n")
    outbox.flush()
    await trio.testing.wait_all_tasks_blocked()
    assert got == [b"x\n"]


async def test_outbox_busy_writer_is_not_bypassed() -> None:
    """While the writer is sending (not parked), a flush never writes around it."""
    written: list[bytes] = []

    def try_write(data: bytes) -> int:
        written.append(data)
        return len(data)

    outbox = Outbox(4, try_write)
    outbox.put_nowait(b"1\n")
    outbox.flush()  # nobody parked: stays queued for the writer's next loop
    assert written == []
    assert await outbox.get_batch(1024) == b"1\n"


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
