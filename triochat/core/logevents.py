"""Every log record the server writes, by name: one row per event. No I/O.

A log call names its event and passes its fields by keyword::

    log_event(log, "member.left", conn=7, name="alice", reason="closed", online=3)

The row gives the level and the human message, a ``%(field)s`` template over those
fields: the plain and rich formats show the message as before, and the JSON format
(``--log-format json``) writes ``event`` and every field as top-level keys. Field
names start with an underscore when they only complete the text (``_more``: "and 3
more in 10 s"); those are left out of the JSON object, and the fields they describe
are passed too (``repeated``). Rows are documented in docs/operations.md ("Log
events"), and tests/test_log_events.py checks that every call under ``triochat/`` goes
through :func:`log_event` with a known event and exactly its fields.

Names are dotted and lowercase (``area.what``) and stable: a script may match on them.
Common fields: ``conn`` (a chat connection's id, the ``[cN]`` of the text),
``web_conn`` (an HTTP connection's, ``[wN]``), ``address`` (the peer, ``host:port``),
``name`` (a member), ``by`` (the operator who acted), ``room``, ``reason``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

__all__ = ["EVENTS", "RESERVED", "LogEvent", "log_event"]

DEBUG: Final = logging.DEBUG
INFO: Final = logging.INFO
WARNING: Final = logging.WARNING
ERROR: Final = logging.ERROR

# Keys of the JSON object that are not fields (see triochat.logs.JsonFormatter).
RESERVED: Final = frozenset({"time", "level", "logger", "event", "message", "traceback"})

_KEY: Final = re.compile(r"%\((\w+)\)")


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One row: the level, the message template, and fields only the JSON shows."""

    level: int
    message: str
    extra: tuple[str, ...] = ()
    keys: frozenset[str] = field(init=False)  # every keyword a call must pass

    def __post_init__(self) -> None:
        keys = frozenset(_KEY.findall(self.message)) | frozenset(self.extra)
        object.__setattr__(self, "keys", keys)

    @property
    def fields(self) -> tuple[str, ...]:
        """The fields written as JSON keys, in the order of the message."""
        shown = dict.fromkeys(_KEY.findall(self.message))
        return tuple(k for k in [*shown, *self.extra] if not k.startswith("_"))


def _e(level: int, message: str, *extra: str) -> LogEvent:
    return LogEvent(level, message, extra)


EVENTS: Final[Mapping[str, LogEvent]] = {
    # -- the server process (cli/, server/app.py) ------------------------------------------
    "server.listening": _e(INFO, "also listening on %(address)s%(_door)s"),
    "server.files_limit": _e(
        WARNING,
        "the open-files limit (%(limit)d) is below --max-clients %(max_clients)d; "
        "raise it with `ulimit -n`",
    ),
    "server.signal": _e(INFO, "received %(signal)s"),
    "server.reload": _e(INFO, "received SIGHUP: reloading the TLS certificate"),
    "server.reload_nothing": _e(INFO, "received SIGHUP: nothing to reload (no --tls-cert)"),
    "server.shutting_down": _e(INFO, "shutting down: %(connections)d connections"),
    "server.flush_timeout": _e(
        WARNING, "%(connections)d connections did not flush in time; closing them"
    ),
    "server.members_told": _e(INFO, "shutdown: %(members)d members told"),
    "server.stopped": _e(INFO, "server stopped"),
    "server.stopped_dropped": _e(
        WARNING, "server stopped; %(dropped)d log records were dropped (stderr was not read)"
    ),
    "server.accept_failed": _e(
        ERROR, "cannot accept a connection (%(reason)s); retrying %(_retry)s", "repeated"
    ),
    "status": _e(
        INFO,
        "status: %(online)d online (%(plain)d plain, %(json)d json), %(rooms)d rooms, "
        "%(chat_events)d chat events so far, history %(_history)s, "
        "%(dropped)d log records dropped%(_cluster)s",
        "saved",
        "cluster_up",
    ),
    # -- connections ------------------------------------------------------------------------
    "connection.refused": _e(
        WARNING, "[c%(conn)d] refused %(address)s: %(reason)s%(_more)s", "repeated"
    ),
    "connection.wrong_door": _e(
        INFO, "[c%(conn)d] %(client)s on the chat port from %(address)s: told where to go"
    ),
    "connection.no_pong": _e(INFO, "[c%(conn)d] %(name)s did not answer a ping"),
    "connection.crashed": _e(
        ERROR, "[c%(conn)d] unexpected error serving %(address)s; connection closed"
    ),
    "tls.handshake_failed": _e(INFO, "TLS: %(address)s: %(reason)s; closed%(_more)s", "repeated"),
    "tls.reloaded": _e(INFO, "TLS: certificate reloaded from %(file)s; new connections use it"),
    "tls.reload_failed": _e(
        ERROR, "TLS: reload failed, still using the previous certificate: %(reason)s"
    ),
    # -- joining, names, accounts -----------------------------------------------------------
    "member.joined": _e(
        INFO,
        "[c%(conn)d] %(name)s joined from %(address)s (%(protocol)s, %(online)d online)",
    ),
    "member.left": _e(INFO, "[c%(conn)d] %(name)s left: %(reason)s (%(online)d online)"),
    "member.renamed": _e(INFO, "[c%(conn)d] %(old)s is now known as %(name)s"),
    "member.rename_refused": _e(
        INFO, "[c%(conn)d] refused rename of %(old)s to %(name)r: %(reason)s"
    ),
    "member.away": _e(INFO, "[c%(conn)d] %(name)s is %(status)s"),
    "join.refused": _e(INFO, "[c%(conn)d] refused %(name)r from %(address)s: %(reason)s"),
    "join.as_guest": _e(INFO, "[c%(conn)d] refused %(name)r from %(address)s: %(reason)s"),
    "login.succeeded": _e(INFO, "[c%(conn)d] %(name)s logged in"),
    "login.sasl": _e(INFO, "[c%(conn)d] %(name)s logged in (SASL)"),
    "login.flooded": _e(INFO, "[c%(conn)d] sent too much while its login was checked; cut"),
    "login.failed": _e(
        WARNING,
        "%(_conn)sfailed login to %(what)s from %(address)s (%(failures)d failures from "
        "there in the last minute%(_on_account)s%(_refused)s)",
        "conn",
        "account",
        "account_failures",
        "refused_s",
    ),
    "login.check_failed": _e(ERROR, "[c%(conn)d] cannot check a password: %(reason)s"),
    "account.registered": _e(INFO, "[c%(conn)d] %(name)s registered the name"),
    "account.password_changed": _e(INFO, "[c%(conn)d] %(name)s changed the password"),
    "accounts.loaded": _e(
        INFO,
        "accounts: %(accounts)d registered, %(ops)d operators stored, %(bans)d bans, "
        "%(mutes)d mutes",
    ),
    "accounts.op_unregistered": _e(
        WARNING,
        "--op %(name)s: no account of that name is registered, so it has no powers; "
        "register it at once (whoever registers that exact name becomes an operator)",
    ),
    # -- rooms and moderation ---------------------------------------------------------------
    "room.created": _e(INFO, "[c%(conn)d] %(by)s created %(room)s"),
    "room.topic_set": _e(INFO, "[c%(conn)d] %(by)s set the topic of %(room)s"),
    "room.expired": _e(INFO, "rooms: %(count)d empty rooms expired: %(rooms)s"),
    "room.irc_kick": _e(INFO, "[c%(conn)d] %(by)s put %(name)s out of %(room)s", "reason"),
    "moderation.op": _e(INFO, "[c%(conn)d] %(by)s made %(name)s an operator"),
    "moderation.deop": _e(INFO, "[c%(conn)d] %(by)s made %(name)s an ordinary member"),
    "moderation.drop_account": _e(INFO, "[c%(conn)d] %(by)s deleted the account %(name)s"),
    "moderation.kick": _e(INFO, "[c%(conn)d] %(by)s kicked %(name)s%(_why)s", "reason"),
    "moderation.kick_remote": _e(
        INFO, "[c%(conn)d] %(by)s kicked %(name)s%(_why)s (on another node)", "reason"
    ),
    "moderation.ban": _e(
        INFO, "[c%(conn)d] %(by)s banned %(name)s%(_for)s%(_why)s", "seconds", "reason"
    ),
    "moderation.unban": _e(INFO, "[c%(conn)d] %(by)s lifted the ban on %(name)s"),
    "moderation.mute": _e(INFO, "[c%(conn)d] %(by)s muted %(name)s%(_for)s", "seconds"),
    "moderation.unmute": _e(INFO, "[c%(conn)d] %(by)s unmuted %(name)s"),
    "moderation.topic_lock": _e(INFO, "[c%(conn)d] %(by)s %(action)sed the topic of %(room)s"),
    "moderation.drop_room": _e(
        INFO, "[c%(conn)d] %(by)s dropped the room %(room)s (%(online)d in it)"
    ),
    "moderation.expired": _e(INFO, "%(what)s ran out"),
    # -- history (the store) ----------------------------------------------------------------
    "store.loaded": _e(INFO, "history: %(rooms)d rooms loaded"),
    "store.commit_failed": _e(ERROR, "history: %(reason)s; chat goes on, retrying"),
    "store.commit_back": _e(WARNING, "history: saving again"),
    "store.failed": _e(ERROR, "store: %(what)s: %(reason)s"),
    "store.pruned": _e(INFO, "store: retention deleted %(messages)d old messages"),
    "store.unsaved_at_close": _e(
        WARNING, "store: closed with %(batches)d batches (%(messages)d messages) not saved"
    ),
    "history.read_failed": _e(ERROR, "history: cannot read %(room)s for [c%(conn)d]: %(reason)s"),
    # -- the cluster (--redis) --------------------------------------------------------------
    "cluster.joined": _e(INFO, "cluster: node %(node)s joined through %(url)s"),
    "cluster.slow_join": _e(
        WARNING,
        "cluster: the room streams were not read within %(seconds)gs; opening the doors,"
        " the rest comes as catch-ups",
    ),
    "cluster.left": _e(INFO, "cluster: node %(node)s left"),
    "cluster.goodbye_failed": _e(WARNING, "cluster: could not say goodbye: %(reason)s"),
    "cluster.redis_lost": _e(
        ERROR, "cluster: lost contact with Redis at %(url)s: %(reason)s; retrying"
    ),
    "cluster.redis_back": _e(WARNING, "cluster: in contact with Redis again%(_lost)s", "lost_data"),
    "cluster.announced_again": _e(
        WARNING, "cluster: the other nodes took this one for dead; announcing again"
    ),
    "cluster.bad_entry": _e(WARNING, "cluster: skipped a malformed log entry: %(raw).200r"),
    "cluster.bad_line": _e(WARNING, "cluster: skipped a malformed line: %(raw).200r"),
    "cluster.down": _e(WARNING, "cluster: lost contact; members told, retrying"),
    "cluster.up": _e(WARNING, "cluster: in contact again%(_lost)s", "lost_data"),
    "cluster.caught_up": _e(INFO, "cluster: %(lines)d lines of %(room)s caught up, replayed paced"),
    "cluster.room_dropped": _e(
        INFO, "cluster: %(by)s dropped the room %(room)s (on node %(node)s)"
    ),
    "cluster.name_lost": _e(INFO, "[c%(conn)d] lost the name %(name)s to another node"),
    "cluster.refused": _e(DEBUG, "cluster: refused %(what)s %(op)s"),
    # -- the web door -----------------------------------------------------------------------
    "web.cleartext": _e(
        WARNING,
        "web: the page and its WebSocket are served in CLEARTEXT beside TLS "
        "(web_cleartext): passwords typed there cross the network unencrypted "
        "unless a TLS proxy is in front",
    ),
    "web.request": _e(DEBUG, "[w%(web_conn)d] %(address)s %(method)s %(target)s -> %(status)d"),
    "web.websocket_opened": _e(
        DEBUG, "[w%(web_conn)d] %(address)s: WebSocket open (origin %(origin)s)"
    ),
    "web.evicted": _e(
        DEBUG, "[w%(web_conn)d] %(address)s: closed to make room for another address"
    ),
    "web.ended": _e(DEBUG, "[w%(web_conn)d] %(address)s: connection ended: %(reason)s"),
    "web.crashed": _e(
        ERROR, "[w%(web_conn)d] unexpected error serving %(address)s over HTTP; closed"
    ),
    "web.busy": _e(
        WARNING,
        "[w%(web_conn)d] closed %(address)s: %(connections)d connections%(_where)s are "
        "loading the page already%(_more)s",
        "per_address",
        "repeated",
    ),
    "web.host_refused": _e(
        WARNING,
        "[w%(web_conn)d] refused %(method)s %(target)s from %(address)s: Host %(host)r "
        "does not name this server (DNS rebinding?; add the name with --web-host)%(_more)s",
        "repeated",
    ),
    "web.origin_refused": _e(
        WARNING,
        "[w%(web_conn)d] refused a WebSocket from %(address)s: origin %(origin)r is not "
        "allowed (allow it with --web-origin)%(_more)s",
        "repeated",
    ),
}


def log_event(
    log: logging.Logger, event: str, /, *, exc_info: bool = False, **fields: object
) -> None:
    """Log ``event`` (a key of :data:`EVENTS`) with ``fields`` on ``log``.

    The record's ``args`` are ``fields`` (a mapping: ``getMessage`` fills the row's
    template with them, so other handlers see the usual text) and its ``event``
    attribute is the name. ``exc_info``: attach the exception being handled.
    """
    row = EVENTS[event]
    if log.isEnabledFor(row.level):
        args = (fields,) if fields else ()
        log.log(
            row.level, row.message, *args, exc_info=exc_info, extra={"event": event}, stacklevel=2
        )
