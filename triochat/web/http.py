"""What the web front door answers to an HTTP request. No trio, no sockets.

Rules of this module:

* **A fixed table of files.** The page's assets are read once from the package data
  (``triochat/web/static/``) into :class:`Assets`; a request can only ever name one of
  those entries, so no path (``..``, ``%2e``, a symlink) reaches the file system.
* **Every response is safe to show.** Each carries a strict Content-Security-Policy
  (``default-src 'self'``: no inline script or style, nothing from another origin),
  ``nosniff``, no referrer and no framing; assets revalidate with an ETag, so a new
  release is picked up at once and an unchanged one costs a 304.
* **The upgrade is decided here too**: :func:`route` says ``upgrade`` for ``GET /ws``,
  and :class:`OriginPolicy` says whether the browser page asking for it may.
* **Only this server's names** (:class:`HostPolicy`): a request whose ``Host`` names
  another site is refused before anything else, against DNS rebinding.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import ipaddress
from dataclasses import dataclass
from typing import Final, Protocol
from urllib.parse import urlsplit

__all__ = [
    "CONTENT_TYPES",
    "CSP",
    "MONITOR_PATHS",
    "WS_PATH",
    "Assets",
    "HostPolicy",
    "Monitoring",
    "OriginPolicy",
    "Reply",
    "Upgrade",
    "header",
    "host_name",
    "monitoring",
    "parse_hosts",
    "parse_origins",
    "refusal",
    "route",
]

WS_PATH: Final = "/ws"  # where the page opens its WebSocket
MONITOR_PATHS: Final = ("/metrics", "/healthz", "/readyz")  # see Monitoring
INDEX: Final = "index.html"  # served for GET /
# The page is plain files: no inline script or style anywhere, so 'self' is the whole
# policy. (connect-src 'self' covers ws:/wss: to the same host in CSP Level 3.)
CSP: Final = (
    "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
    "object-src 'none'"
)
SECURITY_HEADERS: Final[tuple[tuple[str, str], ...]] = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),  # a .js is never sniffed as something else
    ("Referrer-Policy", "no-referrer"),  # links people post do not learn the chat's URL
    ("X-Frame-Options", "DENY"),  # older browsers' frame-ancestors
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
)
CACHE_ASSET: Final = "no-cache"  # revalidate every time (ETag): file names carry no hash
CACHE_NEVER: Final = "no-store"  # errors and refusals
CONTENT_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".webmanifest": "application/manifest+json",
}


@dataclass(frozen=True, slots=True)
class Asset:
    """One file of the page: its bytes, content type and validator."""

    body: bytes
    content_type: str
    etag: str


class Assets:
    """The page's files, read once from the package data (or given, in tests)."""

    def __init__(self, files: dict[str, bytes] | None = None) -> None:
        """Index ``files`` (name -> bytes); by default every file in ``static/``.

        Files with a suffix not in :data:`CONTENT_TYPES` are not served.
        """
        if files is None:
            files = _package_files()
        self.files: dict[str, Asset] = {}
        for name, body in files.items():
            suffix = name[name.rfind(".") :] if "." in name else ""
            content_type = CONTENT_TYPES.get(suffix)
            if content_type is None:
                continue
            digest = hashlib.sha256(body).hexdigest()[:20]
            self.files[name] = Asset(body, content_type, f'"{digest}"')

    def get(self, name: str) -> Asset | None:
        """The asset called ``name`` (``app.js``), or None."""
        return self.files.get(name)


def _package_files() -> dict[str, bytes]:
    """Every file under ``triochat/web/static/`` by its path there (``app.js``)."""
    files: dict[str, bytes] = {}
    root = importlib.resources.files("triochat.web").joinpath("static")
    pending = [(root, "")]
    while pending:
        folder, prefix = pending.pop()
        for entry in folder.iterdir():
            if entry.is_dir():
                pending.append((entry, f"{prefix}{entry.name}/"))
            elif entry.is_file() and not entry.name.startswith("."):
                files[prefix + entry.name] = entry.read_bytes()
    return files


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP response to send: status, headers and body (empty for HEAD and 304)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""
    close: bool = False  # close the connection after it


@dataclass(frozen=True, slots=True)
class Upgrade:
    """The request asks for the chat WebSocket; the caller checks the origin and switches."""


def header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    """The value of header ``name`` (lower case) or None; several are joined with ``,``."""
    values = [value for key, value in headers if key == name]
    if not values:
        return None
    return b",".join(values).decode("latin-1")


def route(
    method: str, target: str, headers: list[tuple[bytes, bytes]], assets: Assets
) -> Reply | Upgrade:
    """The answer to one request (``headers`` as h11 gives them: lower-case names)."""
    path = urlsplit(target).path
    if path == WS_PATH:
        if method != "GET":
            return _error(405, "the chat WebSocket needs GET", (("Allow", "GET"),))
        return Upgrade()
    if path == "/":
        name = INDEX
    elif path.startswith("/static/"):
        name = path[len("/static/") :]
    else:
        return _error(404, "not found")
    asset = assets.get(name)
    if asset is None:
        return _error(404, "not found")
    if method not in ("GET", "HEAD"):
        return _error(405, "only GET and HEAD", (("Allow", "GET, HEAD"),))
    common = (("ETag", asset.etag), ("Cache-Control", CACHE_ASSET), *SECURITY_HEADERS)
    if _etag_matches(header(headers, b"if-none-match"), asset.etag):
        return Reply(304, common)
    body = asset.body if method == "GET" else b""
    return Reply(
        200,
        (
            ("Content-Type", asset.content_type),
            ("Content-Length", str(len(asset.body))),
            *common,
        ),
        body,
    )


def refusal(status: int, text: str) -> Reply:
    """A plain-text error reply that closes the connection (a refused upgrade, a bad request)."""
    return _error(status, text, close=True)


def _error(
    status: int, text: str, extra: tuple[tuple[str, str], ...] = (), *, close: bool = False
) -> Reply:
    body = (text + "\n").encode()
    return Reply(
        status,
        (
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", CACHE_NEVER),
            *extra,
            *SECURITY_HEADERS,
        ),
        body,
        close,
    )


def _etag_matches(if_none_match: str | None, etag: str) -> bool:
    if if_none_match is None:
        return False
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return etag in candidates or "*" in candidates


# -- origins --------------------------------------------------------------------------


def _authority(origin: str) -> str | None:
    """``host[:port]`` of an origin (``https://Chat.Example:8443`` -> ``chat.example:8443``).

    None for anything that is not an http(s) origin (``null``, a path, a userinfo).
    """
    try:
        parts = urlsplit(origin.strip())
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    return parts.netloc.lower()


def parse_origins(text: str) -> tuple[str, ...]:
    """Parse ``--web-origin``: comma-separated origins (``https://chat.example.org``) or ``*``.

    Raises:
        ValueError: naming the part that is not an origin.
    """
    origins: list[str] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if part == "*":
            origins.append("*")
            continue
        if _authority(part) is None:
            raise ValueError(f"{part!r} is not an origin such as https://chat.example.org")
        origins.append(part.rstrip("/").lower())
    return tuple(origins)


@dataclass(frozen=True, slots=True)
class OriginPolicy:
    """Which web pages may open the chat WebSocket.

    A browser always sends ``Origin`` with a WebSocket upgrade, and a page cannot
    forge it; without this check any site a member visits could open a connection to
    the chat in their name (cross-site WebSocket hijacking). By default only the page
    this server serves may: the origin's ``host[:port]`` must be the request's
    ``Host`` (compared without the scheme, so a TLS-terminating proxy in front works).
    ``allowed`` adds origins (``https://chat.example.org``), or ``*`` for any.
    A request without ``Origin`` does not come from a browser page and is let in:
    such a client could send any header it liked.
    """

    allowed: tuple[str, ...] = ()

    def permits(self, origin: str | None, host: str | None) -> bool:
        """True if a page from ``origin`` may connect through ``host`` (the Host header)."""
        if origin is None:
            return True
        if "*" in self.allowed:
            return True
        authority = _authority(origin)
        if authority is None:
            return False
        if host is not None and authority == host.strip().lower():
            return True
        return origin.strip().rstrip("/").lower() in self.allowed


# -- hosts ----------------------------------------------------------------------------


def host_name(value: str) -> str | None:
    """The name part of a ``Host`` header, normalised: ``Chat.Example.:80`` -> ``chat.example``.

    IP addresses come out in their canonical form (``[::0:1]:80`` -> ``::1``). None
    for what is no host at all (empty, a userinfo, a bracket left open).
    """
    value = value.strip().lower()
    if value.startswith("["):  # [v6] or [v6]:port
        name, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
    elif value.count(":") == 1:  # name:port or v4:port
        name = value.partition(":")[0]
    else:  # a name, an IPv4 address, or a bare IPv6 address
        name = value
    name = name.rstrip(".")
    if not name or "@" in name or "/" in name or " " in name:
        return None
    return _canonical(name)


def _canonical(name: str) -> str:
    try:
        return ipaddress.ip_address(name).compressed
    except ValueError:
        return name


def parse_hosts(text: str) -> tuple[str, ...]:
    """Parse ``--web-host``: comma-separated names or addresses (no port), or ``*``.

    Raises:
        ValueError: naming the part that is not a host name.
    """
    hosts: list[str] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if part == "*":
            hosts.append("*")
            continue
        name = host_name(part)
        if name is None or (":" in part and not _is_address(part.strip("[]"))):
            raise ValueError(f"{part!r} is not a host name such as chat.example.org (no port)")
        hosts.append(name)
    return tuple(hosts)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


WILDCARDS: Final = frozenset({"0.0.0.0", "::"})  # listening on these: on every address


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """Which ``Host`` values name this server (the defence against DNS rebinding).

    A hostile page at ``evil.example`` can make its name resolve to 127.0.0.1 (DNS
    rebinding); the browser then treats this server as that page's own origin, so the
    origin check passes. The ``Host`` header still says ``evil.example``: only names
    of this server are answered. An IP address cannot be rebound, so the addresses the
    server listens on always name it (any address, when it listens on ``0.0.0.0`` or
    ``::``); the names are ``--web-host`` if given, else ``localhost`` and the
    machine's own names. ``*`` among the names turns the check off. A request without
    ``Host`` (HTTP/1.0) is not from a browser and is let in.

    Attributes:
        names: host names (lower case, no port) that name this server.
        addresses: the addresses it listens on (canonical form).
    """

    names: frozenset[str] = frozenset({"localhost"})
    addresses: frozenset[str] = frozenset()

    @classmethod
    def build(cls, names: tuple[str, ...], listening: tuple[str, ...]) -> HostPolicy:
        """The policy for ``names`` (``--web-host``, or the defaults) and ``listening``.

        ``listening`` holds the addresses the server listens on (or ``--host`` as given,
        which may be a name); addresses among ``names`` count as addresses.
        """
        every = [host_name(item) or item for item in (*names, *listening)]
        return cls(
            frozenset(name for name in every if not _is_address(name)),
            frozenset(name for name in every if _is_address(name)),
        )

    def permits(self, host: str | None) -> bool:
        """True if a request with this ``Host`` header (None: none) is for this server."""
        if host is None or "*" in self.names:
            return True
        name = host_name(host)
        if name is None:
            return False
        if name in self.names or name in self.addresses:
            return True
        return bool(self.addresses & WILDCARDS) and _is_address(name)


class Monitoring(Protocol):
    """What answers ``/metrics``, ``/healthz`` and ``/readyz`` (``triochat.metrics.Monitor``)."""

    def metrics(self) -> bytes:
        """The Prometheus text exposition."""
        ...

    def health(self, path: str) -> tuple[int, bytes]:
        """``/healthz`` or ``/readyz``: the status (200 or 503) and a JSON body."""
        ...


METRICS_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"  # Prometheus text format


def monitoring(method: str, target: str, monitor: Monitoring, *, trusted: bool) -> Reply | None:
    """The answer to a monitoring request, or None if ``target`` is not one.

    ``/metrics`` is for ``trusted`` peers only (403 otherwise); the health checks are
    for anyone (a load balancer), and say only ok or why not.
    """
    path = urlsplit(target).path
    if path not in MONITOR_PATHS:
        return None
    if method not in ("GET", "HEAD"):
        return _error(405, "only GET and HEAD", (("Allow", "GET, HEAD"),))
    if path == "/metrics":
        if not trusted:
            return refusal(403, "metrics are for trusted addresses only (see --trusted)")
        status, body, kind = 200, monitor.metrics(), METRICS_TYPE
    else:
        status, body = monitor.health(path)
        kind = "application/json"
    headers = (
        ("Content-Type", kind),
        ("Content-Length", str(len(body))),
        ("Cache-Control", CACHE_NEVER),
        *SECURITY_HEADERS,
    )
    return Reply(status, headers, body if method == "GET" else b"")
