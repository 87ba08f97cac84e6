"""The terminal client with accounts: passwords in the hello, logging in again on reconnect.

Real clock (the server hashes in a worker thread; see tests/test_accounts.py).
"""

from __future__ import annotations

import pytest
import trio

from tests.test_accounts import REGISTERED, connect_from, register
from tests.test_client import Dialer, Keyboard, RecordingView, Wire, no_jitter, start_client
from triochat.client.session import PASSWORD_ENV, SessionEnd, chat_session
from triochat.server import ChatServer
from triochat.testing import connect_stream

pytestmark = pytest.mark.usefixtures("cheap_hashing")


async def _account(nursery: trio.Nursery, server: ChatServer, name: str) -> None:
    """Register ``name`` (password ``correct-horse``) and leave."""
    peer = connect_from(nursery, server, "127.0.0.1")
    await register(peer, name)
    await peer.send("/quit")
    await peer.closed()


async def test_client_accounts_password_logs_in_and_survives_a_reconnect(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """With the password, the client joins as its registered name, and rejoins after a cut."""
    await _account(nursery, server, "alice")
    wire, dial = Wire(nursery, server), Dialer(nursery, server)
    dial.gate.set()
    view, _ = await start_client(
        nursery,
        wire.client,
        "alice",
        Keyboard().source,
        reconnect=dial,
        backoff=no_jitter(),
        password="correct-horse",
    )
    await wire.cut()
    await view.wait_for("reconnected; 0 missed messages")
    assert view.me == "alice"
    assert view.errors_text() == ""


async def test_client_accounts_typed_login_is_used_to_rejoin(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """After /login, a reconnect says hello with that name and password (not refused)."""
    await _account(nursery, server, "alice")
    wire, dial, keys = Wire(nursery, server), Dialer(nursery, server), Keyboard()
    dial.gate.set()
    view, _ = await start_client(
        nursery, wire.client, "visitor", keys.source, reconnect=dial, backoff=no_jitter()
    )
    await keys.type("/login alice correct-horse")
    await view.wait_for("you are logged in as alice")
    await wire.cut()
    await view.wait_for("reconnected; 0 missed messages")
    assert view.me == "alice"
    assert view.errors_text() == ""


async def test_client_accounts_registered_name_without_password_explains(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """A registered --name without a password: one line naming the environment variable."""
    await _account(nursery, server, "alice")
    view = RecordingView("alice")
    end = await chat_session(connect_stream(nursery, server), "alice", Keyboard().source, view)
    assert end is SessionEnd.REFUSED
    assert PASSWORD_ENV in view.errors_text()
    assert "the name is registered" in view.errors_text()


async def test_client_accounts_registration_is_shown(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """The account and moderation events are shown as notices."""
    keys = Keyboard()
    view, _ = await start_client(nursery, connect_stream(nursery, server), "bob", keys.source)
    await keys.type("/register correct-horse")
    await view.wait_for(REGISTERED.format("bob").removeprefix("*** "))
