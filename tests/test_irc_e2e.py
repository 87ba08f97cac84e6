"""End to end: Debian's ``ii`` (a real IRC client) in #lobby with a plain and a JSON member.

``ii`` keeps its conversation in files: it creates ``PREFIX/SERVER/in`` (a FIFO it reads
commands from) and ``out``, and one such pair per channel once joined. The test drives
it through those files against a ``triochat server --irc-port 0`` subprocess, with an
``nc``-style plain member and a JSON member on the native port. Skipped, with the
reason, where ``ii`` is not installed (``apt-get install ii``; CI installs it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Final

import pytest
import trio

from tests.conftest import StartProcess
from tests.procs import IO_TIMEOUT, STOP_TIMEOUT
from triochat.testing import Peer

pytestmark = pytest.mark.skipif(
    shutil.which("ii") is None,
    reason="Debian's ii IRC client is not installed (apt-get install ii)",
)

POLL: Final = 0.05  # seconds between looks at ii's files


def write_fifo(path: Path, line: str) -> None:
    """Write one command line to an ``ii`` FIFO (ii holds it open for reading)."""
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


async def wait_for_path(path: Path) -> None:
    """Wait until ``ii`` has made ``path``."""
    with trio.fail_after(IO_TIMEOUT):
        while not await trio.Path(path).exists():  # noqa: ASYNC110 - a file: no Event to wait on
            await trio.sleep(POLL)


async def wait_for_text(path: Path, text: str) -> str:
    """Wait until ``ii``'s ``out`` file at ``path`` has a line containing ``text``."""
    with trio.fail_after(IO_TIMEOUT):
        while True:
            if await trio.Path(path).exists():
                for line in (await trio.Path(path).read_text()).splitlines():
                    if text in line:
                        return line
            await trio.sleep(POLL)


async def line_with(peer: Peer, text: str) -> str:
    """The next line ``peer`` receives that contains ``text`` (others are skipped)."""
    while text not in (line := await peer.line()):
        pass
    return line


async def test_irc_e2e_ii_talks_with_plain_and_json_members(
    start_process: StartProcess, tmp_path: Path
) -> None:
    """ii joins #lobby by the IRC door; it, a plain and a JSON member read each other."""
    server = await start_process(
        "--db", str(tmp_path / "chat.db"), "--irc-port", "0", "--web-port", "off"
    )
    irc_lines = [line for line in server.stdout if line.startswith("IRC: listening on ")]
    assert irc_lines, server.stdout
    irc_port = int(irc_lines[0].rsplit(":", 1)[1])
    carol = await server.join("carol")
    dave, _ = await server.join_json("dave")
    assert await carol.line() == "*** dave joined (2 online)"

    prefix = tmp_path / "irc"
    ii = await trio.lowlevel.open_process(
        ["ii", "-s", "127.0.0.1", "-p", str(irc_port), "-n", "ircbob", "-i", str(prefix)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        home = prefix / "127.0.0.1"
        await wait_for_path(home / "in")
        await wait_for_text(home / "out", "Welcome to")  # 001: ii logs the server's text
        write_fifo(home / "in", "/j #lobby")
        assert await line_with(carol, "ircbob joined") == "*** ircbob joined (3 online)"
        assert (await dave.event())["type"] == "join"

        lobby = home / "#lobby"
        await wait_for_path(lobby / "in")
        write_fifo(lobby / "in", "hello from ii")
        assert await line_with(carol, "ircbob") == "<ircbob> hello from ii"
        said = await dave.event()
        assert (said["type"], said["from"], said["text"]) == ("say", "ircbob", "hello from ii")

        await carol.send("hi ircbob, from nc")
        await wait_for_text(lobby / "out", "<carol> hi ircbob, from nc")
        await dave.send_json(type="say", text="and from JSON")
        await wait_for_text(lobby / "out", "<dave> and from JSON")
        await carol.send("/topic ii meets nc")
        await wait_for_text(lobby / "out", "ii meets nc")

        write_fifo(home / "in", "/q goodbye")
        assert (await line_with(carol, "ircbob left")).startswith("*** ircbob left")
        with trio.fail_after(STOP_TIMEOUT):
            await ii.wait()
    finally:
        if ii.returncode is None:
            ii.kill()
            await ii.wait()
