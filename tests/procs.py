"""The one way tests run the real ``triochat`` command: a subprocess on loopback.

:class:`ServerProcess` is a running ``triochat server``; tests talk to it with the same
:class:`triochat.testing.Peer` and :class:`~triochat.testing.ChatClient` as the
in-memory tests, over real TCP connections. :func:`run_triochat` runs a command that
ends by itself (``--help``, a start-up error). Every wait is bounded; every process is
ended by its PID. The ``start_process`` fixture (tests/conftest.py) stops what it
started, whatever the test did.
"""

from __future__ import annotations

import itertools
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Final

import trio

from triochat.core.framing import LineBuffer
from triochat.testing import ChatClient, Peer

__all__ = [
    "IO_TIMEOUT",
    "STARTUP_TIMEOUT",
    "STOP_TIMEOUT",
    "BlockingServer",
    "ServerProcess",
    "console_script",
    "run_triochat",
    "start_server",
    "triochat_command",
]

STARTUP_TIMEOUT: Final = 15.0  # seconds for the server to print its address (a cold import)
STOP_TIMEOUT: Final = 5.0  # seconds for a signalled server to exit
IO_TIMEOUT: Final = 5.0  # seconds for any one expected line from another process
HELP_COLUMNS: Final = "100"  # terminal width for commands whose output a test compares


def triochat_command(*args: str) -> list[str]:
    """``python -m triochat ARGS`` with this interpreter."""
    return [sys.executable, "-m", "triochat", *args]


def console_script() -> str | None:
    """The installed ``triochat`` console script of this interpreter's environment."""
    return shutil.which("triochat", path=str(Path(sys.executable).parent))


def run_triochat(
    *args: str, command: Sequence[str] | None = None, timeout: float = STARTUP_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run ``triochat ARGS`` to completion: no stdin, output captured, a fixed width.

    ``command`` replaces ``python -m triochat`` (e.g. the console script).
    """
    return subprocess.run(
        [*(command or triochat_command()), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": HELP_COLUMNS},
        check=False,
    )


class ServerProcess:
    """A ``triochat server`` subprocess and the port it reported.

    Start it with ``await ServerProcess.start(...)``. ``stop()`` ends it, by PID,
    whatever its state, and closes every connection made through this object.

    Attributes:
        proc: the process.
        port: the TCP port it listens on (loopback); its TLS port with ``--no-plain``.
        tls_port: the TLS port (``--tls-cert``), if it has one.
        log_path: the file its stderr (the log) goes to, if any.
        stdout: lines printed at start-up (``listening on ...``, ``history: ...``).
        peers: connections made through this object, closed by :meth:`stop`.
    """

    def __init__(
        self, proc: trio.Process, port: int, log_path: Path | None, stdout: list[str]
    ) -> None:
        self.proc = proc
        self.port = port
        self.log_path = log_path
        self.stdout = stdout
        self.tls_port: int | None = None
        self.peers: list[Peer] = []

    @classmethod
    async def start(
        cls,
        *args: str,
        port: int = 0,
        log_path: str | os.PathLike[str] | None = None,
        log_pipe: bool = False,
        env: Mapping[str, str] | None = None,
        command: Sequence[str] | None = None,
    ) -> ServerProcess:
        """Run ``triochat server --port PORT ARGS`` and wait for its ``listening on`` line.

        Args:
            *args: more ``triochat server`` options.
            port: 0 for a free port (read back from the server's first line).
            log_path: a file for the server's stderr (the log), read with :meth:`log`.
            log_pipe: make stderr a pipe that nobody reads (a log reader that stalled).
                Without ``log_path`` or ``log_pipe`` the log is discarded.
            env: the whole environment of the process (default: this one's).
            command: replaces ``python -m triochat`` (e.g. the console script).
        """
        if log_pipe and log_path is not None:
            raise ValueError("log_path and log_pipe are alternatives")
        argv = [*(command or triochat_command()), "server", "--port", str(port), *args]
        log = open(log_path, "ab") if log_path is not None else None  # noqa: SIM115, ASYNC230
        stderr: int | IO[bytes] = (
            log if log is not None else subprocess.PIPE if log_pipe else subprocess.DEVNULL
        )
        try:
            proc = await trio.lowlevel.open_process(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=dict(os.environ if env is None else env),
            )
        finally:
            if log is not None:
                log.close()  # the child has its own copy
        server = cls(proc, 0, Path(log_path) if log_path is not None else None, [])
        try:
            with trio.fail_after(STARTUP_TIMEOUT):
                await server._read_banner()
        except BaseException:
            await server.stop()
            raise
        return server

    async def _read_banner(self) -> None:
        """Read ``listening on HOST:PORT`` (one more with TLS) and ``history: ...``."""
        assert self.proc.stdout is not None
        buffer = LineBuffer(1 << 16)
        while not self.stdout or not self.stdout[-1].startswith("history: "):
            line = buffer.next_line()
            if isinstance(line, bytes):
                self.stdout.append(line.decode())
                continue
            data = await self.proc.stdout.receive_some()
            if not data:
                break
            buffer.feed(data)
        if not self.stdout or not self.stdout[0].startswith("listening on 127.0.0.1:"):
            log = self.log() if self.log_path is not None else "(log not kept)"
            raise AssertionError(f"server did not start: {self.stdout!r} {log!r}")
        self.port = int(self.stdout[0].removesuffix(" (TLS)").rsplit(":", 1)[1])
        for text in self.stdout:
            if text.startswith("listening on ") and text.endswith(" (TLS)"):
                self.tls_port = int(text.removesuffix(" (TLS)").rsplit(":", 1)[1])

    @property
    def running(self) -> bool:
        """The process has not exited (as far as trio has noticed)."""
        return self.proc.poll() is None

    def log(self) -> str:
        """Everything the server has logged so far (needs ``log_path``)."""
        assert self.log_path is not None, "started without log_path"
        return self.log_path.read_text()

    async def connect(self, *, rcvbuf: int | None = None) -> Peer:
        """A raw TCP connection to the server (closed by :meth:`stop`).

        ``rcvbuf`` sets ``SO_RCVBUF`` before connecting, so that a peer that never
        reads fills up after a few KB instead of the kernel's default.
        """
        if rcvbuf is None:
            stream = await trio.open_tcp_stream("127.0.0.1", self.port)
        else:
            sock = trio.socket.socket()
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
                await sock.connect(("127.0.0.1", self.port))
            except BaseException:
                sock.close()
                raise
            stream = trio.SocketStream(sock)
        peer = Peer(stream, remote=True)
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

    async def client(self, name: str, **hello: object) -> ChatClient:
        """A :class:`~triochat.testing.ChatClient` connected over TCP as ``name``."""
        return await ChatClient.register(await self.connect(), name, **hello)

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the server, if it is still running."""
        if self.proc.returncode is None:
            self.proc.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to flush or close anything."""
        self.signal(signal.SIGKILL)

    async def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        """The exit status, once the process has exited (fails after ``timeout``)."""
        with trio.fail_after(timeout):
            return await self.proc.wait()

    async def stop(self) -> None:
        """Close this object's connections; end the server by its PID (TERM, then KILL).

        Shielded: it runs to the end in a test that failed or was cancelled too.
        """
        with trio.CancelScope(shield=True):
            while self.peers:
                await trio.aclose_forcefully(self.peers.pop().stream)
            if self.proc.returncode is None:
                self.signal(signal.SIGTERM)
                with trio.move_on_after(STOP_TIMEOUT):
                    await self.proc.wait()
                self.kill()
            await self.proc.wait()  # after SIGKILL: at once
            for pipe in (self.proc.stdout, self.proc.stderr):
                if pipe is not None:
                    await pipe.aclose()


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
        last = "history: " if web_off else "web: "  # "listening on" (two with TLS), "history:"
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
        while not lines or not lines[-1].startswith(last):
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
        if (
            not lines
            or not lines[-1].startswith(last)
            or not lines[0].startswith("listening on 127.0.0.1:")
        ):
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
