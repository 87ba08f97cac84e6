"""TLS in front of the chat: certificates (checked, loaded, reloaded) and handshakes.

:class:`Certificates` holds the ``ssl.SSLContext`` that new TLS connections get; it is
loaded once at start-up (a problem there is one line and exit status 2, see
:class:`CertificateError`) and again on SIGHUP, so renewed certificates need no
restart. :class:`TlsDoor` serves the connections of a TLS listener: it does the
handshake under a deadline, then hands the connection to
:meth:`ChatServer.serve_transport <triochat.server.app.ChatServer.serve_transport>`
through a TLS transport (:func:`~triochat.server.tls_transport.tls_server_side`).

Rules of this module:

* **The handshake runs in the connection's own task**, never in the accept loop, so a
  client that stalls in it holds up nobody; it gets :data:`HANDSHAKE_TIMEOUT`.
* **A failed handshake costs one short log line and nothing else**: a cleartext client
  on the TLS port, a staller, an outdated client, a port scanner. The line is
  rate-limited per kind of failure, like refusals. Handshakes in progress are bounded
  (per address and in all), so stallers cannot use up the descriptors.
* **A failed reload changes nothing**: the old certificate stays in use and the error
  is logged. Connections keep the context they started with.
* Only the standard library's ``ssl`` (OpenSSL), on the socket's descriptor
  (:mod:`triochat.server.tls_transport`); TLS 1.2 is the oldest version accepted.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Final

import trio

from triochat.config import is_trusted
from triochat.logs import RepeatLimiter
from triochat.server.tls_transport import tls_server_side
from triochat.server.transport import peer_address

if TYPE_CHECKING:
    from triochat.server.app import ChatServer

__all__ = [
    "HANDSHAKE_TIMEOUT",
    "NOT_TLS",
    "TLS_HINT",
    "TLS_MIN_VERSION",
    "CertificateError",
    "Certificates",
    "TlsDoor",
    "handshake_failure",
    "load_server_context",
]

log = logging.getLogger(__name__)

TLS_MIN_VERSION: Final = ssl.TLSVersion.TLSv1_2  # 1.0 and 1.1 are deprecated (RFC 8996)
HANDSHAKE_TIMEOUT: Final = 10.0  # seconds: a phone on a poor link needs one or two
HINT_TIMEOUT: Final = 1.0  # seconds to deliver the cleartext hint before closing anyway
NOT_TLS: Final = "not TLS (a client speaking cleartext to the TLS port?)"
TLS_HINT: Final = (
    b"! this port speaks TLS: use `triochat client --tls`, "
    b"`openssl s_client -quiet -connect HOST:PORT` or `ncat --ssl HOST PORT`\n"
)
# OpenSSL's reasons for a first record that is not TLS at all: chat, JSON or HTTP text.
_CLEARTEXT_REASONS: Final = frozenset(
    {"WRONG_VERSION_NUMBER", "HTTP_REQUEST", "HTTPS_PROXY_REQUEST", "UNKNOWN_PROTOCOL"}
)
_OLD_VERSION_REASONS: Final = frozenset(
    {"UNSUPPORTED_PROTOCOL", "NO_PROTOCOLS_AVAILABLE", "TLSV1_ALERT_PROTOCOL_VERSION"}
)


class CertificateError(Exception):
    """A certificate or key that cannot be used; the message is one line for the user."""


class _Encrypted(Exception):
    """Raised by the passphrase callback: the server never prompts for a passphrase."""


def _no_passphrase() -> str:
    raise _Encrypted


def _read(path: str, what: str) -> bytes:
    """The bytes of ``path``, or a :class:`CertificateError` naming ``what`` it is."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        problem = "no such file"
    except PermissionError:
        problem = "permission denied (the server's user must be able to read it)"
    except IsADirectoryError:
        problem = "it is a folder"
    except OSError as exc:
        problem = (exc.strerror or str(exc)).lower()
    raise CertificateError(f"cannot read the TLS {what} {path}: {problem}")


def load_server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server ``SSLContext`` (TLS 1.2 or newer) with this certificate chain and key.

    ``cert_file`` is PEM: the certificate, then any intermediates. ``key_file`` is its
    unencrypted PEM private key (it may be the same file).

    Raises:
        CertificateError: a file is missing, unreadable, not PEM, the key is encrypted
            or does not match the certificate. The message says which, in one line.
    """
    if b"-----BEGIN CERTIFICATE-----" not in _read(cert_file, "certificate"):
        raise CertificateError(
            f"the TLS certificate {cert_file} is not a PEM certificate "
            "(no '-----BEGIN CERTIFICATE-----' line)"
        )
    if b"PRIVATE KEY-----" not in _read(key_file, "key"):
        raise CertificateError(
            f"the TLS key {key_file} is not a PEM private key "
            "(no '-----BEGIN ... PRIVATE KEY-----' line)"
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_MIN_VERSION
    try:
        context.load_cert_chain(cert_file, key_file, password=_no_passphrase)
    except _Encrypted:
        raise CertificateError(
            f"the TLS key {key_file} is protected by a passphrase; give the server an "
            "unencrypted copy that only its user can read"
        ) from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise CertificateError(
                f"the TLS key {key_file} does not belong to the certificate {cert_file}"
            ) from None
        detail = (exc.reason or exc.strerror or str(exc)).lower().replace("_", " ")
        raise CertificateError(
            f"cannot use the TLS certificate {cert_file} with the key {key_file}: {detail}"
        ) from None
    except OSError as exc:  # replaced or removed between the check and the load
        raise CertificateError(f"cannot read the TLS certificate or key: {exc}") from None
    return context


class Certificates:
    """The TLS context new connections get, reloadable from the same two files.

    Attributes:
        cert_file: the PEM certificate chain.
        key_file: its private key.
        context: what the next handshake uses.
    """

    def __init__(self, cert_file: str, key_file: str) -> None:
        """Load the pair now.

        Raises:
            CertificateError: see :func:`load_server_context`.
        """
        self.cert_file = cert_file
        self.key_file = key_file
        self.context = load_server_context(cert_file, key_file)

    async def reload(self) -> bool:
        """Load the files again (SIGHUP); on failure keep the old context and log why.

        The files are read in a worker thread: the event loop never waits for a disk.
        Returns True if the new certificate is now in use.
        """
        try:
            context = await trio.to_thread.run_sync(
                load_server_context, self.cert_file, self.key_file
            )
        except CertificateError as exc:
            log.error("TLS: reload failed, still using the previous certificate: %s", exc)
            return False
        self.context = context
        log.info("TLS: certificate reloaded from %s; new connections use it", self.cert_file)
        return True


def _alert(reason: str) -> str:
    """``TLSV1_ALERT_UNKNOWN_CA`` -> ``unknown ca``."""
    return reason.split("ALERT_", 1)[-1].lower().replace("_", " ")


def handshake_failure(exc: BaseException) -> str:
    """A few words on why a server-side handshake failed, for the log.

    ``exc`` is what ``SSLStream.do_handshake`` raised (its cause is the ``ssl`` error).
    """
    cause = exc.__cause__
    if isinstance(cause, ssl.SSLEOFError):
        return "the client closed the connection during the handshake"
    if isinstance(cause, ssl.SSLError):
        reason = cause.reason or ""
        if reason in _CLEARTEXT_REASONS:
            return NOT_TLS
        if reason in _OLD_VERSION_REASONS:
            return "the client's TLS is too old (1.2 or newer is required)"
        if "ALERT_" in reason:
            return f"the client ended the handshake (alert: {_alert(reason)})"
        return (reason or str(cause)).lower().replace("_", " ")
    return "the connection was lost during the handshake"


class TlsDoor:
    """Serves the connections of a TLS listener: a handshake, then the chat.

    Use :meth:`ChatServer.serve_tls <triochat.server.app.ChatServer.serve_tls>`, or
    hand :meth:`handle` any stream whose far end speaks TLS (a memory stream in tests).
    """

    def __init__(self, server: ChatServer, certificates: Certificates) -> None:
        self._server = server
        self._certificates = certificates
        self._handshakes = 0  # in progress
        self._per_address: dict[str, int] = {}  # in progress, per untrusted address
        self._failures = RepeatLimiter()  # scanners and cleartext clients repeat

    @property
    def handshakes(self) -> int:
        """Handshakes in progress."""
        return self._handshakes

    def _busy(self, host: str | None) -> str | None:
        """Why no handshake may start now for ``host``, or None."""
        config = self._server.config
        if self._handshakes >= config.max_clients:
            return f"too many TLS handshakes in progress ({config.max_clients})"
        if host is not None and self._per_address.get(host, 0) >= config.max_per_address:
            limit = config.max_per_address
            return f"too many TLS handshakes in progress from one address ({limit})"
        return None

    async def handle(self, stream: trio.abc.Stream) -> None:
        """Do the handshake (bounded), then serve the connection; close it either way.

        Never raises because of anything the peer does.
        """
        server = self._server
        config = server.config
        peer, host = peer_address(stream)
        counted = host
        if host is None or config.max_per_address == 0 or is_trusted(host, config.trusted):
            counted = None
        busy = self._busy(counted)
        if busy is not None:
            self._log(peer, busy)
            await trio.aclose_forcefully(stream)
            return
        tls = tls_server_side(stream, self._certificates.context)
        failure: str | None = None
        self._handshakes += 1
        if counted is not None:
            self._per_address[counted] = self._per_address.get(counted, 0) + 1
        try:
            with server.opening(HANDSHAKE_TIMEOUT) as deadline:
                try:
                    await tls.do_handshake()
                except trio.BrokenResourceError as exc:
                    failure = handshake_failure(exc)
            timed_out = deadline.cancelled_caught and not server.stopping
            if deadline.cancelled_caught:
                failure = (
                    f"no TLS handshake within {HANDSHAKE_TIMEOUT:g} s"
                    if timed_out
                    else "the server is shutting down"
                )
        finally:
            self._handshakes -= 1
            if counted is not None:
                if self._per_address[counted] == 1:
                    del self._per_address[counted]
                else:
                    self._per_address[counted] -= 1
        if failure is None:
            await server.serve_transport(tls, peer, host, secure=True)
            return
        self._log(peer, failure)
        if failure == NOT_TLS or timed_out:
            # Most likely a person on nc or telnet: tell them what this port wants.
            # (The TLS layer is broken, so this goes in cleartext on the TCP stream.)
            with (
                trio.move_on_after(HINT_TIMEOUT),
                contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
            ):
                await stream.send_all(TLS_HINT)
        await trio.aclose_forcefully(stream)

    def _log(self, peer: str, failure: str) -> None:
        """One line per kind of failure per 10 s, with a count of those held back."""
        repeats = self._failures.allow(failure, trio.current_time())
        if repeats is None:
            return
        more = f" (and {repeats.held} more in {repeats.seconds:.0f} s)" if repeats.held else ""
        log.info("TLS: %s: %s; closed%s", peer, failure, more)
