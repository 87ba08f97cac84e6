"""The IRC door's line limits: IRCv3 tags on top of the line limit, 417 beyond, in memory."""

from __future__ import annotations

import trio

from tests.test_irc import S, irc_connect, irc_join, lines_until, server_for
from triochat.core.protocols.irclines import MAX_TAG_BYTES


async def test_irc_tags_up_to_4096_bytes_pass_and_more_get_417(nursery: trio.Nursery) -> None:
    """A TAGMSG whose tags take 4096 bytes is relayed whole; one byte more gets 417."""
    server = await server_for(nursery)
    alice = await irc_join(nursery, server, "alice", "message-tags", "echo-message")
    bob = await irc_join(nursery, server, "bob", "message-tags")
    for peer in (alice, bob):
        await peer.send("JOIN #test")
        await lines_until(peer, "366")
    await lines_until(alice, "JOIN")  # bob's
    value = "a" * (MAX_TAG_BYTES - len("@foo=bar;+baz= "))
    tagged = f"@foo=bar;+baz={value} TAGMSG #test"
    assert tagged.index("TAGMSG") == MAX_TAG_BYTES
    await alice.send(tagged)
    relayed = (await bob.line()).rstrip("\r")
    assert f";+baz={value} :alice!alice@{S} TAGMSG #test" in relayed
    await alice.send(f"@foo=bar;+baz={value}a TAGMSG #test")
    got = await lines_until(alice, "417")
    assert got[-1].startswith(f":{S} 417 alice :")
    long_text = f"@foo=bar;+baz={value} PRIVMSG #test :" + "b" * 4096
    await alice.send(long_text)  # the rest over the server's line limit (4096 bytes)
    assert (await lines_until(alice, "417"))[-1].startswith(f":{S} 417 alice :")
    await bob.quiet()


async def test_irc_line_over_the_limit_before_registering_gets_417(
    nursery: trio.Nursery,
) -> None:
    server = await server_for(nursery)
    peer = irc_connect(nursery, server)
    await peer.send("NICK " + "n" * 5000)
    assert (await peer.line()).startswith(f":{S} 417 * :")
    await peer.send(f"@{'t' * MAX_TAG_BYTES} NICK ned")
    assert (await peer.line()).startswith(f":{S} 417 * :")
    await peer.send("NICK ned\r\nUSER ned 0 * :Ned")
    assert (await lines_until(peer, "001"))[-1].startswith(f":{S} 001 ned ")
