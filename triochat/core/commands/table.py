"""The command table: one row per command, and the parsers and help made from it. No I/O.

A row (:class:`CommandSpec`) says everything about one command: how a plain-mode user
types it (``/verb``), its JSON ``type``, the parsers for both, which handler of the chat
state carries it out, whether only operators may use it, its help line, and whether it
crosses the cluster. :func:`parse_plain`, :func:`parse_json`, the ``/help`` text and the
chat state's dispatch are all read off :data:`COMMANDS`; adding a command is one row,
one handler, and its tests (docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from triochat.core.admin import (
    Ban,
    Bans,
    ChangePassword,
    Deop,
    Drop,
    DropRoom,
    Kick,
    LockTopic,
    Login,
    Mute,
    Op,
    Pass,
    Register,
    Unban,
    Unmute,
)
from triochat.core.commands.fields import (
    room_arg,
)
from triochat.core.commands.parsers import (
    MAX_AWAY_CHARS,
    JsonParser,
    PlainParser,
    admin_json,
    admin_plain,
    away,
    json_away,
    json_chat,
    json_droproom,
    json_hello,
    json_history,
    json_join,
    json_msg,
    json_nick,
    json_notify,
    json_topic,
    no_args,
    plain_droproom,
    plain_join,
    plain_lock,
    plain_me,
    plain_msg,
    plain_notify,
)
from triochat.core.commands.searching import json_search, plain_history, plain_search
from triochat.core.commands.types import (
    Away,
    Command,
    Hello,
    Help,
    History,
    Invalid,
    IrcAsk,
    IrcHello,
    IrcSay,
    Join,
    Me,
    Mentions,
    Msg,
    Nick,
    Notify,
    Part,
    Quit,
    RoomKick,
    Rooms,
    Say,
    Search,
    Several,
    Topic,
    Who,
)

__all__ = [
    "COMMANDS",
    "HELP_LINES",
    "JSON",
    "MAX_AWAY_CHARS",
    "OPERATOR_HELP_LINES",
    "PLAIN",
    "UNKNOWN_HINT",
    "CommandSpec",
    "handler_for",
]

UNKNOWN_HINT: Final = "type /help for the list of commands"


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One command: how it is spelled in each wire mode, who handles it, its help."""

    command: tuple[type, ...]  # the command classes its parsers make
    handler: str  # the chat state's handler (see ChatState.HANDLERS)
    verbs: tuple[str, ...] = ()  # plain mode: /verb (lower case); () if none
    json_type: tuple[str, ...] = ()  # JSON mode: "type"; () if none
    plain: PlainParser | None = None
    json: JsonParser | None = None
    usage: str = ""  # the help line's left column; "" keeps it out of /help
    help: tuple[str, ...] = ()  # the help line's text (more items: continuation lines)
    operator: bool = False  # only operators may use it (and only they see its help)
    crosses_cluster: bool = False  # what it changes is published to the other nodes


_HELP_PLAIN, _HELP_JSON = no_args(Help)
_QUIT_PLAIN, _QUIT_JSON = no_args(Quit)
_ROOMS_PLAIN, _ROOMS_JSON = no_args(Rooms)
_MENTIONS_PLAIN, _MENTIONS_JSON = no_args(Mentions)


def _row(
    command: type | tuple[type, ...], handler: str, usage: str, *help: str, **more: object
) -> CommandSpec:
    kinds = command if isinstance(command, tuple) else (command,)
    return CommandSpec(kinds, handler, usage=usage, help=help, **more)  # type: ignore[arg-type]


def _cmd(command: type, verb: str, usage: str, *help: str, **more: object) -> CommandSpec:
    """A row whose handler, plain verb and JSON type are all ``verb``."""
    return _row(command, verb, usage, *help, verbs=(verb,), json_type=(verb,), **more)


def _mod(command: type, verb: str, usage: str, *help: str, json: str = "") -> CommandSpec:
    return _row(
        command,
        "moderation",
        usage,
        *help,
        verbs=(verb,),
        json_type=(json or verb,),
        plain=admin_plain(verb) if verb not in ("locktopic", "unlocktopic") else plain_lock(verb),
        json=admin_json(json or verb),
        operator=True,
        crosses_cluster=True,
    )


def _account(command: type, verb: str, usage: str, *help: str) -> CommandSpec:
    return _row(
        command,
        "accounts",
        usage,
        *help,
        verbs=(verb,),
        json_type=(verb,),
        plain=admin_plain(verb),
        json=admin_json(verb),
        crosses_cluster=True,
    )


COMMANDS: Final[tuple[CommandSpec, ...]] = (
    _row(
        Say,
        "say",
        "TEXT",
        "say TEXT in your current room (// sends a leading /)",
        json_type=("say",),
        json=json_chat("say"),
        crosses_cluster=True,
    ),
    _row(
        Me,
        "act",
        "/me ACTION",
        "act: * alice waves",
        verbs=("me",),
        json_type=("me",),
        plain=plain_me,
        json=json_chat("me"),
        crosses_cluster=True,
    ),
    _row(
        Msg,
        "private",
        "/msg NAME TEXT",
        "private message to NAME",
        verbs=("msg",),
        json_type=("msg",),
        plain=plain_msg,
        json=json_msg,
        crosses_cluster=True,
    ),
    _row(
        Join,
        "join",
        "/join ROOM",
        "join ROOM (#name; created if new) and make it current",
        verbs=("join",),
        json_type=("join",),
        plain=plain_join,
        json=json_join,
        crosses_cluster=True,
    ),
    _row(
        Part,
        "part",
        "/part [ROOM]",
        "leave ROOM (default: the current room)",
        verbs=("part",),
        json_type=("part",),
        plain=lambda rest: room_arg(rest, Part) if rest else Part(),
        json=lambda obj, room: Part(room),
        crosses_cluster=True,
    ),
    _row(
        Rooms,
        "list_rooms",
        "/rooms",
        "list the rooms with their member counts and topics",
        verbs=("rooms",),
        json_type=("rooms",),
        plain=_ROOMS_PLAIN,
        json=_ROOMS_JSON,
    ),
    _row(
        Who,
        "who",
        "/who [ROOM]",
        "list who is in ROOM (default: the current room)",
        verbs=("who",),
        json_type=("who",),
        plain=lambda rest: room_arg(rest, Who) if rest else Who(),
        json=lambda obj, room: Who(room),
    ),
    _row(
        Topic,
        "topic",
        "/topic [TEXT]",
        "show, or set, the current room's topic",
        verbs=("topic",),
        json_type=("topic",),
        plain=lambda rest: Topic(rest) if rest else Topic(),
        json=json_topic,
        crosses_cluster=True,
    ),
    _row(
        History,
        "history",
        "/history [@NAME] [N]",
        "the last N messages of the current room (default 20), or of your private"
        " conversation with NAME (registered names);",
        "/history [ROOM] around ID: the lines around a search hit",
        verbs=("history",),
        json_type=("history",),
        plain=plain_history,
        json=json_history,
    ),
    _row(
        Search,
        "search",
        "/search WORDS",
        "find lines with all WORDS in your rooms, newest first;",
        "narrow with in:#room from:NAME; before:N is the next page",
        verbs=("search",),
        json_type=("search",),
        plain=plain_search,
        json=json_search,
    ),
    _row(
        Nick,
        "rename",
        "/nick NAME",
        "change your name (letters, digits, _ . -; up to 24)",
        verbs=("nick",),
        json_type=("nick",),
        plain=lambda rest: Nick(rest) if rest else Invalid("bad-request", "usage: /nick NAME"),
        json=json_nick,
        crosses_cluster=True,
    ),
    _account(
        Register,
        "register",
        "/register PASSWORD",
        "keep your current name: only you can use it from now on",
    ),
    _account(Login, "login", "/login NAME PASSWORD", "take your registered name"),
    _account(ChangePassword, "password", "/password OLD NEW", "change your password"),
    _account(Pass, "pass", ""),  # the server password, sent before anything else: no help
    _cmd(
        Away,
        "away",
        "/away [MESSAGE]",
        "mark yourself away (shown by /who and to private",
        "messages); /away alone: back",
        plain=away,
        json=json_away,
    ),
    _cmd(
        Notify,
        "notify",
        "/notify [ROOM] [HOW]",
        "HOW lines in ROOM alert you: all, mentions",
        "(the default) or none; alone: show it",
        plain=plain_notify,
        json=json_notify,
    ),
    _cmd(
        Mentions,
        "mentions",
        "/mentions",
        "lines that named you since you were last here",
        "(registered names)",
        plain=_MENTIONS_PLAIN,
        json=_MENTIONS_JSON,
    ),
    _cmd(Help, "help", "/help", "this list", plain=_HELP_PLAIN, json=_HELP_JSON),
    _row(
        Quit,
        "quit",
        "/quit",
        "leave",
        verbs=("quit",),
        json_type=("quit",),
        plain=_QUIT_PLAIN,
        json=_QUIT_JSON,
        crosses_cluster=True,
    ),
    _mod(Kick, "kick", "/kick NAME [REASON]", "disconnect NAME (they may come back)"),
    _mod(
        Ban,
        "ban",
        "/ban TARGET [TIME] [REASON]",
        "ban a NAME or ADDRESS[/PREFIX]; TIME 10m, 2h, 7d",
        "(no TIME: until lifted)",
    ),
    _mod(Unban, "unban", "/unban TARGET", "lift a ban"),
    _mod(Bans, "bans", "/bans", "list the bans"),
    _mod(Mute, "mute", "/mute NAME [TIME]", "NAME can read but not speak"),
    _mod(Unmute, "unmute", "/unmute NAME", "NAME may speak again"),
    _mod(Op, "op", "/op NAME", "make the account NAME an operator"),
    _mod(Deop, "deop", "/deop NAME", "NAME is no longer an operator"),
    _mod(Drop, "drop", "/drop NAME", "delete the account NAME"),
    _mod(
        LockTopic,
        "locktopic",
        "/locktopic [ROOM]",
        "only operators may set ROOM's topic",
        json="topic-lock",
    ),
    _mod(
        LockTopic,
        "unlocktopic",
        "/unlocktopic [ROOM]",
        "anyone in ROOM may set its topic again",
        json="topic-lock",
    ),
    _row(
        DropRoom,
        "moderation",
        "/droproom ROOM",
        "move everyone out of ROOM; delete it and its history",
        verbs=("droproom",),
        json_type=("droproom",),
        plain=plain_droproom,
        json=json_droproom,
        operator=True,
        crosses_cluster=True,
    ),
    _row(Hello, "hello_again", "", json_type=("hello",), json=json_hello),
    _row(Invalid, "invalid", ""),
    # Made by the IRC protocol only (triochat.core.protocols.irc): no verb, no JSON type.
    _row(RoomKick, "room_kick", "", crosses_cluster=True),
    _row(IrcAsk, "irc", ""),
    _row(IrcSay, "say", "", crosses_cluster=True),
    _row(IrcHello, "hello_again", ""),
    _row(Several, "several", ""),
)

PLAIN: Final[dict[str, PlainParser]] = {
    verb: spec.plain for spec in COMMANDS if spec.plain is not None for verb in spec.verbs
}
JSON: Final[dict[str, JsonParser]] = {
    kind: spec.json for spec in COMMANDS if spec.json is not None for kind in spec.json_type
}
_HANDLERS: Final[dict[type, str]] = {
    kind: spec.handler for spec in COMMANDS for kind in spec.command
}


def handler_for(command: Command) -> str:
    """The name of the chat state's handler for ``command`` (from its row)."""
    return _HANDLERS[type(command)]


def _help(operator: bool, width: int) -> tuple[str, ...]:
    lines: list[str] = []
    for spec in COMMANDS:
        if spec.usage and spec.operator == operator:
            first, *rest = spec.help
            lines.append(f"  {spec.usage:<{width}} {first}")
            lines.extend(f"  {'':<{width}} {more}" for more in rest)
    return tuple(lines)


HELP_LINES: Final[tuple[str, ...]] = ("commands:", *_help(False, 20))
OPERATOR_HELP_LINES: Final[tuple[str, ...]] = (
    "operator commands (you are an operator):",
    *_help(True, 27),
)
