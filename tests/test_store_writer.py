"""StoreWriter: grouped commits in one worker thread, retries, ordered reads, shutdown."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from triochat.store import Batch, MemoryStore, SQLiteStore, StoredMessage, StoreError, StoreWriter
from triochat.store.retention import SECONDS_PER_DAY
from triochat.store.writer import PRUNE_EVERY_S, PRUNE_STEP_ROWS, RETRY_FIRST_S, RETRY_MAX_S

THREAD_WAIT_S = 10.0  # real seconds a test thread waits for the writer before failing


async def until(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds without letting virtual time pass.

    Under ``autojump_clock`` a task waiting for a worker thread counts as blocked, so
    the clock would jump to the next deadline while the thread still works; checkpoints
    in a loop keep this task runnable, and so keep the clock where it is.
    """
    deadline = time.monotonic() + THREAD_WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "the writer did not get there in time"
        await trio.lowlevel.checkpoint()


def msg(id: int, room: str = "#a", ts: float = 1000.0) -> StoredMessage:
    return StoredMessage(room, id, ts, "say", "bob", f"line {id}")


def one(id: int, room: str = "#a") -> Batch:
    return Batch([msg(id, room)])


class RecordingStore(MemoryStore):
    """A MemoryStore that records each commit's message ids and can hold a commit open,
    fail a number of commits, and notices two calls at once."""

    def __init__(self, *, fail: int = 0, hold_first: bool = False) -> None:
        super().__init__()
        self.commits: list[list[int]] = []
        self.fail = fail  # how many commits raise StoreError before they work
        self.failed = 0
        self.entered = threading.Event()  # the held commit has started
        self.release = threading.Event()  # lets the held commit finish
        if not hold_first:
            self.release.set()
        self.prunes: list[int | None] = []  # max_rows of each prune call, as it starts
        self.prunes_done = 0
        self.closed = False
        self._busy = threading.Lock()

    def commit(self, batch: Batch) -> None:
        with self._exclusive():
            self.entered.set()
            assert self.release.wait(THREAD_WAIT_S)
            if self.failed < self.fail:
                self.failed += 1
                raise StoreError(f"disk full (failure {self.failed})")
            self.commits.append([m.id for m in batch.messages])
            super().commit(batch)

    def prune(
        self,
        now: float,
        retain_days: float | None,
        retain_messages: int | None,
        *,
        max_rows: int | None = None,
    ) -> int:
        with self._exclusive():
            self.prunes.append(max_rows)
            deleted = super().prune(now, retain_days, retain_messages, max_rows=max_rows)
            self.prunes_done += 1
            return deleted

    def close(self) -> None:
        self.closed = True
        super().close()

    def _exclusive(self) -> threading.Lock:
        assert not self._busy.locked(), "two store calls ran at once"
        return self._busy


class Committed:
    """The on_committed callback: records sequence numbers, and wakes a waiting test."""

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self._changed = trio.Event()

    def __call__(self, seq: int) -> None:
        self.seqs.append(seq)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, seq: int) -> None:
        while not self.seqs or self.seqs[-1] < seq:
            await self._changed.wait()


async def test_writer_commits_and_reports_sequence_numbers(nursery: trio.Nursery) -> None:
    """submit() numbers batches 1, 2, 3 and on_committed reports them once they are in."""
    store, committed = RecordingStore(), Committed()
    writer = StoreWriter(store, committed)
    await nursery.start(writer.run)
    assert [writer.submit(one(1)), writer.submit(one(2))] == [1, 2]
    await committed.wait_for(2)
    assert writer.committed_seq == writer.submitted_seq == 2
    assert [m.id for m in store.recent("#a", 10)] == [1, 2]
    await writer.aclose()


async def test_writer_groups_batches_submitted_during_a_commit(nursery: trio.Nursery) -> None:
    """While one commit is in the thread, later batches wait and go in as ONE transaction."""
    store, committed = RecordingStore(hold_first=True), Committed()
    writer = StoreWriter(store, committed)
    await nursery.start(writer.run)
    writer.submit(one(1))
    assert await trio.to_thread.run_sync(store.entered.wait, THREAD_WAIT_S)
    for id in range(2, 7):
        writer.submit(one(id))
    store.release.set()
    await committed.wait_for(6)
    assert store.commits == [[1], [2, 3, 4, 5, 6]]
    assert committed.seqs == [1, 6]
    await writer.aclose()


async def test_writer_submit_never_waits_for_the_disk(nursery: trio.Nursery) -> None:
    """submit() returns at once even while a commit is stuck in the thread."""
    store = RecordingStore(hold_first=True)
    writer = StoreWriter(store, Committed())
    await nursery.start(writer.run)
    writer.submit(one(1))
    assert await trio.to_thread.run_sync(store.entered.wait, THREAD_WAIT_S)
    with trio.testing.assert_no_checkpoints():
        for id in range(2, 100):
            writer.submit(one(id))
    store.release.set()
    await writer.aclose()
    assert store.commits == [[1], list(range(2, 100))]


async def test_writer_retries_a_failed_commit_with_backoff(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A commit that fails twice is retried after 0.5 s then 1 s, reported each time, and
    lands whole; batches submitted meanwhile follow in the next commit."""
    store, committed = RecordingStore(fail=2), Committed()
    errors: list[StoreError] = []
    writer = StoreWriter(store, committed, errors.append)
    await nursery.start(writer.run)
    start = trio.current_time()
    writer.submit(Batch([msg(1), msg(2)]))
    assert await trio.to_thread.run_sync(store.entered.wait, THREAD_WAIT_S)  # taken: a group
    writer.submit(one(3))
    await committed.wait_for(2)
    assert trio.current_time() - start == pytest.approx(RETRY_FIRST_S * 3)
    assert [str(e) for e in errors] == ["disk full (failure 1)", "disk full (failure 2)"]
    assert store.commits == [[1, 2], [3]]
    assert committed.seqs == [1, 2]
    await writer.aclose()


async def test_writer_backoff_doubles_up_to_its_cap(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A long outage is retried every RETRY_MAX_S, not faster and not never."""
    store, committed = RecordingStore(fail=9), Committed()
    gaps: list[float] = []
    last = trio.current_time()

    def on_error(exc: StoreError) -> None:
        nonlocal last
        gaps.append(trio.current_time() - last)
        last = trio.current_time()

    writer = StoreWriter(store, committed, on_error)
    await nursery.start(writer.run)
    writer.submit(one(1))
    await committed.wait_for(1)
    assert gaps[1:] == pytest.approx([0.5, 1, 2, 4, 8, 16, RETRY_MAX_S, RETRY_MAX_S])
    assert store.commits == [[1]]
    await writer.aclose()


async def test_writer_call_sees_exactly_the_batches_submitted_before_it(
    nursery: trio.Nursery,
) -> None:
    """A read queued between two submits sees the first batch and not the second, so the
    hub can replay history and then deliver live without a duplicate or a hole."""
    store, committed = RecordingStore(hold_first=True), Committed()
    writer = StoreWriter(store, committed)
    await nursery.start(writer.run)
    writer.submit(one(1))
    assert await trio.to_thread.run_sync(store.entered.wait, THREAD_WAIT_S)
    writer.submit(one(2))
    seen: list[list[int]] = []

    async def read() -> None:
        seen.append([m.id for m in await writer.call(store.recent, "#a", 10)])

    nursery.start_soon(read)
    await trio.testing.wait_all_tasks_blocked()
    writer.submit(one(3))
    store.release.set()
    await committed.wait_for(3)
    await writer.aclose()
    assert seen == [[1, 2]]
    assert store.commits == [[1], [2], [3]]


async def test_writer_call_raises_what_the_store_raised(nursery: trio.Nursery) -> None:
    """A failing read reaches its caller as the store's exception; the writer goes on."""
    store, committed = RecordingStore(), Committed()
    writer = StoreWriter(store, committed)
    await nursery.start(writer.run)
    with pytest.raises(ValueError, match="limit"):
        await writer.call(store.recent, "#a", -1)
    writer.submit(one(1))
    await committed.wait_for(1)
    await writer.aclose()


async def test_writer_cancelled_call_is_skipped(nursery: trio.Nursery) -> None:
    """A read whose caller gave up before its turn is never run."""
    store = RecordingStore(hold_first=True)
    calls: list[str] = []
    writer = StoreWriter(store, Committed())
    await nursery.start(writer.run)
    writer.submit(one(1))
    assert await trio.to_thread.run_sync(store.entered.wait, THREAD_WAIT_S)
    with trio.move_on_after(0.01):
        await writer.call(calls.append, "ran")
    store.release.set()
    await writer.aclose()
    assert calls == []


async def test_writer_aclose_flushes_the_queue_then_closes_the_store(
    nursery: trio.Nursery,
) -> None:
    """Shutdown commits everything already submitted, then closes the store."""
    store, committed = RecordingStore(hold_first=True), Committed()
    writer = StoreWriter(store, committed)
    await nursery.start(writer.run)
    writer.submit(one(1))
    assert await trio.to_thread.run_sync(store.entered.wait, THREAD_WAIT_S)
    writer.submit(one(2))
    writer.submit(one(3))
    store.release.set()
    await writer.aclose()
    assert store.commits == [[1], [2, 3]]
    assert committed.seqs == [1, 3]
    assert store.closed
    with pytest.raises(trio.ClosedResourceError):
        writer.submit(one(4))
    with pytest.raises(trio.ClosedResourceError):
        await writer.call(store.load_rooms)


async def test_writer_aclose_without_run_still_flushes() -> None:
    """Batches submitted to a writer whose run task never started are committed on close."""
    store, committed = RecordingStore(), Committed()
    writer = StoreWriter(store, committed)
    writer.submit(one(1))
    await writer.aclose()
    assert store.commits == [[1]]
    assert store.closed


async def test_writer_aclose_gives_up_at_the_callers_deadline(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """With the disk failing for good, shutdown stops at the deadline, says how much was not
    saved, fails waiting reads, ends run(), and still closes the store."""
    store = RecordingStore(fail=1_000_000)
    writer = StoreWriter(store, Committed())
    run_ended = trio.Event()

    async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await writer.run(task_status=task_status)
        run_ended.set()

    await nursery.start(run)
    writer.submit(one(1))
    await trio.testing.wait_all_tasks_blocked()
    writer.submit(Batch([msg(2), msg(3)]))
    outcome: list[BaseException] = []

    async def read() -> None:
        try:
            await writer.call(store.load_rooms)
        except trio.ClosedResourceError as exc:
            outcome.append(exc)

    nursery.start_soon(read)
    await trio.testing.wait_all_tasks_blocked()
    with trio.move_on_after(5) as deadline:
        await writer.aclose()
    assert deadline.cancelled_caught
    await run_ended.wait()
    assert store.closed
    assert len(outcome) == 1
    assert store.commits == []
    assert "2 batches (3 messages) not saved" in caplog.text


async def test_writer_prunes_on_start_and_every_period(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """With retention set, old messages go at start-up and again each PRUNE_EVERY_S."""
    store = RecordingStore()
    store.commit(Batch([msg(i) for i in range(1, 6)]))
    committed = Committed()
    writer = StoreWriter(store, committed, retain_messages=2)
    await nursery.start(writer.run)
    await until(lambda: store.prunes_done == 1)
    assert [m.id for m in store.recent("#a", 10)] == [4, 5]
    writer.submit(Batch([msg(6), msg(7)]))
    await until(lambda: committed.seqs == [1])
    assert [m.id for m in store.recent("#a", 10)] == [4, 5, 6, 7]
    await trio.sleep(PRUNE_EVERY_S)
    await until(lambda: store.prunes_done == 2)
    assert [m.id for m in store.recent("#a", 10)] == [6, 7]
    assert store.prunes == [PRUNE_STEP_ROWS, PRUNE_STEP_ROWS]
    await writer.aclose()


async def test_writer_prunes_a_backlog_in_steps_with_commits_between(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A large first prune runs one bounded step at a time; a batch submitted meanwhile is
    committed after at most one step, not after the whole backlog."""
    store = RecordingStore()
    backlog = 3 * PRUNE_STEP_ROWS + 10
    store.commit(Batch([msg(i, ts=0.0) for i in range(1, backlog + 1)]))
    steps_before_commit: list[int] = []

    def on_committed(seq: int) -> None:
        steps_before_commit.append(store.prunes_done)

    now = 10 * SECONDS_PER_DAY
    writer = StoreWriter(store, on_committed, retain_days=1, wall_clock=lambda: now)
    await nursery.start(writer.run)
    writer.submit(Batch([msg(backlog + 1, ts=now)]))
    await until(lambda: store.prunes_done == 4 and bool(steps_before_commit))
    assert steps_before_commit[0] <= 1
    assert [m.id for m in store.recent("#a", 10)] == [backlog + 1]
    await writer.aclose()


async def test_writer_store_error_in_prune_is_reported_not_fatal(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A failing retention pass is reported; commits go on and the next period tries again."""

    class BadPrune(RecordingStore):
        def prune(
            self,
            now: float,
            retain_days: float | None,
            retain_messages: int | None,
            *,
            max_rows: int | None = None,
        ) -> int:
            self.prunes.append(max_rows)
            raise StoreError("database is damaged")

    store, committed = BadPrune(), Committed()
    errors: list[StoreError] = []
    writer = StoreWriter(store, committed, errors.append, retain_days=30)
    await nursery.start(writer.run)
    writer.submit(one(1))
    await until(lambda: committed.seqs == [1] and len(errors) == 1)
    await trio.sleep(PRUNE_EVERY_S)
    await until(lambda: len(errors) == 2)
    assert [str(e) for e in errors] == ["database is damaged"] * 2
    assert store.commits == [[1]]
    await writer.aclose()


async def test_writer_with_sqlite_keeps_every_submitted_message(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """Many small batches from several rooms, through the real SQLite store: after close
    and reopen every message is there, and fewer transactions than batches were used."""
    path = tmp_path / "chat.db"
    committed = Committed()
    writer = StoreWriter(SQLiteStore.open(path), committed)
    await nursery.start(writer.run)
    for id in range(1, 301):
        for room in ("#a", "#b"):
            writer.submit(one(id, room))
        if id % 50 == 0:
            await trio.lowlevel.checkpoint()
    await committed.wait_for(600)
    assert len(committed.seqs) < 600
    last = await writer.call(writer.store.recent, "#b", 1)
    assert [m.id for m in last] == [300]
    await writer.aclose()
    store = SQLiteStore.open(path)
    try:
        assert [(r.name, r.last_id) for r in store.load_rooms()] == [("#a", 300), ("#b", 300)]
        assert [m.id for m in store.recent("#a", 1000)] == list(range(1, 301))
    finally:
        store.close()


class FillingUp(SQLiteStore):
    """An SQLite store whose file is "full" (capped pages) until two commits have failed."""

    failures = 0

    def commit(self, batch: Batch) -> None:
        try:
            super().commit(batch)
        except StoreError:
            self.failures += 1
            if self.failures == 2:  # someone freed space; we are in the writer's thread
                self._conn.execute("PRAGMA max_page_count = 1073741823")
            raise


async def test_writer_rides_out_a_full_disk_with_sqlite(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """Disk full at runtime: the SQLite commit fails, the owner hears of it each time, and
    the same batches land once there is room, each message exactly once."""
    store = FillingUp.open(tmp_path / "chat.db")
    store.commit(Batch([msg(1)]))
    (pages,) = store._conn.execute("PRAGMA page_count").fetchone()
    store._conn.execute(f"PRAGMA max_page_count = {pages}")
    errors: list[StoreError] = []
    committed = Committed()
    writer = StoreWriter(store, committed, errors.append)
    await nursery.start(writer.run)
    writer.submit(Batch([StoredMessage("#a", i, 1.0, "say", "bob", "z" * 3000) for i in (1, 2)]))
    writer.submit(Batch([StoredMessage("#a", i, 1.0, "say", "bob", "z" * 3000) for i in (3, 4)]))
    await committed.wait_for(2)
    assert len(errors) == 2
    assert all("full" in str(e) and "\n" not in str(e) for e in errors)
    messages = await writer.call(store.recent, "#a", 10)
    assert [m.id for m in messages] == [1, 2, 3, 4]
    assert messages[0].text == "line 1"  # the retry did not overwrite what had landed
    await writer.aclose()


def test_writer_refuses_negative_retention() -> None:
    """A negative retention limit fails at construction, not later inside the thread."""
    with pytest.raises(ValueError, match="retain_days"):
        StoreWriter(MemoryStore(), Committed(), retain_days=-1)


async def test_writer_run_twice_is_refused(nursery: trio.Nursery) -> None:
    """Two run tasks would break the one-thread, in-order rule: the second is an error."""
    writer = StoreWriter(MemoryStore(), Committed())
    await nursery.start(writer.run)
    with pytest.raises(RuntimeError, match="already running"):
        await writer.run()
    await writer.aclose()


async def test_writer_statistics_count_commits_batches_and_queue(nursery: trio.Nursery) -> None:
    """statistics(): batches queued behind a commit, then one grouped transaction, timed."""
    store, committed = RecordingStore(hold_first=True), Committed()
    writer = StoreWriter(store, committed)
    await nursery.start(writer.run)
    assert writer.statistics().submitted == 0
    writer.submit(one(1))
    assert await trio.to_thread.run_sync(store.entered.wait, THREAD_WAIT_S)
    for id in range(2, 5):
        writer.submit(one(id))
    waiting = writer.statistics()
    assert (waiting.submitted, waiting.committed, waiting.queued) == (4, 0, 3)
    store.release.set()
    await committed.wait_for(4)
    await writer.call(store.recent, "#a", 10)
    stats = writer.statistics()
    assert (stats.submitted, stats.committed, stats.commits, stats.messages) == (4, 4, 2, 4)
    assert (stats.failures, stats.queued, stats.calls) == (0, 0, 1)
    assert stats.commit_seconds > 0
    await writer.aclose()


async def test_writer_statistics_count_failed_commits(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A commit that failed twice and then landed: two failures, one commit."""
    store, committed = RecordingStore(fail=2), Committed()
    writer = StoreWriter(store, committed)
    await nursery.start(writer.run)
    writer.submit(one(1))
    await committed.wait_for(1)
    stats = writer.statistics()
    assert (stats.failures, stats.commits, stats.messages) == (2, 1, 1)
    await writer.aclose()


class ThreadRecordingStore(MemoryStore):
    """A MemoryStore that notes which thread made each call."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[tuple[str, int]] = []

    def commit(self, batch: Batch) -> None:
        self.threads.append(("commit", threading.get_ident()))
        super().commit(batch)

    def recent(self, room: str, limit: int) -> list[StoredMessage]:
        self.threads.append(("recent", threading.get_ident()))
        return super().recent(room, limit)

    def close(self) -> None:
        self.threads.append(("close", threading.get_ident()))
        super().close()


async def test_writer_one_long_lived_thread_makes_every_store_call(nursery: trio.Nursery) -> None:
    """Commits, reads and the final close all run in the same dedicated thread (not the
    event loop's, not a pool's next free worker): the connection has one owner."""
    store, committed = ThreadRecordingStore(), Committed()
    writer = StoreWriter(store, committed)
    await nursery.start(writer.run)
    for id in range(1, 4):
        writer.submit(one(id))
        await committed.wait_for(id)
        await trio.to_thread.run_sync(time.sleep, 0.001)  # a pool thread gets busy meanwhile
        assert [m.id for m in await writer.call(store.recent, "#a", 10)][-1] == id
    await writer.aclose()
    kinds = [kind for kind, _ in store.threads]
    assert (kinds.count("commit"), kinds.count("recent"), kinds[-1]) == (3, 3, "close")
    idents = {ident for _, ident in store.threads}
    assert len(idents) == 1
    assert idents != {threading.get_ident()}


async def test_writer_commits_a_lone_batch_at_once_without_a_timer(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """Group commit never waits for a timer: a lone batch on an idle writer is committed
    without any (virtual) time passing, and so is the group queued behind a commit."""
    store, committed = RecordingStore(hold_first=True), Committed()
    writer = StoreWriter(store, committed)
    await nursery.start(writer.run)
    start = trio.current_time()
    writer.submit(one(1))
    assert await trio.to_thread.run_sync(store.entered.wait, THREAD_WAIT_S)
    writer.submit(one(2))
    writer.submit(one(3))
    store.release.set()
    await until(lambda: committed.seqs == [1, 3])
    writer.submit(one(4))
    await until(lambda: committed.seqs == [1, 3, 4])
    assert trio.current_time() == start
    assert store.commits == [[1], [2, 3], [4]]
    await writer.aclose()


async def test_writer_bug_in_the_thread_ends_run_with_it() -> None:
    """An exception that is not a StoreError (a bug) is not retried: run() raises it, and
    the store is closed all the same."""

    class Buggy(RecordingStore):
        def commit(self, batch: Batch) -> None:
            raise RuntimeError("a bug in commit")

    store = Buggy()
    writer = StoreWriter(store, Committed())
    writer.submit(one(1))
    with pytest.raises(RuntimeError, match="a bug in commit"):
        await writer.run()
    assert store.closed
