"""How the client words and styles each server event: events in, ``rich.text.Text`` out.

A pure module: :func:`render_event` looks the event's class up in :data:`RENDERERS`
(one row per event type; a test checks that every type has one) and returns the
styled line; :class:`~triochat.client.view.ChatView` prints it.

Text from other people (and every string the server sends) is untrusted: the event is
sanitised as a whole before any renderer sees it, and strings only ever go into
``Text`` pieces: never parsed as markup, never emoji-expanded, never highlighted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import time
import zlib
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime, tzinfo
from typing import Any, Final, TypeVar

from rich.cells import cell_len
from rich.text import Text

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
from triochat.core.hygiene import sanitise
from triochat.core.mentions import is_mention, mention_spans
from triochat.core.wording import account_text, moderation_text, notify_lines, welcome_text

__all__ = [
    "CLIENT_HELP",
    "HISTORY_END",
    "NAME_COLOURS",
    "RENDERERS",
    "clean",
    "clock",
    "help_rows",
    "is_mention",
    "name_colour",
    "render_event",
]

# Readable on dark and light backgrounds; red is kept for errors, dim for notices.
NAME_COLOURS: Final = (
    "cyan",
    "green",
    "yellow",
    "blue",
    "magenta",
    "bright_cyan",
    "bright_green",
    "bright_blue",
    "bright_magenta",
    "dark_orange",
    "deep_sky_blue1",
    "spring_green2",
    "orchid",
    "gold3",
)
# Only notices and replayed history are dim; a live line keeps the terminal's own
# foreground (full contrast on dark and light themes alike). The stamp is dim on its own
# span, never as the base style of the line (a base style would dim the whole line).
STYLE_TIME: Final = "dim"
STYLE_NOTICE: Final = "dim"  # joins, leaves, renames, presence
STYLE_OWN: Final = "bold"  # your own lines: bold, not a background band (a dark band
# on a light theme made them near-unreadable)
STYLE_MENTION: Final = "bold black on yellow"  # your name in someone's live line: both
# colours are fixed, so it reads the same on dark and light themes
STYLE_ME_ACTION: Final = "italic"
STYLE_PRIVATE: Final = "bold magenta"
STYLE_ERROR: Final = "bold red"
STYLE_SHUTDOWN: Final = "bold yellow"
STYLE_HISTORY: Final = "dim"
STYLE_WELCOME: Final = "bold"
STYLE_TOPIC: Final = "italic"
STYLE_AWAY: Final = "italic"  # an away message
HISTORY_END: Final = "── end of /history{more} ──"
CLIENT_HELP: Final = (
    ("/history more", "the messages before the oldest one /history showed"),
    ("exit, Ctrl-D", "leave too (Ctrl-C leaves at once)"),
    ("Tab", "complete a command or a name"),
)
MAX_HELP_USAGE: Final = 28  # characters of a usage column at most; longer ones overhang
QUIET_LEAVE_REASONS: Final = frozenset({"quit", "closed", ""})  # not worth showing
_HELP_GAP: Final = re.compile(r"(?<=\S)  +(?=\S)")  # between a usage and its text
INDENT: Final = "\n      "  # continuation lines start under the text, past "HH:MM "

T = TypeVar("T")
Rendered = tuple[Text, str]  # the line's body and a style for the whole line ("" if none)


def name_colour(name: str) -> str:
    """A colour for ``name`` that is the same in every session and on every machine."""
    return NAME_COLOURS[zlib.crc32(name.casefold().encode()) % len(NAME_COLOURS)]


def help_rows(lines: tuple[str, ...]) -> list[tuple[str, str] | str]:
    """The server's help lines as rows: (usage, what it does), or a heading string.

    The server pads the usage column of each section to its own width; the client lays
    the columns out again so that every section (and the client's own rows) lines up.
    A section's text column is where most of its lines have a gap of two spaces or more.
    """
    rows: list[tuple[str, str] | str] = []
    section: list[str] = []

    def flush() -> None:
        gaps = Counter(m.end() for line in section if (m := _HELP_GAP.search(line)))
        column = gaps.most_common(1)[0][0] if gaps else 0
        for line in section:
            if column and len(line) > column and line[column - 1] == " ":
                rows.append((line[:column].strip(), line[column:].strip()))
            else:
                rows.append(line)
        section.clear()

    for line in lines:
        if line.startswith(" "):
            section.append(line)
            continue
        flush()
        rows.append(line)
    flush()
    return rows


def clean(value: T) -> T:
    """``value`` (an event, a row of one, a tuple, a string) with every string sanitised."""
    if isinstance(value, str):
        return sanitise(value)  # type: ignore[return-value]
    if isinstance(value, tuple):
        return tuple(clean(item) for item in value)  # type: ignore[return-value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: clean(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return dataclasses.replace(value, **changes)
    return value


def clock(ts: object, tz: tzinfo | None = None) -> str:
    """Format the server's timestamp (Unix seconds) as ``HH:MM`` in local time."""
    seconds = ts if isinstance(ts, int | float) and not isinstance(ts, bool) else time.time()
    try:
        return datetime.fromtimestamp(seconds, tz).strftime("%H:%M")
    except (OverflowError, OSError, ValueError):
        return "--:--"


def _name(name: str, *, bold: bool = True) -> Text:
    return Text(name, style=f"bold {name_colour(name)}" if bold else name_colour(name))


def _is_me(name: str, me: str) -> bool:
    return name.casefold() == me.casefold()


# --------------------------------------------------------------------------------------
# One renderer per event type: (event, me) -> (body, line style), or None: not shown


def _chat(event: Said | Acted, me: str) -> Rendered:
    body = Text()
    if isinstance(event, Said):
        body.append("<").append(_name(event.sender)).append("> ").append(event.text)
    else:
        body.append("* ").append(_name(event.sender)).append(" ").append(event.text)
        body.stylize(STYLE_ME_ACTION)
    if _is_me(event.sender, me):
        body.stylize(STYLE_OWN)
    elif not event.history:
        offset = len(body) - len(event.text)
        for start, end in mention_spans(event.text, me):
            body.stylize(STYLE_MENTION, offset + start, offset + end)
    return body, STYLE_HISTORY if event.history else ""


def _private(event: Private, me: str) -> Rendered:
    body = Text()
    if _is_me(event.sender, me):
        body.append("you → *", style=STYLE_PRIVATE).append(_name(event.to))
        body.append("*: ", style=STYLE_PRIVATE)
    else:
        body.append("*", style=STYLE_PRIVATE).append(_name(event.sender))
        body.append("* → you: ", style=STYLE_PRIVATE)
    return body.append(event.text, style="bold"), STYLE_HISTORY if event.history else ""


def _joined(event: Joined, me: str) -> Rendered:
    online = f" ({event.online} online)"
    if _is_me(event.name, me) and event.room:
        return Text(f"→ you joined {event.room}{online}"), STYLE_NOTICE
    body = Text("→ ").append(_name(event.name, bold=False)).append(" joined" + online)
    return body, STYLE_NOTICE


def _left(event: Left, me: str) -> Rendered:
    if _is_me(event.name, me) and event.room:
        if event.reason.startswith(KICKED):  # "kicked from #room by NAME: why"
            return Text(f"← you were {event.reason}"), STYLE_NOTICE
        return Text(f"← you left {event.room}"), STYLE_NOTICE
    why = "" if event.reason in QUIET_LEAVE_REASONS else f": {event.reason}"
    body = Text("← ").append(_name(event.name, bold=False)).append(f" left{why}")
    return body.append(f" ({event.online} online)"), STYLE_NOTICE


def _current(event: Current, me: str) -> Rendered:
    return Text(f"now in {event.room or '?'}"), STYLE_NOTICE


def _topic(event: TopicInfo, me: str) -> Rendered:
    body = Text()
    if event.changed:
        body.append(_name(event.by, bold=False))
        if event.topic:
            body.append(" set the topic: ").append(event.topic, style=STYLE_TOPIC)
        else:
            body.append(" cleared the topic")
    elif event.topic:
        body.append("topic: ").append(event.topic, style=STYLE_TOPIC)
        if event.by:
            body.append(" (set by ").append(_name(event.by, bold=False)).append(")")
    else:
        body.append("no topic")
    return body, STYLE_NOTICE


def _rooms(event: RoomList, me: str) -> Rendered:
    """The answer to /rooms: one room per line with its count and topic."""
    out = Text(f"rooms ({len(event.rooms)}):")
    room_width = max((cell_len(row.room) for row in event.rooms), default=0)
    count_width = max((len(str(row.online)) for row in event.rooms), default=0)
    for row in event.rooms:
        pad = " " * (room_width - cell_len(row.room))
        out.append(INDENT).append(row.room, style=f"bold {name_colour(row.room)}")
        out.append(f"{pad}  {row.online:>{count_width}} online")
        if row.topic:
            out.append("  ").append(row.topic, style=STYLE_TOPIC)
    return out, ""


def _search(event: SearchResults, me: str) -> Rendered:
    """The answer to /search: a table of hits (room, id, date and time, sender, text)."""
    if not event.hits:
        return Text(f'search "{event.query}": nothing found'), STYLE_NOTICE
    count = f"{len(event.hits)}{'+' if event.more else ''}"
    out = Text(f'search "{event.query}": {count} found, newest first')
    room_width = max(cell_len(hit.room) for hit in event.hits)
    id_width = max(len(str(hit.id)) for hit in event.hits)
    for hit in event.hits:
        pad = " " * (room_width - cell_len(hit.room))
        out.append(INDENT).append(hit.room, style=f"bold {name_colour(hit.room)}")
        when = clock(hit.ts)
        with contextlib.suppress(OverflowError, OSError, ValueError):
            when = datetime.fromtimestamp(hit.ts).strftime("%Y-%m-%d %H:%M")
        out.append(f"{pad} {hit.id:>{id_width}} ", style=STYLE_TIME)
        out.append(when, style=STYLE_TIME).append("  ")
        out.append(_name(hit.sender, bold=False))
        out.append(f" {hit.text}", style=STYLE_ME_ACTION if hit.kind == "me" else "")
    if event.more:
        out.append(INDENT + f"more: /search before:{event.more} {event.query}", style=STYLE_TIME)
    out.append(INDENT + "/history ROOM around ID shows a line in its place", style=STYLE_TIME)
    return out, ""


def _gap(event: Gap, me: str) -> Rendered:
    text = f"! {event.skipped} earlier messages were not replayed (/history shows older ones)"
    return Text(text, style=STYLE_SHUTDOWN), ""


def _history_end(event: HistoryEnd, me: str) -> Rendered:
    more = " (more: /history more)" if event.more else ""
    return Text(HISTORY_END.format(more=more), style=STYLE_HISTORY), ""


def _renamed(event: Renamed, me: str) -> Rendered:
    if _is_me(event.new, me) or _is_me(event.old, me):
        return Text("you are now known as ").append(_name(event.new, bold=False)), STYLE_NOTICE
    body = Text().append(_name(event.old, bold=False)).append(" is now known as ")
    return body.append(_name(event.new, bold=False)), STYLE_NOTICE


def _presence(event: Presence, me: str) -> Rendered:
    body = Text(f"{event.joined} joined")
    if event.names:
        more = ", …" if event.joined > len(event.names) else ""
        body.append(" (" + ", ".join(event.names) + more + ")")
    return body.append(f", {event.left} left ({event.online} online)"), STYLE_NOTICE


def _who(event: WhoList, me: str) -> Rendered:
    body = Text(f"online ({len(event.names)}): ")
    body.append(Text(", ").join(_name(n, bold=False) for n in event.names))
    if event.away:
        body.append("; away: ")
        gone = (
            _name(name, bold=False).append(" (").append(text, style=STYLE_AWAY).append(")")
            for name, text in event.away
        )
        body.append(Text(", ").join(gone))
    return body, ""


def _away(event: Away, me: str) -> Rendered:
    if _is_me(event.name, me):
        if event.text:
            return Text("you are marked away: ").append(event.text, style=STYLE_AWAY), STYLE_NOTICE
        return Text("you are back (no longer away)"), STYLE_NOTICE
    body = Text().append(_name(event.name, bold=False))
    if event.text:
        return body.append(" is away: ").append(event.text, style=STYLE_AWAY), STYLE_NOTICE
    return body.append(" is back"), STYLE_NOTICE


def _welcome(event: Welcome, me: str) -> Rendered:
    return Text(welcome_text(event.name, event.online), style=STYLE_WELCOME), ""


def _help(event: HelpText, me: str) -> Rendered:
    """The command list in two aligned columns, the client's own rows at the end."""
    rows = [*help_rows(event.lines), *CLIENT_HELP]
    widths = [cell_len(row[0]) for row in rows if isinstance(row, tuple)]
    width = min(max(widths, default=0), MAX_HELP_USAGE)
    out = Text()
    for number, row in enumerate(rows):
        if number:
            out.append(INDENT)
        if isinstance(row, str):
            out.append(row, style="bold" if not row.startswith(" ") else "")
            continue
        usage, text = row
        out.append("  ").append(usage, style="bold").append(
            " " * max(2, width - cell_len(usage) + 2)
        )
        out.append(text)
    return out, ""


def _error(event: ErrorEvent, me: str) -> Rendered:
    return Text("! " + event.text, style=STYLE_ERROR), ""


def _shutdown(event: ShuttingDown, me: str) -> Rendered:
    return Text("! " + event.text, style=STYLE_SHUTDOWN), ""


def _notice(event: Notice, me: str) -> Rendered:
    return Text(event.text), STYLE_NOTICE


def _account(event: AccountInfo, me: str) -> Rendered:
    return Text(account_text(event.action, event.name)), STYLE_NOTICE


def _moderated(event: Moderated, me: str) -> Rendered:
    return Text(moderation_text(event)), STYLE_NOTICE  # as the server words it for all


def _bans(event: BanList, me: str) -> Rendered:
    """The answer to /bans: one ban per line, with who set it, why and until when."""
    out = Text(f"bans ({len(event.bans)}):")
    for ban in event.bans:
        end = "until lifted"
        if ban.until is not None:
            with contextlib.suppress(OverflowError, OSError, ValueError):
                end = datetime.fromtimestamp(ban.until).strftime("until %Y-%m-%d %H:%M")
        out.append(f"{INDENT}{ban.target} {end} (by {ban.by})")
        if ban.reason:
            out.append(f": {ban.reason}")
    return out, ""


def _notify(event: NotifyInfo | MentionList, me: str) -> Rendered:
    """A room's notification level, or the /mentions list (one mention per line)."""
    first, *rest = notify_lines(event)
    out = Text(first)
    for row in rest:
        out.append(INDENT + row.strip())
    return out, ""


def _ping(event: Ping, me: str) -> None:
    return None  # answered by the session, never shown


RENDERERS: Final[Mapping[type[Any], Callable[[Any, str], Rendered | None]]] = {
    Said: _chat,
    Acted: _chat,
    Private: _private,
    Joined: _joined,
    Left: _left,
    Current: _current,
    TopicInfo: _topic,
    RoomList: _rooms,
    SearchResults: _search,
    Gap: _gap,
    HistoryEnd: _history_end,
    Renamed: _renamed,
    Presence: _presence,
    WhoList: _who,
    Away: _away,
    Welcome: _welcome,
    HelpText: _help,
    ErrorEvent: _error,
    ShuttingDown: _shutdown,
    Notice: _notice,
    AccountInfo: _account,
    Moderated: _moderated,
    BanList: _bans,
    Ping: _ping,
    NotifyInfo: _notify,
    MentionList: _notify,
}


def render_event(event: Event, me: str, tz: tzinfo | None = None, *, tag: str = "") -> Text | None:
    """One server event as a styled line (None for events that are not shown).

    Args:
        event: an event from the server (its strings are sanitised here).
        me: the user's current name, to set their own lines apart.
        tz: time zone for the ``HH:MM`` stamp (local time by default).
        tag: the room to name in front of the line (for rooms other than the current one).
    """
    renderer = RENDERERS.get(type(event))
    rendered = renderer(clean(event), me) if renderer is not None else None
    if rendered is None:
        return None
    body, line_style = rendered
    line = Text().append(clock(event.ts, tz), style=STYLE_TIME).append(" ")
    if tag:
        line.append(sanitise(tag), style=f"bold {name_colour(tag)}").append(" ")
    line.append(body)
    if line_style:
        line.style = line_style  # notices and replayed history: the whole line
    return line
