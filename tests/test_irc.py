"""The IRC door: registration, channels, messages and numerics, in memory.

An IRC client on the IRC door, a plain member and a JSON member share rooms; every
test reads the exact lines an IRC client would.
"""

from __future__ import annotations

import trio
import trio.testing

from tests.helpers import Peer, join, join_json
from triochat.core.protocols import IRC
from triochat.server import ChatServer
from triochat.testing import open_test_server

S = "irc.test"  # the server name the tests give


async def server_for(nursery: trio.Nursery) -> ChatServer:
    server = await open_test_server(nursery, irc_server_name=S)
    assert IRC.server == S
    return server


def irc_connect(nursery: trio.Nursery, server: ChatServer) -> Peer:
    client, server_side = trio.testing.memory_stream_pair()
    nursery.start_soon(server.handle_irc_stream, server_side)
    return Peer(client)


async def lines_until(peer: Peer, code: str) -> list[str]:
    """Lines (without CR) up to and including the first whose verb is ``code``."""
    got: list[str] = []
    while True:
        text = (await peer.line()).rstrip("\r")
        got.append(text)
        words = text.split()
        verb = words[1] if text.startswith((":", "@")) and len(words) > 1 else words[0]
        if text.startswith("@"):
            verb = words[2]
        if verb == code:
            return got


async def irc_join(nursery: trio.Nursery, server: ChatServer, nick: str, *caps: str) -> Peer:
    peer = irc_connect(nursery, server)
    if caps:
        await peer.send("CAP LS 302")
        await lines_until(peer, "CAP")
        await peer.send(f"CAP REQ :{' '.join(caps)}")
        assert "ACK" in (await peer.line())
    await peer.send(f"NICK {nick}\r\nUSER {nick} 0 * :Real {nick}")
    if caps:
        await peer.send("CAP END")
    await lines_until(peer, "422")
    await trio.testing.wait_all_tasks_blocked()
    return peer


async def test_irc_registration_sends_001_to_005_and_422(nursery: trio.Nursery) -> None:
    """A client is registered once NICK and USER are in: 001-005 with ISUPPORT, then 422."""
    server = await server_for(nursery)
    peer = irc_connect(nursery, server)
    await peer.send("NICK alice\r\nUSER al 0 * :Alice A")
    got = await lines_until(peer, "422")
    assert got[0] == f":{S} 001 alice :Welcome to the triochat IRC network, alice"
    assert [line.split()[1] for line in got] == ["001", "002", "003", "004", "005", "422"]
    isupport = got[4]
    for token in ("UTF8ONLY", "CASEMAPPING=ascii", "CHANTYPES=#", "PREFIX=(ov)@+", "NICKLEN=24"):
        assert token in isupport.split()
    assert server.state.names("#lobby") == []  # an IRC client joins only what it asks for


async def test_irc_registration_waits_for_cap_end(nursery: trio.Nursery) -> None:
    """CAP LS holds registration until CAP END; REQ of an unknown cap is NAKed."""
    server = await server_for(nursery)
    peer = irc_connect(nursery, server)
    await peer.send("CAP LS 302\r\nNICK bob\r\nUSER b 0 * :B")
    ls = (await peer.line()).rstrip("\r")
    assert ls.startswith(f":{S} CAP * LS :")
    assert "sasl=PLAIN" in ls
    assert "server-time" in ls
    await peer.send("CAP REQ :nosuchcap")
    assert (await peer.line()).rstrip("\r") == f":{S} CAP bob NAK nosuchcap"
    await trio.testing.wait_all_tasks_blocked()
    assert server.state.holder("bob") is None
    await peer.send("CAP END")
    assert (await lines_until(peer, "001"))[-1].startswith(f":{S} 001 bob ")


async def test_irc_quit_before_registration_gets_error(nursery: trio.Nursery) -> None:
    """QUIT before registering is answered with ERROR and the connection closes."""
    server = await server_for(nursery)
    peer = irc_connect(nursery, server)
    await peer.send("PRIVMSG #x :hi\r\nQUIT")
    assert (await peer.line()).rstrip("\r") == f":{S} 451 * PRIVMSG :You have not registered"
    assert (await peer.line()).startswith("ERROR :")
    assert await peer.closed() == []


async def test_irc_refused_and_taken_nicks(nursery: trio.Nursery) -> None:
    """A nick triochat refuses is 432; one in use is 433 and the client may try again."""
    server = await server_for(nursery)
    await join(nursery, server, "carol")
    peer = irc_connect(nursery, server)
    await peer.send("NICK bad[nick]")
    assert (await peer.line()).startswith(f":{S} 432 * bad[nick] :")
    await peer.send("NICK carol\r\nUSER c 0 * :C")
    assert (await peer.line()).startswith(f":{S} 433 * carol :")
    await peer.send("NICK carol2")
    assert (await lines_until(peer, "001"))[-1].startswith(f":{S} 001 carol2 ")


async def test_irc_plain_and_json_members_see_each_other(nursery: trio.Nursery) -> None:
    """An IRC, a plain and a JSON member in #lobby see each other's lines as their own kind."""
    server = await server_for(nursery)
    plain = await join(nursery, server, "pat")
    js = await join_json(nursery, server, "jay")
    assert (await plain.line()) == "*** jay joined (2 online)"
    irc = await irc_join(nursery, server, "ian")
    await irc.send("JOIN #lobby")
    got = await lines_until(irc, "366")
    assert got[0] == f":ian!ian@{S} JOIN #lobby"
    names = got[-2].split(" :", 1)[1].split()
    assert sorted(names) == ["ian", "jay", "pat"]  # the lobby has no founder
    assert (await plain.line()) == "*** ian joined (3 online)"
    assert (await js.event())["type"] == "join"
    await irc.send("PRIVMSG #lobby :hello all")
    assert (await plain.line()) == "<ian> hello all"
    said = await js.event()
    assert (said["type"], said["from"], said["text"]) == ("say", "ian", "hello all")
    await plain.send("hi ian")
    assert (await irc.line()).rstrip("\r") == f":pat!pat@{S} PRIVMSG #lobby :hi ian"
    await js.send_json(type="me", text="waves")
    assert (await irc.line()).rstrip("\r") == f":jay!jay@{S} PRIVMSG #lobby :\x01ACTION waves\x01"
    assert (await plain.line()) == "* jay waves"
    await irc.send("PRIVMSG #lobby :\x01ACTION bows\x01")
    assert (await plain.line()) == "* ian bows"
    await irc.send("NOTICE #lobby :a notice")
    assert (await plain.line()) == "<ian> a notice"
    await irc.send("PRIVMSG pat :psst")
    assert (await plain.line()) == "*ian* psst"
    await plain.send("/msg ian back")
    assert (await irc.line()).rstrip("\r") == f":pat!pat@{S} PRIVMSG ian :back"
    assert (await plain.line()) == "-> *ian* back"
    await irc.send("PART #lobby :bye all")
    assert (await irc.line()).rstrip("\r") == f":ian!ian@{S} PART #lobby :bye all"
    assert (await plain.line()) == "*** ian left: part: bye all (2 online)"


async def test_irc_errors_are_numerics(nursery: trio.Nursery) -> None:
    """No such channel, not on it, no such nick, unknown command, missing parameters."""
    server = await server_for(nursery)
    irc = await irc_join(nursery, server, "ed")
    for sent, expected in [
        ("PART #nowhere", f":{S} 403 ed #nowhere :No such channel"),
        ("PART #lobby", f":{S} 442 ed #lobby :You're not on that channel"),
        ("PRIVMSG nobody :hi", f":{S} 401 ed nobody :No such nick/channel"),
        ("PRIVMSG #lobby :hi", f":{S} 404 ed #lobby :Cannot send to channel"),
        ("FROB", f":{S} 421 ed FROB :Unknown command"),
        ("KICK #lobby", f":{S} 461 ed KICK :Not enough parameters"),
        ("PRIVMSG ed", f":{S} 412 ed :No text to send"),
        ("USER a b c d", f":{S} 462 ed :You may not reregister"),
        ("PING abc", f":{S} PONG {S} abc"),
    ]:
        await irc.send(sent)
        assert (await irc.line()).rstrip("\r") == expected, sent
    await irc.send("NOTICE nobody :hi")  # a NOTICE is never answered with an error
    await irc.send("PING end")
    assert (await irc.line()).rstrip("\r") == f":{S} PONG {S} end"


async def test_irc_topic_names_who_whois_list_mode_lusers_away(nursery: trio.Nursery) -> None:
    """The read-only requests answer in their numerics, founders marked with @."""
    server = await server_for(nursery)
    irc = await irc_join(nursery, server, "fay")
    other = await irc_join(nursery, server, "gus")
    await irc.send("JOIN #dev")
    await lines_until(irc, "366")
    await other.send("JOIN #dev")
    got = await lines_until(other, "366")
    assert (
        got[-2] == f":{S} 353 gus = #dev :@fay gus" or got[-2] == f":{S} 353 gus = #dev :gus @fay"
    )
    assert (await irc.line()).rstrip("\r") == f":gus!gus@{S} JOIN #dev"
    await irc.send("TOPIC #dev :the topic")
    assert (await irc.line()).rstrip("\r") == f":fay!fay@{S} TOPIC #dev :the topic"
    assert (await other.line()).rstrip("\r") == f":fay!fay@{S} TOPIC #dev :the topic"
    await other.send("TOPIC #dev")
    assert (await other.line()).rstrip("\r") == f":{S} 332 gus #dev :the topic"
    assert (await other.line()).startswith(f":{S} 333 gus #dev fay ")
    await other.send("WHO #dev")
    who = await lines_until(other, "315")
    assert f":{S} 352 gus #dev fay {S} {S} fay H@ :0 Real fay" in who
    assert f":{S} 352 gus #dev gus {S} {S} gus H :0 Real gus" in who
    await other.send("WHO F?Y")  # a nick mask, without regard to case
    assert (await lines_until(other, "315"))[0].startswith(f":{S} 352 gus #dev fay {S} {S} fay H@ ")
    await other.send("WHO *")
    assert len(await lines_until(other, "315")) == 3
    await other.send("WHOIS fay")
    whois = await lines_until(other, "318")
    assert whois[0] == f":{S} 311 gus fay fay {S} * :Real fay"
    assert f":{S} 319 gus fay :@#dev" in whois
    await other.send("LIST")
    listed = await lines_until(other, "323")
    assert f":{S} 322 gus #dev 2 :the topic" in listed
    assert not any("#lobby" in text for text in listed)  # no one is in it: not listed
    await other.send("MODE #dev")
    assert (await other.line()).rstrip("\r") == f":{S} 324 gus #dev +n"
    await other.send("MODE gus +i")  # irssi asks at connect: user modes are not kept
    assert (await other.line()).rstrip("\r") == f":{S} 221 gus +"
    await other.send("MODE fay +i")
    assert (await other.line()).startswith(f":{S} 502 gus :")
    await other.send("LUSERS")
    assert (await other.line()).startswith(f":{S} 251 gus :There are 2 users")
    await lines_until(other, "255")
    await other.send("AWAY :lunch")
    assert (await other.line()).rstrip("\r") == f":{S} 306 gus :You have been marked as being away"
    await irc.send("PRIVMSG gus :hey")
    assert (await irc.line()).rstrip("\r") == f":{S} 301 fay gus :lunch"
    await other.send("AWAY")
    await lines_until(other, "305")
    await other.send("NICK gustav")
    assert (await other.line()).rstrip("\r") == f":gus!gus@{S} NICK gustav"
    assert (await irc.line()).rstrip("\r") == f":gus!gus@{S} NICK gustav"
    await other.send("QUIT :bye")
    assert (await other.line()).startswith("ERROR :")
    assert (await irc.line()).rstrip("\r") == f":gustav!gustav@{S} QUIT :Quit: bye"


async def test_irc_founder_kicks_and_others_cannot(nursery: trio.Nursery) -> None:
    """The first member in an empty room may KICK; another member gets 482."""
    server = await server_for(nursery)
    founder = await irc_join(nursery, server, "hal")
    guest = await irc_join(nursery, server, "ivy")
    plain = await join(nursery, server, "pip")
    await founder.send("JOIN #den")
    await lines_until(founder, "366")
    await guest.send("JOIN #den")
    await lines_until(guest, "366")
    await plain.send("/join #den")
    assert (await founder.line()).rstrip("\r") == f":ivy!ivy@{S} JOIN #den"
    assert (await founder.line()).rstrip("\r") == f":pip!pip@{S} JOIN #den"
    await guest.line()
    assert (await plain.line()) == "*** you joined #den (3 online)"
    await plain.quiet()
    await guest.send("KICK #den pip :no")
    assert (await guest.line()).rstrip("\r") == f":{S} 482 ivy #den :You're not channel operator"
    await founder.send("KICK #den pip :spam")
    assert (await founder.line()).rstrip("\r") == f":hal!hal@{S} KICK #den pip :spam"
    assert (await guest.line()).rstrip("\r") == f":hal!hal@{S} KICK #den pip :spam"
    assert (await plain.line()) == "*** you were kicked from #den by hal: spam"
    assert "#den" not in server.state.holder("pip").rooms  # type: ignore[union-attr]
    # The founder leaves: nobody is the room's operator until it is empty again.
    await founder.send("PART #den")
    await lines_until(founder, "PART")
    assert (await guest.line()).rstrip("\r") == f":hal!hal@{S} PART #den"
    await guest.send("KICK #den pip")
    assert (await guest.line()).rstrip("\r") == f":{S} 482 ivy #den :You're not channel operator"


async def test_irc_server_time_and_echo_message(nursery: trio.Nursery) -> None:
    """server-time tags chat with its time; echo-message sends a member its own line."""
    server = await server_for(nursery)
    tagged = await irc_join(nursery, server, "jo", "server-time", "echo-message")
    bare = await irc_join(nursery, server, "ken")
    for peer in (tagged, bare):
        await peer.send("JOIN #t")
        await lines_until(peer, "366")
    await lines_until(tagged, "JOIN")
    await tagged.send("PRIVMSG #t :stamped")
    echo = (await tagged.line()).rstrip("\r")
    assert echo.startswith("@time=")
    assert echo.endswith(f":jo!jo@{S} PRIVMSG #t :stamped")
    assert (await bare.line()).rstrip("\r") == f":jo!jo@{S} PRIVMSG #t :stamped"
    await bare.send("PRIVMSG #t :plain")
    got = (await tagged.line()).rstrip("\r")
    assert got.startswith("@time=")
    assert got.endswith("PRIVMSG #t :plain")
    await bare.quiet()


async def test_founder_marked_in_plain_and_json_who(nursery: trio.Nursery) -> None:
    """/who marks a room's founder with @ in plain mode and lists it in "ops" in JSON."""
    server = await server_for(nursery)
    plain = await join(nursery, server, "pam")
    js = await join_json(nursery, server, "joe")
    await plain.line()  # joe joined
    await plain.send("/join #den")
    await plain.line()
    await js.send_json(type="join", room="#den")
    await lines_until_json(js, "join")
    await js.send_json(type="who", room="#den")
    who = await lines_until_json(js, "who")
    assert (who["names"], who["ops"]) == (["joe", "pam"], ["pam"])
    await plain.line()  # joe joined
    await plain.send("/who")
    assert (await plain.line()) == "*** online (2): joe, @pam"
    await plain.send("/part")  # the founder leaves: nobody is marked
    await js.send_json(type="who", room="#den")
    who = await lines_until_json(js, "who")
    assert "ops" not in who


async def lines_until_json(peer: Peer, kind: str) -> dict[str, object]:
    while True:
        event = await peer.event()
        if event["type"] == kind:
            return dict(event)


async def test_irc_notice_reaches_irc_members_as_notice(nursery: trio.Nursery) -> None:
    """A channel NOTICE is a NOTICE to IRC members and a notice-marked line in JSON."""
    server = await server_for(nursery)
    one = await irc_join(nursery, server, "nia")
    two = await irc_join(nursery, server, "ned")
    js = await join_json(nursery, server, "jen")
    await js.send_json(type="join", room="#n")
    for peer in (one, two):
        await peer.send("JOIN #n")
        await lines_until(peer, "366")
    await lines_until(one, "JOIN")
    await one.send("NOTICE #n :heads up")
    assert (await two.line()).rstrip("\r") == f":nia!nia@{S} NOTICE #n :heads up"
    said = await lines_until_json(js, "say")
    assert (said["text"], said["notice"]) == ("heads up", True)


async def test_irc_userhost_in_names(nursery: trio.Nursery) -> None:
    """With userhost-in-names, NAMES lists nick!user@host; multi-prefix is accepted."""
    server = await server_for(nursery)
    peer = await irc_join(nursery, server, "uma", "userhost-in-names", "multi-prefix")
    await peer.send("JOIN #u")
    names = await lines_until(peer, "366")
    assert names[-2] == f":{S} 353 uma = #u :@uma!uma@{S}"


async def test_irc_tagmsg_reaches_only_message_tags_members(nursery: trio.Nursery) -> None:
    """TAGMSG carries client tags to members with message-tags; others get nothing."""
    server = await server_for(nursery)
    sender = await irc_join(nursery, server, "tia", "message-tags")
    tagged = await irc_join(nursery, server, "tom", "message-tags")
    bare = await irc_join(nursery, server, "ted")
    for peer in (sender, tagged, bare):
        await peer.send("JOIN #g")
        await lines_until(peer, "366")
    await lines_until(sender, "JOIN")
    await lines_until(sender, "JOIN")
    await lines_until(tagged, "JOIN")
    await sender.send("@+typing=active;server=x TAGMSG #g")
    got = (await tagged.line()).rstrip("\r")
    assert got == f"@msgid=tag-1;+typing=active :tia!tia@{S} TAGMSG #g"
    await bare.quiet()
    await sender.quiet()
