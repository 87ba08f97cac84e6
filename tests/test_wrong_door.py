"""Wrong doors on the chat port: TLS, HTTP and IRC first lines are told where to go.

The sniffer's other half (triochat/core/protocols/__init__.py, ``stranger`` and
``directions``) and the session that acts on it (triochat/server/session.py): such a
connection gets one line and is closed, unregistered, so nothing it sent is posted or
stored; a person's own first line (``/nick bob``, any text) works as before.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import trio

from tests.procs import IO_TIMEOUT, BlockingServer
from triochat.core.protocols import Signposts, Stranger, directions, stranger
from triochat.testing import connect, join, open_test_server

CLIENT_HELLO = bytes.fromhex("16030100f4010000f00303") + bytes(32)  # a TLS 1.2 ClientHello head
IRC_OFF = (
    "ERROR :this is triochat's own chat port; IRC is off on this server; use nc, "
    "`triochat client` or the web page at http://127.0.0.1:30080/"
)


@pytest.mark.parametrize(
    ("first", "who"),
    [
        (CLIENT_HELLO, Stranger.TLS),
        (b"\x16\x03", Stranger.TLS),
        (b"GET / HTTP/1.1", Stranger.HTTP),
        (b"HEAD /index.html HTTP/1.0\r", Stranger.HTTP),
        (b"POST /api HTTP/2", Stranger.HTTP),
        (b"CAP LS 302", Stranger.IRC),
        (b"CAP LS", Stranger.IRC),
        (b"CAP END", Stranger.IRC),
        (b"NICK bob", Stranger.IRC),
        (b"NICK :bob\r", Stranger.IRC),
        (b"USER bob 0 * :Bob Smith", Stranger.IRC),
        (b"USER bob bob localhost :Bob", Stranger.IRC),
        (b"PASS hunter22", Stranger.IRC),
    ],
)
def test_stranger_knows_what_software_sends_first(first: bytes, who: Stranger) -> None:
    """A TLS ClientHello, an HTTP request line and IRC's registration verbs are strangers."""
    assert stranger(first) is who


@pytest.mark.parametrize(
    "first",
    [
        b"/nick bob",
        b"/pass hunter22",
        b"hello everyone",
        b"nick bob",  # a person's lower-case chat, not IRC's verb
        b"NICK",
        b"NICK bob and alice",
        b"USER bob",
        b"PASS",
        b"CAP",
        b"CAP the lid",
        b"GET me a coffee",
        b"get / http/1.1",
        b'{"type": "hello", "name": "bob"}',
        b"\x16 is a control character",
        b"",
    ],
)
def test_stranger_leaves_peoples_first_lines_alone(first: bytes) -> None:
    """What a person types first (a command, text, a JSON hello) is never a stranger."""
    assert stranger(first) is None


def test_directions_irc_names_the_irc_ports_or_says_irc_is_off() -> None:
    """An IRC client gets an IRC ERROR line: the IRC port (and its TLS port), or "off"."""
    on = Signposts(irc_port=6667, irc_tls_port=6697)
    assert directions(Stranger.IRC, on) == (
        b"ERROR :this is triochat's own chat port; IRC clients connect to port 6667 or "
        b"TLS port 6697\r\n"
    )
    tls_only = Signposts(irc_tls_port=6697)
    assert directions(Stranger.IRC, tls_only).endswith(b"connect to TLS port 6697\r\n")
    off = directions(Stranger.IRC, Signposts())
    assert off == (
        b"ERROR :this is triochat's own chat port; IRC is off on this server; use nc, "
        b"`triochat client`\r\n"
    )


def test_directions_http_is_a_400_response_naming_the_web_page() -> None:
    """A browser gets a whole HTTP response (it shows the body) with the page's address."""
    body = b"this is triochat's chat port, not its web page; the web page is at http://h:8/\n"
    answer = directions(Stranger.HTTP, Signposts(web="http://h:8/"))
    head, _, rest = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert f"Content-Length: {len(body)}".encode() in head
    assert rest == body
    assert directions(Stranger.HTTP, Signposts()).endswith(b"this server has no web page\n")


def test_directions_tls_names_the_tls_port_or_says_there_is_none() -> None:
    """A TLS client (shown by `openssl s_client`) is told the TLS port, if there is one."""
    assert directions(Stranger.TLS, Signposts(tls_port=30001)) == (
        b"! this port is cleartext; TLS is on port 30001\n"
    )
    assert directions(Stranger.TLS, Signposts()) == (
        b"! this port is cleartext; this server has no TLS port; connect without TLS\n"
    )


async def test_wrong_door_irc_client_is_told_and_nothing_reaches_the_room(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """IRC's handshake on the chat port: one ERROR line, closed; no join, nothing posted."""
    server = await open_test_server(nursery, web_port=30080)
    bob = await join(nursery, server, "bob")
    irc = connect(nursery, server)
    await irc.send("CAP LS 302\r\nNICK ircbob\r\nUSER ircbob 0 * :Irc Bob\r\nJOIN #lobby\r")
    await irc.send("PRIVMSG #lobby :hello")
    assert await irc.closed() == [IRC_OFF]
    await bob.quiet()
    await bob.send("/who")
    assert await bob.line() == "*** online (1): bob"
    carol = await join(nursery, server, "carol")
    await carol.quiet()  # no history to replay: nothing was posted or stored


async def test_wrong_door_irc_client_is_told_the_irc_port(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """With --irc-port (and --irc-tls-port) the ERROR line names them."""
    server = await open_test_server(
        nursery, irc_port=6667, irc_tls_port=6697, tls_cert="c.pem", tls_key="k.pem"
    )
    irc = connect(nursery, server)
    await irc.send("NICK ircbob")
    assert await irc.closed() == [
        "ERROR :this is triochat's own chat port; IRC clients connect to port 6667 or TLS port 6697"
    ]


async def test_wrong_door_http_request_gets_the_web_page_address(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """`curl http://HOST:30000/` shows where the page is instead of hanging or chatting."""
    server = await open_test_server(nursery, web_port=30080)
    browser = connect(nursery, server)
    await browser.send("GET / HTTP/1.1\r\nHost: 127.0.0.1:30000\r\nAccept: */*\r\n\r")
    lines = await browser.closed()
    assert lines[0] == "HTTP/1.1 400 Bad Request"
    assert lines[-1] == (
        "this is triochat's chat port, not its web page; the web page is at http://127.0.0.1:30080/"
    )


async def test_wrong_door_tls_hello_byte_by_byte_is_told_the_tls_port(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A ClientHello has no line end: its first two bytes, even one at a time, suffice."""
    server = await open_test_server(nursery, tls_cert="c.pem", tls_key="k.pem", tls_port=30001)
    tls = connect(nursery, server)
    for byte in CLIENT_HELLO[:3]:
        await tls.send(bytes([byte]))
    assert await tls.closed() == ["! this port is cleartext; TLS is on port 30001"]


@pytest.mark.parametrize("first", ["nick bob hello", "CAP the lid", "GET me a coffee"])
async def test_wrong_door_peoples_text_still_joins_as_a_guest(
    nursery: trio.Nursery, first: str
) -> None:
    """Text that merely starts like another protocol is a guest's first chat line, as ever."""
    server = await open_test_server(nursery)
    bob = await join(nursery, server, "bob")
    guest = connect(nursery, server)
    await guest.send(first)
    assert (await guest.line()).startswith("*** welcome, guest-")
    await bob.expect("*** guest-1 joined (2 online)", f"<guest-1> {first}")


def test_wrong_door_names_the_real_ports_of_a_server_on_free_ports(tmp_path: Path) -> None:
    """`--port 0` (so the page gets a free port too): the line names the page's real port."""
    server = BlockingServer.start("--db", ":memory:", log_path=str(tmp_path / "server.log"))
    try:
        assert server.web_url.startswith("http://127.0.0.1:")
        assert server.web_port != 0
        with socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
    finally:
        server.stop()
    assert answer.endswith(f"the web page is at {server.web_url}\n".encode())
