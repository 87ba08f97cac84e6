"""What scraping ``/metrics`` costs a loaded server, and a picture of its fan-out latency.

``python scripts/scrape_cost.py [--members 1000] [--seconds 10] [--rate 200] [--svg PATH]``

Starts ``triochat server --db :memory: --metrics-port PORT`` on loopback, connects
``--members`` plain members (each reads and discards everything), then measures the
server's CPU (psutil, all threads) over three windows of ``--seconds`` each:

1. idle, nobody scrapes;
2. idle, ``/metrics`` scraped once a second (as a Prometheus with ``scrape_interval: 1s``);
3. steady: one more member says ``--rate`` lines a second to all of them, scraped each second.

It prints one JSON line: CPU percent of one core in each window, the scraping's share
(window 2 minus window 1, the figure the operators' issue bounds at 1 % for 1000
members), the CPU milliseconds per scrape, the scrape's size and latency, and where the
fan-out latency histogram fell under the steady load. With ``--svg`` it draws that
histogram (``triochat_fanout_latency_seconds``, one bar per bucket) into an SVG file:
the picture docs/operations.md shows. Both figures are same-run comparisons; absolute
CPU on a shared machine is noise.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import trio
from prometheus_client.parser import text_string_to_metric_families

START_TIMEOUT_S = 20.0
FANOUT = "triochat_fanout_latency_seconds"


def free_port() -> int:
    """A free loopback port (the server binds it a moment later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_server(port: int, metrics_port: int) -> subprocess.Popen[bytes]:
    """A fresh server on loopback: memory store, no web page, no per-address or rate limit."""
    args = [
        sys.executable, "-m", "triochat", "server", "--host", "127.0.0.1",
        "--port", str(port), "--web-port", "off", "--metrics-port", str(metrics_port),
        "--db", ":memory:", "--max-clients", "5000", "--max-per-address", "0",
        "--rate-limit", "0", "--log-level", "warning",
    ]  # fmt: skip
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def wait_listening(port: int) -> None:
    """Until the port takes connections (or the start timeout)."""
    with trio.fail_after(START_TIMEOUT_S):
        while True:
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
            except OSError:
                await trio.sleep(0.1)
                continue
            await stream.aclose()
            return


async def member(port: int, name: str, joined: trio.Semaphore) -> None:
    """One plain member: registers, then reads and discards everything until cancelled."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(f"/nick {name}\n".encode())
        joined.release()
        while await stream.receive_some(65536):
            pass


async def scrape(port: int) -> bytes:
    """One ``GET /metrics``: the body."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(
            b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"/metrics answered {head.splitlines()[:1]!r}")
    return body


def cpu_seconds(proc: psutil.Process) -> float:
    """The server's CPU time so far, user and system, all threads."""
    times = proc.cpu_times()
    return float(times.user + times.system)


class Scraper:
    """Scrapes once a second while running; keeps the sizes and latencies it saw."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sizes: list[int] = []
        self.latencies: list[float] = []
        self.last = b""

    async def run(self) -> None:
        while True:
            began = time.perf_counter()
            self.last = await scrape(self.port)
            self.latencies.append(time.perf_counter() - began)
            self.sizes.append(len(self.last))
            await trio.sleep(max(0.0, 1.0 - (time.perf_counter() - began)))


async def speaker(port: int, rate: float) -> None:
    """One member saying ``rate`` lines a second, paced by the clock, until cancelled."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"/nick speaker\n")
        start = trio.current_time()
        sent = 0
        async with trio.open_nursery() as nursery:

            async def drain() -> None:
                while await stream.receive_some(65536):
                    pass

            nursery.start_soon(drain)
            while True:
                sent += 1
                await stream.send_all(f"line {sent} of the steady load\n".encode())
                await trio.sleep_until(start + sent / rate)


async def window(proc: psutil.Process, seconds: float) -> float:
    """CPU percent of one core the server used over the next ``seconds``."""
    cpu0, t0 = cpu_seconds(proc), time.perf_counter()
    await trio.sleep(seconds)
    return 100.0 * (cpu_seconds(proc) - cpu0) / (time.perf_counter() - t0)


def fanout_buckets(body: bytes) -> list[tuple[float, int]]:
    """The fan-out histogram's buckets as (upper bound, count in that bucket alone)."""
    for family in text_string_to_metric_families(body.decode()):
        if family.name != FANOUT:
            continue
        cumulative = sorted(
            (float(s.labels["le"]), int(s.value))
            for s in family.samples
            if s.name == FANOUT + "_bucket"
        )
        out, before = [], 0
        for bound, count in cumulative:
            out.append((bound, count - before))
            before = count
        return out
    raise RuntimeError(f"{FANOUT} is not in /metrics")


def quantile(buckets: list[tuple[float, int]], q: float) -> float:
    """The bucket bound under which a ``q`` share of observations fell."""
    total = sum(c for _, c in buckets)
    seen = 0
    for bound, count in buckets:
        seen += count
        if total and seen >= q * total:
            return bound
    return math.inf


def draw(buckets: list[tuple[float, int]], path: Path, title: str) -> None:
    """One bar per bucket, labelled by its upper bound in milliseconds."""
    import matplotlib

    matplotlib.use("svg")
    import matplotlib.pyplot as plt

    labels = ["≤" + f"{b * 1000:g}" if math.isfinite(b) else ">" for b, _ in buckets]
    if labels and labels[-1] == ">" and len(buckets) > 1:
        labels[-1] = f">{buckets[-2][0] * 1000:g}"
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.bar(range(len(buckets)), [c for _, c in buckets], color="#4c72b0")
    ax.set_xticks(range(len(buckets)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_xlabel("fan-out latency, ms (line taken to output released to every member)")
    ax.set_ylabel("batches")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None})
    plt.close(fig)


async def measure(args: argparse.Namespace) -> dict[str, object]:
    port, metrics_port = free_port(), free_port()
    server = start_server(port, metrics_port)
    try:
        proc = psutil.Process(server.pid)
        await wait_listening(port)
        await wait_listening(metrics_port)
        async with trio.open_nursery() as nursery:
            joined = trio.Semaphore(0)
            for i in range(args.members):
                nursery.start_soon(member, port, f"m{i}", joined)
            for _ in range(args.members):
                await joined.acquire()
            await trio.sleep(3.0)  # the join burst is fanned out and read
            idle = await window(proc, args.seconds)
            scraper = Scraper(metrics_port)
            nursery.start_soon(scraper.run)
            idle_scraped = await window(proc, args.seconds)
            scrapes = len(scraper.sizes)
            nursery.start_soon(speaker, port, args.rate)
            await trio.sleep(1.0)
            steady = await window(proc, args.seconds)
            await trio.sleep(1.1)  # one more scrape, after the window
            nursery.cancel_scope.cancel()
        buckets = fanout_buckets(scraper.last)
        if args.svg:
            draw(
                buckets,
                args.svg,
                f"triochat fan-out latency: {args.members} members, "
                f"{args.rate:g} lines/s, scraped every second",
            )
        lat = sorted(scraper.latencies)
        return {
            "members": args.members,
            "seconds": args.seconds,
            "cpu_idle_pct": round(idle, 2),
            "cpu_idle_scraped_pct": round(idle_scraped, 2),
            "scrape_share_pct": round(idle_scraped - idle, 2),
            "cpu_ms_per_scrape": round(10.0 * (idle_scraped - idle) * args.seconds / scrapes, 2)
            if scrapes
            else None,
            "cpu_steady_scraped_pct": round(steady, 2),
            "scrape_bytes": scraper.sizes[-1] if scraper.sizes else 0,
            "scrape_latency_ms_p50": round(1000 * lat[len(lat) // 2], 2) if lat else None,
            "fanout_p50_ms_le": quantile(buckets, 0.5) * 1000,
            "fanout_p99_ms_le": quantile(buckets, 0.99) * 1000,
            "fanout_batches": sum(c for _, c in buckets),
        }
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1000, help="plain members (1000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="each window (10 s)")
    parser.add_argument("--rate", type=float, default=200.0, help="steady lines/s (200)")
    parser.add_argument("--svg", type=Path, help="draw the fan-out histogram into this SVG")
    args = parser.parse_args()
    if args.members < 1 or args.seconds <= 0 or args.rate <= 0:
        parser.error("--members, --seconds and --rate must be positive")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    print(json.dumps(trio.run(measure, args)))


if __name__ == "__main__":
    main()
