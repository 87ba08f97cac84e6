"""``triochat client``: the flags and the program live in :mod:`triochat.client`."""

from __future__ import annotations

import argparse

from triochat.client.session import add_client_arguments, run_client

__all__ = ["add_command"]


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``triochat client``."""
    client = commands.add_parser(
        "client",
        help="join a chat server",
        description="Join a triochat server. Type to chat; /help lists the commands.",
    )
    add_client_arguments(client)
    client.set_defaults(func=run_client)
