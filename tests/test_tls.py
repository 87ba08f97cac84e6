"""TLS in front of the chat, in this process: certificates, handshakes, the TLS door.

Certificates come from ``trustme`` (a throwaway CA per test). The door is exercised
over memory streams in virtual time (a stalled handshake takes no real time), and over
loopback TCP where the accept loop itself is the subject. The ``triochat`` command with
TLS (flags, exit statuses, SIGHUP) is in test_tls_cli.py.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
import trio.testing
import trustme

from triochat.client.tls import TlsFailure, client_context, open_stream
from triochat.server import ChatServer
from triochat.server.certificates import (
    NOT_TLS,
    CertificateError,
    Certificates,
    load_server_context,
)
from triochat.server.listeners import HANDSHAKE_TIMEOUT, TLS_HINT, TlsDoor
from triochat.testing import ChatClient, Peer, join, open_test_server

HINT = TLS_HINT.decode().rstrip("\n")


@dataclass(frozen=True)
class TlsFiles:
    """A CA and a certificate it issued for 127.0.0.1 and localhost, as PEM files."""

    ca: trustme.CA
    ca_file: Path
    cert_file: Path
    key_file: Path

    @property
    def certificates(self) -> Certificates:
        return Certificates(str(self.cert_file), str(self.key_file))

    def client_context(self) -> ssl.SSLContext:
        return client_context(str(self.ca_file))


def make_tls_files(
    folder: Path, ca: trustme.CA | None = None, names: tuple[str, ...] = ("127.0.0.1", "localhost")
) -> TlsFiles:
    """Write a CA certificate, a server certificate for ``names`` and its key into ``folder``."""
    ca = ca or trustme.CA()
    folder.mkdir(parents=True, exist_ok=True)
    issued = ca.issue_cert(*names)
    files = TlsFiles(ca, folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    ca.cert_pem.write_to_path(str(files.ca_file))
    issued.cert_chain_pems[0].write_to_path(str(files.cert_file))
    for pem in issued.cert_chain_pems[1:]:
        pem.write_to_path(str(files.cert_file), append=True)
    issued.private_key_pem.write_to_path(str(files.key_file))
    return files


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    return make_tls_files(tmp_path / "tls")


def dial(nursery: trio.Nursery, door: TlsDoor) -> trio.abc.Stream:
    """An in-memory connection through ``door`` (the client side, still cleartext)."""
    client, server_side = trio.testing.memory_stream_pair()
    nursery.start_soon(door.handle, server_side)
    return client


def tls_peer(nursery: trio.Nursery, door: TlsDoor, context: ssl.SSLContext) -> Peer:
    """A peer that speaks TLS through ``door`` (the handshake happens on first use)."""
    return Peer(trio.SSLStream(dial(nursery, door), context, server_hostname="localhost"))


def tls_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    tls_loggers = ("triochat.server.listeners", "triochat.server.certificates")
    return [r.getMessage() for r in caplog.records if r.name in tls_loggers]


# -- certificates ---------------------------------------------------------------------


def test_certificates_load_a_matching_pair(tls: TlsFiles) -> None:
    """A certificate and its key make a server context that refuses TLS before 1.2."""
    context = load_server_context(str(tls.cert_file), str(tls.key_file))
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_certificates_combined_file(tls: TlsFiles, tmp_path: Path) -> None:
    """One PEM file holding key and certificate may be given as both --tls-cert and --tls-key."""
    both = tmp_path / "both.pem"
    both.write_bytes(tls.key_file.read_bytes() + tls.cert_file.read_bytes())
    load_server_context(str(both), str(both))


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing cert", "cannot read the TLS certificate {cert}: no such file"),
        ("missing key", "cannot read the TLS key {key}: no such file"),
        ("cert is a folder", "cannot read the TLS certificate {cert}: it is a folder"),
        ("cert not PEM", "the TLS certificate {cert} is not a PEM certificate"),
        ("key not PEM", "the TLS key {key} is not a PEM private key"),
        ("key of another cert", "the TLS key {key} does not belong to the certificate {cert}"),
        ("encrypted key", "the TLS key {key} is protected by a passphrase"),
    ],
)
def test_certificates_problems_are_one_clear_line(
    tls: TlsFiles, tmp_path: Path, case: str, message: str
) -> None:
    """Each unusable certificate or key is named with what is wrong (not OpenSSL's 'PEM lib')."""
    cert, key = tls.cert_file, tls.key_file
    if case == "missing cert":
        cert = tmp_path / "nope.pem"
    elif case == "missing key":
        key = tmp_path / "nope.pem"
    elif case == "cert is a folder":
        cert = tmp_path
    elif case == "cert not PEM":
        cert = tmp_path / "garbage.pem"
        cert.write_text("hello\n")
    elif case == "key not PEM":
        key = tmp_path / "garbage.pem"
        key.write_text("hello\n")
    elif case == "key of another cert":
        key = make_tls_files(tmp_path / "other").key_file
    else:
        from cryptography.hazmat.primitives import serialization

        private = serialization.load_pem_private_key(key.read_bytes(), None)
        key = tmp_path / "encrypted.pem"
        key.write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"secret"),
            )
        )
    with pytest.raises(CertificateError) as caught:
        load_server_context(str(cert), str(key))
    text = str(caught.value)
    assert text.startswith(message.format(cert=cert, key=key)), text
    assert "\n" not in text


def test_certificates_unreadable_key(tls: TlsFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key the server's user may not read says so (the usual mistake with /etc/letsencrypt)."""
    read_bytes = Path.read_bytes

    def guarded(path: Path) -> bytes:
        if path == tls.key_file:  # what chmod 600 root:root does to another user
            raise PermissionError(13, "Permission denied")
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", guarded)
    with pytest.raises(CertificateError) as caught:
        load_server_context(str(tls.cert_file), str(tls.key_file))
    assert str(caught.value) == (
        f"cannot read the TLS key {tls.key_file}: permission denied "
        "(the server's user must be able to read it)"
    )


async def test_certificates_reload_failure_keeps_the_old_one(
    tls: TlsFiles, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A renewal that fails to load (half-written file) keeps serving the old certificate."""
    certificates = tls.certificates
    old = certificates.context
    tls.key_file.write_text("not yet\n")
    assert not await certificates.reload()
    assert certificates.context is old
    assert any("reload failed" in line for line in tls_records(caplog))
    renewed = make_tls_files(tmp_path / "renewed")
    tls.cert_file.write_bytes(renewed.cert_file.read_bytes())
    tls.key_file.write_bytes(renewed.key_file.read_bytes())
    assert await certificates.reload()
    assert certificates.context is not old


# -- the TLS door, in memory ------------------------------------------------------------


async def test_tls_round_trip_plain_mode(
    nursery: trio.Nursery, tls: TlsFiles, autojump_clock: trio.testing.MockClock
) -> None:
    """A netcat-style member over TLS (openssl s_client) chats with a cleartext member."""
    server = await open_test_server(nursery)
    door = TlsDoor(server, tls.certificates)
    alice = tls_peer(nursery, door, tls.client_context())
    await alice.send("/nick alice")
    assert (await alice.line()).startswith("*** welcome, alice!")
    bob = await join(nursery, server, "bob")
    await alice.expect("*** bob joined (2 online)")
    await alice.send("hello over TLS")
    await bob.expect("<alice> hello over TLS")
    await bob.send("hi alice")
    await alice.expect("<bob> hi alice")
    await alice.send("/quit")
    await bob.expect("*** alice left (1 online)")
    assert await alice.closed() == []  # a clean TLS close (close_notify), not a reset


async def test_tls_round_trip_json_mode(
    nursery: trio.Nursery, tls: TlsFiles, autojump_clock: trio.testing.MockClock
) -> None:
    """A JSON client over TLS joins, says something and is answered, like over TCP."""
    server = await open_test_server(nursery)
    door = TlsDoor(server, tls.certificates)
    alice = await ChatClient.register(tls_peer(nursery, door, tls.client_context()), "alice")
    bob = await ChatClient.register(tls_peer(nursery, door, tls.client_context()), "bob")
    await alice.expect("join", name="bob")
    await alice.say("encrypted hello")
    await bob.expect("say", text="encrypted hello", from_="alice")
    assert server.state.names() == ["alice", "bob"]


async def test_tls_peer_that_stops_reading_cannot_hold_the_close(
    nursery: trio.Nursery, tls: TlsFiles, autojump_clock: trio.testing.MockClock
) -> None:
    """A TLS peer that quits and never reads again is closed within flush_timeout anyway.

    TLS says goodbye with a close_notify, which cannot be sent to a peer that does not
    read (a lockstep stream has no buffer at all); the close must not wait for it.
    """
    server = await open_test_server(nursery)
    door = TlsDoor(server, tls.certificates)
    client, server_side = trio.testing.lockstep_stream_pair()
    nursery.start_soon(door.handle, server_side)
    alice = Peer(trio.SSLStream(client, tls.client_context(), server_hostname="localhost"))
    await alice.send("/nick alice")
    assert (await alice.line()).startswith("*** welcome, alice!")
    await trio.testing.wait_all_tasks_blocked()
    start = trio.current_time()
    await alice.send("/quit")  # and never read again
    with trio.fail_after(5):
        while server.connections:
            await trio.testing.wait_all_tasks_blocked()
            await trio.sleep(0.1)
    assert trio.current_time() - start <= server.config.flush_timeout + 0.2


async def test_tls_password_over_tls_is_not_called_cleartext(
    nursery: trio.Nursery, tls: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A password sent over TLS from another machine gets no "crossed unencrypted" notice.

    Real time: the password is hashed in a worker thread.
    """
    remote = ("198.51.100.7:50000", "198.51.100.7")  # TEST-NET-2: not loopback, not trusted
    monkeypatch.setattr("triochat.server.listeners.peer_address", lambda stream: remote)
    server = await open_test_server(nursery)
    door = TlsDoor(server, tls.certificates)
    alice = tls_peer(nursery, door, tls.client_context())
    await alice.send("/nick alice")
    assert (await alice.line()).startswith("*** welcome, alice!")
    await alice.send("/register correct-horse")
    assert await alice.line() == (
        "*** the name alice is registered to you; next time, /login alice PASSWORD"
    )


async def test_tls_cleartext_client_gets_a_hint_and_one_log_line(
    nursery: trio.Nursery,
    tls: TlsFiles,
    caplog: pytest.LogCaptureFixture,
    autojump_clock: trio.testing.MockClock,
) -> None:
    """nc on the TLS port: told what the port wants, closed, one log line; nothing else is spent."""
    caplog.set_level(logging.INFO)
    server = await open_test_server(nursery)
    door = TlsDoor(server, tls.certificates)
    for _ in range(3):
        plain = Peer(dial(nursery, door))
        await plain.send("/nick mallory")
        assert await plain.closed() == [HINT]
    assert tls_records(caplog) == [f"TLS: StapledStream: {NOT_TLS}; closed"]  # then rate-limited
    assert server.connections == 0
    assert server.state.online == 0
    alice = tls_peer(nursery, door, tls.client_context())
    await alice.send("/nick alice")
    assert (await alice.line()).startswith("*** welcome, alice! 1 online")


async def test_tls_stalled_handshake_is_closed_after_the_deadline(
    nursery: trio.Nursery,
    tls: TlsFiles,
    caplog: pytest.LogCaptureFixture,
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A client that connects and never says anything is closed at 10 s with one log line."""
    caplog.set_level(logging.INFO)
    server = await open_test_server(nursery)
    door = TlsDoor(server, tls.certificates)
    staller = Peer(dial(nursery, door))
    start = trio.current_time()
    assert await staller.closed(timeout=HANDSHAKE_TIMEOUT + 1) == [HINT]
    assert trio.current_time() - start == pytest.approx(HANDSHAKE_TIMEOUT)
    assert tls_records(caplog) == ["TLS: StapledStream: no TLS handshake within 10 s; closed"]
    assert door.handshakes == 0


async def test_tls_handshakes_in_progress_are_bounded(
    nursery: trio.Nursery,
    tls: TlsFiles,
    caplog: pytest.LogCaptureFixture,
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Stallers cannot pile up: past --max-clients handshakes in progress, more close at once."""
    caplog.set_level(logging.INFO)
    server = await open_test_server(nursery, max_clients=2)
    door = TlsDoor(server, tls.certificates)
    stallers = [Peer(dial(nursery, door)) for _ in range(2)]
    await trio.testing.wait_all_tasks_blocked()
    assert door.handshakes == 2
    extra = Peer(dial(nursery, door))
    start = trio.current_time()
    assert await extra.closed() == []
    assert trio.current_time() == start  # at once, not after the deadline
    assert "too many TLS handshakes in progress (2)" in tls_records(caplog)[0]
    for staller in stallers:
        await staller.closed(timeout=HANDSHAKE_TIMEOUT + 1)


async def test_tls_shutdown_does_not_wait_for_handshakes(
    nursery: trio.Nursery, tls: TlsFiles, autojump_clock: trio.testing.MockClock
) -> None:
    """A handshake in progress is abandoned at shutdown, not waited for (exit within 2 s)."""
    server = await open_test_server(nursery)
    door = TlsDoor(server, tls.certificates)
    staller = Peer(dial(nursery, door))
    await trio.testing.wait_all_tasks_blocked()
    start = trio.current_time()
    await server.shutdown()
    assert await staller.closed() == []  # no hint: it did nothing wrong
    assert trio.current_time() - start < 2
    assert door.handshakes == 0


async def test_tls_wrong_ca_is_refused_by_the_client(
    nursery: trio.Nursery, tls: TlsFiles, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A certificate from a CA the client does not trust ends the handshake; nothing is sent."""
    server = await open_test_server(nursery)
    door = TlsDoor(server, tls.certificates)
    stranger = make_tls_files(tmp_path / "stranger")
    client = trio.SSLStream(
        dial(nursery, door), stranger.client_context(), server_hostname="localhost"
    )
    with pytest.raises(trio.BrokenResourceError) as caught:
        await client.do_handshake()
    assert isinstance(caught.value.__cause__, ssl.SSLCertVerificationError)
    await trio.aclose_forcefully(client)
    await trio.testing.wait_all_tasks_blocked()
    assert server.state.online == 0


# -- over loopback TCP ------------------------------------------------------------------


async def start_tls_server(nursery: trio.Nursery, tls: TlsFiles) -> tuple[ChatServer, int]:
    """A server with one TLS listener on a free loopback port."""
    server = await open_test_server(nursery)
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    await nursery.start(server.serve_tls, listeners, tls.certificates)
    return server, listeners[0].socket.getsockname()[1]


async def test_tls_staller_does_not_hold_up_the_accept_loop(
    nursery: trio.Nursery, tls: TlsFiles
) -> None:
    """While one client stalls in its handshake, another connects and joins at once."""
    server, port = await start_tls_server(nursery, tls)
    staller = await trio.open_tcp_stream("127.0.0.1", port)
    with trio.fail_after(HANDSHAKE_TIMEOUT / 2):  # far sooner than the staller's deadline
        stream = await open_stream("127.0.0.1", port, tls.client_context())
        alice = await ChatClient.register(Peer(stream), "alice")
    assert alice.welcome["online"] == 1
    await trio.aclose_forcefully(stream)
    await trio.aclose_forcefully(staller)
    await server.shutdown()


async def test_tls_client_refuses_wrong_ca_and_host_name(
    nursery: trio.Nursery, tls: TlsFiles, tmp_path: Path
) -> None:
    """open_stream raises TlsFailure (never returns a cleartext stream) for an untrusted server."""
    server, port = await start_tls_server(nursery, tls)
    stranger = make_tls_files(tmp_path / "stranger")
    with pytest.raises(TlsFailure) as caught:
        await open_stream("127.0.0.1", port, stranger.client_context())
    assert caught.value.strerror == (
        "the server's certificate was not accepted: unable to get local issuer certificate"
    )
    assert "--ca FILE" in caught.value.hint
    await server.shutdown()


async def test_tls_client_refuses_a_certificate_for_another_name(
    nursery: trio.Nursery, tls: TlsFiles, tmp_path: Path
) -> None:
    """A trusted CA's certificate for chat.example.org does not pass for 127.0.0.1."""
    elsewhere = make_tls_files(tmp_path / "elsewhere", tls.ca, ("chat.example.org",))
    server, port = await start_tls_server(nursery, elsewhere)
    with pytest.raises(TlsFailure) as caught:
        await open_stream("127.0.0.1", port, tls.client_context())
    assert "certificate is not valid for '127.0.0.1'" in str(caught.value.strerror)
    assert "--host" in caught.value.hint
    await server.shutdown()


async def test_tls_client_on_a_plain_port_is_told_so(nursery: trio.Nursery, tls: TlsFiles) -> None:
    """--tls against the cleartext port fails the handshake with a pointer to the TLS port."""
    server = await open_test_server(nursery)
    listeners = await nursery.start(server.serve_tcp, "127.0.0.1", 0)
    port = listeners[0].socket.getsockname()[1]
    with pytest.raises(TlsFailure) as caught:
        await open_stream("127.0.0.1", port, tls.client_context())
    assert caught.value.strerror in {
        "the server did not answer in TLS (is this its plain port?)",
        "the server closed the connection during the TLS handshake",
    }
    assert "30001" in caught.value.hint
    await server.shutdown()
