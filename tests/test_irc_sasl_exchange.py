"""SASL PLAIN's exchange and IRC's line limits, without a server (core is sans-IO)."""

from __future__ import annotations

import base64

from triochat.core.protocols.irclines import MAX_TAG_BYTES, too_long
from triochat.core.protocols.ircregister import IrcRegistration, RegState
from triochat.core.protocols.ircsasl import (
    CHUNK_BYTES,
    MAX_RESPONSE_CHARS,
    SaslExchange,
    sasl_plain,
)

S = "irc.test"


def response(name: str, password: str) -> str:
    return base64.b64encode(f"{name}\0{name}\0{password}".encode()).decode()


def started() -> SaslExchange:
    exchange = SaslExchange()
    assert exchange.step(S, "*", ("PLAIN",)) == ("AUTHENTICATE +\r\n", None)
    return exchange


def test_a_short_response_is_one_chunk() -> None:
    exchange = started()
    assert exchange.step(S, "*", (response("sam", "sesame"),)) == ("", ("sam", "sesame"))
    assert not exchange.active


def test_chunks_of_400_are_reassembled() -> None:
    """A chunk of exactly 400 means more follows; a shorter one ends the response."""
    password = "é" * 200  # 400 bytes of UTF-8: the response is 544 base64 characters
    whole = response("sam", password)
    assert CHUNK_BYTES < len(whole) < 2 * CHUNK_BYTES
    exchange = started()
    assert exchange.step(S, "*", (whole[:CHUNK_BYTES],)) == ("", None)
    assert exchange.active
    assert exchange.step(S, "*", (whole[CHUNK_BYTES:],)) == ("", ("sam", password))


def test_a_response_of_exactly_800_ends_with_a_plus() -> None:
    password = "€" * 196 + "ab"  # 592 bytes: with "sam" twice and two NULs, 600: 800 in base64
    whole = response("sam", password)
    assert len(whole) == 2 * CHUNK_BYTES
    exchange = started()
    assert exchange.step(S, "*", (whole[:CHUNK_BYTES],)) == ("", None)
    assert exchange.step(S, "*", (whole[CHUNK_BYTES:],)) == ("", None)
    assert exchange.step(S, "*", ("+",)) == ("", ("sam", password))


def test_a_chunk_over_400_gets_905_and_ends_the_exchange() -> None:
    exchange = started()
    reply, credentials = exchange.step(S, "*", ("A" * (CHUNK_BYTES + 1),))
    assert reply.startswith(f":{S} 905 * :")
    assert credentials is None
    assert not exchange.active
    assert exchange.step(S, "*", ("PLAIN",))[0] == "AUTHENTICATE +\r\n"  # it may start again


def test_a_response_longer_than_any_credentials_gets_904() -> None:
    """Endless 400-byte chunks are refused once past the longest PLAIN response."""
    exchange = started()
    chunk = "A" * CHUNK_BYTES
    for _ in range(MAX_RESPONSE_CHARS // CHUNK_BYTES):
        assert exchange.step(S, "*", (chunk,)) == ("", None)
    reply, credentials = exchange.step(S, "*", (chunk,))
    assert reply.startswith(f":{S} 904 * :")
    assert credentials is None
    assert not exchange.active


def test_abort_wrong_base64_and_unknown_mechanisms() -> None:
    exchange = started()
    assert exchange.step(S, "sam", ("*",))[0].startswith(f":{S} 906 sam :")
    exchange = started()
    assert exchange.step(S, "sam", ("!!!",))[0].startswith(f":{S} 904 sam :")
    exchange = started()
    assert exchange.step(S, "sam", ("+",))[0].startswith(f":{S} 904 sam :")  # empty response
    reply, _ = SaslExchange().step(S, "*", ("SCRAM-SHA-256",))
    assert reply.startswith(f":{S} 908 * PLAIN :")
    assert f":{S} 904 * :" in reply
    assert sasl_plain(base64.b64encode(b"\0sam\0").decode()) is None


def test_nick_and_user_during_sasl_do_not_interrupt_it() -> None:
    """CAP REQ sasl, AUTHENTICATE PLAIN, NICK, USER, then the credentials: logged in."""
    reg = IrcRegistration(S)
    for text in ("CAP LS 302", "CAP REQ :sasl", "AUTHENTICATE PLAIN", "NICK foo", "USER f 0 * :F"):
        reg.feed(text)
    assert reg.state.name == "OPEN"  # (by name: mypy would keep it narrowed to OPEN)
    assert reg.feed(f"AUTHENTICATE {response('jilles', 'sesame')}") == ""
    assert reg.state is RegState.DONE
    assert reg.sasl == ("jilles", "sesame")


def test_registering_during_sasl_aborts_it_with_906() -> None:
    reg = IrcRegistration(S)
    for text in ("CAP LS 302", "CAP REQ :sasl", "AUTHENTICATE PLAIN", "NICK foo", "USER f 0 * :F"):
        reg.feed(text)
    assert reg.feed("CAP END").startswith(f":{S} 906 foo :")
    assert reg.state is RegState.DONE
    assert reg.sasl is None


def test_irc_line_limits() -> None:
    """Tags up to 4096 bytes (the "@" and the space included), then the line limit."""
    tags = b"@+baz=" + b"a" * (MAX_TAG_BYTES - 7) + b" "
    assert len(tags) == MAX_TAG_BYTES
    assert not too_long(tags + b"TAGMSG #test", 512)
    assert too_long(b"@+baz=a" + tags[6:] + b"TAGMSG #test", 512)
    assert not too_long(tags + b"PRIVMSG #t :" + b"b" * 500, 512)
    assert too_long(tags + b"PRIVMSG #t :" + b"b" * 501, 512)
    assert not too_long(b"PRIVMSG #t :" + b"b" * 500, 512)
    assert too_long(b"PRIVMSG #t :" + b"b" * 501, 512)
    assert too_long(b"@" + b"a" * MAX_TAG_BYTES, 512)  # tags and nothing after them
    assert too_long(b"@a " + b"x" * 513, 512)
