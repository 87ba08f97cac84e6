"""The ``triochat`` command: ``triochat server`` and ``triochat client``.

:mod:`~triochat.cli.entry` is the entry point (the top-level parser and KeyboardInterrupt);
:mod:`~triochat.cli.settings` is the table of server settings, from which both the
``triochat server`` flags and its :class:`~triochat.config.ServerConfig` come;
:mod:`~triochat.cli.values` reads their values; :mod:`~triochat.cli.listen` is the listen
plan (the ports to open);
:mod:`~triochat.cli.server` starts and stops the server; :mod:`~triochat.cli.client`
adds ``triochat client``, whose program lives in :mod:`triochat.client`.
"""

from triochat.cli.entry import build_parser, main

__all__ = ["build_parser", "main"]
