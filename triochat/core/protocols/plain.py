"""The plain-text protocol: what netcat and telnet users type and read. No I/O."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from triochat.core.codec import Mode, encode_plain, history_header
from triochat.core.commands import Command, parse_plain

if TYPE_CHECKING:
    from triochat.core.events import Event
    from triochat.core.model import Member

__all__ = ["PLAIN", "PlainProtocol"]


class PlainProtocol:
    """Lines of text; ``/verb`` commands; notices start with ``***``."""

    mode: Mode = Mode.PLAIN
    echoes_own_chat: bool = False  # the terminal already shows what was typed
    joins_lobby: bool = True
    replays_on_join: bool = True
    utf8_only: bool = False
    pinged: bool = False  # TCP keepalive covers them; a ping would be noise on screen

    def parse(self, line: str) -> Command | None:
        return parse_plain(line)

    def encode(self, event: Event, viewer: str | None = None, current: str | None = None) -> bytes:
        return encode_plain(event, viewer, current)

    def encode_for(self, event: Event, member: Member) -> bytes:
        return self.encode(event, member.name, member.current)

    def fanout(
        self,
        event: Event,
        members: dict[int, Member],
        room: str,
        skip: Member | None,
        too_slow: list[Member],
    ) -> None:
        # Two variants: for members whose current room this is (encoded at once: in a
        # busy room that is nearly everyone), and, prefixed with the room's name, for the
        # others (encoded at most once, when the first of them comes).
        # One iteration per delivery, so written for CPython's specialising interpreter
        # (measured with callgrind, scripts/burst_count.py): ``put`` is read as an
        # attribute before the call (a server link's ``put`` is its outbox's bound method
        # kept in a slot, which a method call ``link.put(data)`` looks up the slow way
        # every time), and no test of a bytes object's truth.
        here = encode_plain(event, None, room)
        there: bytes | None = None
        for member in members.values():
            if member is skip:
                continue
            put = member.link.put
            if member.current == room:
                if not put(here):
                    too_slow.append(member)
            else:
                if there is None:
                    there = encode_plain(event, None, "")
                if not put(there):
                    too_slow.append(member)

    def replay_header(self, count: int, room: str | None) -> bytes | None:
        return history_header(count, room)

    def replay_end(self, room: str, count: int, more: bool, ts: float) -> bytes | None:
        return None


PLAIN: Final = PlainProtocol()
