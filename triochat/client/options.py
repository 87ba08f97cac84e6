"""The ``triochat client`` flags, and one-line explanations of a failed connect."""

from __future__ import annotations

import argparse
import getpass
import os
import re
import socket
from typing import Final

import trio

from triochat.client.connection import causes
from triochat.client.tls import TlsFailure
from triochat.config import DEFAULT_HOST, DEFAULT_PORT, DEFAULT_TLS_PORT
from triochat.core.names import MAX_NAME_CHARS

__all__ = ["CONNECT_TIMEOUT", "add_client_arguments", "connect_error_message", "default_name"]

CONNECT_TIMEOUT: Final = 10.0  # seconds for DNS + TCP connect; a LAN host answers in ms


def default_name() -> str:
    """The login name, reduced to the characters a triochat name may use."""
    try:
        login = getpass.getuser()
    except Exception:  # no $USER and no passwd entry (minimal containers)
        login = ""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", login).strip("-")[:MAX_NAME_CHARS]
    return name or "guest"


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a TCP port (1-65535; from --port or $TRIOCHAT_PORT)"
        )
    return port


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    """Define the ``triochat client`` flags; TRIOCHAT_HOST/PORT/NAME set the defaults."""
    env = os.environ
    parser.add_argument(
        "--host",
        default=env.get("TRIOCHAT_HOST") or DEFAULT_HOST,
        help="server to connect to; $TRIOCHAT_HOST sets the default (now %(default)s)",
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=env.get("TRIOCHAT_PORT") or str(DEFAULT_PORT),
        help="server port; $TRIOCHAT_PORT sets the default (now %(default)s)",
    )
    parser.add_argument(
        "--name",
        default=env.get("TRIOCHAT_NAME") or default_name(),
        help="your name in the room; $TRIOCHAT_NAME or your login name by default"
        " (now %(default)s)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print each event as one JSON line (for jq and other tools)",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="do not print the recent history the server replays on joining (for scripts"
        " that post: `echo done | triochat client --quiet`)",
    )
    parser.add_argument(
        "--no-bell",
        action="store_true",
        help="do not ring the terminal's bell when a line names you (it is still highlighted)",
    )
    parser.add_argument(
        "--no-reconnect",
        action="store_true",
        help="exit when the connection is lost instead of reconnecting (input from a pipe"
        " never reconnects)",
    )
    parser.add_argument(
        "--save-svg",
        metavar="PATH",
        help="on exit, save what was shown as an SVG picture",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="connect over TLS, checking the server's certificate and host name against "
        f"the system's trusted certificates (a server's TLS port is {DEFAULT_TLS_PORT} by "
        "default: add --port); a failed check ends the client, it never falls back to "
        "cleartext",
    )
    parser.add_argument(
        "--ca",
        metavar="FILE",
        help="with --tls (implied): trust only the CA certificate(s) in this PEM file, "
        "for a server with a private or self-signed certificate",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="with --tls (implied): do NOT check the server's certificate. Anyone on "
        "the network path can then read and change the chat; for testing only",
    )


def connect_error_message(host: str, port: int, exc: BaseException) -> str:
    """One line saying why connecting failed and what to try."""
    where = f"{host}:{port}"
    for cause in causes(exc):
        if isinstance(cause, TlsFailure):
            return f"cannot connect securely to {where}: {cause.strerror}; {cause.hint}"
        if isinstance(cause, socket.gaierror):
            return (
                f"cannot connect to {where}: unknown host {host!r}; check --host or $TRIOCHAT_HOST"
            )
        if isinstance(cause, ConnectionRefusedError):
            return (
                f"cannot connect to {where}: connection refused; is `triochat server` running"
                " there? Check --host/--port (or $TRIOCHAT_HOST/$TRIOCHAT_PORT)"
            )
    if isinstance(exc, trio.TooSlowError):
        reason = f"no answer within {CONNECT_TIMEOUT:g}s"
    else:
        reason = next(
            (c.strerror for c in causes(exc) if isinstance(c, OSError) and c.strerror),
            str(exc),
        )
    return f"cannot connect to {where}: {reason}; check --host/--port and your network"
