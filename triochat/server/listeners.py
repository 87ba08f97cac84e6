"""The doors of a server: the listener table, one accept helper, one per-address counter.

A *door* is one row of the listener table (:class:`Door`): a name, the sockets it
listens on, and the handler that serves each accepted connection. Every door, whatever
it carries (chat in cleartext or over TLS, the web page and its WebSocket in cleartext
or over TLS; later IRC and metrics), is run by :meth:`Listeners.serve` through the same
accept helper, stops with the same :meth:`Listeners.stop`, and
counts what it holds with the same :class:`AddressCounter`. A :class:`TlsDoor` puts a
handshake (:func:`~triochat.server.certificates.tls_handshake`) in front of what any
door serves, so chat and web share one TLS path and one certificate.

Rules of this module:

* **The accept loop only accepts.** Every accepted TCP socket gets keepalive
  (:func:`~triochat.server.transport.set_keepalive`), then its handler runs in a task
  of its own; a handshake or an HTTP request never holds up the next accept.
* **A failed handshake costs one short log line and nothing else**: a cleartext client
  on a TLS door, a staller, an outdated client, a port scanner. The line is
  rate-limited per kind of failure. Handshakes in progress are bounded (per address
  and in all), so stallers cannot use up the descriptors; each has
  :data:`HANDSHAKE_TIMEOUT`.
* **Stopping is one call**: :meth:`Listeners.stop` ends every accept loop and every
  connection still opening (a handshake, a page load); members are the server's.
* This module imports nothing of :mod:`triochat.server.app`: a door sees its server
  through :class:`DoorHost`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final, Literal, Protocol

import trio

from triochat.config import ServerConfig, is_trusted
from triochat.core.logevents import log_event
from triochat.logs import RepeatLimiter
from triochat.server.certificates import NOT_TLS, Certificates, HandshakeFailed, tls_handshake
from triochat.server.transport import Transport, peer_address, set_keepalive

__all__ = [
    "ACCEPT_RETRY",
    "HANDSHAKE_TIMEOUT",
    "TLS_HINT",
    "AddressCounter",
    "Door",
    "DoorHost",
    "Handler",
    "ListenerStatistics",
    "Listeners",
    "Serve",
    "TlsDoor",
]

log = logging.getLogger(__name__)

ACCEPT_CAPACITY_ERRNOS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
ACCEPT_RETRY: Final = 0.1  # seconds to wait when out of descriptors, as trio.serve_listeners does
HANDSHAKE_TIMEOUT: Final = 10.0  # seconds: a phone on a poor link needs one or two
HINT_TIMEOUT: Final = 1.0  # seconds to deliver the cleartext hint before closing anyway
TLS_HINT: Final = (
    b"! this port speaks TLS: use `triochat client --tls`, "
    b"`openssl s_client -quiet -connect HOST:PORT` or `ncat --ssl HOST PORT`\n"
)

Handler = Callable[[trio.abc.Stream], Awaitable[None]]  # serves one accepted connection


class Serve(Protocol):
    """What serves a connection a TLS door has opened (its transport decrypts)."""

    def __call__(
        self, transport: Transport, peer: str, host: str | None, *, secure: bool, door: str
    ) -> Awaitable[None]:
        """Serve ``transport`` from ``peer`` (``host``: its address, None if it has none)."""
        ...


@dataclass(frozen=True, slots=True)
class Door:
    """One row of the listener table.

    Attributes:
        name: what the log and the statistics call it (``plain``, ``tls``, ``web``...).
        listeners: the sockets it accepts on.
        handler: serves each accepted connection and closes it.
    """

    name: str
    listeners: Sequence[trio.SocketListener]
    handler: Handler


class AddressCounter:
    """Connections one door holds, in all and per address, against two limits.

    ``limit`` bounds them all; ``--max-per-address`` bounds each address, except
    trusted ones (``--trusted``) and connections without an address (memory streams).
    """

    __slots__ = ("_config", "_per_address", "limit", "total")

    def __init__(self, config: ServerConfig, limit: int) -> None:
        self._config = config
        self.limit = limit
        self.total = 0
        self._per_address: dict[str, int] = {}  # untrusted addresses only

    def counted(self, host: str | None) -> str | None:
        """The address ``host`` is counted under, or None if it is exempt."""
        config = self._config
        if host is None or config.max_per_address == 0 or is_trusted(host, config.trusted):
            return None
        return host

    def full(self, counted: str | None) -> Literal["all", "address"] | None:
        """Which limit one more connection from ``counted`` would pass, or None."""
        if self.total >= self.limit:
            return "all"
        if counted is not None and self._per_address.get(counted, 0) >= (
            self._config.max_per_address
        ):
            return "address"
        return None

    def add(self, counted: str | None) -> None:
        """Count one more connection from ``counted`` (see :meth:`counted`)."""
        self.total += 1
        if counted is not None:
            self._per_address[counted] = self._per_address.get(counted, 0) + 1

    def remove(self, counted: str | None) -> None:
        """Count one connection from ``counted`` less."""
        self.total -= 1
        if counted is not None:
            if self._per_address[counted] == 1:
                del self._per_address[counted]
            else:
                self._per_address[counted] -= 1

    @contextlib.contextmanager
    def holding(self, counted: str | None) -> Iterator[None]:
        """Count a connection from ``counted`` for the duration of the block."""
        self.add(counted)
        try:
            yield
        finally:
            self.remove(counted)


@dataclass(frozen=True, slots=True)
class ListenerStatistics:
    """The doors' numbers (see :meth:`Listeners.statistics`).

    Attributes:
        accepted: connections accepted so far, per door.
        accept_errors: accepts that failed for want of descriptors or memory.
        opening: connections still opening (a TLS handshake, a page load).
        handshakes: TLS handshakes in progress, all TLS doors together.
        handshake_failures: TLS handshakes that failed so far, per door.
    """

    accepted: dict[str, int]
    accept_errors: int
    opening: int
    handshakes: int
    handshake_failures: dict[str, int]


class Listeners:
    """The listener table of one server: its doors' accept loops, and their stopping."""

    def __init__(self) -> None:
        self._stopping = False
        self._accept_scopes: set[trio.CancelScope] = set()  # one per door being served
        self._opening: set[trio.CancelScope] = set()  # connections still opening
        self._accept_errors = RepeatLimiter()  # out of descriptors: ~10 errors a second
        self._accepted: dict[str, int] = {}
        self._errors = 0
        self.handshakes = 0  # in progress, every TLS door (kept by TlsDoor)
        self.handshake_failures: dict[str, int] = {}  # per door (kept by TlsDoor)

    @property
    def stopping(self) -> bool:
        """:meth:`stop` was called: no door accepts any more."""
        return self._stopping

    def statistics(self) -> ListenerStatistics:
        """The numbers so far (copies: cheap, and safe to keep)."""
        return ListenerStatistics(
            accepted=dict(self._accepted),
            accept_errors=self._errors,
            opening=len(self._opening),
            handshakes=self.handshakes,
            handshake_failures=dict(self.handshake_failures),
        )

    async def serve(
        self,
        door: Door,
        *,
        task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept on ``door``'s listeners, each connection served by its handler.

        Reports the listeners through ``task_status``. Runs until :meth:`stop`, then
        returns once every connection it accepted has been served.
        """
        accepting = trio.CancelScope()
        if self._stopping:
            accepting.cancel()
        self._accept_scopes.add(accepting)
        self._accepted.setdefault(door.name, 0)
        try:
            async with trio.open_nursery() as handlers:
                with accepting:
                    async with trio.open_nursery() as acceptors:
                        for listener in door.listeners:
                            acceptors.start_soon(self._accept, door, listener, handlers)
                        task_status.started(list(door.listeners))
        finally:
            self._accept_scopes.discard(accepting)

    async def _accept(
        self, door: Door, listener: trio.SocketListener, handlers: trio.Nursery
    ) -> None:
        """The one accept helper: accept forever, each connection in a task of its own.

        Like ``trio.serve_listeners`` (including its back-off when out of descriptors),
        minus its per-connection wrapper task frame: the handler closes the stream. Out
        of descriptors, the error repeats every :data:`ACCEPT_RETRY` seconds; it is
        logged once per 10 s (``triochat.logs.REPEAT_INTERVAL``), with a count. Every
        accepted socket gets TCP keepalive before its handler starts.
        """
        async with listener:
            while True:
                try:
                    stream = await listener.accept()
                except OSError as exc:
                    if exc.errno not in ACCEPT_CAPACITY_ERRNOS:
                        raise
                    self._errors += 1
                    reason = os.strerror(exc.errno or 0)
                    repeats = self._accept_errors.allow(reason, trio.current_time())
                    if repeats is not None:
                        held, took = repeats
                        retry = f"in {ACCEPT_RETRY:g} s"
                        if held:
                            retry = f"every {ACCEPT_RETRY:g} s (repeated {held} times in "
                            retry += f"the last {took:.0f} s)"
                        log_event(
                            log, "server.accept_failed", reason=reason, _retry=retry, repeated=held
                        )
                    await trio.sleep(ACCEPT_RETRY)
                else:
                    self._accepted[door.name] += 1
                    set_keepalive(stream.socket)
                    handlers.start_soon(door.handler, stream)

    @contextlib.contextmanager
    def opening(self, timeout: float) -> Iterator[trio.CancelScope]:
        """A deadline for a connection that is still opening (a handshake, a page load).

        The scope is also cancelled by :meth:`stop`: nobody waits for a handshake only
        to be told that the server is going away.
        """
        with trio.move_on_after(timeout) as scope:
            if self._stopping:
                scope.cancel()
            self._opening.add(scope)
            try:
                yield scope
            finally:
                self._opening.discard(scope)

    def stop(self) -> None:
        """Stop accepting on every door, and end every connection still opening."""
        self._stopping = True
        for scope in (*self._accept_scopes, *self._opening):
            scope.cancel()


class DoorHost(Protocol):
    """What a door needs of the server it belongs to (a :class:`ChatServer` is one)."""

    @property
    def config(self) -> ServerConfig:
        """The server's settings (limits, trusted addresses)."""
        ...

    @property
    def listeners(self) -> Listeners:
        """The server's listener table (deadlines, stopping, numbers)."""
        ...

    def serve_transport(
        self, transport: Transport, peer: str, host: str | None, *, secure: bool, door: str
    ) -> Awaitable[None]:
        """Serve a chat connection (see :class:`Serve`)."""
        ...


class TlsDoor:
    """A TLS handshake in front of what a door serves: chat by default, or the web page.

    Use it as a :class:`Door`'s handler (``Door("tls", listeners, door.handle)``), or hand
    :meth:`handle` any stream whose far end speaks TLS (a memory stream in tests). Each
    handshake runs in the connection's own task, with :data:`HANDSHAKE_TIMEOUT`, and
    uses the context ``certificates`` holds at that moment (reloaded on SIGHUP).
    """

    def __init__(
        self,
        host: DoorHost,
        certificates: Certificates,
        *,
        name: str = "tls",
        serve: Serve | None = None,
        hint: bytes = TLS_HINT,
    ) -> None:
        """Args:
        host: the server (limits, the listener table).
        certificates: the certificate and key, reloadable.
        name: the door's name in the statistics, passed on to ``serve``.
        serve: what serves the decrypted stream (default: the host's chat).
        hint: sent in cleartext to a client that is not speaking TLS, or stalls.
        """
        self._host = host
        self._certificates = certificates
        self._name = name
        self._serve: Serve = serve if serve is not None else host.serve_transport
        self._hint = hint
        self._counter = AddressCounter(host.config, host.config.max_clients)
        self._failures = RepeatLimiter()  # scanners and cleartext clients repeat

    @property
    def handshakes(self) -> int:
        """Handshakes in progress at this door."""
        return self._counter.total

    async def handle(self, stream: trio.abc.Stream) -> None:
        """Do the handshake (bounded), then serve the connection; close it either way.

        Never raises because of anything the peer does.
        """
        listeners = self._host.listeners
        peer, host = peer_address(stream)
        counted = self._counter.counted(host)
        full = self._counter.full(counted)
        if full is not None:
            limit = self._counter.limit if full == "all" else self._host.config.max_per_address
            where = "" if full == "all" else " from one address"
            self._log(peer, f"too many TLS handshakes in progress{where} ({limit})")
            await trio.aclose_forcefully(stream)
            return
        tls: Transport | None = None
        failure: str | None = None
        timed_out = False
        with self._counter.holding(counted):
            listeners.handshakes += 1
            try:
                with listeners.opening(HANDSHAKE_TIMEOUT) as deadline:
                    try:
                        tls = await tls_handshake(stream, self._certificates.context)
                    except HandshakeFailed as exc:
                        failure = str(exc)
            finally:
                listeners.handshakes -= 1
            if deadline.cancelled_caught:
                timed_out = not listeners.stopping
                failure = (
                    f"no TLS handshake within {HANDSHAKE_TIMEOUT:g} s"
                    if timed_out
                    else "the server is shutting down"
                )
        if tls is not None and failure is None:
            await self._serve(tls, peer, host, door=self._name, secure=True)
            return
        failures = listeners.handshake_failures
        failures[self._name] = failures.get(self._name, 0) + 1
        self._log(peer, failure or "the handshake did not finish")
        if failure == NOT_TLS or timed_out:
            # Most likely a person on nc or telnet (or http://): tell them what this port
            # wants. (The TLS layer is broken, so this goes in cleartext on the TCP stream.)
            with (
                trio.move_on_after(HINT_TIMEOUT),
                contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
            ):
                await stream.send_all(self._hint)
        await trio.aclose_forcefully(stream)

    def _log(self, peer: str, failure: str) -> None:
        """One line per kind of failure per 10 s, with a count of those held back."""
        repeats = self._failures.allow(failure, trio.current_time())
        if repeats is None:
            return
        more = f" (and {repeats.held} more in {repeats.seconds:.0f} s)" if repeats.held else ""
        log_event(
            log,
            "tls.handshake_failed",
            address=peer,
            reason=failure,
            _more=more,
            repeated=repeats.held,
        )
