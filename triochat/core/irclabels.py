"""IRCv3 ``labeled-response``: a labelled request's answer carries its label back. No I/O.

A client that negotiated ``labeled-response`` may tag a request ``@label=abc``. The
IRC desk answers it through :func:`run_labelled`: while the request is handled, the
member's output is caught (its link is swapped for a :class:`_Catcher`), and then
sent labelled: nothing caught is ``ACK``, one line gets the ``label`` tag, more lines
come in a ``labeled-response`` batch whose opening line has the label. A
``CHATHISTORY`` answer is its own batch and carries the label itself.

What is answered later (a password check's result: SASL, ``NickServ IDENTIFY``) is
not part of the caught answer: such a request is ``ACK``-ed and its result comes
unlabelled. Only :class:`~triochat.core.commands.IrcAsk` requests carry a label
(``AWAY`` and ``QUIT`` do not).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from typing import Final

from triochat.core.ircchathistory import Chathistory, tag_line
from triochat.core.model import Link, Member, Query
from triochat.core.protocols.irclines import line

__all__ = ["labelled", "run_labelled"]

_batches = itertools.count(1)
_CRLF: Final = "\r\n"


def labelled(server: str, label: str, lines: list[str]) -> bytes:
    """``lines`` (each ending in CR-LF) as the answer to the request labelled ``label``."""
    tag = f"label={label}"
    if not lines:
        return line(server, "ACK", tags=tag).encode()
    if len(lines) == 1:
        return tag_line(lines[0], tag).encode()
    ref = f"lr{next(_batches)}"
    out = [tag_line(line(server, "BATCH", f"+{ref}", "labeled-response"), tag)]
    out.extend(tag_line(text, f"batch={ref}") for text in lines)
    out.append(line(server, "BATCH", f"-{ref}"))
    return "".join(out).encode()


class _Catcher:
    """A member's link while a labelled request is handled (see the module docstring)."""

    def __init__(self, real: Link, server: str, label: str) -> None:
        self.real = real
        self.server = server
        self.label = label
        self.caught: list[bytes] = []
        self.sent = False  # the label went out already (a replay or a close came)
        self.ok = True

    def put(self, data: bytes) -> bool:
        self.caught.append(data)
        return True

    def flush(self, *, final: bool) -> None:
        if self.sent:
            for data in self.caught:
                self.ok = self.real.put(data) and self.ok
        elif self.caught or final:
            text = b"".join(self.caught).decode("utf-8", "replace")
            lines = [part + _CRLF for part in text.split(_CRLF) if part]
            self.ok = self.real.put(labelled(self.server, self.label, lines)) and self.ok
            self.sent = True
        self.caught.clear()

    def replay(self, query: Query) -> None:
        self.flush(final=False)
        plan = query.plan
        if not self.sent and isinstance(plan, Chathistory):
            query = replace(query, plan=plan.labelled(self.label))
            self.sent = True
        self.real.replay(query)

    def close(self) -> None:
        self.flush(final=True)
        self.real.close()

    def cut(self) -> None:
        self.caught.clear()
        self.sent = True
        self.real.cut()


def run_labelled(member: Member, server: str, label: str, step: Callable[[], None]) -> bool:
    """Run ``step`` (handling one request of ``member``) with its answer labelled.

    Returns False if the member's queue was full (it is too slow).
    """
    real = member.link
    catcher = _Catcher(real, server, label)
    member.link = catcher
    try:
        step()
    finally:
        if member.link is catcher:
            member.link = real
    catcher.flush(final=True)
    return catcher.ok
