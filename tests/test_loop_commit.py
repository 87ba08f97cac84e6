"""Small commits made in the event loop (triochat.store.loop_commit): when, in what
order, and that the loop never checkpoints the WAL."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import trio

from triochat.store import Batch, SQLiteStore, StoredMessage, StoreWriter, writer_index
from triochat.store.loop_commit import CHECKPOINT_EVERY, LOOP_COMMIT_MAX_MESSAGES
from triochat.store.sqlite import WAL_AUTOCHECKPOINT
from triochat.store.writer_index import INDEX_BATCH

from .test_store_writer import Committed, one, until

PAGE = 4096  # SQLite's default page size: a WAL frame is a page and a 24-byte header


def lines(first: int, count: int, room: str = "#a") -> Batch:
    return Batch(
        [
            StoredMessage(room, i, 1.0, "say", "bob", f"line {i}")
            for i in range(first, first + count)
        ]
    )


async def idle(writer: StoreWriter) -> None:
    """Wait until the writer thread has done all that is queued, sleeping (a loop that
    spins keeps the GIL and slows the thread down to the interpreter's switch interval)."""
    await writer.call(lambda: None)
    await trio.sleep(0.001)  # the thread counts the call as done just after reporting it


async def indexed(store: SQLiteStore) -> None:
    """Wait, sleeping, until the writer thread has indexed every committed line."""
    for _ in range(2000):  # 10 s at most
        if not store.unindexed():
            return
        await trio.sleep(0.005)  # a thread's progress: no event to wait for
    raise AssertionError(f"{store.unindexed()} lines still wait to be indexed")


def wal_bytes(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


async def test_loop_commit_lands_at_submit_with_process_durability(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """A small batch submitted to an idle writer is committed before submit returns:
    the gate can release its output at once, with no thread hop."""
    store = SQLiteStore.open(tmp_path / "chat.db")
    committed = Committed()
    writer = StoreWriter(store, committed)
    await nursery.start(writer.run)
    seq = writer.submit(lines(1, LOOP_COMMIT_MAX_MESSAGES))
    assert writer.committed_seq == seq == 1
    assert committed.seqs == [1]
    assert writer.statistics().loop_commits == 1
    assert [m.id for m in await writer.call(store.recent, "#a", 100)] == list(range(1, 17))
    await writer.aclose()


async def test_loop_commit_not_with_power_durability(nursery: trio.Nursery, tmp_path: Path) -> None:
    """With power durability every commit fsyncs: it goes to the writer thread."""
    store = SQLiteStore.open(tmp_path / "chat.db", synchronous="FULL")
    committed = Committed()
    writer = StoreWriter(store, committed)
    await nursery.start(writer.run)
    seq = writer.submit(one(1))
    assert writer.committed_seq < seq
    await committed.wait_for(seq)
    assert writer.statistics().loop_commits == 0
    await writer.aclose()


async def test_loop_commit_not_for_a_large_batch_or_a_dropped_room(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """A batch over the limit, or one that drops a room (unbounded deletes), goes to
    the thread."""
    store = SQLiteStore.open(tmp_path / "chat.db")
    committed = Committed()
    writer = StoreWriter(store, committed)
    await nursery.start(writer.run)
    seq = writer.submit(lines(1, LOOP_COMMIT_MAX_MESSAGES + 1))
    assert writer.committed_seq < seq
    await committed.wait_for(seq)
    dropping = Batch()
    dropping.drop_room("#b")
    seq = writer.submit(dropping)
    assert writer.committed_seq < seq
    await committed.wait_for(seq)
    assert writer.statistics().loop_commits == 0
    await writer.aclose()


async def test_loop_commit_waits_behind_what_the_thread_has_queued(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """While the thread works on a call queued earlier, a small batch is queued behind
    it (not committed in the loop first), so the call sees only what came before it."""
    store = SQLiteStore.open(tmp_path / "chat.db")
    committed = Committed()
    writer = StoreWriter(store, committed)
    await nursery.start(writer.run)
    entered, release = threading.Event(), threading.Event()

    def held_read() -> list[int]:
        entered.set()
        release.wait()
        return [m.id for m in store.recent("#a", 10)]

    result: list[list[int]] = []

    async def read() -> None:
        result.append(await writer.call(held_read))

    nursery.start_soon(read)
    await until(entered.is_set)
    seq = writer.submit(one(1))
    assert writer.committed_seq < seq  # queued: the thread is busy
    release.set()
    await committed.wait_for(seq)
    await until(lambda: bool(result))
    assert result == [[]]
    assert writer.statistics().loop_commits == 0
    assert writer.submit(one(2)) == writer.committed_seq  # idle again: in the loop
    await writer.aclose()


def test_sqlite_commit_in_loop_never_checkpoints(tmp_path: Path) -> None:
    """commit_in_loop leaves the WAL growing past SQLite's automatic checkpoint (which
    would fsync in the event loop); the next commit in the thread checkpoints again."""
    path = tmp_path / "chat.db"
    store = SQLiteStore.open(path, search_index=False)
    limit = WAL_AUTOCHECKPOINT * (PAGE + 24) * 2
    try:
        for i in range(1, 2001):
            store.commit_in_loop(lines(i, 1))
        grown = wal_bytes(path)
        assert grown > limit
        store.checkpoint()  # what the writer thread is asked to do
        for i in range(2001, 4001):
            store.commit(lines(i, 1))
        assert wal_bytes(path) == grown  # reused from its start, not grown
    finally:
        store.close()


async def test_loop_commits_are_checkpointed_by_the_thread(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """Every CHECKPOINT_EVERY commits in the loop, the thread checkpoints the WAL: it
    stays about as small as SQLite's own limit keeps it."""
    path = tmp_path / "chat.db"
    store = SQLiteStore.open(path, search_index=False)
    writer = StoreWriter(store, Committed())
    await nursery.start(writer.run)
    for i in range(1, 8 * CHECKPOINT_EVERY + 1):
        if writer.submit(lines(i, 1)) > writer.committed_seq:  # the thread was busy
            await idle(writer)
    assert writer.statistics().loop_commits > 6 * CHECKPOINT_EVERY
    await writer.call(lambda: None)  # everything queued (the checkpoints too) is done
    assert wal_bytes(path) < WAL_AUTOCHECKPOINT * (PAGE + 24) * 2
    await writer.aclose()


async def test_loop_commits_are_indexed_without_a_search(
    nursery: trio.Nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lines committed in the loop wake the sleeping thread: it indexes a lone line
    within the index's delay, and a batch of them as soon as one is due."""
    store = SQLiteStore.open(tmp_path / "chat.db")
    writer = StoreWriter(store, Committed())
    await nursery.start(writer.run)
    assert writer.submit(one(1)) == writer.committed_seq
    await indexed(store)
    monkeypatch.setattr(writer_index, "INDEX_DELAY_S", 3600.0)  # only a full batch now
    for i in range(2, INDEX_BATCH + 2):
        if writer.submit(one(i)) > writer.committed_seq:  # the thread was busy
            await idle(writer)
    assert writer.statistics().loop_commits > INDEX_BATCH // 2
    await indexed(store)
    await writer.aclose()


async def test_loop_commit_not_before_work_queued_earlier(tmp_path: Path) -> None:
    """A batch queued for the thread (too large for the loop) and not taken yet: the
    next small batch is queued behind it, not committed in the loop ahead of it (which
    would report both committed)."""
    store = SQLiteStore.open(tmp_path / "chat.db")
    committed = Committed()
    writer = StoreWriter(store, committed)
    writer.submit(lines(1, LOOP_COMMIT_MAX_MESSAGES + 1))  # the thread has not started
    seq = writer.submit(lines(LOOP_COMMIT_MAX_MESSAGES + 2, 1))
    assert writer.committed_seq == 0
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await committed.wait_for(seq)
        assert writer.statistics().loop_commits == 0
        await writer.aclose()
