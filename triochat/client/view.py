"""How the client shows the room: server events in, styled ``rich.text.Text`` lines out.

Rules of this module:

* Text from other people (and every string the server sends) is untrusted. It is
  sanitised again here and only ever placed into ``Text`` pieces: never parsed as
  markup, never emoji-expanded, never highlighted. ``[bold]``, ``[link=...]`` and
  ``:smile:`` stay literal, and no escape sequence survives to move the cursor, retitle
  the terminal or clear the screen.
* :func:`render_event` is a pure function (event in, ``Text`` out) so tests can check
  the exact text and styles; :class:`ChatView` adds the little state a view needs
  (your current name, whether a history replay is running) and does the printing.
* A line from a room other than the current one starts with that room's name (the
  *tag*); which room is current is the session's business (:mod:`.rooms`), not the
  view's.
* When stdout is not a terminal, rich writes plain text with no escape codes.
"""

from __future__ import annotations

import contextlib
import json
import time
import zlib
from collections.abc import Callable, Mapping
from datetime import datetime, tzinfo
from typing import IO, Any, Final

from rich.console import Console
from rich.text import Text

from triochat.core.hygiene import sanitise

__all__ = [
    "ChatView",
    "clean_event",
    "make_console",
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
STYLE_TIME: Final = "dim"
STYLE_NOTICE: Final = "dim"  # joins, leaves, renames, presence
STYLE_OWN: Final = "on grey15"  # your own lines sit on a faint band
STYLE_ME_ACTION: Final = "italic"
STYLE_PRIVATE: Final = "bold magenta"
STYLE_ERROR: Final = "bold red"
STYLE_SHUTDOWN: Final = "bold yellow"
STYLE_HISTORY: Final = "dim"
STYLE_WELCOME: Final = "bold"
STYLE_STATUS: Final = "bold yellow"  # connection lost / reconnecting
STYLE_TOPIC: Final = "italic"
HISTORY_HEADER: Final = "── earlier messages ──"
HISTORY_FOOTER: Final = "── now ──"
HISTORY_END: Final = "── end of /history{more} ──"
CLIENT_HELP: Final = "  exit, Ctrl-D      leave too (Ctrl-C leaves at once)"
QUIET_LEAVE_REASONS: Final = frozenset({"quit", "closed", ""})  # not worth showing

Event = Mapping[str, Any]


def make_console(file: IO[str] | None = None, **options: Any) -> Console:
    """A rich Console that never interprets text: no markup, emoji codes or highlighting.

    Colour and escape codes are used only when ``file`` (stdout by default) is a
    terminal, which rich detects; ``options`` go to :class:`rich.console.Console`.
    """
    return Console(file=file, markup=False, emoji=False, highlight=False, **options)


def name_colour(name: str) -> str:
    """A colour for ``name`` that is the same in every session and on every machine."""
    return NAME_COLOURS[zlib.crc32(name.casefold().encode()) % len(NAME_COLOURS)]


def _str(event: Event, key: str, default: str = "?") -> str:
    value = event.get(key)
    return sanitise(value) if isinstance(value, str) else default


def _names(event: Event) -> list[str]:
    """The event's ``names`` list, sanitised; anything malformed is dropped."""
    names = event.get("names")
    return [sanitise(n) for n in names if isinstance(n, str)] if isinstance(names, list) else []


def _int(event: Event, key: str) -> int | None:
    value = event.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def clock(ts: object, tz: tzinfo | None = None) -> str:
    """Format the server's timestamp (Unix seconds) as ``HH:MM`` in local time."""
    seconds = ts if isinstance(ts, int | float) and not isinstance(ts, bool) else time.time()
    try:
        return datetime.fromtimestamp(seconds, tz).strftime("%H:%M")
    except (OverflowError, OSError, ValueError):
        return "--:--"


def _name(name: str, *, bold: bool = True) -> Text:
    return Text(name, style=f"bold {name_colour(name)}" if bold else name_colour(name))


def _online(event: Event) -> str:
    online = _int(event, "online")
    return f" ({online} online)" if online is not None else ""


def _is_me(name: str, me: str) -> bool:
    return name.casefold() == me.casefold()


def render_event(event: Event, me: str, tz: tzinfo | None = None, *, tag: str = "") -> Text | None:
    """One server event as a styled line (None for event types this client does not know).

    Args:
        event: a decoded JSON event from the server.
        me: the user's current name, to set their own lines apart.
        tz: time zone for the ``HH:MM`` stamp (local time by default).
        tag: the room to name in front of the line (for rooms other than the current one).
    """
    kind = event.get("type")
    room = _str(event, "room", "")
    body = Text()
    line_style = ""
    if kind in ("say", "me"):
        sender = _str(event, "from")
        mine = sender.casefold() == me.casefold()
        if kind == "say":
            body.append("<").append(_name(sender)).append("> ")
            body.append(_str(event, "text", ""))
        else:
            body.append("* ").append(_name(sender)).append(" ")
            body.append(_str(event, "text", ""))
            body.stylize(STYLE_ME_ACTION)
        if mine:
            body.stylize(STYLE_OWN)
        if event.get("history") is True:
            line_style = STYLE_HISTORY
    elif kind == "msg":
        sender, to = _str(event, "from"), _str(event, "to")
        if _is_me(sender, me):
            body.append("you → *", style=STYLE_PRIVATE).append(_name(to))
            body.append("*: ", style=STYLE_PRIVATE)
        else:
            body.append("*", style=STYLE_PRIVATE).append(_name(sender))
            body.append("* → you: ", style=STYLE_PRIVATE)
        body.append(_str(event, "text", ""), style="bold")
    elif kind == "join":
        name = _str(event, "name")
        if _is_me(name, me) and room:
            body.append(f"→ you joined {room}" + _online(event))
        else:
            body.append("→ ").append(_name(name, bold=False))
            body.append(" joined" + _online(event))
        line_style = STYLE_NOTICE
    elif kind == "leave":
        name, reason = _str(event, "name"), _str(event, "reason", "")
        if _is_me(name, me) and room:
            body.append(f"← you left {room}")
        else:
            body.append("← ").append(_name(name, bold=False))
            body.append(" left" + ("" if reason in QUIET_LEAVE_REASONS else f": {reason}"))
            body.append(_online(event))
        line_style = STYLE_NOTICE
    elif kind == "current":
        body.append(f"now in {room or '?'}")
        line_style = STYLE_NOTICE
    elif kind == "topic":
        topic, by = _str(event, "topic", ""), _str(event, "by", "")
        if event.get("changed") is True:
            body.append(_name(by, bold=False))
            if topic:
                body.append(" set the topic: ").append(topic, style=STYLE_TOPIC)
            else:
                body.append(" cleared the topic")
        elif topic:
            body.append("topic: ").append(topic, style=STYLE_TOPIC)
            if by:
                body.append(" (set by ").append(_name(by, bold=False)).append(")")
        else:
            body.append("no topic")
        line_style = STYLE_NOTICE
    elif kind == "rooms":
        body.append(_rooms_list(event.get("rooms")))
    elif kind == "gap":
        skipped = _int(event, "skipped") or 0
        body.append(
            f"! {skipped} earlier messages were not replayed (/history shows older ones)",
            style=STYLE_SHUTDOWN,
        )
    elif kind == "history-end":
        more = " (more: /history again)" if event.get("more") is True else ""
        body.append(HISTORY_END.format(more=more), style=STYLE_HISTORY)
    elif kind == "nick":
        old, new = _str(event, "old"), _str(event, "new")
        if new.casefold() == me.casefold() or old.casefold() == me.casefold():
            body.append("you are now known as ").append(_name(new, bold=False))
        else:
            body.append(_name(old, bold=False)).append(" is now known as ")
            body.append(_name(new, bold=False))
        line_style = STYLE_NOTICE
    elif kind == "presence":
        joined, left = _int(event, "joined") or 0, _int(event, "left") or 0
        shown = _names(event)
        body.append(f"{joined} joined")
        if shown:
            body.append(" (" + ", ".join(shown) + (", …" if joined > len(shown) else "") + ")")
        body.append(f", {left} left" + _online(event))
        line_style = STYLE_NOTICE
    elif kind == "who":
        listed = _names(event)
        count = _int(event, "online")
        body.append(f"online ({count if count is not None else len(listed)}): ")
        body.append(Text(", ").join(_name(n, bold=False) for n in listed))
    elif kind == "welcome":
        body.append(_str(event, "text", "welcome"), style=STYLE_WELCOME)
    elif kind == "help":
        raw = event.get("text")
        lines = raw.splitlines() if isinstance(raw, str) else []
        lines.append(CLIENT_HELP)
        body.append(Text("\n      ").join(Text(sanitise(line)) for line in lines))
    elif kind == "error":
        body.append("! " + _str(event, "text", "error"), style=STYLE_ERROR)
    elif kind == "shutdown":
        body.append("! " + _str(event, "text", "server is shutting down"), style=STYLE_SHUTDOWN)
    elif kind in ("notice", "account", "mod"):  # the server's words: accounts, moderation
        body.append(_str(event, "text", str(kind)))
        line_style = STYLE_NOTICE
    elif kind == "bans":
        body.append(_bans_list(event.get("bans")))
    else:
        return None
    line = Text(clock(event.get("ts"), tz) + " ", style=STYLE_TIME)
    if tag:
        line.append(sanitise(tag), style=f"bold {name_colour(tag)}").append(" ")
    line.append(body)
    if line_style:
        line.stylize(line_style)
    return line


def _bans_list(bans: object) -> Text:
    """The answer to /bans: one ban per line, with who set it, why and until when."""
    rows = [b for b in bans if isinstance(b, Mapping)] if isinstance(bans, list) else []
    out = Text(f"bans ({len(rows)}):")
    for row in rows:
        until = row.get("until")
        end = "until lifted"
        if isinstance(until, int | float) and not isinstance(until, bool):
            with contextlib.suppress(OverflowError, OSError, ValueError):
                end = datetime.fromtimestamp(until).strftime("until %Y-%m-%d %H:%M")
        reason = _str(row, "reason", "")
        out.append(f"\n      {_str(row, 'target')} {end} (by {_str(row, 'by')})")
        if reason:
            out.append(f": {reason}")
    return out


def _rooms_list(rooms: object) -> Text:
    """The answer to /rooms: one room per line with its count and topic."""
    rows = [r for r in rooms if isinstance(r, Mapping)] if isinstance(rooms, list) else []
    out = Text(f"rooms ({len(rows)}):")
    for row in rows:
        name = _str(row, "room")
        out.append("\n      ").append(name, style=f"bold {name_colour(name)}")
        online = _int(row, "online")
        if online is not None:
            out.append(f"  {online} online")
        topic = _str(row, "topic", "")
        if topic:
            out.append("  ").append(topic, style=STYLE_TOPIC)
    return out


def clean_event(value: Any) -> Any:
    """A copy of a decoded JSON value with every string sanitised (for ``--json`` output)."""
    if isinstance(value, str):
        return sanitise(value)
    if isinstance(value, list):
        return [clean_event(item) for item in value]
    if isinstance(value, dict):
        return {sanitise(str(key)): clean_event(item) for key, item in value.items()}
    return value


class ChatView:
    """Prints the room for a person (styled lines) or for a tool (``--json`` lines).

    Args:
        console: where chat goes (stdout); tests pass a recording console.
        me: the user's name; kept current as renames are confirmed.
        json_lines: print each event as one JSON object per line instead.
        errors: where fatal one-line messages go (stderr by default).
        above: a context manager factory that makes room for output above the line being
            typed (see ``Terminal.above``); output is printed inside it.
        tz: time zone for ``HH:MM`` stamps (local time by default).
    """

    def __init__(
        self,
        console: Console,
        me: str,
        *,
        json_lines: bool = False,
        errors: Console | None = None,
        above: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
        tz: tzinfo | None = None,
    ) -> None:
        self.console = console
        self.me = me
        self.json_lines = json_lines
        self.errors = errors if errors is not None else make_console(stderr=True)
        self._above = above
        self._tz = tz
        self._in_history = False
        self.on_rename: Callable[[str], None] | None = None
        self.on_prompt: Callable[[str], None] | None = None  # the terminal's set_prompt

    def show(self, event: Event, tag: str = "", *, quiet: bool = False) -> None:
        """Show one event from the server (and follow renames of the user).

        Args:
            event: the decoded event.
            tag: the room to name in front of the line (not the current room's).
            quiet: nothing a person needs to see (the prompt already says it); only
                ``--json`` prints it.
        """
        if event.get("type") == "nick" and _is_me(_str(event, "old"), self.me):
            self.me = _str(event, "new")
            if self.on_rename is not None:
                self.on_rename(self.me)
        if self.json_lines:
            self._write_json(event)
            return
        if quiet:
            return
        line = render_event(event, self.me, self._tz, tag=tag)
        if line is None:
            return
        history = event.get("history") is True
        with self._above():
            if history and not self._in_history:
                self.console.print(Text(HISTORY_HEADER, style=STYLE_HISTORY), soft_wrap=True)
            elif self._in_history and not history and event.get("type") != "history-end":
                self.console.print(Text(HISTORY_FOOTER, style=STYLE_HISTORY), soft_wrap=True)
            self._in_history = history
            self.console.print(line, soft_wrap=True)

    def _write_json(self, event: Event) -> None:
        with self._above():
            self.console.file.write(json.dumps(clean_event(dict(event)), ensure_ascii=False))
            self.console.file.write("\n")
            self.console.file.flush()

    def notice(self, text: str, style: str = STYLE_NOTICE) -> None:
        """Show a message from the client itself (help, usage hints); not in ``--json``."""
        if self.json_lines:
            return
        with self._above():
            self._close_history()
            self.console.print(Text(text, style=style), soft_wrap=True)

    def report(self, text: str) -> None:
        """Show news about the connection (lost, reconnected): in the chat, or on stderr
        in ``--json`` mode, where stdout carries server events only."""
        if self.json_lines:
            with self._above():
                self.errors.print(Text(f"triochat: {text}", style=STYLE_STATUS), soft_wrap=True)
            return
        self.notice(text, STYLE_STATUS)

    @property
    def has_prompt(self) -> bool:
        """True when there is a prompt line that can carry a live status (a terminal)."""
        return self.on_prompt is not None

    def set_prompt(self, prompt: str) -> None:
        """Redraw the prompt (on a terminal; elsewhere there is none)."""
        if self.on_prompt is not None:
            self.on_prompt(prompt)

    def _close_history(self) -> None:
        if self._in_history:
            self.console.print(Text(HISTORY_FOOTER, style=STYLE_HISTORY), soft_wrap=True)
            self._in_history = False

    def fatal(self, text: str) -> None:
        """Report why the session ended, as one line on stderr."""
        with self._above():
            self.errors.print(Text(f"triochat: {text}", style=STYLE_ERROR), soft_wrap=True)
