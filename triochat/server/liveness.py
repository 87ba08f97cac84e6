"""Liveness: find JSON members whose peer vanished, with an application ping.

A laptop that is shut or loses its network sends nothing more, not even a reset, and a
connection to it looks idle forever. Two things find it within two minutes:

* TCP keepalive on every accepted socket (:func:`triochat.server.transport.set_keepalive`),
  for every member, plain or JSON;
* for JSON members, this module: a member silent for :data:`PING_EVERY` seconds is sent
  ``{"type": "ping"}``; one that has sent nothing more :data:`PONG_TIMEOUT` seconds
  later is told why (error ``no-pong``) and leaves with the reason ``no pong``.
  Any line answers a ping; the client sends ``{"type": "pong"}``, which the server
  accepts silently. Plain members (people on ``nc``) are never pinged: they could not
  be expected to answer.

Cost, by design, is nothing per idle connection but one float: the reader stamps
:attr:`Connection.heard <triochat.server.connection.Connection.heard>` when bytes
arrive, and the hub calls :meth:`Liveness.sweep` on its tick (every couple of seconds):
one pass over the members, no task, timer or cancel scope per connection. Only
members with an unanswered ping have an entry here. Worst case from the last byte heard
to the leave: PING_EVERY + PONG_TIMEOUT + two ticks, 109 s with the defaults.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

from triochat.core.events import Ping
from triochat.core.logevents import log_event
from triochat.core.protocols import PROTOCOLS
from triochat.core.state import ChatState
from triochat.server.connection import Connection

__all__ = ["NO_PONG", "PING_EVERY", "PONG_TIMEOUT", "Liveness"]

log = logging.getLogger(__name__)

PING_EVERY: Final = 45.0  # seconds a JSON member may be silent before it is pinged
PONG_TIMEOUT: Final = 60.0  # seconds to answer: a phone waking up, a congested link
NO_PONG: Final = "no pong"  # the leave reason


class Liveness:
    """Pings silent JSON members and drops those that do not answer.

    Args:
        clock: wall-clock time for the ping's ``ts`` (the state's clock).
        ping_every: seconds of silence before a ping.
        pong_timeout: seconds a ping may go unanswered.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        ping_every: float = PING_EVERY,
        pong_timeout: float = PONG_TIMEOUT,
    ) -> None:
        self._clock = clock
        self._ping_every = ping_every
        self._pong_timeout = pong_timeout
        self._pinged: dict[int, float] = {}  # member id -> when its unanswered ping went

    def sweep(self, state: ChatState, now: float) -> None:
        """Ping whoever has been silent too long; drop whoever did not answer.

        ``now`` is on the clock of :attr:`Connection.heard` (``trio.current_time()``).
        Output is queued; the hub flushes it after the batch, as always.
        """
        pinged = self._pinged
        overdue = []
        for member in state.members.values():
            link = member.link
            if not PROTOCOLS[member.mode].pinged or not isinstance(link, Connection):
                continue
            sent = pinged.get(member.id)
            if sent is not None:
                if link.heard >= sent:
                    del pinged[member.id]  # answered (any line counts)
                elif now - sent >= self._pong_timeout:
                    overdue.append(member)
                    continue
                else:
                    continue
            if now - link.heard >= self._ping_every:
                # A full outbox refuses the ping; the member is then either dropped as
                # too slow by the state, or as silent here, whichever comes first.
                link.put(PROTOCOLS[member.mode].encode(Ping(self._clock())))
                pinged[member.id] = now
        for member in overdue:
            del pinged[member.id]
            log_event(log, "connection.no_pong", conn=member.id, name=member.name)
            state.tell_error(
                member,
                "no-pong",
                f"no answer to ping within {self._pong_timeout:g} s; closing the connection",
            )
            state.remove(member, NO_PONG)
        if len(pinged) > len(state.members):  # members who left while pinged
            for gone in [conn_id for conn_id in pinged if conn_id not in state.members]:
                del pinged[gone]
