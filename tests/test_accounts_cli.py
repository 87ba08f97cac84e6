"""Accounts and moderation with the real ``triochat server`` command over loopback.

The server hashes at its real cost here (about 0.1 s a password).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from tests.conftest import StartProcess
from tests.procs import ServerProcess, run_triochat
from triochat.testing import Peer

BANNED_LOCAL = "127.0.0.2"  # a second loopback address (Linux routes all of 127/8 to lo)
SERVER_PASSWORD = "open sesame"


@pytest.mark.parametrize("problem", ["missing", "empty"])
def test_accounts_cli_bad_password_file_is_one_line_and_exit_2(
    tmp_path: Path, problem: str
) -> None:
    """A --password-file that cannot be read, or whose first line is empty, stops start-up."""
    path = tmp_path / "secret"
    if problem == "empty":
        path.write_text("\nsecond line\n")
    result = run_triochat("server", "--port", "0", "--db", ":memory:", "--password-file", str(path))
    assert result.returncode == 2  # a configuration problem (issue 20)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("triochat: error: ")
    assert str(path) in lines[0]
    assert "listening" not in result.stdout


def test_accounts_cli_bad_op_name_is_a_usage_error() -> None:
    """--op takes a valid name; anything else is exit 2 with the reason."""
    result = run_triochat("server", "--op", "not a name")
    assert result.returncode == 2
    assert "argument --op" in result.stderr
    assert "Traceback" not in result.stderr


def test_accounts_cli_help_names_the_account_flags() -> None:
    """`triochat server --help` documents --op and --password-file."""
    result = run_triochat("server", "--help")
    assert "--op NAME" in result.stdout
    assert "--password-file FILE" in result.stdout


async def _connect(server: ServerProcess, local: str | None = None) -> Peer:
    """A TCP connection to ``server`` from the loopback address ``local`` (closed by stop())."""
    stream = await trio.open_tcp_stream("127.0.0.1", server.port, local_address=local)
    peer = Peer(stream, remote=True)
    server.peers.append(peer)
    return peer


async def _enter(server: ServerProcess, name: str, *, local: str | None = None) -> Peer:
    """Connect (from ``local``), give the server password, and join as ``name``."""
    peer = await _connect(server, local)
    await peer.send(f"/pass {SERVER_PASSWORD}")
    await peer.send(f"/nick {name}")
    assert (await peer.line()).startswith(f"*** welcome, {name}!")
    return peer


async def test_accounts_cli_private_server_ops_and_a_ban_that_outlives_a_restart(
    tmp_path: Path, start_process: StartProcess
) -> None:
    """--password-file and --op over real sockets; a banned address is refused at accept,
    before and after a restart; no password ever reaches the log."""
    secret = tmp_path / "secret"
    secret.write_text(SERVER_PASSWORD + "\n")
    args = ["--db", str(tmp_path / "chat.db"), "--op", "bob", "--password-file", str(secret)]
    server = await start_process(*args)
    try:
        outsider = await server.connect()
        await outsider.send("/nick zed")
        assert await outsider.closed() == [
            "! this server needs a password: send /pass PASSWORD first"
        ]
        bob = await _enter(server, "bob")
        await bob.send("/register correct-horse")
        await bob.expect("*** the name bob is registered to you; next time, /login bob PASSWORD")
        zed = await _enter(server, "zed", local=BANNED_LOCAL)
        await bob.expect("*** zed joined (2 online)")
        await bob.send(f"/ban {BANNED_LOCAL} 1d scanner")
        assert await zed.closed() == ["*** you were banned by bob for 1d: scanner"]
        await bob.expect("*** zed left: banned by bob: scanner (1 online)")
        await bob.expect(f"*** bob banned {BANNED_LOCAL}/32 for 1d: scanner")
    finally:
        await server.stop()
    log = server.log()
    assert f"bob banned {BANNED_LOCAL}/32 for 1d: scanner" in log
    assert "correct-horse" not in log
    assert SERVER_PASSWORD not in log

    server = await start_process(*args)
    try:
        again = await _connect(server, BANNED_LOCAL)
        (line,) = await again.closed()
        assert line.startswith("! you are banned from this server until ")
        bob = await _enter(server, "guest-bob")
        await bob.send("/login bob correct-horse")
        await bob.expect("*** you are now known as bob", "*** you are logged in as bob")
        await bob.send("/bans")
        await bob.expect("*** bans (1):")
    finally:
        await server.stop()
