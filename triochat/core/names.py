"""Names of members: what is allowed and when two names are the same. No I/O, no trio."""

from __future__ import annotations

import re
from typing import Final

__all__ = ["MAX_NAME_CHARS", "name_error", "name_key"]

MAX_NAME_CHARS: Final = 24  # long enough for "firstname.lastname", short enough for a column

_NAME_RE: Final = re.compile(r"[A-Za-z0-9_.-]+")

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
