"""``triochat client`` at a terminal (a pty): the password prompt, and Tab.

A registered name, or a private server: the client prompts with ``getpass`` (no echo,
nothing kept for the up arrow) and joins. Tab completes commands and the names the
client has seen. Servers come from the suite's one launcher and are ended by PID;
every wait is bounded.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import StartProcess
from tests.procs import ServerProcess
from tests.test_accounts import register
from tests.test_client_pty import PtyClient

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")

SECRET = "correct-horse"


async def _registered(server: ServerProcess, name: str) -> None:
    """Register ``name`` (password SECRET) over a plain connection, and leave."""
    peer = await server.connect()
    await register(peer, name, SECRET)
    await peer.send("/quit")


async def test_cli_pty_registered_name_asks_for_its_password(
    start_process: StartProcess, tmp_path: Path
) -> None:
    """A registered --name: a prompt, no echo, a wrong try asked again; the password is
    never shown and the up arrow does not bring it back."""
    server = await start_process("--db", str(tmp_path / "chat.db"))
    await _registered(server, "alice")
    async with PtyClient.run("--port", str(server.port), "--name", "alice") as client:
        await client.wait_for("alice is registered; its password: ")
        await client.type("not-it\r")
        await client.wait_for("wrong password for alice; try again: ")
        await client.type(SECRET + "\r")
        await client.wait_for("welcome, alice!")
        await client.wait_for("alice #lobby> ")
        await client.type("\x1b[A")  # up: the line recall has nothing in it
        await client.type("/who\r")
        await client.wait_for("online (1): alice")
        await client.type("/quit\r")
        assert await client.exit_code() == 0
    assert SECRET.encode() not in client.screen
    assert b"not-it" not in client.screen


async def test_cli_pty_private_server_asks_for_its_password(
    start_process: StartProcess, tmp_path: Path
) -> None:
    """A server with --password-file: the client asks for the server password."""
    secret_file = tmp_path / "server-password"
    secret_file.write_text("open-sesame\n")
    server = await start_process("--db", ":memory:", "--password-file", str(secret_file))
    async with PtyClient.run("--port", str(server.port), "--name", "bob") as client:
        await client.wait_for(f"127.0.0.1:{server.port} is private; its server password: ")
        await client.type("open-sesame\r")
        await client.wait_for("bob #lobby> ")
        await client.type("/quit\r")
        assert await client.exit_code() == 0
    assert b"open-sesame" not in client.screen


async def test_cli_pty_tab_completes_commands_and_names(
    start_process: StartProcess, tmp_path: Path
) -> None:
    """Tab at the prompt completes a command, and a name the client has seen."""
    server = await start_process("--db", ":memory:")
    async with PtyClient.run("--port", str(server.port), "--name", "alice") as client:
        await client.wait_for("alice #lobby> ")
        bob, _ = await server.join_json("bobby")
        await client.wait_for("bobby joined")
        await client.type("/wh\t\r")  # /who
        await client.wait_for("online (2): alice, bobby")
        await client.type("hi @bo\tthere\r")
        said = await bob.event()
        while said.get("type") != "say":
            said = await bob.event()
        assert said["text"] == "hi @bobby there"
        await client.type("/quit\r")
        assert await client.exit_code() == 0
