"""The ``triochat client`` command as a process, against a real ``triochat server``.

The server comes from the suite's one launcher (the ``start_process`` fixture,
tests/procs.py); the "watcher" that sees what the server got is a triochat.testing
ChatClient over TCP. The client under test is run here directly, with pipes. Loopback
only; every process started here is ended by its PID on the way out, and every wait is
bounded. No ``autojump_clock``: the processes run in real time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import pytest
import trio

from tests.conftest import StartProcess
from tests.procs import ServerProcess, triochat_command
from triochat.client.session import add_client_arguments, connect_error_message, default_name
from triochat.testing import ChatClient

WAIT: Final = 20.0  # seconds: generous bound for a process to start or finish on a slow CI box


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without anything that would change the client's defaults."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TRIOCHAT_") and k not in ("FORCE_COLOR", "TTY_COMPATIBLE")
    }
    env.update(extra)
    return env


@pytest.fixture
async def server(start_process: StartProcess) -> ServerProcess:
    """A real ``triochat server`` on a free loopback port (stopped by ``start_process``)."""
    return await start_process("--host", "127.0.0.1", env=clean_env())


@pytest.fixture
async def watcher(server: ServerProcess) -> ChatClient:
    """A JSON-mode member over TCP (its connection is closed when the server is stopped)."""
    return await server.client("watcher")


async def run_client(*args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``triochat client ARGS`` to completion with ``stdin`` piped in; output as text."""
    with trio.fail_after(WAIT):
        done = await trio.run_process(
            triochat_command("client", *args),
            stdin=stdin.encode(),
            capture_stdout=True,
            capture_stderr=True,
            env=clean_env(**env),
            check=False,
        )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


class ClientProcess:
    """``triochat client`` whose stdin stays open (a person who has not quit), with pipes.

    Start it with :meth:`run`; on the way out it is killed by its PID if still running.
    """

    def __init__(self, proc: trio.Process) -> None:
        self.proc = proc
        self._stdout = bytearray()  # read from the pipe, not yet returned

    @classmethod
    @contextlib.asynccontextmanager
    async def run(cls, *args: str) -> AsyncIterator[ClientProcess]:
        """Run ``triochat client ARGS``; kill it on the way out if it is still running."""
        proc = await trio.lowlevel.open_process(
            triochat_command("client", *args),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=clean_env(),
        )
        try:
            yield cls(proc)
        finally:
            with trio.CancelScope(shield=True):
                if proc.returncode is None:
                    proc.kill()
                with trio.move_on_after(WAIT):
                    await proc.wait()
                for pipe in (proc.stdin, proc.stdout, proc.stderr):
                    if pipe is not None:
                        await pipe.aclose()

    async def line(self) -> str:
        """The next line the client printed on stdout (fails after ``WAIT`` seconds)."""
        assert self.proc.stdout is not None
        with trio.fail_after(WAIT):
            while b"\n" not in self._stdout:
                data = await self.proc.stdout.receive_some()
                if not data:
                    raise AssertionError(f"stdout closed before a line: {bytes(self._stdout)!r}")
                self._stdout += data
        line, _, rest = self._stdout.partition(b"\n")
        self._stdout = bytearray(rest)
        return line.decode()

    async def type(self, text: str) -> None:
        """Write ``text`` to the client's stdin."""
        assert self.proc.stdin is not None
        await self.proc.stdin.send_all(text.encode())

    async def close_stdout(self) -> None:
        """Stop reading stdout, as ``head -1`` does after its line."""
        assert self.proc.stdout is not None
        await self.proc.stdout.aclose()

    async def finish(self, *, stdout: bool = True) -> tuple[str, str]:
        """Wait for the client to exit by itself (stdin stays open); return its output.

        Returns the rest of stdout (unless ``stdout`` is false: closed by the test) and
        all of stderr.
        """
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        out, err = bytearray(self._stdout), bytearray()

        async def drain(pipe: trio.abc.ReceiveStream, into: bytearray) -> None:
            while data := await pipe.receive_some():
                into += data

        with trio.fail_after(WAIT):
            async with trio.open_nursery() as nursery:
                if stdout:
                    nursery.start_soon(drain, self.proc.stdout, out)
                nursery.start_soon(drain, self.proc.stderr, err)
            await self.proc.wait()
        return out.decode(), err.decode()


async def test_cli_piped_stdin_posts_every_line_and_exits_0(
    server: ServerProcess, watcher: ChatClient
) -> None:
    """`echo ... | triochat client` sends every line, waits for the server, exits 0, plain text."""
    lines = [f"build {n} passed" for n in range(25)]  # past the burst: the server reads slowly
    done = await run_client(
        "--port", str(server.port), "--name", "ci", stdin="\n".join(lines) + "\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "\x1b" not in done.stdout  # stdout is a pipe: no escape codes
    assert re.search(r"^\d\d:\d\d <ci> build 24 passed$", done.stdout, re.MULTILINE)
    assert [(await watcher.expect("say", from_="ci"))["text"] for _ in lines] == lines
    await watcher.expect("leave", name="ci", reason="quit")


async def test_cli_json_output_for_tools(server: ServerProcess, watcher: ChatClient) -> None:
    """--json prints each event as exactly one JSON object per line."""
    done = await run_client("--port", str(server.port), "--name", "bot", "--json", stdin="/who\n")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["type"] for e in events] == ["welcome", "who"]
    assert events[1]["names"] == ["bot", "watcher"]


async def test_cli_env_sets_defaults_and_flags_win(
    server: ServerProcess, watcher: ChatClient
) -> None:
    """TRIOCHAT_HOST/PORT/NAME set the defaults; a flag overrides its variable."""
    port = str(server.port)
    done = await run_client(
        stdin="hi\n", TRIOCHAT_HOST="127.0.0.1", TRIOCHAT_PORT=port, TRIOCHAT_NAME="envname"
    )
    assert done.returncode == 0, done.stderr
    assert "welcome, envname!" in done.stdout
    done = await run_client(
        "--name", "flagname", stdin="hi\n", TRIOCHAT_PORT=port, TRIOCHAT_NAME="env"
    )
    assert "welcome, flagname!" in done.stdout


async def test_cli_name_taken_shows_reason_and_fails(
    server: ServerProcess, watcher: ChatClient
) -> None:
    """A taken --name prints the server's reason on one line and exits non-zero."""
    done = await run_client("--port", str(server.port), "--name", "WATCHER", stdin="hi\n")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert "taken" in done.stderr
    assert "Traceback" not in done.stderr


def free_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_cli_connection_refused_one_line() -> None:
    """Nothing listening: one line naming host:port and what to try, exit 1, no traceback."""
    port = free_port()
    done = await run_client("--port", str(port))
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert f"127.0.0.1:{port}" in done.stderr
    assert "connection refused" in done.stderr
    assert "triochat server" in done.stderr


async def test_cli_unknown_host_one_line() -> None:
    """An unresolvable host: one line saying so and what to check, exit 1."""
    done = await run_client("--host", "no-such-host.invalid")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert "unknown host 'no-such-host.invalid'" in done.stderr


async def test_cli_bad_port_variable_is_a_usage_error() -> None:
    """A malformed TRIOCHAT_PORT is reported by argparse, naming the variable."""
    done = await run_client(TRIOCHAT_PORT="lots")
    assert done.returncode == 2
    assert "TRIOCHAT_PORT" in done.stderr
    assert "Traceback" not in done.stderr


async def test_cli_server_shutdown_ends_client(server: ServerProcess) -> None:
    """When the server shuts down, the client shows it, says so on stderr and exits 1."""
    async with ClientProcess.run("--port", str(server.port), "--name", "alice") as client:
        assert "welcome" in await client.line()
        server.signal(signal.SIGINT)
        out, err = await client.finish()
    assert client.proc.returncode == 1
    assert "server is shutting down" in out
    assert "shut down; the connection is closed" in err
    assert "Traceback" not in err


async def test_cli_server_killed_is_a_lost_connection(server: ServerProcess) -> None:
    """When the server vanishes without a word, the client reports a lost connection, exit 1."""
    async with ClientProcess.run("--port", str(server.port), "--name", "alice") as client:
        assert "welcome" in await client.line()
        server.kill()
        _, err = await client.finish()
    assert client.proc.returncode == 1
    assert f"lost the connection to 127.0.0.1:{server.port}" in err
    assert "Traceback" not in err


async def test_cli_ctrl_c_is_quiet(server: ServerProcess, watcher: ChatClient) -> None:
    """Ctrl-C (SIGINT) ends the client at once: exit 130, no traceback."""
    async with ClientProcess.run("--port", str(server.port), "--name", "alice") as client:
        assert "welcome" in await client.line()
        client.proc.send_signal(signal.SIGINT)
        _, err = await client.finish()
    assert client.proc.returncode == 130
    assert err == ""
    await watcher.expect("leave", name="alice")


async def test_cli_closed_stdout_is_quiet(server: ServerProcess, watcher: ChatClient) -> None:
    """`triochat client --json | head -1`: when stdout's reader leaves, exit quietly."""
    args = ("--port", str(server.port), "--name", "piped", "--json")
    async with ClientProcess.run(*args) as client:
        assert '"welcome"' in await client.line()
        await client.close_stdout()  # what `head -1` does after its line
        await client.type("now the client has something to print\n")
        _, err = await client.finish(stdout=False)
    assert client.proc.returncode == 0
    assert err == ""


async def test_cli_save_svg_records_the_session(
    server: ServerProcess, watcher: ChatClient, tmp_path: Path
) -> None:
    """--save-svg writes what was shown as an SVG picture on exit."""
    picture = tmp_path / "session.svg"
    done = await run_client(
        "--port", str(server.port), "--name", "artist", "--save-svg", str(picture), stdin="hi\n"
    )
    assert done.returncode == 0, done.stderr
    svg = await trio.Path(picture).read_text()
    assert svg.startswith("<svg")
    assert "artist" in svg


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_client_arguments(parser)
    return parser.parse_args(argv)


def test_client_arguments_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without flags or variables: 127.0.0.1:30000 as the login name, chat output."""
    for var in ("TRIOCHAT_HOST", "TRIOCHAT_PORT", "TRIOCHAT_NAME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("getpass.getuser", lambda: "carol")
    args = parse()
    assert (args.host, args.port, args.name, args.json) == ("127.0.0.1", 30000, "carol", False)
    assert parse("--port", "1234", "--json").port == 1234


def test_default_name_is_a_valid_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """A login name with characters a name may not use is cleaned up; none at all is guest."""
    monkeypatch.setattr("getpass.getuser", lambda: r"CORP\John Doe")
    assert default_name() == "CORP-John-Doe"

    def no_user() -> str:
        raise OSError("no login name")

    monkeypatch.setattr("getpass.getuser", no_user)
    assert default_name() == "guest"


def test_connect_error_message_names_the_problem() -> None:
    """Refused, unknown host and other errors each get a specific hint."""
    refused = OSError("all attempts failed")
    refused.__cause__ = ExceptionGroup("x", [ConnectionRefusedError(111, "refused")])
    assert "is `triochat server` running" in connect_error_message("h", 1, refused)
    unknown = socket.gaierror(-2, "Name or service not known")
    assert "unknown host 'h'" in connect_error_message("h", 1, unknown)
    other = OSError(113, "No route to host")
    assert connect_error_message("h", 1, other) == (
        "cannot connect to h:1: No route to host; check --host/--port and your network"
    )
