"""Connecting to a server, in cleartext or over TLS, and saying why TLS failed.

With ``--tls`` the server's certificate and host name are checked against the system's
trusted certificates, or only against ``--ca FILE``. A failed check is an error
(:class:`TlsFailure`), never a quiet fall back to cleartext. ``--insecure`` turns the
check off; the client then says so on stderr every time it starts.
"""

from __future__ import annotations

import ssl
from typing import Final

import trio

from triochat.config import DEFAULT_TLS_PORT

__all__ = [
    "INSECURE_WARNING",
    "TLS_MIN_VERSION",
    "TlsFailure",
    "TlsSetupError",
    "client_context",
    "open_stream",
    "tls_failure",
]

TLS_MIN_VERSION: Final = ssl.TLSVersion.TLSv1_2  # what the server accepts too (RFC 8996)
INSECURE_WARNING: Final = (
    "WARNING: --insecure: the server's certificate is NOT checked; anyone on the network "
    "between you and {where} can read and change this chat"
)
# OpenSSL's reasons when what came back was not TLS at all (a plain triochat port).
_CLEARTEXT_REASONS: Final = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE"})


class TlsSetupError(Exception):
    """``--ca`` names a file that cannot be used; the message is one line."""


class TlsFailure(OSError):
    """The TLS handshake with the server failed.

    ``strerror`` says why, in a few words (for a status line); :attr:`hint` what to try.
    """

    hint: str = ""


def client_context(ca_file: str | None = None, *, insecure: bool = False) -> ssl.SSLContext:
    """The client's TLS settings: verify against the system store, or ``ca_file`` only.

    Raises:
        TlsSetupError: ``ca_file`` is missing, unreadable or holds no certificate.
    """
    try:
        # With a cafile, the default context trusts that file only, not the system store.
        context = ssl.create_default_context(cafile=ca_file)
    except FileNotFoundError:
        raise TlsSetupError(f"cannot read --ca {ca_file}: no such file") from None
    except PermissionError:
        raise TlsSetupError(f"cannot read --ca {ca_file}: permission denied") from None
    except ssl.SSLError:
        raise TlsSetupError(
            f"--ca {ca_file} holds no PEM certificate ('-----BEGIN CERTIFICATE-----')"
        ) from None
    except OSError as exc:
        raise TlsSetupError(f"cannot read --ca {ca_file}: {exc.strerror or exc}") from None
    context.minimum_version = TLS_MIN_VERSION
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def tls_failure(exc: BaseException) -> TlsFailure:
    """Why the client's handshake failed, and what to try (``exc`` from ``do_handshake``)."""
    cause = exc.__cause__
    port_hint = f"a server's TLS port is {DEFAULT_TLS_PORT} unless it says otherwise (--port)"
    if isinstance(cause, ssl.SSLCertVerificationError):
        message = (cause.verify_message or cause.reason or "verify failed").rstrip(".")
        reason = f"the server's certificate was not accepted: {message}"
        if "mismatch" in message.lower():  # "Hostname mismatch", "IP address mismatch"
            hint = "connect with --host set to a name the certificate lists"
        else:
            hint = "for a private or self-signed certificate, give its CA with --ca FILE"
    elif isinstance(cause, ssl.SSLError) and cause.reason in _CLEARTEXT_REASONS:
        reason = "the server did not answer in TLS (is this its plain port?)"
        hint = port_hint
    elif isinstance(cause, ssl.SSLEOFError) or not isinstance(cause, ssl.SSLError):
        reason = "the server closed the connection during the TLS handshake"
        hint = port_hint
    else:
        reason = f"TLS handshake failed: {(cause.reason or str(cause)).lower().replace('_', ' ')}"
        hint = "check --port and --ca"
    failure = TlsFailure(0, reason)
    failure.hint = hint
    return failure


async def open_stream(host: str, port: int, context: ssl.SSLContext | None) -> trio.abc.Stream:
    """A connected stream to ``host:port``: TCP, or TLS with the handshake done.

    Raises:
        OSError: the connection could not be made; :class:`TlsFailure` if it was, but
            the TLS handshake failed (a certificate that does not verify, a server that
            does not speak TLS).
    """
    tcp = await trio.open_tcp_stream(host, port)
    if context is None:
        return tcp
    stream = trio.SSLStream(tcp, context, server_hostname=host)
    try:
        await stream.do_handshake()
    except trio.BrokenResourceError as exc:
        await trio.aclose_forcefully(tcp)
        raise tls_failure(exc) from exc
    except BaseException:
        await trio.aclose_forcefully(tcp)
        raise
    return stream
