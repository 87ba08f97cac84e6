"""IRC and triochat accounts: SASL PLAIN at registration, NickServ IDENTIFY after it."""

from __future__ import annotations

import base64

import trio

from tests.helpers import join
from tests.test_irc import S, irc_connect, lines_until, server_for
from triochat.core.names import name_key
from triochat.server import ChatServer

REGISTERED = "*** the name {0} is registered to you; next time, /login {0} PASSWORD"


def plain_credentials(name: str, password: str) -> str:
    return base64.b64encode(f"{name}\0{name}\0{password}".encode()).decode()


async def registered(nursery: trio.Nursery, name: str) -> ChatServer:
    server = await server_for(nursery)
    peer = await join(nursery, server, name)
    await peer.send("/register correct-horse")
    while (text := await peer.line()) != REGISTERED.format(name):
        assert not text.startswith("!"), text
    await peer.send("/quit")
    await peer.closed()
    return server


async def test_irc_sasl_plain_logs_in_to_a_triochat_account(nursery: trio.Nursery) -> None:
    """A right password gets 900 and 903, then 001 under the account's name after CAP END."""
    server = await registered(nursery, "sam")
    peer = irc_connect(nursery, server)
    await peer.send("CAP LS 302\r\nNICK sam\r\nUSER s 0 * :Sam")
    await lines_until(peer, "CAP")
    await peer.send("CAP REQ :sasl")
    assert (await peer.line()).rstrip("\r") == f":{S} CAP sam ACK sasl"
    await peer.send("AUTHENTICATE PLAIN")
    assert (await peer.line()).rstrip("\r") == "AUTHENTICATE +"
    await peer.send(f"AUTHENTICATE {plain_credentials('sam', 'correct-horse')}")
    got = await lines_until(peer, "903")
    assert got[0].startswith(f":{S} 900 sam sam!sam@{S} sam :")
    await peer.send("CAP END")
    assert (await lines_until(peer, "001"))[-1].startswith(f":{S} 001 sam ")
    member = server.state.holder("sam")
    assert member is not None
    assert member.account == name_key("sam")


async def test_irc_sasl_wrong_password_and_registered_nick(nursery: trio.Nursery) -> None:
    """A wrong password gets 904; the registered nick without SASL gets 433."""
    server = await registered(nursery, "sue")
    peer = irc_connect(nursery, server)
    await peer.send("CAP LS 302\r\nNICK sue\r\nUSER s 0 * :Sue\r\nCAP REQ :sasl")
    await lines_until(peer, "CAP")
    await lines_until(peer, "CAP")
    await peer.send("AUTHENTICATE PLAIN")
    await peer.line()
    await peer.send(f"AUTHENTICATE {plain_credentials('sue', 'wrong-horse')}")
    assert (await peer.line()).startswith(f":{S} 904 sue :SASL authentication failed")
    await peer.send("CAP END")
    assert (await peer.line()).startswith(f":{S} 433 * sue :sue is registered")
    await peer.send("NICK sue2")
    assert (await lines_until(peer, "001"))[-1].startswith(f":{S} 001 sue2 ")
    await peer.send("PRIVMSG NickServ :IDENTIFY sue correct-horse")
    assert (await lines_until(peer, "NICK"))[-1].rstrip("\r") == f":sue2!sue2@{S} NICK sue"


async def test_irc_sasl_unknown_mechanism_gets_908_and_904(nursery: trio.Nursery) -> None:
    server = await server_for(nursery)
    peer = irc_connect(nursery, server)
    await peer.send("CAP LS 302\r\nCAP REQ :sasl")
    await lines_until(peer, "CAP")
    await lines_until(peer, "CAP")
    await peer.send("AUTHENTICATE FOO")
    assert (await peer.line()).startswith(f":{S} 908 * PLAIN :")
    assert (await peer.line()).startswith(f":{S} 904 * :")
