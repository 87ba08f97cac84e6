"""Join playback for IRC clients that do not ask for history themselves. No I/O.

Native members get a room's last ``--history`` lines when they join it. An IRC client
that negotiated ``draft/chathistory`` asks with ``CHATHISTORY`` when it wants them
(:mod:`triochat.core.ircchathistory`), so it gets nothing on ``JOIN``; one that did not
(irssi, ii, most bots) gets them after the channel's ``NAMES``, as the ``PRIVMSG`` s
they were, framed by two ``NOTICE`` s from the server (``last N messages`` and ``end of
history``). With ``server-time`` each line carries its time tag (clients show it as the
line's time); without it the text starts with ``[HH:MM]`` (the server's local time,
as plain members see it).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import replace

from triochat.core.events import Acted, Said
from triochat.core.model import CachedLine, Member
from triochat.core.protocols.ircevents import encode_irc
from triochat.core.protocols.irclines import line
from triochat.core.protocols.ircsession import CHATHISTORY, MESSAGE_TAGS, SERVER_TIME
from triochat.core.records import chat_event

__all__ = ["join_playback"]


def join_playback(
    member: Member, room: str, cached: Iterable[CachedLine], limit: int, server: str
) -> list[bytes]:
    """The last ``limit`` of ``cached`` (a room's recent lines) for ``member`` joining."""
    caps = member.irc.caps if member.irc is not None else frozenset()
    if limit <= 0 or CHATHISTORY in caps:
        return []
    entries = list(cached)[-limit:]
    if not entries:
        return []
    stamp, tags = SERVER_TIME in caps, MESSAGE_TAGS in caps
    count = len(entries)
    head = "last message" if count == 1 else f"last {count} messages"
    out = [line(server, "NOTICE", room, f"{head} of {room}:").encode()]
    for entry in entries:
        event: Said | Acted = chat_event(entry.record)
        if not stamp:
            clock = time.strftime("%H:%M", time.localtime(event.ts))
            event = replace(event, text=f"[{clock}] {event.text}")
        out.append(encode_irc(event, server, member.name, stamp, tags).encode())
    out.append(line(server, "NOTICE", room, f"end of history of {room}").encode())
    return out
