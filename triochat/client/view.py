"""How the client shows the room: server events in, printed lines out.

Rules of this module:

* Text from other people (and every string the server sends) is untrusted. The
  wording and styling of each event is :mod:`.render`'s (pure: event in, ``Text``
  out, strings sanitised, never markup); :class:`ChatView` adds the little state a
  view needs (your current name, whether a history replay is running) and does the
  printing.
* A line from a room other than the current one starts with that room's name (the
  *tag*); which room is current is the session's business (:mod:`.rooms`), not the
  view's.
* When stdout is not a terminal, rich writes plain text with no escape codes.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from datetime import tzinfo
from typing import IO, Any, Final

from rich.console import Console
from rich.text import Text

from triochat.client.connection import Unreadable
from triochat.client.render import (
    NAME_COLOURS,
    STYLE_ERROR,
    STYLE_HISTORY,
    STYLE_ME_ACTION,
    STYLE_NOTICE,
    STYLE_OWN,
    STYLE_PRIVATE,
    name_colour,
    render_event,
)
from triochat.core.events import Acted, ErrorEvent, Event, HistoryEnd, NotifyInfo, Renamed, Said
from triochat.core.hygiene import sanitise
from triochat.core.jsonwire import event_object
from triochat.core.mentions import DEFAULT_LEVEL, alerts

__all__ = [
    "NAME_COLOURS",
    "STYLE_ERROR",
    "STYLE_ME_ACTION",
    "STYLE_NOTICE",
    "STYLE_OWN",
    "STYLE_PRIVATE",
    "ChatView",
    "clean_event",
    "make_console",
    "name_colour",
    "render_event",
]

STYLE_STATUS: Final = "bold yellow"  # connection lost / reconnecting
HISTORY_HEADER: Final = "── earlier messages ──"
HISTORY_FOOTER: Final = "── now ──"
BELL: Final = "\a"  # rung for a live line that names you (see /notify), on a terminal only


def make_console(file: IO[str] | None = None, **options: Any) -> Console:
    """A rich Console that never interprets text: no markup, emoji codes or highlighting.

    Colour and escape codes are used only when ``file`` (stdout by default) is a
    terminal, which rich detects; ``options`` go to :class:`rich.console.Console`.
    """
    return Console(file=file, markup=False, emoji=False, highlight=False, **options)


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
        bell: ring the terminal's bell when a live line names you (``--no-bell``: off);
            only on a terminal, never into a pipe or a file. Each room's ``/notify``
            level, as the server tells it, decides further: ``all`` rings for every
            line from someone else, ``none`` never.
        replay: show the history the server replays on joining (``--quiet``: off;
            the session then marks those lines quiet; ``/history`` replies still show).
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
        bell: bool = True,
        replay: bool = True,
    ) -> None:
        self.console = console
        self.me = me
        self.json_lines = json_lines
        self.errors = errors if errors is not None else make_console(stderr=True)
        self._above = above
        self._tz = tz
        self.bell = bell
        self.replay = replay
        self._in_history = False
        self.levels: dict[str, str] = {}  # /notify levels by room, as the server told them
        self.on_rename: Callable[[str], None] | None = None
        self.on_prompt: Callable[[str], None] | None = None  # the terminal's set_prompt

    def show(self, event: Event, tag: str = "", *, quiet: bool = False) -> None:
        """Show one event from the server (and follow renames of the user).

        Args:
            event: the event.
            tag: the room to name in front of the line (not the current room's).
            quiet: nothing a person needs to see (the prompt already says it); only
                ``--json`` prints it.
        """
        if isinstance(event, Renamed) and event.old.casefold() == self.me.casefold():
            self.me = sanitise(event.new)
            if self.on_rename is not None:
                self.on_rename(self.me)
        if isinstance(event, NotifyInfo):
            self.levels[sanitise(event.room)] = event.level
        if self.json_lines:
            self._write_json(event_object(event))
            return
        if quiet:
            return
        history = isinstance(event, Said | Acted) and event.history
        line = render_event(event, self.me, self._tz, tag=tag)
        if line is None:
            return
        ring = self.bell and self.console.is_terminal and self.alerts(event)
        with self._above():
            if ring:
                self.console.file.write(BELL)
            if history and not self._in_history:
                self.console.print(Text(HISTORY_HEADER, style=STYLE_HISTORY), soft_wrap=True)
            elif self._in_history and not history and not isinstance(event, HistoryEnd):
                self.console.print(Text(HISTORY_FOOTER, style=STYLE_HISTORY), soft_wrap=True)
            self._in_history = history
            self.console.print(line, soft_wrap=True)

    def alerts(self, event: Event) -> bool:
        """True if ``event`` should ring the bell, by its room's /notify level."""
        if not isinstance(event, Said | Acted):
            return False
        return alerts(event, self.me, self.levels.get(event.room, DEFAULT_LEVEL))

    def show_unreadable(self, unreadable: Unreadable) -> None:
        """An object from the server that is not an event this client can read.

        ``--json`` passes it on as it came (sanitised); a person is told about a
        malformed event, and not about one of a type this version does not know.
        """
        if self.json_lines:
            self._write_json(unreadable.obj)
        elif unreadable.problem:
            text = f"the server sent an event this client cannot read ({unreadable.problem})"
            self.show(ErrorEvent(time.time(), "unreadable", text))

    def _write_json(self, obj: dict[str, Any]) -> None:
        with self._above():
            self.console.file.write(json.dumps(clean_event(obj), ensure_ascii=False))
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
