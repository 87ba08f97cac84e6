"""Message search: what is asked, what is found, and the words. No I/O.

``/search [in:#room|in:@NAME] [from:NAME] [before:N] WORDS`` becomes a :class:`SearchQuery`;
the store answers it with :class:`~triochat.core.records.SearchHit` rows, newest first (see
:meth:`triochat.store.base.Store.search`). Both stores read words the same way,
:func:`words`: runs of letters and digits, case-folded, accents removed, which is what
SQLite FTS5's ``unicode61`` tokenizer (``remove_diacritics 2``) does. A line matches
when it holds every word of the query (in any order).

A hit's ``seq`` is its place in the store's order of arrival, global across rooms:
results come in decreasing ``seq``, and a page that has more after it says so with
the ``seq`` to continue from (``before:N``). A hit's ``message.id`` is its id in its
room, for ``/history #room around ID``.

Private lines (issue 21) are searched too, but only the asker's own: the query carries
the asker's account key (``mine``, from the session, never a name the client sent), and
``peer`` (an account key) narrows it to one conversation (``in:@NAME``). A private
hit's ``seq`` is the private line's id, a second order of arrival; the two lists are
merged by time (:mod:`triochat.core.search_pages`), and the page's cursor carries one
position in each (:func:`pack_position`): the room position in the low 32 bits (so a
cursor with no private part is the plain ``seq``, as before), the private id above it.
Known limit: a room position of 2**32 or more would spill into the private part, and a
packed cursor is above JavaScript's exact integers (2**53) once private ids pass 2**21;
a second cursor field would lift both.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "MAX_SEARCH_WORDS",
    "SEARCH_PAGE",
    "SearchQuery",
    "fts_match",
    "holds_all",
    "pack_position",
    "unpack_position",
    "words",
]

SEARCH_PAGE: Final = 20  # hits per page: one screen of a terminal
MAX_SEARCH_WORDS: Final = 8  # words in one query: each is one more index lookup

_WORD: Final = re.compile(r"[^\W_]+")  # letters and digits (unicode61's token characters)


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A search: lines holding all of ``terms``, in ``rooms`` (None: every room),
    said by ``sender`` (a name key; None: anyone), with ``seq`` below ``before``
    (None: the newest), at most ``limit`` of them."""

    terms: tuple[str, ...]
    rooms: tuple[str, ...] | None
    sender: str | None = None
    before: int | None = None
    limit: int = SEARCH_PAGE
    text: str = ""  # the query as typed, echoed in the answer
    mine: str | None = None  # the asker's account key: its private lines too (None: none)
    peer: str | None = None  # only the private conversation with this account key
    private_before: int | None = None  # private lines with an id below this (None: newest)


def _fold(token: str) -> str:
    token = token.casefold()
    if token.isascii():
        return token
    decomposed = unicodedata.normalize("NFKD", token)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def words(text: str) -> tuple[str, ...]:
    """The words of ``text``, folded for comparison (order kept, repeats dropped)."""
    seen: dict[str, None] = {}
    for match in _WORD.finditer(text):
        seen.setdefault(_fold(match.group()), None)
    return tuple(word for word in seen if word)


def holds_all(text: str, terms: Iterable[str]) -> bool:
    """True if ``text`` holds every one of ``terms`` (already folded) as a word."""
    terms = tuple(terms)
    # A quick no first (the memory store scans every line with this): an ASCII line's
    # words are all substrings of its lower case, so a term missing there is no word.
    if text.isascii():
        lowered = text.lower()
        if any(term not in lowered for term in terms):
            return False
    have = set(words(text))
    return all(term in have for term in terms)


def fts_match(terms: Iterable[str]) -> str:
    """An FTS5 MATCH expression for lines holding every term (each one quoted)."""
    return " ".join(f'"{term}"' for term in terms)


_ROOM_BITS: Final = 32
_ROOM_MASK: Final = (1 << _ROOM_BITS) - 1


def pack_position(room: int | None, private: int | None) -> int:
    """One ``before:N`` cursor from a room position and a private id (None: not yet
    paged in that list, 0 in the packed form)."""
    return (room or 0) | ((private or 0) << _ROOM_BITS)


def unpack_position(position: int | None) -> tuple[int | None, int | None]:
    """The room position and private id of a ``before:N`` cursor (None: the newest)."""
    if position is None:
        return None, None
    room, private = position & _ROOM_MASK, position >> _ROOM_BITS
    return room or None, private or None
