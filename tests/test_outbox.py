"""The room-to-connection outbox: bounded, never blocks the room, writer only on backlog."""

from __future__ import annotations

from typing import Final

import pytest
import trio

from triochat.outbox import Outbox

ROOMY: Final = 1 << 20  # bytes: more than any test here queues, so only the item bound applies


class FakeOwner:
    """Records what the outbox asks of its connection; its socket takes up to ``room``
    bytes per write, or raises ``error``."""

    def __init__(self, room: int = 1 << 20, error: OSError | None = None) -> None:
        self.writers_started = 0
        self.ended = 0
        self.room = room
        self.error = error
        self.writes: list[bytes] = []

    def start_writer(self) -> None:
        self.writers_started += 1

    def end(self) -> None:
        self.ended += 1

    def try_write(self, data: bytes) -> int:
        if self.error is not None:
            raise self.error
        taken = data[: self.room]
        self.writes.append(taken)
        return len(taken)


def test_outbox_puts_only_queue_until_flush() -> None:
    """Puts never write or wake anything; the first tells the room to flush later."""
    owner = sock = FakeOwner()
    outbox = Outbox(8, owner, max_bytes=ROOMY, direct=True)
    assert outbox.put_nowait(b"a\n") is True
    assert outbox.put_nowait(b"b\n") is False
    assert sock.writes == []
    assert owner.writers_started == 0
    assert len(outbox) == 2


def test_outbox_idle_connection_is_written_directly_in_one_batch() -> None:
    """An idle connection gets the whole batch in one write and no writer task."""
    owner = sock = FakeOwner()
    outbox = Outbox(8, owner, max_bytes=ROOMY, direct=True)
    outbox.put_nowait(b"a\n")
    outbox.put_nowait(b"b\n")
    outbox.flush()
    assert sock.writes == [b"a\nb\n"]
    assert owner.writers_started == 0
    assert len(outbox) == 0


def test_outbox_partial_write_leaves_the_rest_to_one_writer() -> None:
    """What the kernel does not take is queued, in order, and one writer is started."""
    owner = sock = FakeOwner(room=3)
    outbox = Outbox(8, owner, max_bytes=ROOMY, direct=True)
    outbox.put_nowait(b"hello\n")
    outbox.flush()
    assert owner.writers_started == 1
    outbox.put_nowait(b"more\n")
    outbox.flush()  # a writer is running: it will pick this up, no direct write around it
    assert owner.writers_started == 1
    assert sock.writes == [b"hel"]
    assert outbox.take(1024) == b"lo\nmore\n"
    assert outbox.take(1024) is None
    assert not outbox.writing


def test_outbox_write_error_goes_to_the_writer_with_the_data() -> None:
    """A failing direct write loses nothing: the writer gets the data (and the error)."""
    owner = FakeOwner(error=ConnectionResetError())
    outbox = Outbox(8, owner, max_bytes=ROOMY, direct=True)
    outbox.put_nowait(b"x\n")
    outbox.flush()
    assert owner.writers_started == 1
    assert outbox.take(1024) == b"x\n"


def test_outbox_without_try_write_always_uses_a_writer() -> None:
    """Streams that are not plain sockets (tests, TLS) always go through the writer."""
    owner = FakeOwner()
    outbox = Outbox(8, owner, max_bytes=ROOMY)  # direct=False: try_write is never used
    owner.error = OSError("must not be called")
    outbox.put_nowait(b"x\n")
    outbox.flush()
    assert owner.writers_started == 1
    assert outbox.take(1024) == b"x\n"
    assert outbox.take(1024) is None  # drained: the writer stops
    outbox.put_nowait(b"y\n")
    outbox.flush()
    assert owner.writers_started == 2


def test_outbox_take_respects_max_bytes() -> None:
    """A writer's batch stops once it reaches max_bytes; the rest comes next time."""
    outbox = Outbox(10, FakeOwner(), max_bytes=ROOMY)
    for _ in range(4):
        outbox.put_nowait(b"x" * 10)
    assert outbox.take(20) == b"x" * 20
    assert outbox.take(20) == b"x" * 20
    assert outbox.take(20) is None


def test_outbox_full_raises_wouldblock() -> None:
    """The bound holds: the room learns at once that a member is too slow."""
    outbox = Outbox(2, FakeOwner(), max_bytes=ROOMY)
    outbox.put_nowait(b"1")
    outbox.put_nowait(b"2")
    with pytest.raises(trio.WouldBlock):
        outbox.put_nowait(b"3")
    assert len(outbox) == 2


def test_outbox_close_when_idle_ends_the_connection() -> None:
    """Closing an empty, idle outbox ends the connection at once."""
    owner = FakeOwner()
    outbox = Outbox(2, owner, max_bytes=ROOMY)
    outbox.close()
    assert owner.ended == 1
    with pytest.raises(trio.ClosedResourceError):
        outbox.put_nowait(b"late")


def test_outbox_close_with_queued_data_flushes_first() -> None:
    """Closing with unsent data starts a writer to send it; the writer ends the link."""
    owner = FakeOwner()
    outbox = Outbox(4, owner, max_bytes=ROOMY, direct=True)
    outbox.put_nowait(b"*** server is shutting down\n")
    outbox.close()
    assert (owner.writers_started, owner.ended) == (1, 0)
    assert outbox.take(1024) == b"*** server is shutting down\n"
    assert outbox.take(1024) is None
    assert outbox.closed


def test_outbox_close_while_writing_leaves_it_to_the_writer() -> None:
    """A running writer sees the close after draining; nothing else is started."""
    owner = FakeOwner()
    outbox = Outbox(4, owner, max_bytes=ROOMY)
    outbox.put_nowait(b"a\n")
    outbox.flush()
    outbox.close()
    assert (owner.writers_started, owner.ended) == (1, 0)
    outbox.flush()  # the room never flushes a closed outbox into a direct write
    assert owner.writers_started == 1


def test_outbox_abandon_drops_what_is_queued() -> None:
    """A member cut off as too slow gets nothing more, and no writer is started."""
    owner = FakeOwner()
    outbox = Outbox(4, owner, max_bytes=ROOMY)
    outbox.put_nowait(b"a\n")
    outbox.abandon()
    outbox.flush()
    assert len(outbox) == 0
    assert (owner.writers_started, owner.ended) == (0, 0)
    assert outbox.take(1024) is None


def test_outbox_needs_room_for_one_item() -> None:
    """A zero-sized outbox would drop every member at once; it is refused."""
    with pytest.raises(ValueError, match="at least one"):
        Outbox(0, FakeOwner(), max_bytes=ROOMY)


def test_outbox_needs_room_for_one_byte() -> None:
    """A zero-byte bound would drop every member at its second line; it is refused."""
    with pytest.raises(ValueError, match="at least one byte"):
        Outbox(8, FakeOwner(), max_bytes=0)


def test_outbox_byte_bound_raises_wouldblock_with_items_to_spare() -> None:
    """Few but large items fill an outbox: the bound is on bytes, not only on events."""
    outbox = Outbox(100, FakeOwner(), max_bytes=10)
    outbox.put_nowait(b"abcd")
    outbox.put_nowait(b"efgh")
    with pytest.raises(trio.WouldBlock):
        outbox.put_nowait(b"ijk")  # 11 bytes would be held
    outbox.put_nowait(b"ij")  # exactly 10 fits
    assert (len(outbox), outbox.nbytes) == (3, 10)
    with pytest.raises(trio.WouldBlock):
        outbox.put_nowait(b"k")


def test_outbox_empty_takes_one_item_larger_than_the_byte_bound() -> None:
    """One big reply to a member with nothing queued goes out; a second one does not fit."""
    outbox = Outbox(8, FakeOwner(), max_bytes=10)
    outbox.put_nowait(b"x" * 100)
    assert outbox.nbytes == 100
    with pytest.raises(trio.WouldBlock):
        outbox.put_nowait(b"y")


def test_outbox_batch_being_sent_counts_until_the_writer_asks_again() -> None:
    """The writer's batch stays in memory during send_all, so it counts against the bound."""
    outbox = Outbox(8, FakeOwner(), max_bytes=10)
    outbox.put_nowait(b"12345678")
    outbox.flush()
    assert outbox.take(1024) == b"12345678"
    assert (len(outbox), outbox.nbytes) == (0, 8)  # nothing queued, 8 bytes being sent
    with pytest.raises(trio.WouldBlock):
        outbox.put_nowait(b"abc")
    outbox.put_nowait(b"ab")
    assert outbox.take(1024) == b"ab"  # the first batch was sent; this one is held now
    assert outbox.nbytes == 2
    assert outbox.take(1024) is None
    assert outbox.nbytes == 0
    outbox.put_nowait(b"x" * 10)


def test_outbox_partial_batch_counts_what_it_took() -> None:
    """A writer batch cut at max_bytes holds exactly the items it took."""
    outbox = Outbox(10, FakeOwner(), max_bytes=ROOMY)
    for _ in range(4):
        outbox.put_nowait(b"x" * 10)
    assert outbox.take(20) == b"x" * 20
    assert outbox.nbytes == 40  # 20 sending, 20 queued
    assert outbox.take(20) == b"x" * 20
    assert outbox.nbytes == 20
    assert outbox.take(20) is None
    assert outbox.nbytes == 0


def test_outbox_partial_direct_write_counts_only_the_unsent_rest() -> None:
    """Bytes the kernel took are gone; the rest of the batch is what counts (not all of it)."""
    owner = FakeOwner(room=3)
    outbox = Outbox(8, owner, max_bytes=10, direct=True)
    outbox.put_nowait(b"hello\n")
    outbox.put_nowait(b"abc\n")  # 10 bytes held: full
    outbox.flush()  # 3 written, 7 left for the writer
    assert owner.writes == [b"hel"]
    assert outbox.nbytes == 7
    outbox.put_nowait(b"xyz")  # 10 again
    with pytest.raises(trio.WouldBlock):
        outbox.put_nowait(b"!")
    assert outbox.take(1024) == b"lo\nabc\nxyz"


def test_outbox_abandon_forgets_the_bytes_held() -> None:
    """A cut-off member's outbox holds nothing, including the batch in flight."""
    outbox = Outbox(8, FakeOwner(), max_bytes=ROOMY)
    outbox.put_nowait(b"a\n")
    outbox.flush()
    outbox.take(1024)
    outbox.put_nowait(b"b\n")
    outbox.abandon()
    assert outbox.nbytes == 0
