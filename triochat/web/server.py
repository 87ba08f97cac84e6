"""The web front door: the page over HTTP, and the chat over a WebSocket, on one port.

:class:`WebServer` is a door of the chat server (one row of its listener table,
:mod:`triochat.server.listeners`): the same accept helper, on the same trio event loop,
and each connection served in a single task:

0. **TLS**, when the server has a certificate: through the same TLS door as the chat's
   TLS port (same certificate, reloaded on SIGHUP), so the page is HTTPS and the chat
   WSS. A cleartext web port beside TLS only with ``ServerConfig.web_cleartext`` (a
   warning says so at start-up). A client speaking plain HTTP to the HTTPS port gets
   a cleartext ``400`` saying to use ``https://``.

1. **HTTP/1.1** (h11, keep-alive): ``GET /`` and ``GET /static/...`` are answered from
   the package's files (:mod:`triochat.web.http`); with a monitor, ``/metrics`` (for
   ``--trusted`` peers only), ``/healthz`` and ``/readyz`` too; anything else is a 404
   or 405. Without the page (the ``--metrics-port`` door) only the monitoring paths.
2. **The upgrade.** ``GET /ws`` from an allowed origin (:class:`OriginPolicy`) is
   switched to a WebSocket (wsproto); a refused one gets a 403 and one log line.
3. **The chat.** The same task then hands the WebSocket to
   :meth:`ChatServer.serve_transport` as a
   :class:`~triochat.web.transport.WebSocketTransport`: from here on it is a member
   like any other, with the same rooms and limits (``--max-clients`` and
   ``--max-per-address`` included).

Rules of this module:

* Nothing a peer does escapes its connection: protocol errors answer 400 (or just
  close), timeouts close, and an unexpected error is logged, never raised into the
  listener (which would stop the web server).
* Waiting is bounded: a request must arrive within :data:`REQUEST_TIMEOUT` (a
  keep-alive connection may idle :data:`KEEPALIVE_TIMEOUT` between requests), and
  at most :data:`MAX_HTTP_CONNECTIONS` connections may be in the HTTP stage at once
  (at most ``--max-per-address`` from one untrusted address). Shutdown ends the HTTP
  stage at once.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final

import h11
import trio
from wsproto import ConnectionType
from wsproto.events import AcceptConnection
from wsproto.events import Request as WsRequest
from wsproto.handshake import H11Handshake
from wsproto.utilities import RemoteProtocolError as WsProtocolError

from triochat.config import is_trusted
from triochat.logs import RepeatLimiter
from triochat.server import ChatServer
from triochat.server.certificates import Certificates
from triochat.server.listeners import AddressCounter, Door, TlsDoor
from triochat.server.transport import Transport, peer_address
from triochat.web.http import (
    Assets,
    Monitoring,
    OriginPolicy,
    Reply,
    Upgrade,
    header,
    monitoring,
    refusal,
    route,
)
from triochat.web.stream import WebSocketStream
from triochat.web.transport import WebSocketTransport

__all__ = [
    "HTTPS_HINT",
    "KEEPALIVE_TIMEOUT",
    "MAX_HTTP_CONNECTIONS",
    "REQUEST_TIMEOUT",
    "WebServer",
    "WebStatistics",
]

log = logging.getLogger(__name__)

REQUEST_TIMEOUT: Final = 10.0  # seconds to send a request head and read the reply (slowloris)
KEEPALIVE_TIMEOUT: Final = 30.0  # seconds an idle keep-alive connection is kept open
MAX_HTTP_CONNECTIONS: Final = 256  # connections in the HTTP stage at once; a page needs ~6
MAX_REQUEST_HEAD: Final = 16384  # bytes of request line + headers (h11's default, stated)
MAX_REQUEST_BODY: Final = 65536  # bytes of body read and dropped to keep a connection alive
RECEIVE_BYTES: Final = 65536  # one read
_HINT_BODY: Final = b"this port speaks HTTPS: open the page with https:// instead of http://\n"
HTTPS_HINT: Final = (  # what plain HTTP on the HTTPS port gets, in cleartext, as nginx does
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_HINT_BODY), _HINT_BODY)
)


@dataclass(frozen=True, slots=True)
class WebStatistics:
    """What :meth:`WebServer.statistics` reports.

    Attributes:
        http_connections: connections in the HTTP stage now (not, or not yet, WebSockets).
        requests: HTTP requests answered so far (upgrades not included).
        upgrades: connections switched to a WebSocket so far.
        refused: connections or upgrades refused so far, per reason (``busy``,
            ``origin``).
    """

    http_connections: int
    requests: int
    upgrades: int
    refused: dict[str, int]


class WebServer:
    """Serves the page and the chat WebSocket for one :class:`ChatServer`.

    Typical use (what ``triochat server`` does)::

        web = WebServer(chat, certificates=certificates)  # None: HTTP and WS
        listeners = await nursery.start(web.serve_tcp, "127.0.0.1", 30080)

    Tests skip TCP: ``nursery.start_soon(web.handle_stream, memory_stream)``.
    """

    def __init__(
        self,
        chat: ChatServer,
        *,
        origins: tuple[str, ...] = (),
        certificates: Certificates | None = None,
        assets: Assets | None = None,
        monitor: Monitoring | None = None,
        page: bool = True,
    ) -> None:
        """Serve ``chat``'s rooms to browsers.

        Args:
            chat: the chat server whose rooms the WebSocket members join.
            origins: pages (``https://chat.example.org``, or ``*``) that may open the
                WebSocket besides this server's own page (see :class:`OriginPolicy`).
            certificates: the chat's TLS certificate: the page is then served over
                HTTPS and WSS, unless ``chat.config.web_cleartext`` (None: HTTP and WS).
            assets: the page's files (default: the package's ``static/`` folder).
            monitor: answers ``/metrics``, ``/healthz`` and ``/readyz`` (None: 404).
            page: serve the page and the WebSocket; False: only the monitoring paths,
                ``/metrics`` to anyone (the ``--metrics-port`` door).
        """
        self.chat = chat
        self.policy = OriginPolicy(origins)
        self.certificates = certificates
        self.assets = assets if assets is not None else Assets()
        self._ids = itertools.count(1)
        self._http = AddressCounter(chat.config, MAX_HTTP_CONNECTIONS)  # in the HTTP stage
        self._requests = 0
        self._upgrades = 0
        self._refused: dict[str, int] = {}
        self._refusals = RepeatLimiter()  # refused upgrades and a full HTTP stage: bounded log
        self.monitor = monitor
        self.page = page

    @property
    def tls(self) -> bool:
        """The page is served over HTTPS (a certificate, and no ``web_cleartext``)."""
        return self.certificates is not None and not self.chat.config.web_cleartext

    @property
    def http_connections(self) -> int:
        """Connections currently in the HTTP stage (not yet, or never, WebSockets)."""
        return self._http.total

    def statistics(self) -> WebStatistics:
        """The web server's numbers so far (cheap: counters kept as it goes)."""
        return WebStatistics(
            http_connections=self._http.total,
            requests=self._requests,
            upgrades=self._upgrades,
            refused=dict(self._refused),
        )

    async def serve_tcp(
        self,
        host: str,
        port: int,
        *,
        task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``host:port`` (0: a free port) and serve until cancelled.

        Reports the listeners through ``task_status``; raises ``OSError`` if the address
        cannot be bound.
        """
        listeners = await trio.open_tcp_listeners(port, host=host)
        await self.serve_listeners(listeners, task_status=task_status)

    async def serve_listeners(
        self,
        listeners: list[trio.SocketListener],
        *,
        task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept on ``listeners`` until the chat server shuts down (a door of its table).

        Over TLS (:attr:`tls`) each connection's handshake comes first, through a
        :class:`~triochat.server.listeners.TlsDoor`, as on the chat's TLS port.
        """
        door: Door
        if self.certificates is not None and self.tls:
            certificates, serve = self.certificates, self._serve_tls
            tls = TlsDoor(self.chat, certificates, name="web-tls", serve=serve, hint=HTTPS_HINT)
            door = Door("web-tls", listeners, tls.handle)
        else:
            if self.certificates is not None:
                log.warning(
                    "web: the page and its WebSocket are served in CLEARTEXT beside TLS "
                    "(web_cleartext): passwords typed there cross the network unencrypted "
                    "unless a TLS proxy is in front"
                )
            door = Door("web" if self.page else "metrics", listeners, self.handle_stream)
        await self.chat.serve_door(door, task_status=task_status)

    async def handle_stream(self, stream: trio.abc.Stream) -> None:
        """Serve one cleartext connection: HTTP requests, then perhaps the chat. Never raises."""
        peer, host = peer_address(stream)
        await self.serve_stream(
            stream, peer, host, door="web" if self.page else "metrics", secure=False
        )

    async def _serve_tls(
        self, transport: Transport, peer: str, host: str | None, *, secure: bool, door: str
    ) -> None:
        """What the TLS door hands over: the page is served on the transport's stream."""
        await self.serve_stream(transport.stream, peer, host, door=door, secure=secure)

    async def serve_stream(
        self, stream: trio.abc.Stream, peer: str, host: str | None, *, door: str, secure: bool
    ) -> None:
        """Serve a connection a door has opened (decrypted, if ``secure``). Never raises."""
        conn_id = next(self._ids)
        counted = self._http.counted(host)
        full = self._http.full(counted)
        if full is not None:
            self._refused["busy"] = self._refused.get("busy", 0) + 1
            many = MAX_HTTP_CONNECTIONS if full == "all" else self.chat.config.max_per_address
            where = "" if full == "all" else " from this address"
            self._log_refusal(
                "busy", "[w%d] closed %s: %d connections%s are loading the page already",
                conn_id, peer, many, where,
            )  # fmt: skip
            await trio.aclose_forcefully(stream)
            return
        self._http.add(counted)
        trusted = not self.page or host is None or is_trusted(host, self.chat.config.trusted)
        websocket: WebSocketStream | None = None
        try:
            # Shutdown ends the HTTP stage (a browser's idle keep-alive connection too).
            with self.chat.listeners.opening(math.inf):
                websocket = await self._serve_http(stream, conn_id, peer, trusted)
        except (
            trio.BrokenResourceError,
            trio.ClosedResourceError,
            h11.ProtocolError,
            WsProtocolError,
        ) as exc:
            log.debug("[w%d] %s: connection ended: %s", conn_id, peer, exc)
        except Exception:
            log.exception("[w%d] unexpected error serving %s over HTTP; closed", conn_id, peer)
        finally:
            self._http.remove(counted)
            if websocket is None:
                await trio.aclose_forcefully(stream)
        if websocket is not None:
            self._upgrades += 1
            transport = WebSocketTransport(websocket)
            await self.chat.serve_transport(
                transport, f"web {peer}", host, secure=secure, door=door
            )

    async def _serve_http(
        self, stream: trio.abc.Stream, conn_id: int, peer: str, trusted: bool
    ) -> WebSocketStream | None:
        """Answer requests until the connection closes, idles out, or becomes a WebSocket."""
        http = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_HEAD)
        wait = REQUEST_TIMEOUT  # for the first request; then the keep-alive idle time
        while True:
            with trio.move_on_after(wait) as idle:
                bad: Reply | None = None
                try:
                    event = await _next_event(http, stream)
                except h11.RemoteProtocolError as exc:  # not HTTP, or a head too large
                    bad = refusal(exc.error_status_hint, f"bad request: {exc}")
                if bad is not None:
                    if http.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                        await _send_reply(http, stream, bad)
                    return None
            if idle.cancelled_caught:
                return None
            # The request has begun: reading the rest and answering is bounded too.
            with trio.move_on_after(REQUEST_TIMEOUT) as slow:
                answer = await self._answer(http, stream, event, conn_id, peer, trusted)
            if slow.cancelled_caught or answer is False:
                return None
            if isinstance(answer, WebSocketStream):
                return answer
            http.start_next_cycle()
            wait = KEEPALIVE_TIMEOUT

    async def _answer(
        self,
        http: h11.Connection,
        stream: trio.abc.Stream,
        event: h11.Event | type[h11.PAUSED] | type[h11.NEED_DATA],
        conn_id: int,
        peer: str,
        trusted: bool,
    ) -> WebSocketStream | bool:
        """Answer one request; True to keep the connection for another, or the WebSocket."""
        if not isinstance(event, h11.Request):
            return False  # closed (or an h11 state we do not continue from)
        method = event.method.decode("ascii", "replace")
        target = event.target.decode("ascii", "replace")
        headers = list(event.headers)
        decision: Reply | Upgrade | None = None
        if self.monitor is not None:
            decision = monitoring(method, target, self.monitor, trusted=trusted)
        if decision is None:
            decision = route(method, target, headers, self.assets) if self.page else None
        if decision is None:
            decision = refusal(404, "not found")
        if isinstance(decision, Upgrade):
            return await self._upgrade(http, stream, event, conn_id, peer) or False
        if not await _read_body(http, stream):
            decision = Reply(decision.status, decision.headers, decision.body, close=True)
        log.debug("[w%d] %s %s %s -> %d", conn_id, peer, method, target, decision.status)
        self._requests += 1
        await _send_reply(http, stream, decision)
        return not decision.close and http.our_state is h11.DONE

    async def _upgrade(
        self,
        http: h11.Connection,
        stream: trio.abc.Stream,
        request: h11.Request,
        conn_id: int,
        peer: str,
    ) -> WebSocketStream | None:
        """Switch to the WebSocket, or refuse: 403 for a foreign origin, 400 for a non-upgrade."""
        headers = list(request.headers)
        origin = header(headers, b"origin")
        if not self.policy.permits(origin, header(headers, b"host")):
            self._refused["origin"] = self._refused.get("origin", 0) + 1
            self._log_refusal(
                "origin", "[w%d] refused a WebSocket from %s: origin %r is not allowed "
                "(allow it with --web-origin)", conn_id, peer, origin,
            )  # fmt: skip
            await _send_reply(http, stream, refusal(403, "this page may not open this chat"))
            return None
        handshake = H11Handshake(ConnectionType.SERVER)
        try:
            handshake.initiate_upgrade_connection(headers, request.target)
        except WsProtocolError as exc:
            await _send_reply(http, stream, refusal(400, f"not a WebSocket upgrade: {exc}"))
            return None
        if not any(isinstance(event, WsRequest) for event in handshake.events()):
            await _send_reply(http, stream, refusal(400, "not a WebSocket upgrade"))
            return None
        if not await _read_body(http, stream):
            return None  # an upgrade request with a body: not a browser
        trailing, _ = http.trailing_data
        accept = handshake.send(AcceptConnection())
        ws = handshake.connection
        assert ws is not None  # set by AcceptConnection
        await stream.send_all(accept)
        log.debug("[w%d] %s: WebSocket open (origin %s)", conn_id, peer, origin)
        return WebSocketStream(stream, ws, bytes(trailing))

    def _log_refusal(self, key: str, message: str, *args: object) -> None:
        """Log a refusal once, or count it when the same kind repeats within 10 s."""
        repeats = self._refusals.allow(key, trio.current_time())
        if repeats is None:
            return
        if repeats.held:
            message += f" (and {repeats.held} more in {repeats.seconds:.0f} s)"
        log.warning(message, *args)


async def _next_event(
    http: h11.Connection, stream: trio.abc.Stream
) -> h11.Event | type[h11.PAUSED] | type[h11.NEED_DATA]:
    """The next h11 event, reading as needed (``h11.ConnectionClosed`` at EOF)."""
    while True:
        event = http.next_event()
        if event is not h11.NEED_DATA:
            return event
        http.receive_data(bytes(await stream.receive_some(RECEIVE_BYTES)))


async def _read_body(http: h11.Connection, stream: trio.abc.Stream) -> bool:
    """Read (and drop) the rest of the request; False if it is too big to bother."""
    size = 0
    while True:
        event = await _next_event(http, stream)
        if isinstance(event, h11.EndOfMessage) or event is h11.PAUSED:
            return True
        if isinstance(event, h11.Data):
            size += len(event.data)
            if size > MAX_REQUEST_BODY:
                return False
            continue
        return False  # closed mid-request


async def _send_reply(http: h11.Connection, stream: trio.abc.Stream, reply: Reply) -> None:
    headers = [(name.encode(), value.encode()) for name, value in reply.headers]
    if reply.close:
        headers.append((b"Connection", b"close"))
    reason = HTTPStatus(reply.status).phrase.encode()
    data = http.send(h11.Response(status_code=reply.status, headers=headers, reason=reason)) or b""
    if reply.body:
        data += http.send(h11.Data(data=reply.body)) or b""
    data += http.send(h11.EndOfMessage()) or b""
    await stream.send_all(data)
