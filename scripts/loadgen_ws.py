"""Load generator for the mixed TCP + WebSocket steady scenario; prints one JSON line.

``scripts/bench.py`` runs it against ``triochat server`` (both its chat port and its
web port); it also runs by hand::

    python scripts/loadgen_ws.py --port P --web-port W --server-pid PID

Every member speaks the JSON protocol, so the two kinds differ only in the transport:
TCP members send and read JSON lines; WebSocket members do the browser's part of the
handshake on ``/ws`` and send and read one JSON event per text message. Like
``scripts/loadgen.py`` (whose clock, records and server probe this reuses) everything
runs in one asyncio process with protocol callbacks, every chat line carries its send
time, and latency is "read" minus "written" on one clock.

The run (sizes from the command line; bench.py's defaults in ``--help``):

1. ``--receivers`` + ``--senders`` members of each kind join; each kind also joins a
   room of its own (``#tcp``, ``#ws``); everyone is in ``#lobby``.
2. **tcp window**: the TCP senders say ``--rate`` lines/s in ``#tcp``; only TCP members
   receive them. Server CPU seconds over the window / lines delivered = the server's
   CPU per delivered message to a TCP member.
3. **ws window**: the same in ``#ws`` with the WebSocket senders and members.
4. **mixed window**: all senders, ``--rate`` lines/s in total, in ``#lobby``: both kinds
   receive every line; latency percentiles per kind, under the same load.

Every wait has a deadline; the process exits on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import itertools
import json
import os
import re
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any, Final

import loadgen
from loadgen import Record, Server, now_ns

HOST: Final[str] = "127.0.0.1"  # loopback only, always
STAMP_RE: Final = re.compile(rb'"text":"@(\d+)')  # a stamped say event, either transport
LINE_TEXT: Final[str] = "the quick brown fox jumps over the lazy dog"
WS_MASK: Final[bytes] = b"\x00\x00\x00\x00"  # clients must mask; a zero key costs no XOR
CONNECT_TIMEOUT_S: Final[float] = 10.0  # one connect + welcome
JOIN_DEADLINE_S: Final[float] = 60.0  # all joins
DRAIN_TIMEOUT_S: Final[float] = 5.0  # after a window's last send, wait this long for deliveries
HANDSHAKE_BYTES: Final[int] = 16384  # a 101 response head is far smaller
KINDS: Final[tuple[str, ...]] = ("tcp", "ws")


def ws_frame(payload: bytes) -> bytes:
    """One masked (zero key) text frame, as a browser sends it."""
    size = len(payload)
    if size < 126:
        head = bytes((0x81, 0x80 | size))
    elif size < 65536:
        head = bytes((0x81, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x81, 0x80 | 127)) + size.to_bytes(8, "big")
    return head + WS_MASK + payload


def request_line(room: str, stamp: int) -> bytes:
    """A say request carrying its send time."""
    return b'{"type":"say","room":"%s","text":"@%d %s"}' % (
        room.encode(),
        stamp,
        LINE_TEXT.encode(),
    )


class Member(asyncio.BufferedProtocol):
    """One JSON-mode member; subclasses say how its bytes are framed."""

    kind = "tcp"

    def __init__(self, name: str, record: Record) -> None:
        loop = asyncio.get_running_loop()
        self.name = name
        self.record = record
        self.transport: asyncio.Transport | None = None
        self.buffer = memoryview(bytearray(256 * 1024))
        self.tail = b""
        self.bytes_in = 0
        self.welcomed: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        """Where the next recv goes."""
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` arrived: copy them out and handle them."""
        self.data_received(bytes(self.buffer[:nbytes]))

    def data_received(self, data: bytes) -> None:
        """Complete messages only; the rest waits for more."""
        t = now_ns()
        self.bytes_in += len(data)
        messages = self.complete(data)
        if not messages:
            return
        stamps = STAMP_RE.findall(messages)
        if stamps:
            rec = self.record
            rec.chunks.append((t, stamps))
            rec.delivered += len(stamps)
            rec.last_recv = t
            rec.progress.set()
        if not self.welcomed.done() and b'"type":"welcome"' in messages:
            self.welcomed.set_result(None)

    def complete(self, data: bytes) -> bytes:
        """The complete lines in ``tail + data``; keeps the partial last one."""
        if self.tail:
            data = self.tail + data
        cut = data.rfind(b"\n") + 1
        self.tail = data[cut:]
        return data[:cut]

    def connection_lost(self, exc: Exception | None) -> None:
        """Wake anyone waiting on this member."""
        if not self.closed.done():
            self.closed.set_result(None)
        if not self.welcomed.done():
            self.welcomed.set_exception(ConnectionError(f"{self.name}: closed before welcome"))

    def send_requests(self, requests: Sequence[bytes]) -> None:
        """Write JSON requests (one line each)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"\n".join(requests) + b"\n")


class WsMember(Member):
    """A WebSocket member: frames in, frames out (the handshake is done before)."""

    kind = "ws"

    def complete(self, data: bytes) -> bytes:
        """The payloads of the complete frames in ``tail + data``, joined by newlines.

        The server sends unmasked, unfragmented text frames, one event each.
        """
        if self.tail:
            data = self.tail + data
        out: list[bytes] = []
        at = 0
        end = len(data)
        while end - at >= 2:
            size = data[at + 1] & 0x7F
            head = 2
            if size == 126:
                if end - at < 4:
                    break
                size = int.from_bytes(data[at + 2 : at + 4], "big")
                head = 4
            elif size == 127:
                if end - at < 10:
                    break
                size = int.from_bytes(data[at + 2 : at + 10], "big")
                head = 10
            if end - at < head + size:
                break
            out.append(data[at + head : at + head + size])
            at += head + size
        self.tail = data[at:]
        return b"\n".join(out) + b"\n" if out else b""

    def send_requests(self, requests: Sequence[bytes]) -> None:
        """Write JSON requests, one text frame each."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(ws_frame(r) for r in requests))


async def ws_handshake(sock: socket.socket, port: int) -> bytes:
    """Do the browser's part of the upgrade on ``sock``; return bytes read past the head."""
    loop = asyncio.get_running_loop()
    key = base64.b64encode(os.urandom(16))
    host = f"{HOST}:{port}".encode()
    await loop.sock_sendall(
        sock,
        b"GET /ws HTTP/1.1\r\nHost: %s\r\nOrigin: http://%s\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n"
        % (host, host, key),
    )
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await loop.sock_recv(sock, HANDSHAKE_BYTES)
        if not chunk:
            raise ConnectionError("closed during the WebSocket handshake")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(f"upgrade refused: {head[:60]!r}")
    return rest


async def connect(kind: str, port: int, name: str, record: Record, room: str) -> Member:
    """Open one member of ``kind``, say hello, wait for the welcome, join ``room``."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            await loop.sock_connect(sock, (HOST, port))
            early = await ws_handshake(sock, port) if kind == "ws" else b""
            factory = WsMember if kind == "ws" else Member
            _, member = await loop.create_connection(lambda: factory(name, record), sock=sock)
            if early:
                member.data_received(early)
            hello = json.dumps({"type": "hello", "name": name}).encode()
            member.send_requests([hello])
            await member.welcomed
            member.send_requests([json.dumps({"type": "join", "room": room}).encode()])
    except BaseException:
        sock.close()
        raise
    return member


async def paced_sender(
    member: Member, room: str, rate: float, start: int, end: int, records: Sequence[Record]
) -> None:
    """Say lines in ``room`` at ``rate`` per second from ``start`` to ``end`` (ns).

    The stamp is the time of the write; every record that will receive the line notes it.
    """
    period = 1e9 / rate
    due = float(start)
    while due < end and not member.closed.done():
        wait = (due - now_ns()) / 1e9
        if wait > 0:
            await asyncio.sleep(wait)
        t = now_ns()
        k = 0
        while due <= t and due < end:
            due += period
            k += 1
        if k:
            member.send_requests([request_line(room, t)] * k)
            for record in records:
                record.sent.extend(itertools.repeat(t, k))


async def quiet(members: Sequence[Member]) -> None:
    """Wait until nobody has read a byte for a moment (the joins have settled)."""
    await loadgen.wait_quiet(members)  # type: ignore[arg-type]  # duck-typed: bytes_in


async def window(
    args: argparse.Namespace,
    server: Server,
    senders: Sequence[tuple[Member, str]],
    receivers: dict[str, list[Member]],
) -> dict[str, Any]:
    """One measured window: ``senders`` (member, room) at ``--rate`` in total.

    ``receivers`` are the members, by kind, that receive every line. Returns server CPU
    over the window and, per kind, latency and CPU per delivered message.
    """
    records = {kind: Record() for kind in receivers}
    for kind, members in receivers.items():
        for member in members:
            member.record = records[kind]
    per_sender = args.rate / len(senders)
    start = now_ns() + 50_000_000
    lo = start + int(args.warmup * 1e9)
    hi = lo + int(args.duration * 1e9)
    async with asyncio.TaskGroup() as tg:
        for i, (member, room) in enumerate(senders):
            offset = int(i * 1e9 / per_sender / len(senders))
            tg.create_task(
                paced_sender(member, room, per_sender, start + offset, hi, list(records.values()))
            )
        await asyncio.sleep((lo - now_ns()) / 1e9)
        cpu0 = server.cpu_s()
        await asyncio.sleep((hi - now_ns()) / 1e9)
        cpu1 = server.cpu_s()
    for kind, record in records.items():
        await loadgen.wait_delivered(
            record, len(record.sent) * len(receivers[kind]), DRAIN_TIMEOUT_S
        )
    cpu_s = cpu1 - cpu0
    total = 0
    out: dict[str, Any] = {"cpu_pct": round(100.0 * cpu_s / args.duration, 1)}
    for kind, record in records.items():
        stats = record.window(lo, hi, len(receivers[kind]))
        total += stats["delivered"]
        out[kind] = {"members": len(receivers[kind]), **stats}
    out["deliveries_per_s"] = round(total / args.duration, 1)
    out["cpu_us_per_delivery"] = round(1e6 * cpu_s / total, 3) if total else None
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Join everyone, then the tcp, ws and mixed windows."""
    server = Server(args.server_pid)
    ports = {"tcp": args.port, "ws": args.web_port}
    members: dict[str, list[Member]] = {kind: [] for kind in KINDS}
    errors: list[str] = []
    gate = asyncio.Semaphore(loadgen.CONNECT_CONCURRENCY)
    count = args.receivers + args.senders

    async def one(kind: str, i: int) -> None:
        async with gate:
            try:
                member = await connect(kind, ports[kind], f"{kind}{i}", Record(), f"#{kind}")
            except (OSError, TimeoutError) as exc:
                errors.append(f"{kind}{i}: {exc!r}")
                return
            members[kind].append(member)

    t0 = time.monotonic()
    async with asyncio.timeout(JOIN_DEADLINE_S), asyncio.TaskGroup() as tg:
        for kind in KINDS:
            for i in range(count):
                tg.create_task(one(kind, i))
    join_s = time.monotonic() - t0
    everyone = [m for kind in KINDS for m in members[kind]]
    await quiet(everyone)
    for kind in KINDS:
        members[kind].sort(key=lambda m: int(m.name[len(kind) :]))
    talkers = {kind: members[kind][args.receivers :] for kind in KINDS}
    result: dict[str, Any] = {
        "members": {kind: len(members[kind]) for kind in KINDS},
        "senders_per_kind": args.senders,
        "rate_lines_per_s": args.rate,
        "join_s": round(join_s, 3),
        "errors": errors[:5],
    }
    try:
        for kind in KINDS:
            senders = [(m, f"#{kind}") for m in talkers[kind]]
            result[kind] = await window(args, server, senders, {kind: members[kind]})
            await quiet(everyone)
        mixed = [(m, "#lobby") for kind in KINDS for m in talkers[kind]]
        result["mixed"] = await window(args, server, mixed, members)
    finally:
        for member in everyone:
            if member.transport is not None:
                member.transport.abort()
    tcp, ws, mixed = result["tcp"], result["ws"], result["mixed"]
    # Flat figures for bench.py's table and medians (the windows above keep the detail).
    result.update(
        tcp_p50_ms=tcp["tcp"]["p50_ms"],
        tcp_p99_ms=tcp["tcp"]["p99_ms"],
        ws_p50_ms=ws["ws"]["p50_ms"],
        ws_p99_ms=ws["ws"]["p99_ms"],
        mixed_tcp_p99_ms=mixed["tcp"]["p99_ms"],
        mixed_ws_p99_ms=mixed["ws"]["p99_ms"],
        tcp_cpu_us_per_delivery=tcp["cpu_us_per_delivery"],
        ws_cpu_us_per_delivery=ws["cpu_us_per_delivery"],
        cpu_pct=mixed["cpu_pct"],
        loss=sum(w[kind]["missing"] for w in (tcp, ws, mixed) for kind in KINDS if kind in w),
    )
    result["ws_over_tcp"] = {
        "cpu_per_delivery": ratio(ws["cpu_us_per_delivery"], tcp["cpu_us_per_delivery"]),
        "p99_own_room": ratio(ws["ws"]["p99_ms"], tcp["tcp"]["p99_ms"]),
        "p99_mixed": ratio(result["mixed"]["ws"]["p99_ms"], result["mixed"]["tcp"]["p99_ms"]),
    }
    result["ws_tcp_cpu_ratio"] = result["ws_over_tcp"]["cpu_per_delivery"]
    result["ws_tcp_p99_ratio"] = result["ws_over_tcp"]["p99_own_room"]
    result["ws_tcp_mixed_p99_ratio"] = result["ws_over_tcp"]["p99_mixed"]
    return result


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b`` rounded, or None when either is missing or ``b`` is 0."""
    return None if a is None or b is None or b == 0 else round(a / b, 2)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; ``bench.py`` fills every size in."""
    p = argparse.ArgumentParser(description="mixed TCP + WebSocket steady load (one JSON line)")
    p.add_argument("--port", type=int, required=True, help="the chat (TCP) port")
    p.add_argument("--web-port", type=int, required=True, help="the web (WebSocket) port")
    p.add_argument("--server-pid", type=int, required=True)
    p.add_argument("--receivers", type=int, default=25, help="receiving members per kind")
    p.add_argument("--senders", type=int, default=3, help="sending members per kind")
    p.add_argument("--rate", type=float, default=1000.0, help="total lines/s in each window")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    p.add_argument("--duration", type=float, default=6.0, help="each measurement window, s")
    p.add_argument("--timeout", type=float, default=180.0, help="give up after this long, s")
    return p.parse_args(argv)


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
