"""Retake the client's pictures: docs/client-session.svg (dark) and -light.svg (light).

Starts a `triochat server` on a free loopback port (database in a temporary folder),
puts bob and carol on plain TCP (as `nc` would be), and runs `triochat client --name
alice` with its output in colour (FORCE_COLOR) through a pipe. Bob's two lines from
before alice joins are replayed (dim); then live chat, a line that names alice, a
private message each way and a `/search`. The client's coloured output is drawn by
rich's SVG export on a dark and on a light theme, so both pictures are the same
session.

usage: python scripts/client_screenshot.py [OUT_DIR]   (default: docs)
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.terminal_theme import SVG_EXPORT_THEME, TerminalTheme
from rich.text import Text

WAIT_S = 10.0  # longest wait for any one line; the whole run takes about two seconds
WIDTH = 96  # columns of the picture
TITLE = "triochat client: alice"
# A light terminal (white-ish background); the yellow and cyan are darkened so that
# names in them read on it.
LIGHT_THEME = TerminalTheme(
    (250, 250, 250),
    (30, 30, 30),
    [
        (0, 0, 0),
        (196, 26, 22),
        (0, 128, 0),
        (160, 110, 0),
        (50, 100, 230),
        (160, 40, 160),
        (0, 150, 170),
        (118, 118, 118),
    ],
    [
        (90, 90, 90),
        (220, 50, 47),
        (0, 150, 60),
        (180, 130, 0),
        (80, 130, 240),
        (180, 60, 180),
        (30, 160, 180),
        (20, 20, 20),
    ],
)


class Member:
    """Someone on plain TCP, as on `nc`."""

    def __init__(self, port: int, name: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
        self.pending = b""
        self.say(f"/nick {name}")
        self.wait_for(f"*** welcome, {name}!")

    def say(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\n")

    def wait_for(self, start: str) -> None:
        """Read lines until one starts with ``start``."""
        while True:
            while b"\n" not in self.pending:
                data = self.sock.recv(65536)
                if not data:
                    raise SystemExit(f"client_screenshot: connection closed before {start!r}")
                self.pending += data
            line, _, self.pending = self.pending.partition(b"\n")
            if line.decode().startswith(start):
                return


class Output:
    """A process's stdout, read on a thread, waited on by content."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.data = b""
        self.lock = threading.Condition()
        assert process.stdout is not None
        self.stream = process.stdout
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while chunk := os.read(self.stream.fileno(), 65536):
            with self.lock:
                self.data += chunk
                self.lock.notify_all()

    def wait_for(self, text: str) -> None:
        with self.lock:
            if not self.lock.wait_for(lambda: text.encode() in self.data, timeout=WAIT_S):
                raise SystemExit(f"client_screenshot: alice never saw {text!r}")


def start_server(work: Path) -> tuple[subprocess.Popen[bytes], int]:
    flags = ["--host", "127.0.0.1", "--port", "0", "--web-port", "off", "--rate-limit", "0"]
    with (work / "server.log").open("wb") as log:  # its log, kept out of the way
        server = subprocess.Popen(
            [sys.executable, "-m", "triochat", "server", *flags, "--db", str(work / "chat.db")],
            stdout=subprocess.PIPE,
            stderr=log,
        )
    assert server.stdout is not None
    for raw in server.stdout:
        line = raw.decode().strip()
        if line.startswith("listening on 127.0.0.1:"):
            return server, int(line.rsplit(":", 1)[1])
    server.wait()
    log_text = (work / "server.log").read_text()
    raise SystemExit(f"client_screenshot: the server did not start:\n{log_text}")


def session(port: int) -> bytes:
    """Alice's coloured output of the session."""
    bob = Member(port, "bob")
    bob.say("morning! the release build is green again")
    bob.say("alice, can you tag it after lunch?")
    time.sleep(0.2)  # stored before alice asks for the room's history
    env = {**os.environ, "FORCE_COLOR": "1", "COLUMNS": str(WIDTH), "TZ": "UTC"}
    alice = subprocess.Popen(
        [sys.executable, "-m", "triochat", "client", "--port", str(port), "--name", "alice"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    assert alice.stdin is not None
    out = Output(alice)

    def type_line(line: str, then: str) -> None:
        assert alice.stdin is not None
        alice.stdin.write(line.encode() + b"\n")
        alice.stdin.flush()
        out.wait_for(then)

    out.wait_for("welcome, alice")
    carol = Member(port, "carol")
    out.wait_for("carol")
    carol.say("[bold]after[/bold] lunch :smile:")
    out.wait_for("after[/bold]")
    type_line("sure, I'll tag it at two", "at two")
    bob.say("@alice the release notes are in the wiki")
    out.wait_for("in the wiki")
    bob.say("/msg alice can you review #142 first?")
    out.wait_for("review #142")
    type_line("/msg bob on it", "on it")
    type_line("/search release", "found, newest first")
    out.wait_for("around ID")
    alice.stdin.close()
    alice.wait(timeout=WAIT_S)
    for member in (bob, carol):
        member.sock.close()
    return out.data


def main() -> None:
    out_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "docs")
    with tempfile.TemporaryDirectory() as work:
        server, port = start_server(Path(work))
        try:
            data = session(port)
        finally:
            server.terminate()
            server.wait(timeout=WAIT_S)
    for theme, name in (
        (SVG_EXPORT_THEME, "client-session.svg"),
        (LIGHT_THEME, "client-session-light.svg"),
    ):
        console = Console(record=True, width=WIDTH, file=io.StringIO(), force_terminal=True)
        for line in data.decode().splitlines():
            console.print(Text.from_ansi(line), soft_wrap=True)
        console.save_svg(str(out_dir / name), title=TITLE, theme=theme)
        print(f"wrote {out_dir / name}")


if __name__ == "__main__":
    main()
