"""Fixtures for the whole suite: a ChatServer on the test's nursery, or a server process.

In memory: ``server`` / ``start_server`` (connect with tests.helpers). As a subprocess:
``start_process`` (tests/procs.py), and ``redis_server`` (tests/redisproc.py) for nodes
that form a cluster. The fixtures that bot authors get from the
installed pytest plugin (``triochat_server``, ``triochat_client``) work here too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import settings

from tests.deadlines import PROFILE
from tests.procs import ServerProcess
from tests.redisproc import RedisServer, redis_server_command
from triochat.core import passwords
from triochat.server import ChatServer
from triochat.testing import open_test_server

settings.load_profile(PROFILE)  # explicit hypothesis deadlines (tests/deadlines.py)

pytest_plugins = ["pytester"]  # tests/test_testing*.py run pytest on generated files

StartServer = Callable[..., Awaitable[ChatServer]]
StartProcess = Callable[..., Awaitable[ServerProcess]]


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
        return await open_test_server(nursery, **overrides)

    return start


@pytest.fixture
async def server(start_server: StartServer) -> ChatServer:
    """A server with the default configuration."""
    return await start_server()


@pytest.fixture
async def start_process(tmp_path: Path) -> AsyncIterator[StartProcess]:
    """Start ``triochat server`` processes, each stopped by PID when the test ends.

    Takes ``ServerProcess.start``'s arguments. Logs go to ``tmp_path`` (``server-1.log``,
    ...) unless the test asks for an unread pipe; teardown runs however the test ended.
    """
    started: list[ServerProcess] = []

    async def start(*args: str, **options: Any) -> ServerProcess:
        if not options.get("log_pipe"):
            options.setdefault("log_path", tmp_path / f"server-{len(started) + 1}.log")
        server = await ServerProcess.start(*args, **options)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            await server.stop()


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A ``redis-server`` on a free loopback port, its data in ``tmp_path/redis``.

    Persistent (an append-only file, fsynced on every write), so that a test can
    restart it with or without its data. Stopped by PID when the test ends. Skips
    the test only if ``redis-server`` is not installed.
    """
    if redis_server_command() is None:
        pytest.skip("redis-server is not installed (the cluster tests need a real one)")
    server = await RedisServer.start(tmp_path / "redis")
    try:
        yield server
    finally:
        await server.stop()


CHEAP_COST = passwords.Cost(n=2**4, r=8, p=1)  # microseconds per hash instead of ~0.1 s


@pytest.fixture
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> passwords.Cost:
    """Hash passwords at a trivial scrypt cost in this process (the format is the same)."""
    monkeypatch.setattr(passwords, "DEFAULT_COST", CHEAP_COST)
    return CHEAP_COST
