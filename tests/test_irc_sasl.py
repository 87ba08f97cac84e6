"""IRC and triochat accounts: SASL PLAIN at registration and after it, NickServ IDENTIFY."""

from __future__ import annotations

import base64

import trio

from tests.helpers import Peer, join
from tests.test_irc import S, irc_connect, irc_join, lines_until, server_for
from triochat.core.names import name_key
from triochat.server import ChatServer

REGISTERED = "*** the name {0} is registered to you; next time, /login {0} PASSWORD"


def plain_credentials(name: str, password: str) -> str:
    return base64.b64encode(f"{name}\0{name}\0{password}".encode()).decode()


async def registered(nursery: trio.Nursery, name: str) -> ChatServer:
    server = await server_for(nursery)
    await register(nursery, server, name, "correct-horse")
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


async def register(nursery: trio.Nursery, server: ChatServer, name: str, password: str) -> None:
    """Register ``name`` on the plain port, as a person would."""
    peer = await join(nursery, server, name)
    await peer.send(f"/register {password}")
    while (text := await peer.line()) != REGISTERED.format(name):
        assert not text.startswith("!"), text
    await peer.send("/quit")
    await peer.closed()


async def sasl_peer(nursery: trio.Nursery, server: ChatServer) -> Peer:
    """An IRC client that asked for sasl and started PLAIN (not registered yet)."""
    peer = irc_connect(nursery, server)
    await peer.send("CAP LS 302\r\nCAP REQ :sasl")
    await lines_until(peer, "CAP")
    await lines_until(peer, "CAP")
    await peer.send("AUTHENTICATE PLAIN")
    assert (await peer.line()).rstrip("\r") == "AUTHENTICATE +"
    return peer


async def test_irc_sasl_response_in_400_byte_chunks(nursery: trio.Nursery) -> None:
    """A long response comes in chunks of 400; one of exactly 400 ends with ``+``."""
    server = await server_for(nursery)
    ana = "é" * 200  # a response of 544 characters: 400, then 144
    bea = "€" * 196 + "ab"  # a response of exactly 800: 400, 400, then +
    await register(nursery, server, "ana", ana)
    await register(nursery, server, "bea", bea)
    for name, password, ending in (("ana", ana, []), ("bea", bea, ["+"])):
        peer = await sasl_peer(nursery, server)
        whole = plain_credentials(name, password)
        for chunk in [whole[i : i + 400] for i in range(0, len(whole), 400)] + ending:
            await peer.send(f"AUTHENTICATE {chunk}")
        got = await lines_until(peer, "903")
        assert got[0].startswith(f":{S} 900 * {name}!{name}@{S} {name} :"), got


async def test_irc_sasl_chunk_over_400_gets_905(nursery: trio.Nursery) -> None:
    server = await server_for(nursery)
    peer = await sasl_peer(nursery, server)
    await peer.send("AUTHENTICATE " + "A" * 500)
    assert (await peer.line()).startswith(f":{S} 905 * :")


async def test_irc_nick_and_user_during_sasl(nursery: trio.Nursery) -> None:
    """NICK and USER between AUTHENTICATE PLAIN and the credentials do not break SASL."""
    server = await registered(nursery, "jill")
    peer = await sasl_peer(nursery, server)
    await peer.send("NICK foo\r\nUSER foo * * :Test")
    await peer.send(f"AUTHENTICATE {plain_credentials('jill', 'correct-horse')}")
    assert (await peer.line()).startswith(f":{S} 900 foo jill!jill@{S} jill :")
    assert (await peer.line()).startswith(f":{S} 903 foo :")
    await peer.send("CAP END")
    assert (await lines_until(peer, "001"))[-1].startswith(f":{S} 001 jill ")


async def test_irc_sasl_after_registration_and_again(nursery: trio.Nursery) -> None:
    """AUTHENTICATE after 001 logs in without renaming; another account may follow."""
    server = await registered(nursery, "foo")
    await register(nursery, server, "jill", "sesame-seed")
    peer = await irc_join(nursery, server, "user", "sasl")
    for name, password in (
        ("foo", "wrong-horse"),
        ("foo", "correct-horse"),
        ("jill", "sesame-seed"),
    ):
        await peer.send("AUTHENTICATE PLAIN")
        assert (await peer.line()).rstrip("\r") == "AUTHENTICATE +"
        await peer.send(f"AUTHENTICATE {plain_credentials(name, password)}")
        if password == "wrong-horse":
            assert (await peer.line()).startswith(f":{S} 904 user :SASL authentication failed")
            continue
        assert (await peer.line()).rstrip("\r") == (
            f":{S} 900 user user!user@{S} {name} :You are now logged in as {name}"
        )
        assert (await peer.line()).startswith(f":{S} 903 user :")
        member = server.state.holder("user")
        assert member is not None
        assert member.account == name_key(name)
    await peer.quiet()  # no rename, no notice after 903
    await peer.send("NICK jill")  # the account's name is its own to take
    assert (await peer.line()).rstrip("\r") == f":user!user@{S} NICK jill"


async def test_irc_sasl_after_registration_needs_the_cap(nursery: trio.Nursery) -> None:
    server = await server_for(nursery)
    peer = await irc_join(nursery, server, "nocap")
    await peer.send("AUTHENTICATE PLAIN")
    assert (await peer.line()).startswith(f":{S} 904 nocap :")


async def test_irc_second_sasl_before_joining_gets_907(nursery: trio.Nursery) -> None:
    server = await registered(nursery, "kim")
    peer = await sasl_peer(nursery, server)
    await peer.send(f"AUTHENTICATE {plain_credentials('kim', 'correct-horse')}")
    await lines_until(peer, "903")
    await peer.send("AUTHENTICATE PLAIN")
    assert (await peer.line()).startswith(f":{S} 907 kim :")
