"""What TLS costs a triochat server: burst fan-out per CPU second, and idle memory.

``python scripts/tls_cost.py`` (in the bench session's environment: psutil, trustme).

Three servers, one after the other, each fresh, on loopback (the server on CPU 0, the
load generator on CPU 1 when there are two), driven by ``scripts/loadgen.py``:

``plain``
    cleartext TCP (the reference);
``sslstream``
    TLS the way it was served before :mod:`triochat.server.tls_transport`: a
    ``trio.SSLStream`` under a ``StreamTransport`` (kept selectable here only: this
    script's own server launch swaps the TLS door's transport before starting);
``direct``
    TLS on the socket's descriptor (:class:`~triochat.server.tls_transport.TlsTransport`),
    what ``triochat server --tls-cert`` uses.

For each: the ``burst`` scenario (``--receivers`` + ``--senders`` clients in one room,
each sender writes ``--lines`` lines as fast as it can, ``--rounds`` rounds): deliveries
per second of server CPU time, and the median round's p99 latency; then the ``idle``
scenario (``--conns`` clients join and stay): server RSS per connection, and with
``--heap`` the traced Python heap per connection (a separate run under
``scripts/traced_server.py``'s tracing). The TLS clients verify a throwaway trustme
certificate for 127.0.0.1, as ``scripts/bench.py``'s ``triochat-tls`` run does.

It prints a table and one JSON line. A run takes well under a minute.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Final

from bench import (
    HOST,
    QUIET,
    ROOT,
    SERVER_CPU,
    TUNED,
    RunningServer,
    Scenario,
    pinned,
    python_path,
    run_loadgen,
    tls_files,
)

IMPLEMENTATIONS: Final = ("plain", "sslstream", "direct")
TIMEOUT_S: Final = 60.0  # one load generator run


def serve(impl: str, heap_report: str | None, options: list[str]) -> int:
    """This script's server launch: ``triochat server`` with the chosen TLS transport."""
    if impl == "sslstream":
        from triochat.server import certificates
        from triochat.server.tls_transport import SslStreamTransport

        # The door's one call that makes a connection's transport. Not prepare_context:
        # the old path left the context as loaded (tickets on).
        certificates.tls_server_side = SslStreamTransport  # type: ignore[attr-defined]
    if heap_report is not None:
        import traced_server

        return traced_server.main([heap_report, *options])
    from triochat.cli import main as triochat_main

    return triochat_main(["server", *options])


class CostServer(RunningServer):
    """A server started through :func:`serve` (otherwise bench's ``RunningServer``)."""

    def __init__(self, impl: str, flags: Sequence[str], log_dir: Path, heap: Path | None) -> None:
        import subprocess

        self.name = f"{impl}{'-heap' if heap else ''}"
        self.web_port = 0
        launch = [sys.executable, str(Path(__file__).resolve()), "--serve", impl]
        if heap is not None:
            launch += ["--heap-report", str(heap)]
        self.cmd = [*launch, "--", "--host", HOST, "--port", "0", *QUIET, *flags]
        self.log_path = log_dir / f"{self.name}.stderr"
        self._log: IO[bytes] = self.log_path.open("wb")
        with pinned(SERVER_CPU):
            self.proc = subprocess.Popen(
                self.cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self._log,
                cwd=ROOT,
                env=python_path(None),
            )
        self.port = self._read_port()


def measure(
    impl: str, scenario: str, args: Sequence[str], log_dir: Path, heap: bool = False
) -> dict[str, Any]:
    """One fresh server of ``impl``, one load generator run; its JSON figures."""
    flags: list[str] = [*TUNED]
    loadgen = [scenario, *args]
    if impl != "plain":
        cert, key, ca = tls_files(log_dir)
        flags += ["--tls-port", "0", "--no-plain", "--tls-cert", str(cert), "--tls-key", str(key)]
        loadgen += ["--tls-ca", str(ca)]
    report = log_dir / f"{impl}-{scenario}.heap" if heap else None
    server = CostServer(impl, flags, log_dir, report)
    try:
        sc = Scenario(scenario, scenario, (), (), (), TIMEOUT_S)
        return run_loadgen(sc, loadgen, server, report)
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    """Measure each implementation; print a table and one JSON line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--receivers", type=int, default=50)
    p.add_argument("--senders", type=int, default=5)
    p.add_argument("--lines", type=int, default=2000, help="per sender per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--rate", type=int, default=1000, help="steady: lines/s in all")
    p.add_argument("--duration", type=float, default=4.0, help="steady: seconds (0: skip)")
    p.add_argument("--conns", type=int, default=300, help="idle connections")
    p.add_argument("--heap", action="store_true", help="also the traced heap per idle connection")
    p.add_argument("--only", choices=IMPLEMENTATIONS, action="append", help="just these")
    p.add_argument("--serve", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)
    p.add_argument("--heap-report", help=argparse.SUPPRESS)
    args, rest = p.parse_known_args(argv)
    if args.serve is not None:
        return serve(args.serve, args.heap_report, [a for a in rest if a != "--"])
    burst = [
        *("--receivers", str(args.receivers), "--senders", str(args.senders)),
        *("--lines", str(args.lines), "--rounds", str(args.rounds)),
    ]
    idle = ["--conns", str(args.conns)]
    steady = [
        *("--receivers", str(args.receivers), "--senders", str(args.senders)),
        *("--rate", str(args.rate), "--warmup", "1", "--duration", str(args.duration)),
    ]
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="tls-cost-") as tmp:
        log_dir = Path(tmp)
        for impl in args.only or IMPLEMENTATIONS:
            b = measure(impl, "burst", burst, log_dir)
            s = measure(impl, "steady", steady, log_dir) if args.duration > 0 else {}
            i = measure(impl, "idle", idle, log_dir)
            row = {
                "deliveries_per_cpu_s": b.get("deliveries_per_cpu_s"),
                "p99_ms": b.get("p99_ms"),
                "loss": b.get("loss"),
                "steady_p99_ms": s.get("p99_ms"),
                "steady_cpu_pct": s.get("cpu_pct"),
                "steady_loss": s.get("loss"),
                "rss_per_conn_kb": i.get("rss_per_conn_kb"),
                # Right after the joins, before the server has settled (MB resolution).
                "fresh_per_conn_kb": (
                    round(1024 * (i["rss_joined_mb"] - i["rss_before_mb"]) / i["joined"], 1)
                    if i.get("joined")
                    else None
                ),
                "errors": [*b.get("errors", []), *i.get("errors", [])][:3] or None,
            }
            for figures in (b, s, i) if s else (b, i):
                if not figures.get("ok"):
                    row["errors"] = [figures.get("error")]
            if args.heap:
                h = measure(impl, "idle", idle, log_dir, heap=True)
                row["heap_per_conn_kb"] = h.get("heap_per_conn_kb")
            results[impl] = row
    plain = results.get("plain", {}).get("deliveries_per_cpu_s")
    print(
        f"{'':10} {'deliv/CPU-s':>12} {'x plain':>8} {'p99 ms':>8} {'steady p99':>11}"
        f" {'CPU %':>6} {'idle KB/conn':>13} {'fresh KB/conn':>14}"
    )
    for impl, row in results.items():
        rate = row["deliveries_per_cpu_s"]
        ratio = f"{rate / plain:.2f}" if rate and plain else "-"
        heap = f" (heap {row['heap_per_conn_kb']})" if "heap_per_conn_kb" in row else ""
        print(
            f"{impl:10} {rate or '-':>12} {ratio:>8} {row['p99_ms'] or '-':>8} "
            f"{row['steady_p99_ms'] or '-':>11} {row['steady_cpu_pct'] or '-':>6} "
            f"{row['rss_per_conn_kb'] or '-':>13} {row['fresh_per_conn_kb'] or '-':>14}{heap}"
            + (f"  errors: {row['errors']}" if row["errors"] else "")
        )
    print(json.dumps({"burst": burst, "steady": steady, "idle": idle, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
