"""The JSON-lines protocol: the client's, bots' and the page's. No I/O."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from triochat.core.codec import Mode, encode_json
from triochat.core.commands import Command, parse_json
from triochat.core.events import HistoryEnd

if TYPE_CHECKING:
    from triochat.core.events import Event
    from triochat.core.model import Member

__all__ = ["JSON", "JsonProtocol"]


class JsonProtocol:
    """One JSON object per line each way (docs/protocol.md)."""

    mode: Mode = Mode.JSON
    echoes_own_chat: bool = True  # the client shows its line with the server's id and time
    joins_lobby: bool = True
    replays_on_join: bool = True
    utf8_only: bool = False
    pinged: bool = True

    def parse(self, line: str) -> Command | None:
        return parse_json(line)

    def encode(self, event: Event, viewer: str | None = None, current: str | None = None) -> bytes:
        return encode_json(event)

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
        data = encode_json(event)  # the same bytes for everyone
        for member in members.values():
            if member is not skip:
                put = member.link.put  # an attribute read, then a call: see PlainProtocol
                if not put(data):
                    too_slow.append(member)

    def replay_header(self, count: int, room: str | None) -> bytes | None:
        return None  # every replayed line is marked "history" instead

    def replay_end(self, room: str, count: int, more: bool, ts: float) -> bytes | None:
        return encode_json(HistoryEnd(ts, room, count, more))


JSON: Final = JsonProtocol()
