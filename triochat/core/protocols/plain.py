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
        # Two variants: for members whose current room this is, and, prefixed with the
        # room's name, for the others. Each is encoded at most once.
        here = there = b""
        for member in members.values():
            if member is skip:
                continue
            if member.current == room:
                here = here or encode_plain(event, None, room)
                if not member.link.put(here):
                    too_slow.append(member)
            else:
                there = there or encode_plain(event, None, "")
                if not member.link.put(there):
                    too_slow.append(member)

    def replay_header(self, count: int, room: str | None) -> bytes | None:
        return history_header(count, room)

    def replay_end(self, room: str, count: int, more: bool, ts: float) -> bytes | None:
        return None


PLAIN: Final = PlainProtocol()
