"""Accounts and moderation through the whole server (hub, worker threads, store).

Real clock, not virtual time: passwords are hashed in a worker thread, and an
autojumping clock would leap past deadlines while the thread works. The scrypt cost is
lowered for speed (the ``cheap_hashing`` fixture); the format is the real one.
"""

from __future__ import annotations

import logging
import threading
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing

from tests.conftest import StartServer
from triochat.config import ServerConfig
from triochat.core.passwords import Job, Outcome, check
from triochat.server import ChatServer
from triochat.server import jobs as jobs_module
from triochat.server.transport import StreamTransport
from triochat.store import SQLiteStore
from triochat.testing import Peer, join, join_json, open_test_server

pytestmark = pytest.mark.usefixtures("cheap_hashing")

REMOTE = "198.51.100.7"  # a client on another machine (TEST-NET-2)
REGISTERED = "*** the name {0} is registered to you; next time, /login {0} PASSWORD"


def connect_from(
    nursery: trio.Nursery, server: ChatServer, host: str, *, secure: bool = False
) -> Peer:
    """An in-memory connection that the server sees as coming from ``host``."""
    client, server_side = trio.testing.memory_stream_pair()
    serve = partial(
        server.serve_transport, StreamTransport(server_side), f"{host}:40000", host, secure=secure
    )
    nursery.start_soon(serve)
    return Peer(client)


async def register(peer: Peer, name: str, password: str = "correct-horse") -> None:
    """Join ``peer`` as ``name`` (plain) and register it."""
    await peer.send(f"/nick {name}")
    assert (await peer.line()).startswith(f"*** welcome, {name}!")
    await peer.send(f"/register {password}")
    while (line := await peer.line()) != REGISTERED.format(name):
        assert not line.startswith("!"), line


async def test_accounts_register_then_login_through_the_hub(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """Register; the name is then refused to a guest and a bare hello, and given for the
    right password only."""
    alice = connect_from(nursery, server, "127.0.0.1")
    await register(alice, "alice")
    await alice.send("/quit")
    await alice.closed()

    bob = await join(nursery, server, "bob")
    await bob.send("/nick alice")
    await bob.expect("! the name alice is registered; /login alice PASSWORD")

    bare = connect_from(nursery, server, "127.0.0.1")
    await bare.send_json(type="hello", name="alice")
    assert (await bare.event())["code"] == "name-registered"
    await bare.closed()

    wrong = connect_from(nursery, server, "127.0.0.1")
    await wrong.send_json(type="hello", name="alice", password="wrong-horse")
    assert (await wrong.event())["code"] == "bad-password"
    await wrong.closed()

    right = connect_from(nursery, server, "127.0.0.1")
    await right.send_json(type="hello", name="alice", password="correct-horse")
    await right.send_json(type="say", text="sent before the welcome")
    welcome = await right.event()
    assert (welcome["type"], welcome["name"]) == ("welcome", "alice")
    await bob.expect("*** alice joined (2 online)", "<alice> sent before the welcome")


async def test_accounts_hashing_never_stalls_the_room(
    nursery: trio.Nursery, server: ChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a password is being hashed, everyone else chats on: the hub never waits."""
    release = threading.Event()

    def slow_check(job: Job, stored: str | None) -> Outcome:
        assert release.wait(10), "the test never released the hash"
        return check(job, stored)

    monkeypatch.setattr(jobs_module, "check", slow_check)
    alice = await join(nursery, server, "alice")
    bob = await join(nursery, server, "bob")
    carol = await join(nursery, server, "carol")
    await alice.expect("*** bob joined (2 online)", "*** carol joined (3 online)")
    await bob.expect("*** carol joined (3 online)")
    await alice.send("/register correct-horse")
    await trio.sleep(0.05)  # the job is in the worker thread, blocked
    await bob.send("still here")
    await carol.expect("<bob> still here")
    await alice.expect("<bob> still here")
    release.set()
    await alice.expect(REGISTERED.format("alice"))


async def test_accounts_brute_force_is_throttled_and_logged(
    nursery: trio.Nursery, server: ChatServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Past 5 failures a minute from one address, even the right password must wait."""
    alice = connect_from(nursery, server, "127.0.0.1")
    await register(alice, "alice")
    await alice.send("/quit")
    await alice.closed()
    caplog.set_level(logging.WARNING)
    for _ in range(6):
        guess = connect_from(nursery, server, REMOTE)
        await guess.send("/login alice guess-guess")
        assert (await guess.line()).startswith("*** welcome, guest-")
        assert (await guess.line()).startswith("! wrong password for alice")
        await guess.send("/quit")
    last = connect_from(nursery, server, REMOTE)
    await last.send_json(type="hello", name="alice", password="correct-horse")
    event = await last.event()
    assert event["code"] == "too-many-attempts"
    await last.closed()
    failures = [r.getMessage() for r in caplog.records if "failed login" in r.getMessage()]
    assert len(failures) == 6
    assert all(f"the account alice from {REMOTE}" in line for line in failures)
    assert not any("guess-guess" in r.getMessage() for r in caplog.records)
    elsewhere = connect_from(nursery, server, "192.0.2.1")
    await elsewhere.send_json(type="hello", name="bob")
    assert (await elsewhere.event())["type"] == "welcome"


async def test_accounts_cleartext_warning_only_for_remote_cleartext(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """A password over TCP from another machine is warned about; over TLS or loopback not."""
    remote = connect_from(nursery, server, REMOTE)
    await register(remote, "alice")  # the warning comes before the confirmation
    secure = connect_from(nursery, server, "192.0.2.1", secure=True)
    local = connect_from(nursery, server, "::1")
    for peer, name in ((secure, "bob"), (local, "carol")):
        await peer.send(f"/nick {name}")
        await peer.line()
        await peer.send("/register correct-horse")
        lines = [await peer.line()]
        while lines[-1] != REGISTERED.format(name):
            lines.append(await peer.line())
        assert not [line for line in lines if "unencrypted" in line]
    again = connect_from(nursery, server, REMOTE)
    await again.send("/nick dave")
    await again.line()
    await again.send("/register correct-horse")
    assert (await again.line()).startswith("*** your password crossed the network unencrypted")
    await again.expect(REGISTERED.format("dave"))


async def test_accounts_server_password_first(
    nursery: trio.Nursery, start_server: StartServer
) -> None:
    """--password-file: /pass or "server_password" first; without it, one line and closed."""
    server = await start_server(server_password="open sesame")
    plain = connect_from(nursery, server, "127.0.0.1")
    await plain.send("/pass open sesame")
    await plain.send("/nick alice")
    assert (await plain.line()).startswith("*** welcome, alice!")
    client = connect_from(nursery, server, "127.0.0.1")
    await client.send_json(type="hello", name="bob", server_password="open sesame")
    assert (await client.event())["type"] == "welcome"
    stranger = connect_from(nursery, server, "127.0.0.1")
    await stranger.send("/nick zed")
    assert await stranger.closed() == ["! this server needs a password: send /pass PASSWORD first"]
    wrong = connect_from(nursery, server, "127.0.0.1")
    await wrong.send_json(type="hello", name="zed", server_password="open says me")
    assert (await wrong.event())["code"] == "server-password"
    await wrong.closed()


async def test_moderation_ban_by_address_is_refused_at_accept(
    nursery: trio.Nursery, start_server: StartServer
) -> None:
    """A banned range: its members are dropped, and its new connections get one line."""
    server = await start_server(ops=("bob",))
    bob = connect_from(nursery, server, "127.0.0.1")
    await register(bob, "bob")
    zed = connect_from(nursery, server, REMOTE)
    await zed.send("/nick zed")
    await zed.line()
    await bob.expect("*** zed joined (2 online)")
    await bob.send("/ban 198.51.100.0/24 1h scanner")
    assert await zed.closed() == ["*** you were banned by bob for 1h: scanner"]
    await bob.expect(
        "*** zed left: banned by bob: scanner (1 online)",
        "*** bob banned 198.51.100.0/24 for 1h: scanner",
    )
    again = connect_from(nursery, server, "198.51.100.99")
    (line,) = await again.closed()
    assert line.startswith("! you are banned from this server until ")
    other = connect_from(nursery, server, "192.0.2.1")
    await other.send("/nick amy")
    assert (await other.line()).startswith("*** welcome, amy!")


async def test_moderation_kick_and_mute_over_the_wire(
    nursery: trio.Nursery, start_server: StartServer
) -> None:
    """/kick closes the connection; /mute keeps a member reading but not speaking."""
    server = await start_server(ops=("bob",))
    bob = connect_from(nursery, server, "127.0.0.1")
    await register(bob, "bob")
    zed = await join(nursery, server, "zed")
    amy = await join_json(nursery, server, "amy")
    await bob.send("/mute amy 10m")
    mod = await amy.event()
    assert (mod["type"], mod["action"], mod["target"], mod["by"]) == ("mod", "mute", "amy", "bob")
    await amy.send_json(type="say", text="can I speak?")
    assert (await amy.event())["code"] == "muted"
    await bob.send("/kick zed bye")
    assert await zed.closed() == [
        "*** amy joined (3 online)",
        "*** bob muted amy for 10m",
        "*** you were kicked by bob: bye",
    ]
    left = await amy.event()
    assert (left["type"], left["reason"]) == ("leave", "kicked by bob: bye")


async def test_moderation_bans_mutes_accounts_and_locks_survive_a_restart(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """Everything moderation and accounts store is there after a restart."""
    db = tmp_path / "chat.db"
    config = ServerConfig(ops=("bob",))
    first = await open_test_server(nursery, config=config, store=SQLiteStore.open(db))
    bob = connect_from(nursery, first, "127.0.0.1")
    await register(bob, "bob")
    await register(connect_from(nursery, first, "127.0.0.1"), "alice")
    for line in ("/ban troll", "/ban 198.51.100.0/24 spam", "/mute loud", "/locktopic"):
        await bob.send(line)
    await bob.send("/bans")
    while not (await bob.line()).startswith("*** bans"):
        pass
    await first.shutdown()

    second = await open_test_server(nursery, config=config, store=SQLiteStore.open(db))
    troll = connect_from(nursery, second, "127.0.0.1")
    await troll.send("/nick troll")
    await troll.line()
    assert (await troll.line()).startswith("! the name troll is banned; you joined as guest-")
    await troll.send("/topic mine")
    await troll.expect("! the topic of #lobby is locked: only operators may change it")
    refused = connect_from(nursery, second, REMOTE)
    assert await refused.closed() == ["! you are banned from this server"]
    loud = connect_from(nursery, second, "127.0.0.1")
    await loud.send("/nick loud")
    await loud.line()
    await loud.send("hello?")
    await loud.expect("! you are muted: you can read but not speak")
    alice = connect_from(nursery, second, "127.0.0.1")
    await alice.send_json(type="hello", name="alice", password="correct-horse")
    assert (await alice.event())["type"] == "welcome"
    bob = connect_from(nursery, second, "127.0.0.1")
    await bob.send("/login bob correct-horse")
    await bob.send("/bans")
    while (line := await bob.line()) != "*** bans (2):":
        assert not line.startswith("!"), line
    await second.shutdown()


async def test_accounts_min_password_length_is_the_servers_setting(
    nursery: trio.Nursery, start_server: StartServer
) -> None:
    """--min-password-length reaches the accounts: six characters register where it says 6."""
    server = await start_server(min_password_length=6)
    alice = connect_from(nursery, server, "127.0.0.1")
    await register(alice, "alice", "sesame")
    bob = connect_from(nursery, server, "127.0.0.1")
    await bob.send("/nick bob")
    assert (await bob.line()).startswith("*** welcome, bob!")
    await bob.send("/register fives")
    while not (line := await bob.line()).startswith("!"):
        pass
    assert line == "! a password needs at least 6 characters"
