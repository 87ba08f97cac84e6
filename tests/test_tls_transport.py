"""TLS on the socket's descriptor (triochat.server.tls_transport), over loopback TCP.

Certificates come from ``trustme`` (see test_tls.py, whose in-memory door tests go
through the ``trio.SSLStream`` fallback: a memory stream has no descriptor). Here every
server socket is real, so the transport under test is :class:`TlsTransport`.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from tests.test_tls import TlsFiles, make_tls_files
from triochat.server import ChatServer
from triochat.server.certificates import NOT_TLS
from triochat.server.connection import Connection
from triochat.server.listeners import HANDSHAKE_TIMEOUT, TLS_HINT
from triochat.server.outbox import Outbox
from triochat.server.tls_transport import (
    RECORD_BYTES,
    SslStreamTransport,
    TlsTransport,
    tls_server_side,
)
from triochat.testing import ChatClient, Peer, join, open_test_server

HINT = TLS_HINT.decode().rstrip("\n")
SMALL_BUFFER = 2048  # bytes: the kernel's socket buffers, kept small to force partial writes


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    return make_tls_files(tmp_path / "tls")


def tls_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "triochat.server.listeners"]


async def start_tls_server(
    nursery: trio.Nursery, tls: TlsFiles, **overrides: Any
) -> tuple[ChatServer, int]:
    """A server with one TLS listener on a free loopback port."""
    server = await open_test_server(nursery, **overrides)
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    await nursery.start(server.serve_tls, listeners, tls.certificates)
    return server, listeners[0].socket.getsockname()[1]


_OPENED: list[trio.abc.Stream] = []  # client streams, closed after each test


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    while _OPENED:
        await trio.aclose_forcefully(_OPENED.pop())


async def tls_client(port: int, tls: TlsFiles) -> Peer:
    """A TLS peer on the loopback port (the handshake happens on first use)."""
    tcp = await trio.open_tcp_stream("127.0.0.1", port)
    _OPENED.append(tcp)
    return Peer(trio.SSLStream(tcp, tls.client_context(), server_hostname="localhost"))


async def small_buffer_stream(port: int) -> trio.SocketStream:
    """A TCP connection whose receive buffer is small (set before connecting)."""
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
    await sock.connect(("127.0.0.1", port))
    stream = trio.SocketStream(sock)
    _OPENED.append(stream)
    return stream


async def transport_pair(
    nursery: trio.Nursery, tls: TlsFiles, *, small: bool = False
) -> tuple[TlsTransport, trio.SSLStream[trio.SocketStream]]:
    """A handshaken server-side TlsTransport and its client, over loopback TCP.

    With ``small``, both kernel buffers between them are small (partial writes).
    """
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    tcp = (
        await small_buffer_stream(port) if small else await trio.open_tcp_stream("127.0.0.1", port)
    )
    server_stream = await listener.accept()
    await listener.aclose()
    if small:
        server_stream.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
    transport = tls_server_side(server_stream, tls.certificates.context)
    assert isinstance(transport, TlsTransport)
    client = trio.SSLStream(tcp, tls.client_context(), server_hostname="localhost")
    async with trio.open_nursery() as both:
        both.start_soon(transport.do_handshake)
        both.start_soon(client.do_handshake)
    return transport, client


async def receive_exactly(stream: trio.abc.Stream, size: int, *, pause: float = 0) -> bytes:
    """Read ``size`` bytes, sleeping ``pause`` seconds between reads (a slow reader)."""
    got = bytearray()
    with trio.fail_after(10):
        while len(got) < size:
            data = await stream.receive_some(SMALL_BUFFER)
            assert data, "the connection ended early"
            got += data
            await trio.sleep(pause)
    return bytes(got)


async def read_something(transport: TlsTransport) -> bytes:
    """What the transport reads next (``b""`` at the end), within 5 s."""
    with trio.fail_after(5):
        while (data := transport.try_read()) is None:
            await transport.wait_readable()
    return data


def decrypted(client: ssl.SSLObject) -> bytes:
    """Everything ``client`` can decrypt from what it was given so far."""
    data = b""
    while True:
        try:
            data += client.read()
        except ssl.SSLWantReadError:
            return data


@pytest.fixture
async def pair(
    nursery: trio.Nursery, tls: TlsFiles
) -> AsyncIterator[tuple[TlsTransport, trio.SSLStream[trio.SocketStream]]]:
    transport, client = await transport_pair(nursery, tls)
    yield transport, client
    await trio.aclose_forcefully(client)
    await transport.aclose()


# -- the transport itself ---------------------------------------------------------------


async def test_tls_transport_chosen_for_sockets_only(tls: TlsFiles) -> None:
    """A TCP socket gets the descriptor transport; a memory stream the SSLStream fallback."""
    context = tls.certificates.context
    memory = tls_server_side(trio.testing.memory_stream_pair()[0], context)
    assert isinstance(memory, SslStreamTransport)
    assert context.options & ssl.OP_NO_RENEGOTIATION
    assert context.num_tickets == 0


async def test_tls_transport_round_trip(
    pair: tuple[TlsTransport, trio.SSLStream[trio.SocketStream]],
) -> None:
    """Bytes written directly arrive decrypted; bytes sent are read back; close_notify is EOF."""
    transport, client = pair
    assert transport.try_write(b"hello\n") == len(b"hello\n")  # no writer task needed
    assert await receive_exactly(client, 6) == b"hello\n"
    assert transport.try_read() is None  # nothing yet
    await client.send_all(b"one\n")
    await client.send_all(b"two\n")
    got = b""
    with trio.fail_after(5):
        while got != b"one\ntwo\n":
            await transport.wait_readable()
            data = transport.try_read()
            if data is not None:
                got += data
    await client.aclose()  # sends close_notify
    with trio.fail_after(5):
        while (data := transport.try_read()) is None:
            await transport.wait_readable()
    assert data == b""
    assert transport.try_read() == b""  # and it stays ended


async def test_tls_transport_eof_without_close_notify_is_lost(
    pair: tuple[TlsTransport, trio.SSLStream[trio.SocketStream]],
) -> None:
    """A TCP close with no TLS close_notify is a lost connection, not a clean end."""
    from triochat.server.transport import ConnectionLost

    transport, client = pair
    await client.transport_stream.aclose()
    with pytest.raises(ConnectionLost, match="close_notify"):
        await read_something(transport)


@pytest.mark.parametrize("size", [RECORD_BYTES, 20 * RECORD_BYTES + 123])
async def test_tls_transport_partial_writes_arrive_whole_and_in_order(
    nursery: trio.Nursery, tls: TlsFiles, size: int
) -> None:
    """A flush larger than the kernel takes: the rest goes via send_all, nothing twice.

    One record cut by the kernel is not taken at all (its ciphertext is kept, and the
    writer task must be started to send it); of many, the whole records written are.
    """
    transport, client = await transport_pair(nursery, tls, small=True)
    data = bytes(i % 251 for i in range(size))
    taken = transport.try_write(data)
    assert taken < len(data)  # the kernel took part of it
    assert taken % RECORD_BYTES == 0  # whole records only
    assert transport.try_write(b"later\n") == 0  # nothing is taken before the rest is out
    received: list[bytes] = []
    more = b"more\n"

    async def slow_reader() -> None:
        received.append(await receive_exactly(client, len(data) + len(more), pause=0.001))

    with trio.fail_after(20):
        async with trio.open_nursery() as both:
            both.start_soon(slow_reader)
            await transport.send_all(data[taken:] + more)  # as the writer task does
    assert received == [data + more]
    await transport.aclose()
    await trio.aclose_forcefully(client)


async def test_tls_transport_stops_taking_from_a_peer_that_stops_reading(
    nursery: trio.Nursery, tls: TlsFiles
) -> None:
    """Back-pressure as over TCP: the outbox fills; the transport keeps at most one flush."""
    transport, client = await transport_pair(nursery, tls, small=True)
    flush_list: list[Connection] = []
    outbox = Outbox(64, 1 << 20)
    conn = Connection(1, "test", transport, outbox, nursery, flush_list)
    line = b"x" * 99 + b"\n"
    puts = 0
    with trio.fail_after(5):
        while conn.put(line):  # the peer never reads
            puts += 1
            conn.flush()
            await trio.testing.wait_all_tasks_blocked()
    assert conn.writing  # a writer waits for the peer
    assert puts < 2000  # the outbox filled: the transport did not swallow it all
    assert not conn.failed
    # Now the peer reads: everything queued arrives, in order, once.
    received = await receive_exactly(client, puts * len(line))
    assert received == line * puts
    await conn.stop_writer()
    await transport.aclose()
    await trio.aclose_forcefully(client)


# -- through the TLS door ---------------------------------------------------------------


async def test_tls_transport_chat_round_trip(nursery: trio.Nursery, tls: TlsFiles) -> None:
    """Over the TLS port: plain and JSON members chat; /quit ends with a clean close."""
    server, port = await start_tls_server(nursery, tls)
    alice = await tls_client(port, tls)
    await alice.send("/nick alice")
    assert (await alice.line()).startswith("*** welcome, alice!")
    bob = await ChatClient.register(await tls_client(port, tls), "bob")
    await alice.expect("*** bob joined (2 online)")
    await alice.send("hello over TLS")
    await bob.expect("say", text="hello over TLS", from_="alice")
    carol = await join(nursery, server, "carol")  # cleartext, in memory
    await carol.send("x" * 3000)  # several lines in one flush, more than one read
    await bob.expect("join", name="carol")
    await bob.expect("say", text="x" * 3000, from_="carol")
    await alice.send("/quit")
    await alice.closed()  # a clean end (close_notify): SSLStream raises on a bare TCP close
    await bob.expect("leave", name="alice")
    await server.shutdown()


async def test_tls_transport_tls12_client(nursery: trio.Nursery, tls: TlsFiles) -> None:
    """A TLS 1.2 client (the server sends the last flight of that handshake) chats."""
    server, port = await start_tls_server(nursery, tls)
    context = tls.client_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    tcp = await trio.open_tcp_stream("127.0.0.1", port)
    _OPENED.append(tcp)
    alice = Peer(trio.SSLStream(tcp, context, server_hostname="localhost"))
    await alice.send("/nick alice")
    assert (await alice.line()).startswith("*** welcome, alice!")
    assert isinstance(alice.stream, trio.SSLStream)
    assert alice.stream.version() == "TLSv1.2"
    await alice.send("/quit")
    await alice.closed()  # a clean end (close_notify)
    await server.shutdown()


async def test_tls_transport_first_line_with_the_handshake_is_read(
    nursery: trio.Nursery, tls: TlsFiles
) -> None:
    """A line that arrives with the client's Finished (one segment) is read at once.

    It is left in OpenSSL's input when the handshake ends; had the reader waited for
    the socket, the client would have become a guest after a second of silence.
    """
    server, port = await start_tls_server(nursery, tls)
    sock = await trio.open_tcp_stream("127.0.0.1", port)
    _OPENED.append(sock)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = tls.client_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    with trio.fail_after(5):
        while True:
            try:
                client.do_handshake()
                break
            except ssl.SSLWantReadError:
                await sock.send_all(outgoing.read())
                incoming.write(await sock.receive_some())
        client.write(b"/nick alice\n")
        await sock.send_all(outgoing.read())  # Finished and the line, in one write
        data = b""
        while b"\n" not in data:
            incoming.write(await sock.receive_some())
            data += decrypted(client)
    assert data.startswith(b"*** welcome, alice!"), data
    await sock.aclose()
    await server.shutdown()


async def test_tls_transport_refusal_is_sent_encrypted(
    nursery: trio.Nursery, tls: TlsFiles
) -> None:
    """A full server refuses a TLS client with one encrypted line, then closes."""
    server, port = await start_tls_server(nursery, tls, max_clients=1)
    alice = await tls_client(port, tls)
    await alice.send("/nick alice")
    await alice.line()
    extra = await tls_client(port, tls)
    await extra.send("/nick extra")
    assert await extra.closed() == ["! server full (1 clients); try again later"]
    await server.shutdown()


async def test_tls_transport_slow_member_is_dropped(nursery: trio.Nursery, tls: TlsFiles) -> None:
    """A TLS member that never reads is dropped as too slow; the others get everything."""
    server, port = await start_tls_server(nursery, tls, send_queue=8, rate_limit=0)
    alice = await join(nursery, server, "alice")
    bob = await join(nursery, server, "bob")
    await alice.expect("*** bob joined (2 online)")
    stalled = Peer(
        trio.SSLStream(
            await small_buffer_stream(port), tls.client_context(), server_hostname="localhost"
        )
    )
    await stalled.send("/nick stalled")  # and never reads again
    await bob.expect("*** stalled joined (3 online)")
    text = "x" * 1000
    with trio.fail_after(10):
        sent = 0
        while "stalled" in server.state.names():
            await alice.send(f"{text} {sent}")
            sent += 1
            await trio.testing.wait_all_tasks_blocked()
        received = [await bob.line() for _ in range(sent + 1)]
    assert "*** stalled left: too slow (2 online)" in received
    assert [line for line in received if line.startswith("<")] == [
        f"<alice> {text} {i}" for i in range(sent)
    ]
    assert 8 < sent < 200  # the outbox filled: the transport did not take it all
    await stalled.stream.aclose()
    await server.shutdown()


async def test_tls_transport_close_during_handshake(
    nursery: trio.Nursery, tls: TlsFiles, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that hangs up in the middle of its handshake costs one log line."""
    caplog.set_level(logging.INFO)
    server, port = await start_tls_server(nursery, tls)
    sock = await trio.open_tcp_stream("127.0.0.1", port)
    _OPENED.append(sock)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = tls.client_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    await sock.send_all(outgoing.read())  # the ClientHello
    await sock.receive_some()  # the server's answer has begun
    peer = _peer(sock)
    await sock.aclose()
    with trio.fail_after(5):
        while not tls_records(caplog):  # noqa: ASYNC110 - a log line has no event to wait on
            await trio.sleep(0.01)
    assert tls_records(caplog) == [
        f"TLS: {peer}: the client closed the connection during the handshake; closed"
    ]
    assert server.connections == 0
    await server.shutdown()


def _peer(stream: trio.SocketStream) -> str:
    host, port = stream.socket.getsockname()[:2]
    return f"{host}:{port}"


async def test_tls_transport_handshake_deadline(
    nursery: trio.Nursery,
    tls: TlsFiles,
    caplog: pytest.LogCaptureFixture,
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A client that sends half a ClientHello and stalls is closed at the deadline."""
    caplog.set_level(logging.INFO)
    server, port = await start_tls_server(nursery, tls)
    sock = await trio.open_tcp_stream("127.0.0.1", port)
    _OPENED.append(sock)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = tls.client_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    await sock.send_all(outgoing.read()[:20])  # then nothing
    start = trio.current_time()
    received = b""
    while data := await sock.receive_some():
        received += data
    assert trio.current_time() - start == pytest.approx(HANDSHAKE_TIMEOUT, abs=0.5)
    assert received == TLS_HINT
    assert tls_records(caplog) == [f"TLS: {_peer(sock)}: no TLS handshake within 10 s; closed"]
    await sock.aclose()
    await server.shutdown()


async def test_tls_transport_cleartext_client_gets_the_hint(
    nursery: trio.Nursery, tls: TlsFiles, caplog: pytest.LogCaptureFixture
) -> None:
    """nc on the TLS port: the hint in cleartext, one log line, no member."""
    caplog.set_level(logging.INFO)
    server, port = await start_tls_server(nursery, tls)
    plain = Peer(await trio.open_tcp_stream("127.0.0.1", port))
    _OPENED.append(plain.stream)
    await plain.send("/nick mallory")
    assert await plain.closed() == [HINT]
    assert isinstance(plain.stream, trio.SocketStream)
    assert tls_records(caplog) == [f"TLS: {_peer(plain.stream)}: {NOT_TLS}; closed"]
    assert server.state.online == 0
    await plain.stream.aclose()
    await server.shutdown()


async def test_tls_transport_fresh_certificate_after_reload(
    nursery: trio.Nursery, tls: TlsFiles, tmp_path: Path
) -> None:
    """A reloaded context gets renegotiation and tickets turned off too."""
    renewed = make_tls_files(tmp_path / "renewed", tls.ca)
    certificates = tls.certificates
    tls.cert_file.write_bytes(renewed.cert_file.read_bytes())
    tls.key_file.write_bytes(renewed.key_file.read_bytes())
    assert await certificates.reload()
    server = await open_test_server(nursery)
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    await nursery.start(server.serve_tls, listeners, certificates)
    port = listeners[0].socket.getsockname()[1]
    alice = await tls_client(port, tls)
    await alice.send("/nick alice")
    assert (await alice.line()).startswith("*** welcome, alice!")
    assert certificates.context.num_tickets == 0
    await server.shutdown()
