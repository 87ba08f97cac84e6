"""The entry point: the top-level parser, one subcommand per row, and KeyboardInterrupt.

Every failure a user can cause ends as one line on stderr and a non-zero exit status;
tracebacks are for bugs only. KeyboardInterrupt is handled here, once.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Final

from triochat import __version__
from triochat.cli.client import add_command as add_client_command
from triochat.cli.server import UsageError
from triochat.cli.server import add_command as add_server_command

__all__ = ["COMMANDS", "build_parser", "main"]

AddCommand = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]
# Each adds its subcommand, with ``func`` (Namespace -> exit status) as its default.
COMMANDS: Final[tuple[AddCommand, ...]] = (add_server_command, add_client_command)
EXIT_INTERRUPTED: Final = 130  # Ctrl-C outside a place that handles it: the shell's convention


def build_parser() -> argparse.ArgumentParser:
    """The full command-line interface, with help for every flag."""
    parser = argparse.ArgumentParser(
        prog="triochat",
        description="A small chat room for the terminal. Start a server, then join it with "
        "`triochat client`, `nc HOST PORT` or `telnet HOST PORT`.",
    )
    parser.add_argument("--version", action="version", version=f"triochat {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add_command in COMMANDS:
        add_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``triochat`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.func(args)
    except UsageError as exc:
        parser.error(str(exc))  # usage and one line on stderr, exit 2
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED  # quiet
    return status
