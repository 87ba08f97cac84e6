"""The real ``triochat client`` on a terminal (a pty), against real server processes.

What only a terminal shows: the client reconnects by itself when the server is killed
and started again on the same port, the countdown sits in the prompt, Ctrl-C typed
during the back-off ends it at once, and ``--no-reconnect`` exits instead. Servers
come from the suite's one launcher (the ``start_process`` fixture, tests/procs.py);
every process is ended by its PID and every wait is bounded.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import signal
import struct
import subprocess
import sys
import termios
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import pytest
import trio

from tests.conftest import StartProcess
from tests.procs import STOP_TIMEOUT, ServerProcess, triochat_command

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")

WAIT: Final = 20.0  # seconds: bound on any one thing the client should print
ANSI: Final = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")  # colours, clear-line, cursor moves
# A session leader that takes the pty as its controlling terminal, then becomes the
# client: so the Ctrl-C typed into the pty is a SIGINT to the client, as in a shell.
TAKE_TERMINAL: Final = (
    "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def clean_env() -> dict[str, str]:
    """The environment without anything that would change the client's defaults."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TRIOCHAT_") and k not in ("FORCE_COLOR", "NO_COLOR")
    }
    env["TERM"] = "xterm-256color"
    return env


class PtyClient:
    """``triochat client`` with a pty for its stdin, stdout and stderr."""

    def __init__(self, proc: trio.Process, master: int) -> None:
        self.proc = proc
        self.master = master
        self.screen = b""  # everything printed so far, escape sequences removed
        self._raw = b""

    @classmethod
    @contextlib.asynccontextmanager
    async def run(cls, *args: str) -> AsyncIterator[PtyClient]:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
        try:
            proc = await trio.lowlevel.open_process(
                [sys.executable, "-c", TAKE_TERMINAL, *triochat_command("client", *args)],
                stdin=slave,
                stdout=slave,
                stderr=slave,
                start_new_session=True,
                env=clean_env(),
            )
        finally:
            os.close(slave)
        client = cls(proc, master)
        try:
            yield client
        finally:
            if proc.returncode is None:
                proc.kill()
            with trio.CancelScope(shield=True), trio.move_on_after(STOP_TIMEOUT):
                await proc.wait()
            os.close(master)

    async def _read(self) -> bytes:
        try:
            return await trio.to_thread.run_sync(os.read, self.master, 4096, abandon_on_cancel=True)
        except OSError:  # EIO: the client exited and the pty is closed
            return b""

    async def wait_for(self, text: str, timeout: float = WAIT) -> None:
        """Read the terminal until ``text`` has been printed (or fail after ``timeout``)."""
        try:
            with trio.fail_after(timeout):
                while text.encode() not in self.screen:
                    data = await self._read()
                    if not data:
                        raise AssertionError(f"the client exited before printing {text!r}")
                    self._raw += data
                    self.screen = ANSI.sub(b"", self._raw)
        except trio.TooSlowError:
            raise AssertionError(
                f"no {text!r} within {timeout}s; screen: {self.screen!r}"
            ) from None

    async def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    async def exit_code(self, timeout: float = WAIT) -> int:
        with trio.fail_after(timeout):
            while data := await self._read():  # drain, so the client never blocks writing
                self._raw += data
            self.screen = ANSI.sub(b"", self._raw)
            return await self.proc.wait()


@pytest.fixture
async def server(start_process: StartProcess, tmp_path: Path) -> ServerProcess:
    """A server keeping its history in ``tmp_path`` (stopped by ``start_process``)."""
    return await start_process("--db", str(tmp_path / "chat.db"))


async def test_cli_pty_reconnects_across_a_server_restart(
    server: ServerProcess, start_process: StartProcess, tmp_path: Path
) -> None:
    """kill -9 the server, start it again on the same port: the client is back by itself."""
    async with PtyClient.run("--port", str(server.port), "--name", "alice") as client:
        await client.wait_for("welcome, alice!")
        await client.wait_for("alice #lobby> ")
        bob, _ = await server.join_json("bob")
        await bob.send_json(type="say", text="before the crash")
        await client.wait_for("<bob> before the crash")
        server.kill()
        await server.wait()
        await client.wait_for("connection lost; reconnecting in")
        restarted = await start_process("--db", str(tmp_path / "chat.db"), port=server.port)
        await client.wait_for("reconnected; 0 missed messages", timeout=45)
        bob, _ = await restarted.join_json("bob")
        await bob.send_json(type="say", text="after the restart")
        await client.wait_for("<bob> after the restart")
        await client.type("hello again\r")
        await bob.send_json(type="who")  # a round trip: alice's line is handled first
        said = await bob.event()
        while said.get("text") != "hello again":
            said = await bob.event()
        assert said["from"] == "alice"
        await client.type("/quit\r")
        assert await client.exit_code() == 0
    assert client.screen.count(b"before the crash") == 1


async def test_cli_pty_ctrl_c_during_back_off_quits_at_once(server: ServerProcess) -> None:
    """Ctrl-C typed while the client waits to reconnect ends it at once, exit 130."""
    async with PtyClient.run("--port", str(server.port), "--name", "alice") as client:
        await client.wait_for("alice #lobby> ")
        server.kill()
        await server.wait()
        await client.wait_for("reconnecting in")
        await client.type("\x03")
        assert await client.exit_code(timeout=5) == 130
    assert b"Traceback" not in client.screen


async def test_cli_pty_no_reconnect_exits_when_the_server_goes(server: ServerProcess) -> None:
    """--no-reconnect: a lost connection ends the client with exit 1 and one line."""
    args = ("--port", str(server.port), "--name", "alice", "--no-reconnect")
    async with PtyClient.run(*args) as client:
        await client.wait_for("alice #lobby> ")
        server.signal(signal.SIGKILL)
        await client.wait_for(f"lost the connection to 127.0.0.1:{server.port}")
        assert await client.exit_code() == 1
    assert b"reconnecting" not in client.screen


def test_cli_help_mentions_no_reconnect() -> None:
    """--help documents --no-reconnect and that piped input never reconnects."""
    done = subprocess.run(
        triochat_command("client", "--help"),
        capture_output=True,
        text=True,
        timeout=WAIT,
        env=clean_env(),
        check=False,
    )
    assert done.returncode == 0
    assert "--no-reconnect" in done.stdout
    assert "pipe" in done.stdout
