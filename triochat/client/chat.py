"""The client's session: JSON mode on the wire, a person (or a script) on the other end.

Shape (see DESIGN.md, "Client"): a nursery pairs an input task (line source -> stream)
with a connection task (stream -> view). Whichever ends first ends the other:

* end of input or ``/quit``: send ``{"type": "quit"}``, keep showing events until the
  server closes the connection (so everything typed or piped before it has been handled),
  then exit 0;
* the server closes the connection, it breaks, or the server shuts down: without a way
  to reconnect (``--no-reconnect``, or input from a pipe), say so and exit 1. With one,
  the connection task counts down a back-off (:mod:`.reconnect`) on the status line,
  dials again, says hello with the same name and the last id shown in each room
  (:mod:`.rooms`), shows what was missed and carries on. The input task lives across
  connections; a line typed while there is no connection is not sent, and the user
  is told so.

Rules of this module:

* One writer per stream: the connection task sends the hello and the resume requests
  before it hands the connection to the input task (``_Client.conn``), and takes it
  back (sets it to None) the moment the connection ends.
* Every wait is a cancel scope, so Ctrl-C (KeyboardInterrupt, handled once in
  :func:`~triochat.client.session.run_client`) ends the client at once, also in the
  middle of a back-off.

:func:`chat_session` works on any ``trio.abc.Stream`` with any :class:`LineSource` and
:class:`ChatView`, which is how the tests drive it against a real server object over
memory streams. The command-line program around it is :mod:`.session`
(:func:`~triochat.client.session.run_client`), and its wording :mod:`.wording`.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import trio

from triochat.client.completion import complete
from triochat.client.connection import (
    Connection,
    Received,
    Refusal,
    ServerText,
    Unreadable,
    greet,
    short_connect_error,
)
from triochat.client.linesource import LineSource
from triochat.client.options import CONNECT_TIMEOUT
from triochat.client.reconnect import STABLE_CONNECTION, Backoff
from triochat.client.requests import request_for
from triochat.client.rooms import ClientRooms
from triochat.client.view import ChatView
from triochat.client.wording import (
    ask_text,
    first_refusal_text,
    resume_report,
    retry_reason,
    secret_wanted,
    unconfirmed_quit_text,
)
from triochat.core.commands import Invalid, Quit
from triochat.core.events import (
    AccountInfo,
    Acted,
    ErrorEvent,
    Ping,
    Said,
    ShuttingDown,
    Welcome,
)
from triochat.core.hygiene import sanitise

__all__ = ["Connector", "SessionEnd", "chat_session"]

WELCOME_TIMEOUT: Final = 10.0  # seconds for the welcome after hello; the server answers at once
QUIT_IDLE_TIMEOUT: Final = 10.0  # seconds of silence after quit before giving up on the close;
# measured from the last event heard, so a long pipe that the server reads slowly (rate
# limit) still completes: the server echoes each line back as it handles it.
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
QUIT_WORDS: Final = frozenset({"exit", "quit"})  # bare words that leave, like a shell
RETRY_ERRORS: Final = frozenset({"name-taken"})  # hello errors a reconnect waits out: the
# server keeps our name until it notices the old connection is dead

MAX_PASSWORD_ASKS: Final = 3  # prompts for a password before the client gives up
Connector = Callable[[], Awaitable[trio.abc.Stream]]  # opens a new stream to the same server
AskSecret = Callable[[str], Awaitable[str | None]]  # prompt -> a password, never echoed (None:
# the person gave none)


class SessionEnd(enum.Enum):
    """Why a session ended; each maps to an exit code."""

    QUIT = "the user left"
    SHUTDOWN = "the server shut down"
    LOST = "the connection was lost"
    REFUSED = "the server refused to let us join"
    UNCONFIRMED = "the server did not confirm the quit"

    @property
    def exit_code(self) -> int:
        """0 only when the user left and the server confirmed it."""
        return EXIT_OK if self is SessionEnd.QUIT else EXIT_FAILED


class _Client:
    """The state the input and connection tasks share (both run in the trio thread)."""

    def __init__(
        self,
        lines: LineSource,
        view: ChatView,
        *,
        peer: str,
        reconnect: Connector | None,
        backoff: Backoff,
        welcome_timeout: float,
        quit_idle_timeout: float,
    ) -> None:
        self.lines = lines
        self.view = view
        self.peer = peer
        self.reconnect = reconnect
        self.backoff = backoff
        self.welcome_timeout = welcome_timeout
        self.quit_idle_timeout = quit_idle_timeout
        self.rooms = ClientRooms()
        self.conn: Connection | None = None  # what the input task may send on, if anything
        self.dialled: trio.abc.Stream | None = None  # the last stream this session opened
        self.quit_sent = False
        self.shutdown_seen = False
        self.closed = trio.Event()  # the connection ended after our quit
        self.last_heard = trio.current_time()
        self.connected_at = trio.current_time()
        self.end = SessionEnd.LOST
        self.status = ""
        self._prompt = ""
        # Account passwords are kept in memory only, to log in again after a reconnect:
        # the one the session started with, or the last one the server accepted.
        self.password: str | None = None
        self.server_password: str | None = None
        self._offered: str | None = None  # sent in /register, /login or /password; unconfirmed

    # ----------------------------------------------------------------------------------
    # Showing things

    def refresh_prompt(self) -> None:
        """Redraw the prompt if the room, unread counts, name or status changed it."""
        prompt = self.rooms.prompt(self.view.me, self.status)
        if prompt != self._prompt:
            self._prompt = prompt
            self.view.set_prompt(prompt)

    def welcomed(self, welcome: Welcome) -> None:
        """Take the server's welcome: the name it gave us, and our first room."""
        given = sanitise(welcome.name)
        if given != self.view.me:
            self.view.me = given
            if self.view.on_rename is not None:
                self.view.on_rename(self.view.me)
        self.handle(welcome)
        self.connected_at = trio.current_time()

    def handle(self, event: Received) -> None:
        """Apply one event to the room state and show it."""
        if isinstance(event, ServerText):
            self.view.notice(sanitise(event.text), style="")
            return
        if isinstance(event, Unreadable):
            self.view.show_unreadable(event)
            return
        if isinstance(event, ShuttingDown):
            self.shutdown_seen = True
        if isinstance(event, AccountInfo) and self._offered is not None:
            self.password = self._offered  # registered, logged in or changed: it is ours now
            self._offered = None
        shown = self.rooms.apply(event, self.view.me)
        if shown is not None:
            replayed = isinstance(event, Said | Acted) and event.history and not shown.reply
            quiet = shown.quiet or (replayed and not self.view.replay)  # --quiet
            self.view.show(event, shown.tag, quiet=quiet)
        self.refresh_prompt()

    # ----------------------------------------------------------------------------------
    # The connection task

    async def run_connection(self, conn: Connection, done: trio.CancelScope) -> None:
        """Show events until the session ends; reconnect whenever the connection is lost."""
        current: Connection | None = conn
        while current is not None:
            await self.receive_all(current)
            self.conn = None
            if self.quit_sent:
                self.end = SessionEnd.QUIT
                break
            if self.reconnect is None:
                self.end = SessionEnd.SHUTDOWN if self.shutdown_seen else SessionEnd.LOST
                break
            await trio.aclose_forcefully(current.stream)
            self.rooms.abandon_resume()
            if trio.current_time() - self.connected_at >= STABLE_CONNECTION:
                self.backoff.reset()
            if self.view.has_prompt:  # the countdown is in the prompt; this stays on screen
                self.view.report(f"lost the connection to {self.peer}")
            current = await self.redial()
        self.closed.set()
        done.cancel()

    async def receive_all(self, conn: Connection) -> None:
        """Handle events until the server closes the connection (or it breaks)."""
        self.shutdown_seen = False
        while (event := await conn.receive()) is not None:
            self.last_heard = trio.current_time()
            if isinstance(event, Ping):  # the server checks that we are still here
                await conn.pong()
            elif not isinstance(event, ServerText | Unreadable) and self.rooms.ends_resume(event):
                self.resumed(conn)
            else:
                self.handle(event)

    def resumed(self, conn: Connection) -> None:
        """The replay after a reconnect is over: report it and let the input task send."""
        summary = self.rooms.finish_resume()
        self.status = ""
        self.connected_at = trio.current_time()
        self.conn = conn
        self.view.report(resume_report(summary))
        self.refresh_prompt()

    async def redial(self) -> Connection | None:
        """Back off, dial and say hello until a server welcomes us back (None: refused)."""
        assert self.reconnect is not None
        why = "connection lost"
        while True:
            await self.count_down(self.backoff.next_delay(), why)
            self.status = "reconnecting ..."
            self.refresh_prompt()
            try:
                with trio.fail_after(CONNECT_TIMEOUT):
                    stream = await self.reconnect()
            except (OSError, trio.TooSlowError) as exc:
                why = short_connect_error(exc)
                continue
            self.dialled = stream  # any earlier one is closed already
            conn = Connection(stream)
            hello = self.rooms.start_resume(self.view.me)
            hello.update(self.secrets())
            answer = await greet(conn, hello, self.welcome_timeout)
            if isinstance(answer, Refusal):
                self.rooms.abandon_resume()
                await trio.aclose_forcefully(stream)
                if answer.kind == "error" and answer.code not in RETRY_ERRORS:
                    self.view.fatal(f"cannot rejoin as {self.view.me!r}: {answer.text}")
                    self.end = SessionEnd.REFUSED
                    return None
                why = retry_reason(answer, self.peer, self.view.me)
                continue
            self.welcomed(answer)
            try:
                for request in self.rooms.resume_requests(sanitise(answer.room)):
                    await conn.send(request)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # receive_all sees the close, and we come back here
            return conn

    async def greet_first(
        self, conn: Connection, name: str, ask: AskSecret | None, redial: Connector | None
    ) -> tuple[Connection, Welcome | Refusal]:
        """The first hello; a refusal that a password answers is asked about and retried.

        Each retry dials again (the refused connection is closed): the hello is what
        carries the password. Without ``ask`` (not a terminal) the refusal stands.
        """
        hello = {"type": "hello", "name": name}
        answer = await greet(conn, {**hello, **self.secrets()}, self.welcome_timeout)
        for _ in range(MAX_PASSWORD_ASKS):
            if not isinstance(answer, Refusal) or ask is None or redial is None:
                break
            field = secret_wanted(answer)
            secret = await ask(ask_text(answer, name, self.peer)) if field else None
            if not secret:
                break
            if field == "password":
                self.password = secret
            else:
                self.server_password = secret
            await trio.aclose_forcefully(conn.stream)
            try:
                with trio.fail_after(CONNECT_TIMEOUT):
                    self.dialled = await redial()
            except (OSError, trio.TooSlowError) as exc:
                return conn, Refusal("other", short_connect_error(exc))
            conn = Connection(self.dialled)
            answer = await greet(conn, {**hello, **self.secrets()}, self.welcome_timeout)
        return conn, answer

    def secrets(self) -> dict[str, str]:
        """The passwords a hello carries: the account's and the server's, if known."""
        found = {"password": self.password, "server_password": self.server_password}
        return {key: value for key, value in found.items() if value is not None}

    def offer(self, request: dict[str, Any]) -> None:
        """Remember the password of a typed /register, /login or /password until confirmed."""
        kind = request.get("type")
        if kind in ("register", "login"):
            self._offered = request.get("password")
        elif kind == "password":
            self._offered = request.get("new")

    async def count_down(self, delay: float, why: str) -> None:
        """Wait ``delay`` seconds, showing the seconds left; Ctrl-C interrupts it."""
        deadline = trio.current_time() + delay
        announced = False
        while (left := deadline - trio.current_time()) > 0:
            seconds = math.ceil(left)
            self.status = f"{why}; reconnecting in {seconds} s"
            self.refresh_prompt()
            if not announced and not self.view.has_prompt:
                self.view.report(self.status)  # no prompt line: one line per try
            announced = True
            await trio.sleep(left - (seconds - 1))

    # ----------------------------------------------------------------------------------
    # The input task

    async def input(self, done: trio.CancelScope) -> None:
        """Send each input line; at end of input or /quit, leave and wait for the close."""
        while (line := await self.lines.receive_line()) is not None:
            if line.strip().lower() in QUIT_WORDS:
                break
            typed = request_for(line, self.rooms)
            if typed is None:
                continue
            if isinstance(typed, Quit):
                break
            if isinstance(typed, Invalid):
                self.view.show(ErrorEvent(time.time(), typed.code, typed.text))
                continue
            conn = self.conn
            if conn is None:
                self.view.report(f"not connected; not sent: {sanitise(line).strip()}")
                continue
            self.rooms.note_sent(typed)  # before: the answer may beat send_all's return
            self.offer(typed)
            self.refresh_prompt()
            try:
                await conn.send(typed)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                if self.reconnect is None:
                    return  # the connection task sees the close and ends the session
                self.view.report(f"the connection was lost; not sent: {sanitise(line).strip()}")
        await self.leave(done)

    async def leave(self, done: trio.CancelScope) -> None:
        """Send quit and wait for the server to close (it has then handled every line)."""
        conn = self.conn
        if conn is None:  # between connections: there is nobody to tell
            self.end = SessionEnd.QUIT
            done.cancel()
            return
        # Set before sending: the server may close the connection (and the connection
        # task see it) before this send returns.
        self.quit_sent = True
        try:
            await conn.send({"type": "quit"})
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.quit_sent = False
            if self.reconnect is None:
                return  # the connection task sees the close and ends the session
            self.end = SessionEnd.QUIT
            done.cancel()
            return
        while True:
            with trio.move_on_at(self.last_heard + self.quit_idle_timeout):
                await self.closed.wait()
                return
            if trio.current_time() >= self.last_heard + self.quit_idle_timeout:
                break
        self.end = SessionEnd.UNCONFIRMED
        done.cancel()


async def chat_session(
    stream: trio.abc.Stream,
    name: str,
    lines: LineSource,
    view: ChatView,
    *,
    peer: str = "the server",
    reconnect: Connector | None = None,
    backoff: Backoff | None = None,
    welcome_timeout: float = WELCOME_TIMEOUT,
    quit_idle_timeout: float = QUIT_IDLE_TIMEOUT,
    password: str | None = None,
    server_password: str | None = None,
    ask_secret: AskSecret | None = None,
    redial: Connector | None = None,
) -> SessionEnd:
    """Join the server on ``stream`` as ``name`` and chat until one side ends.

    Args:
        stream: a connected stream to a triochat server (TCP, or a memory stream in tests).
        name: the name to join as; the server may refuse it.
        lines: where the user's input lines come from.
        view: where events and notices are shown.
        peer: how to name the server in messages (``host:port``).
        reconnect: opens a new stream to the server after the connection is lost; None
            ends the session instead (pipes, ``--no-reconnect``). Streams it opens are
            closed by the session; ``stream`` stays the caller's.
        backoff: the retry schedule (a fresh :class:`Backoff` by default).
        welcome_timeout: seconds to wait for the server's welcome.
        quit_idle_timeout: after quitting, seconds of silence before giving up on the close.
        password: the password of the registered ``name`` (sent in the hello).
        server_password: the server's password (``--password-file`` on the server).
        ask_secret: prompts a person for a password the server asks for (a registered
            name, a private server); None (not a terminal): such a refusal ends the session.
        redial: opens a new stream for the hello after such a prompt (``reconnect`` by
            default).

    Returns:
        Why the session ended; a one-line explanation has already been shown for every
        ending except :attr:`SessionEnd.QUIT`.
    """
    conn = Connection(stream)
    client = _Client(
        lines,
        view,
        peer=peer,
        reconnect=reconnect,
        backoff=backoff if backoff is not None else Backoff(),
        welcome_timeout=welcome_timeout,
        quit_idle_timeout=quit_idle_timeout,
    )
    client.password, client.server_password = password, server_password
    conn, answer = await client.greet_first(conn, name, ask_secret, redial or reconnect)
    if isinstance(answer, Refusal):
        if client.dialled is not None:
            await trio.aclose_forcefully(client.dialled)
        return _first_refusal(answer, name, view, peer, welcome_timeout)
    client.welcomed(answer)
    client.conn = conn
    set_completer = getattr(lines, "set_completer", None)  # a terminal: Tab completes
    if set_completer is not None:
        rooms = client.rooms
        set_completer(lambda before: complete(before, rooms.names.values(), rooms.rooms))
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.run_connection, conn, nursery.cancel_scope)
            nursery.start_soon(client.input, nursery.cancel_scope)
    finally:
        if client.dialled is not None:
            await trio.aclose_forcefully(client.dialled)
    if client.end is SessionEnd.SHUTDOWN:
        view.fatal(f"{peer} shut down; the connection is closed")
    elif client.end is SessionEnd.LOST:
        view.fatal(f"lost the connection to {peer}")
    elif client.end is SessionEnd.UNCONFIRMED:
        view.fatal(unconfirmed_quit_text(peer, quit_idle_timeout))
    return client.end


def _first_refusal(
    refusal: Refusal, name: str, view: ChatView, peer: str, welcome_timeout: float
) -> SessionEnd:
    """Explain why the first hello failed; nothing is retried before a first welcome."""
    view.fatal(first_refusal_text(refusal, name, peer, welcome_timeout))
    if refusal.kind in ("timeout", "closed"):
        return SessionEnd.LOST
    return SessionEnd.REFUSED
