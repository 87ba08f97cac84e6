"""The ``triochat server`` settings: one row each, from which the flags and the config come.

Every server setting is written here once: its key (the flag is ``--KEY``; a config
file would use the same key), the :class:`~triochat.config.ServerConfig` field it
fills, how its text is read and checked, its help and its group in ``--help``. The
default is the field's default in ``ServerConfig`` (written there once, as Python
users and tests construct it too). :mod:`triochat.cli.flags` turns the rows into
argparse flags and the values given into a ``ServerConfig``.

Every flag's argparse default is ``SUPPRESS``, so the parsed namespace holds only what
was given on the command line; the config's defaults fill in the rest. A config file
(a later issue) is one more source of given values, read through the same rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from triochat.cli.values import bounded, networks_text, op_name, port, redis_url, web_port
from triochat.config import DEFAULT_WEB_PORT, ServerConfig, parse_networks
from triochat.core.passwords import MAX_PASSWORD_CHARS
from triochat.core.throttle import SERVER_REGISTRATIONS_PER_HOUR
from triochat.logs import LOG_FORMATS
from triochat.server.hub import MEMORY_RETAIN_MESSAGES
from triochat.store import DURABILITIES, default_db_path
from triochat.web import parse_hosts, parse_origins

__all__ = [
    "GROUPS",
    "NOT_SETTINGS",
    "SERVER_SETTINGS",
    "Group",
    "Setting",
]

LOG_LEVELS: Final = ("debug", "info", "warning", "error")
# ServerConfig fields that are no flag: fixed tunables, and the password itself (the
# command reads it from --password-file at start-up).
NOT_SETTINGS: Final = frozenset(
    {"presence_interval", "registration_timeout", "flush_timeout", "server_password"}
)

# -- the table --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Group:
    """A heading in ``triochat server --help``, with a paragraph under it."""

    title: str
    description: str


@dataclass(frozen=True, slots=True)
class Setting:
    """One server setting: a ``--KEY`` flag, a config key, a ``ServerConfig`` field.

    Attributes:
        key: the flag without its dashes (``max-clients``), and a config file's key.
        group: where ``--help`` lists it.
        help: what it does, for ``--help``; the default is appended.
        parse: reads the text given; raises ValueError with a one-line reason. None: a
            switch that takes no value and turns the field on.
        metavar: how ``--help`` names the value (None: argparse's choice list).
        field: the ServerConfig field it fills ("": ``key`` with underscores).
        repeat: the flag may be given again and again; the field is the tuple of values.
        choices: the only values accepted.
        default_text: how ``--help`` shows the default ("": from the field's default).
    """

    key: str
    group: Group
    help: str
    parse: Callable[[str], Any] | None = None
    metavar: str | None = None
    field: str = ""
    repeat: bool = False
    choices: tuple[str, ...] | None = None
    default_text: str = ""

    @property
    def flag(self) -> str:
        """The command-line spelling: ``--max-clients``."""
        return f"--{self.key}"

    @property
    def dest(self) -> str:
        """The ServerConfig field this setting fills."""
        return self.field or self.key.replace("-", "_")

    def shown_default(self, defaults: ServerConfig) -> str:
        """The default as ``--help`` shows it."""
        if self.default_text:
            return self.default_text
        value = getattr(defaults, self.dest)
        if value is None or value == ():
            return "none"
        if isinstance(value, bool):
            return "on" if value else "off"
        if isinstance(value, float):
            return f"{value:g}"
        if isinstance(value, tuple):
            return ",".join(str(item) for item in value)
        return str(value)


LISTENING: Final = Group(
    "listening",
    "Where the server takes connections. Every port is on --host; the limits below hold "
    "for every one of them.",
)
WEB: Final = Group(
    "web page",
    "The server also serves a chat page and its WebSocket, so a browser joins the same "
    "rooms as everyone on nc and `triochat client`.",
)
TLS: Final = Group(
    "TLS",
    "With --tls-cert and --tls-key the server also listens for TLS connections "
    "(TLS 1.2 or newer) on --tls-port; `triochat client --tls` and `openssl s_client` "
    "connect there. SIGHUP reloads the certificate and key from the same files.",
)
HISTORY: Final = Group(
    "history",
    "Rooms, topics, accounts and chat history are kept in one SQLite file; see docs/operations.md.",
)
LIMITS: Final = Group(
    "limits",
    "What one connection, one member and the whole server may use. A connection over a "
    "limit is told why, in one line; nobody else loses anything.",
)
ACCESS: Final = Group("access", "Operators, and a password for the whole server.")
LOGGING: Final = Group(
    "logging",
    "The log goes to stderr; stdout has only the start-up lines ('listening on', "
    "'history:', 'cluster:', 'web:').",
)
MONITORING: Final = Group(
    "monitoring",
    "/metrics (Prometheus), /healthz and /readyz are served on the web port (/metrics "
    "to --trusted addresses only), and on --metrics-port if given; see docs/operations.md.",
)
CLUSTER: Final = Group(
    "cluster",
    "Several servers, each with its own --port, form one chat by meeting in one Redis "
    "(or Valkey): same rooms, messages, ids, presence and unique names everywhere. "
    "Needs the redis extra (pip install '.[redis]' in a checkout); see docs/operations.md.",
)
IRC: Final = Group(
    "IRC",
    "IRC clients and bots join the same rooms as channels on --irc-port, and with "
    "--tls-cert and --tls-key on --irc-tls-port; both off unless given.",
)
GROUPS: Final = (LISTENING, WEB, TLS, IRC, HISTORY, LIMITS, ACCESS, LOGGING, MONITORING, CLUSTER)

_N: Final = "N"
SERVER_SETTINGS: Final[tuple[Setting, ...]] = (
    Setting(
        "host",
        LISTENING,
        "address to listen on; use 0.0.0.0 (or ::) to accept connections from your LAN",
        str,
        "HOST",
    ),
    Setting(
        "port",
        LISTENING,
        "TCP port for nc, telnet and `triochat client`; 0 picks a free port (printed at start-up)",
        port,
        "PORT",
    ),
    Setting(
        "web-port",
        WEB,
        "port for the web page and its WebSocket, on the same --host; 0 picks a free "
        "port, 'off' serves no web page",
        web_port,
        "PORT|off",
        default_text=f"{DEFAULT_WEB_PORT}, or 0 with --port 0",
    ),
    Setting(
        "web-origin",
        WEB,
        "other web pages that may open the chat's WebSocket, such as "
        "https://chat.example.org ('*' for any)",
        parse_origins,
        "ORIGIN,...",
        field="web_origins",
        default_text="only the page this server serves",
    ),
    Setting(
        "web-host",
        WEB,
        "the names this server is reached by (the Host of a request); a request for any "
        "other name is refused with 421, against DNS rebinding. The addresses it listens "
        "on are always accepted ('*' accepts any name)",
        parse_hosts,
        "NAME,...",
        field="web_hosts",
        default_text="localhost and the machine's names",
    ),
    Setting(
        "web-cleartext",
        WEB,
        "serve the web page and its WebSocket in cleartext even when --tls-cert is given "
        "(a warning is logged at start-up)",
    ),
    Setting(
        "tls-cert",
        TLS,
        "PEM certificate chain: the server's certificate, then any intermediates",
        str,
        "FILE",
    ),
    Setting(
        "tls-key",
        TLS,
        "the certificate's PEM private key, unencrypted (keep it readable only by the "
        "server's user); may be the same file as --tls-cert",
        str,
        "FILE",
    ),
    Setting(
        "tls-port",
        TLS,
        "TCP port for TLS connections; 0 picks a free port (printed at start-up)",
        port,
        "PORT",
    ),
    Setting("no-plain", TLS, "TLS only: do not listen on --port for cleartext connections"),
    Setting("irc-port", IRC, "port for IRC clients (6667 is usual); 0: a free one", port, "PORT"),
    Setting("irc-tls-port", IRC, "port for IRC over TLS (6697 is usual)", port, "PORT"),
    Setting(
        "irc-server-name", IRC, "the name IRC clients see", str, "NAME", default_text="host name"
    ),
    Setting(
        "db",
        HISTORY,
        "the SQLite database that keeps rooms, topics and chat history (created with its "
        "folders if missing); ':memory:' keeps nothing after exit, and keeps the last "
        f"{MEMORY_RETAIN_MESSAGES:,} messages per room in RAM unless --retain-messages "
        "says otherwise",
        str,
        "PATH",
        default_text=str(default_db_path()),
    ),
    Setting(
        "durability",
        HISTORY,
        "what a stored line survives once clients have seen it: 'process' survives kill -9, "
        "a crash or an out-of-memory kill (SQLite synchronous=NORMAL in WAL; a power cut "
        "or kernel crash may lose the last seconds); 'power' survives a power cut too "
        "(synchronous=FULL: one fsync per commit, which every line waits for)",
        str,
        choices=DURABILITIES,
    ),
    Setting(
        "history",
        HISTORY,
        "chat lines of a room replayed to someone who joins it; 0 replays none",
        bounded(int, 0),
        _N,
    ),
    Setting(
        "retain-days",
        HISTORY,
        "delete stored messages older than this",
        bounded(float, 0.001),
        "DAYS",
        default_text="keep everything",
    ),
    Setting(
        "retain-messages",
        HISTORY,
        "keep at most N stored messages per room",
        bounded(int, 1),
        _N,
        default_text="keep everything",
    ),
    Setting(
        "no-search-index",
        HISTORY,
        "keep no full-text index of the stored messages (saves CPU per commit and about "
        "40% of the database file); /search then answers that search is off",
    ),
    Setting(
        "resume-limit",
        HISTORY,
        "messages per room replayed to a client that reconnects; beyond that it is told "
        "how many it missed",
        bounded(int, 1),
        _N,
    ),
    Setting(
        "max-rooms",
        LIMITS,
        "rooms on the server; empty rooms are kept (they have history)",
        bounded(int, 1),
        _N,
    ),
    Setting(
        "max-rooms-per-member", LIMITS, "rooms one member may be in at once", bounded(int, 1), _N
    ),
    Setting(
        "max-line-bytes",
        LIMITS,
        "longest line accepted; longer lines are discarded and the sender told",
        bounded(int, 16),
        "BYTES",
    ),
    Setting(
        "rate-limit",
        LIMITS,
        "flood control: lines per second per connection after the burst; 0 turns it off. "
        "Over the limit a connection is read more slowly; nothing is dropped",
        bounded(float, 0),
        "LINES_PER_SECOND",
    ),
    Setting(
        "burst",
        LIMITS,
        "lines a connection may send at once before the rate limit applies",
        bounded(int, 1),
        _N,
    ),
    Setting(
        "send-queue",
        LIMITS,
        "events queued for one member; a member that falls this far behind is "
        "disconnected as 'too slow' (see also --send-queue-bytes: whichever is reached "
        "first)",
        bounded(int, 1),
        "EVENTS",
    ),
    Setting(
        "send-queue-bytes",
        LIMITS,
        "bytes of output held for one member, replies to its own /who and /help included; "
        "a member that falls this far behind is disconnected as 'too slow'. One event to a "
        "member with nothing queued is always sent, however large",
        bounded(int, 1),
        "BYTES",
    ),
    Setting(
        "max-clients",
        LIMITS,
        "connections served at once; more are told the server is full",
        bounded(int, 1),
        _N,
    ),
    Setting(
        "max-per-address",
        LIMITS,
        "connections at once from one address (0 = no limit); the next one is told why "
        "and closed. Addresses in --trusted are exempt",
        bounded(int, 0),
        _N,
    ),
    Setting(
        "trusted",
        LIMITS,
        "addresses exempt from --max-per-address, such as a local TLS terminator or "
        "reverse proxy; 'none' exempts nothing",
        parse_networks,
        "ADDRESS[/PREFIX],...",
        default_text=networks_text(ServerConfig().trusted),
    ),
    Setting(
        "coalesce-above",
        LIMITS,
        "in rooms larger than this, joins and leaves are announced as one summary every "
        f"{ServerConfig().presence_interval:g} seconds",
        bounded(int, 1),
        _N,
    ),
    Setting(
        "max-registrations-per-hour",
        ACCESS,
        "names one address (an IPv6 /64) may register in any hour (0 = no limit); the "
        f"whole server takes at most {SERVER_REGISTRATIONS_PER_HOUR} an hour. Addresses "
        "in --trusted are exempt from the per-address limit",
        bounded(int, 0),
        _N,
    ),
    Setting(
        "op",
        ACCESS,
        "make NAME an operator (repeat for more); its powers need the name registered "
        "(/register), so register it first: whoever registers NAME gets them. Operators "
        "can make more with /op",
        op_name,
        "NAME",
        field="ops",
        repeat=True,
    ),
    Setting(
        "password-file",
        ACCESS,
        "a private server: every connection must first give the password on FILE's first "
        "line (plain: a first line '/pass PASSWORD'; JSON: 'server_password' in the hello)",
        str,
        "FILE",
        default_text="none: anyone may join",
    ),
    Setting(
        "min-password-length",
        ACCESS,
        "shortest password an account may set with /register or /password (existing "
        "accounts keep theirs)",
        bounded(int, 1, MAX_PASSWORD_CHARS),
        "CHARS",
    ),
    Setting(
        "log-level",
        LOGGING,
        "how much the server logs to stderr (joins, leaves and refusals are 'info')",
        str,
        choices=LOG_LEVELS,
    ),
    Setting(
        "log-format",
        LOGGING,
        "how log records look: 'plain' is one line each (ISO time, level, logger, "
        "message), 'json' one JSON object per line, 'auto' is plain unless stderr is a "
        "terminal (then a colour console view). Logging never holds the server up: if "
        "stderr is not read fast enough, records are dropped and counted in the status line",
        str,
        choices=LOG_FORMATS,
    ),
    Setting(
        "metrics-port",
        MONITORING,
        "a port of its own for /metrics, /healthz and /readyz, on the same --host, open to "
        "anyone who can reach it (firewall it); 0 picks a free port, 'off' opens none",
        web_port,
        "PORT|off",
        default_text="off",
    ),
    Setting(
        "redis",
        CLUSTER,
        "redis://[:PASSWORD@]HOST[:PORT][/DB] (or rediss:// for TLS) of the Redis that this "
        "server shares rooms through",
        redis_url,
        "URL",
        default_text="none: this server is on its own",
    ),
)
