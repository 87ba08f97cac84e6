"""When a line names you, and whether it should alert you. No I/O.

One rule for the server (``/mentions``), the terminal client (highlight and bell) and
the page (``triochat/web/static/mention.js`` is the same expression in JavaScript, and
a test runs both on the same lines): a line names ``alice`` when it holds ``alice`` or
``@alice`` in any case, not inside a longer name (letters, digits, ``_ . -``); "alice."
ending a sentence names alice, "alice.smith" does not.

``/mentions`` reads the store: a :class:`MentionQuery` asks for the lines of some rooms
since a time that name someone; the store's search index finds the candidate lines
(those holding the name's words) and this rule confirms each
(:func:`triochat.store.mentions.find_mentions`).

Per-room notification levels: ``all`` (every line from someone else alerts),
``mentions`` (only lines that name you; the default) and ``none`` (nothing alerts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from triochat.core.commands import NOTIFY_LEVELS
from triochat.core.events import Acted, Event, MentionInfo, Said
from triochat.core.hygiene import sanitise

__all__ = [
    "DEFAULT_LEVEL",
    "LEVELS",
    "MentionQuery",
    "alerts",
    "is_mention",
    "mention_spans",
    "names",
]

LEVELS: Final = NOTIFY_LEVELS  # per-room notification levels, loudest first
DEFAULT_LEVEL: Final = "mentions"  # a room nobody set: alert only when you are named


@dataclass(frozen=True, slots=True)
class MentionQuery:
    """A ``/mentions`` read: the lines of ``rooms`` newer than ``since`` (Unix seconds)
    that name ``name`` and were not said by it, newest first, at most ``limit``.

    ``recent`` is the answer from the lines the server holds in memory, made when it was
    asked: it is given instead when the store has no search index
    (``--no-search-index``) or cannot be read.
    """

    name: str
    rooms: tuple[str, ...]
    since: float
    limit: int
    recent: tuple[MentionInfo, ...] = ()


@lru_cache(maxsize=64)  # one pattern per name in use; names change rarely
def _pattern(me: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w.-])@?{re.escape(me)}(?![\w-]|\.\w)", re.IGNORECASE)


def mention_spans(text: str, me: str) -> list[tuple[int, int]]:
    """Where ``text`` names ``me`` (``alice`` or ``@alice``, word-bounded, any case)."""
    if not me:
        return []
    return [m.span() for m in _pattern(me).finditer(text)]


def names(text: str, me: str) -> bool:
    """True if ``text`` names ``me`` (see the module docstring)."""
    return bool(me) and _pattern(me).search(text) is not None


def _live_text(event: Event, me: str) -> str | None:
    """The text of a live chat line from someone else (None for anything else)."""
    if not isinstance(event, Said | Acted) or event.history:
        return None
    return None if event.sender.casefold() == me.casefold() else event.text


def is_mention(event: Event, me: str) -> bool:
    """True for a live chat line from someone else that names ``me``."""
    text = _live_text(event, me)
    return text is not None and names(sanitise(text), me)


def alerts(event: Event, me: str, level: str = DEFAULT_LEVEL) -> bool:
    """True if ``event`` should ring the bell (or notify) at notification ``level``.

    ``all``: any live chat line from someone else; ``mentions``: one that names ``me``;
    ``none``: never.
    """
    if level == "none":
        return False
    if level == "all":
        return _live_text(event, me) is not None
    return is_mention(event, me)
