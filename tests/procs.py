"""The one way tests run the real ``triochat server`` command: a subprocess on loopback.

Tests talk to it with the same :class:`triochat.testing.Peer` as the in-memory tests,
over a real TCP connection. Every wait is bounded; every process is ended by its PID.
"""

from __future__ import annotations

import itertools
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Final

import trio

from triochat.core.framing import LineBuffer
from triochat.testing import Peer

__all__ = ["STARTUP_TIMEOUT", "BlockingServer", "ServerProcess", "triochat_command"]

STARTUP_TIMEOUT: Final = 15.0  # seconds for the server to print its address (a cold import)
STOP_TIMEOUT: Final = 5.0  # seconds for a signalled server to exit


def triochat_command(*args: str) -> list[str]:
    """``python -m triochat ARGS`` with this interpreter."""
    return [sys.executable, "-m", "triochat", *args]


class ServerProcess:
    """A ``triochat server`` subprocess and the port it reported.

    Start it with ``await ServerProcess.start(...)``; its stderr (the log) is collected
    in a file so that it can never block. ``stop()`` ends it, by PID, whatever its state.
    """

    def __init__(self, proc: trio.Process, port: int, log_path: str, stdout: list[str]) -> None:
        self.proc = proc
        self.port = port
        self.log_path = log_path
        self.stdout = stdout  # lines printed at start-up ("listening on ...", "history: ...")
        self.peers: list[Peer] = []  # connections made through this object, closed by stop()

    @classmethod
    async def start(
        cls, *args: str, port: int = 0, log_path: str, env: dict[str, str] | None = None
    ) -> ServerProcess:
        """Run ``triochat server --port PORT ARGS`` and wait for its ``listening on`` line."""
        log = open(log_path, "ab")  # noqa: SIM115, ASYNC230 - handed to the child, closed below
        try:
            proc = await trio.lowlevel.open_process(
                triochat_command("server", "--port", str(port), *args),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                env={**os.environ, **(env or {})},
            )
        finally:
            log.close()
        assert proc.stdout is not None
        buffer = LineBuffer(1 << 16)
        lines: list[str] = []
        try:
            with trio.fail_after(STARTUP_TIMEOUT):
                while len(lines) < 2:  # "listening on HOST:PORT", then "history: ..."
                    line = buffer.next_line()
                    if isinstance(line, bytes):
                        lines.append(line.decode())
                        continue
                    data = await proc.stdout.receive_some()
                    if not data:
                        break
                    buffer.feed(data)
        except BaseException:
            proc.kill()
            raise
        if not lines or not lines[0].startswith("listening on 127.0.0.1:"):
            proc.kill()
            with open(log_path) as log_file:  # noqa: ASYNC230 - a small file, once
                raise AssertionError(f"server did not start: {lines!r} {log_file.read()!r}")
        return cls(proc, int(lines[0].rsplit(":", 1)[1]), log_path, lines)

    def log(self) -> str:
        """Everything the server has logged so far."""
        with open(self.log_path) as log_file:
            return log_file.read()

    async def connect(self) -> Peer:
        """A raw TCP connection to the server (closed by :meth:`stop`)."""
        peer = Peer(await trio.open_tcp_stream("127.0.0.1", self.port))
        self.peers.append(peer)
        return peer

    async def join(self, name: str) -> Peer:
        """Connect in plain mode as ``name`` and read the welcome."""
        peer = await self.connect()
        await peer.send(f"/nick {name}")
        welcome = await peer.line()
        assert welcome.startswith(f"*** welcome, {name}!"), welcome
        return peer

    async def join_json(self, name: str, **hello: object) -> tuple[Peer, dict[str, object]]:
        """Connect in JSON mode as ``name`` (with more hello fields); return the welcome."""
        peer = await self.connect()
        await peer.send_json(type="hello", name=name, **hello)
        welcome = await peer.event()
        assert welcome["type"] == "welcome", welcome
        return peer, welcome

    def signal(self, signum: int) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to flush or close anything."""
        self.signal(signal.SIGKILL)

    async def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        with trio.fail_after(timeout):
            return await self.proc.wait()

    async def stop(self) -> None:
        """Close this object's connections; end the server by its PID (TERM, then KILL)."""
        while self.peers:
            await trio.aclose_forcefully(self.peers.pop().stream)
        if self.proc.returncode is None:
            self.signal(signal.SIGTERM)
            with trio.move_on_after(STOP_TIMEOUT):
                await self.proc.wait()
            self.kill()
        with trio.CancelScope(shield=True):
            await self.proc.wait()
        if self.proc.stdout is not None:
            await self.proc.stdout.aclose()


async def start_server(
    args: Sequence[str], tmp_dir: str, *, port: int = 0, name: str = "server"
) -> ServerProcess:
    """Start a server whose log goes to ``tmp_dir/NAME.log``."""
    return await ServerProcess.start(
        *args, port=port, log_path=os.path.join(tmp_dir, f"{name}.log")
    )


class BlockingServer:
    """A ``triochat server`` subprocess for tests that are not async (the browser tests).

    The same command and the same rules as :class:`ServerProcess` (log to a file, every
    wait bounded, ended by its PID), with blocking calls, because Playwright's sync API
    cannot run inside trio. It waits for the ``web:`` line too, unless the web page is
    off (``--web-port off``).
    """

    def __init__(self, proc: subprocess.Popen[bytes], stdout: list[str], log_path: str) -> None:
        self.proc = proc
        self.stdout = stdout
        self.log_path = log_path
        self.port = int(stdout[0].rsplit(":", 1)[1])
        web = [line.split(" ", 1)[1] for line in stdout if line.startswith("web: ")]
        self.web_url = web[0] if web else ""  # "http://127.0.0.1:PORT/"
        self.web_port = int(self.web_url.rstrip("/").rsplit(":", 1)[1]) if web else 0

    @classmethod
    def start(cls, *args: str, port: int = 0, log_path: str) -> BlockingServer:
        """Run ``triochat server --port PORT ARGS``; wait for its start-up lines."""
        web_off = any(a == "--web-port" and b == "off" for a, b in itertools.pairwise(args))
        wanted = 2 if web_off else 3  # "listening on", "history:", then "web:"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                triochat_command("server", "--port", str(port), *args),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        assert proc.stdout is not None
        buffer = LineBuffer(1 << 16)
        lines: list[str] = []
        deadline = time.monotonic() + STARTUP_TIMEOUT
        fd = proc.stdout.fileno()
        while len(lines) < wanted:
            line = buffer.next_line()
            if isinstance(line, bytes):
                lines.append(line.decode())
                continue
            left = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(0.0, left))
            data = os.read(fd, 65536) if ready else b""
            if not data:
                break
            buffer.feed(data)
        if len(lines) < wanted or not lines[0].startswith("listening on 127.0.0.1:"):
            proc.kill()
            proc.wait()
            with open(log_path) as log_file:
                raise AssertionError(f"server did not start: {lines!r} {log_file.read()!r}")
        return cls(proc, lines, log_path)

    def log(self) -> str:
        """Everything the server has logged so far."""
        with open(self.log_path) as log_file:
            return log_file.read()

    def stop(self) -> int:
        """End the server by its PID (TERM, then KILL); return its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        status = self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return status
