"""``triochat server``: read the settings, open the ports of the listen plan, serve.

Start-up failures a user can cause are one line on stderr. Every configuration problem
exits 2: bad or clashing flags (with usage), a config file that cannot be used,
unusable certificates, an unreadable password file; so a service manager told not to
restart on 2 does not loop on them. What may pass by itself (a port in use, a database
in use, Redis unreachable) exits 1.

The start-up lines (``listening on``, ``history:``, ``cluster:``, ``web:``,
``metrics:``) are written whole, all in one write to stdout once every door is
served, and the log records of the start (rooms loaded, accounts) are held until
then: a script reading stdout and stderr together sees those lines first, and never a
log record inside one of them.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import logging
import os
import signal
import sys
from typing import Final, assert_never

import trio

from triochat.bus import ClusterError, first_leaf
from triochat.bus.url import redacted
from triochat.cli.configfile import ConfigError, config_toml, read_config_file
from triochat.cli.flags import add_server_flags, given_values, server_config
from triochat.cli.listen import bound_address, bound_config, listen_plan, open_doors
from triochat.config import ServerConfig
from triochat.core.logevents import log_event
from triochat.logs import dropped_records, release_logging, start_logging, stop_logging
from triochat.metrics import Monitor
from triochat.server import ChatServer
from triochat.server.certificates import CertificateError, Certificates
from triochat.store import Store, StoreError, default_db_path, open_store
from triochat.store.factory import IN_MEMORY
from triochat.store.sqlite import ForeignDatabase
from triochat.web import WebServer

__all__ = ["EXIT_USAGE", "UsageError", "add_command"]

log = logging.getLogger(__name__)

SHUTDOWN_DEADLINE: Final = 1.8  # seconds: the issue promises exit within 2 s of a signal
FD_HEADROOM: Final = 64  # descriptors beyond one per client: listeners, logs, trio's wakeup fds
EXIT_USAGE: Final = 2  # every configuration problem (argparse's status for bad flags)


class UsageError(Exception):
    """Settings that do not go together: the entry point prints usage and exits 2."""


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``triochat server``, with one flag per server setting."""
    server = commands.add_parser(
        "server",
        help="run a chat server",
        description="Run a chat room server. Anyone who can reach HOST:PORT can join: "
        "with `triochat client`, or with `nc`/`telnet` for plain text. Stop it with "
        "Ctrl-C or SIGTERM; members are told and the server exits cleanly.",
    )
    files = server.add_argument_group(
        "configuration file",
        "Every setting below may be given in a TOML file instead, as a key of the same "
        "name as its flag (max-clients = 2000); flags given as well override the file.",
    )
    files.add_argument("--config", metavar="FILE", help="read settings from this TOML file")
    files.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective configuration as TOML (the Redis password as ***) and exit",
    )
    add_server_flags(server)
    server.set_defaults(func=run_server)


def run_server(args: argparse.Namespace) -> int:
    """Run ``triochat server`` with the parsed ``args``; returns the exit status.

    Raises:
        UsageError: settings that do not go together (before anything starts).
    """
    given: dict[str, object] = {}
    try:
        if args.config is not None:
            given = read_config_file(args.config)
    except ConfigError as exc:
        print(f"triochat: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    given.update(given_values(args))  # flags override the file
    try:
        config = server_config(given)
    except ValueError as exc:
        where = f" (with {args.config})" if args.config is not None else ""
        raise UsageError(f"{exc}{where}") from None
    if args.print_config:
        config_db = config if config.db is not None else _with_db(config)
        sys.stdout.write(config_toml(config_db, source=args.config))
        return 0
    start_logging(config.log_level, config.log_format, held=True)  # start-up lines first
    try:
        return _start(config)
    finally:
        # Write what is still queued; if nobody reads stderr, give up after a moment
        # (the writer thread is left blocked, and the process exits anyway).
        stop_logging()


def _start(config: ServerConfig) -> int:
    """Check the files the config names, open the store, then serve until a signal."""
    certificates = None
    if config.tls_cert is not None and config.tls_key is not None:
        try:
            certificates = Certificates(config.tls_cert, config.tls_key)
        except CertificateError as exc:
            print(f"triochat: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    _raise_fd_limit(config.max_clients, tls=certificates is not None)
    try:
        password = _read_password_file(config.password_file)
    except ValueError as exc:
        print(f"triochat: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    config = dataclasses.replace(config, server_password=password)
    db = config.db if config.db is not None else str(default_db_path())
    try:
        store = open_store(db, config.durability, search_index=not config.no_search_index)
    except StoreError as exc:
        print(f"triochat: error: {exc}", file=sys.stderr)
        # A wrong --db (another program's database) is a configuration problem.
        return EXIT_USAGE if isinstance(exc, ForeignDatabase) else 1
    where = "in memory only (--db :memory:)" if db == IN_MEMORY else db
    status = 1
    try:
        status = trio.run(_serve, config, store, where, certificates)
    except* StoreError as group:  # reading the rooms back at start-up failed
        print(f"triochat: error: {group.exceptions[0]}", file=sys.stderr)
    except* ClusterError as group:  # Redis cannot be reached at start-up
        print(f"triochat: error: {first_leaf(group)}", file=sys.stderr)
    return status


async def _serve(
    config: ServerConfig, store: Store, where: str, certificates: Certificates | None
) -> int:
    """Open every port of the listen plan, serve until a signal, then shut down."""
    opened = await open_doors(listen_plan(config))
    if opened is None:
        store.close()
        return 1
    server = ChatServer(bound_config(config, opened), store)
    monitor = Monitor(server)
    wanted = [signal.SIGINT, signal.SIGTERM]
    if hasattr(signal, "SIGHUP"):
        wanted.append(signal.SIGHUP)  # reload the certificate, if any (never a stop)
    with trio.open_signal_receiver(*wanted) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            first: list[str] = []  # the chat ports, then history and cluster
            later: list[str] = []  # then the web page and the metrics port
            for door, listeners in opened:
                match door.kind:
                    case "plain":
                        await nursery.start(server.serve_listeners, listeners)
                        first.append(f"listening on {bound_address(listeners)}")
                    case "tls":
                        assert certificates is not None  # (the plan has TLS only with them)
                        await nursery.start(server.serve_tls, listeners, certificates)
                        at = bound_address(listeners, " (TLS)")
                        first.append(f"listening on {at} (TLS)")
                    case "web":
                        web_server = WebServer(
                            server,
                            origins=config.web_origins,
                            certificates=certificates,
                            monitor=monitor,
                        )
                        monitor.add_web(web_server.statistics)
                        await nursery.start(web_server.serve_listeners, listeners)
                        scheme = "https" if web_server.tls else "http"
                        later.append(f"web: {scheme}://{bound_address(listeners, ' (web)')}/")
                    case "metrics":
                        metrics = WebServer(server, monitor=monitor, page=False)
                        await nursery.start(metrics.serve_listeners, listeners)
                        at = bound_address(listeners, " (metrics)")
                        later.append(f"metrics: http://{at}/metrics")
                    case "irc":
                        await nursery.start(server.serve_irc, listeners)
                        first.append(f"IRC: listening on {bound_address(listeners, ' (IRC)')}")
                    case "irc-tls":
                        assert certificates is not None
                        await nursery.start(server.serve_irc_tls, listeners, certificates)
                        at = bound_address(listeners, " (IRC, TLS)")
                        first.append(f"IRC: listening on {at} (TLS)")
                    case _:
                        assert_never(door.kind)
            first.append(f"history: {where}")
            bus = server.hub.bus
            if bus is not None:
                first.append(f"cluster: node {bus.node} through {redacted(bus.url)}")
            _write_lines([*first, *later])
            release_logging()  # the records queued while starting come after those lines
            # What start-up built (modules, the server, what the store loaded) lives as
            # long as the process: frozen, the collector no longer walks it in every
            # full collection, which a burst's garbage triggers (docs/benchmarks.md).
            gc.collect()
            gc.freeze()
            async for signum in signals:
                if signum == getattr(signal, "SIGHUP", None):
                    if certificates is None:
                        log_event(log, "server.reload_nothing")
                        continue
                    log_event(log, "server.reload")
                    await certificates.reload()
                    continue
                log_event(log, "server.signal", signal=signal.Signals(signum).name)
                break
            with trio.move_on_after(SHUTDOWN_DEADLINE):
                await server.shutdown()
            nursery.cancel_scope.cancel()
    dropped = dropped_records()
    if dropped:
        log_event(log, "server.stopped_dropped", dropped=dropped)
    else:
        log_event(log, "server.stopped")
    return 0


def _with_db(config: ServerConfig) -> ServerConfig:
    """``config`` with the default database path written out (for ``--print-config``)."""
    return dataclasses.replace(config, db=str(default_db_path()))


def _write_lines(lines: list[str]) -> None:
    """Write ``lines`` to stdout whole, in one write (nothing can land inside a line).

    A pipe takes a write of up to 4 KiB at once, so a log record written to the same
    pipe by the log thread comes before or after the block, never inside it.
    """
    sys.stdout.flush()
    data = "".join(line + "\n" for line in lines).encode()
    fd = sys.stdout.fileno()
    while data:
        data = data[os.write(fd, data) :]


def _raise_fd_limit(max_clients: int, *, tls: bool = False) -> None:
    """Make room for ``max_clients`` sockets: raise the soft open-files limit if needed.

    Many systems default to a soft limit of 1024 descriptors with a much higher hard
    limit; a server asked for thousands of clients should not fail at the 1000th. With
    ``tls``, as many TLS handshakes may be in progress besides, each holding a socket.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_clients * (2 if tls else 1) + FD_HEADROOM
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    except (ValueError, OSError):
        new = soft
    if new < wanted:
        log_event(log, "server.files_limit", limit=new, max_clients=max_clients)


def _read_password_file(path: str | None) -> str | None:
    """The server password: the first line of ``path`` (None: no file given).

    Raises:
        ValueError: the file cannot be read or its first line is empty (one line).
    """
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as file:
            first = file.readline().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(f"cannot read the password file {path}: {reason}") from None
    if not first:
        raise ValueError(
            f"the password file {path} has an empty first line; put the password there"
        )
    return first
