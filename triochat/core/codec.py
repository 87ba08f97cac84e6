"""Wire codecs: one event in, one line of bytes out. No I/O.

The room calls each codec once per event and wire mode in use and sends the same
bytes object to every member in that mode; only events addressed to one member
(welcome, errors, private messages, ``who``) are encoded per member.
"""

from __future__ import annotations

import enum
import json
import time
from typing import Final, assert_never

from triochat.core.durations import format_duration
from triochat.core.events import (
    AccountInfo,
    Acted,
    Away,
    BanList,
    Current,
    ErrorEvent,
    Event,
    Gap,
    HelpText,
    HistoryEnd,
    Joined,
    Left,
    Moderated,
    Notice,
    Ping,
    Presence,
    Private,
    Renamed,
    RoomList,
    Said,
    ShuttingDown,
    TopicInfo,
    Welcome,
    WhoList,
)

__all__ = [
    "NOTICE",
    "Mode",
    "encode",
    "encode_json",
    "encode_plain",
    "history_header",
    "moderation_text",
    "welcome_text",
]

# Plain mode: every line the server says on its own account starts with NOTICE, and no
# line a member causes can: chat is "<name> text", an action "* name text", a private
# message "*name* text" or "-> *name* text", and names cannot contain "*" or spaces.
# So "* server is shutting down" (a member named "server" doing /me) can never be
# mistaken for "*** server is shutting down". IRC clients use the same convention.
NOTICE: Final = "*** "

# Leave reasons that need no explanation in a plain-mode notice.
_ORDINARY_LEAVES: Final = frozenset({"quit", "closed", "part"})
_dumps: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class Mode(enum.Enum):
    """A connection's wire mode, chosen by its first line."""

    PLAIN = "plain"
    JSON = "json"


def welcome_text(name: str, online: int) -> str:
    """The human-readable welcome, shared by both codecs."""
    return f"welcome, {name}! {online} online. Type /help for commands."


def history_header(count: int, room: str | None = None) -> bytes:
    """The plain-mode line announcing a history replay (JSON events carry ``history``).

    ``room`` is named when given (a replay of a room that is not the current one).
    """
    where = f" in {room}" if room else ""
    if count == 1:
        return f"{NOTICE}last message{where}:\n".encode()
    return f"{NOTICE}last {count} messages{where}:\n".encode()


def _clock(ts: float) -> str:
    return time.strftime("%H:%M", time.localtime(ts))


def encode_plain(event: Event, viewer: str | None = None, current: str | None = None) -> bytes:
    """Encode ``event`` as human-readable line(s) for netcat/telnet users.

    ``viewer`` is the name of the member the line is for; it only matters for events
    that read differently to their subject (a private message, one's own rename or
    join). ``current`` is the viewer's current room: a line about another room is
    prefixed with that room's name (``#dev <bob> hi``, ``*** #dev: bob joined``); with
    ``current`` None no line is prefixed.
    """
    match event:
        case Said(room=room, sender=sender, text=text, history=history):
            line = f"<{sender}> {text}"
        case Acted(room=room, sender=sender, text=text, history=history):
            line = f"* {sender} {text}"
        case _:
            return (_plain_notice(event, viewer, current) + "\n").encode()
    if current is not None and room != current:
        line = f"{room} {line}"
    if history:
        line = f"[{_clock(event.ts)}] {line}"
    return (line + "\n").encode()


def _about(room: str, current: str | None) -> str:
    """The prefix of a notice about ``room``: nothing if it is the current room."""
    return "" if current is None or room == current else f"{room}: "


def _plain_notice(event: Event, viewer: str | None, current: str | None) -> str:
    match event:
        case Welcome(name=name, online=online):
            return NOTICE + welcome_text(name, online)
        case Joined(room=room, name=name, online=online):
            if viewer == name:
                return f"{NOTICE}you joined {room} ({online} online)"
            return f"{NOTICE}{_about(room, current)}{name} joined ({online} online)"
        case Left(room=room, name=name, online=online, reason=reason):
            if viewer == name:
                return f"{NOTICE}you left {room}"
            why = "" if reason in _ORDINARY_LEAVES else f": {reason}"
            return f"{NOTICE}{_about(room, current)}{name} left{why} ({online} online)"
        case Presence(room=room, joined=joined, left=left, online=online):
            parts = [f"{joined} joined"] if joined else []
            parts += [f"{left} left"] if left else []
            summary = ", ".join(parts) or "no change"
            return f"{NOTICE}{_about(room, current)}{summary} ({online} online)"
        case Renamed(old=old, new=new):
            if viewer == new:
                return f"{NOTICE}you are now known as {new}"
            return f"{NOTICE}{old} is now known as {new}"
        case WhoList(room=room, names=names, away=away):
            listed = f"{NOTICE}{_about(room, current)}online ({len(names)}): {', '.join(names)}"
            if away:
                gone = ", ".join(f"{name} ({text})" for name, text in away)
                listed += f"; away: {gone}"
            return listed
        case Away(name=name, text=text):
            return f"{NOTICE}{away_text(name, text, viewer)}"
        case Private(sender=sender, to=to, text=text):
            if viewer == sender and viewer != to:
                return f"-> *{to}* {text}"
            return f"*{sender}* {text}"
        case HelpText(lines=lines):
            return "\n".join(f"{NOTICE}{line}" for line in lines)
        case ErrorEvent(text=text):
            return f"! {text}"
        case ShuttingDown(text=text) | Notice(text=text):
            return f"{NOTICE}{text}"
        case TopicInfo(room=room, topic=topic, by=by, changed=changed, locked=locked):
            about = _about(room, current)
            lock = " (locked: only operators may change it)" if locked else ""
            if changed:
                if not topic:
                    return f"{NOTICE}{about}{by} cleared the topic"
                return f"{NOTICE}{about}{by} set the topic: {topic}"
            if not topic:
                return f"{NOTICE}{about}no topic is set{lock}"
            return f"{NOTICE}{about}topic: {topic}" + (f" (set by {by})" if by else "") + lock
        case RoomList(rooms=rooms):
            rows = [f"{NOTICE}rooms ({len(rooms)}):"]
            for info in rooms:
                topic = f": {info.topic}" if info.topic else ""
                rows.append(f"{NOTICE}  {info.room} ({info.online} online){topic}")
            return "\n".join(rows)
        case Current(room=room):
            return f"{NOTICE}{room} is now your current room"
        case Gap(room=room, skipped=skipped):
            return f"{NOTICE}{_about(room, current)}{skipped} older messages were skipped"
        case HistoryEnd(room=room, count=count, more=more):
            tail = "; older ones exist" if more else ""
            return f"{NOTICE}{_about(room, current)}end of history ({count} messages{tail})"
        case Said() | Acted():  # pragma: no cover - handled by encode_plain
            raise AssertionError("chat events are encoded by encode_plain")
        case AccountInfo(action=action, name=name):
            return NOTICE + _account_text(action, name)
        case Moderated():
            return NOTICE + moderation_text(event, viewer)
        case BanList(bans=bans):
            rows = [f"{NOTICE}bans ({len(bans)}):"]
            for ban in bans:
                until = _until(ban.until)
                reason = f": {ban.reason}" if ban.reason else ""
                rows.append(f"{NOTICE}  {ban.target} {until} (by {ban.by}){reason}")
            return "\n".join(rows)
        case Ping():  # plain members are not pinged (TCP keepalive covers them)
            return f"{NOTICE}ping"
        case _:
            assert_never(event)


def away_text(name: str, text: str, viewer: str | None) -> str:
    """How an :class:`Away` event reads: to its subject, or to someone messaging them."""
    if viewer == name:
        return f"you are marked away: {text}" if text else "you are back (no longer away)"
    return f"{name} is away: {text}" if text else f"{name} is back"


def _account_text(action: str, name: str) -> str:
    if action == "registered":
        return f"the name {name} is registered to you; next time, /login {name} PASSWORD"
    if action == "logged-in":
        return f"you are logged in as {name}"
    if action == "password-changed":
        return f"the password of {name} was changed"
    return f"account {name}: {action}"


def _until(until: float | None) -> str:
    """``until 2026-05-01 14:00 UTC``, or ``until lifted``."""
    if until is None:
        return "until lifted"
    return "until " + time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(until))


def _for(event: Moderated) -> str:
    """`` for 2h`` (a ban or mute with an end), or ``""``."""
    return "" if event.until is None else f" for {format_duration(event.until - event.ts)}"


def moderation_text(event: Moderated, viewer: str | None = None) -> str:
    """A moderation notice in words, as its ``viewer`` (if named) reads it."""
    target, by = event.target, event.by
    why = f": {event.reason}" if event.reason else ""
    you = viewer is not None and viewer == target
    match event.action:
        case "kick":
            return f"you were kicked by {by}{why}" if you else f"{by} kicked {target}{why}"
        case "ban":
            if you:
                return f"you were banned by {by}{_for(event)}{why}"
            return f"{by} banned {target}{_for(event)}{why}"
        case "unban":
            return f"{by} lifted the ban on {target}"
        case "mute":
            if you:
                return f"you were muted by {by}{_for(event)}: you can read but not speak"
            return f"{by} muted {target}{_for(event)}"
        case "unmute":
            return f"{by} unmuted you: you may speak again" if you else f"{by} unmuted {target}"
        case "op":
            return f"{by} made you an operator" if you else f"{by} made {target} an operator"
        case "deop":
            if you:
                return f"{by} made you an ordinary member"
            return f"{target} is no longer an operator (by {by})"
        case "drop":
            return f"{by} deleted the account {target}"
        case "lock-topic":
            return f"{by} locked the topic of {target}: only operators may change it"
        case "unlock-topic":
            return f"{by} unlocked the topic of {target}"
        case action:
            return f"{by}: {action} {target}{why}"


def encode_json(event: Event) -> bytes:
    """Encode ``event`` as one JSON object line (``type`` and ``ts`` always present)."""
    obj: dict[str, object]
    match event:
        case Welcome(name=name, online=online, room=room):
            obj = {
                "type": "welcome",
                "name": name,
                "online": online,
                "room": room,
                "text": welcome_text(name, online),
            }
        case Joined(room=room, name=name, online=online):
            obj = {"type": "join", "room": room, "name": name, "online": online}
        case Left(room=room, name=name, online=online, reason=reason):
            obj = {"type": "leave", "room": room, "name": name, "online": online}
            obj["reason"] = reason
        case Presence(room=room, joined=joined, left=left, online=online, names=names):
            obj = {
                "type": "presence",
                "room": room,
                "joined": joined,
                "left": left,
                "online": online,
                "names": list(names),
            }
        case Said(room=room, id=id_, sender=sender, text=text, history=history):
            obj = {"type": "say", "room": room, "id": id_, "from": sender, "text": text}
            if history:
                obj["history"] = True
        case Acted(room=room, id=id_, sender=sender, text=text, history=history):
            obj = {"type": "me", "room": room, "id": id_, "from": sender, "text": text}
            if history:
                obj["history"] = True
        case Renamed(old=old, new=new):
            obj = {"type": "nick", "old": old, "new": new}
        case WhoList(room=room, names=names, away=away):
            obj = {"type": "who", "room": room, "names": list(names), "online": len(names)}
            if away:
                obj["away"] = dict(away)
        case Away(name=name, text=text):
            obj = {"type": "away", "name": name, "text": text}
        case Private(sender=sender, to=to, text=text):
            obj = {"type": "msg", "from": sender, "to": to, "text": text}
        case HelpText(lines=lines):
            obj = {"type": "help", "text": "\n".join(lines)}
        case ErrorEvent(code=code, text=text):
            obj = {"type": "error", "code": code, "text": text}
        case ShuttingDown(text=text):
            obj = {"type": "shutdown", "text": text}
        case Notice(code=code, text=text):
            obj = {"type": "notice", "code": code, "text": text}
        case TopicInfo(room=room, topic=topic, by=by, changed=changed, locked=locked):
            obj = {"type": "topic", "room": room, "topic": topic, "by": by, "changed": changed}
            if locked:
                obj["locked"] = True
        case RoomList(rooms=rooms):
            obj = {
                "type": "rooms",
                "rooms": [
                    {"room": info.room, "online": info.online, "topic": info.topic}
                    for info in rooms
                ],
            }
        case Current(room=room):
            obj = {"type": "current", "room": room}
        case Gap(room=room, skipped=skipped):
            obj = {"type": "gap", "room": room, "skipped": skipped}
        case HistoryEnd(room=room, count=count, more=more):
            obj = {"type": "history-end", "room": room, "count": count, "more": more}
        case AccountInfo(action=action, name=name):
            obj = {"type": "account", "action": action, "name": name}
            obj["text"] = _account_text(action, name)
        case Moderated(action=action, target=target, by=by, reason=reason, until=until):
            obj = {"type": "mod", "action": action, "target": target, "by": by}
            obj.update(reason=reason, until=until, text=moderation_text(event))
        case BanList(bans=bans):
            obj = {
                "type": "bans",
                "bans": [
                    {
                        "target": ban.target,
                        "kind": ban.kind,
                        "by": ban.by,
                        "reason": ban.reason,
                        "ts": round(ban.ts, 3),
                        "until": ban.until,
                    }
                    for ban in bans
                ],
            }
        case Ping():
            obj = {"type": "ping"}
        case _:
            assert_never(event)
    obj["ts"] = round(event.ts, 3)
    return (_dumps(obj) + "\n").encode()


def encode(
    event: Event, mode: Mode, viewer: str | None = None, current: str | None = None
) -> bytes:
    """Encode ``event`` for a member in ``mode`` (``viewer``/``current``: plain only)."""
    if mode is Mode.JSON:
        return encode_json(event)
    return encode_plain(event, viewer, current)
