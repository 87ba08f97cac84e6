"""A connection's life as named phases, with every allowed transition in one table. No I/O.

In the manner of h11's connection states: a connection is always in exactly one
:class:`Phase`, moves only by a :class:`Step`, and a step the table does not allow is
a bug that :func:`advance` reports (:class:`LifecycleError`) instead of leaving the
connection half in one phase and half in another::

    REGISTERING --JOINED--> MEMBER --CLOSE--> CLOSING --END--> GONE
        |   \\--LOGIN--> PENDING_LOGIN --JOINED--> MEMBER
        \\--CLOSE (refused, shutdown)--> CLOSING          (END from any phase: GONE)

The server's :class:`~triochat.server.connection.Connection` keeps its phase; the hub
moves it on as the chat state admits, holds or refuses the connection.
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = ["TRANSITIONS", "LifecycleError", "Phase", "Step", "advance"]


class Phase(enum.Enum):
    """Where a connection is in its life."""

    REGISTERING = "registering"  # accepted; its first line (or a second of silence) is awaited
    PENDING_LOGIN = "pending login"  # its first line logs in: the password is being checked
    MEMBER = "member"  # in the chat
    CLOSING = "closing"  # its last output is being written; then it ends
    GONE = "gone"  # ended: nothing more is read or written


class Step(enum.Enum):
    """What moves a connection from one phase to the next."""

    LOGIN = "login"  # its first line's password is being checked
    JOINED = "joined"  # admitted as a member
    CLOSE = "close"  # refused, left, or the server stops: write what is queued, then end
    END = "end"  # the connection ended (written out, cut off, or lost)


TRANSITIONS: Final[dict[tuple[Phase, Step], Phase]] = {
    (Phase.REGISTERING, Step.LOGIN): Phase.PENDING_LOGIN,
    (Phase.REGISTERING, Step.JOINED): Phase.MEMBER,
    (Phase.REGISTERING, Step.CLOSE): Phase.CLOSING,
    (Phase.PENDING_LOGIN, Step.JOINED): Phase.MEMBER,
    (Phase.PENDING_LOGIN, Step.CLOSE): Phase.CLOSING,
    (Phase.MEMBER, Step.CLOSE): Phase.CLOSING,
    (Phase.CLOSING, Step.CLOSE): Phase.CLOSING,  # closing twice changes nothing
    # A connection may end in any phase; what arrives for it afterwards is moot.
    **{(phase, Step.END): Phase.GONE for phase in Phase},
    (Phase.GONE, Step.CLOSE): Phase.GONE,
    (Phase.GONE, Step.JOINED): Phase.GONE,
    (Phase.GONE, Step.LOGIN): Phase.GONE,
}


class LifecycleError(RuntimeError):
    """A step the table does not allow from the current phase (a bug, not bad input)."""


def advance(phase: Phase, step: Step) -> Phase:
    """The phase after ``step`` from ``phase``; :class:`LifecycleError` if not allowed."""
    try:
        return TRANSITIONS[phase, step]
    except KeyError:
        raise LifecycleError(f"{step.value!r} is not allowed in phase {phase.value!r}") from None
