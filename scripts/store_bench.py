"""Measure the SQLite store: commit throughput per durability setting, and start-up cost.

Prints one line per case::

    python scripts/store_bench.py [--messages N] [--dir DIR] [--only CASE,CASE,...]

The cases (all by default):

* ``commit``: messages/s and milliseconds per transaction for batches of 1 and 100
  messages (one transaction each), with WAL and ``synchronous`` NORMAL and FULL. Batch
  size 1 is what a store without grouped commits would do at a low rate; 100 is a busy
  server's grouped commit.
* ``writer``: through :class:`StoreWriter` (worker thread, grouped commits): the delay
  from ``submit`` to ``on_committed`` for one message at a time, and a burst of
  one-message batches submitted faster than the disk commits them (messages/s and how
  many batches each transaction took on average).
* ``index``: CPU per line of one-line commits (a steady trickle: every line its own
  transaction) with the search index and without, and, where the store indexes after
  the commit (``index_some``), the CPU per line of indexing them afterwards in batches
  of 100. Run it with ``PYTHONPATH=`` another checkout to compare.
* ``burst``: the writer thread's CPU per line in a burst: one room, hub batches of 250
  lines each committed in a transaction, and (with the index) the lines indexed 1,000
  a transaction after every fourth commit, as the writer's pacer does under load; on
  top of 20,000 stored lines. Run it with ``PYTHONPATH=`` another checkout to compare.
* ``crossing``: what crossing to the writer thread costs, in CPU (all threads) per
  one-line commit made one at a time (a steady trickle: each commit waits for the one
  before): inline (:meth:`SQLiteStore.commit` called directly), through
  :class:`StoreWriter`, and a read that does nothing through :meth:`StoreWriter.call`
  (the round trip alone); with the event loop's thread's share (``time.thread_time``).
  Run it pinned to one CPU (``taskset -c 0``), as the bench runs the server.
* ``fts``: FTS5 alone, with raw ``sqlite3`` statements: CPU per line of indexing lines
  like the bench's 1,000 a transaction, for the store's tokenizer and ``detail`` and
  their cheaper alternatives (what any index of every word costs in SQLite, whatever
  the store does around it).
* ``open``: how long :meth:`SQLiteStore.open` takes on a database holding ``--messages``
  messages (it migrates and runs ``PRAGMA quick_check``), and how long closing takes.

Use a folder on the disk the server will use (``--dir``); the default is a temporary
folder, which may be a RAM disk on some systems and then says nothing about fsync.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

import trio

from triochat.store import Batch, SQLiteStore, StoredMessage, StoreWriter
from triochat.store.sqlite import Synchronous

ALL_CASES = "commit,writer,index,burst,crossing,fts,open"
TEXT = "a line of chat about as long as a typical one, give or take a few words"


def batches(total: int, size: int, rooms: int = 4) -> list[Batch]:
    """Return ``total`` messages spread over ``rooms`` rooms, ``size`` per batch."""
    out: list[Batch] = []
    next_id = [0] * rooms
    now = time.time()
    for start in range(0, total, size):
        messages = []
        for n in range(start, min(start + size, total)):
            room = n % rooms
            next_id[room] += 1
            messages.append(StoredMessage(f"#r{room}", next_id[room], now, "say", "bench", TEXT))
        out.append(Batch(messages))
    return out


def bench_commits(folder: Path, mode: Synchronous, total: int, size: int) -> str:
    """Commit ``total`` messages in batches of ``size``; return one line of figures."""
    path = folder / f"commit-{mode}-{size}.db"
    store = SQLiteStore.open(path, synchronous=mode)
    work = batches(total, size)
    times: list[float] = []
    began = time.perf_counter()
    for batch in work:
        t0 = time.perf_counter()
        store.commit(batch)
        times.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - began
    store.close()
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    return (
        f"commit  synchronous={mode:<6} batch={size:<4} {total / elapsed:>10,.0f} messages/s  "
        f"{len(work) / elapsed:>8,.0f} commits/s  "
        f"median {statistics.median(times) * 1e3:6.2f} ms  p99 {p99 * 1e3:6.2f} ms per commit"
    )


async def bench_writer(folder: Path, mode: Synchronous, total: int) -> str:
    """Time submit-to-committed for single messages, then a burst of ``total``."""
    store = SQLiteStore.open(folder / f"writer-{mode}.db", synchronous=mode)
    done = trio.Event()
    commits = 0
    target = 0

    def on_committed(seq: int) -> None:
        nonlocal commits
        commits += 1
        if seq >= target:
            done.set()

    writer = StoreWriter(store, on_committed)
    messages = iter(batches(total + 1000, 1))
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        delays: list[float] = []
        for _ in range(1000):
            done = trio.Event()
            t0 = time.perf_counter()
            target = writer.submit(next(messages))
            await done.wait()
            delays.append(time.perf_counter() - t0)
        commits, done = 0, trio.Event()
        t0 = time.perf_counter()
        for n in range(total):
            target = writer.submit(next(messages))
            if n % 50 == 49:
                await trio.lowlevel.checkpoint()  # a hub hands over batches between reads
        await done.wait()
        elapsed = time.perf_counter() - t0
        await writer.aclose()
    delays.sort()
    return (
        f"writer  synchronous={mode:<6} one at a time: median "
        f"{statistics.median(delays) * 1e3:.2f} ms, p99 {delays[989] * 1e3:.2f} ms "
        f"submit->committed; {total:,} submitted at once: {total / elapsed:,.0f} messages/s "
        f"in {commits} transactions"
    )


def bench_index(folder: Path, total: int, search: bool) -> str:
    """CPU per line of ``total`` one-line commits (``search``: with the index) on top of
    20,000 stored lines, and of indexing them afterwards where that is separate."""
    path = folder / f"index-{search}.db"
    store = SQLiteStore.open(path, search_index=search)
    for batch in batches(20_000, 1000):
        store.commit(batch)
    later = getattr(store, "index_some", None)
    if later is not None:
        later()
    work = [
        Batch([StoredMessage("#r0", 100_000 + n, time.time(), "say", "b", TEXT)])
        for n in range(total)
    ]
    began = time.process_time()
    for batch in work:
        store.commit(batch)
    committed = time.process_time() - began
    indexed = ""
    if later is not None and search:
        began = time.process_time()
        while later(100):
            pass
        took = (time.process_time() - began) / total * 1e6
        indexed = f", then {took:.1f} us a line to index them 100 at a time"
    store.close()
    what = "with the index" if search else "without the index"
    return f"index   one-line commits {what}: {committed / total * 1e6:.1f} us CPU a line{indexed}"


def bench_burst(folder: Path, total: int, search: bool) -> str:
    """CPU per line of ``total`` lines committed 250 a transaction in one room and (with
    ``search``) indexed 1,000 a transaction, on top of 20,000 stored lines."""
    path = folder / f"burst-{search}.db"
    store = SQLiteStore.open(path, search_index=search)
    for batch in batches(20_000, 1000, rooms=1):
        store.commit(batch)
    later = getattr(store, "index_some", None)
    if later is not None:
        later()
    now = time.time()
    work = [
        Batch(
            [
                StoredMessage("#r0", 20_001 + n, now, "say", "b", TEXT)
                for n in range(start, min(start + 250, total))
            ]
        )
        for start in range(0, total, 250)
    ]
    began = time.process_time()
    for n, batch in enumerate(work, 1):
        store.commit(batch)
        if later is not None and search and n % 4 == 0:
            later(1000)
    if later is not None and search:
        later()
    took = (time.process_time() - began) / total * 1e6
    store.close()
    what = "with the index" if search else "without the index"
    return f"burst   250-line commits {what}: {took:.2f} us CPU a line (indexing included)"


async def bench_crossing(folder: Path, total: int) -> list[str]:
    """CPU per one-line commit, one at a time: inline, through the writer thread, and a
    no-op call through it (the crossing alone)."""
    work = batches(total + 200, 1, rooms=1)
    inline = SQLiteStore.open(folder / "crossing-inline.db")
    for batch in work[:200]:
        inline.commit(batch)
    began = time.process_time()
    for batch in work[200:]:
        inline.commit(batch)
    lines = [
        f"crossing one-line commits inline: "
        f"{(time.process_time() - began) / total * 1e6:.1f} us CPU a line"
    ]
    inline.close()

    committed = trio.Event()
    writer = StoreWriter(SQLiteStore.open(folder / "crossing-writer.db"), lambda _: committed.set())

    async def commits(todo: list[Batch]) -> None:
        nonlocal committed
        for batch in todo:  # each waits for the one before, as lines at a steady trickle
            committed = trio.Event()
            writer.submit(batch)
            await committed.wait()

    async def calls(count: int) -> None:
        for _ in range(count):
            await writer.call(int)

    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await commits(work[:200])  # warm up
        for what, run in (
            ("one-line commits", partial(commits, work[200:])),
            ("no-op calls", partial(calls, total)),
        ):
            began, loop_began = time.process_time(), time.thread_time()
            await run()
            took, in_loop = time.process_time() - began, time.thread_time() - loop_began
            lines.append(
                f"crossing {what} through the writer thread: {took / total * 1e6:.1f} us CPU"
                f" each ({in_loop / total * 1e6:.1f} of it in the event loop's thread)"
            )
        await writer.aclose()
    return lines


def bench_fts(folder: Path, total: int) -> list[str]:
    """CPU per line of FTS5 inserts, 1,000 lines a transaction, per tokenizer and detail."""
    lines: list[str] = []
    text = "the quick brown fox jumps over the lazy dog"  # as scripts/loadgen.py sends
    rows = [(n, f"@{1_733_441_234_000_000_000 + n * 37} {text}") for n in range(total)]
    for tokenizer in ("unicode61 remove_diacritics 2", "ascii"):
        for detail in ("full", "none"):
            path = folder / f"fts-{tokenizer.split()[0]}-{detail}.db"
            conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(
                "CREATE VIRTUAL TABLE words USING fts5(text, content = '', columnsize = 0, "
                f"detail = {detail}, tokenize = '{tokenizer}')"
            )
            began = time.process_time()
            for start in range(0, total, 1000):
                conn.execute("BEGIN")
                conn.executemany(
                    "INSERT INTO words (rowid, text) VALUES (?, ?)", rows[start : start + 1000]
                )
                conn.execute("COMMIT")
            took = (time.process_time() - began) / total * 1e6
            conn.close()
            lines.append(
                f"fts     tokenize='{tokenizer}' detail={detail}: {took:.2f} us CPU a line"
            )
    return lines


def bench_open(folder: Path, total: int) -> str:
    """Fill a database with ``total`` messages, then time reopening and closing it."""
    path = folder / "open.db"
    store = SQLiteStore.open(path)
    for batch in batches(total, 1000):
        store.commit(batch)
    store.close()
    size_mb = path.stat().st_size / 1e6
    t0 = time.perf_counter()
    store = SQLiteStore.open(path)
    opened = time.perf_counter() - t0
    t0 = time.perf_counter()
    store.close()
    closed = time.perf_counter() - t0
    return (
        f"open    {total:,} messages ({size_mb:.0f} MB): open with quick_check "
        f"{opened * 1e3:.0f} ms, close {closed * 1e3:.0f} ms"
    )


def main() -> None:
    """Run every case and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000, help="messages per case")
    parser.add_argument("--open-messages", type=int, default=500_000, help="for the open case")
    parser.add_argument("--dir", type=Path, default=None, help="folder for the databases")
    parser.add_argument(
        "--only",
        default="commit,writer,index,burst,crossing,fts,open",
        help="comma-separated cases to run",
    )
    args = parser.parse_args()
    cases = set(args.only.split(","))
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        modes: tuple[Synchronous, ...] = ("NORMAL", "FULL")
        for mode in modes if "commit" in cases else ():
            for size, total in ((1, min(args.messages, 2000)), (100, args.messages)):
                print(bench_commits(folder, mode, total, size), flush=True)
        for mode in modes if "writer" in cases else ():
            print(trio.run(bench_writer, folder, mode, args.messages), flush=True)
        for search in (False, True) if "index" in cases else ():
            print(bench_index(folder, min(args.messages, 5000), search), flush=True)
        for search in (False, True) if "burst" in cases else ():
            print(bench_burst(folder, max(args.messages, 50_000), search), flush=True)
        if "crossing" in cases:
            for line in trio.run(bench_crossing, folder, min(args.messages, 5000)):
                print(line, flush=True)
        if "fts" in cases:
            for line in bench_fts(folder, max(args.messages, 50_000)):
                print(line, flush=True)
        if "open" in cases:
            print(bench_open(folder, args.open_messages), flush=True)


if __name__ == "__main__":
    main()
