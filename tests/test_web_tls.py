"""The web port under TLS, over loopback: HTTPS page loads, WSS members, no cleartext.

With a certificate the page and its WebSocket go through the same TLS door as the
chat's TLS port (tests/test_tls.py), with trustme certificates; a cleartext web port
beside TLS exists only when ``ServerConfig.web_cleartext`` asks for it. The
``triochat server`` side (the ``web: https://`` line) is in test_web_cli.py.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.test_tls import TlsFiles, make_tls_files
from tests.test_web import HOST, HttpPeer, WsPeer
from triochat.server import ChatServer
from triochat.server.certificates import Certificates
from triochat.server.transport import Transport
from triochat.testing import join, open_test_server
from triochat.web import WebServer
from triochat.web.server import HTTPS_HINT

WAIT = 10.0  # real seconds for any one step over loopback


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    return make_tls_files(tmp_path / "tls")


async def start_web(
    nursery: trio.Nursery, certificates: Certificates | None, **overrides: Any
) -> tuple[ChatServer, WebServer, int]:
    """A chat server and its web door on a free loopback port."""
    server = await open_test_server(nursery, **overrides)
    web = WebServer(server, certificates=certificates)
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    await nursery.start(web.serve_listeners, listeners)
    return server, web, listeners[0].socket.getsockname()[1]


async def https(port: int, files: TlsFiles) -> trio.SSLStream[trio.SocketStream]:
    """A TLS connection to ``port`` that trusts ``files``'s CA only."""
    tcp = await trio.open_tcp_stream("127.0.0.1", port)
    stream = trio.SSLStream(tcp, files.client_context(), server_hostname="localhost")
    try:
        with trio.fail_after(WAIT):
            await stream.do_handshake()
    except BaseException:
        await trio.aclose_forcefully(tcp)
        raise
    return stream


async def test_web_tls_page_loads_over_https(nursery: trio.Nursery, tls: TlsFiles) -> None:
    """With a certificate, GET / over HTTPS is the page; the door is counted as web-tls."""
    server, web, port = await start_web(nursery, tls.certificates)
    assert web.tls
    async with await https(port, tls) as stream:
        response, body = await HttpPeer(stream).get("/")
    assert response.status_code == 200
    assert b'<script type="module" src="/static/app.js"></script>' in body
    assert server.statistics().listeners.accepted == {"web-tls": 1}
    assert web.statistics().requests == 1


async def test_web_tls_wss_member_joins_the_room(
    nursery: trio.Nursery, tls: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A browser over WSS joins and chats with a netcat member, served as a secure member."""
    server, _, port = await start_web(nursery, tls.certificates)
    served: list[tuple[str, bool]] = []
    serve_transport = server.serve_transport

    async def spy(transport: Transport, peer: str, host: str | None, **how: Any) -> None:
        served.append((how.get("door", "plain"), how.get("secure", False)))
        await serve_transport(transport, peer, host, **how)

    monkeypatch.setattr(server, "serve_transport", spy)
    bob = await join(nursery, server, "bob")
    stream = await https(port, tls)
    alice = WsPeer(stream)
    assert await alice.handshake(origin=f"https://{HOST}") == 101
    await alice.send_json(type="hello", name="alice")
    assert (await alice.event())["type"] == "welcome"
    await bob.expect("*** alice joined (2 online)")
    await alice.send_json(type="say", text="hello over WSS")
    await bob.expect("<alice> hello over WSS")
    assert served == [("plain", False), ("web-tls", True)]  # WSS: passwords not in the clear
    assert server.statistics().by_door == {"web-tls": 1, "plain": 1}
    await trio.aclose_forcefully(stream)


async def test_web_tls_cleartext_http_is_refused(
    nursery: trio.Nursery, tls: TlsFiles, caplog: pytest.LogCaptureFixture
) -> None:
    """Plain HTTP to the HTTPS port gets a cleartext 400 naming https://, never the page."""
    caplog.set_level(logging.INFO)
    server, web, port = await start_web(nursery, tls.certificates)
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(f"GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
    received = b""
    with trio.fail_after(WAIT):
        while data := await stream.receive_some():
            received += data
    await stream.aclose()
    assert received == HTTPS_HINT
    assert received.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"https://" in received
    assert web.statistics().requests == 0
    assert server.statistics().listeners.handshake_failures == {"web-tls": 1}


async def test_web_tls_cleartext_beside_tls_only_when_asked(
    nursery: trio.Nursery, tls: TlsFiles, caplog: pytest.LogCaptureFixture
) -> None:
    """web_cleartext: the page in cleartext despite the certificate, and a warning says so."""
    caplog.set_level(logging.WARNING, logger="triochat.web")
    _, web, port = await start_web(nursery, tls.certificates, web_cleartext=True)
    assert not web.tls
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        response, _ = await HttpPeer(stream).get("/")
    assert response.status_code == 200
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "CLEARTEXT beside TLS" in warnings[0]


async def test_web_without_certificate_is_cleartext_without_warning(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    """No certificate: plain HTTP, as before, and nothing to warn about."""
    caplog.set_level(logging.WARNING, logger="triochat.web")
    _, web, port = await start_web(nursery, None)
    assert not web.tls
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        response, _ = await HttpPeer(stream).get("/")
    assert response.status_code == 200
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_web_tls_uses_the_reloaded_certificate(
    nursery: trio.Nursery, tls: TlsFiles, tmp_path: Path
) -> None:
    """The web door shares the TLS port's certificates: a reload (SIGHUP) applies to both."""
    certificates = tls.certificates
    server = await open_test_server(nursery)
    web = WebServer(server, certificates=certificates)
    web_listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    chat_listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    await nursery.start(web.serve_listeners, web_listeners)
    await nursery.start(server.serve_tls, chat_listeners, certificates)
    renewed = make_tls_files(tmp_path / "renewed")
    tls.cert_file.write_bytes(renewed.cert_file.read_bytes())
    tls.key_file.write_bytes(renewed.key_file.read_bytes())
    assert await certificates.reload()
    for listeners in (web_listeners, chat_listeners):
        port = listeners[0].socket.getsockname()[1]
        async with await https(port, renewed):
            pass
        with pytest.raises(trio.BrokenResourceError):
            await https(port, tls)
