"""End to end: the real ``triochat`` command on port 0, driven over TCP and with nc.

Servers are started with the ``start_process`` fixture (tests/procs.py) and spoken to
with triochat.testing's Peer (lines) and ChatClient (JSON). No test here may use
``autojump_clock``: the server runs in real time, in another process.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import signal
import socket
import struct
import subprocess
import sys
from typing import Final

import pytest
import trio

from tests.conftest import StartProcess
from tests.procs import IO_TIMEOUT, console_script, run_triochat
from triochat import __version__
from triochat.testing import Peer

LOG_FLOOD_JOINS: Final = 1000  # a join and a leave record each: far more than a pipe holds
# The /who amplification (a 5-byte request, a reply naming everyone online), scaled down
# from the report that 50 such clients grew a 1000-member server by ~190 MB in a minute.
WHO_FLOOD_MEMBERS: Final = 200  # members online, with 24-character names: 5 KB per reply
WHO_FLOOD_SPAMMERS: Final = 6  # clients sending /who that never read
WHO_FLOOD_RCVBUF: Final = 4096  # bytes: the spammers' SO_RCVBUF, set before connecting
WHO_FLOOD_DEADLINE: Final = 8.0  # seconds for every spammer to be dropped
WHO_FLOOD_SAMPLE: Final = 0.01  # seconds between RSS samples (VmHWM is exact where allowed)
# MB of server RSS growth allowed: 6 queues of at most 1 MiB each plus parsing slack.
# Counting events (1024 per member) let each spammer's queue reach 5 MB first: measured
# 28-32 MB growth that way, 3-5 MB with the byte bound.
WHO_FLOOD_RSS_BOUND_MB: Final = 16.0
SHUTDOWN_SECONDS: Final = 2.0  # the promise: a signalled server exits within this


async def test_cli_three_clients_chat_then_sigint_exits_cleanly(
    start_process: StartProcess,
) -> None:
    """Three raw TCP clients (plain and JSON) chat; SIGINT tells them and exits 0 fast."""
    server = await start_process("--log-level", "info")
    alice = await server.connect()
    await alice.send("/nick alice")
    await alice.expect("*** welcome, alice! 1 online. Type /help for commands.")
    bob = await server.connect()
    await bob.send("/nick bob")
    assert (await bob.line()).startswith("*** welcome, bob! 2 online.")
    carol = await server.client("carol")
    await alice.expect("*** bob joined (2 online)", "*** carol joined (3 online)")
    await bob.send("hi everyone")
    await alice.expect("<bob> hi everyone")
    await carol.expect("say", from_="bob", text="hi everyone")
    start = trio.current_time()
    server.signal(signal.SIGINT)
    assert await server.wait() == 0
    assert trio.current_time() - start < SHUTDOWN_SECONDS
    assert await alice.closed() == ["*** server is shutting down"]
    assert (await bob.closed())[-1] == "*** server is shutting down"
    assert [event["type"] for event in await carol.closed()] == ["shutdown"]
    log = server.log()
    assert "alice joined" in log
    assert "Traceback" not in log


async def test_cli_plain_notices_cannot_be_forged(start_process: StartProcess) -> None:
    """A member named 'server' doing /me cannot imitate a server notice, live or replayed."""
    server = await start_process()
    alice = await server.join("alice")
    mallory = await server.join("server")
    await alice.expect("*** server joined (2 online)")
    await mallory.send("/me is shutting down")
    await mallory.send("/nick online")
    await mallory.send("/me (2): alice, bob")
    await alice.expect(
        "* server is shutting down",
        "*** server is now known as online",
        "* online (2): alice, bob",
    )
    newcomer = await server.connect()
    await newcomer.send("/nick newcomer")
    replay = [await newcomer.line() for _ in range(4)]
    assert replay[0].startswith("*** welcome, newcomer!")
    assert replay[1] == "*** last 2 messages:"
    assert replay[2].endswith("] * server is shutting down")
    assert replay[3].endswith("] * online (2): alice, bob")
    server.signal(signal.SIGTERM)
    assert await server.wait() == 0
    assert (await alice.closed())[-1] == "*** server is shutting down"


async def test_cli_sigterm_exits_zero(start_process: StartProcess) -> None:
    """SIGTERM is a clean shutdown too (exit status 0, no traceback)."""
    server = await start_process("--log-level", "info")
    server.signal(signal.SIGTERM)
    assert await server.wait() == 0
    assert "Traceback" not in server.log()


async def test_cli_abrupt_reset_is_a_leave_and_server_survives(
    start_process: StartProcess,
) -> None:
    """A client that resets its TCP connection (RST) is just a leave for the others."""
    server = await start_process()
    alice = await server.join("alice")
    rude = await server.join("rude")
    await alice.expect("*** rude joined (2 online)")
    await rude.send(b"half a li")  # and no newline: a partial line is lost with a reset
    assert isinstance(rude.stream, trio.SocketStream)
    rude.stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await rude.stream.aclose()  # SO_LINGER 0: the kernel sends RST instead of FIN
    await alice.expect("*** rude left: lost (1 online)")  # and no "<rude> half a li"
    late = await server.connect()
    await late.send("/nick late")
    assert (await late.line()).startswith("*** welcome, late! 2 online.")
    assert server.running


async def test_cli_slow_reader_over_tcp_is_dropped(start_process: StartProcess) -> None:
    """Over real sockets (the direct-write path), a client that never reads is dropped."""
    server = await start_process("--send-queue", "8", "--rate-limit", "0")
    alice = await server.join("alice")
    stalled = await server.connect(rcvbuf=4096)
    await stalled.send("/nick stalled")  # and never reads again
    await alice.expect("*** stalled joined (2 online)")
    payload = "x" * 1000
    seen: list[str] = []
    for _ in range(200):  # at most 200 x 50 KB: far more than any socket buffer
        for _ in range(50):
            await alice.send(payload)
        await alice.send("/who")
        while not (line := await alice.line()).startswith("*** online"):
            seen.append(line)
        if "*** stalled left: too slow (1 online)" in seen:
            break
    assert "*** stalled left: too slow (1 online)" in seen
    assert server.running


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


async def _spam(peer: Peer, flood: bytes) -> None:
    """Send ``flood`` over and over, never reading, until the server cuts the peer off."""
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        while True:
            await peer.stream.send_all(flood)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/status")
async def test_cli_who_flood_from_non_readers_is_bounded_in_bytes(
    start_process: StartProcess,
) -> None:
    """/who senders that never read are dropped 'too slow' by bytes, not after 1024 replies."""
    server = await start_process(
        "--rate-limit", "0", "--coalesce-above", "1000", "--log-level", "warning"
    )  # leaves announced one by one (with a reason) even with 200 members online
    pid = server.proc.pid
    watcher = await server.client("watcher")
    for i in range(WHO_FLOOD_MEMBERS):
        await server.join(f"member-{i:03d}-{'x' * 13}")  # then never reads again (a few KB)
    before_kb = peak_kb = _rss_kb(pid)
    exact_peak = _reset_peak_rss(pid)
    spammers: dict[str, Peer] = {}
    for i in range(WHO_FLOOD_SPAMMERS):
        spammers[f"spam{i}"] = spammer = await server.connect(rcvbuf=WHO_FLOOD_RCVBUF)
        await spammer.send(f"/nick spam{i}")
    too_slow: set[str] = set()

    async def sample_rss() -> None:
        nonlocal peak_kb
        while True:  # a sampling period, not sequencing: VmHWM is exact where allowed
            peak_kb = max(peak_kb, _rss_kb(pid))
            await trio.sleep(WHO_FLOOD_SAMPLE)

    with trio.move_on_after(WHO_FLOOD_DEADLINE):
        async with trio.open_nursery() as nursery:
            for spammer in spammers.values():
                nursery.start_soon(_spam, spammer, b"/who\n" * 200)
            nursery.start_soon(sample_rss)
            while too_slow != set(spammers):
                left = await watcher.expect("leave", reason="too slow", timeout=math.inf)
                too_slow.add(left["name"])
            nursery.cancel_scope.cancel()
    if exact_peak:
        peak_kb = max(peak_kb, _rss_kb(pid, "VmHWM"))
    growth_mb = (peak_kb - before_kb) / 1024
    assert too_slow == set(spammers), f"dropped {sorted(too_slow)}; RSS +{growth_mb:.1f} MB"
    assert growth_mb < WHO_FLOOD_RSS_BOUND_MB
    await watcher.send(type="who")  # everyone else is still there
    assert (await watcher.expect("who"))["online"] == WHO_FLOOD_MEMBERS + 1
    assert server.running


def test_cli_port_in_use_is_one_line_error() -> None:
    """A taken port gives one line saying so and what to do, exit 1, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_triochat("server", "--port", str(port))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "already in use" in lines[0]
    assert "--port" in lines[0]
    assert result.stdout == ""


def test_cli_unknown_host_is_one_line_error() -> None:
    """An address that cannot be resolved gives one line and exit 1."""
    result = run_triochat("server", "--host", "no-such-host.invalid", "--port", "0")
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
        ("--redis", "notaurl"),
        ("--redis", "http://127.0.0.1:6379/0"),
        ("--redis", "redis://127.0.0.1:port/0"),
    ],
)
def test_cli_bad_flag_value_is_a_usage_error(flag: str, value: str) -> None:
    """Out-of-range or non-numeric flag values are refused by the parser (exit 2)."""
    result = run_triochat("server", flag, value)
    assert result.returncode == 2
    assert f"argument {flag}" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_redis_password_is_never_shown() -> None:
    """A bad --redis URL is quoted in the error without its password."""
    result = run_triochat("server", "--redis", "redis://:hunter2@127.0.0.1:port/0")
    assert result.returncode == 2
    assert "hunter2" not in result.stderr
    assert "redis://:***@127.0.0.1:port/0" in result.stderr


def test_cli_help_explains_every_server_flag() -> None:
    """`triochat server --help` documents each flag, and --version prints the version."""
    result = run_triochat("server", "--help")
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
    version = run_triochat("--version")
    assert version.returncode == 0
    assert version.stdout == f"triochat {__version__}\n"  # (it only checked the prefix)


@pytest.mark.skipif(shutil.which("nc") is None, reason="netcat (nc) is not installed")
async def test_cli_nc_session(start_process: StartProcess) -> None:
    """A person on netcat can join, read the room and talk."""
    server = await start_process("--log-level", "info")
    alice = await server.join("alice")
    nc = await trio.lowlevel.open_process(
        ["nc", "127.0.0.1", str(server.port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert nc.stdin is not None
    assert nc.stdout is not None
    try:
        await nc.stdin.send_all(b"/nick netcat\nhello from nc\n/who\n")
        await alice.expect("*** netcat joined (2 online)", "<netcat> hello from nc")
        await alice.send("welcome, nc")
        expected = [
            b"*** welcome, netcat! 2 online. Type /help for commands.\n",
            b"*** online (2): alice, netcat\n",
            b"<alice> welcome, nc\n",
        ]
        received = b""  # bytes, not lines: nc must show exactly these, LF-terminated
        with trio.move_on_after(IO_TIMEOUT):
            while received.count(b"\n") < len(expected):
                data = await nc.stdout.receive_some()
                if not data:
                    break
                received += data
        assert received == b"".join(expected)
    finally:
        with trio.CancelScope(shield=True):
            nc.kill()
            await nc.wait()
            await nc.stdin.aclose()
            await nc.stdout.aclose()


def _script() -> str:
    script = console_script()
    assert script is not None, "no triochat console script beside python: pip install -e ."
    return script


@pytest.mark.parametrize(
    "args",
    [("--help",), ("--version",), ("server", "--help"), ("client", "--help")],
    ids=" ".join,
)
def test_cli_python_dash_m_matches_console_script(args: tuple[str, ...]) -> None:
    """`python -m triochat` and the installed `triochat` script give the same output."""
    by_module = run_triochat(*args)
    by_script = run_triochat(*args, command=[_script()])  # (it ran python -m twice before)
    assert by_module.returncode == by_script.returncode == 0, by_script.stderr
    assert by_script.stdout == by_module.stdout
    assert by_script.stderr == by_module.stderr == ""
    assert by_script.stdout.startswith("usage: triochat" if "--help" in args else "triochat ")


async def test_cli_console_script_serves_and_stops(start_process: StartProcess) -> None:
    """The installed `triochat` script runs a real server: it chats and exits 0 on SIGTERM."""
    server = await start_process(command=[_script()])
    alice = await server.join("alice")
    bob = await server.client("bob")
    await alice.expect("*** bob joined (2 online)")
    await bob.say("from the script")
    await alice.expect("<bob> from the script")
    server.signal(signal.SIGTERM)
    assert await server.wait() == 0


async def test_cli_unread_log_pipe_does_not_freeze_the_server(
    start_process: StartProcess,
) -> None:
    """A log pipe nobody reads: joins, chat and SIGTERM still work (it froze at ~800 records)."""
    server = await start_process("--log-level", "info", log_pipe=True)  # never read
    for i in range(LOG_FLOOD_JOINS):
        peer = await server.client(f"n{i}")
        await peer.aclose()
    server.peers.clear()  # (all closed already)
    alice = await server.client("alice")
    bob = await server.client("bob")
    await bob.say("still here")
    await alice.expect("say", from_="bob", text="still here")
    skipped = alice.events[1:-1]  # between the welcome and the line: only bob's join
    assert all(event.get("name") == "bob" for event in skipped), skipped
    start = trio.current_time()
    server.signal(signal.SIGTERM)
    assert await server.wait() == 0
    assert trio.current_time() - start < 2.5  # the 2 s promise, plus a loaded machine's slack
