"""What a client asks for: the command objects, the command table and its parsers. No I/O.

Both wire modes produce the same small set of frozen command objects
(:mod:`triochat.core.commands.types`), so the room never needs to know how a request
was spelled. :mod:`triochat.core.commands.table` has one row per command, from which
parsing, ``/help`` and the chat state's dispatch are made.
"""

from __future__ import annotations

from triochat.core.commands.fields import MAX_SINCE_ROOMS, NOTHING_VISIBLE
from triochat.core.commands.parse import parse_json, parse_plain, parse_registration
from triochat.core.commands.table import (
    COMMANDS,
    HELP_LINES,
    MAX_AWAY_CHARS,
    OPERATOR_HELP_LINES,
    UNKNOWN_HINT,
    CommandSpec,
    handler_for,
)
from triochat.core.commands.types import (
    DEFAULT_HISTORY,
    MAX_HISTORY,
    NOTIFY_LEVELS,
    Away,
    ChatCommand,
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
    "DEFAULT_HISTORY",
    "HELP_LINES",
    "MAX_AWAY_CHARS",
    "MAX_HISTORY",
    "MAX_SINCE_ROOMS",
    "NOTHING_VISIBLE",
    "NOTIFY_LEVELS",
    "OPERATOR_HELP_LINES",
    "UNKNOWN_HINT",
    "Away",
    "ChatCommand",
    "Command",
    "CommandSpec",
    "Hello",
    "Help",
    "History",
    "Invalid",
    "IrcAsk",
    "IrcHello",
    "IrcSay",
    "Join",
    "Me",
    "Mentions",
    "Msg",
    "Nick",
    "Notify",
    "Part",
    "Quit",
    "RoomKick",
    "Rooms",
    "Say",
    "Search",
    "Several",
    "Topic",
    "Who",
    "handler_for",
    "parse_json",
    "parse_plain",
    "parse_registration",
]
