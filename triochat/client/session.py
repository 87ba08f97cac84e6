"""The terminal client: JSON mode on the wire, a person (or a script) on the other end.

Shape (see DESIGN.md, "Client"): a nursery pairs an input task (line source -> stream)
with a network task (stream -> view). Whichever ends first ends the other:

* end of input or ``/quit``: send ``{"type": "quit"}``, keep showing events until the
  server closes the connection (so everything typed or piped before it has been handled),
  then exit 0;
* the server closes the connection or it breaks: say so and exit 1.

:func:`chat_session` works on any ``trio.abc.Stream`` with any :class:`LineSource` and
:class:`ChatView`, which is how the tests drive it against a real server object over
memory streams. :func:`run_client` is the command-line entry point.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import getpass
import json
import os
import re
import socket
import sys
from collections.abc import Iterator
from typing import Any, Final

import trio

from triochat.client.linesource import LineSource, PipeLineSource, Terminal
from triochat.client.view import ChatView, make_console
from triochat.config import DEFAULT_HOST, DEFAULT_PORT
from triochat.core.commands import Help as HelpCommand
from triochat.core.commands import Invalid, Me, Msg, Nick, Quit, Say, Who, parse_plain
from triochat.core.framing import TOO_LONG, LineBuffer
from triochat.core.hygiene import sanitise
from triochat.core.names import MAX_NAME_CHARS

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "SessionEnd",
    "add_client_arguments",
    "chat_session",
    "run_client",
]

CONNECT_TIMEOUT: Final = 10.0  # seconds for DNS + TCP connect; a LAN host answers in ms
WELCOME_TIMEOUT: Final = 10.0  # seconds for the welcome after hello; the server answers at once
QUIT_IDLE_TIMEOUT: Final = 10.0  # seconds of silence after quit before giving up on the close;
# measured from the last event heard, so a long pipe that the server reads slowly (rate
# limit) still completes: the server echoes each line back as it handles it.
MAX_EVENT_BYTES: Final = 1 << 20  # one server line: 4 KiB of text JSON-escaped is ~25 KiB
READ_BYTES: Final = 65536  # one receive_some
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_INTERRUPTED: Final = 130  # the shell convention for "stopped by Ctrl-C"
QUIT_WORDS: Final = frozenset({"exit", "quit"})  # bare words that leave, like a shell


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


class Connection:
    """JSON events over a stream: one object per line each way."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._lines = LineBuffer(MAX_EVENT_BYTES)
        self._eof = False

    async def send(self, obj: dict[str, Any]) -> None:
        """Send one request object."""
        await self.stream.send_all((json.dumps(obj, ensure_ascii=False) + "\n").encode())

    async def receive(self) -> dict[str, Any] | None:
        """Return the next event, or None once the server has closed the connection.

        A line that is not a JSON object (a plain-mode server message such as
        ``! server full``) becomes ``{"type": "text", "text": line}``; an oversized line
        becomes an ``error`` event. A reset connection counts as closed.
        """
        while True:
            line = self._lines.next_line()
            if line is None and self._eof:
                return None
            if line is None:
                try:
                    data = await self.stream.receive_some(READ_BYTES)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
                if data:
                    self._lines.feed(bytes(data))
                    continue
                self._eof = True
                line = self._lines.close()
                if line is None:
                    return None
            if line is TOO_LONG:
                return {"type": "error", "code": "line-too-long", "text": "oversized event"}
            assert isinstance(line, bytes)
            text = line.decode("utf-8", "replace")
            if not text.strip():
                continue
            try:
                event = json.loads(text)
            except ValueError:
                event = None
            if not isinstance(event, dict):
                return {"type": "text", "text": text}
            return event


def _request(command: Say | Me | Nick | Who | Msg | HelpCommand) -> dict[str, Any]:
    """The JSON request for a command typed in the plain-mode syntax."""
    match command:
        case Say(text=text):
            return {"type": "say", "text": text}
        case Me(text=text):
            return {"type": "me", "text": text}
        case Nick(name=name):
            return {"type": "nick", "name": name}
        case Msg(to=to, text=text):
            return {"type": "msg", "to": to, "text": text}
        case Who():
            return {"type": "who"}
        case HelpCommand():
            return {"type": "help"}


class _Session:
    """The state the input and network tasks share (both run in the trio thread)."""

    def __init__(
        self, conn: Connection, lines: LineSource, view: ChatView, quit_idle_timeout: float
    ) -> None:
        self.conn = conn
        self.lines = lines
        self.view = view
        self.quit_idle_timeout = quit_idle_timeout
        self.quit_sent = False
        self.shutdown_seen = False
        self.closed = trio.Event()
        self.last_heard = trio.current_time()
        self.end = SessionEnd.LOST

    async def network(self, done: trio.CancelScope) -> None:
        """Show events until the server closes the connection, then end the session."""
        while (event := await self.conn.receive()) is not None:
            self.last_heard = trio.current_time()
            if event.get("type") == "shutdown":
                self.shutdown_seen = True
            if event.get("type") == "text":
                self.view.notice(sanitise(str(event.get("text"))), style="")
            else:
                self.view.show(event)
        if self.shutdown_seen:
            self.end = SessionEnd.SHUTDOWN
        elif self.quit_sent:
            self.end = SessionEnd.QUIT
        self.closed.set()
        done.cancel()

    async def input(self, done: trio.CancelScope) -> None:
        """Send each input line; at end of input or /quit, leave and wait for the close."""
        try:
            while (line := await self.lines.receive_line()) is not None:
                if line.strip().lower() in QUIT_WORDS:
                    break
                command = parse_plain(line)
                if command is None:
                    continue
                if isinstance(command, Quit):
                    break
                if isinstance(command, Invalid):
                    self.view.show({"type": "error", "code": command.code, "text": command.text})
                    continue
                if isinstance(command, Say | Me | Nick | Who | Msg | HelpCommand):
                    await self.conn.send(_request(command))
            # Set before sending: the server may close the connection (and the network
            # task see it) before this send returns.
            self.quit_sent = True
            await self.conn.send({"type": "quit"})
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.quit_sent = False
            return  # the network task sees the close and ends the session
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
    welcome_timeout: float = WELCOME_TIMEOUT,
    quit_idle_timeout: float = QUIT_IDLE_TIMEOUT,
) -> SessionEnd:
    """Join the room on ``stream`` as ``name`` and chat until one side ends.

    Args:
        stream: a connected stream to a triochat server (TCP, or a memory stream in tests).
        name: the name to join as; the server may refuse it.
        lines: where the user's input lines come from.
        view: where events and notices are shown.
        peer: how to name the server in messages (``host:port``).
        welcome_timeout: seconds to wait for the server's welcome.
        quit_idle_timeout: after quitting, seconds of silence before giving up on the close.

    Returns:
        Why the session ended; a one-line explanation has already been shown for every
        ending except :attr:`SessionEnd.QUIT`.
    """
    conn = Connection(stream)
    first: dict[str, Any] | None = None
    with trio.move_on_after(welcome_timeout) as waited:
        # A failed send is reported by receive() below, which then sees the close.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await conn.send({"type": "hello", "name": name})
        first = await conn.receive()
    if waited.cancelled_caught:
        view.fatal(f"no welcome from {peer} within {welcome_timeout:g}s; is it a triochat server?")
        return SessionEnd.LOST
    if first is None:
        view.fatal(f"{peer} closed the connection before we could join")
        return SessionEnd.LOST
    kind = first.get("type")
    if kind != "welcome":
        text = sanitise(str(first.get("text", "")))
        if kind == "error":
            view.fatal(f"cannot join as {name!r}: {text}; choose another name with --name")
        else:
            view.fatal(f"{peer} did not let us join: {text or kind}")
        return SessionEnd.REFUSED
    welcomed = first.get("name")
    if isinstance(welcomed, str) and sanitise(welcomed) != view.me:
        view.me = sanitise(welcomed)
        if view.on_rename is not None:
            view.on_rename(view.me)
    view.show(first)

    session = _Session(conn, lines, view, quit_idle_timeout)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(session.network, nursery.cancel_scope)
        nursery.start_soon(session.input, nursery.cancel_scope)
    if session.end is SessionEnd.SHUTDOWN:
        view.fatal(f"{peer} shut down; the connection is closed")
    elif session.end is SessionEnd.LOST:
        view.fatal(f"lost the connection to {peer}")
    elif session.end is SessionEnd.UNCONFIRMED:
        view.fatal(
            f"{peer} did not confirm within {quit_idle_timeout:g}s that it received"
            " everything; some lines may not have been delivered"
        )
    return session.end


# --------------------------------------------------------------------------------------
# Command line


def default_name() -> str:
    """The login name, reduced to the characters a triochat name may use."""
    try:
        login = getpass.getuser()
    except Exception:  # no $USER and no passwd entry (minimal containers)
        login = ""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", login).strip("-")[:MAX_NAME_CHARS]
    return name or "guest"


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a TCP port (1-65535; from --port or $TRIOCHAT_PORT)"
        )
    return port


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    """Define the ``triochat client`` flags; TRIOCHAT_HOST/PORT/NAME set the defaults."""
    env = os.environ
    parser.add_argument(
        "--host",
        default=env.get("TRIOCHAT_HOST") or DEFAULT_HOST,
        help="server to connect to; $TRIOCHAT_HOST sets the default (now %(default)s)",
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=env.get("TRIOCHAT_PORT") or str(DEFAULT_PORT),
        help="server port; $TRIOCHAT_PORT sets the default (now %(default)s)",
    )
    parser.add_argument(
        "--name",
        default=env.get("TRIOCHAT_NAME") or default_name(),
        help="your name in the room; $TRIOCHAT_NAME or your login name by default"
        " (now %(default)s)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print each event as one JSON line (for jq and other tools)",
    )
    parser.add_argument(
        "--save-svg",
        metavar="PATH",
        help="on exit, save what was shown as an SVG picture",
    )


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it was raised from or groups (trio wraps connect errors)."""
    yield exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _causes(inner)
    if exc.__cause__ is not None:
        yield from _causes(exc.__cause__)


def connect_error_message(host: str, port: int, exc: BaseException) -> str:
    """One line saying why connecting failed and what to try."""
    where = f"{host}:{port}"
    for cause in _causes(exc):
        if isinstance(cause, socket.gaierror):
            return (
                f"cannot connect to {where}: unknown host {host!r}; check --host or $TRIOCHAT_HOST"
            )
        if isinstance(cause, ConnectionRefusedError):
            return (
                f"cannot connect to {where}: connection refused; is `triochat server` running"
                " there? Check --host/--port (or $TRIOCHAT_HOST/$TRIOCHAT_PORT)"
            )
    if isinstance(exc, trio.TooSlowError):
        reason = f"no answer within {CONNECT_TIMEOUT:g}s"
    else:
        reason = next(
            (c.strerror for c in _causes(exc) if isinstance(c, OSError) and c.strerror),
            str(exc),
        )
    return f"cannot connect to {where}: {reason}; check --host/--port and your network"


async def _main(args: argparse.Namespace) -> int:
    host, port, name = args.host, args.port, args.name
    console = make_console(record=bool(args.save_svg))
    errors = make_console(stderr=True)
    interactive = (
        not args.json and sys.stdin.isatty() and sys.stdout.isatty() and sys.platform != "win32"
    )
    if interactive:  # a person should see that something is happening; pipes stay clean
        console.print(f"connecting to {host}:{port} ...", style="dim", markup=False)
    try:
        with trio.fail_after(CONNECT_TIMEOUT):
            stream = await trio.open_tcp_stream(host, port)
    except (OSError, trio.TooSlowError) as exc:
        errors.print(
            f"triochat: {connect_error_message(host, port, exc)}", style="red", soft_wrap=True
        )
        return EXIT_FAILED
    peer = f"{host}:{port}"
    async with stream:
        if interactive:
            with Terminal(prompt=f"{name}> ") as terminal:
                view = ChatView(console, name, errors=errors, above=terminal.above)
                view.on_rename = lambda new: terminal.set_prompt(f"{new}> ")
                end = await chat_session(stream, name, terminal, view, peer=peer)
        else:
            view = ChatView(console, name, json_lines=args.json, errors=errors)
            lines = PipeLineSource(sys.stdin.fileno())
            end = await chat_session(stream, name, lines, view, peer=peer)
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
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return _stdout_closed()
    except BaseExceptionGroup as group:  # the same two, wrapped by a nursery
        if group.split(KeyboardInterrupt)[1] is None:
            return EXIT_INTERRUPTED
        if group.split(BrokenPipeError)[1] is None:
            return _stdout_closed()
        return _internal_error(group)
    except Exception as exc:
        return _internal_error(exc)


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
