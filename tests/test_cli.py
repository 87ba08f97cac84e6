"""End to end: the real ``triochat`` command on port 0, driven with raw sockets and nc."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Final

import pytest

STARTUP_TIMEOUT: Final = 15.0  # seconds for the server to print its address (a cold import)
IO_TIMEOUT: Final = 5.0  # seconds for any one expected line
LOG_FLOOD_JOINS: Final = 1000  # a join and a leave record each: far more than a pipe holds
# The /who amplification (a 5-byte request, a reply naming everyone online), scaled down
# from the report that 50 such clients grew a 1000-member server by ~190 MB in a minute.
WHO_FLOOD_MEMBERS: Final = 200  # members online, with 24-character names: 5 KB per reply
WHO_FLOOD_SPAMMERS: Final = 6  # clients sending /who that never read
WHO_FLOOD_RCVBUF: Final = 4096  # bytes: the spammers' SO_RCVBUF, set before connecting
WHO_FLOOD_DEADLINE: Final = 8.0  # seconds for every spammer to be dropped
# MB of server RSS growth allowed: 6 queues of at most 1 MiB each plus parsing slack.
# Counting events (1024 per member) let each spammer's queue reach 5 MB first: measured
# 28-32 MB growth that way, 3-5 MB with the byte bound.
WHO_FLOOD_RSS_BOUND_MB: Final = 16.0


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "triochat", *args]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``triochat ARGS`` to completion, with no stdin and a timeout."""
    return subprocess.run(
        _command(*args),
        capture_output=True,
        text=True,
        timeout=STARTUP_TIMEOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "100"},
    )


class RunningServer:
    """A ``triochat server --port 0`` subprocess and the port it reported."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            _command("server", "--port", "0", *args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], STARTUP_TIMEOUT)
        if not ready:
            self.stop()
            raise AssertionError("server did not report its address in time")
        line = self.proc.stdout.readline()
        assert line.startswith("listening on 127.0.0.1:"), line
        self.port = int(line.rsplit(":", 1)[1])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=IO_TIMEOUT)


@pytest.fixture
def running() -> Iterator[RunningServer]:
    """A server on a free port, with flood control at its defaults."""
    server = RunningServer("--log-level", "info")
    try:
        yield server
    finally:
        server.stop()


class LineSocket:
    """A blocking TCP client with a timeout on every read; closed at test teardown."""

    opened: list[socket.socket] = []  # noqa: RUF012 - closed by the autouse fixture below

    def __init__(self, port: int, first_line: str | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        LineSocket.opened.append(self.sock)
        self.pending = b""
        if first_line is not None:
            self.send(first_line)

    def send(self, line: str) -> None:
        self.sock.sendall((line + "\n").encode())

    def line(self) -> str:
        while b"\n" not in self.pending:
            data = self.sock.recv(65536)
            if not data:
                raise AssertionError(f"connection closed; pending {self.pending!r}")
            self.pending += data
        line, _, self.pending = self.pending.partition(b"\n")
        return line.decode()

    def until_closed(self) -> list[str]:
        chunks = [self.pending]
        while data := self.sock.recv(65536):
            chunks.append(data)
        return b"".join(chunks).decode().splitlines()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(autouse=True)
def _close_sockets() -> Iterator[None]:
    """Close every test socket even when a test fails halfway (no ResourceWarnings)."""
    yield
    while LineSocket.opened:
        LineSocket.opened.pop().close()


def test_cli_three_clients_chat_then_sigint_exits_cleanly(running: RunningServer) -> None:
    """Three raw TCP clients (plain and JSON) chat; SIGINT tells them and exits 0 fast."""
    alice = LineSocket(running.port, "/nick alice")
    assert alice.line() == "*** welcome, alice! 1 online. Type /help for commands."
    bob = LineSocket(running.port, "/nick bob")
    assert bob.line().startswith("*** welcome, bob! 2 online.")
    carol = LineSocket(running.port, '{"type": "hello", "name": "carol"}')
    assert '"type":"welcome"' in carol.line()
    assert alice.line() == "*** bob joined (2 online)"
    assert alice.line() == "*** carol joined (3 online)"
    bob.send("hi everyone")
    assert alice.line() == "<bob> hi everyone"
    assert '"text":"hi everyone"' in carol.line()
    start = time.monotonic()
    running.proc.send_signal(signal.SIGINT)
    assert running.proc.wait(timeout=IO_TIMEOUT) == 0
    assert time.monotonic() - start < 2.0
    assert alice.until_closed() == ["*** server is shutting down"]
    assert bob.until_closed()[-1] == "*** server is shutting down"
    assert '"type":"shutdown"' in carol.until_closed()[-1]
    _, stderr = running.proc.communicate(timeout=IO_TIMEOUT)
    assert "alice joined" in stderr
    assert "Traceback" not in stderr
    for peer in (alice, bob, carol):
        peer.close()


def test_cli_plain_notices_cannot_be_forged(running: RunningServer) -> None:
    """A member named 'server' doing /me cannot imitate a server notice, live or replayed."""
    alice = LineSocket(running.port, "/nick alice")
    alice.line()
    mallory = LineSocket(running.port, "/nick server")
    mallory.line()
    assert alice.line() == "*** server joined (2 online)"
    mallory.send("/me is shutting down")
    mallory.send("/nick online")
    mallory.send("/me (2): alice, bob")
    forged = [alice.line(), alice.line(), alice.line()]
    assert forged == [
        "* server is shutting down",
        "*** server is now known as online",
        "* online (2): alice, bob",
    ]
    newcomer = LineSocket(running.port, "/nick newcomer")
    replay = [newcomer.line() for _ in range(4)]
    assert replay[0].startswith("*** welcome, newcomer!")
    assert replay[1] == "*** last 2 messages:"
    assert replay[2].endswith("] * server is shutting down")
    assert replay[3].endswith("] * online (2): alice, bob")
    running.proc.send_signal(signal.SIGTERM)
    assert running.proc.wait(timeout=IO_TIMEOUT) == 0
    assert alice.until_closed()[-1] == "*** server is shutting down"


def test_cli_sigterm_exits_zero(running: RunningServer) -> None:
    """SIGTERM is a clean shutdown too (exit status 0, no traceback)."""
    running.proc.send_signal(signal.SIGTERM)
    assert running.proc.wait(timeout=IO_TIMEOUT) == 0
    _, stderr = running.proc.communicate(timeout=IO_TIMEOUT)
    assert "Traceback" not in stderr


def test_cli_abrupt_reset_is_a_leave_and_server_survives(running: RunningServer) -> None:
    """A client that resets its TCP connection (RST) is just a leave for the others."""
    alice = LineSocket(running.port, "/nick alice")
    alice.line()
    rude = LineSocket(running.port, "/nick rude")
    rude.line()
    assert alice.line() == "*** rude joined (2 online)"
    rude.sock.sendall(b"half a li")  # and no newline: a partial line is lost with a reset
    rude.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    rude.close()  # SO_LINGER 0: the kernel sends RST instead of FIN
    assert alice.line() == "*** rude left: lost (1 online)"
    late = LineSocket(running.port, "/nick late")
    assert late.line().startswith("*** welcome, late! 2 online.")
    assert running.proc.poll() is None
    alice.close()
    late.close()


def test_cli_slow_reader_over_tcp_is_dropped() -> None:
    """Over real sockets (the direct-write path), a client that never reads is dropped."""
    server = RunningServer("--send-queue", "8", "--rate-limit", "0")
    try:
        alice = LineSocket(server.port, "/nick alice")
        alice.line()
        stalled = socket.socket()
        LineSocket.opened.append(stalled)
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", server.port))
        stalled.sendall(b"/nick stalled\n")  # and never reads again
        assert alice.line() == "*** stalled joined (2 online)"
        payload = "x" * 1000
        seen: list[str] = []
        for _ in range(200):  # at most 200 x 50 KB: far more than any socket buffer
            for _ in range(50):
                alice.send(payload)
            alice.send("/who")
            while (line := alice.line()).startswith("*** online") is False:
                seen.append(line)
            if "*** stalled left: too slow (1 online)" in seen:
                break
        assert "*** stalled left: too slow (1 online)" in seen
        assert server.proc.poll() is None
    finally:
        server.stop()


def _rss_kb(pid: int, field: str = "VmRSS") -> int:
    """A process's resident set size (or another ``/proc/PID/status`` field), in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for row in status:
            if row.startswith(f"{field}:"):
                return int(row.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _reset_peak_rss(pid: int) -> bool:
    """Restart the kernel's peak-RSS count (VmHWM) for ``pid``; False if not allowed."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/status")
def test_cli_who_flood_from_non_readers_is_bounded_in_bytes() -> None:
    """/who senders that never read are dropped 'too slow' by bytes, not after 1024 replies."""
    server = RunningServer(
        "--rate-limit", "0", "--coalesce-above", "1000", "--log-level", "warning"
    )  # leaves announced one by one (with a reason) even with 200 members online
    pid = server.proc.pid
    try:
        watcher = LineSocket(server.port, json.dumps({"type": "hello", "name": "watcher"}))
        assert json.loads(watcher.line())["type"] == "welcome"
        for i in range(WHO_FLOOD_MEMBERS):
            member = LineSocket(server.port, f"/nick member-{i:03d}-{'x' * 13}")
            assert "welcome" in member.line()  # joined; never reads again (a few KB)
        before_kb = _rss_kb(pid)
        peak_kb = before_kb
        exact_peak = _reset_peak_rss(pid)
        spammers: dict[str, socket.socket] = {}
        for i in range(WHO_FLOOD_SPAMMERS):
            spammer = socket.socket()
            LineSocket.opened.append(spammer)
            spammer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, WHO_FLOOD_RCVBUF)
            spammer.connect(("127.0.0.1", server.port))
            spammer.sendall(f"/nick spam{i}\n".encode())
            spammer.setblocking(False)
            spammers[f"spam{i}"] = spammer
        flood = b"/who\n" * 200
        too_slow: set[str] = set()
        received = b""
        deadline = time.monotonic() + WHO_FLOOD_DEADLINE
        while too_slow != set(spammers) and time.monotonic() < deadline:
            for name, spammer in spammers.items():
                if name not in too_slow:
                    with contextlib.suppress(BlockingIOError, ConnectionError):
                        spammer.send(flood)  # after a reset: ConnectionError; goes on
            readable, _, _ = select.select([watcher.sock], [], [], 0.01)
            if readable:
                received += watcher.sock.recv(65536)
                *lines, received = received.split(b"\n")
                for line in lines:
                    event = json.loads(line)
                    if event["type"] == "leave" and event["reason"] == "too slow":
                        too_slow.add(event["name"])
            peak_kb = max(peak_kb, _rss_kb(pid))
        if exact_peak:
            peak_kb = max(peak_kb, _rss_kb(pid, "VmHWM"))
        growth_mb = (peak_kb - before_kb) / 1024
        assert too_slow == set(spammers), f"dropped {sorted(too_slow)}; RSS +{growth_mb:.1f} MB"
        assert growth_mb < WHO_FLOOD_RSS_BOUND_MB
        watcher.send(json.dumps({"type": "who"}))  # everyone else is still there
        while (event := json.loads(watcher.line()))["type"] != "who":
            pass
        assert event["online"] == WHO_FLOOD_MEMBERS + 1
        assert server.proc.poll() is None
    finally:
        server.stop()


def test_cli_port_in_use_is_one_line_error() -> None:
    """A taken port gives one line saying so and what to do, exit 1, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run("server", "--port", str(port))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "already in use" in lines[0]
    assert "--port" in lines[0]
    assert result.stdout == ""


def test_cli_unknown_host_is_one_line_error() -> None:
    """An address that cannot be resolved gives one line and exit 1."""
    result = _run("server", "--host", "no-such-host.invalid", "--port", "0")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "unknown host 'no-such-host.invalid'" in lines[0]


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--port", "70000"),
        ("--port", "http"),
        ("--rate-limit", "-1"),
        ("--burst", "0"),
        ("--send-queue-bytes", "0"),
    ],
)
def test_cli_bad_flag_value_is_a_usage_error(flag: str, value: str) -> None:
    """Out-of-range or non-numeric flag values are refused by the parser (exit 2)."""
    result = _run("server", flag, value)
    assert result.returncode == 2
    assert f"argument {flag}" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_help_explains_every_server_flag() -> None:
    """`triochat server --help` documents each flag, and --version prints the version."""
    result = _run("server", "--help")
    assert result.returncode == 0
    for flag in (
        "--host",
        "--port",
        "--history",
        "--max-line-bytes",
        "--rate-limit",
        "--burst",
        "--send-queue",
        "--send-queue-bytes",
        "--max-clients",
        "--coalesce-above",
        "--log-level",
        "--log-format",
    ):
        assert flag in result.stdout
    version = _run("--version")
    assert version.stdout.startswith("triochat ")


@pytest.mark.skipif(shutil.which("nc") is None, reason="netcat (nc) is not installed")
def test_cli_nc_session(running: RunningServer) -> None:
    """A person on netcat can join, read the room and talk."""
    alice = LineSocket(running.port, "/nick alice")
    alice.line()
    nc = subprocess.Popen(
        ["nc", "127.0.0.1", str(running.port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert nc.stdin is not None
        assert nc.stdout is not None
        nc.stdin.write(b"/nick netcat\nhello from nc\n/who\n")
        nc.stdin.flush()
        assert alice.line() == "*** netcat joined (2 online)"
        assert alice.line() == "<netcat> hello from nc"
        alice.send("welcome, nc")
        expected = [
            b"*** welcome, netcat! 2 online. Type /help for commands.\n",
            b"*** online (2): alice, netcat\n",
            b"<alice> welcome, nc\n",
        ]
        received = b""
        deadline = time.monotonic() + IO_TIMEOUT
        while received.count(b"\n") < len(expected) and time.monotonic() < deadline:
            ready, _, _ = select.select([nc.stdout], [], [], deadline - time.monotonic())
            if ready:
                received += os.read(nc.stdout.fileno(), 65536)
        assert received == b"".join(expected)
    finally:
        nc.kill()
        nc.communicate(timeout=IO_TIMEOUT)
    alice.close()


def test_cli_python_dash_m_matches_console_script() -> None:
    """`python -m triochat` is the same program as the `triochat` script."""
    result = _run("--help")
    assert result.returncode == 0
    assert "server" in result.stdout
    assert "client" in result.stdout


def _hello(name: str) -> str:
    return json.dumps({"type": "hello", "name": name})


def test_cli_unread_log_pipe_does_not_freeze_the_server() -> None:
    """A log pipe nobody reads: joins, chat and SIGTERM still work (it froze at ~800 records)."""
    server = RunningServer("--log-level", "info")  # its stderr is a pipe this test never reads
    try:
        for i in range(LOG_FLOOD_JOINS):
            peer = LineSocket(server.port, _hello(f"n{i}"))
            assert '"type":"welcome"' in peer.line()
            peer.close()
        LineSocket.opened.clear()  # (all closed already)
        alice = LineSocket(server.port, _hello("alice"))
        assert '"type":"welcome"' in alice.line()
        bob = LineSocket(server.port, _hello("bob"))
        assert '"type":"welcome"' in bob.line()
        bob.send(json.dumps({"type": "say", "text": "still here"}))
        while '"still here"' not in (line := alice.line()):
            assert "bob" in line, line  # only bob's join may come first
        start = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=IO_TIMEOUT) == 0
        assert time.monotonic() - start < 2.5  # the 2 s promise, plus a loaded machine's slack
    finally:
        server.stop()
