"""Load generator for ``scripts/bench.py``: drives one chat server, prints one JSON line.

All simulated clients live in this one process on one asyncio event loop, written
with asyncio protocol callbacks (no streams, no per-line Python loop) because the
benchmark machine has two cores and the server under test needs one of them:

- every chat line a sender writes carries ``@<time.monotonic_ns()>`` as its text, so
  a receiver's latency is "when this process read it" minus "when this process wrote
  it", on one clock;
- reads go into one shared buffer (``asyncio.BufferedProtocol``), so a recv allocates
  nothing but the bytes it returns;
- a receiver parses only what it must: it keeps the bytes after the last newline,
  pulls every stamp out of the rest with one regex (``<name> @stamp`` at a line
  start), and notes the read time once per chunk;
- the server's CPU time and RSS come from psutil on ``--server-pid``; its traced
  Python heap, when asked for, from ``SIGUSR1`` and the file it appends a line to.

Scenarios (sizes come from the command line, see ``--help``):

``burst``
    R receivers + S senders join; each sender writes L lines as fast as the socket
    takes them (senders read too). Deliveries/s = lines received by all clients /
    (last delivery - first send); loss; latency percentiles (mostly queueing);
    deliveries per second of server CPU time, summed over the rounds; and the share of
    the time the server's event loop was ready to run but waited for the CPU (the
    median round's).
``steady``
    The same room, senders paced to a fixed total rate (``--rate`` lines/s, spread
    over the senders); after a warm-up, latency and server CPU% over ``--duration``.
``idle``
    N clients join (``/nick``), then only read. Join time, server RSS per connection
    (after minus before, over N) and the time one line takes to reach all of them.
    With ``--heap-report FILE`` (the server runs under ``scripts/traced_server.py``)
    also the Python heap per connection, read at the same two moments as RSS.
``joins``
    N clients join (``/nick``) and stay, then all of them leave at once. The server's
    CPU seconds for the joins and for the leaves, each measured until the server is
    idle again (so work it defers, such as writing its log, is counted). Run it at two
    log levels to see what logging a join costs.
``slow``
    A paced room as in ``steady``; after ``--duration`` seconds one more client joins
    with a tiny receive buffer and never reads, and the room goes on for
    ``--duration2`` seconds. Others' latency before/during, server RSS slope, and
    whether the server told the room the slow client left (and why).
``who``
    ``--members`` clients join and read; then ``--spammers`` more join with a 4 KiB
    receive buffer, send ``/who`` as fast as the server reads them and never read a
    byte (each reply lists every member: a few KB for 5 bytes sent). Over
    ``--duration`` seconds: server RSS growth (peak, end, once a second) and how many
    spammers the server disconnected, and when. With 1000 members online the room's
    leave notices are summaries without reasons, so "disconnected" here means the
    server closed the spammer's connection (a send failed with a reset or broken pipe).

Every wait has a deadline; the process exits on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import re
import resource
import signal
import socket
import ssl
import statistics
import sys
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import psutil

HOST: Final[str] = "127.0.0.1"  # loopback only, always
# A chat line we sent, as received: ``<name> @stamp ...``. Not anchored to the line start
# (2.5x cheaper); a replayed history line would match too, so every scenario has all its
# measured clients join before the first stamped line is sent.
STAMP_RE: Final = re.compile(rb"> @(\d+)")
LINE_TEXT: Final[bytes] = b"the quick brown fox jumps over the lazy dog"  # ~60-byte lines
BURST_BATCH_LINES: Final[int] = 8  # lines per write() in a burst: a fast paste, not one huge blob
BURST_PAUSE_S: Final[float] = 0.3  # between burst rounds, so one round's tail is not the next's
CONNECT_CONCURRENCY: Final[int] = 64  # joins in flight at once (stays far below the backlog)
CONNECT_TIMEOUT_S: Final[float] = 10.0  # one connect + welcome; a lost SYN retries after 1 s
JOIN_DEADLINE_S: Final[float] = 90.0  # all joins of one scenario
DRAIN_TIMEOUT_S: Final[float] = 10.0  # after the last send, wait this long for deliveries
QUIET_S: Final[float] = 0.5  # "the server has finished sending" = no bytes for this long
QUIESCE_MAX_S: Final[float] = 20.0  # ...but stop waiting for quiet after this long
FANOUT_TIMEOUT_S: Final[float] = 30.0  # idle: one line reaching everyone
IDLE_RCVBUF: Final[int] = 512 * 1024  # idle clients pause reading while joins are announced
SLOW_RCVBUF: Final[int] = 1024  # the slow reader's SO_RCVBUF (the kernel rounds it up)
IDLE_SAMPLE_S: Final[float] = 0.25  # joins: server CPU sampling period while it settles
IDLE_CPU_S: Final[float] = 0.005  # joins: "idle" = under 2 % of one CPU over one sample
IDLE_MAX_S: Final[float] = 20.0  # joins: stop waiting for an idle server after this long
RSS_SAMPLE_S: Final[float] = 0.25  # slow, who: server RSS sampling period
WHO_RCVBUF: Final[int] = 4096  # who: a spammer's SO_RCVBUF, as in the report it reproduces
WHO_BATCH: Final[int] = 64  # who: /who lines per write (320 bytes)
PCTS: Final[tuple[float, ...]] = (50.0, 99.0)  # latency percentiles reported
HEAP_TIMEOUT_S: Final[float] = 10.0  # one heap reading: a full collection over 5000 members
HEAP_POLL_S: Final[float] = 0.01  # how often the report file is checked for the new reading


def now_ns() -> int:
    """The one clock every stamp and receive time uses."""
    return time.monotonic_ns()


@dataclass
class Record:
    """Every stamped line written and read, as raw ns numbers (post-processed at the end)."""

    sent: list[int] = field(default_factory=list)  # stamp of every line written
    # (read time, stamps as bytes) per chunk read: ints are made after the run, not in it
    chunks: list[tuple[int, list[bytes]]] = field(default_factory=list)
    delivered: int = 0  # stamped lines read so far
    first_send: int = 0
    last_recv: int = 0
    progress: asyncio.Event = field(default_factory=asyncio.Event)  # set on every delivery

    def window(self, lo: int, hi: int, fanout: int) -> dict[str, Any]:
        """Latency figures for lines stamped in ``[lo, hi)``, each due to ``fanout`` readers.

        An undelivered line counts as infinitely late, so a p99 that falls on one is
        reported as ``None`` (the server stalled or dropped it).
        """
        lats: list[int] = []
        for r, stamps in self.chunks:
            lats.extend(r - s for s in map(int, stamps) if lo <= s < hi)
        lats.sort()
        sent = sum(1 for s in self.sent if lo <= s < hi)
        expected = sent * fanout
        missing = max(0, expected - len(lats))
        out: dict[str, Any] = {
            "lines_sent": sent,
            "expected": expected,
            "delivered": len(lats),
            "missing": missing,
        }
        total = len(lats) + missing
        for p in PCTS:
            key = f"p{p:g}_ms"
            if total == 0:
                out[key] = None
                continue
            idx = min(total - 1, max(0, round(p / 100.0 * total + 0.5) - 1))
            out[key] = round(lats[idx] / 1e6, 3) if idx < len(lats) else None
        out["max_ms"] = None if missing or not lats else round(lats[-1] / 1e6, 3)
        return out


# Every client reads into this one buffer (asyncio.BufferedProtocol): the default
# Protocol path allocates a fresh 256 KiB bytes object per recv, and those allocations
# (mmap, page faults, munmap) cost more than the recv itself at tens of MB/s. Sharing is
# safe: each chunk is copied out in ``buffer_updated`` before the loop reads again.
RECV_BUFFER: Final = memoryview(bytearray(256 * 1024))


TLS_WRITE_BUFFER: Final = 256 * 1024  # bytes a TLS client may buffer before its sender waits
# With --tls-ca, every client connection is TLS (the server's TLS port, a certificate
# signed by that CA, checked as `triochat client --tls --ca` checks it).
TLS: ssl.SSLContext | None = None


class Client(asyncio.BufferedProtocol):
    """One simulated chat client; it records stamped lines and watches for notices."""

    def __init__(self, name: str, record: Record, watch: bytes | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.name = name
        self.record = record
        self.watch = watch  # a notice prefix to look for, e.g. b"* slow left"
        self.watch_line: bytes | None = None
        self.watch_time = 0
        self.transport: asyncio.Transport | None = None
        self.tail = b""
        self.bytes_in = 0
        self.welcomed: asyncio.Future[int] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.can_write = asyncio.Event()
        self.can_write.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport; pause the writer as soon as anything is left unsent."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if TLS is None:
            transport.set_write_buffer_limits(high=0, low=0)
        else:
            # asyncio's TLS transport (3.11) can miss the resume_writing that follows a
            # pause at a zero high-water mark, and a sender then waits for good with its
            # last lines unsent (seen: 8 of 50,000). Let it buffer a little instead.
            transport.set_write_buffer_limits(high=TLS_WRITE_BUFFER, low=TLS_WRITE_BUFFER // 4)

    def pause_writing(self) -> None:
        """The kernel send buffer is full: senders wait."""
        self.can_write.clear()

    def resume_writing(self) -> None:
        """Everything written has reached the kernel."""
        self.can_write.set()

    def get_buffer(self, sizehint: int) -> memoryview:
        """Where the next recv goes: the shared buffer."""
        return RECV_BUFFER

    def buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` arrived in the shared buffer: copy them out and handle them."""
        self.data_received(bytes(RECV_BUFFER[:nbytes]))

    def data_received(self, data: bytes) -> None:
        """Record stamps of complete lines; the partial last line waits for more."""
        t = now_ns()
        self.bytes_in += len(data)
        if self.tail:
            data = self.tail + data
        cut = data.rfind(b"\n") + 1
        self.tail = data[cut:]
        if cut == 0:
            return
        if cut != len(data):
            data = data[:cut]
        stamps = STAMP_RE.findall(data)
        if stamps:
            rec = self.record
            rec.chunks.append((t, stamps))
            rec.delivered += len(stamps)
            rec.last_recv = t
            rec.progress.set()
        if not self.welcomed.done() and b"* welcome" in data:
            self.welcomed.set_result(t)
        if self.watch is not None and self.watch_line is None:
            at = data.find(self.watch)
            if at >= 0:
                self.watch_line = data[at : data.find(b"\n", at)]
                self.watch_time = t

    def connection_lost(self, exc: Exception | None) -> None:
        """Wake anyone waiting on this client."""
        if not self.closed.done():
            self.closed.set_result(None)
        if not self.welcomed.done():
            self.welcomed.set_exception(ConnectionError(f"{self.name}: closed before welcome"))
        self.can_write.set()

    def send(self, data: bytes) -> None:
        """Write without waiting (the transport buffers whatever the kernel refuses)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


def line(stamp: int, text: bytes = LINE_TEXT) -> bytes:
    """One chat line carrying its send time."""
    return b"@%d %s\n" % (stamp, text)


def text_of(size: int) -> bytes:
    """Chat text of about ``size`` bytes (``LINE_TEXT`` repeated)."""
    return (LINE_TEXT + b" ") * (size // (len(LINE_TEXT) + 1)) + LINE_TEXT[
        : size % (len(LINE_TEXT) + 1)
    ]


async def connect(
    port: int, name: str, record: Record, *, rcvbuf: int = 0, watch: bytes | None = None
) -> Client:
    """Open one connection (TLS with ``--tls-ca``), join as ``name``, wait for the welcome."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            await loop.sock_connect(sock, (HOST, port))
            _, client = await loop.create_connection(
                lambda: Client(name, record, watch),
                sock=sock,
                ssl=TLS,
                server_hostname=HOST if TLS is not None else None,
            )
            client.send(b"/nick %s\n" % name.encode())
            await client.welcomed
    except BaseException:
        sock.close()
        raise
    return client


async def connect_many(
    port: int,
    names: Sequence[str],
    record: Record,
    *,
    rcvbuf: int = 0,
    pause: bool = False,
    deadline: float = JOIN_DEADLINE_S,
) -> tuple[list[Client], float, list[str]]:
    """Join many clients, at most ``CONNECT_CONCURRENCY`` at a time.

    Returns the clients that joined, the seconds from the first connect to the last
    welcome, and one error string per client that did not join.
    """
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    clients: list[Client] = []
    errors: list[str] = []

    async def one(name: str) -> None:
        async with gate:
            try:
                c = await connect(port, name, record, rcvbuf=rcvbuf)
            except (OSError, TimeoutError) as exc:
                errors.append(f"{name}: {exc!r}")
                return
            if pause and c.transport is not None:
                c.transport.pause_reading()
            clients.append(c)

    t0 = time.monotonic()
    try:
        async with asyncio.timeout(deadline), asyncio.TaskGroup() as tg:
            for n in names:
                tg.create_task(one(n))
    except TimeoutError:
        errors.append(f"join deadline of {deadline:g} s passed")
    return clients, time.monotonic() - t0, errors


def close_all(clients: Sequence[Client]) -> None:
    """Drop every connection at once (RST); the server is stopped right after."""
    for c in clients:
        if c.transport is not None:
            c.transport.abort()


class Server:
    """psutil view of the server under test (CPU time and RSS of all its threads).

    With ``heap_report`` (a server started through ``scripts/traced_server.py``), also
    its traced Python heap.
    """

    def __init__(self, pid: int, heap_report: Path | None = None) -> None:
        self.proc = psutil.Process(pid)
        self.heap_report = heap_report

    async def heap_kb(self) -> float | None:
        """Traced Python heap now, in KiB, after a full collection (None: not traced).

        Sends ``SIGUSR1`` and waits for the server to append its next reading.

        Raises:
            TimeoutError: No reading within ``HEAP_TIMEOUT_S``.
        """
        if self.heap_report is None:
            return None
        seen = len(self._heap_lines())
        self.proc.send_signal(signal.SIGUSR1)
        async with asyncio.timeout(HEAP_TIMEOUT_S):
            while len(lines := self._heap_lines()) <= seen:
                await asyncio.sleep(HEAP_POLL_S)
        return int(lines[-1].split()[1]) / 1024.0

    def _heap_lines(self) -> list[str]:
        """The complete lines of the report file so far."""
        assert self.heap_report is not None
        try:
            text = self.heap_report.read_text(encoding="ascii")
        except FileNotFoundError:
            return []
        return text.splitlines()[: text.count("\n")]

    def rss_kb(self) -> float:
        """Resident set size now, in KiB."""
        return float(self.proc.memory_info().rss) / 1024.0

    def cpu_s(self) -> float:
        """User + system CPU seconds used so far."""
        t = self.proc.cpu_times()
        return float(t.user + t.system)

    def cpu_wait_s(self) -> float:
        """Seconds the server's main thread has been runnable but waiting for a CPU.

        The main thread runs the event loop, so this is how long other processes, or the
        server's own threads on the one CPU it is pinned to (e.g. a store's worker
        thread), held the loop up. Read from ``/proc/PID/task/PID/schedstat``; 0.0 where
        that does not exist.
        """
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/schedstat") as f:
                return int(f.read().split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            return 0.0

    def cpu_user_s(self) -> float:
        """User-mode CPU seconds used so far (the rest is the kernel's, mostly send/recv)."""
        return float(self.proc.cpu_times().user)


async def wait_delivered(record: Record, expected: int, timeout: float) -> None:
    """Return when ``expected`` stamped lines were read, or no progress for ``timeout`` s."""
    while record.delivered < expected:
        record.progress.clear()
        try:
            async with asyncio.timeout(timeout):
                await record.progress.wait()
        except TimeoutError:
            return


async def wait_quiet(clients: Sequence[Client]) -> float:
    """Wait until no client has read a byte for ``QUIET_S``; return the seconds waited."""
    t0 = time.monotonic()
    last = -1
    while time.monotonic() - t0 < QUIESCE_MAX_S:
        total = sum(c.bytes_in for c in clients)
        if total == last:
            break
        last = total
        await asyncio.sleep(QUIET_S)
    return time.monotonic() - t0


# --------------------------------------------------------------------------- senders


async def burst_sender(client: Client, lines: int, record: Record) -> None:
    """Write ``lines`` lines as fast as the kernel takes them, a small batch at a time."""
    left = lines
    while left > 0 and not client.closed.done():
        await client.can_write.wait()
        k = min(BURST_BATCH_LINES, left)
        t = now_ns()
        if not record.first_send:
            record.first_send = t
        client.send(line(t) * k)
        record.sent.extend(itertools.repeat(t, k))
        left -= k
        await asyncio.sleep(0)  # let the receivers' callbacks run between batches


async def paced_sender(
    client: Client, rate: float, start: int, end: int, record: Record, text: bytes = LINE_TEXT
) -> None:
    """Write lines at ``rate`` per second from ``start`` to ``end`` (ns), catching up if late.

    The stamp is the time of the write, not the schedule, so a late loop does not show
    up as server latency.
    """
    period = 1e9 / rate
    due = float(start)
    while due < end and not client.closed.done():
        wait = (due - now_ns()) / 1e9
        if wait > 0:
            await asyncio.sleep(wait)
        t = now_ns()
        k = 0
        while due <= t and due < end:
            due += period
            k += 1
        if k:
            client.send(line(t, text) * k)
            record.sent.extend(itertools.repeat(t, k))


# --------------------------------------------------------------------------- scenarios


async def run_room(
    port: int, receivers: int, senders: int, record: Record, watch: bytes | None = None
) -> tuple[list[Client], list[Client], float, list[str]]:
    """Join ``receivers`` then ``senders`` clients; return both lists, join s and errors."""
    rnames = [f"r{i}" for i in range(receivers)]
    snames = [f"s{i}" for i in range(senders)]
    clients, join_s, errors = await connect_many(port, [*rnames, *snames], record)
    by_name = {c.name: c for c in clients}
    if watch is not None and rnames and rnames[0] in by_name:
        by_name[rnames[0]].watch = watch
    recv = [by_name[n] for n in rnames if n in by_name]
    send = [by_name[n] for n in snames if n in by_name]
    await wait_quiet(clients)  # let the join notices settle before timing anything
    return recv, send, join_s, errors


async def burst_round(
    args: argparse.Namespace, server: Server, clients: Sequence[Client], send: Sequence[Client]
) -> dict[str, Any]:
    """One burst: every sender writes all its lines at once; figures for this round."""
    rec = Record()
    for c in clients:
        c.record = rec
    n = len(clients)
    cpu0, wait0 = server.cpu_s(), server.cpu_wait_s()
    t0 = time.monotonic()
    async with asyncio.TaskGroup() as tg:
        for c in send:
            tg.create_task(burst_sender(c, args.lines, rec))
    await wait_delivered(rec, len(rec.sent) * (n - 1), DRAIN_TIMEOUT_S)
    cpu1, wait1 = server.cpu_s(), server.cpu_wait_s()
    wall = time.monotonic() - t0
    elapsed_s = max(1e-9, (rec.last_recv - rec.first_send) / 1e9)
    stats = rec.window(0, 2**63, n - 1)
    return {
        "deliveries_per_s": round(stats["delivered"] / elapsed_s, 1),
        "loss": stats["missing"],
        "elapsed_s": round(elapsed_s, 3),
        "cpu_pct": round(100.0 * (cpu1 - cpu0) / wall, 1),
        "cpu_s": round(cpu1 - cpu0, 4),
        "cpu_wait_pct": round(100.0 * (wait1 - wait0) / wall, 1),
        **stats,
    }


async def scenario_burst(args: argparse.Namespace, server: Server) -> dict[str, Any]:
    """Burst fan-out, ``--rounds`` times in one room; the median round is reported."""
    rec = Record()
    recv, send, join_s, errors = await run_room(args.port, args.receivers, args.senders, rec)
    everyone = [*recv, *send]
    rounds: list[dict[str, Any]] = []
    for _ in range(args.rounds):
        rounds.append(await burst_round(args, server, everyone, send))
        await asyncio.sleep(BURST_PAUSE_S)
    close_all(everyone)
    median = sorted(rounds, key=lambda r: float(r["deliveries_per_s"]))[len(rounds) // 2]
    return {
        "clients": len(everyone),
        "join_s": round(join_s, 3),
        "errors": errors[:5],
        **median,
        "loss": sum(int(r["loss"]) for r in rounds),
        "rounds_deliveries_per_s": [r["deliveries_per_s"] for r in rounds],
        "cpu_wait_pct": statistics.median(r["cpu_wait_pct"] for r in rounds),
        # Server CPU per delivery over every round: what the work costs, whatever else
        # runs on the machine (deliveries/s also counts time the server waited for a CPU).
        "deliveries_per_cpu_s": round(
            sum(int(r["delivered"]) for r in rounds) / max(1e-9, sum(r["cpu_s"] for r in rounds)),
            1,
        ),
    }


async def scenario_steady(args: argparse.Namespace, server: Server) -> dict[str, Any]:
    """Steady rate: paced senders; latency and server CPU over the measurement window."""
    rec = Record()
    recv, send, join_s, errors = await run_room(args.port, args.receivers, args.senders, rec)
    everyone = [*recv, *send]
    n = len(everyone)
    talkers = everyone if args.all_send else send
    per_sender = args.rate / max(1, len(talkers))
    start = now_ns() + 50_000_000
    lo = start + int(args.warmup * 1e9)
    hi = lo + int(args.duration * 1e9)
    async with asyncio.TaskGroup() as tg:
        for i, c in enumerate(talkers):
            offset = int(i * 1e9 / per_sender / len(talkers))  # spread the senders' ticks
            tg.create_task(paced_sender(c, per_sender, start + offset, hi, rec))
        await asyncio.sleep((lo - now_ns()) / 1e9)
        cpu0, user0, rss0 = server.cpu_s(), server.cpu_user_s(), server.rss_kb()
        wait0 = server.cpu_wait_s()
        await asyncio.sleep((hi - now_ns()) / 1e9)
        cpu1, user1, rss1 = server.cpu_s(), server.cpu_user_s(), server.rss_kb()
        wait1 = server.cpu_wait_s()
    await wait_delivered(rec, len(rec.sent) * (n - 1), DRAIN_TIMEOUT_S)
    close_all(everyone)
    stats = rec.window(lo, hi, n - 1)
    return {
        "clients": n,
        "senders": len(talkers),
        "rate_lines_per_s": args.rate,
        "join_s": round(join_s, 3),
        "errors": errors[:5],
        "deliveries_per_s": round(stats["delivered"] / args.duration, 1),
        "cpu_pct": round(100.0 * (cpu1 - cpu0) / args.duration, 1),
        "cpu_user_pct": round(100.0 * (user1 - user0) / args.duration, 1),
        "cpu_wait_pct": round(100.0 * (wait1 - wait0) / args.duration, 1),
        "rss_mb": round(rss1 / 1024, 1),
        "rss_growth_kb": round(rss1 - rss0, 1),
        "loss": stats["missing"],
        **stats,
    }


async def scenario_idle(args: argparse.Namespace, server: Server) -> dict[str, Any]:
    """Idle: RSS per connection, join time, and one line's fan-out time to everyone."""
    rec = Record()
    probe = await connect(args.port, "probe", rec)
    await asyncio.sleep(0.5)
    rss0 = server.rss_kb()
    heap0 = await server.heap_kb()
    names = [f"i{i}" for i in range(args.conns)]
    # Idle clients stop reading once welcomed (their big receive buffers hold the join
    # notices), so that this process is not busy reading while the joins are timed.
    idle, join_s, errors = await connect_many(
        args.port, names, rec, rcvbuf=IDLE_RCVBUF, pause=True, deadline=args.join_deadline
    )
    rss_joined = server.rss_kb()
    for c in idle:
        if c.transport is not None:
            c.transport.resume_reading()
    settle_s = await wait_quiet([probe, *idle])
    rss1 = server.rss_kb()
    heap1 = await server.heap_kb()
    t = now_ns()
    probe.send(line(t))
    rec.sent.append(t)
    await wait_delivered(rec, len(idle), FANOUT_TIMEOUT_S)
    stats = rec.window(t, t + 1, len(idle))
    close_all([probe, *idle])
    joined = len(idle)
    return {
        "conns": args.conns,
        "joined": joined,
        "errors": errors[:5],
        "join_s": round(join_s, 3),
        "settle_s": round(settle_s, 3),
        "rss_before_mb": round(rss0 / 1024, 1),
        "rss_joined_mb": round(rss_joined / 1024, 1),
        "rss_after_mb": round(rss1 / 1024, 1),
        "rss_per_conn_kb": round((rss1 - rss0) / max(1, joined), 2),
        "heap_before_mb": None if heap0 is None else round(heap0 / 1024, 2),
        "heap_after_mb": None if heap1 is None else round(heap1 / 1024, 2),
        "heap_per_conn_kb": (
            None if heap0 is None or heap1 is None else round((heap1 - heap0) / max(1, joined), 2)
        ),
        "fanout_p50_ms": stats["p50_ms"],
        "fanout_all_ms": (
            round((rec.last_recv - t) / 1e6, 3) if stats["missing"] == 0 and joined else None
        ),
        "fanout_missing": stats["missing"],
    }


async def wait_server_idle(server: Server) -> float:
    """Wait until the server's CPU time stops growing; return its CPU seconds then.

    Two samples ``IDLE_SAMPLE_S`` apart that differ by less than ``IDLE_CPU_S`` mean it
    is idle (its own housekeeping every few seconds is far below that).
    """
    t0 = time.monotonic()
    last = server.cpu_s()
    while time.monotonic() - t0 < IDLE_MAX_S:
        await asyncio.sleep(IDLE_SAMPLE_S)
        now = server.cpu_s()
        if now - last < IDLE_CPU_S:
            return now
        last = now
    return last


async def scenario_joins(args: argparse.Namespace, server: Server) -> dict[str, Any]:
    """Joins: the server CPU that N joins (and then N leaves) cost, until it is idle."""
    rec = Record()
    cpu0 = await wait_server_idle(server)
    names = [f"j{i}" for i in range(args.conns)]
    # As in ``idle``: once welcomed, a client stops reading, so this process is not busy.
    clients, join_s, errors = await connect_many(
        args.port, names, rec, rcvbuf=IDLE_RCVBUF, pause=True, deadline=args.join_deadline
    )
    cpu1 = await wait_server_idle(server)
    close_all(clients)
    cpu2 = await wait_server_idle(server)
    joined = len(clients)
    return {
        "conns": args.conns,
        "joined": joined,
        "errors": errors[:5],
        "join_s": round(join_s, 3),
        "cpu_join_s": round(cpu1 - cpu0, 3),
        "cpu_leave_s": round(cpu2 - cpu1, 3),
        "cpu_s": round(cpu2 - cpu0, 3),
        "cpu_per_join_ms": round(1000 * (cpu1 - cpu0) / max(1, joined), 3),
    }


def slope(samples: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of ``(x, y)`` samples (0 for fewer than two)."""
    if len(samples) < 2:
        return 0.0
    mx = sum(x for x, _ in samples) / len(samples)
    my = sum(y for _, y in samples) / len(samples)
    den = sum((x - mx) ** 2 for x, _ in samples)
    return sum((x - mx) * (y - my) for x, y in samples) / den if den else 0.0


async def scenario_slow(args: argparse.Namespace, server: Server) -> dict[str, Any]:
    """Slow reader: a paced room, then one member that never reads joins it."""
    rec = Record()
    slow_name = "slowpoke"
    watch = b"* " + slow_name.encode() + b" left"
    recv, send, join_s, errors = await run_room(
        args.port, args.receivers, args.senders, rec, watch=watch
    )
    everyone = [*recv, *send]
    n = len(everyone)
    per_sender = args.rate / max(1, len(send))
    text = text_of(args.line_bytes)
    start = now_ns() + 50_000_000
    b_lo = start + int(args.warmup * 1e9)
    b_hi = b_lo + int(args.duration * 1e9)
    d_hi = b_hi + int(args.duration2 * 1e9)
    samples: list[tuple[float, float]] = []
    slow_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    slow_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)
    slow_sock.setblocking(False)
    slow_error = ""
    try:
        async with asyncio.TaskGroup() as tg:
            for i, c in enumerate(send):
                offset = int(i * 1e9 / per_sender / max(1, len(send)))
                tg.create_task(paced_sender(c, per_sender, start + offset, d_hi, rec, text))
            await asyncio.sleep((b_hi - now_ns()) / 1e9)
            rss_before = server.rss_kb()
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    await asyncio.get_running_loop().sock_connect(slow_sock, (HOST, args.port))
                slow_sock.send(b"/nick %s\n" % slow_name.encode())
            except (OSError, TimeoutError) as exc:
                slow_error = repr(exc)
            slow_t = now_ns()
            while now_ns() < d_hi:
                samples.append(((now_ns() - slow_t) / 1e9, server.rss_kb()))
                await asyncio.sleep(RSS_SAMPLE_S)
        await wait_delivered(rec, len(rec.sent) * (n - 1), min(3.0, DRAIN_TIMEOUT_S))
    finally:
        close_all(everyone)
        slow_sock.close()
    before = rec.window(b_lo, b_hi, n - 1)
    during = rec.window(slow_t, d_hi, n - 1)
    watcher = recv[0] if recv else None
    told = watcher is not None and watcher.watch_line is not None
    rss = [kb for _, kb in samples]
    return {
        "clients": n,
        "rate_lines_per_s": args.rate,
        "line_bytes": len(text),
        "join_s": round(join_s, 3),
        "errors": [*errors[:5], *([slow_error] if slow_error else [])],
        "p50_before_ms": before["p50_ms"],
        "p99_before_ms": before["p99_ms"],
        "p50_during_ms": during["p50_ms"],
        "p99_during_ms": during["p99_ms"],
        "max_during_ms": during["max_ms"],
        "missing_during": during["missing"],
        "expected_during": during["expected"],
        "rss_before_mb": round(rss_before / 1024, 1),
        "rss_max_growth_mb": round((max(rss, default=rss_before) - rss_before) / 1024, 2),
        "rss_slope_kb_per_s": round(slope(samples), 1),
        "rss_last_slope_kb_per_s": round(slope(samples[len(samples) // 2 :]), 1),
        "slow_disconnected": told,
        "slow_notice": watcher.watch_line.decode("utf-8", "replace")
        if watcher is not None and watcher.watch_line is not None
        else None,
        "slow_disconnect_after_s": round((watcher.watch_time - slow_t) / 1e9, 3)
        if watcher is not None and told
        else None,
    }


@dataclass
class Spammer:
    """One ``/who`` spammer: lines written, and when its connection was cut off."""

    name: str
    sent: int = 0
    dropped_ns: int = 0  # 0: still connected at the end
    error: str = ""


async def who_spammer(port: int, spam: Spammer, start: int, end: int) -> None:
    """Join as ``spam.name`` with a tiny receive buffer, then send ``/who`` until ``end``.

    It never reads. A send that fails (reset, broken pipe) means the server has closed
    the connection: that time is recorded and the spammer stops.
    """
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, WHO_RCVBUF)  # before connect
    sock.setblocking(False)
    chunk = b"/who\n" * WHO_BATCH
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            await loop.sock_connect(sock, (HOST, port))
            await loop.sock_sendall(sock, b"/nick %s\n" % spam.name.encode())
    except (OSError, TimeoutError) as exc:
        spam.error = repr(exc)
        sock.close()
        return
    try:
        await asyncio.sleep(max(0.0, (start - now_ns()) / 1e9))
        async with asyncio.timeout(max(0.0, (end - now_ns()) / 1e9)):
            while True:
                await loop.sock_sendall(sock, chunk)
                spam.sent += WHO_BATCH
    except TimeoutError:
        pass  # still connected at the end
    except OSError as exc:
        spam.dropped_ns = now_ns()
        if not spam.sent:  # cut off before its first /who: refused, not dropped
            spam.error = repr(exc)
    finally:
        sock.close()


async def scenario_who(args: argparse.Namespace, server: Server) -> dict[str, Any]:
    """``/who`` amplification: RSS growth while non-reading members ask for the list."""
    rec = Record()
    names = [f"m{i}" for i in range(args.members)]
    members, join_s, errors = await connect_many(args.port, names, rec)
    await wait_quiet(members)
    rss_before = server.rss_kb()
    spammers = [Spammer(f"spam{i}") for i in range(args.spammers)]
    start = now_ns() + 200_000_000  # every spammer has joined by then
    end = start + int(args.duration * 1e9)
    samples: list[tuple[float, float]] = []

    async def sample() -> None:
        while (t := now_ns()) < end:
            samples.append(((t - start) / 1e9, server.rss_kb()))
            await asyncio.sleep(RSS_SAMPLE_S)

    try:
        async with asyncio.TaskGroup() as tg:
            for spam in spammers:
                tg.create_task(who_spammer(args.port, spam, start, end))
            tg.create_task(sample())
    finally:
        close_all(members)
    growth = [(t, (kb - rss_before) / 1024) for t, kb in samples]
    dropped = sorted((s.dropped_ns - start) / 1e9 for s in spammers if s.dropped_ns and s.sent)
    per_second: dict[int, float] = {}
    for t, mb in growth:
        per_second[int(t)] = max(mb, per_second.get(int(t), mb))
    return {
        "members": len(members),
        "spammers": len(spammers),
        "join_s": round(join_s, 3),
        "errors": [*errors[:5], *(f"{s.name}: {s.error}" for s in spammers if s.error)],
        "who_sent": sum(s.sent for s in spammers),
        "rss_before_mb": round(rss_before / 1024, 1),
        "rss_max_growth_mb": round(max((mb for _, mb in growth), default=0.0), 2),
        "rss_end_growth_mb": round(growth[-1][1], 2) if growth else None,
        "rss_growth_per_s_mb": [round(per_second[k], 1) for k in sorted(per_second)],
        "spammers_dropped": len(dropped),
        "first_dropped_after_s": round(dropped[0], 3) if dropped else None,
        "last_dropped_after_s": round(dropped[-1], 3) if dropped else None,
    }


SCENARIOS: Final = {
    "burst": scenario_burst,
    "steady": scenario_steady,
    "idle": scenario_idle,
    "joins": scenario_joins,
    "slow": scenario_slow,
    "who": scenario_who,
}


def raise_nofile_limit() -> None:
    """Raise the soft open-files limit to the hard limit (thousands of sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; ``bench.py`` fills every size in."""
    p = argparse.ArgumentParser(description="chat server load generator (one JSON line out)")
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--server-pid", type=int, required=True)
    p.add_argument("--receivers", type=int, default=50)
    p.add_argument("--senders", type=int, default=5)
    p.add_argument("--lines", type=int, default=2000, help="burst: lines per sender")
    p.add_argument("--rounds", type=int, default=3, help="burst: rounds (median reported)")
    p.add_argument("--rate", type=float, default=1000.0, help="total lines/s (steady, slow)")
    p.add_argument("--all-send", action="store_true", help="steady: every client sends")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    p.add_argument("--duration", type=float, default=8.0, help="measurement window, s")
    p.add_argument("--duration2", type=float, default=8.0, help="slow: window with it, s")
    p.add_argument("--line-bytes", type=int, default=60, help="slow: chat text size")
    p.add_argument("--join-deadline", type=float, default=JOIN_DEADLINE_S, help="idle, joins, s")
    p.add_argument("--conns", type=int, default=1000, help="idle, joins: connections")
    p.add_argument("--members", type=int, default=1000, help="who: members online")
    p.add_argument("--spammers", type=int, default=10, help="who: /who senders that never read")
    p.add_argument("--timeout", type=float, default=240.0, help="give up after this long, s")
    p.add_argument(
        "--tls-ca",
        type=Path,
        help="connect over TLS, trusting this CA (burst, steady, idle; the server's TLS port)",
    )
    p.add_argument(
        "--heap-report",
        type=Path,
        help="idle: the file a server run by scripts/traced_server.py reports its heap in",
    )
    return p.parse_args(argv)


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    """Run one scenario under an overall deadline."""
    server = Server(args.server_pid, args.heap_report)
    async with asyncio.timeout(args.timeout):
        return await SCENARIOS[args.scenario](args, server)


def main(argv: list[str] | None = None) -> int:
    """Run the scenario and print its figures as one JSON object on one line."""
    args = parse_args(argv)
    raise_nofile_limit()
    if args.tls_ca is not None:
        global TLS
        TLS = ssl.create_default_context(cafile=str(args.tls_ca))
    # The records hold millions of small containers; a cyclic-GC pass over them stalls the
    # loop for 50-150 ms and shows up as server latency. This short-lived process makes no
    # reference cycles worth collecting, so the collector is off for the run.
    gc.disable()
    return run_and_report(amain(args))


def run_and_report(scenario: Coroutine[Any, Any, dict[str, Any]]) -> int:
    """Run ``scenario`` in asyncio; print its figures (plus our own time and CPU) as JSON."""
    t0 = time.monotonic()
    try:
        result = asyncio.run(scenario)
        result["ok"] = True
    except Exception as exc:  # report, never hang or crash silently
        result = {"ok": False, "error": repr(exc)}
    result["loadgen_s"] = round(time.monotonic() - t0, 2)
    with contextlib.suppress(Exception):
        ru = resource.getrusage(resource.RUSAGE_SELF)
        result["loadgen_cpu_s"] = round(ru.ru_utime + ru.ru_stime, 2)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
