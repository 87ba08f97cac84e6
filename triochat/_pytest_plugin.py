"""The pytest plugin installed with triochat: fixtures for testing bots in memory.

pytest loads it through the ``pytest11`` entry point (``-p no:triochat`` turns it off).
Its fixtures need pytest-trio (they run on its ``nursery`` fixture); this module
imports nothing but pytest until a test uses one, so having triochat installed costs
other test suites nothing more than the package's own import.

Fixtures:
    triochat_config: the :class:`~triochat.config.ServerConfig` of ``triochat_server``:
        the defaults, changed by the ``triochat_config`` marker
        (``@pytest.mark.triochat_config(rate_limit=0)``) or by overriding the fixture.
    triochat_server: a :class:`~triochat.server.ChatServer` running on the test's
        ``nursery``, history in memory; connect a bot with
        ``triochat.testing.connect_stream(nursery, triochat_server)``.
    triochat_client: a :class:`~triochat.testing.ClientFactory`:
        ``await triochat_client("alice")`` is a :class:`~triochat.testing.ChatClient`
        registered on ``triochat_server`` in JSON mode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import trio

    from triochat.config import ServerConfig
    from triochat.server import ChatServer
    from triochat.testing import ChatClient, ClientFactory

MARKER = "triochat_config"
NEEDS_TRIO = (
    "triochat's fixtures run on pytest-trio's nursery fixture: install pytest-trio "
    "(and set trio_mode = true, or mark async tests with @pytest.mark.trio)"
)


def pytest_configure(config: pytest.Config) -> None:
    """Declare the marker; without pytest-trio, make ``nursery`` say what is missing."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**fields): ServerConfig fields for this test's triochat_server",
    )
    if not config.pluginmanager.hasplugin("trio"):
        config.pluginmanager.register(_WithoutTrio(), "triochat-without-trio")


class _WithoutTrio:
    """Stands in for pytest-trio's ``nursery`` when it is not installed or is disabled."""

    @pytest.fixture
    def nursery(self) -> None:
        """Fail the test with what to install instead of "fixture 'nursery' not found"."""
        pytest.fail(NEEDS_TRIO, pytrace=False)


@pytest.fixture
def triochat_config(request: pytest.FixtureRequest) -> ServerConfig:
    """The server's configuration: defaults plus the ``triochat_config`` marker's fields.

    Markers nearer the test win (function over class over module).
    """
    from triochat.config import ServerConfig

    fields: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers(MARKER))):
        if marker.args:
            raise pytest.UsageError(f"{MARKER} takes keyword arguments only: {marker.args!r}")
        fields.update(marker.kwargs)
    return ServerConfig(**fields)


@pytest.fixture
async def triochat_server(nursery: trio.Nursery, triochat_config: ServerConfig) -> ChatServer:
    """A triochat server on the test's nursery, ready for connections (history in memory)."""
    from triochat.testing import open_test_server

    return await open_test_server(nursery, config=triochat_config)


@pytest.fixture
def triochat_client(nursery: trio.Nursery, triochat_server: ChatServer) -> ClientFactory:
    """``await triochat_client("alice", **hello)``: a ChatClient joined to triochat_server."""
    from triochat.testing import open_client

    async def connect(name: str, **hello: object) -> ChatClient:
        return await open_client(nursery, triochat_server, name, **hello)

    return connect
