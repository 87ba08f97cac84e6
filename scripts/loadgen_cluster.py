"""Load generator for the cluster scenario of ``scripts/bench.py``; prints one JSON line.

It drives one or two triochat nodes (``--ports A[,B]``) that may share one Redis
(``--redis-port``), reusing ``scripts/loadgen.py``'s clients, clock and records: every
process runs in one asyncio loop, every chat line carries its send time, and latency
is "read" minus "written" on this process's clock, whichever node each end is on.

With one port, node A and node B are the same node, so the same run measures a node
alone (with or without Redis) and two nodes sharing a Redis, and the figures compare.

1. **steady**: ``--senders`` members join node A and ``--receivers`` join node B; a few
   probe lines, one at a time, from A to B must arrive (else the nodes are not one chat)
   and give the idle latency. Then the senders say ``--rate`` lines/s in total; after
   ``--warmup`` and over ``--duration``: the receivers' latency (across nodes, with two),
   the senders' latency for each other's lines (on node A), CPU of each node and of
   Redis (psutil on their PIDs), and Redis's ``INFO commandstats`` over the window
   (``CONFIG RESETSTAT`` at its start).
2. **burst**: those members leave; ``--receivers`` + ``--senders`` new members join,
   alternating between the nodes; every sender writes ``--lines`` lines as fast as its
   socket takes them, ``--rounds`` times. Deliveries/s and lines/s (from the first send
   to the last delivery) of the median round, loss, node CPU per delivery and Redis CPU
   and command time per line over all rounds.

At the end, what Redis holds: memory used, keys, and entries in its streams.

Every wait has a deadline; the process exits on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any, Final

import loadgen
from loadgen import Client, Record, Server, now_ns

HOST: Final[str] = "127.0.0.1"  # loopback only, always
PROBES: Final[int] = 10  # idle latency: lines sent one at a time, A to B
PROBE_GAP_S: Final[float] = 0.02  # between probes (each is waited for first)
PROBE_TIMEOUT_S: Final[float] = 10.0  # the first probe may wait for a node's Redis reader
REDIS_TIMEOUT_S: Final[float] = 10.0  # one Redis command (INFO, SCAN, XLEN)
STREAMS_SHOWN: Final[int] = 8  # streams listed by name in the result
SCRIPT_COMMANDS: Final[frozenset[str]] = frozenset(
    {"evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro"}
)


class RedisError(Exception):
    """An error reply from Redis."""


class Redis:
    """Just enough of a RESP2 client for INFO, CONFIG RESETSTAT, SCAN, TYPE and XLEN."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Redis:
        """Connect to Redis on the loopback ``port``."""
        async with asyncio.timeout(REDIS_TIMEOUT_S):
            reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer)

    async def call(self, *args: str | int) -> Any:
        """Send one command, return its reply (bytes, int, str, list or None)."""
        parts = [str(a).encode() for a in args]
        out = [b"*%d\r\n" % len(parts)]
        for p in parts:
            out.append(b"$%d\r\n%s\r\n" % (len(p), p))
        self.writer.write(b"".join(out))
        async with asyncio.timeout(REDIS_TIMEOUT_S):
            await self.writer.drain()
            return await self._reply()

    async def _reply(self) -> Any:
        head = await self.reader.readuntil(b"\r\n")
        kind, rest = head[:1], head[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else (await self.reader.readexactly(size + 2))[:-2]
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [await self._reply() for _ in range(size)]
        raise RedisError(f"unexpected reply {head[:40]!r}")

    async def info(self, section: str) -> dict[str, str]:
        """``INFO section`` as ``{field: value}``."""
        text = (await self.call("INFO", section)).decode()
        fields = (line.partition(":") for line in text.splitlines() if ":" in line)
        return {k: v for k, _, v in fields}

    async def commandstats(self) -> dict[str, tuple[int, int]]:
        """Calls and microseconds of each command since the last ``CONFIG RESETSTAT``.

        Commands a script runs (``redis.call``) are counted under their own names too.
        """
        out: dict[str, tuple[int, int]] = {}
        for key, value in (await self.info("commandstats")).items():
            stats = dict(kv.split("=", 1) for kv in value.split(","))
            out[key.removeprefix("cmdstat_")] = (int(stats["calls"]), int(stats["usec"]))
        return out

    async def resetstat(self) -> None:
        """Zero the command statistics (``CONFIG RESETSTAT``)."""
        await self.call("CONFIG", "RESETSTAT")

    async def contents(self) -> dict[str, Any]:
        """What Redis holds now: memory used, keys, and the entries of every stream."""
        memory = await self.info("memory")
        streams: dict[str, int] = {}
        keys = 0
        cursor = "0"
        while True:
            cursor_b, batch = await self.call("SCAN", cursor, "COUNT", 1000)
            cursor = cursor_b.decode()
            for key in batch:
                keys += 1
                if await self.call("TYPE", key.decode()) == "stream":
                    streams[key.decode()] = await self.call("XLEN", key.decode())
            if cursor == "0":
                break
        biggest = sorted(streams.items(), key=lambda kv: -kv[1])[:STREAMS_SHOWN]
        return {
            "redis_used_memory_mb": round(int(memory.get("used_memory", 0)) / 2**20, 2),
            "redis_keys": keys,
            "redis_stream_entries": sum(streams.values()),
            "redis_streams": dict(biggest),
        }

    def close(self) -> None:
        """Drop the connection."""
        self.writer.close()


class Processes:
    """The nodes' and Redis's CPU time, read together at the edges of a window."""

    def __init__(self, node_pids: Sequence[int], redis_pid: int | None) -> None:
        self.nodes = [Server(pid) for pid in node_pids]
        self.redis = Server(redis_pid) if redis_pid else None

    def sample(self) -> dict[str, Any]:
        """CPU and CPU-wait seconds of every process now, and the time."""
        procs = [*self.nodes, *([self.redis] if self.redis else [])]
        return {
            "t": time.monotonic(),
            "cpu": [p.cpu_s() for p in procs],
            "wait": [p.cpu_wait_s() for p in procs],
        }

    def between(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        """CPU seconds per node and of Redis from sample ``a`` to sample ``b``."""
        n = len(self.nodes)
        cpu = [y - x for x, y in zip(a["cpu"], b["cpu"], strict=True)]
        wait = [y - x for x, y in zip(a["wait"], b["wait"], strict=True)]
        return {
            "wall_s": b["t"] - a["t"],
            "node_cpu_s": cpu[:n],
            "redis_cpu_s": cpu[n] if self.redis else None,
            "wait_s": sum(wait),
        }


OWN_COMMANDS: Final[frozenset[str]] = frozenset({"info", "config|resetstat"})  # ours, not chat


def commands_between(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]
) -> dict[str, tuple[int, int]]:
    """Calls and microseconds per command from ``before`` to ``after`` (both cumulative)."""
    out: dict[str, tuple[int, int]] = {}
    for cmd, (calls, usec) in after.items():
        c0, u0 = before.get(cmd, (0, 0))
        if calls - c0 > 0 and cmd not in OWN_COMMANDS:
            out[cmd] = (calls - c0, usec - u0)
    return out


def redis_figures(
    prefix: str, cmds: dict[str, tuple[int, int]] | None, lines: int, redis_cpu_s: float | None
) -> dict[str, Any]:
    """Per-line Redis figures of one window: command time, calls, CPU.

    A script's time includes the commands it runs, which ``INFO commandstats`` also
    counts under their own names; so Redis's time in commands per line is that of the
    scripts and of ``XREAD`` (the nodes' other calls are the heartbeat's, a script too).
    """
    if cmds is None:
        return {}
    per = max(1, lines)
    script_calls = sum(c for cmd, (c, _) in cmds.items() if cmd in SCRIPT_COMMANDS)
    script_us = sum(u for cmd, (_, u) in cmds.items() if cmd in SCRIPT_COMMANDS)
    xread, xread_us = cmds.get("xread", (0, 0))
    return {
        f"{prefix}redis_commands": {
            cmd: {"calls": c, "usec": u, "usec_per_call": round(u / c, 2)}
            for cmd, (c, u) in sorted(cmds.items(), key=lambda kv: -kv[1][1])
        },
        f"{prefix}redis_script_us_per_line": round(script_us / per, 2),
        f"{prefix}redis_xread_us_per_line": round(xread_us / per, 2),
        f"{prefix}redis_cmd_us_per_line": round((script_us + xread_us) / per, 2),
        f"{prefix}redis_cpu_us_per_line": (
            None if redis_cpu_s is None else round(1e6 * redis_cpu_s / per, 2)
        ),
        f"{prefix}lines_per_script_call": round(lines / script_calls, 2) if script_calls else None,
        f"{prefix}lines_per_xread": round(lines / xread, 2) if xread else None,
    }


async def join(
    ports: Sequence[int], names: Sequence[str], record: Record, place: Sequence[int]
) -> tuple[list[Client], list[str]]:
    """Join ``names[i]`` to ``ports[place[i]]``; return the clients (in order) and errors."""
    clients: dict[str, Client] = {}
    errors: list[str] = []
    for node, port in enumerate(ports):
        mine = [n for n, p in zip(names, place, strict=True) if p == node]
        if mine:
            joined, _, errs = await loadgen.connect_many(port, mine, record)
            clients.update((c.name, c) for c in joined)
            errors.extend(errs)
    return [clients[n] for n in names if n in clients], errors


async def probe(sender: Client, receivers: Sequence[Client]) -> list[tuple[float, float]]:
    """Send ``PROBES`` lines one at a time from ``sender``; for each, the time (ms) to
    reach the first receiver and every receiver. Raises if one does not arrive (the
    first one not arriving means the nodes are not one chat)."""
    out: list[tuple[float, float]] = []
    for i in range(PROBES):
        rec = Record()
        for c in receivers:
            c.record = rec
        t = now_ns()
        rec.sent.append(t)
        sender.send(loadgen.line(t))
        await loadgen.wait_delivered(rec, len(receivers), PROBE_TIMEOUT_S)
        if rec.delivered < len(receivers):
            raise RuntimeError(
                f"probe {i + 1}: {rec.delivered} of {len(receivers)} receivers got a line "
                f"within {PROBE_TIMEOUT_S:g} s (are the nodes sharing one Redis?)"
            )
        first = min(r for r, _ in rec.chunks)
        out.append(((first - t) / 1e6, (rec.last_recv - t) / 1e6))
        await asyncio.sleep(PROBE_GAP_S)
    return out


async def steady(args: argparse.Namespace, procs: Processes, redis: Redis | None) -> dict[str, Any]:
    """Senders on node A at a steady rate, receivers on node B: latency, CPU, Redis."""
    ports = args.ports
    recv_rec, send_rec = Record(), Record()
    send_rec.sent = recv_rec.sent  # both see every line sent
    r_names = [f"r{i}" for i in range(args.receivers)]
    s_names = [f"s{i}" for i in range(args.senders)]
    recv, e1 = await join(ports, r_names, recv_rec, [len(ports) - 1] * len(r_names))
    send, e2 = await join(ports, s_names, send_rec, [0] * len(s_names))
    everyone = [*recv, *send]
    try:
        if not recv or not send:
            raise RuntimeError(f"joined {len(recv)} receivers, {len(send)} senders: {e1 + e2}")
        await loadgen.wait_quiet(everyone)
        idle = await probe(send[0], recv)
        await loadgen.wait_quiet(everyone)
        send_rec = Record()  # without the probes
        send_rec.sent = recv_rec.sent
        for c in recv:
            c.record = recv_rec
        for c in send:
            c.record = send_rec
        per_sender = args.rate / len(send)
        start = now_ns() + 50_000_000
        lo = start + int(args.warmup * 1e9)
        hi = lo + int(args.duration * 1e9)
        async with asyncio.TaskGroup() as tg:
            for i, c in enumerate(send):
                offset = int(i * 1e9 / per_sender / len(send))  # spread the senders' ticks
                tg.create_task(loadgen.paced_sender(c, per_sender, start + offset, hi, recv_rec))
            await asyncio.sleep((lo - now_ns()) / 1e9)
            if redis is not None:
                await redis.resetstat()
            s0 = procs.sample()
            await asyncio.sleep((hi - now_ns()) / 1e9)
            s1 = procs.sample()
            cmds = await redis.commandstats() if redis is not None else None
            cmds = None if cmds is None else commands_between({}, cmds)
        expected = len(recv_rec.sent)
        await loadgen.wait_delivered(recv_rec, expected * len(recv), loadgen.DRAIN_TIMEOUT_S)
        await loadgen.wait_delivered(send_rec, expected * (len(send) - 1), loadgen.DRAIN_TIMEOUT_S)
    finally:
        loadgen.close_all(everyone)
    far = recv_rec.window(lo, hi, len(recv))
    near = send_rec.window(lo, hi, len(send) - 1)
    cpu = procs.between(s0, s1)
    delivered = far["delivered"] + near["delivered"]
    node_cpu = sum(cpu["node_cpu_s"])
    wall = cpu["wall_s"]
    return {
        "receivers": len(recv),
        "senders": len(send),
        "rate_lines_per_s": args.rate,
        "errors": (e1 + e2)[:5],
        # one line at a time, nothing else sent: to the first receiver, and to all of them
        "idle_first_p50_ms": round(statistics.median(f for f, _ in idle), 3),
        "idle_p50_ms": round(statistics.median(a for _, a in idle), 3),
        "idle_max_ms": round(max(a for _, a in idle), 3),
        "p50_ms": far["p50_ms"],
        "p99_ms": far["p99_ms"],
        "max_ms": far["max_ms"],
        "local_p50_ms": near["p50_ms"],
        "local_p99_ms": near["p99_ms"],
        "lines_sent": far["lines_sent"],
        "deliveries_per_s": round(delivered / args.duration, 1),
        "steady_loss": far["missing"] + near["missing"],
        "cpu_pct": round(100.0 * node_cpu / wall, 1),
        # per node, flat, so that bench.py takes the median of each over repetitions
        **{
            f"node_{ab}_cpu_pct": round(100.0 * c / wall, 1)
            for ab, c in zip("ab", cpu["node_cpu_s"], strict=False)
        },
        "redis_cpu_pct": (
            None if cpu["redis_cpu_s"] is None else round(100.0 * cpu["redis_cpu_s"] / wall, 1)
        ),
        "cpu_wait_pct": round(100.0 * cpu["wait_s"] / wall, 1),
        "cpu_us_per_delivery": round(1e6 * node_cpu / delivered, 3) if delivered else None,
        **{
            f"node_{ab}_cpu_us_per_line": round(1e6 * c / max(1, far["lines_sent"]), 1)
            for ab, c in zip("ab", cpu["node_cpu_s"], strict=False)
        },
        **redis_figures("", cmds, far["lines_sent"], cpu["redis_cpu_s"]),
    }


async def burst_round(
    args: argparse.Namespace, clients: Sequence[Client], send: Sequence[Client]
) -> dict[str, Any]:
    """One burst: every sender writes all its lines at once; figures for this round."""
    rec = Record()
    for c in clients:
        c.record = rec
    n = len(clients)
    async with asyncio.TaskGroup() as tg:
        for c in send:
            tg.create_task(loadgen.burst_sender(c, args.lines, rec))
    await loadgen.wait_delivered(rec, len(rec.sent) * (n - 1), loadgen.DRAIN_TIMEOUT_S)
    elapsed_s = max(1e-9, (rec.last_recv - rec.first_send) / 1e9)
    stats = rec.window(0, 2**63, n - 1)
    return {
        "deliveries_per_s": round(stats["delivered"] / elapsed_s, 1),
        "lines_per_s": round(stats["lines_sent"] / elapsed_s, 1),
        "elapsed_s": round(elapsed_s, 3),
        **stats,
    }


async def burst(args: argparse.Namespace, procs: Processes, redis: Redis | None) -> dict[str, Any]:
    """Members alternate between the nodes; every sender writes its lines at once."""
    ports = args.ports
    rec = Record()
    names = [*(f"br{i}" for i in range(args.receivers)), *(f"bs{i}" for i in range(args.senders))]
    clients, errors = await join(ports, names, rec, [i % len(ports) for i in range(len(names))])
    send = [c for c in clients if c.name.startswith("bs")]
    rounds: list[dict[str, Any]] = []
    try:
        if len(clients) < len(names):
            raise RuntimeError(f"{len(clients)} of {len(names)} joined: {errors[:3]}")
        await loadgen.wait_quiet(clients)
        if redis is not None:
            await redis.resetstat()
        s0 = procs.sample()
        for _ in range(args.rounds):
            rounds.append(await burst_round(args, clients, send))
            await asyncio.sleep(loadgen.BURST_PAUSE_S)
        s1 = procs.sample()
        cmds = await redis.commandstats() if redis is not None else None
        cmds = None if cmds is None else commands_between({}, cmds)
    finally:
        loadgen.close_all(clients)
    cpu = procs.between(s0, s1)
    median = sorted(rounds, key=lambda r: float(r["deliveries_per_s"]))[len(rounds) // 2]
    delivered = sum(int(r["delivered"]) for r in rounds)
    lines = sum(int(r["lines_sent"]) for r in rounds)
    node_cpu = sum(cpu["node_cpu_s"])
    return {
        "burst_members": len(clients),
        "burst_members_per_node": [
            sum(1 for i in range(len(names)) if i % len(ports) == node)
            for node in range(len(ports))
        ],
        "burst_deliveries_per_s": median["deliveries_per_s"],
        "burst_lines_per_s": median["lines_per_s"],
        "burst_elapsed_s": median["elapsed_s"],
        "burst_p50_ms": median["p50_ms"],
        "burst_p99_ms": median["p99_ms"],
        "burst_loss": sum(int(r["missing"]) for r in rounds),
        "burst_rounds_deliveries_per_s": [r["deliveries_per_s"] for r in rounds],
        # Over every round (and the pauses between them, when nothing is sent).
        "burst_deliveries_per_cpu_s": round(delivered / node_cpu, 1) if node_cpu else None,
        **{
            f"burst_node_{ab}_cpu_s": round(c, 3)
            for ab, c in zip("ab", cpu["node_cpu_s"], strict=False)
        },
        "burst_redis_cpu_s": None if cpu["redis_cpu_s"] is None else round(cpu["redis_cpu_s"], 3),
        "burst_cpu_wait_pct": round(100.0 * cpu["wait_s"] / cpu["wall_s"], 1),
        **redis_figures("burst_", cmds, lines, cpu["redis_cpu_s"]),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """The steady phase, then the burst, then what Redis holds."""
    procs = Processes(args.node_pids, args.redis_pid)
    redis = await Redis.open(args.redis_port) if args.redis_port else None
    try:
        result: dict[str, Any] = {"nodes": len(args.ports)}
        result.update(await steady(args, procs, redis))
        await asyncio.sleep(loadgen.QUIET_S)  # the leaves reach every node
        result.update(await burst(args, procs, redis))
        result["loss"] = result["steady_loss"] + result["burst_loss"]
        result["node_rss_mb"] = [round(p.rss_kb() / 1024, 1) for p in procs.nodes]
        if redis is not None:
            result.update(await redis.contents())
        return result
    finally:
        if redis is not None:
            redis.close()


def int_list(text: str) -> list[int]:
    """``"1,2"`` -> ``[1, 2]``."""
    return [int(x) for x in text.split(",") if x]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; ``bench.py`` fills every size in."""
    p = argparse.ArgumentParser(description="cluster load: nodes sharing Redis (one JSON line)")
    p.add_argument("--ports", type=int_list, required=True, help="node A's port[,node B's]")
    p.add_argument("--node-pids", type=int_list, required=True, help="their PIDs, same order")
    p.add_argument("--redis-port", type=int, default=0, help="Redis's port (0: no Redis)")
    p.add_argument("--redis-pid", type=int, default=0, help="Redis's PID, for its CPU time")
    p.add_argument("--receivers", type=int, default=50)
    p.add_argument("--senders", type=int, default=5)
    p.add_argument("--rate", type=float, default=1000.0, help="steady: total lines/s")
    p.add_argument("--warmup", type=float, default=1.0, help="steady: seconds before measuring")
    p.add_argument("--duration", type=float, default=8.0, help="steady: measurement window, s")
    p.add_argument("--lines", type=int, default=2000, help="burst: lines per sender")
    p.add_argument("--rounds", type=int, default=3, help="burst: rounds (median reported)")
    p.add_argument("--timeout", type=float, default=180.0, help="give up after this long, s")
    args = p.parse_args(argv)
    if not 1 <= len(args.ports) <= 2 or len(args.node_pids) != len(args.ports):
        p.error("--ports: one or two, and as many --node-pids")
    if args.senders < 2 or args.receivers < 1:
        p.error("at least 2 senders and 1 receiver")
    return args


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    """Run under an overall deadline."""
    async with asyncio.timeout(args.timeout):
        return await run(args)


def main(argv: list[str] | None = None) -> int:
    """Run the scenario and print its figures as one JSON object on one line."""
    args = parse_args(argv)
    loadgen.raise_nofile_limit()
    gc.disable()  # as loadgen.py: no collector pauses counted as server latency
    return loadgen.run_and_report(amain(args))


if __name__ == "__main__":
    sys.exit(main())
