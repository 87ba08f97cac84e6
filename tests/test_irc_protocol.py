"""The IRC protocol without a server: lines, fan-out per variant, hostile input."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from tests.helpers import FakeLink
from tests.test_irc import S, irc_connect, irc_join, lines_until, server_for
from triochat.core.codec import Mode
from triochat.core.commands import IrcAsk
from triochat.core.events import Said
from triochat.core.model import Member
from triochat.core.protocols import irc as irc_module
from triochat.core.protocols.irc import IRC
from triochat.core.protocols.ircevents import encode_irc
from triochat.core.protocols.irclines import parse_line
from triochat.core.protocols.ircsession import ECHO, MESSAGE_TAGS, SERVER_TIME, IrcSession
from triochat.server.liveness import PING_EVERY
from triochat.server.session import IRC_REGISTRATION_TIMEOUT


@pytest.mark.parametrize(
    ("text", "verb", "params"),
    [
        ("PRIVMSG #a :hello there", "PRIVMSG", ("#a", "hello there")),
        ("@label=1;+x=y :src privmsg #a :hi", "PRIVMSG", ("#a", "hi")),
        ("JOIN #a,#b key", "JOIN", ("#a,#b", "key")),
        ("TOPIC #a :", "TOPIC", ("#a", "")),
        ("NICK \ufffd\ufffd", "NICK", ("\ufffd\ufffd",)),
    ],
)
def test_irc_parse_line(text: str, verb: str, params: tuple[str, ...]) -> None:
    parsed = parse_line(text)
    assert parsed is not None
    assert (parsed.verb, parsed.params) == (verb, params)


@pytest.mark.parametrize("text", ["", "   ", ":source", "@tags", "\r\n"])
def test_irc_parse_line_without_a_verb_is_ignored(text: str) -> None:
    assert parse_line(text) is None


def test_irc_fanout_encodes_once_per_variant(monkeypatch: pytest.MonkeyPatch) -> None:
    """Six members in two capability sets: two encodings, six puts."""
    calls: list[tuple[bool, bool]] = []
    real = encode_irc

    def counting(event: object, server: str, nick: str, stamp: bool, tags: bool) -> str:
        calls.append((stamp, tags))
        return real(event, server, nick, stamp, tags)  # type: ignore[arg-type]

    monkeypatch.setattr(irc_module, "encode_irc", counting)
    members: dict[int, Member] = {}
    links: list[FakeLink] = []
    for n in range(6):
        link = FakeLink()
        links.append(link)
        caps = frozenset({SERVER_TIME, MESSAGE_TAGS}) if n % 2 else frozenset()
        members[n] = Member(n, "p", link, f"m{n}", Mode.IRC, irc=IrcSession("u", "r", caps))
    event = Said(1.0, "#a", 7, "bob", "hi")
    IRC.fanout(event, members, "#a", None, [])
    assert sorted(calls) == [(False, False), (True, True)]
    assert links[0].sent == [f":bob!bob@{IRC.server} PRIVMSG #a :hi\r\n".encode()]
    assert links[1].sent[0].startswith(b"@time=1970-01-01T00:00:01.000Z;msgid=a-7 :bob!")


def test_irc_client_tags_only_to_message_tags_members() -> None:
    """A line's client-only tags reach members with message-tags, and no one else."""
    tagged, bare = FakeLink(), FakeLink()
    members = {
        1: Member(1, "p", tagged, "a", Mode.IRC, irc=IrcSession(caps=frozenset({MESSAGE_TAGS}))),
        2: Member(2, "p", bare, "b", Mode.IRC, irc=IrcSession()),
    }
    IRC.fanout(Said(1.0, "#a", 3, "c", "x", tags="+baz=bat"), members, "#a", None, [])
    assert tagged.sent == [f"@msgid=a-3;+baz=bat :c!c@{IRC.server} PRIVMSG #a :x\r\n".encode()]
    assert bare.sent == [f":c!c@{IRC.server} PRIVMSG #a :x\r\n".encode()]


def test_irc_parse_keeps_only_client_tags() -> None:
    command = IRC.parse("@+baz=bat;fizz=buzz;+x PRIVMSG #test hi")
    assert command == IrcAsk("PRIVMSG", ("#test", "hi"), "+baz=bat;+x")


def test_irc_echo_message_only_for_those_who_asked() -> None:
    """The sender of a chat line gets it back only with echo-message."""
    link, echo_link = FakeLink(), FakeLink()
    plain = Member(1, "p", link, "a", Mode.IRC, irc=IrcSession())
    echo = Member(2, "p", echo_link, "b", Mode.IRC, irc=IrcSession(caps=frozenset({ECHO})))
    members = {1: plain, 2: echo}
    IRC.fanout(Said(1.0, "#a", 1, "a", "x"), members, "#a", plain, [])
    assert link.sent == []
    IRC.fanout(Said(1.0, "#a", 2, "b", "y"), members, "#a", echo, [])
    assert len(echo_link.sent) == 2  # a's line, and its own


async def test_irc_registration_byte_by_byte_with_bad_utf8(nursery: trio.Nursery) -> None:
    """Lines trickling in one byte at a time register; bad bytes in the realname are
    U+FFFD, and a later line that is not UTF-8 gets FAIL INVALID_UTF8 (UTF8ONLY)."""
    server = await server_for(nursery)
    peer = irc_connect(nursery, server)
    for byte in b"NICK trick\r\nUSER t 0 * :\xff\xfe bad\r\nPRIVMSG x :\xc3\r\n":
        await peer.stream.send_all(bytes([byte]))
    got = await lines_until(peer, "422")
    assert got[0].startswith(f":{S} 001 trick ")
    fail = (await peer.line()).rstrip("\r")
    assert fail.startswith(f":{S} FAIL * INVALID_UTF8 :")
    await trio.testing.wait_all_tasks_blocked()
    member = server.state.holder("trick")
    assert member is not None
    assert member.irc is not None
    assert member.irc.realname == "\ufffd\ufffd bad"


async def test_irc_unregistered_client_is_closed_after_the_timeout(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """An IRC client that never registers gets ERROR and is closed (no guest on IRC)."""
    server = await server_for(nursery)
    peer = irc_connect(nursery, server)
    await peer.send("NICK lazy")
    await trio.sleep(IRC_REGISTRATION_TIMEOUT - 1)
    assert server.state.holder("lazy") is None
    assert (await peer.line()).startswith("ERROR :Closing link (registration timed out)")
    assert await peer.closed() == []


async def test_irc_silent_member_is_pinged(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """The server pings an IRC member that has been silent (liveness), as PING :server."""
    server = await server_for(nursery)
    peer = await irc_join(nursery, server, "sil")
    await trio.sleep(PING_EVERY + 5)
    assert (await peer.line()).rstrip("\r") == f"PING {S}"
    await peer.send(f"PONG {S}")
    await trio.testing.wait_all_tasks_blocked()
    assert server.state.holder("sil") is not None
