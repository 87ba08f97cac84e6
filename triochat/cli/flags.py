"""From the settings table to argparse flags, and from given values to a ServerConfig.

The rows are :data:`triochat.cli.settings.SERVER_SETTINGS`. Every flag's argparse
default is ``SUPPRESS``, so the parsed namespace holds only what was given; the
config's defaults (and a config file, :mod:`triochat.cli.configfile`) fill in the rest.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from triochat.cli.settings import GROUPS, SERVER_SETTINGS
from triochat.config import ServerConfig

__all__ = ["add_server_flags", "given_values", "server_config"]


def _argparse_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``parse`` as an argparse type: its ValueError's reason becomes the usage error."""

    def read(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return read


def add_server_flags(parser: argparse.ArgumentParser) -> None:
    """Add one flag per row of :data:`SERVER_SETTINGS`, under its group's heading."""
    defaults = ServerConfig()
    groups = {group: parser.add_argument_group(group.title, group.description) for group in GROUPS}
    for setting in SERVER_SETTINGS:
        text = f"{setting.help} (default: {setting.shown_default(defaults)})"
        options: dict[str, Any] = {
            "dest": setting.dest,
            "default": argparse.SUPPRESS,  # only what was given; ServerConfig has defaults
            "help": text.replace("%", "%%"),  # argparse %-formats help
        }
        if setting.parse is None:
            options["action"] = "store_true"
        else:
            options.update(
                type=_argparse_type(setting.parse), metavar=setting.metavar, choices=setting.choices
            )
            if setting.repeat:
                options["action"] = "append"
        groups[setting.group].add_argument(setting.flag, **options)


def given_values(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line, by ServerConfig field."""
    return {s.dest: getattr(args, s.dest) for s in SERVER_SETTINGS if hasattr(args, s.dest)}


def server_config(given: Mapping[str, Any]) -> ServerConfig:
    """The config for the settings ``given`` (by field name); the rest keep their defaults.

    A repeated setting's values become a tuple. ``web_port`` not given follows ``port``:
    with ``--port 0`` (tests, several servers on one machine) the page gets a free port
    too, rather than all of them fighting over 30080.

    Raises:
        ValueError: settings that do not go together (one line, a usage error).
    """
    changes = dict(given)
    for setting in SERVER_SETTINGS:
        if setting.repeat and setting.dest in changes:
            changes[setting.dest] = tuple(changes[setting.dest])
    if "web_port" not in changes and changes.get("port") == 0:
        changes["web_port"] = 0
    return dataclasses.replace(ServerConfig(), **changes)
