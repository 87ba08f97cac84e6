"""Wire codecs: one event in, one line of bytes out. No I/O.

The plain codec lives here; the JSON one, with the schema both ways, in
:mod:`triochat.core.jsonwire` (``encode_json`` is its encoder under the old name), and
the sentences both use in :mod:`triochat.core.wording`.

The room calls each codec once per event and wire mode in use and sends the same
bytes object to every member in that mode; only events addressed to one member
(welcome, errors, private messages, ``who``) are encoded per member.
"""

from __future__ import annotations

import enum
import time
from typing import Final, assert_never

from triochat.core.events import (
    KICKED,
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
    MentionList,
    Moderated,
    Notice,
    NotifyInfo,
    Ping,
    Presence,
    Private,
    Renamed,
    RoomList,
    Said,
    SearchResults,
    ShuttingDown,
    TopicInfo,
    Welcome,
    WhoList,
)
from triochat.core.jsonwire import encode_event
from triochat.core.wording import (
    account_text,
    away_text,
    moderation_text,
    notify_lines,
    search_lines,
    welcome_text,
)

__all__ = [
    "NOTICE",
    "Mode",
    "away_text",
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


class Mode(enum.Enum):
    """A connection's wire mode, chosen by its first line."""

    PLAIN = "plain"
    JSON = "json"
    IRC = "irc"  # chosen by the door (the IRC port), never by a first line

    # Modes key the protocol table and per-mode counters, looked up for every line;
    # Enum's own __hash__ is a Python function (hash of the name). A member is its only
    # instance and equal only to itself, so the identity hash is as good and is C.
    __hash__ = object.__hash__


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
            if viewer == name:  # a kick says who and why; other leaves were told already
                if reason.startswith(KICKED):  # "kicked from #room by NAME: why"
                    return f"{NOTICE}you were {reason}"
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
        case WhoList(room=room, names=names, away=away, ops=ops):
            shown = ", ".join(f"@{name}" if name in ops else name for name in names)
            listed = f"{NOTICE}{_about(room, current)}online ({len(names)}): {shown}"
            if away:
                gone = ", ".join(f"{name} ({text})" for name, text in away)
                listed += f"; away: {gone}"
            return listed
        case Away(name=name, text=text):
            return f"{NOTICE}{away_text(name, text, viewer)}"
        case Private(sender=sender, to=to, text=text, history=history):
            when = f"[{_clock(event.ts)}] " if history else ""
            if viewer == sender and viewer != to:
                return f"{when}-> *{to}* {text}"
            return f"{when}*{sender}* {text}"
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
            return NOTICE + account_text(action, name)
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
        case NotifyInfo() | MentionList():
            return "\n".join(NOTICE + line for line in notify_lines(event))
        case SearchResults():
            return "\n".join(NOTICE + line for line in search_lines(event))
        case _:
            assert_never(event)


def _until(until: float | None) -> str:
    """``until 2026-05-01 14:00 UTC``, or ``until lifted``."""
    if until is None:
        return "until lifted"
    return "until " + time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(until))


encode_json: Final = encode_event  # the JSON codec's name here; see triochat.core.jsonwire


def encode(
    event: Event, mode: Mode, viewer: str | None = None, current: str | None = None
) -> bytes:
    """Encode ``event`` for a member in ``mode`` (``viewer``/``current``: plain only)."""
    if mode is Mode.JSON:
        return encode_event(event)
    return encode_plain(event, viewer, current)
