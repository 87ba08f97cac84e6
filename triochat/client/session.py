"""The terminal client: JSON mode on the wire, a person (or a script) on the other end.

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
  :func:`run_client`) ends the client at once, also in the middle of a back-off.

:func:`chat_session` works on any ``trio.abc.Stream`` with any :class:`LineSource` and
:class:`ChatView`, which is how the tests drive it against a real server object over
memory streams. :func:`run_client` is the command-line entry point.
"""

from __future__ import annotations

import argparse
import enum
import math
import os
import ssl
import sys
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, Final

import trio
from rich.console import Console

from triochat.client.connection import Connection, Refusal, greet, short_connect_error
from triochat.client.linesource import LineSource, PipeLineSource, Terminal
from triochat.client.options import (
    CONNECT_TIMEOUT,
    add_client_arguments,
    connect_error_message,
    default_name,
)
from triochat.client.reconnect import STABLE_CONNECTION, Backoff
from triochat.client.requests import request_for
from triochat.client.rooms import ClientRooms, ResumeSummary
from triochat.client.tls import INSECURE_WARNING, TlsSetupError, client_context, open_stream
from triochat.client.view import ChatView, make_console
from triochat.config import DEFAULT_HOST, DEFAULT_PORT
from triochat.core.commands import Invalid, Quit
from triochat.core.hygiene import sanitise

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "Connection",
    "Connector",
    "SessionEnd",
    "add_client_arguments",
    "chat_session",
    "connect_error_message",
    "default_name",
    "run_client",
]

WELCOME_TIMEOUT: Final = 10.0  # seconds for the welcome after hello; the server answers at once
QUIT_IDLE_TIMEOUT: Final = 10.0  # seconds of silence after quit before giving up on the close;
# measured from the last event heard, so a long pipe that the server reads slowly (rate
# limit) still completes: the server echoes each line back as it handles it.
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2  # a bad flag (argparse's status), e.g. an unreadable --ca file
EXIT_INTERRUPTED: Final = 130  # the shell convention for "stopped by Ctrl-C"
QUIT_WORDS: Final = frozenset({"exit", "quit"})  # bare words that leave, like a shell
PASSWORD_ENV: Final = "TRIOCHAT_PASSWORD"  # the registered name's password, for the hello
SERVER_PASSWORD_ENV: Final = "TRIOCHAT_SERVER_PASSWORD"  # a private server's password
RETRY_ERRORS: Final = frozenset({"name-taken"})  # hello errors a reconnect waits out: the
# server keeps our name until it notices the old connection is dead

Connector = Callable[[], Awaitable[trio.abc.Stream]]  # opens a new stream to the same server


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


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def resume_report(summary: ResumeSummary) -> str:
    """The line shown once a reconnect has caught up: ``reconnected; 3 missed messages``."""
    text = f"reconnected; {_plural(summary.missed, 'missed message')}"
    if summary.skipped:
        text += f" ({summary.skipped} older ones were not replayed; /history shows them)"
    if summary.lost_rooms:
        text += f"; not back in {', '.join(summary.lost_rooms)}"
    return text


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

    def welcomed(self, welcome: dict[str, Any]) -> None:
        """Take the server's welcome: the name it gave us, and our first room."""
        given = welcome.get("name")
        if isinstance(given, str) and sanitise(given) != self.view.me:
            self.view.me = sanitise(given)
            if self.view.on_rename is not None:
                self.view.on_rename(self.view.me)
        self.handle(welcome)
        self.connected_at = trio.current_time()

    def handle(self, event: dict[str, Any]) -> None:
        """Apply one event to the room state and show it."""
        kind = event.get("type")
        if kind == "shutdown":
            self.shutdown_seen = True
        if kind == "account" and self._offered is not None:
            self.password = self._offered  # registered, logged in or changed: it is ours now
            self._offered = None
        if kind == "text":
            self.view.notice(sanitise(str(event.get("text"))), style="")
            return
        shown = self.rooms.apply(event, self.view.me)
        if shown is not None:
            self.view.show(event, shown.tag, quiet=shown.quiet)
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
            if event.get("type") == "ping":  # the server checks that we are still here
                await conn.pong()
            elif self.rooms.ends_resume(event):
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
                why = self.refusal_reason(answer)
                continue
            self.welcomed(answer)
            home = answer.get("room")
            try:
                for request in self.rooms.resume_requests(home if isinstance(home, str) else ""):
                    await conn.send(request)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # receive_all sees the close, and we come back here
            return conn

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

    def refusal_reason(self, refusal: Refusal) -> str:
        """A few words for the status line on why a reconnect's hello failed."""
        if refusal.kind == "error":  # name-taken: the old connection is not dead to it yet
            return f"{self.peer} still has {self.view.me}"
        if refusal.kind == "timeout":
            return f"no welcome from {self.peer}"
        if refusal.kind == "closed":
            return f"{self.peer} closed the connection"
        return refusal.text

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
                self.view.show({"type": "error", "code": typed.code, "text": typed.text})
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
    answer = await greet(conn, {"type": "hello", "name": name, **client.secrets()}, welcome_timeout)
    if isinstance(answer, Refusal):
        return _first_refusal(answer, name, view, peer, welcome_timeout)
    client.welcomed(answer)
    client.conn = conn
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
        view.fatal(
            f"{peer} did not confirm within {quit_idle_timeout:g}s that it received"
            " everything; some lines may not have been delivered"
        )
    return client.end


def _first_refusal(
    refusal: Refusal, name: str, view: ChatView, peer: str, welcome_timeout: float
) -> SessionEnd:
    """Explain why the first hello failed; nothing is retried before a first welcome."""
    if refusal.kind == "timeout":
        view.fatal(f"no welcome from {peer} within {welcome_timeout:g}s; is it a triochat server?")
        return SessionEnd.LOST
    if refusal.kind == "closed":
        view.fatal(f"{peer} closed the connection before we could join")
        return SessionEnd.LOST
    if refusal.kind == "error" and refusal.code == "name-registered":
        view.fatal(
            f"cannot join as {name!r}: the name is registered; put its password in "
            f"{PASSWORD_ENV}, or choose another name with --name"
        )
    elif refusal.kind == "error" and refusal.code == "bad-password":
        view.fatal(f"cannot join as {name!r}: the password in {PASSWORD_ENV} is wrong")
    elif refusal.kind == "error" and refusal.code == "server-password":
        view.fatal(f"{peer} needs its server password: put it in {SERVER_PASSWORD_ENV}")
    elif refusal.kind == "error":
        view.fatal(f"cannot join as {name!r}: {refusal.text}; choose another name with --name")
    else:
        view.fatal(f"{peer} did not let us join: {refusal.text}")
    return SessionEnd.REFUSED


# --------------------------------------------------------------------------------------
# Command line


def _tls_context(args: argparse.Namespace, errors: Console) -> ssl.SSLContext | None:
    """The TLS settings the flags ask for (None: cleartext); raises TlsSetupError."""
    if args.insecure and args.ca is not None:
        raise TlsSetupError("--insecure and --ca contradict each other: choose one")
    if not (args.tls or args.ca is not None or args.insecure):
        return None
    context = client_context(args.ca, insecure=args.insecure)
    if args.insecure:  # loud, every time
        warning = INSECURE_WARNING.format(where=f"{args.host}:{args.port}")
        errors.print(f"triochat: {warning}", style="bold red", soft_wrap=True, markup=False)
    return context


async def _main(args: argparse.Namespace) -> int:
    host, port, name = args.host, args.port, args.name
    console = make_console(record=bool(args.save_svg))
    errors = make_console(stderr=True)
    try:
        tls = _tls_context(args, errors)
    except TlsSetupError as exc:
        errors.print(f"triochat: error: {exc}", style="red", soft_wrap=True, markup=False)
        return EXIT_USAGE
    interactive = (
        not args.json and sys.stdin.isatty() and sys.stdout.isatty() and sys.platform != "win32"
    )
    if interactive:  # a person should see that something is happening; pipes stay clean
        console.print(f"connecting to {host}:{port} ...", style="dim", markup=False)
    try:
        with trio.fail_after(CONNECT_TIMEOUT):
            stream = await open_stream(host, port, tls)
    except (OSError, trio.TooSlowError) as exc:
        errors.print(
            f"triochat: {connect_error_message(host, port, exc)}", style="red", soft_wrap=True
        )
        return EXIT_FAILED
    peer = f"{host}:{port}"

    async def dial() -> trio.abc.Stream:
        return await open_stream(host, port, tls)  # TLS again, checked again

    # Someone at a keyboard gets reconnected; a script reading a pipe gets an exit status.
    reconnect = None if args.no_reconnect or not sys.stdin.isatty() else dial
    # Passwords come from the environment, never from flags: a flag shows in `ps`.
    password = os.environ.get(PASSWORD_ENV) or None
    server_password = os.environ.get(SERVER_PASSWORD_ENV) or None
    async with stream:
        if interactive:
            with Terminal(prompt=f"{name}> ") as terminal:
                view = ChatView(console, name, errors=errors, above=terminal.above)
                view.on_prompt = terminal.set_prompt
                end = await chat_session(
                    stream,
                    name,
                    terminal,
                    view,
                    peer=peer,
                    reconnect=reconnect,
                    password=password,
                    server_password=server_password,
                )
        else:
            view = ChatView(console, name, json_lines=args.json, errors=errors)
            lines = PipeLineSource(sys.stdin.fileno())
            end = await chat_session(
                stream,
                name,
                lines,
                view,
                peer=peer,
                reconnect=reconnect,
                password=password,
                server_password=server_password,
            )
    if args.save_svg:
        console.save_svg(args.save_svg, title=f"triochat client: {view.me} @ {peer}")
    return end.exit_code


def run_client(args: argparse.Namespace) -> int:
    """Run ``triochat client`` and return its exit code; never raises or prints a traceback.

    0 when the user left (``/quit``, ``exit``, Ctrl-D, end of piped input) and the
    server confirmed; 1 for every failure; 130 for Ctrl-C.
    """
    try:
        return trio.run(_main, args)
    except KeyboardInterrupt:
        return _interrupted()
    except BrokenPipeError:
        return _stdout_closed()
    except BaseExceptionGroup as group:  # the same two, wrapped by a nursery
        if group.split(KeyboardInterrupt)[1] is None:
            return _interrupted()
        if group.split(BrokenPipeError)[1] is None:
            return _stdout_closed()
        return _internal_error(group)
    except Exception as exc:
        return _internal_error(exc)


def _interrupted() -> int:
    """Ctrl-C: exit 130, quietly.

    trio raises KeyboardInterrupt wherever the main thread is, which can be between a
    coroutine's creation and its first await; that coroutine is then collected unused,
    and Python would print "coroutine ... was never awaited" on the terminal of someone
    who just pressed Ctrl-C (seen once in a test run). Nothing is lost by it: the
    program is ending on the user's request.
    """
    warnings.filterwarnings("ignore", message="coroutine .* was never awaited")
    return EXIT_INTERRUPTED


def _stdout_closed() -> int:
    """stdout's reader went away (``triochat client --json | head -1``): it has had enough.

    Point stdout at /dev/null so the interpreter's final flush does not complain.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_OK


def _internal_error(exc: BaseException) -> int:
    if os.environ.get("TRIOCHAT_DEBUG"):
        raise exc
    print(
        f"triochat: internal error: {type(exc).__name__}: {exc}"
        " (set TRIOCHAT_DEBUG=1 for a traceback, and please report it)",
        file=sys.stderr,
    )
    return EXIT_FAILED
