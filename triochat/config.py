"""Server settings with their defaults, shared by the CLI, the server and the tests."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Final

from triochat.core.framing import MAX_LINE_BYTES
from triochat.core.names import name_error
from triochat.core.passwords import MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DEFAULT_TLS_PORT",
    "DEFAULT_WEB_PORT",
    "LOOPBACK",
    "Network",
    "ServerConfig",
    "is_trusted",
    "parse_networks",
]

DEFAULT_HOST: Final = "127.0.0.1"  # loopback: exposing a chat to a LAN is an explicit choice
DEFAULT_PORT: Final = 30000  # unprivileged, unassigned by IANA, easy to type after nc
DEFAULT_TLS_PORT: Final = 30001  # TLS listener (--tls-cert): the next port, easy to remember
DEFAULT_WEB_PORT: Final = 30080  # the page and its WebSocket; next to 30000, easy to remember

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

    Each field but the four below is one ``triochat server`` flag: ``max_clients`` is
    ``--max-clients`` (``ops`` is ``--op``, ``web_origins`` is ``--web-origin``,
    ``web_hosts`` is ``--web-host``). What each one means, how its text is read and how
    ``--help`` shows it are written once, in ``triochat.cli.settings.SERVER_SETTINGS``;
    ``triochat server --help`` prints them.
    The listening fields (``host``, ports, TLS files, ``db``, logging) are read by the
    command that starts the server; :class:`~triochat.server.ChatServer` reads the rest.

    Fields that are not flags:
        presence_interval: seconds between join/leave summaries (and room housekeeping).
        registration_timeout: seconds to wait for a first line before joining as guest.
        flush_timeout: seconds a closing connection's writer may take to flush.
        server_password: what every connection must give before joining (the command
            reads it from ``password_file``; None: nothing). Never shown in a ``repr``.

    Raises:
        ValueError: one message naming every value out of range, and settings that only
            make sense together (``--tls-cert`` without ``--tls-key``).
    """

    # -- where it listens (read by the command, not by ChatServer) --
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    web_port: int | None = DEFAULT_WEB_PORT  # None: no web page
    web_origins: tuple[str, ...] = ()  # besides the page's own origin
    web_hosts: tuple[str, ...] = ()  # Host names served; (): localhost and the machine's names
    web_cleartext: bool = False
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_port: int = DEFAULT_TLS_PORT
    no_plain: bool = False
    metrics_port: int | None = None  # None: /metrics only on the web port (trusted peers)
    irc_port: int | None = None  # None: no IRC door
    irc_tls_port: int | None = None  # None: no IRC over TLS (needs tls_cert)
    irc_server_name: str = ""  # "": the host name
    # -- history and storage --
    db: str | None = None  # None: the user data folder (triochat.store.default_db_path)
    durability: str = "process"  # process: synchronous=NORMAL; power: FULL (triochat.store)
    history: int = 20
    retain_days: float | None = None
    retain_messages: int | None = None
    resume_limit: int = 1000
    no_search_index: bool = False  # SQLite: no full-text index; /search says it is off
    # -- limits --
    max_rooms: int = 1000
    max_rooms_per_member: int = 50
    max_line_bytes: int = MAX_LINE_BYTES
    rate_limit: float = 5.0
    burst: int = 20
    send_queue: int = 1024
    send_queue_bytes: int = 1 << 20  # 1 MiB: 1000 1-KB lines, or 150 /who replies with 1000 online
    max_clients: int = 1000
    max_per_address: int = 20
    trusted: tuple[Network, ...] = LOOPBACK
    coalesce_above: int = 100
    max_registrations_per_hour: int = 3
    # -- access --
    ops: tuple[str, ...] = ()
    password_file: str | None = None
    min_password_length: int = MIN_PASSWORD_CHARS
    # -- logging (read by the command) --
    log_level: str = "info"
    log_format: str = "auto"
    # -- the cluster --
    redis: str | None = None
    # -- not flags --
    presence_interval: float = 2.0
    registration_timeout: float = 1.0
    flush_timeout: float = 1.0
    server_password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        problems = [
            f"{name.replace('_', ' ')} must be from 0 to 65535"
            for name, port in (
                ("port", self.port),
                ("tls_port", self.tls_port),
                ("web_port", self.web_port),
                ("metrics_port", self.metrics_port),
            )
            if port is not None and not 0 <= port <= 65535
        ]
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
        if self.max_registrations_per_hour < 0:
            problems.append("max registrations per hour must be 0 (no limit) or more")
        if self.coalesce_above < 1:
            problems.append("coalesce threshold must be at least 1")
        if self.max_rooms < 1:
            problems.append("max rooms must be at least 1")
        if self.max_rooms_per_member < 1:
            problems.append("max rooms per member must be at least 1")
        if self.resume_limit < 1:
            problems.append("resume limit must be at least 1")
        if self.durability not in ("process", "power"):
            problems.append("durability must be 'process' or 'power'")
        if self.retain_days is not None and self.retain_days <= 0:
            problems.append("retain days must be more than 0")
        if not 1 <= self.min_password_length <= MAX_PASSWORD_CHARS:
            problems.append(f"min password length must be from 1 to {MAX_PASSWORD_CHARS}")
        if self.retain_messages is not None and self.retain_messages < 1:
            problems.append("retain messages must be at least 1")
        problems += [
            f"--op {name}: {problem}" for name in self.ops if (problem := name_error(name))
        ]
        if self.server_password is not None and not self.server_password:
            problems.append("the server password must not be empty")
        problems += self._listening_problems()
        if problems:
            raise ValueError("; ".join(problems))

    def _listening_problems(self) -> list[str]:
        """Settings that only make sense together (the command's usage errors)."""
        if (self.tls_cert is None) != (self.tls_key is None):
            return ["--tls-cert and --tls-key go together: give both, or neither"]
        if self.tls_cert is None and self.no_plain:
            return ["--no-plain needs --tls-cert and --tls-key (there would be no listener)"]
        if self.tls_cert is not None and not self.no_plain and self.tls_port == self.port != 0:
            return [f"--tls-port and --port are both {self.port}; choose two ports"]
        return []
