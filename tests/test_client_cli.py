"""The ``triochat client`` command as a process, against a real ``triochat server``.

Loopback only; every process started here is killed on the way out, and every wait is
bounded. The "watcher" is a plain socket speaking JSON mode, to see what the server got.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from triochat.client.session import add_client_arguments, connect_error_message, default_name

WAIT = 20.0  # seconds: generous bound for a process to start or finish on a slow CI box
CLIENT = [sys.executable, "-m", "triochat", "client"]


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without anything that would change the client's defaults."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TRIOCHAT_") and k not in ("FORCE_COLOR", "TTY_COMPATIBLE")
    }
    env.update(extra)
    return env


def read_line(stream: IO[str], timeout: float = WAIT) -> str:
    """One line from a child's pipe, or fail after ``timeout`` seconds."""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"no output within {timeout}s")
    return stream.readline()


def stop(proc: subprocess.Popen[str]) -> None:
    """Kill ``proc`` if it is still running, reap it and close its pipes."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(WAIT)
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


@pytest.fixture
def server() -> Iterator[tuple[subprocess.Popen[str], int]]:
    """A real ``triochat server`` on a free loopback port."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "triochat", "server", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=clean_env(),
    )
    try:
        assert proc.stdout is not None
        match = re.match(r"listening on 127\.0\.0\.1:(\d+)", read_line(proc.stdout))
        assert match, "server did not report its port"
        yield proc, int(match[1])
    finally:
        stop(proc)


class Watcher:
    """A JSON-mode member on a plain socket."""

    def __init__(self, port: int, name: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.file = self.sock.makefile("r", encoding="utf-8")
        self.sock.sendall(json.dumps({"type": "hello", "name": name}).encode() + b"\n")
        self.expect("welcome")

    def expect(self, kind: str, **fields: Any) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            line = self.file.readline()
            assert line, f"connection closed before {kind}"
            event: dict[str, Any] = json.loads(line)
            if event["type"] == kind and all(event.get(k) == v for k, v in fields.items()):
                return event
        raise AssertionError(f"no {kind} within {WAIT}s")

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def watcher(server: tuple[subprocess.Popen[str], int]) -> Iterator[Watcher]:
    member = Watcher(server[1], "watcher")
    try:
        yield member
    finally:
        member.close()


def run_client(*args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLIENT, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=WAIT,
        env=clean_env(**env),
        check=False,
    )


def test_cli_piped_stdin_posts_every_line_and_exits_0(
    server: tuple[subprocess.Popen[str], int], watcher: Watcher
) -> None:
    """`echo ... | triochat client` sends every line, waits for the server, exits 0, plain text."""
    lines = [f"build {n} passed" for n in range(25)]  # past the burst: the server reads slowly
    done = run_client("--port", str(server[1]), "--name", "ci", stdin="\n".join(lines) + "\n")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "\x1b" not in done.stdout  # stdout is a pipe: no escape codes
    assert re.search(r"^\d\d:\d\d <ci> build 24 passed$", done.stdout, re.MULTILINE)
    assert [watcher.expect("say", **{"from": "ci"})["text"] for _ in lines] == lines
    watcher.expect("leave", name="ci", reason="quit")


def test_cli_json_output_for_tools(
    server: tuple[subprocess.Popen[str], int], watcher: Watcher
) -> None:
    """--json prints each event as exactly one JSON object per line."""
    done = run_client("--port", str(server[1]), "--name", "bot", "--json", stdin="/who\n")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["type"] for e in events] == ["welcome", "who"]
    assert events[1]["names"] == ["bot", "watcher"]


def test_cli_env_sets_defaults_and_flags_win(
    server: tuple[subprocess.Popen[str], int], watcher: Watcher
) -> None:
    """TRIOCHAT_HOST/PORT/NAME set the defaults; a flag overrides its variable."""
    port = str(server[1])
    done = run_client(
        stdin="hi\n", TRIOCHAT_HOST="127.0.0.1", TRIOCHAT_PORT=port, TRIOCHAT_NAME="envname"
    )
    assert done.returncode == 0, done.stderr
    assert "welcome, envname!" in done.stdout
    done = run_client("--name", "flagname", stdin="hi\n", TRIOCHAT_PORT=port, TRIOCHAT_NAME="env")
    assert "welcome, flagname!" in done.stdout


def test_cli_name_taken_shows_reason_and_fails(
    server: tuple[subprocess.Popen[str], int], watcher: Watcher
) -> None:
    """A taken --name prints the server's reason on one line and exits non-zero."""
    done = run_client("--port", str(server[1]), "--name", "WATCHER", stdin="hi\n")
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


def test_cli_connection_refused_one_line() -> None:
    """Nothing listening: one line naming host:port and what to try, exit 1, no traceback."""
    port = free_port()
    done = run_client("--port", str(port))
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert f"127.0.0.1:{port}" in done.stderr
    assert "connection refused" in done.stderr
    assert "triochat server" in done.stderr


def test_cli_unknown_host_one_line() -> None:
    """An unresolvable host: one line saying so and what to check, exit 1."""
    done = run_client("--host", "no-such-host.invalid")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert "unknown host 'no-such-host.invalid'" in done.stderr


def test_cli_bad_port_variable_is_a_usage_error() -> None:
    """A malformed TRIOCHAT_PORT is reported by argparse, naming the variable."""
    done = run_client(TRIOCHAT_PORT="lots")
    assert done.returncode == 2
    assert "TRIOCHAT_PORT" in done.stderr
    assert "Traceback" not in done.stderr


def finish(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Wait for ``proc`` to exit by itself (its stdin stays open), then read its output."""
    proc.wait(WAIT)
    assert proc.stdout is not None
    assert proc.stderr is not None
    return proc.stdout.read(), proc.stderr.read()


def start_interactive_client(port: int, name: str) -> subprocess.Popen[str]:
    """A client whose stdin stays open (a person who has not quit), once it has joined."""
    proc = subprocess.Popen(
        [*CLIENT, "--port", str(port), "--name", name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    assert proc.stdout is not None
    assert "welcome" in read_line(proc.stdout)
    return proc


def test_cli_server_shutdown_ends_client(server: tuple[subprocess.Popen[str], int]) -> None:
    """When the server shuts down, the client shows it, says so on stderr and exits 1."""
    proc = start_interactive_client(server[1], "alice")
    try:
        server[0].send_signal(signal.SIGINT)
        out, err = finish(proc)
    finally:
        stop(proc)
    assert proc.returncode == 1
    assert "server is shutting down" in out
    assert "shut down; the connection is closed" in err
    assert "Traceback" not in err


def test_cli_server_killed_is_a_lost_connection(
    server: tuple[subprocess.Popen[str], int],
) -> None:
    """When the server vanishes without a word, the client reports a lost connection, exit 1."""
    proc = start_interactive_client(server[1], "alice")
    try:
        server[0].kill()
        _, err = finish(proc)
    finally:
        stop(proc)
    assert proc.returncode == 1
    assert f"lost the connection to 127.0.0.1:{server[1]}" in err
    assert "Traceback" not in err


def test_cli_ctrl_c_is_quiet(server: tuple[subprocess.Popen[str], int], watcher: Watcher) -> None:
    """Ctrl-C (SIGINT) ends the client at once: exit 130, no traceback."""
    proc = start_interactive_client(server[1], "alice")
    try:
        proc.send_signal(signal.SIGINT)
        _, err = finish(proc)
    finally:
        stop(proc)
    assert proc.returncode == 130
    assert err == ""
    watcher.expect("leave", name="alice")


def test_cli_closed_stdout_is_quiet(
    server: tuple[subprocess.Popen[str], int], watcher: Watcher
) -> None:
    """`triochat client --json | head -1`: when stdout's reader leaves, exit quietly."""
    proc = subprocess.Popen(
        [*CLIENT, "--port", str(server[1]), "--name", "piped", "--json"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    try:
        assert proc.stdin is not None
        assert proc.stdout is not None
        assert '"welcome"' in read_line(proc.stdout)
        proc.stdout.close()  # what `head -1` does after its line
        proc.stdin.write("now the client has something to print\n")
        proc.stdin.flush()
        proc.wait(WAIT)
        assert proc.stderr is not None
        err = proc.stderr.read()
    finally:
        stop(proc)
    assert proc.returncode == 0
    assert err == ""


def test_cli_save_svg_records_the_session(
    server: tuple[subprocess.Popen[str], int], watcher: Watcher, tmp_path: Path
) -> None:
    """--save-svg writes what was shown as an SVG picture on exit."""
    picture = tmp_path / "session.svg"
    done = run_client(
        "--port", str(server[1]), "--name", "artist", "--save-svg", str(picture), stdin="hi\n"
    )
    assert done.returncode == 0, done.stderr
    svg = picture.read_text()
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
