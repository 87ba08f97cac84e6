"""triochat's events as IRC lines: one function, one ``case`` per event. No I/O.

Every member, whatever mode it connected in, has the source ``name!name@SERVER``; a
server notice is a ``NOTICE`` from the server's name; an error is the numeric IRC
uses for it (:data:`ERROR_NUMERICS`), or a ``NOTICE`` when IRC has none.
"""

from __future__ import annotations

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
from triochat.core.names import MAX_NAME_CHARS, MAX_ROOM_CHARS
from triochat.core.protocols.irclines import line, numeric, source, time_tag
from triochat.core.protocols.ircsession import CHATHISTORY_LIMIT, PRIVATE_MSGID
from triochat.core.wording import account_text, moderation_text, notify_lines, search_lines

__all__ = ["ERROR_NUMERICS", "INVALID_UTF8", "ISUPPORT", "KICKED", "encode_irc", "welcome_lines"]

ISUPPORT: Final = (
    "CASEMAPPING=ascii",
    "CHANTYPES=#",
    "PREFIX=(ov)@+",  # no one is ever voiced; clients expect the pair
    f"NICKLEN={MAX_NAME_CHARS}",
    f"CHANNELLEN={MAX_ROOM_CHARS + 1}",
    "CHANMODES=,,,",
    "NETWORK=triochat",
    "UTF8ONLY",
    f"CHATHISTORY={CHATHISTORY_LIMIT}",  # draft/chathistory: lines per request
    "MSGREFTYPES=msgid,timestamp",
)
INVALID_UTF8: Final = "invalid-utf8"  # an error code the reader gives (UTF8ONLY)

# triochat's error codes that IRC has a numeric for (the rest are NOTICEs).
ERROR_NUMERICS: Final[dict[str, str]] = {
    "unknown-command": "421",
    "name-taken": "433",
    "name-registered": "433",
    "bad-name": "432",
    "muted": "404",
    "topic-locked": "482",
    "not-operator": "481",
    "too-many-rooms": "405",
}

_ORDINARY_LEAVES: Final = frozenset({"quit", "closed"})


def welcome_lines(server: str, nick: str) -> str:
    """001-005 and 422 (no MOTD): what a client waits for to call itself registered."""
    out = [
        numeric(server, "001", nick, f"Welcome to the triochat IRC network, {nick}"),
        numeric(server, "002", nick, f"Your host is {server}, running triochat"),
        numeric(server, "003", nick, "This server was created for chatting"),
        numeric(server, "004", nick, server, "triochat", "i", "o", "o"),
        numeric(server, "005", nick, *ISUPPORT, "are supported by this server"),
        numeric(server, "422", nick, "MOTD File is missing"),
    ]
    return "".join(out)


def encode_irc(event: Event, server: str, nick: str, stamp: bool, tags: bool) -> str:
    """``event`` as IRC line(s) for ``nick`` (``*``: a fan-out, for many).

    ``stamp``: the reader asked for server-time; ``tags``: for message-tags.
    """
    tag = time_tag(event.ts) if stamp else ""
    match event:
        case Said(room=room, id=msg_id, sender=sender, text=text, notice=notice):
            if tags:
                extra = f"msgid={room[1:]}-{msg_id}" + (f";{event.tags}" if event.tags else "")
                tag = f"{tag};{extra}" if tag else extra
            verb = "NOTICE" if notice else "PRIVMSG"
            return line(source(sender, server), verb, room, text, tags=tag)
        case Acted(room=room, id=msg_id, sender=sender, text=text):
            if tags:
                tag = f"{tag};msgid={room[1:]}-{msg_id}" if tag else f"msgid={room[1:]}-{msg_id}"
            action = f"\x01ACTION {text}\x01"
            return line(source(sender, server), "PRIVMSG", room, action, tags=tag)
        case Private(sender=sender, to=to, text=text, id=msg_id):
            if tags and msg_id:  # stored (both ends logged in): CHATHISTORY finds it by this
                extra = f"msgid={PRIVATE_MSGID}-{msg_id}"
                tag = f"{tag};{extra}" if tag else extra
            return line(source(sender, server), "PRIVMSG", to, text, tags=tag)
        case Joined(room=room, name=name):
            return line(source(name, server), "JOIN", room, tags=tag)
        case Left(room=room, name=name, reason=reason):
            who = source(name, server)
            if reason == "part":
                return line(who, "PART", room, tags=tag)
            if reason.startswith("part: "):
                return line(who, "PART", room, reason[6:], tags=tag)
            if reason.startswith(KICKED):
                _, _, rest = reason.partition(" by ")
                by, _, why = rest.partition(": ")
                return line(source(by, server), "KICK", room, name, why or by, tags=tag)
            return line(who, "QUIT", "Quit" if reason in _ORDINARY_LEAVES else reason, tags=tag)
        case Renamed(old=old, new=new):
            return line(source(old, server), "NICK", new, tags=tag)
        case TopicInfo(room=room, topic=topic, by=by, changed=changed, ts=ts):
            if changed:
                return line(source(by, server), "TOPIC", room, topic, tags=tag)
            if not topic:
                return numeric(server, "331", nick, room, "No topic is set")
            return numeric(server, "332", nick, room, topic) + numeric(
                server, "333", nick, room, by or server, str(int(ts))
            )
        case Welcome(name=name):
            return welcome_lines(server, name)
        case Away(name=name, text=text):
            if name != nick:
                return numeric(server, "301", nick, name, text)
            if text:
                return numeric(server, "306", nick, "You have been marked as being away")
            return numeric(server, "305", nick, "You are no longer marked as being away")
        case ErrorEvent(code=code, text=text):
            if code == INVALID_UTF8:
                return line(server, "FAIL", "*", "INVALID_UTF8", text)
            if code == "line-too-long":  # ERR_INPUTTOOLONG (the line was dropped)
                return numeric(server, "417", nick, text)
            if code == "server-password":  # refused before joining: the link closes
                return numeric(server, "464", nick, text) + line("", "ERROR", text)
            found = ERROR_NUMERICS.get(code)
            if found is not None:
                return numeric(server, found, nick, "*", text)
            return line(server, "NOTICE", nick, text)
        case RoomList(rooms=rooms):
            out = [numeric(server, "321", nick, "Channel", "Users  Name")]
            for info in rooms:
                out.append(numeric(server, "322", nick, info.room, str(info.online), info.topic))
            out.append(numeric(server, "323", nick, "End of /LIST"))
            return "".join(out)
        case WhoList(room=room, names=names):
            return line(server, "NOTICE", nick, f"{room}: {', '.join(names)}")
        case Presence(room=room, joined=joined, left=left, online=online):
            text = f"{joined} joined, {left} left ({online} online)"
            return line(server, "NOTICE", room, text, tags=tag)
        case HelpText(lines=lines):
            return "".join(line(server, "NOTICE", nick, text) for text in lines)
        case Notice(text=text) | ShuttingDown(text=text):
            return line(server, "NOTICE", nick, text, tags=tag)
        case Moderated():
            return line(server, "NOTICE", nick, moderation_text(event, None), tags=tag)
        case AccountInfo(action=action, name=name):
            told = line(server, "NOTICE", nick, account_text(action, name))
            if action in ("logged-in", "registered"):
                told += numeric(
                    server,
                    "900",
                    nick,
                    source(name, server),
                    name,
                    f"You are now logged in as {name}",
                )
            return told
        case BanList(bans=bans):
            rows = [f"bans ({len(bans)}):"] + [f"  {ban.target} (by {ban.by})" for ban in bans]
            return "".join(line(server, "NOTICE", nick, row) for row in rows)
        case Gap(room=room, skipped=skipped):
            return line(server, "NOTICE", nick, f"{room}: {skipped} older messages were skipped")
        case Ping():
            return line("", "PING", server)
        case SearchResults():
            return "".join(line(server, "NOTICE", nick, row) for row in search_lines(event))
        case Current() | HistoryEnd():
            return ""
        case NotifyInfo() | MentionList():
            return "".join(line(server, "NOTICE", nick, row) for row in notify_lines(event))
        case _:
            assert_never(event)
