"""The listen plan: which ports ``triochat server`` opens, from its config.

:data:`DOORS` has one row per kind of port (plain, TLS, web, metrics, IRC, IRC over
TLS); :func:`listen_plan` keeps the rows a config asks for. A later kind of port is
one more row here and
one more ``case`` where the server starts what listens on it. The ports are opened all
before any is served, so a port in use stops the start-up with nothing half-open.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import trio

from triochat.config import ServerConfig
from triochat.core.logevents import log_event

__all__ = [
    "DOORS",
    "Door",
    "DoorKind",
    "DoorRow",
    "bound_address",
    "bound_config",
    "format_address",
    "listen_plan",
    "open_doors",
]

log = logging.getLogger(__name__)

DoorKind = Literal["plain", "tls", "web", "metrics", "irc", "irc-tls"]


@dataclass(frozen=True, slots=True)
class DoorRow:
    """One kind of port the server may open.

    Attributes:
        kind: what is served there.
        flag: the setting that chooses the port, named when it cannot be opened.
        port: the port a config asks for (0: a free one), or None: not opened.
        field: the ServerConfig field of that port ("": ``KIND_port``), given the real
            port once it is open (:func:`bound_config`).
    """

    kind: DoorKind
    flag: str
    port: Callable[[ServerConfig], int | None]
    field: str = ""

    @property
    def config_field(self) -> str:
        """The ServerConfig field that holds this door's port."""
        return self.field or f"{self.kind.replace('-', '_')}_port"


@dataclass(frozen=True, slots=True)
class Door:
    """A port the server will open: what is served there, and where."""

    kind: DoorKind
    host: str
    port: int
    flag: str


DOORS: Final[tuple[DoorRow, ...]] = (
    DoorRow("plain", "--port", lambda config: None if config.no_plain else config.port, "port"),
    DoorRow(
        "tls", "--tls-port", lambda config: None if config.tls_cert is None else config.tls_port
    ),
    DoorRow("web", "--web-port (or off)", lambda config: config.web_port),
    DoorRow("metrics", "--metrics-port (or off)", lambda config: config.metrics_port),
    DoorRow("irc", "--irc-port", lambda config: config.irc_port),
    DoorRow(
        "irc-tls",
        "--irc-tls-port",
        lambda config: None if config.tls_cert is None else config.irc_tls_port,
    ),
)


def listen_plan(config: ServerConfig) -> tuple[Door, ...]:
    """The ports ``config`` asks for, in the order of :data:`DOORS`."""
    return tuple(
        Door(row.kind, config.host, port, row.flag)
        for row in DOORS
        if (port := row.port(config)) is not None
    )


def bound_config(
    config: ServerConfig, opened: Sequence[tuple[Door, Sequence[trio.SocketListener]]]
) -> ServerConfig:
    """``config`` with the real port of each door opened (where it asked for 0).

    The server then names its other doors right (a wrong-door line says where to go).
    """
    fields = {row.kind: row.config_field for row in DOORS}
    ports = {
        fields[door.kind]: listeners[0].socket.getsockname()[1]
        for door, listeners in opened
        if listeners
    }
    return dataclasses.replace(config, **ports)


def format_address(host: str, port: int) -> str:
    """``HOST:PORT``, with brackets around an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _listen_error(exc: OSError, door: Door) -> str:
    host, where = door.host, format_address(door.host, door.port)
    if isinstance(exc, socket.gaierror):
        return f"cannot listen on {where}: unknown host {host!r} ({exc.strerror})"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"cannot listen on {where}: the port is already in use "
            f"(is another server running? choose another with {door.flag})"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {where}: {host} is not an address of this machine"
    if exc.errno == errno.EACCES:
        return f"cannot listen on {where}: permission denied (ports below 1024 need root)"
    return f"cannot listen on {where}: {exc.strerror or exc}"


async def open_doors(
    plan: Sequence[Door],
) -> list[tuple[Door, list[trio.SocketListener]]] | None:
    """Open every door of ``plan`` (one listener per address of its host).

    Returns None, after one line on stderr naming the door's flag, if a port cannot be
    opened; nothing is left open then.
    """
    opened: list[tuple[Door, list[trio.SocketListener]]] = []
    for door in plan:
        try:
            opened.append((door, await trio.open_tcp_listeners(door.port, host=door.host)))
        except OSError as exc:
            for _, listeners in opened:
                for listener in listeners:
                    await listener.aclose()
            print(f"triochat: error: {_listen_error(exc, door)}", file=sys.stderr)
            return None
    return opened


def bound_address(listeners: Sequence[trio.SocketListener], suffix: str = "") -> str:
    """``HOST:PORT`` of the first listener (the real port when 0 was asked for).

    Any other address (such as the IPv6 one of ``localhost``) is logged, with ``suffix``.
    """
    addresses = [listener.socket.getsockname() for listener in listeners]
    for extra in addresses[1:]:
        log_event(log, "server.listening", address=format_address(extra[0], extra[1]), _door=suffix)
    return format_address(addresses[0][0], addresses[0][1])
