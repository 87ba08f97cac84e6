"""The bound on unsaved batches: past MAX_IN_FLIGHT the hub waits for the disk.

A slow disk must not let held output (and the batches behind it) grow without end:
the commit gate makes the hub wait once :data:`MAX_IN_FLIGHT` batches are uncommitted,
so its inbound channel fills and TCP pushes back on the senders.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Final, cast

import trio
import trio.testing

from tests.helpers import join
from triochat.core.records import Batch, StoredMessage
from triochat.server import ChatServer
from triochat.server.commit import MAX_IN_FLIGHT, CommitGate
from triochat.server.connection import Connection
from triochat.server.outbox import Outbox
from triochat.store import SQLiteStore
from triochat.testing import open_test_server

LINES: Final = 3000  # sent at once: many hub batches (HUB_BATCH_LINES each) behind a slow disk
DISK_WAIT_S: Final = 30.0  # how long the slow disk holds a commit at most (a failing test)


class FakeWriter:
    """A writer whose commits the test reports by hand (a disk that takes its time)."""

    def __init__(self) -> None:
        self.submitted_seq = 0
        self.committed_seq = 0

    def submit(self, batch: Batch) -> int:
        self.submitted_seq += 1
        return self.submitted_seq


class InlineWriter(FakeWriter):
    """A writer that commits at submit while ``inline`` (the memory store's way)."""

    inline = True

    def submit(self, batch: Batch) -> int:
        seq = super().submit(batch)
        if self.inline:
            self.committed_seq = seq
        return seq


class RecordingLink:
    """What the gate uses of a connection: its outbox, and a flush that records."""

    def __init__(self) -> None:
        self.outbox = Outbox(100, 1 << 20)
        self.written: list[bytes] = []

    def flush(self, mark: int | None = None) -> None:
        self.outbox.release(self.outbox.mark() if mark is None else mark)
        while (data := self.outbox.take(1 << 20)) is not None:
            self.written.append(data)


def one_line(n: int) -> Batch:
    return Batch(messages=[StoredMessage("#lobby", n, 0.0, "say", "alice", f"line {n}")])


async def test_commit_gate_waits_past_max_in_flight(nursery: trio.Nursery) -> None:
    """end_batch returns for MAX_IN_FLIGHT uncommitted batches, waits at the next, and
    goes on as soon as a commit comes back."""
    gate = CommitGate(lambda code, text: None, lambda: None)
    writer = FakeWriter()
    gate.writer = writer
    ended = 0

    async def hub() -> None:
        nonlocal ended
        for n in range(1, 3 * MAX_IN_FLIGHT):
            await gate.end_batch(one_line(n), [])
            ended += 1

    nursery.start_soon(hub)
    await trio.testing.wait_all_tasks_blocked()
    assert ended == MAX_IN_FLIGHT  # the next batch was submitted, and the hub waits
    assert writer.submitted_seq - writer.committed_seq == MAX_IN_FLIGHT + 1
    assert gate.statistics().waits == 1
    writer.committed_seq = 2
    gate.committed(2)
    await trio.testing.wait_all_tasks_blocked()
    assert ended == MAX_IN_FLIGHT + 2
    assert writer.submitted_seq - writer.committed_seq == MAX_IN_FLIGHT + 1
    writer.committed_seq = writer.submitted_seq + 3 * MAX_IN_FLIGHT
    gate.committed(writer.committed_seq)
    await trio.testing.wait_all_tasks_blocked()
    assert ended == 3 * MAX_IN_FLIGHT - 1


class SlowDisk(SQLiteStore):
    """An SQLite store whose commits wait until the test lets them through."""

    open_gate = threading.Event()

    def commit(self, batch: Batch) -> None:
        self.open_gate.wait(DISK_WAIT_S)
        super().commit(batch)


async def test_hub_holds_at_most_max_in_flight_batches_while_the_disk_is_slow(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """A flood behind a stalled disk: the hub stops at MAX_IN_FLIGHT (+ the one it just
    submitted) unsaved batches instead of numbering and holding the whole flood; once
    the disk is back, every line arrives, in order."""
    store = SlowDisk.open(tmp_path / "chat.db")
    SlowDisk.open_gate = threading.Event()
    # The reader's queue holds every held batch (5 x 256 lines pass the default 1024).
    server: ChatServer = await open_test_server(
        nursery, store=store, rate_limit=0, send_queue=LINES, send_queue_bytes=1 << 22
    )
    reader = await join(nursery, server, "reader")
    talker = await join(nursery, server, "talker")
    await reader.line()  # "talker joined"
    SlowDisk.open_gate.clear()
    flood = b"".join(f"flood {n}\n".encode() for n in range(LINES))
    nursery.start_soon(talker.stream.send_all, flood)
    await trio.testing.wait_all_tasks_blocked(cushion=0.05)
    writer = server.hub.writer
    gate = server.hub.gate.statistics()
    assert writer.submitted_seq - writer.committed_seq <= MAX_IN_FLIGHT + 1
    assert gate.held_batches <= MAX_IN_FLIGHT + 1
    assert gate.waits >= 1
    assert server.hub.state.chat_events < LINES  # the rest waits unread (TCP pushes back)
    SlowDisk.open_gate.set()
    for n in range(LINES):
        got = await reader.line(timeout=DISK_WAIT_S)
        assert got.endswith(f"<talker> flood {n}"), got
    await server.shutdown()


async def test_commit_gate_releases_at_once_only_what_is_in() -> None:
    """Committed at submit: a batch's output goes out in end_batch. Behind a batch still
    in flight, output waits for that commit, even a batch's with nothing to store."""
    gate = CommitGate(lambda code, text: None, lambda: None)
    writer = InlineWriter()
    gate.writer = writer
    link = RecordingLink()
    flush_list = cast(list[Connection], [link])  # the gate uses outbox and flush only
    link.outbox.put(b"one\n")
    await gate.end_batch(one_line(1), flush_list)
    assert link.written == [b"one\n"]
    assert flush_list == []
    writer.inline = False  # the disk takes its time from here
    link.outbox.put(b"two\n")
    flush_list.append(cast(Connection, link))
    await gate.end_batch(one_line(2), flush_list)
    link.outbox.put(b"three\n")
    flush_list.append(cast(Connection, link))
    await gate.end_batch(Batch(), flush_list)  # nothing to store: waits behind batch 2
    assert link.written == [b"one\n"]
    assert gate.statistics().held_batches == 1
    writer.committed_seq = 2
    gate.committed(2)
    assert b"".join(link.written) == b"one\ntwo\nthree\n"
