"""Test a bot or integration against a real triochat server: in memory, in virtual time.

The server is the real one (:class:`~triochat.server.ChatServer`, the same hub and
rooms as ``triochat server``) but its connections are trio's in-memory streams, so a
test needs no port, no subprocess and no sleeps, and runs in trio's virtual time
(``autojump_clock``). See docs/testing.md for a bot tested in a dozen lines.

* :func:`open_test_server` starts a server on a nursery (history kept in memory).
* :class:`ChatClient` is a scripted member in JSON mode: ``join``, ``say``,
  ``expect(type, **fields)``, ``quiet``. :func:`open_client` connects one.
* :func:`connect_stream` is the in-memory stand-in for ``trio.open_tcp_stream``: hand
  it to the bot under test.
* :class:`Peer` is the far end of one connection at the level of lines: send lines,
  read lines or JSON events, expect exact lines, check that nothing else arrived.
  :func:`connect`, :func:`join` and :func:`join_json` open one.
* The pytest plugin (installed with triochat; see docs/testing.md) adds the fixtures
  ``triochat_config``, ``triochat_server`` and ``triochat_client``.

Every wait is bounded by a timeout in trio's clock (so virtual under
``autojump_clock``); a failed expectation raises ``AssertionError`` saying what came
instead.
"""

from triochat.testing._client import ChatClient, ClientFactory, open_client
from triochat.testing._peer import (
    LINE_TIMEOUT,
    JsonEvent,
    Peer,
    connect,
    connect_stream,
    join,
    join_json,
    open_test_server,
)

__all__ = [
    "LINE_TIMEOUT",
    "ChatClient",
    "ClientFactory",
    "JsonEvent",
    "Peer",
    "connect",
    "connect_stream",
    "join",
    "join_json",
    "open_client",
    "open_test_server",
]
