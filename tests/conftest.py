"""Fixtures for the server tests: a running ChatServer on the test's nursery."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio

from triochat.config import ServerConfig
from triochat.server import ChatServer

StartServer = Callable[..., Awaitable[ChatServer]]


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
