"""What the user typed, as the JSON request to send. No I/O, no trio.

Typed lines use the plain-mode syntax (``/me waves``, ``/join #dev``); the parsing is
the server's own (:func:`triochat.core.commands.parse_plain`), so a command means the
same on ``nc`` and in the client, room names included (``Dev`` is ``#dev``). What the
client adds is the room: chat, ``/who``, ``/part``, ``/topic`` and ``/history`` name
the client's current room explicitly, so a line typed just before a ``current``
change on the server cannot land in the wrong room; and ``/history`` asks for the
lines before the oldest one shown, so asking again pages further back.
"""

from __future__ import annotations

import re
from typing import Any, Final, assert_never

from triochat.client.rooms import ClientRooms
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
from triochat.core.commands import (
    Away,
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
    parse_plain,
)

__all__ = ["Typed", "request_for"]

Typed = dict[str, Any] | Invalid | Quit | None  # a request, a local error, leave, or nothing
HISTORY_MORE: Final = re.compile(r"\s*/history\s+more\s*", re.IGNORECASE)  # client-side paging


def _history_more(rooms: ClientRooms) -> dict[str, Any]:
    """``/history more``: the page before the oldest line ``/history`` showed."""
    room = rooms.current
    request: dict[str, Any] = {"type": "history", **({"room": room} if room else {})}
    if limit := rooms.page_limit(room):
        request["limit"] = limit
    before = rooms.history_before(room)
    if before is not None:
        request["before"] = before
    return request


def _search(typed: str, room: str | None, sender: str | None, before: int | None) -> Typed:
    """``/search``: its words without the filters, which become fields."""
    said = [w for w in typed.split() if w.partition(":")[0].lower() not in ("in", "from")]
    request: dict[str, Any] = {"type": "search", "text": " ".join(said)}
    if room is not None and room.startswith("@"):  # in:@NAME: one private conversation
        request["with"] = room[1:]
    elif room is not None:
        request["room"] = room
    if sender is not None:
        request["from"] = sender
    if before is not None:
        request["before"] = before
    return request


def request_for(line: str, rooms: ClientRooms) -> Typed:
    """Translate one typed line into the request to send (or why not, or Quit)."""
    if HISTORY_MORE.fullmatch(line):
        return _history_more(rooms)
    command = parse_plain(line)
    if command is None or isinstance(command, Invalid | Quit):
        return command

    def here(room: str | None) -> dict[str, Any]:
        """The room field: the one typed, else the client's current room."""
        room = room or rooms.current
        return {"room": room} if room else {}

    match command:
        case Say(text=text, room=room):
            return {"type": "say", "text": text, **here(room)}
        case Me(text=text, room=room):
            return {"type": "me", "text": text, **here(room)}
        case Nick(name=name):
            return {"type": "nick", "name": name}
        case Msg(to=to, text=text):
            return {"type": "msg", "to": to, "text": text}
        case Who(room=room):
            return {"type": "who", **here(room)}
        case Away(text=text):
            return {"type": "away", "text": text}
        case Help():
            return {"type": "help"}
        case Notify(room=room, level=level):
            return {"type": "notify", **here(room), **({} if level is None else {"level": level})}
        case Mentions():
            return {"type": "mentions"}
        case Join(room=room):
            return {"type": "join", "room": room}
        case Part(room=room):
            return {"type": "part", **here(room)}
        case Rooms():
            return {"type": "rooms"}
        case Topic(text=text, room=room):
            return {"type": "topic", **here(room), **({} if text is None else {"text": text})}
        case History(limit=limit, before=before, peer=peer) if peer is not None:
            return {"type": "history", "with": peer, "limit": limit}
        case History(room=room, limit=limit, before=before, around=around):
            request: dict[str, Any] = {"type": "history", **here(room), "limit": limit}
            if before is not None:
                request["before"] = before
            if around is not None:
                request["around"] = around
            return request
        case Search(text=typed, room=room, sender=sender, before=before):
            return _search(typed, room, sender, before)
        case Hello() | RoomKick() | IrcAsk() | IrcSay() | IrcHello() | Several():
            # parse_plain never makes these: registration is not typed; the rest is IRC's
            return Invalid("unknown-command", "that cannot be typed here; type /help")
        case Register(password=password):
            return {"type": "register", "password": password}
        case Login(name=name, password=password):
            return {"type": "login", "name": name, "password": password}
        case ChangePassword(old=old, new=new):
            return {"type": "password", "old": old, "new": new}
        case Pass():
            return Invalid("bad-request", "/pass is only for the first line of a connection")
        case Op(name=name) | Deop(name=name) | Unmute(name=name) | Drop(name=name):
            return {"type": type(command).__name__.lower(), "name": name}
        case Kick(name=name, reason=reason):
            return {"type": "kick", "name": name, "reason": reason}
        case Ban(target=target, duration=duration, reason=reason):
            ban: dict[str, Any] = {"type": "ban", "target": target, "reason": reason}
            if duration is not None:
                ban["duration"] = f"{round(duration)}s"
            return ban
        case Unban(target=target):
            return {"type": "unban", "target": target}
        case Bans():
            return {"type": "bans"}
        case Mute(name=name, duration=duration):
            mute: dict[str, Any] = {"type": "mute", "name": name}
            if duration is not None:
                mute["duration"] = f"{round(duration)}s"
            return mute
        case DropRoom(room=room):
            return {"type": "droproom", "room": room}
        case LockTopic(locked=locked, room=room):
            return {"type": "topic-lock", "locked": locked, **here(room)}
        case _:
            assert_never(command)
