"""What is kept of a conversation: stored chat lines, rooms, and a commit's batch. No I/O.

The chat state (:mod:`triochat.core.state`) makes these; the stores
(:mod:`triochat.store`) persist them. They live in the core so that neither depends
on the other's machinery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from triochat.core.events import Acted, Chat, Said

__all__ = ["KINDS", "Batch", "RoomRecord", "StoredMessage", "chat_event", "stored_message"]

KINDS: Final = frozenset({"say", "me"})  # what is stored; private messages never are


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One ``say`` or ``me`` event as the room broadcast it.

    Attributes:
        room: The normalised room name, e.g. ``"#lobby"``.
        id: The room's id for this message (positive, strictly increasing per room).
        ts: When the hub accepted it, in seconds since the Unix epoch.
        kind: ``"say"`` or ``"me"``.
        sender: The sender's name as it was shown.
        text: The text as it was broadcast (already sanitised).
    """

    room: str
    id: int
    ts: float
    kind: str
    sender: str
    text: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"a stored message is 'say' or 'me', not {self.kind!r}")
        if self.id < 1:
            raise ValueError(f"message ids start at 1 (0 means none yet), not {self.id}")
        # A lone surrogate (JSON can carry one as "\ud800") cannot be written as UTF-8:
        # refused here, where the hub builds the message, it cannot become a batch that
        # fails on every retry and holds up everything behind it.
        for text in (self.room, self.sender, self.text):
            if not text.isascii():
                text.encode("utf-8")  # UnicodeEncodeError is a ValueError


@dataclass(frozen=True, slots=True)
class RoomRecord:
    """A room as the store remembers it.

    Attributes:
        name: The normalised room name, e.g. ``"#lobby"``.
        last_id: The highest id ever committed in this room (0 if none). It survives
            retention pruning every message; a commit only ever raises it.
        topic: The topic, ``""`` if none.
        topic_by: Who set the topic, ``""`` if nobody.
        topic_ts: When the topic was set, in seconds since the Unix epoch (0.0 if never).
    """

    name: str
    last_id: int = 0
    topic: str = ""
    topic_by: str = ""
    topic_ts: float = 0.0


@dataclass(slots=True)
class Batch:
    """What one commit writes, in one transaction.

    Attributes:
        messages: New messages, in the order the hub assigned their ids.
        rooms: Created rooms or changed topics (upserted, later entries win). A record's
            ``last_id`` is merged with ``max``, never lowered.
    """

    messages: list[StoredMessage] = field(default_factory=list)
    rooms: list[RoomRecord] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.messages or self.rooms)


def stored_message(event: Chat) -> StoredMessage:
    """The record the store keeps of a chat event."""
    kind = "say" if isinstance(event, Said) else "me"
    return StoredMessage(event.room, event.id, event.ts, kind, event.sender, event.text)


def chat_event(record: StoredMessage, *, history: bool = True) -> Chat:
    """The event a stored record stands for (marked as history by default)."""
    kind = Said if record.kind == "say" else Acted
    return kind(record.ts, record.room, record.id, record.sender, record.text, history)
