"""Fixtures for the server tests: a running ChatServer on the test's nursery."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from triochat.config import ServerConfig
from triochat.core import passwords
from triochat.server import ChatServer

StartServer = Callable[..., Awaitable[ChatServer]]


@pytest.fixture(autouse=True)
def _private_data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Servers started by a test keep their default database in that test's own folder.

    ``triochat server`` without ``--db`` writes to the platform's user data folder,
    which honours ``XDG_DATA_HOME``; subprocesses inherit the environment.
    """
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data-home"))


@pytest.fixture
def start_server(nursery: trio.Nursery) -> StartServer:
    """Start a server (room task only; connect with tests.helpers.connect) with overrides."""

    async def start(**overrides: Any) -> ChatServer:
        server = ChatServer(ServerConfig(**overrides))
        await nursery.start(server.run)
        return server

    return start


@pytest.fixture
async def server(start_server: StartServer) -> ChatServer:
    """A server with the default configuration."""
    return await start_server()


CHEAP_COST = passwords.Cost(n=2**4, r=8, p=1)  # microseconds per hash instead of ~0.1 s


@pytest.fixture
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> passwords.Cost:
    """Hash passwords at a trivial scrypt cost in this process (the format is the same)."""
    monkeypatch.setattr(passwords, "DEFAULT_COST", CHEAP_COST)
    return CHEAP_COST
