"""TLS certificates (checked, loaded, reloaded) and the server side of a handshake.

:class:`Certificates` holds the ``ssl.SSLContext`` that new TLS connections get; it is
loaded once at start-up (a problem there is one line and exit status 2, see
:class:`CertificateError`) and again on SIGHUP, so renewed certificates need no
restart. :func:`tls_handshake` is the one place a TLS door turns an accepted stream
into an encrypted one (:class:`~triochat.server.listeners.TlsDoor` calls it; a direct
TLS transport on the socket's descriptor can take its place there).

Rules of this module:

* **A failed reload changes nothing**: the old certificate stays in use and the error
  is logged. Connections keep the context they started with.
* Only the standard library's ``ssl`` (OpenSSL), on the socket's descriptor
  (:mod:`triochat.server.tls_transport`); TLS 1.2 is
  the oldest version accepted.
* No I/O but the handshake itself: deadlines, limits and what a failed client is told
  are the door's business.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Final

import trio

from triochat.core.logevents import log_event
from triochat.server.tls_transport import tls_server_side
from triochat.server.transport import Transport

__all__ = [
    "NOT_TLS",
    "TLS_MIN_VERSION",
    "CertificateError",
    "Certificates",
    "HandshakeFailed",
    "handshake_failure",
    "load_server_context",
    "tls_handshake",
]

log = logging.getLogger(__name__)

TLS_MIN_VERSION: Final = ssl.TLSVersion.TLSv1_2  # 1.0 and 1.1 are deprecated (RFC 8996)
NOT_TLS: Final = "not TLS (a client speaking cleartext to the TLS port?)"
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
            log_event(log, "tls.reload_failed", reason=str(exc))
            return False
        self.context = context
        log_event(log, "tls.reloaded", file=self.cert_file)
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


class HandshakeFailed(Exception):
    """A server-side handshake failed; the message says why in a few words (for the log)."""


async def tls_handshake(stream: trio.abc.Stream, context: ssl.SSLContext) -> Transport:
    """Do the server side of a TLS handshake on ``stream``; return its transport.

    A TCP socket gets the direct TLS transport (:mod:`triochat.server.tls_transport`:
    encrypted and written on the descriptor); any other stream ``trio.SSLStream``.

    No deadline here: the caller bounds it. Closing ``stream`` on failure is the
    caller's business too (it may first tell a cleartext client what the port wants).

    Raises:
        HandshakeFailed: the peer is not speaking TLS, is too old, went away, or ended
            the handshake; :func:`handshake_failure` words the reason.
    """
    tls = tls_server_side(stream, context)
    try:
        await tls.do_handshake()
    except trio.BrokenResourceError as exc:
        raise HandshakeFailed(handshake_failure(exc)) from None
    return tls
