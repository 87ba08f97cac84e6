"""Per-address connection limits, over real loopback sockets (the limit needs addresses)."""

from __future__ import annotations

import ipaddress

import pytest
import trio
import trio.testing

from tests.conftest import StartServer
from tests.helpers import Peer
from triochat.config import LOOPBACK, is_trusted, parse_networks


async def _tcp_peer(port: int, name: str) -> Peer:
    peer = Peer(await trio.open_tcp_stream("127.0.0.1", port))
    await peer.send(f"/nick {name}")
    return peer


async def test_limits_one_address_cannot_take_every_slot(
    nursery: trio.Nursery, start_server: StartServer
) -> None:
    """One host could hold all --max-clients connections; now the 3rd of 2 is refused."""
    server = await start_server(max_per_address=2, trusted=())
    listeners = await nursery.start(server.serve_tcp, "127.0.0.1", 0)
    port = listeners[0].socket.getsockname()[1]
    first = await _tcp_peer(port, "first")
    assert (await first.line()).startswith("*** welcome, first!")
    second = await _tcp_peer(port, "second")
    assert (await second.line()).startswith("*** welcome, second!")
    third = await _tcp_peer(port, "third")
    assert await third.closed() == [
        "! too many connections from your address (2); close one and try again"
    ]
    assert server.state.names() == ["first", "second"]
    await second.send("/quit")
    await second.closed()
    await trio.testing.wait_all_tasks_blocked()  # the slot is given back once it has ended
    assert server.connections == 1
    fourth = await _tcp_peer(port, "fourth")
    assert (await fourth.line()).startswith("*** welcome, fourth!")
    for peer in (first, second, third, fourth):
        await peer.stream.aclose()
    await server.shutdown()


async def test_limits_trusted_loopback_is_exempt_by_default(
    nursery: trio.Nursery, start_server: StartServer
) -> None:
    """A local reverse proxy or tunnel (every user from 127.0.0.1) is not capped."""
    server = await start_server(max_per_address=1)
    listeners = await nursery.start(server.serve_tcp, "127.0.0.1", 0)
    port = listeners[0].socket.getsockname()[1]
    peers = [await _tcp_peer(port, f"user{n}") for n in range(3)]
    for n, peer in enumerate(peers):
        assert (await peer.line()).startswith(f"*** welcome, user{n}!")
        await peer.stream.aclose()
    await server.shutdown()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("none", ()),
        ("NONE", ()),
        ("10.0.0.0/8", (ipaddress.ip_network("10.0.0.0/8"),)),
        (
            "192.0.2.7, 2001:db8::/32",
            (ipaddress.ip_network("192.0.2.7/32"), ipaddress.ip_network("2001:db8::/32")),
        ),
        ("10.1.2.3/8", (ipaddress.ip_network("10.0.0.0/8"),)),  # host bits are forgiven
    ],
)
def test_limits_parse_networks(text: str, expected: tuple[object, ...]) -> None:
    """--trusted takes addresses and prefixes, comma separated, or 'none'."""
    assert parse_networks(text) == expected


@pytest.mark.parametrize("text", ["bogus", "10.0.0.0/33", "1.2.3.4.5"])
def test_limits_parse_networks_rejects_garbage(text: str) -> None:
    """A typo in --trusted is an error naming the bad part, never a silent no-op."""
    with pytest.raises(ValueError, match="is not an address"):
        parse_networks(text)


@pytest.mark.parametrize(
    ("host", "trusted"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),  # IPv4 loopback seen through an IPv6 socket
        ("192.0.2.1", False),
        ("2001:db8::1", False),
        ("fe80::1%eth0", False),
    ],
)
def test_limits_loopback_is_trusted_by_default(host: str, trusted: bool) -> None:
    """The default exemption covers all of loopback, in both address families."""
    assert is_trusted(host, LOOPBACK) is trusted
