"""The server's words for events, shared by both wire modes. No I/O.

The plain codec (:mod:`triochat.core.codec`) puts these sentences on the wire as they
are; the JSON codec (:mod:`triochat.core.jsonwire`) adds them as a ``text`` field
next to the structured fields (so a simple JSON client can just print ``text``).
Keeping them here, below both codecs, is what lets each codec import them without
importing the other.
"""

from __future__ import annotations

import time

from triochat.core.durations import format_duration
from triochat.core.events import MentionList, Moderated, NotifyInfo, SearchResults

__all__ = ["account_text", "away_text", "moderation_text", "search_lines", "welcome_text"]


def welcome_text(name: str, online: int) -> str:
    """The human-readable welcome, shared by both codecs."""
    return f"welcome, {name}! {online} online. Type /help for commands."


def away_text(name: str, text: str, viewer: str | None) -> str:
    """How an :class:`~triochat.core.events.Away` event reads: to its subject, or to
    someone messaging them."""
    if viewer == name:
        return f"you are marked away: {text}" if text else "you are back (no longer away)"
    return f"{name} is away: {text}" if text else f"{name} is back"


def account_text(action: str, name: str) -> str:
    """An :class:`~triochat.core.events.AccountInfo` event in words."""
    if action == "registered":
        return f"the name {name} is registered to you; next time, /login {name} PASSWORD"
    if action == "logged-in":
        return f"you are logged in as {name}"
    if action == "password-changed":
        return f"the password of {name} was changed"
    return f"account {name}: {action}"


def search_lines(event: SearchResults) -> list[str]:
    """``/search`` results as lines for a person (times in the server's local time)."""
    if not event.hits:
        return [f'search "{event.query}": nothing found']
    count = f"{len(event.hits)}{'+' if event.more else ''}"
    lines = [f'search "{event.query}": {count} found, newest first']
    for hit in event.hits:
        said = f"* {hit.sender} {hit.text}" if hit.kind == "me" else f"<{hit.sender}> {hit.text}"
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(hit.ts))
        lines.append(f"  {hit.room} {hit.id} [{when}] {said}")
    if event.more:
        lines.append(f"more: /search before:{event.more} {event.query}")
    lines.append("/history ROOM around ID shows a line in its place")
    return lines


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
        case "drop-room":
            return f"{by} dropped the room {target} and its history"
        case action:
            return f"{by}: {action} {target}{why}"


NOTIFY_MEANS: dict[str, str] = {
    "all": "every line alerts you",
    "mentions": "only lines that name you alert you",
    "none": "nothing alerts you: muted",
}


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def notify_lines(event: NotifyInfo | MentionList) -> list[str]:
    """The sentences of a ``/notify`` answer or a ``/mentions`` list, one per line."""
    if isinstance(event, NotifyInfo):
        means = NOTIFY_MEANS.get(event.level, "")
        return [f"notifications in {event.room}: {event.level}" + (f" ({means})" if means else "")]
    since = f" since {_utc(event.since)}" if event.since else ""
    if not event.mentions:
        return [f"no mentions of you{since}"]
    lines = [f"mentions of you{since} ({len(event.mentions)}, newest first):"]
    for m in event.mentions:
        lines.append(f"  {m.room} [{_utc(m.ts)}] <{m.sender}> {m.text}")
    return lines
