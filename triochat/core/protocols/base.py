"""What a wire protocol is to the chat state: the :class:`WireProtocol` interface. No I/O.

A protocol turns request lines into commands (:meth:`~WireProtocol.parse`) and events
into bytes (:meth:`~WireProtocol.encode`), and fans one event out to a room's members
that speak it (:meth:`~WireProtocol.fanout`), encoding it once per variant rather than
once per member. Rooms keep their members by protocol, so a broadcast is one call per
protocol present. Adding a protocol is one module here and one row in
:data:`triochat.core.protocols.PROTOCOLS` (docs/architecture.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from triochat.core.codec import Mode
    from triochat.core.commands import Command
    from triochat.core.events import Event
    from triochat.core.model import Member

__all__ = ["WireProtocol"]


class WireProtocol(Protocol):
    """One way of talking to the server (plain text, JSON lines, ...)."""

    mode: Mode
    echoes_own_chat: bool  # a member gets its own chat lines back (with id and time)
    pinged: bool  # silent members are pinged and dropped if they never answer
    joins_lobby: bool  # a newcomer enters the lobby (IRC clients join what they want)
    replays_on_join: bool  # joining a room replays its recent lines
    utf8_only: bool  # a line that is not UTF-8 is refused (else: U+FFFD for bad bytes)

    def parse(self, line: str) -> Command | None:
        """One decoded request line as a command (None: ignore it)."""

    def encode(self, event: Event, viewer: str | None = None, current: str | None = None) -> bytes:
        """``event`` for one member: ``viewer`` is its name, ``current`` its current room."""

    def encode_for(self, event: Event, member: Member) -> bytes:
        """``event`` for ``member`` alone (its name, current room, capabilities)."""

    def fanout(
        self,
        event: Event,
        members: dict[int, Member],
        room: str,
        skip: Member | None,
        too_slow: list[Member],
    ) -> None:
        """Put ``event`` (about ``room``) to each of ``members`` but ``skip``.

        A member whose link is full is appended to ``too_slow``.
        """

    def replay_header(self, count: int, room: str | None) -> bytes | None:
        """What announces a replay of ``count`` lines (``room``: not the current one)."""

    def replay_end(self, room: str, count: int, more: bool, ts: float) -> bytes | None:
        """What closes a replay that asked for an end marker (None: nothing)."""
