"""The outbox as a pure queue, and the connection's flush policy over a fake transport."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from triochat.server.connection import WRITE_BATCH_BYTES, Connection
from triochat.server.outbox import Outbox
from triochat.server.transport import ConnectionLost

ROOMY = 1 << 20  # a byte bound that never binds


# --- the queue --------------------------------------------------------------------------


def test_outbox_nothing_is_taken_before_release() -> None:
    """Output of a batch stays held until the store has committed it (release)."""
    outbox = Outbox(8, ROOMY)
    assert outbox.put(b"a\n")
    assert outbox.take(1024) is None
    outbox.release()
    assert outbox.put(b"b\n")  # put after the release: held again
    assert outbox.take(1024) == b"a\n"
    assert outbox.take(1024) is None
    outbox.release()
    assert outbox.take(1024) == b"b\n"


def test_outbox_full_by_items_returns_false() -> None:
    """The item bound holds: the state learns at once that a member is too slow."""
    outbox = Outbox(2, ROOMY)
    assert outbox.put(b"1")
    assert outbox.put(b"2")
    assert not outbox.put(b"3")
    assert len(outbox) == 2


def test_outbox_byte_bound_with_items_to_spare() -> None:
    """Few but large items fill an outbox: the bound is on bytes, not only on events."""
    outbox = Outbox(100, 10)
    assert outbox.put(b"12345")
    assert outbox.put(b"12345")
    assert not outbox.put(b"1")
    assert outbox.nbytes == 10


def test_outbox_empty_takes_one_item_larger_than_the_byte_bound() -> None:
    """One big reply to a member with nothing queued goes out; a second one does not fit."""
    outbox = Outbox(100, 10)
    assert outbox.put(b"x" * 50)
    assert not outbox.put(b"y")


def test_outbox_batch_being_sent_counts_until_the_next_take() -> None:
    """The writer's batch stays in memory during send_all, so it counts against the bound."""
    outbox = Outbox(100, 10)
    outbox.put(b"12345678")
    outbox.release()
    assert outbox.take(1024) == b"12345678"
    assert outbox.nbytes == 8
    assert not outbox.put(b"abc")  # 8 in flight + 3 > 10
    assert outbox.take(1024) is None  # asking again: the batch was sent
    assert outbox.nbytes == 0
    assert outbox.put(b"abc")


def test_outbox_take_respects_max_bytes_and_release_mark() -> None:
    """A batch stops at max_bytes, and never reaches past what was released."""
    outbox = Outbox(100, ROOMY)
    for item in (b"aaaa", b"bbbb", b"cccc"):
        outbox.put(item)
    outbox.release()
    outbox.put(b"dddd")
    assert outbox.take(6) == b"aaaabbbb"
    assert outbox.take(100) == b"cccc"
    assert outbox.take(100) is None
    assert len(outbox) == 1


def test_outbox_unsend_puts_the_rest_first() -> None:
    """What a direct write did not take goes back at the front, in order, still released."""
    outbox = Outbox(100, ROOMY)
    outbox.put(b"abcdef")
    outbox.release()
    data = outbox.take(1024)
    assert data == b"abcdef"
    outbox.unsend(data[4:])
    outbox.put(b"held")
    assert outbox.nbytes == 6
    assert outbox.take(1024) == b"ef"


def test_outbox_closed_drops_puts_without_calling_it_full() -> None:
    """Output for a member being disconnected is dropped, not a reason to drop it again."""
    outbox = Outbox(1, ROOMY)
    outbox.abandon()
    assert outbox.put(b"late")
    assert len(outbox) == 0


@pytest.mark.parametrize(("limit", "max_bytes"), [(0, 10), (10, 0)])
def test_outbox_needs_room_for_something(limit: int, max_bytes: int) -> None:
    """A zero-sized outbox would drop every member at once; it is refused."""
    with pytest.raises(ValueError, match="at least one"):
        Outbox(limit, max_bytes)


# --- the flush policy -----------------------------------------------------------------


class FakeTransport:
    """A transport whose kernel buffer takes ``room`` bytes without waiting."""

    def __init__(self, *, direct: bool = True, room: int = 1 << 20) -> None:
        self.direct = direct
        self.room = room
        self.direct_writes: list[bytes] = []
        self.sent: list[bytes] = []
        self.unblock = trio.Event()
        self.block_sends = False
        self.broken = False
        self.stream: trio.abc.Stream = trio.testing.memory_stream_pair()[0]

    def try_read(self) -> bytes | None:  # pragma: no cover - the reader is not under test
        return None

    async def wait_readable(self) -> None:  # pragma: no cover
        await trio.sleep_forever()

    def try_write(self, data: bytes) -> int:
        taken = data[: self.room]
        self.room -= len(taken)
        if taken:
            self.direct_writes.append(taken)
        return len(taken)

    async def send_all(self, data: bytes) -> None:
        if self.block_sends:
            await self.unblock.wait()
        if self.broken:
            raise ConnectionLost("reset")
        await trio.lowlevel.checkpoint()
        self.sent.append(data)


def _connection(
    nursery: trio.Nursery, transport: FakeTransport, *, limit: int = 64
) -> tuple[Connection, list[Connection]]:
    flush_list: list[Connection] = []
    conn = Connection(1, "test", transport, Outbox(limit, ROOMY), nursery, flush_list)
    return conn, flush_list


async def test_connection_puts_wait_for_the_flush(nursery: trio.Nursery) -> None:
    """Puts only queue and register for one flush; nothing is written before it."""
    transport = FakeTransport()
    conn, flush_list = _connection(nursery, transport)
    assert conn.put(b"one\n")
    assert conn.put(b"two\n")
    assert flush_list == [conn]  # once, however many puts
    assert transport.direct_writes == []
    conn.flush()
    assert transport.direct_writes == [b"one\ntwo\n"]  # one write for the batch
    await trio.testing.wait_all_tasks_blocked()
    assert transport.sent == []  # and no writer task


async def test_connection_partial_write_leaves_the_rest_to_one_writer(
    nursery: trio.Nursery,
) -> None:
    """What the kernel does not take is sent by a writer task, in order."""
    transport = FakeTransport(room=3)
    conn, _ = _connection(nursery, transport)
    conn.put(b"abcdef\n")
    conn.flush()
    assert conn.writing
    conn.put(b"next\n")
    conn.flush()
    await trio.testing.wait_all_tasks_blocked()
    assert b"".join(transport.direct_writes + transport.sent) == b"abcdef\nnext\n"
    assert not conn.writing


async def test_connection_without_direct_writes_uses_a_writer(nursery: trio.Nursery) -> None:
    """Memory streams, TLS and WebSocket always go through the writer task."""
    transport = FakeTransport(direct=False)
    conn, _ = _connection(nursery, transport)
    conn.put(b"hello\n")
    conn.flush()
    await trio.testing.wait_all_tasks_blocked()
    assert transport.sent == [b"hello\n"]
    assert transport.direct_writes == []


async def test_connection_close_waits_for_the_flush_and_the_output(
    nursery: trio.Nursery,
) -> None:
    """close() sends what is queued first, then ends the connection (not before)."""
    transport = FakeTransport(direct=False)
    conn, flush_list = _connection(nursery, transport)
    conn.put(b"bye\n")
    conn.close()
    assert flush_list == [conn]
    assert not conn.scope.cancel_called
    transport.block_sends = True
    conn.flush()
    await trio.testing.wait_all_tasks_blocked()
    assert not conn.scope.cancel_called  # still sending
    transport.unblock.set()
    await trio.testing.wait_all_tasks_blocked()
    assert transport.sent == [b"bye\n"]
    assert conn.scope.cancel_called


async def test_connection_close_when_idle_ends_at_the_flush(nursery: trio.Nursery) -> None:
    """Closing with nothing queued ends the connection at the next flush."""
    conn, _ = _connection(nursery, FakeTransport())
    conn.close()
    assert not conn.scope.cancel_called
    conn.flush()
    assert conn.scope.cancel_called


async def test_connection_cut_drops_output_and_ends_now(nursery: trio.Nursery) -> None:
    """A member cut off as too slow gets nothing more, and no writer is started."""
    transport = FakeTransport()
    conn, _ = _connection(nursery, transport)
    conn.put(b"never\n")
    conn.cut()
    assert conn.scope.cancel_called
    conn.flush()
    await trio.testing.wait_all_tasks_blocked()
    assert transport.direct_writes == transport.sent == []


async def test_connection_writer_failure_marks_it_lost(nursery: trio.Nursery) -> None:
    """A reset while the writer sends ends the connection and is reported as lost."""
    transport = FakeTransport(direct=False)
    transport.broken = True
    conn, _ = _connection(nursery, transport)
    conn.put(b"x\n")
    conn.flush()
    await trio.testing.wait_all_tasks_blocked()
    assert conn.failed
    assert conn.scope.cancel_called


async def test_connection_large_backlog_goes_in_bounded_batches(nursery: trio.Nursery) -> None:
    """A writer sends at most about WRITE_BATCH_BYTES per send_all."""
    transport = FakeTransport(direct=False)
    conn, _ = _connection(nursery, transport, limit=10_000)
    line = b"y" * 1000 + b"\n"
    for _ in range(600):
        conn.put(line)
    conn.flush()
    await trio.testing.wait_all_tasks_blocked()
    assert b"".join(transport.sent) == line * 600
    assert len(transport.sent) >= 2
    assert all(len(batch) <= WRITE_BATCH_BYTES + len(line) for batch in transport.sent)


def test_outbox_release_up_to_a_mark_keeps_later_output_held() -> None:
    """Pipelined commits: batch 1's output goes out; batch 2's waits for its own commit."""
    outbox = Outbox(100, ROOMY)
    outbox.put(b"batch1\n")
    mark1 = outbox.put_total
    outbox.put(b"batch2\n")
    outbox.release(mark1)
    assert outbox.take(1024) == b"batch1\n"
    assert outbox.take(1024) is None
    outbox.release(mark1)  # a mark is never moved back
    outbox.release(outbox.put_total)
    assert outbox.take(1024) == b"batch2\n"


async def test_connection_flush_to_a_mark_sends_only_that_batch(nursery: trio.Nursery) -> None:
    """A connection flushed to batch 1's mark writes batch 1 only, even if idle."""
    transport = FakeTransport()
    conn, flush_list = _connection(nursery, transport)
    conn.put(b"one\n")
    mark = conn.mark()
    assert flush_list == [conn]  # the hub clears its list after taking the marks
    flush_list.clear()
    conn.put(b"two\n")
    assert flush_list == [conn]  # a put after the mark registers again
    conn.flush(mark)
    assert transport.direct_writes == [b"one\n"]
    conn.flush(conn.mark())
    assert transport.direct_writes == [b"one\n", b"two\n"]


# --- the direct flush in one call (Outbox.write_released) ------------------------------


class BrokenTransport:
    """A transport whose direct write meets a reset."""

    def try_write(self, data: bytes) -> int:
        raise ConnectionResetError("reset")


def test_outbox_write_released_writes_up_to_the_mark_only() -> None:
    """Released output goes in one write; what a later batch put stays held and counted."""
    outbox = Outbox(100, ROOMY)
    transport = FakeTransport()
    outbox.put(b"one\n")
    outbox.put(b"two\n")
    mark = outbox.put_total
    outbox.put(b"later\n")
    assert not outbox.write_released(mark, transport, 1024)  # nothing released is left
    assert transport.direct_writes == [b"one\ntwo\n"]
    assert outbox.nbytes == len(b"later\n")
    assert not outbox.write_released(mark, transport, 1024)  # nothing more to write
    assert outbox.write_released(outbox.put_total, FakeTransport(room=0), 1024)
    assert outbox.nbytes == len(b"later\n")


def test_outbox_write_released_keeps_what_the_kernel_did_not_take() -> None:
    """A partial write: the rest goes back first, still counted against the byte bound."""
    outbox = Outbox(100, 12)
    outbox.put(b"abcdef")
    outbox.put(b"gh")
    assert outbox.write_released(outbox.put_total, FakeTransport(room=3), 1024)
    assert outbox.nbytes == 5  # b"defgh" is left
    assert outbox.put(b"1234567")  # 5 + 7 = 12: still within the bound
    assert not outbox.put(b"x")  # 13 > 12
    assert outbox.take(1024) == b"defgh"


def test_outbox_write_released_a_broken_write_took_nothing() -> None:
    """A transport error leaves everything queued for the writer, which reports it."""
    outbox = Outbox(100, ROOMY)
    outbox.put(b"hello\n")
    assert outbox.write_released(outbox.put_total, BrokenTransport(), 1024)
    assert outbox.nbytes == len(b"hello\n")
    assert outbox.take(1024) == b"hello\n"


def test_outbox_write_released_large_backlog_in_bounded_parts() -> None:
    """More than ``max_bytes`` released: one part is written, the rest is left for a writer."""
    outbox = Outbox(100, ROOMY)
    transport = FakeTransport()
    for item in (b"aaaa", b"bbbb", b"cccc"):
        outbox.put(item)
    assert outbox.write_released(outbox.put_total, transport, 6)
    assert transport.direct_writes == [b"aaaabbbb"]
    assert outbox.nbytes == 4
    assert not outbox.write_released(outbox.put_total, transport, 6)
    assert transport.direct_writes == [b"aaaabbbb", b"cccc"]
    assert outbox.nbytes == 0
