"""The ``triochat`` command: ``triochat server`` and ``triochat client``.

Every failure a user can cause ends as one line on stderr and a non-zero exit status;
tracebacks are for bugs only. KeyboardInterrupt is handled here, once.
"""

from __future__ import annotations

import argparse
import errno
import logging
import signal
import socket
import sys
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Final

import trio

from triochat import __version__
from triochat.bus import ClusterError, first_leaf
from triochat.client.session import add_client_arguments, run_client
from triochat.config import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_TLS_PORT,
    Network,
    ServerConfig,
    parse_networks,
)
from triochat.core.names import name_error
from triochat.logs import LOG_FORMATS, dropped_records, start_logging, stop_logging
from triochat.server import ChatServer
from triochat.server.certificates import CertificateError, Certificates
from triochat.server.hub import MEMORY_RETAIN_MESSAGES
from triochat.store import Store, StoreError, default_db_path, open_store
from triochat.store.factory import IN_MEMORY
from triochat.web import WebServer, parse_origins

__all__ = ["build_parser", "main"]

log = logging.getLogger(__name__)

SHUTDOWN_DEADLINE: Final = 1.8  # seconds: the issue promises exit within 2 s of a signal
FD_HEADROOM: Final = 64  # descriptors beyond one per client: listeners, logs, trio's wakeup fds
LOG_LEVELS: Final = ("debug", "info", "warning", "error")
DEFAULT_WEB_PORT: Final = 30080  # the page and its WebSocket; next to 30000, easy to remember
EXIT_USAGE: Final = 2  # bad flags, and certificates that cannot be used (argparse's status)


def _bounded(
    kind: Callable[[str], float], low: float, high: float | None = None
) -> Callable[[str], float]:
    """An argparse type: ``kind`` parsed and checked against ``[low, high]``."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < low or (high is not None and value > high):
            span = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"{text} is out of range (must be {span})")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def _networks(text: str) -> tuple[Network, ...]:
    """An argparse type for ``--trusted``."""
    try:
        return parse_networks(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_networks.__name__ = "address list"  # argparse names the type in its messages


def _web_port(text: str) -> int | None:
    """An argparse type for ``--web-port``: a port, or ``off`` (None)."""
    if text.strip().lower() == "off":
        return None
    return int(_bounded(int, 0, 65535)(text))


_web_port.__name__ = "port"


def _origins(text: str) -> tuple[str, ...]:
    """An argparse type for ``--web-origin``."""
    try:
        return parse_origins(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_origins.__name__ = "origin list"


def _op_name(text: str) -> str:
    """An argparse type for ``--op``: a valid name."""
    problem = name_error(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{text!r}: {problem}")
    return text


_op_name.__name__ = "name"  # argparse names the type in its messages


def _redis_url(text: str) -> str:
    """An argparse type for ``--redis``: ``redis://`` or ``rediss://`` with a host."""
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"{_redacted(text)!r}: expected redis://[:PASSWORD@]HOST[:PORT][/DB] "
            "(or rediss:// for TLS)"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{_redacted(text)!r}: {exc}") from None
    return text


_redis_url.__name__ = "Redis URL"


def build_parser() -> argparse.ArgumentParser:
    """The full command-line interface, with help for every flag."""
    parser = argparse.ArgumentParser(
        prog="triochat",
        description="A small chat room for the terminal. Start a server, then join it with "
        "`triochat client`, `nc HOST PORT` or `telnet HOST PORT`.",
    )
    parser.add_argument("--version", action="version", version=f"triochat {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    defaults = ServerConfig()
    server = commands.add_parser(
        "server",
        help="run a chat server",
        description="Run a chat room server. Anyone who can reach HOST:PORT can join: "
        "with `triochat client`, or with `nc`/`telnet` for plain text. Stop it with "
        "Ctrl-C or SIGTERM; members are told and the server exits cleanly.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    server.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help="address to listen on; use 0.0.0.0 (or ::) to accept connections from your LAN",
    )
    server.add_argument(
        "--port",
        type=_bounded(int, 0, 65535),
        default=DEFAULT_PORT,
        help="TCP port to listen on; 0 picks a free port (printed at start-up)",
    )
    server.add_argument(
        "--web-port",
        type=_web_port,
        default=argparse.SUPPRESS,  # 30080, or 0 with --port 0 (see _server_command)
        metavar="PORT|off",
        help=f"port for the web page and its WebSocket, on the same --host; 0 picks a free "
        f"port, 'off' serves no web page (default: {DEFAULT_WEB_PORT}, or 0 with --port 0)",
    )
    server.add_argument(
        "--web-origin",
        type=_origins,
        default=(),
        metavar="ORIGIN,...",
        help="other web pages that may open the chat's WebSocket, such as "
        "https://chat.example.org ('*' for any); by default only the page this server "
        "serves may",
    )
    server.add_argument(
        "--history",
        type=_bounded(int, 0),
        default=defaults.history,
        metavar="N",
        help="chat lines of a room replayed to someone who joins it; 0 replays none",
    )
    server.add_argument(
        "--db",
        metavar="PATH",
        help="the SQLite database that keeps rooms, topics and chat history (created with "
        "its folders if missing); ':memory:' keeps nothing after exit, and keeps the last "
        f"{MEMORY_RETAIN_MESSAGES:,} messages per room in RAM unless --retain-messages says "
        f"otherwise (default: {default_db_path()})",
    )
    server.add_argument(
        "--retain-days",
        type=_bounded(float, 0.001),
        metavar="DAYS",
        help="delete stored messages older than this (default: keep everything)",
    )
    server.add_argument(
        "--retain-messages",
        type=_bounded(int, 1),
        metavar="N",
        help="keep at most N stored messages per room (default: keep everything)",
    )
    server.add_argument(
        "--max-rooms",
        type=_bounded(int, 1),
        default=defaults.max_rooms,
        metavar="N",
        help="rooms on the server; empty rooms are kept (they have history)",
    )
    server.add_argument(
        "--max-rooms-per-member",
        type=_bounded(int, 1),
        default=defaults.max_rooms_per_member,
        metavar="N",
        help="rooms one member may be in at once",
    )
    server.add_argument(
        "--resume-limit",
        type=_bounded(int, 1),
        default=defaults.resume_limit,
        metavar="N",
        help="messages per room replayed to a client that reconnects; beyond that it is "
        "told how many it missed",
    )
    server.add_argument(
        "--max-line-bytes",
        type=_bounded(int, 16),
        default=defaults.max_line_bytes,
        metavar="BYTES",
        help="longest line accepted; longer lines are discarded and the sender told",
    )
    server.add_argument(
        "--rate-limit",
        type=_bounded(float, 0),
        default=defaults.rate_limit,
        metavar="LINES_PER_SECOND",
        help="flood control: lines per second per connection after the burst; 0 turns it "
        "off. Over the limit a connection is read more slowly; nothing is dropped",
    )
    server.add_argument(
        "--burst",
        type=_bounded(int, 1),
        default=defaults.burst,
        metavar="N",
        help="lines a connection may send at once before the rate limit applies",
    )
    server.add_argument(
        "--send-queue",
        type=_bounded(int, 1),
        default=defaults.send_queue,
        metavar="EVENTS",
        help="events queued for one member; a member that falls this far behind is "
        "disconnected as 'too slow' (see also --send-queue-bytes: whichever is reached "
        "first)",
    )
    server.add_argument(
        "--send-queue-bytes",
        type=_bounded(int, 1),
        default=defaults.send_queue_bytes,
        metavar="BYTES",
        help="bytes of output held for one member, replies to its own /who and /help "
        "included; a member that falls this far behind is disconnected as 'too slow'. "
        "One event to a member with nothing queued is always sent, however large",
    )
    server.add_argument(
        "--max-clients",
        type=_bounded(int, 1),
        default=defaults.max_clients,
        metavar="N",
        help="connections served at once; more are told the server is full",
    )
    server.add_argument(
        "--max-per-address",
        type=_bounded(int, 0),
        default=defaults.max_per_address,
        metavar="N",
        help="connections at once from one address (0 = no limit); the next one is told "
        "why and closed. Addresses in --trusted are exempt",
    )
    server.add_argument(
        "--trusted",
        type=_networks,
        default=",".join(str(network) for network in defaults.trusted),  # parsed by type
        metavar="ADDRESS[/PREFIX],...",
        help="addresses exempt from --max-per-address, such as a local TLS terminator or "
        "reverse proxy; 'none' exempts nothing",
    )
    server.add_argument(
        "--op",
        action="append",
        type=_op_name,
        default=[],
        metavar="NAME",
        help="make NAME an operator (repeat for more); its powers need the name registered "
        "(/register), so register it first: whoever registers NAME gets them. Operators "
        "can make more with /op",
    )
    server.add_argument(
        "--password-file",
        metavar="FILE",
        help="a private server: every connection must first give the password on FILE's "
        "first line (plain: a first line '/pass PASSWORD'; JSON: 'server_password' in the "
        "hello)",
    )
    server.add_argument(
        "--coalesce-above",
        type=_bounded(int, 1),
        default=defaults.coalesce_above,
        metavar="N",
        help="in rooms larger than this, joins and leaves are announced as one summary "
        f"every {defaults.presence_interval:g} seconds",
    )
    server.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default="info",
        help="how much the server logs to stderr (joins, leaves and refusals are 'info')",
    )
    server.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="auto",
        help="how log records look: 'plain' is one line each (ISO time, level, logger, "
        "message), 'json' one JSON object per line, 'auto' is plain unless stderr is a "
        "terminal (then a colour console view). Logging never holds the server up: if "
        "stderr is not read fast enough, records are dropped and counted in the status line",
    )
    _add_tls_arguments(server)
    cluster = server.add_argument_group(
        "cluster",
        "Several servers, each with its own --port, form one chat by meeting in one Redis "
        "(or Valkey): same rooms, messages, ids, presence and unique names everywhere. "
        "Needs the redis extra (pip install '.[redis]' in a checkout); see docs/operations.md.",
    )
    cluster.add_argument(
        "--redis",
        type=_redis_url,
        metavar="URL",
        help="redis://[:PASSWORD@]HOST[:PORT][/DB] (or rediss:// for TLS) of the Redis that "
        "this server shares rooms through; unset: this server is on its own",
    )
    server.set_defaults(func=_server_command)

    client = commands.add_parser(
        "client",
        help="join a chat server",
        description="Join a triochat server. Type to chat; /help lists the commands.",
    )
    add_client_arguments(client)
    client.set_defaults(func=run_client)
    return parser


def _add_tls_arguments(server: argparse.ArgumentParser) -> None:
    """The ``triochat server`` TLS flags (see docs/operations.md, "TLS")."""
    tls = server.add_argument_group(
        "TLS",
        "With --tls-cert and --tls-key the server also listens for TLS connections "
        "(TLS 1.2 or newer) on --tls-port; `triochat client --tls` and `openssl s_client` "
        "connect there. SIGHUP reloads the certificate and key from the same files.",
    )
    tls.add_argument(
        "--tls-cert",
        metavar="FILE",
        help="PEM certificate chain: the server's certificate, then any intermediates",
    )
    tls.add_argument(
        "--tls-key",
        metavar="FILE",
        help="the certificate's PEM private key, unencrypted (keep it readable only by "
        "the server's user); may be the same file as --tls-cert",
    )
    tls.add_argument(
        "--tls-port",
        type=_bounded(int, 0, 65535),
        default=DEFAULT_TLS_PORT,
        metavar="PORT",
        help="TCP port for TLS connections; 0 picks a free port (printed at start-up)",
    )
    tls.add_argument(
        "--no-plain",
        action="store_true",
        help="TLS only: do not listen on --port for cleartext connections",
    )


def _check_tls_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Flags that only make sense together; exits with status 2 and usage if not."""
    if args.command != "server":
        return
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together: give both, or neither")
    if args.tls_cert is None and args.no_plain:
        parser.error("--no-plain needs --tls-cert and --tls-key (there would be no listener)")
    if args.tls_cert is not None and not args.no_plain and args.tls_port == args.port != 0:
        parser.error(f"--tls-port and --port are both {args.port}; choose two ports")


def _format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _listen_error(exc: OSError, host: str, port: int, flag: str = "--port") -> str:
    where = _format_address(host, port)
    if isinstance(exc, socket.gaierror):
        return f"cannot listen on {where}: unknown host {host!r} ({exc.strerror})"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"cannot listen on {where}: the port is already in use "
            f"(is another server running? choose another with {flag})"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {where}: {host} is not an address of this machine"
    if exc.errno == errno.EACCES:
        return f"cannot listen on {where}: permission denied (ports below 1024 need root)"
    return f"cannot listen on {where}: {exc.strerror or exc}"


async def _open_listeners(
    host: str, ports: list[tuple[int | None, str]]
) -> list[list[trio.SocketListener]] | None:
    """One list of listeners per ``(port, flag)`` (a port of None: none wanted).

    Returns None, after one line on stderr naming the flag, if a port cannot be opened;
    nothing is left open then.
    """
    opened: list[list[trio.SocketListener]] = []
    for port, flag in ports:
        if port is None:
            opened.append([])
            continue
        try:
            opened.append(await trio.open_tcp_listeners(port, host=host))
        except OSError as exc:
            for listener in (listener for group in opened for listener in group):
                await listener.aclose()
            print(f"triochat: error: {_listen_error(exc, host, port, flag)}", file=sys.stderr)
            return None
    return opened


def _announce(listeners: list[trio.SocketListener], suffix: str = "") -> None:
    """Print ``listening on HOST:PORT`` (stable, for scripts); log any other address."""
    addresses = [listener.socket.getsockname() for listener in listeners]
    print(f"listening on {_format_address(addresses[0][0], addresses[0][1])}{suffix}", flush=True)
    for extra in addresses[1:]:  # e.g. the IPv6 address of "localhost"
        log.info("also listening on %s%s", _format_address(extra[0], extra[1]), suffix)


async def _serve(
    config: ServerConfig,
    store: Store,
    where: str,
    host: str,
    port: int | None,
    web: tuple[int | None, tuple[str, ...]] = (None, ()),
    tls: tuple[int, Certificates] | None = None,
) -> int:
    """Listen (plain on ``port`` unless None, TLS and the web page if asked), serve until
    a signal."""
    web_port, web_origins = web
    tls_port, certificates = tls if tls is not None else (None, None)
    opened = await _open_listeners(
        host, [(port, "--port"), (tls_port, "--tls-port"), (web_port, "--web-port (or off)")]
    )
    if opened is None:
        store.close()
        return 1
    listeners, tls_listeners, web_listeners = opened
    server = ChatServer(config, store)
    wanted = [signal.SIGINT, signal.SIGTERM]
    if certificates is not None and hasattr(signal, "SIGHUP"):
        wanted.append(signal.SIGHUP)  # reload the certificate (instead of stopping)
    with trio.open_signal_receiver(*wanted) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            if listeners:
                await nursery.start(server.serve_listeners, listeners)
                _announce(listeners)
            if certificates is not None:
                await nursery.start(server.serve_tls, tls_listeners, certificates)
                _announce(tls_listeners, " (TLS)")
            print(f"history: {where}", flush=True)
            bus = server.hub.bus
            if bus is not None:
                print(f"cluster: node {bus.node} through {_redacted(bus.url)}", flush=True)
            if web_listeners:
                web_server = WebServer(server, origins=web_origins, certificates=certificates)
                await nursery.start(web_server.serve_listeners, web_listeners)
                web_at = web_listeners[0].socket.getsockname()
                scheme = "https" if web_server.tls else "http"
                print(f"web: {scheme}://{_format_address(web_at[0], web_at[1])}/", flush=True)
            async for signum in signals:
                if certificates is not None and signum == getattr(signal, "SIGHUP", None):
                    log.info("received SIGHUP: reloading the TLS certificate")
                    await certificates.reload()
                    continue
                log.info("received %s", signal.Signals(signum).name)
                break
            with trio.move_on_after(SHUTDOWN_DEADLINE):
                await server.shutdown()
            nursery.cancel_scope.cancel()
    dropped = dropped_records()
    if dropped:
        log.warning("server stopped; %d log records were dropped (stderr was not read)", dropped)
    else:
        log.info("server stopped")
    return 0


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
        log.warning(
            "the open-files limit (%d) is below --max-clients %d; raise it with `ulimit -n`",
            new,
            max_clients,
        )


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


def _server_command(args: argparse.Namespace) -> int:
    start_logging(args.log_level, args.log_format)
    try:
        certificates = None
        if args.tls_cert is not None:
            try:
                certificates = Certificates(args.tls_cert, args.tls_key)
            except CertificateError as exc:
                print(f"triochat: error: {exc}", file=sys.stderr)
                return EXIT_USAGE
        _raise_fd_limit(args.max_clients, tls=certificates is not None)
        try:
            server_password = _read_password_file(args.password_file)
        except ValueError as exc:
            print(f"triochat: error: {exc}", file=sys.stderr)
            return 1
        config = ServerConfig(
            history=args.history,
            max_rooms=args.max_rooms,
            max_rooms_per_member=args.max_rooms_per_member,
            resume_limit=args.resume_limit,
            retain_days=args.retain_days,
            retain_messages=args.retain_messages,
            max_line_bytes=args.max_line_bytes,
            rate_limit=args.rate_limit,
            burst=args.burst,
            send_queue=args.send_queue,
            send_queue_bytes=args.send_queue_bytes,
            max_clients=args.max_clients,
            max_per_address=args.max_per_address,
            trusted=args.trusted,
            coalesce_above=args.coalesce_above,
            ops=tuple(args.op),
            server_password=server_password,
            redis=args.redis,
        )
        db = args.db if args.db is not None else str(default_db_path())
        try:
            store = open_store(db)
        except StoreError as exc:
            print(f"triochat: error: {exc}", file=sys.stderr)
            return 1
        where = "in memory only (--db :memory:)" if db == IN_MEMORY else db
        status = 1
        port = None if args.no_plain else args.port
        tls = (args.tls_port, certificates) if certificates is not None else None
        try:
            web_port = getattr(args, "web_port", DEFAULT_WEB_PORT if args.port else 0)
            web = (web_port, args.web_origin)
            status = trio.run(_serve, config, store, where, args.host, port, web, tls)
        except* StoreError as group:  # reading the rooms back at start-up failed
            print(f"triochat: error: {group.exceptions[0]}", file=sys.stderr)
        except* ClusterError as group:  # Redis cannot be reached at start-up
            print(f"triochat: error: {first_leaf(group)}", file=sys.stderr)
        return status
    finally:
        # Write what is still queued; if nobody reads stderr, give up after a moment
        # (the writer thread is left blocked, and the process exits anyway).
        stop_logging()


def _redacted(url: str) -> str:
    """``url`` without its password, for the terminal and the log."""
    parts = urllib.parse.urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at or parts.password is None:
        return url
    user = userinfo.partition(":")[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{hostport}"))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``triochat`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_tls_arguments(parser, args)
    try:
        status: int = args.func(args)
    except KeyboardInterrupt:
        return 130  # Ctrl-C outside a place that handles it: quiet, conventional status
    return status
