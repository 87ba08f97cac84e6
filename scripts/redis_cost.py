"""What a node's link to Redis costs per chat line, without the chat around it.

``python scripts/redis_cost.py`` (in the bench session's environment: hiredis, coredis, psutil).

The cluster scenario of ``scripts/bench.py`` measures whole nodes, which on a small
machine share one CPU with each other and with Redis. This measures the part of a node
between its chat state and Redis alone: :class:`triochat.bus.redis_bus.RedisBus`, the
node's own code and client (hiredis over a trio stream), with nothing else running:

1. a fresh ``redis-server`` on a free loopback port (no persistence) on CPU 0, this
   process on CPU 1 (when there are two);
2. one bus joins, as a node does, and a member claims its name;
3. **round trip**: ``--probes`` lines, one at a time: from handing a line to the bus
   (``publish``, as the hub does) to the bus delivering it back numbered (the PUBLISH
   script, then the ``XREAD`` the bus's reader was blocked in);
4. **batches**: for each batch size B, ``--lines`` lines handed over B at a time (the
   next B once the last are back): this process's CPU per line (JSON, the script call,
   ``XREAD``, parsing: what a node pays per line besides delivering it), Redis's CPU per
   line (psutil), and Redis's time per script call and per ``XREAD``
   (``INFO commandstats``);
5. **client**: this process's CPU per call of the node's client (``RedisLink``) and of
   coredis under trio for ``PING``, a one-line ``EVALSHA`` and a one-entry ``XREAD``,
   against a bare trio socket sending ``PING`` and reading ``+PONG``: what the client
   adds per round trip.

It prints a table and one JSON line; every wait has a deadline.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import psutil
import trio
from bench import HOST, LOADGEN_CPU, SERVER_CPU, RunningRedis

from triochat.bus.redis_bus import RedisBus
from triochat.bus.redis_link import RedisLink
from triochat.core import cluster

ROOM: Final = "#lobby"
NAME: Final = "costbench"
WAIT_S: Final = 10.0  # one batch (or one probe) back from Redis
TEXT: Final = "the quick brown fox jumps over the lazy dog"  # as the load generators say


def redis_call(port: int, *args: str) -> bytes:
    """One command on a fresh connection; the raw reply (enough for INFO and CONFIG)."""
    parts = [a.encode() for a in args]
    request = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
    with socket.create_connection((HOST, port), timeout=WAIT_S) as sock:
        sock.sendall(request)
        data = b""
        while True:
            chunk = sock.recv(65536)
            data += chunk
            if not chunk or (data.startswith((b"+", b"-")) and data.endswith(b"\r\n")):
                return data
            if data.startswith(b"$"):
                head, _, rest = data.partition(b"\r\n")
                if len(rest) >= int(head[1:]) + 2:
                    return rest[: int(head[1:])]


def commandstats(port: int) -> dict[str, tuple[int, int]]:
    """Calls and microseconds per command since the last ``CONFIG RESETSTAT``."""
    out: dict[str, tuple[int, int]] = {}
    for line in redis_call(port, "INFO", "commandstats").decode().splitlines():
        if line.startswith("cmdstat_"):
            name, _, value = line.partition(":")
            stats = dict(kv.split("=", 1) for kv in value.split(","))
            out[name.removeprefix("cmdstat_")] = (int(stats["calls"]), int(stats["usec"]))
    return out


def cpu_s() -> float:
    """This process's CPU seconds so far (every thread)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class Sink:
    """The hub's side of the bus: counts the lines delivered back, wakes the waiter."""

    def __init__(self) -> None:
        self.count = 0
        self.want = 0
        self.last_ns = 0
        self.refused = 0
        self.arrived = trio.Event()

    async def deliver(self, items: list[cluster.ClusterIn]) -> None:
        """What the bus read from Redis (the node's ``deliver``)."""
        for item in items:
            if isinstance(item, cluster.Sequenced):
                self.count += 1
            elif isinstance(item, cluster.Backlog):  # a read of more than CATCH_UP lines
                self.count += len(item.lines)
            elif isinstance(item, cluster.Refused):
                self.refused += 1
        self.last_ns = time.perf_counter_ns()
        if self.count >= self.want:
            self.arrived.set()

    async def wait(self, want: int) -> None:
        """Until ``want`` lines in all have come back (``WAIT_S`` at most)."""
        self.want = want
        with trio.fail_after(WAIT_S):
            while self.count < want:
                self.arrived = trio.Event()
                await self.arrived.wait()


def line(i: int) -> cluster.Line:
    """Chat line ``i`` of the member (connection 1), as a node's state publishes it."""
    return cluster.Line(1, NAME, NAME, ROOM, "say", f"@{i} {TEXT}", time.time(), 0)


async def measure(args: argparse.Namespace, redis: RunningRedis) -> dict[str, Any]:
    """Join, claim the name, then the round trips and the batches."""
    bus = RedisBus(redis.url, node="cost", room_retain=10_000)
    sink = Sink()
    redis_proc = psutil.Process(redis.proc.pid)
    out: dict[str, Any] = {"probes": args.probes, "lines_per_size": args.lines, "sizes": {}}
    async with trio.open_nursery() as nursery:
        with trio.fail_after(WAIT_S):
            await nursery.start(bus.run, sink.deliver, {ROOM: 0})
        bus.publish([cluster.Arrive(1, NAME, NAME, (ROOM,))])
        await trio.sleep(0.2)  # the name is claimed before the first line
        sent = 0
        rtts: list[float] = []
        for _ in range(args.probes):
            t = time.perf_counter_ns()
            bus.publish([line(sent)])
            sent += 1
            await sink.wait(sent)
            rtts.append((sink.last_ns - t) / 1e6)
        rtts.sort()
        out["rtt_p50_ms"] = round(statistics.median(rtts), 3)
        out["rtt_p99_ms"] = round(rtts[min(len(rtts) - 1, int(0.99 * len(rtts)))], 3)
        for size in args.sizes:
            batches = max(1, args.lines // size)
            redis_call(redis.port, "CONFIG", "RESETSTAT")
            c0, r0, t0 = cpu_s(), sum(redis_proc.cpu_times()[:2]), time.perf_counter()
            for _ in range(batches):
                bus.publish([line(sent + i) for i in range(size)])
                sent += size
                await sink.wait(sent)
            c1, r1, t1 = cpu_s(), sum(redis_proc.cpu_times()[:2]), time.perf_counter()
            stats = commandstats(redis.port)
            n = batches * size
            script_calls, script_us = stats.get("evalsha", (0, 0))
            xread_calls, xread_us = stats.get("xread", (0, 0))
            out["sizes"][str(size)] = {
                "lines": n,
                "ms_per_batch": round(1e3 * (t1 - t0) / batches, 3),
                "node_cpu_us_per_line": round(1e6 * (c1 - c0) / n, 2),
                "redis_cpu_us_per_line": round(1e6 * (r1 - r0) / n, 2),
                "script_calls": script_calls,
                "script_us_per_call": round(script_us / max(1, script_calls), 2),
                "xread_calls": xread_calls,
                "xread_us_per_call": round(xread_us / max(1, xread_calls), 2),
                "xadd_us_per_call": round(
                    stats.get("xadd", (0, 0))[1] / max(1, stats.get("xadd", (0, 1))[0]), 2
                ),
            }
        out["refused"] = sink.refused
        nursery.cancel_scope.cancel()
    out["client"] = await client_costs(redis.port, args.calls)
    return out


async def client_costs(port: int, calls: int) -> dict[str, float]:
    """CPU microseconds per call: the node's client (RedisLink), coredis (its client
    until the hiredis link) and a bare trio socket."""
    import coredis

    out: dict[str, float] = {}
    stream = await trio.open_tcp_stream(HOST, port)
    async with stream:
        c0 = cpu_s()
        for _ in range(calls):
            await stream.send_all(b"*1\r\n$4\r\nPING\r\n")
            reply = b""
            while not reply.endswith(b"\r\n"):
                reply += await stream.receive_some(4096)
        out["bare_socket_ping_us"] = round(1e6 * (cpu_s() - c0) / calls, 1)
    link = RedisLink(f"redis://{HOST}:{port}/0")
    async with link:
        link.register("cost", "return redis.call('XADD', 'cost:write', '*', 'e', ARGV[1])")
        await link.call("XADD", "cost:read", "*", "e", TEXT)
        body = json.dumps([cluster.to_wire(line(0))])
        link_calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "node_link_ping_us": lambda: link.ping(),
            "node_link_evalsha_us": lambda: link.script("cost", [body]),
            "node_link_xread_us": lambda: link.xread({"cost:read": "0-0"}, 1, 0),
        }
        for name, call in link_calls.items():
            await call()  # the script is loaded, the connection made
            c0 = cpu_s()
            for _ in range(calls):
                await call()
            out[name] = round(1e6 * (cpu_s() - c0) / calls, 1)
    client: coredis.Redis[str] = coredis.Redis.from_url(
        f"redis://{HOST}:{port}/0", decode_responses=True
    )
    async with client:
        script = client.register_script("redis.call('XADD', KEYS[1], '*', 'e', ARGV[1])")
        await client.xadd("cost:read", {"e": TEXT})
        body = json.dumps([cluster.to_wire(line(0))])
        calls_of: dict[str, Callable[[], Awaitable[Any]]] = {
            "coredis_ping_us": lambda: client.ping(),
            "coredis_evalsha_us": lambda: script(keys=["cost:write"], args=[body]),
            "coredis_xread_us": lambda: client.xread({"cost:read": "0-0"}, count=1),
        }
        for name, call in calls_of.items():
            await call()  # the script is loaded, the connection made
            c0 = cpu_s()
            for _ in range(calls):
                await call()
            out[name] = round(1e6 * (cpu_s() - c0) / calls, 1)
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description="a node's Redis link alone: cost per line")
    p.add_argument("--probes", type=int, default=500, help="single lines, one at a time")
    p.add_argument("--lines", type=int, default=10_000, help="lines per batch size")
    p.add_argument("--calls", type=int, default=3000, help="client: calls of each kind")
    p.add_argument(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 2, 10, 100, 500],
        help="batch sizes (at most 512: one PUBLISH call each)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start Redis, measure, print a table and one JSON line, stop Redis."""
    args = parse_args(argv)
    allowed = os.sched_getaffinity(0)
    if len(allowed) >= 2 and LOADGEN_CPU in allowed:
        os.sched_setaffinity(0, {LOADGEN_CPU})  # Redis gets SERVER_CPU to itself
    with tempfile.TemporaryDirectory(prefix="triochat-redis-cost-") as tmp:
        redis = RunningRedis(Path(tmp), "cost", SERVER_CPU)
        try:
            result = trio.run(measure, args, redis)
        finally:
            redis.stop()
    result["redis_persistence"] = redis.persistence
    print(
        f"round trip, one line at a time: p50 {result['rtt_p50_ms']} ms, "
        f"p99 {result['rtt_p99_ms']} ms ({args.probes} lines)"
    )
    print("batch  ms/batch  node CPU us/line  Redis CPU us/line  script us/call  XREAD us/call")
    for size, s in result["sizes"].items():
        print(
            f"{size:>5}  {s['ms_per_batch']:>8}  {s['node_cpu_us_per_line']:>16}  "
            f"{s['redis_cpu_us_per_line']:>17}  {s['script_us_per_call']:>14}  "
            f"{s['xread_us_per_call']:>13}"
        )
    client = ", ".join(f"{k.removesuffix('_us')} {v} us" for k, v in result["client"].items())
    print(f"client CPU per call: {client}")
    with contextlib.suppress(BrokenPipeError):
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
