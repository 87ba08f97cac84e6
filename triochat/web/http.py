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
"""

from __future__ import annotations

import hashlib
import importlib.resources
from dataclasses import dataclass
from typing import Final, Protocol
from urllib.parse import urlsplit

__all__ = [
    "CONTENT_TYPES",
    "CSP",
    "MONITOR_PATHS",
    "WS_PATH",
    "Assets",
    "Monitoring",
    "OriginPolicy",
    "Reply",
    "Upgrade",
    "header",
    "monitoring",
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
