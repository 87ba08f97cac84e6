"""Count what one burst line costs a server, independent of machine load.

Starts a triochat server from a checkout (``--checkout DIR``, the package folder's
parent; default this one) on a loopback port, joins ``--receivers`` + ``--senders``
plain clients (blocking sockets, one process), then drives a *lockstep* burst: each
step every sender writes ``--step`` lines in one write, and the next step starts only
when every member has read all of them. While the senders write, the server is stopped
(SIGSTOP, then SIGCONT): it wakes to find every sender's lines waiting, so each step is
one hub batch whatever the load (``--no-freeze``: without the stop, where a sender's
lines that arrive late make a batch of their own, and runs on a busy machine spread by
10 %). The counts then repeat run after run.

Two ways of counting (pick one):

- ``--callgrind``: the server runs under ``valgrind --tool=callgrind``; the script runs
  twice, with ``--base-lines`` and with ``--lines`` lines per sender, and prints
  instructions per line and per delivery from the difference (joins, start-up,
  shutdown and the interpreter's warm-up cancel out).
- ``--cprofile``: the server runs under ``cProfile``, twice likewise, and prints each
  function's calls per line (difference of the two runs), most-called first.

Without either it runs once and prints the server's CPU seconds per delivery (noisy).

    python scripts/burst_count.py --callgrind
    python scripts/burst_count.py --callgrind --checkout ../old-checkout
    python scripts/burst_count.py --cprofile --lines 2000
    python scripts/burst_count.py --callgrind --redis --step 200   # one node with Redis
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pstats
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

HOST: Final = "127.0.0.1"
SERVER_FLAGS: Final = ("--rate-limit", "0", "--send-queue", "16384", "--log-level", "warning")
LINE: Final = b"the quick brown fox jumps over the lazy dog 0123456789"
START_TIMEOUT_S: Final = 300.0  # python under valgrind starts slowly
STEP_TIMEOUT_S: Final = 300.0
IDLE_S: Final = 0.5  # twice in a row no CPU used for this long: the server is idle


def extra_path() -> list[str]:
    """Whatever PYTHONPATH this script was given comes after the checkout."""
    return [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def server_flags(checkout: Path) -> list[str]:
    """The flags the burst uses; ``--web-port off`` where the checkout has a web port."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(checkout), *extra_path()])}
    helptext = subprocess.run(
        [sys.executable, "-m", "triochat", "server", "--help"],
        env=env,
        cwd=checkout,  # ``python -m`` imports from the working folder first
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    extra = [x for f in ("--web-port", "--metrics-port") if f in helptext for x in (f, "off")]
    if "--db" in helptext:
        extra += ["--db", ":memory:"]  # as the bench runs it
    return [*SERVER_FLAGS, *extra]


@contextlib.contextmanager
def server(
    checkout: Path, port: int, wrapper: list[str], redis: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    """The server under ``wrapper``; stopped with SIGINT (so profilers write their output).

    String hashing is seeded the same every run (dict probes then repeat: a random seed
    moved a run by up to 1.7k instructions per line in dict lookups alone). With
    ``redis``, a node of a one-node cluster: a fresh ``redis-server`` (no persistence)
    on a free loopback port, stopped after the node.
    """
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(checkout), *extra_path()]),
        "PYTHONHASHSEED": "0",
    }
    cmd = [*wrapper, "-m", "triochat", "server", "--host", HOST, "--port", str(port)]
    flags = server_flags(checkout)
    with contextlib.ExitStack() as stack:
        if redis:
            from bench import RunningRedis  # (scripts/ is this script's folder)

            log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            running = RunningRedis(log_dir, "burst-count")
            stack.callback(running.stop)
            flags += ["--redis", running.url]
        proc = subprocess.Popen([*cmd, *flags], env=env, cwd=checkout)
        yield from _serving(proc, port)


def _serving(proc: subprocess.Popen[bytes], port: int) -> Iterator[subprocess.Popen[bytes]]:
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("server did not start") from None
                time.sleep(0.2)
        yield proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def read_until(sock: socket.socket, marker: bytes) -> None:
    got = b""
    while marker not in got:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("closed before " + marker.decode())
        got += chunk


def burst(
    port: int, receivers: int, senders: int, lines: int, step: int, freeze: int | None = None
) -> None:
    """Join everyone, let the notices settle, run the lockstep burst, disconnect.

    ``freeze``: the server's process id, stopped while the senders write each step.
    """
    names = [f"r{i}" for i in range(receivers)] + [f"s{i}" for i in range(senders)]
    socks: list[socket.socket] = []
    for name in names:
        s = socket.create_connection((HOST, port), timeout=STEP_TIMEOUT_S)
        s.sendall(b"/nick %s\n" % name.encode())
        read_until(s, b"* welcome")
        socks.append(s)
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    drain(sel, socks, {s: 0 for s in socks}, quiet_s=1.0)
    send = socks[receivers:]
    done = 0
    while done < lines:
        k = min(step, lines - done)
        want = {s: k * (senders - (1 if s in send else 0)) for s in socks}
        payload = b"".join(LINE + b"\n" for _ in range(k))
        with stopped(freeze):
            for s in send:
                s.sendall(payload)
        drain(sel, socks, want)
        done += k
    for s in socks:
        s.close()


@contextlib.contextmanager
def stopped(pid: int | None) -> Iterator[None]:
    """Keep process ``pid`` stopped inside the block (None: do nothing)."""
    if pid is None:
        yield
        return
    os.kill(pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while state(pid) != "T":  # kill() may return before the process has stopped
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not stop")
            time.sleep(0.001)
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def drain(
    sel: selectors.BaseSelector,
    socks: list[socket.socket],
    want: dict[socket.socket, int],
    quiet_s: float = 0.0,
) -> None:
    """Read until every socket has ``want`` more lines (or, with ``quiet_s``, is quiet)."""
    left = dict(want)
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while any(v > 0 for v in left.values()) or quiet_s:
        events = sel.select(timeout=quiet_s or 1.0)
        if not events and quiet_s:
            return
        for key, _ in events:
            s = key.fileobj
            assert isinstance(s, socket.socket)
            data = s.recv(1 << 20)
            left[s] -= data.count(b"\n")
        if time.monotonic() > deadline:
            raise RuntimeError(f"burst stalled: {sum(left.values())} lines missing")


def run(args: argparse.Namespace, wrapper: list[str], lines: int) -> None:
    port = free_port()
    with server(args.checkout, port, wrapper, args.redis) as proc:
        freeze = None if args.no_freeze else proc.pid
        burst(port, args.receivers, args.senders, lines, args.step, freeze)
        wait_idle(proc.pid)


def wait_idle(pid: int) -> None:
    """Wait until the server has handled every disconnect (its CPU time stands still).

    Stopped with connections still closing, a server's shutdown does a varying amount
    of work (cancellations, "did not flush" paths): that was the largest part of the
    run-to-run spread. Ticks (the hub's housekeeping, every few seconds) remain.
    """
    last, quiet = -1.0, 0
    while quiet < 2:  # two windows: the hub's tick every 2 s may fall in one
        time.sleep(IDLE_S)
        now = cpu_s(pid)
        quiet = quiet + 1 if now == last else 0
        last = now


def callgrind_total(path: Path) -> int:
    for row in path.read_text().splitlines():
        if row.startswith("totals:") or row.startswith("summary:"):
            return int(row.split()[1])
    raise RuntimeError(f"no totals in {path}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--checkout", type=Path, default=Path(__file__).resolve().parent.parent)
    p.add_argument("--receivers", type=int, default=50)
    p.add_argument("--senders", type=int, default=5)
    p.add_argument("--lines", type=int, default=400, help="lines per sender")
    p.add_argument("--base-lines", type=int, default=40, help="lines per sender, first run")
    p.add_argument("--step", type=int, default=8, help="lines per sender per lockstep step")
    p.add_argument(
        "--no-freeze",
        action="store_true",
        help="do not stop the server while the senders write (batches then vary with load)",
    )
    p.add_argument("--out", type=Path, help="keep the raw outputs here (default: a temp dir)")
    p.add_argument("--redis", action="store_true", help="the server as a one-node cluster")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--callgrind", action="store_true")
    how.add_argument("--cprofile", action="store_true")
    p.add_argument("--top", type=int, default=40, help="--cprofile: functions to print")
    args = p.parse_args()
    args.checkout = args.checkout.resolve()
    out = args.out or Path(tempfile.mkdtemp(prefix="burst-count-"))
    out.mkdir(parents=True, exist_ok=True)
    fanout = args.receivers + args.senders - 1
    if not (args.callgrind or args.cprofile):
        deliveries = args.lines * args.senders * fanout
        port = free_port()
        with server(args.checkout, port, [sys.executable], args.redis) as proc:
            t0 = cpu_s(proc.pid)
            burst(
                port,
                args.receivers,
                args.senders,
                args.lines,
                args.step,
                None if args.no_freeze else proc.pid,
            )
            used = cpu_s(proc.pid) - t0
        print(
            f"{args.checkout}: {used:.3f} CPU s, {1e6 * used / max(1, deliveries):.3f} us/delivery"
        )
        return 0
    total_lines = (args.lines - args.base_lines) * args.senders
    deliveries = total_lines * fanout
    results = {}
    for lines in (args.base_lines, args.lines):
        if args.callgrind:
            f = out / f"callgrind.{lines}"
            wrapper = ["valgrind", "--tool=callgrind", "-q", f"--callgrind-out-file={f}"]
            run(args, [*wrapper, sys.executable], lines)
            results[lines] = callgrind_total(f)
        else:
            f = out / f"cprofile.{lines}"
            run(args, [sys.executable, "-m", "cProfile", "-o", str(f)], lines)
    if args.callgrind:
        extra = results[args.lines] - results[args.base_lines]
        print(
            f"{args.checkout}: {total_lines} lines, {deliveries} deliveries: "
            f"{extra / total_lines:,.0f} instructions per line, "
            f"{extra / deliveries:,.0f} per delivery (raw: {out})"
        )
        return 0
    base = pstats.Stats(str(out / f"cprofile.{args.base_lines}")).stats  # type: ignore[attr-defined]
    full = pstats.Stats(str(out / f"cprofile.{args.lines}")).stats  # type: ignore[attr-defined]
    rows = []
    for fn, (_, ncalls, tt, _, _) in full.items():
        b = base.get(fn, (0, 0, 0.0, 0, 0))
        rows.append(((ncalls - b[1]) / total_lines, (tt - b[2]) / total_lines, fn))
    rows.sort(key=lambda r: -r[0])
    print(f"{args.checkout}: calls per line (of {total_lines}), tottime us per line")
    for calls, tt, (file, lineno, name) in rows[: args.top]:
        print(f"{calls:9.2f} {1e6 * tt:8.2f}  {Path(file).name}:{lineno} {name}")
    print(f"total calls per line: {sum(r[0] for r in rows):.1f}")
    return 0


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    sys.exit(main())
