"""Server settings with their defaults, shared by the CLI, the server and the tests."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Final

from triochat.core.framing import MAX_LINE_BYTES
from triochat.core.names import name_error

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DEFAULT_TLS_PORT",
    "LOOPBACK",
    "Network",
    "ServerConfig",
    "is_trusted",
    "parse_networks",
]

DEFAULT_HOST: Final = "127.0.0.1"  # loopback: exposing a chat to a LAN is an explicit choice
DEFAULT_PORT: Final = 30000  # unprivileged, unassigned by IANA, easy to type after nc
DEFAULT_TLS_PORT: Final = 30001  # TLS listener (--tls-cert): the next port, easy to remember

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# Exempt from --max-per-address by default: a local TLS terminator, reverse proxy or SSH
# tunnel makes every user arrive from loopback and must not cap the whole server at 20.
LOOPBACK: Final[tuple[Network, ...]] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)


def parse_networks(text: str) -> tuple[Network, ...]:
    """Parse ``ADDRESS[/PREFIX],...`` (or ``none``) into networks.

    Raises:
        ValueError: with a message naming the part that is not an address or network.
    """
    if text.strip().lower() == "none":
        return ()
    networks: list[Network] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is not an address or ADDRESS/PREFIX") from None
    return tuple(networks)


def is_trusted(host: str, trusted: tuple[Network, ...]) -> bool:
    """True if the address ``host`` lies in one of the ``trusted`` networks.

    An IPv4 address seen through an IPv6 socket (``::ffff:127.0.0.1``) counts as
    its IPv4 self.
    """
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in trusted)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything a running server can be told; every field has a safe default.

    Attributes:
        history: chat events replayed to a newcomer; 0 turns history off.
        max_line_bytes: longest accepted line; longer ones are discarded with an error.
        rate_limit: lines per second per connection; 0 turns flood control off.
        burst: lines a connection may send at once before the rate limit applies.
        send_queue: events queued for one member before it is dropped as "too slow".
        send_queue_bytes: bytes of output held for one member (its own replies included)
            before it is dropped as "too slow"; whichever of the two bounds is reached
            first applies. One event to a member with nothing queued always fits.
        max_clients: connections served at once; more are refused with one line.
        max_per_address: connections from one address at once (0: no limit); more are
            refused with one line. Addresses in ``trusted`` are exempt.
        trusted: networks exempt from ``max_per_address`` (default: loopback).
        coalesce_above: above this many members, join/leave notices become summaries.
        presence_interval: seconds between those summaries (and room housekeeping).
        registration_timeout: seconds to wait for a first line before joining as guest.
        flush_timeout: seconds a closing connection's writer may take to flush.
        max_rooms: rooms on the server (empty rooms count: they keep their history).
        max_rooms_per_member: rooms one member may be in at once.
        resume_limit: stored messages replayed per room to a client resuming with
            ``since``; beyond that a ``gap`` event says how many were skipped.
        retain_days: delete stored messages older than this many days (None: keep).
        retain_messages: keep at most this many stored messages per room (None: all).
        ops: names that are operators once registered (``--op``; more with ``/op``).
        server_password: what every connection must give before joining
            (``--password-file``; None: nothing). Never shown in a ``repr``.
        redis: ``redis://HOST:PORT/DB`` of the Redis (or Valkey) that servers sharing
            rooms meet in (``--redis``; None: this server is on its own).
        web_cleartext: with TLS certificates, serve the web page and its WebSocket in
            cleartext anyway (behind a TLS-terminating proxy); a warning is logged at
            start-up. Without certificates the web port is cleartext regardless.
    """

    history: int = 20
    max_line_bytes: int = MAX_LINE_BYTES
    rate_limit: float = 5.0
    burst: int = 20
    send_queue: int = 1024
    send_queue_bytes: int = 1 << 20  # 1 MiB: 1000 1-KB lines, or 150 /who replies with 1000 online
    max_clients: int = 1000
    max_per_address: int = 20
    trusted: tuple[Network, ...] = LOOPBACK
    coalesce_above: int = 100
    presence_interval: float = 2.0
    registration_timeout: float = 1.0
    flush_timeout: float = 1.0
    max_rooms: int = 1000
    max_rooms_per_member: int = 50
    resume_limit: int = 1000
    retain_days: float | None = None
    retain_messages: int | None = None
    ops: tuple[str, ...] = ()
    server_password: str | None = field(default=None, repr=False)
    redis: str | None = None
    web_cleartext: bool = False

    def __post_init__(self) -> None:
        problems = []
        if self.history < 0:
            problems.append("history must be 0 or more")
        if self.max_line_bytes < 16:
            problems.append("max line bytes must be at least 16")
        if self.rate_limit < 0:
            problems.append("rate limit must be 0 (off) or more")
        if self.burst < 1:
            problems.append("burst must be at least 1")
        if self.send_queue < 1:
            problems.append("send queue must be at least 1")
        if self.send_queue_bytes < 1:
            problems.append("send queue bytes must be at least 1")
        if self.max_clients < 1:
            problems.append("max clients must be at least 1")
        if self.max_per_address < 0:
            problems.append("max per address must be 0 (no limit) or more")
        if self.coalesce_above < 1:
            problems.append("coalesce threshold must be at least 1")
        if self.max_rooms < 1:
            problems.append("max rooms must be at least 1")
        if self.max_rooms_per_member < 1:
            problems.append("max rooms per member must be at least 1")
        if self.resume_limit < 1:
            problems.append("resume limit must be at least 1")
        if self.retain_days is not None and self.retain_days <= 0:
            problems.append("retain days must be more than 0")
        if self.retain_messages is not None and self.retain_messages < 1:
            problems.append("retain messages must be at least 1")
        problems += [
            f"--op {name}: {problem}" for name in self.ops if (problem := name_error(name))
        ]
        if self.server_password is not None and not self.server_password:
            problems.append("the server password must not be empty")
        if problems:
            raise ValueError("; ".join(problems))
