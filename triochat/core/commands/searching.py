"""The parsers of ``/search`` and of ``/history ... around ID``, both wire modes. No I/O.

``/search [in:#room|in:@NAME] [from:NAME] [before:N] WORDS``: the filters may come anywhere
among the words; ``before:N`` is the ``more`` value of the page before (see
:mod:`triochat.core.search`). In JSON: ``{"type": "search", "text": WORDS, "room":
ROOM, "with": NAME, "from": NAME, "before": N}``, all but ``text`` optional
(``with``: the asker's private conversation with NAME, as ``in:@NAME``).
"""

from __future__ import annotations

from typing import Final

from triochat.core.commands.fields import int_field, split_word, text_field
from triochat.core.commands.types import (
    DEFAULT_HISTORY,
    MAX_HISTORY,
    Command,
    History,
    Invalid,
    Search,
)
from triochat.core.names import name_error, room_error, room_name
from triochat.core.search import MAX_SEARCH_WORDS, words

__all__ = ["SEARCH_USAGE", "json_search", "plain_history", "plain_search"]

SEARCH_USAGE: Final = "usage: /search [in:#room|in:@NAME] [from:NAME] WORDS"
HISTORY_USAGE: Final = (
    f"usage: /history [@NAME] [N] (N from 1 to {MAX_HISTORY}), or /history [ROOM] around ID"
)
_MAX_POSITION: Final = 2**62


def plain_search(rest: str) -> Command:
    room: str | None = None
    sender: str | None = None
    before: int | None = None
    typed: list[str] = []
    said: list[str] = []
    for word in rest.split():
        key, _, value = word.partition(":")
        key = key.lower()
        if key == "in" and value.startswith("@") and room is None:  # a private conversation
            problem = name_error(value[1:])
            if problem is not None:
                return Invalid("bad-name", problem)
            room = value
        elif key == "in" and value and room is None:
            problem = room_error(value)
            if problem is not None:
                return Invalid("bad-room", problem)
            room = room_name(value)
        elif key == "from" and value and sender is None:
            sender = value
        elif key == "before" and value:
            if not value.isdigit() or not 1 <= int(value) <= _MAX_POSITION:
                return Invalid("bad-request", "before: takes the number a page ended with")
            before = int(value)
            continue  # not echoed: the next page's hint adds its own
        else:
            said.append(word)
        typed.append(word)
    return _search(" ".join(said), " ".join(typed), room, sender, before)


def json_search(obj: dict[str, object], room: str | None) -> Command:
    text = text_field(obj, "text")
    if isinstance(text, Invalid):
        return text
    sender = obj.get("from")
    if sender is not None and not isinstance(sender, str):
        return Invalid("bad-request", "field 'from' must be a string")
    before = int_field(obj, "before", 1, _MAX_POSITION)
    if isinstance(before, Invalid):
        return before
    peer = obj.get("with")  # a private conversation instead of a room: {"with": NAME}
    if peer is not None:
        if not isinstance(peer, str) or name_error(peer) is not None:
            return Invalid("bad-name", "field 'with' must be a registered name")
        room = f"@{peer}"
    typed = " ".join(
        [*([f"in:{room}"] if room else []), *([f"from:{sender}"] if sender else []), text]
    )
    return _search(text, typed, room, sender or None, before)


def _search(
    said: str, typed: str, room: str | None, sender: str | None, before: int | None
) -> Command:
    terms = words(said)
    if not terms:
        return Invalid("bad-request", f"{SEARCH_USAGE} (words of letters or digits)")
    if len(terms) > MAX_SEARCH_WORDS:
        return Invalid("bad-request", f"a search has at most {MAX_SEARCH_WORDS} words")
    if sender is not None:
        problem = name_error(sender)
        if problem is not None:
            return Invalid("bad-name", problem)
    return Search(terms, typed, room, sender, before)


def plain_history(rest: str) -> Command:
    """``/history``, ``/history N``, ``/history @NAME [N]``, ``/history [ROOM] around ID``."""
    if not rest:
        return History()
    if rest.startswith("@"):  # a private conversation
        peer, rest = split_word(rest[1:])
        if not peer:
            return Invalid("bad-request", "usage: /history @NAME [N]")
        if not rest:
            return History(peer=peer)
        if not rest.isdigit() or not 1 <= int(rest) <= MAX_HISTORY:
            return Invalid("bad-request", HISTORY_USAGE)
        return History(limit=int(rest), peer=peer)
    parts = rest.split()
    if 2 <= len(parts) <= 3 and parts[-2].lower() == "around":
        if not parts[-1].isdigit() or not 1 <= int(parts[-1]) <= _MAX_POSITION:
            return Invalid("bad-request", HISTORY_USAGE)
        room = None
        if len(parts) == 3:
            problem = room_error(parts[0])
            if problem is not None:
                return Invalid("bad-room", problem)
            room = room_name(parts[0])
        return History(room, DEFAULT_HISTORY, around=int(parts[-1]))
    if not rest.isdigit() or not 1 <= int(rest) <= MAX_HISTORY:
        return Invalid("bad-request", HISTORY_USAGE)
    return History(limit=int(rest))


def json_history_around(obj: dict[str, object], room: str | None, limit: int) -> Command:
    around = int_field(obj, "around", 1, _MAX_POSITION)
    if isinstance(around, Invalid):
        return around
    return History(room, limit, around=around)
