"""A real ``redis-server`` for the cluster tests: a subprocess on loopback.

:class:`RedisServer` runs ``redis-server`` in the foreground on a free loopback port,
with its data in a folder of the test's own. It is ready once it answers ``PING``
(checked over a raw socket, as any client would). Like :class:`tests.procs.ServerProcess`
every wait is bounded and the process is ended by its PID only.

It can be stopped and started again on the same port, with its data (append-only file,
``fsync`` on every write: what a server set up for durability keeps) or without it (a
Redis that was restarted without persistence, or lost its disk).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
from pathlib import Path
from typing import Final

import trio

__all__ = ["READY_TIMEOUT", "STOP_TIMEOUT", "RedisServer", "redis_server_command"]

READY_TIMEOUT: Final = 10.0  # seconds for redis-server to answer PING after starting
STOP_TIMEOUT: Final = 5.0  # seconds for a signalled redis-server to exit
PING_INTERVAL: Final = 0.02  # seconds between PING attempts while it starts
PING_TIMEOUT: Final = 1.0  # seconds for one PING's answer
APPEND_DIR: Final = "appendonlydir"  # where Redis 7 keeps its append-only files (in --dir)
LOG_NAME: Final = "redis-server.log"  # its stdout and stderr, in --dir (kept by restarts)
PING: Final = b"*1\r\n$4\r\nPING\r\n"
PONG: Final = b"+PONG\r\n"


def redis_server_command() -> str | None:
    """The ``redis-server`` executable on PATH, if there is one."""
    return shutil.which("redis-server")


def free_port() -> int:
    """A TCP port that nothing listens on at this moment (loopback)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """A ``redis-server`` subprocess listening on ``127.0.0.1:port``.

    Start it with ``await RedisServer.start(folder)``; :meth:`stop` (or :meth:`kill`)
    ends it and :meth:`restart` starts it again on the same port.

    Attributes:
        dir: its ``--dir``: the append-only files, and its log (``redis-server.log``).
        persistent: it writes an append-only file (``--appendonly yes``).
        port: the TCP port it listens on.
        proc: the running (or last) process.
    """

    def __init__(self, dir: Path, *, persistent: bool, port: int) -> None:
        self.dir = dir
        self.persistent = persistent
        self.port = port
        self.proc: trio.Process | None = None

    @classmethod
    async def start(cls, dir: Path, *, persistent: bool = True, port: int = 0) -> RedisServer:
        """Run ``redis-server`` with its data in ``dir``; return once it answers PING.

        Args:
            dir: its data folder (created if missing).
            persistent: keep an append-only file, fsynced on every write.
            port: 0 for a free loopback port.
        """
        server = cls(Path(dir), persistent=persistent, port=port or free_port())
        await server._launch()
        return server

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``, what ``triochat server --redis`` takes."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        """The process id of the running (or last) ``redis-server``."""
        assert self.proc is not None, "not started"
        return self.proc.pid

    @property
    def running(self) -> bool:
        """The process has not exited (as far as trio has noticed)."""
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        """What ``redis-server`` has printed so far (all its runs)."""
        path = self.dir / LOG_NAME
        return path.read_text(errors="replace") if path.exists() else ""

    def argv(self, command: str) -> list[str]:
        """The command line that runs this server."""
        return [
            command,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.dir),
            "--save",
            "",
            "--appendonly",
            "yes" if self.persistent else "no",
            "--appendfsync",
            "always",
            "--daemonize",
            "no",
        ]

    async def _launch(self) -> None:
        """Start the process and wait until it answers PING (or fail, with its log)."""
        command = redis_server_command()
        if command is None:
            raise RuntimeError("redis-server is not installed")
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / LOG_NAME, "ab") as log:  # noqa: ASYNC230 (a local file)
            self.proc = await trio.lowlevel.open_process(
                self.argv(command),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            with trio.fail_after(READY_TIMEOUT):
                await self._wait_ready()
        except BaseException:
            await self.stop()
            raise

    async def _wait_ready(self) -> None:
        """PING until the answer is PONG (not a refusal, not ``-LOADING``)."""
        while True:
            if not self.running:
                raise AssertionError(f"redis-server exited at start-up:\n{self.log()}")
            if await self.ping():
                return
            await trio.sleep(PING_INTERVAL)

    async def ping(self) -> bool:
        """True if the server answers PING with PONG right now (one bounded attempt)."""
        with trio.move_on_after(PING_TIMEOUT):
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", self.port)
            except OSError:
                return False
            async with stream:
                try:
                    await stream.send_all(PING)
                    answer = b""
                    while not answer.endswith(b"\r\n"):
                        data = await stream.receive_some(1024)
                        if not data:
                            return False
                        answer += data
                except trio.BrokenResourceError:
                    return False
                return answer == PONG
        return False

    def kill(self) -> None:
        """SIGKILL by PID: nothing is flushed (whatever was fsynced stays on disk)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        """End the server by its PID: SIGTERM, a bounded wait, then SIGKILL.

        Shielded, so that it runs to the end in a test that failed or was cancelled.
        Does nothing if the server is not running.
        """
        if self.proc is None:
            return
        with trio.CancelScope(shield=True):
            if self.proc.returncode is None:
                self.proc.send_signal(signal.SIGTERM)
                with trio.move_on_after(STOP_TIMEOUT):
                    await self.proc.wait()
                self.kill()
            await self.proc.wait()  # after SIGKILL: at once

    async def restart(self, *, keep_data: bool, hard: bool = False) -> None:
        """Stop the server (if running) and start it again on the same port.

        Args:
            keep_data: start from the data on disk; False deletes it first (a Redis
                restarted without persistence: every key is gone).
            hard: end it with SIGKILL instead of SIGTERM.
        """
        if hard:
            self.kill()
        await self.stop()
        if not keep_data:
            self.delete_data()
        await self._launch()

    def delete_data(self) -> None:
        """Delete the append-only files and any snapshot (not the log)."""
        shutil.rmtree(self.dir / APPEND_DIR, ignore_errors=True)
        for path in self.dir.iterdir():
            if path.suffix in (".rdb", ".aof"):
                path.unlink()
