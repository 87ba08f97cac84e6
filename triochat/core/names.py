"""Names of members and rooms: what is allowed and when two are the same. No I/O, no trio."""

from __future__ import annotations

import re
from typing import Final

PRIVATE_SINCE: Final = "@"  # the key of a hello's "since" that resumes private lines

__all__ = [
    "LOBBY",
    "MAX_NAME_CHARS",
    "MAX_ROOM_CHARS",
    "name_error",
    "name_key",
    "room_error",
    "room_name",
]

MAX_NAME_CHARS: Final = 24  # long enough for "firstname.lastname", short enough for a column

MAX_ROOM_CHARS: Final = 32  # after the "#": room names are typed often, and fit a sidebar
LOBBY: Final = "#lobby"  # every member is in it on joining

_NAME_RE: Final = re.compile(r"[A-Za-z0-9_.-]+")
_ROOM_RE: Final = re.compile(r"[a-z0-9_.-]+")

# Names: unique under a confusable skeleton, not just case. Within the characters a
# name may use, Unicode's confusables table (UTS #39) maps "0" to "O", "1", "I" and
# "|" to "l", and "m" to "rn"; case folding joins "I" to "i" as well, so i, I, l, L
# and 1 are one letter for uniqueness, as are o, O and 0, and m and rn.
_SKELETON: Final = str.maketrans({"i": "l", "1": "l", "|": "l", "0": "o", "m": "rn"})


def name_error(name: str) -> str | None:
    """Return why ``name`` is not a valid nickname, or None if it is valid."""
    if not name:
        return "a name needs at least one character"
    if len(name) > MAX_NAME_CHARS:
        return f"a name is at most {MAX_NAME_CHARS} characters"
    if not _NAME_RE.fullmatch(name):
        return "a name may contain only letters A-Z, digits, '_', '.' and '-'"
    return None


def name_key(name: str) -> str:
    """The form under which names are compared for uniqueness.

    Case-insensitive and confusable-insensitive: ``alice``, ``ALICE``, ``aIice`` and
    ``a1ice`` have one key, so only one of them can be online at a time.
    """
    return name.casefold().translate(_SKELETON)


def room_error(text: str) -> str | None:
    """Why ``text`` is not a room name, or None if it is one.

    A room name is ``#`` then 1 to 32 of ``a-z 0-9 _ . -``, case-insensitive; the ``#``
    may be left out when typing.
    """
    name = text.strip().lower().removeprefix("#")
    if not name:
        return "a room name needs at least one character after '#'"
    if len(name) > MAX_ROOM_CHARS:
        return f"a room name is at most {MAX_ROOM_CHARS} characters after '#'"
    if not name.isascii() or not _ROOM_RE.fullmatch(name):
        return "a room name may contain only letters a-z, digits, '_', '.' and '-'"
    return None


def room_name(text: str) -> str:
    """The normal form of a valid room name: ``Dev``, ``#Dev`` and ``#dev`` are ``#dev``."""
    return "#" + text.strip().lower().removeprefix("#")
