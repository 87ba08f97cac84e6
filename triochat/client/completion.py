"""What Tab completes on the line being typed: commands, names and rooms. No I/O.

:func:`complete` takes the text before the cursor and the names and rooms the client
has seen, and returns that text with its last word completed: in full when one
candidate fits (with a space after it), else as far as every candidate agrees. A word
at the start of the line that begins with ``/`` is a command; ``#`` starts a room;
anything else (``@`` allowed in front) is a person's name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from triochat.core.commands import COMMANDS

__all__ = ["COMMAND_WORDS", "complete"]

COMMAND_WORDS: Final = tuple(
    sorted({f"/{verb}" for spec in COMMANDS for verb in spec.verbs} | {"/history more"})
)  # "/history more" is the client's own


def _shared_start(words: list[str]) -> str:
    first, last = min(words), max(words)
    size = next((i for i, (a, b) in enumerate(zip(first, last, strict=False)) if a != b), None)
    return first[: len(first) if size is None else size]


def complete(before: str, names: Iterable[str], rooms: Iterable[str] = ()) -> str | None:
    """``before`` (the text left of the cursor) with its last word completed.

    Returns None when nothing fits, or the candidates agree on no more than was typed.
    """
    start = before.rfind(" ") + 1
    word = before[start:]
    if start == 0 and word.startswith("/"):
        pool: Iterable[str] = COMMAND_WORDS
    elif word.startswith("#"):
        pool = rooms
    else:
        pool = names
    at = "@" if word.startswith("@") else ""
    stem = word[len(at) :].casefold()
    if not stem and not word.startswith("/"):
        return None
    matches = sorted({c for c in pool if c.casefold().startswith(stem)})
    if at:
        matches = [c for c in matches if not c.startswith(("#", "/"))]
    if not matches:
        return None
    if len(matches) == 1:
        done = matches[0]
        if done.startswith("/history "):  # one command word that is two words
            return done + " "
        return before[:start] + at + done + " "
    common = _shared_start([m.casefold() for m in matches])
    if len(common) <= len(stem):
        return None
    return before[:start] + at + matches[0][: len(common)]
