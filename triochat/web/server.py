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
   A request whose ``Host`` does not name this server (:class:`HostPolicy`, against
   DNS rebinding) gets a 421 and one log line.
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
* Waiting is bounded: a request head must arrive whole within :data:`REQUEST_TIMEOUT`,
  counted from the connection's start or, on a keep-alive connection, from the last
  answer (so idling counts against the same deadline), and may be at most
  :data:`MAX_REQUEST_HEAD` bytes however it arrives. At most
  :data:`MAX_HTTP_CONNECTIONS` connections may be in the HTTP stage at once, at most
  ``--max-per-address`` from one untrusted address, and a newcomer takes the slot of
  whoever holds the most (:mod:`triochat.web.slots`). Shutdown ends the HTTP stage at
  once.
"""

from __future__ import annotations

import itertools
import logging
import math
import socket
from dataclasses import dataclass
from typing import Final

import h11
import trio
from wsproto import ConnectionType
from wsproto.events import AcceptConnection
from wsproto.events import Request as WsRequest
from wsproto.handshake import H11Handshake
from wsproto.utilities import RemoteProtocolError as WsProtocolError

from triochat.config import is_trusted
from triochat.core.logevents import log_event
from triochat.logs import RepeatLimiter
from triochat.server import ChatServer
from triochat.server.certificates import Certificates
from triochat.server.listeners import Door, TlsDoor
from triochat.server.transport import Transport, peer_address
from triochat.web.exchange import MAX_REQUEST_HEAD, next_head, read_body, send_reply
from triochat.web.frames import InputBudget
from triochat.web.http import (
    Assets,
    HostPolicy,
    Monitoring,
    OriginPolicy,
    Reply,
    Upgrade,
    header,
    monitoring,
    refusal,
    route,
)
from triochat.web.slots import HttpSlots, Slot
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
# The head deadline bounds keep-alive idling too: a browser re-opens a closed connection
# at once, while an idle one holds a slot of the HTTP stage (it was 30 s).
KEEPALIVE_TIMEOUT: Final = REQUEST_TIMEOUT
MAX_HTTP_CONNECTIONS: Final = 256  # connections in the HTTP stage at once; a page needs ~6
NAME_LOOKUP_TIMEOUT: Final = 2.0  # seconds for the machine's DNS name at start-up
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
        refused: connections, requests or upgrades refused so far, per reason
            (``busy``, ``host``, ``origin``).
        evicted: connections closed to give their slot to a newcomer from an address
            holding fewer (:mod:`triochat.web.slots`).
    """

    http_connections: int
    requests: int
    upgrades: int
    refused: dict[str, int]
    evicted: int = 0


def machine_names() -> tuple[str, ...]:
    """The machine's own names (no DNS lookup): ``gethostname()`` and its first label."""
    name = socket.gethostname().lower().rstrip(".")
    return tuple(dict.fromkeys(n for n in (name, name.partition(".")[0]) if n))


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
        self._http = HttpSlots(chat.config, MAX_HTTP_CONNECTIONS)  # in the HTTP stage
        self.hosts = HostPolicy.build(
            chat.config.web_hosts or ("localhost", *machine_names()), (chat.config.host,)
        )
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
            evicted=self._http.evicted,
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
        await self._learn_names(listeners)
        door: Door
        if self.certificates is not None and self.tls:
            certificates, serve = self.certificates, self._serve_tls
            tls = TlsDoor(self.chat, certificates, name="web-tls", serve=serve, hint=HTTPS_HINT)
            door = Door("web-tls", listeners, tls.handle)
        else:
            if self.certificates is not None:
                log_event(log, "web.cleartext")
            door = Door("web" if self.page else "metrics", listeners, self.handle_stream)
        await self.chat.serve_door(door, task_status=task_status)

    async def _learn_names(self, listeners: list[trio.SocketListener]) -> None:
        """Add the addresses bound, and (unless ``--web-host``) the machine's DNS name."""
        config = self.chat.config
        names = config.web_hosts or ("localhost", *machine_names())
        if not config.web_hosts:
            with trio.move_on_after(NAME_LOOKUP_TIMEOUT):  # a slow resolver must not stall
                fqdn = await trio.to_thread.run_sync(socket.getfqdn, abandon_on_cancel=True)
                names = (*names, fqdn)
        bound = tuple(str(listener.socket.getsockname()[0]) for listener in listeners)
        self.hosts = HostPolicy.build(names, (config.host, *bound))

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
        scope = trio.CancelScope()  # cancelled if a newcomer takes this slot
        slot = self._http.admit(host, scope)
        if not isinstance(slot, Slot):
            self._refused["busy"] = self._refused.get("busy", 0) + 1
            many = MAX_HTTP_CONNECTIONS if slot == "all" else self.chat.config.max_per_address
            where = "" if slot == "all" else " from this address"
            if (more := self._repeats("busy")) is not None:
                log_event(
                    log, "web.busy", web_conn=conn_id, address=peer, connections=many,
                    _where=where, per_address=bool(where), _more=more[0], repeated=more[1],
                )  # fmt: skip
            await trio.aclose_forcefully(stream)
            return
        trusted = not self.page or host is None or is_trusted(host, self.chat.config.trusted)
        websocket: WebSocketStream | None = None
        try:
            # Shutdown ends the HTTP stage (a browser's idle keep-alive connection too).
            with scope, self.chat.listeners.opening(math.inf):
                websocket = await self._serve_http(stream, conn_id, peer, slot, trusted)
            if scope.cancelled_caught:
                log_event(log, "web.evicted", web_conn=conn_id, address=peer)
        except (
            trio.BrokenResourceError,
            trio.ClosedResourceError,
            h11.ProtocolError,
            WsProtocolError,
        ) as exc:
            log_event(log, "web.ended", web_conn=conn_id, address=peer, reason=str(exc))
        except Exception:
            log_event(log, "web.crashed", exc_info=True, web_conn=conn_id, address=peer)
        finally:
            self._http.release(slot)
            if websocket is None:
                await trio.aclose_forcefully(stream)
        if websocket is not None:
            self._upgrades += 1
            transport = WebSocketTransport(websocket)
            await self.chat.serve_transport(
                transport, f"web {peer}", host, secure=secure, door=door
            )

    async def _serve_http(
        self,
        stream: trio.abc.Stream,
        conn_id: int,
        peer: str,
        slot: Slot,
        trusted: bool,
    ) -> WebSocketStream | None:
        """Answer requests until the connection closes, idles out, or becomes a WebSocket."""
        http = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_HEAD)
        while True:
            # The head deadline: from the start, or from the last answer (keep-alive).
            slot.answering = False
            with trio.move_on_after(REQUEST_TIMEOUT) as idle:
                bad: Reply | None = None
                try:
                    event = await next_head(http, stream)
                except h11.RemoteProtocolError as exc:  # not HTTP, or a head too large
                    bad = refusal(exc.error_status_hint, f"bad request: {exc}")
                if bad is not None:
                    if http.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                        await send_reply(http, stream, bad)
                    return None
            if idle.cancelled_caught:
                return None
            # The request has begun: reading the rest and answering is bounded too.
            slot.answering = True
            with trio.move_on_after(REQUEST_TIMEOUT) as slow:
                answer = await self._answer(http, stream, event, conn_id, peer, trusted)
            if slow.cancelled_caught or answer is False:
                return None
            if isinstance(answer, WebSocketStream):
                return answer
            http.start_next_cycle()

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
        host = header(headers, b"host")
        if self.page and not self.hosts.permits(host):  # (the metrics door: any name)
            self._refused["host"] = self._refused.get("host", 0) + 1
            if (more := self._repeats("host")) is not None:
                log_event(
                    log, "web.host_refused", web_conn=conn_id, method=method, target=target,
                    address=peer, host=host, _more=more[0], repeated=more[1],
                )  # fmt: skip
            await send_reply(http, stream, refusal(421, "this server does not serve that host"))
            return False
        decision: Reply | Upgrade | None = None
        if self.monitor is not None:
            decision = monitoring(method, target, self.monitor, trusted=trusted)
        if decision is None:
            decision = route(method, target, headers, self.assets) if self.page else None
        if decision is None:
            decision = refusal(404, "not found")
        if isinstance(decision, Upgrade):
            return await self._upgrade(http, stream, event, conn_id, peer) or False
        if not await read_body(http, stream):
            decision = Reply(decision.status, decision.headers, decision.body, close=True)
        log_event(
            log,
            "web.request",
            web_conn=conn_id,
            address=peer,
            method=method,
            target=target,
            status=decision.status,
        )
        self._requests += 1
        await send_reply(http, stream, decision)
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
            if (more := self._repeats("origin")) is not None:
                log_event(
                    log, "web.origin_refused", web_conn=conn_id, address=peer, origin=origin,
                    _more=more[0], repeated=more[1],
                )  # fmt: skip
            await send_reply(http, stream, refusal(403, "this page may not open this chat"))
            return None
        handshake = H11Handshake(ConnectionType.SERVER)
        try:
            handshake.initiate_upgrade_connection(headers, request.target)
        except WsProtocolError as exc:
            await send_reply(http, stream, refusal(400, f"not a WebSocket upgrade: {exc}"))
            return None
        if not any(isinstance(event, WsRequest) for event in handshake.events()):
            await send_reply(http, stream, refusal(400, "not a WebSocket upgrade"))
            return None
        if not await read_body(http, stream):
            return None  # an upgrade request with a body: not a browser
        trailing, _ = http.trailing_data
        accept = handshake.send(AcceptConnection())
        ws = handshake.connection
        assert ws is not None  # set by AcceptConnection
        await stream.send_all(accept)
        log_event(log, "web.websocket_opened", web_conn=conn_id, address=peer, origin=origin)
        config = self.chat.config
        budget = InputBudget(
            config.rate_limit, config.burst, config.max_line_bytes, trio.current_time()
        )
        return WebSocketStream(stream, ws, bytes(trailing), budget)

    def _repeats(self, key: str) -> tuple[str, int] | None:
        """None if a refusal of kind ``key`` is only counted (it repeats within 10 s);
        else log it, with this text and count of the repeats held back meanwhile."""
        repeats = self._refusals.allow(key, trio.current_time())
        if repeats is None:
            return None
        held = repeats.held
        return (f" (and {held} more in {repeats.seconds:.0f} s)" if held else ""), held
