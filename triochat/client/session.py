"""The command-line program ``triochat client``: flags in, exit code out.

It opens the connection (TLS if asked), picks the terminal or a pipe as the line
source, and runs :func:`~triochat.client.chat.chat_session`; every failure ends as one
line and an exit code, never a traceback. The session's names are importable from here
too (``chat_session``, ``SessionEnd``, ...), as they were before the session moved to
:mod:`.chat`.
"""

from __future__ import annotations

import argparse
import getpass
import os
import signal
import ssl
import sys
import warnings
from typing import Final

import trio
from rich.console import Console

from triochat.client.chat import (
    EXIT_FAILED,
    EXIT_OK,
    Connector,
    SessionEnd,
    chat_session,
)
from triochat.client.connection import Connection
from triochat.client.linesource import PipeLineSource, Terminal
from triochat.client.options import (
    CONNECT_TIMEOUT,
    add_client_arguments,
    connect_error_message,
    default_name,
)
from triochat.client.tls import INSECURE_WARNING, TlsSetupError, client_context, open_stream
from triochat.client.view import ChatView, make_console
from triochat.client.wording import PASSWORD_ENV, SERVER_PASSWORD_ENV
from triochat.config import DEFAULT_HOST, DEFAULT_PORT

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "PASSWORD_ENV",
    "SERVER_PASSWORD_ENV",
    "Connection",
    "Connector",
    "SessionEnd",
    "add_client_arguments",
    "chat_session",
    "connect_error_message",
    "default_name",
    "run_client",
]

EXIT_USAGE: Final = 2  # a bad flag (argparse's status), e.g. an unreadable --ca file
EXIT_INTERRUPTED: Final = 130  # the shell convention for "stopped by Ctrl-C"


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


async def _chat(args: argparse.Namespace) -> int:
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
                view = ChatView(
                    console,
                    name,
                    errors=errors,
                    above=terminal.above,
                    bell=not args.no_bell,
                    replay=not args.quiet,
                )
                view.on_prompt = terminal.set_prompt

                async def ask_secret(prompt: str) -> str | None:
                    """A password typed at the terminal: never echoed, never recalled."""
                    with terminal.paused():
                        try:
                            return await trio.to_thread.run_sync(
                                getpass.getpass, prompt, abandon_on_cancel=True
                            )
                        except EOFError:
                            return None

                end = await chat_session(
                    stream,
                    name,
                    terminal,
                    view,
                    peer=peer,
                    reconnect=reconnect,
                    password=password,
                    server_password=server_password,
                    ask_secret=ask_secret,
                    redial=dial,
                )
        else:
            view = ChatView(
                console,
                name,
                json_lines=args.json,
                errors=errors,
                bell=False,
                replay=not args.quiet,
            )
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


async def _main(args: argparse.Namespace) -> int:
    """The client, with Ctrl-C turned into a cancellation.

    While the client runs, SIGINT goes to a signal receiver that cancels everything and
    makes the exit code 130, so no KeyboardInterrupt is thrown into whatever the main
    thread was doing (which can leave a coroutine created but never awaited, and Python
    then prints a warning on the terminal of someone who just pressed Ctrl-C). Before
    the receiver is open and after it closes, :func:`run_client` handles the
    KeyboardInterrupt instead.
    """
    interrupted = False
    code = EXIT_INTERRUPTED
    async with trio.open_nursery() as nursery:

        async def on_ctrl_c(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            nonlocal interrupted
            with trio.open_signal_receiver(signal.SIGINT) as signals:
                task_status.started()
                async for _ in signals:
                    interrupted = True
                    nursery.cancel_scope.cancel()
                    return

        await nursery.start(on_ctrl_c)
        code = await _chat(args)
        nursery.cancel_scope.cancel()
    return EXIT_INTERRUPTED if interrupted else code


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
