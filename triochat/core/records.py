"""What is kept: stored chat lines, rooms, accounts, operators, bans, mutes. No I/O.

A commit's :class:`Batch` carries all of them.

The chat state (:mod:`triochat.core.state`) makes these; the stores
(:mod:`triochat.store`) persist them. They live in the core so that neither depends
on the other's machinery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from triochat.core.events import Acted, Chat, Said

__all__ = [
    "BAN_KINDS",
    "KINDS",
    "AccountRecord",
    "BanRecord",
    "Batch",
    "Change",
    "DropAccount",
    "DropBan",
    "DropMute",
    "DropOp",
    "DropPrefs",
    "MuteRecord",
    "OpRecord",
    "Pref",
    "RoomRecord",
    "SaveAccount",
    "SaveBan",
    "SaveMute",
    "SaveNotify",
    "SaveOp",
    "SaveSeen",
    "SearchHit",
    "StoredMessage",
    "StoredPrivate",
    "chat_event",
    "pair_of",
    "stored_message",
]

KINDS: Final = frozenset({"say", "me"})  # room lines; private ones are StoredPrivate
BAN_KINDS: Final = frozenset({"name", "address"})  # a ban is on a name, or on an address range


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A line a search found: its place in the store's order of arrival, and the line
    (see :mod:`triochat.core.search`)."""

    seq: int  # a private hit: the private line's id (its own order of arrival)
    message: StoredMessage  # a private hit's room is "@" and the other person's name
    private: bool = False


@dataclass(frozen=True, slots=True, init=False)
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

    def __init__(self, room: str, id: int, ts: float, kind: str, sender: str, text: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"a stored message is 'say' or 'me', not {kind!r}")
        if id < 1:
            raise ValueError(f"message ids start at 1 (0 means none yet), not {id}")
        # A lone surrogate (JSON can carry one as "\ud800") cannot be written as UTF-8:
        # refused here, where the hub builds the message, it cannot become a batch that
        # fails on every retry and holds up everything behind it.
        if not (room.isascii() and sender.isascii() and text.isascii()):
            for one in (room, sender, text):
                one.encode("utf-8")  # UnicodeEncodeError is a ValueError
        # Written out, one per chat line: the generated __init__ of a frozen dataclass
        # looks object.__setattr__ up again for every field (2.4x slower to build).
        set_field = object.__setattr__
        set_field(self, "room", room)
        set_field(self, "id", id)
        set_field(self, "ts", ts)
        set_field(self, "kind", kind)
        set_field(self, "sender", sender)
        set_field(self, "text", text)


def pair_of(one: str, other: str) -> tuple[str, str]:
    """The key of a conversation: the two account keys, ordered (either may be the asker)."""
    return (one, other) if one <= other else (other, one)


@dataclass(frozen=True, slots=True)
class StoredPrivate:
    """One private message between two registered (logged-in) members.

    Attributes:
        a: The smaller of the two account keys (:func:`pair_of`).
        b: The larger one (``a == b`` for a note to oneself).
        id: The server's id for private lines (positive, strictly increasing over all
            conversations, so one number resumes every conversation of a member).
        ts: When the hub accepted it, in seconds since the Unix epoch.
        sender: The sender's name as it was shown.
        to: The recipient's name as it was shown.
        text: The text as it was delivered (already sanitised).
    """

    a: str
    b: str
    id: int
    ts: float
    sender: str
    to: str
    text: str

    def __post_init__(self) -> None:
        if self.a > self.b:
            raise ValueError("a private line's keys are ordered: use pair_of()")
        if self.id < 1:
            raise ValueError(f"private line ids start at 1, not {self.id}")
        for text in (self.a, self.b, self.sender, self.to, self.text):
            if not text.isascii():
                text.encode("utf-8")  # a lone surrogate: refused here, not at commit


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
        topic_locked: Only operators may change the topic.
    """

    name: str
    last_id: int = 0
    topic: str = ""
    topic_by: str = ""
    topic_ts: float = 0.0
    topic_locked: bool = False


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """A registered name.

    Attributes:
        key: The name's uniqueness key (:func:`triochat.core.names.name_key`): ``alice``
            also reserves ``Alice`` and ``a1ice``.
        name: The name as it was registered.
        password_hash: The salted scrypt hash (:mod:`triochat.core.passwords`); never
            the password. Left out of ``repr`` so no log line can carry it.
        created: When it was registered, in seconds since the Unix epoch.
    """

    key: str
    name: str
    password_hash: str = field(repr=False)
    created: float = 0.0


@dataclass(frozen=True, slots=True)
class OpRecord:
    """An operator made with ``/op`` (operators from ``--op`` are not stored).

    Attributes:
        key: The account's name key.
        name: The name as the operator who granted it typed it.
    """

    key: str
    name: str


@dataclass(frozen=True, slots=True)
class BanRecord:
    """A ban on a name or on an address range.

    Attributes:
        target: A name key (kind ``"name"``) or a normalised network such as
            ``"10.0.0.0/8"`` or ``"2001:db8::1/128"`` (kind ``"address"``).
        kind: ``"name"`` or ``"address"``.
        shown: The target as people see it: the name as typed, or the network.
        set_by: The operator who set it.
        reason: Why, as the operator wrote it (``""`` if no reason was given).
        ts: When it was set, in seconds since the Unix epoch.
        until: When it ends (seconds since the epoch), or None: until lifted.
    """

    target: str
    kind: str
    shown: str
    set_by: str
    reason: str = ""
    ts: float = 0.0
    until: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in BAN_KINDS:
            raise ValueError(f"a ban is on a 'name' or an 'address', not {self.kind!r}")


@dataclass(frozen=True, slots=True)
class MuteRecord:
    """A name that may read but not speak.

    Attributes:
        key: The name key.
        name: The name as the operator typed it.
        set_by: The operator who muted it.
        ts: When, in seconds since the Unix epoch.
        until: When it ends (seconds since the epoch), or None: until lifted.
    """

    key: str
    name: str
    set_by: str
    ts: float = 0.0
    until: float | None = None


@dataclass(frozen=True, slots=True)
class SaveAccount:
    """Create an account or change its password."""

    record: AccountRecord


@dataclass(frozen=True, slots=True)
class DropAccount:
    """Delete the account with this name key."""

    key: str


@dataclass(frozen=True, slots=True)
class SaveOp:
    """Make an account an operator."""

    record: OpRecord


@dataclass(frozen=True, slots=True)
class DropOp:
    """An account is no longer an operator."""

    key: str


@dataclass(frozen=True, slots=True)
class SaveBan:
    """Set a ban (replacing one on the same target)."""

    record: BanRecord


@dataclass(frozen=True, slots=True)
class DropBan:
    """Lift the ban on this target."""

    target: str


@dataclass(frozen=True, slots=True)
class SaveMute:
    """Mute a name (replacing an earlier mute of it)."""

    record: MuteRecord


@dataclass(frozen=True, slots=True)
class DropMute:
    """Unmute the name with this key."""

    key: str


@dataclass(frozen=True, slots=True)
class SaveNotify:
    """An account's notification level in a room (``all``, ``mentions`` or ``none``)."""

    key: str
    room: str
    level: str


@dataclass(frozen=True, slots=True)
class SaveSeen:
    """When an account was last here (its last connection left), in Unix seconds."""

    key: str
    ts: float


@dataclass(frozen=True, slots=True)
class DropPrefs:
    """Forget an account's own settings (it was dropped: whoever registers it next starts
    afresh)."""

    key: str


Pref = SaveNotify | SaveSeen | DropPrefs  # an account's own settings: kept, never published

Change = SaveAccount | DropAccount | SaveOp | DropOp | SaveBan | DropBan | SaveMute | DropMute


@dataclass(slots=True)
class Batch:
    """What one commit writes, in one transaction.

    Attributes:
        messages: New messages, in the order the hub assigned their ids.
        rooms: Created rooms or changed topics (upserted, later entries win). A record's
            ``last_id`` is merged with ``max``, never lowered.
        changes: Accounts, operators, bans and mutes made or lifted, applied in order.
        prefs: Accounts' notification levels and last-seen times, applied in order.
        dropped_rooms: Rooms to delete with their messages, *before* the rest is
            written: what the batch holds of such a room came after the drop (the room
            was made again). Add them with :meth:`drop_room`, which takes out what came
            before.
        private: New private lines between registered members, in id order.
    """

    messages: list[StoredMessage] = field(default_factory=list)
    rooms: list[RoomRecord] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    dropped_rooms: list[str] = field(default_factory=list)
    private: list[StoredPrivate] = field(default_factory=list)
    prefs: list[Pref] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.messages
            or self.rooms
            or self.changes
            or self.dropped_rooms
            or self.private
            or self.prefs
        )

    def drop_room(self, name: str) -> None:
        """Delete the room ``name``: what this batch holds of it so far goes too."""
        if any(message.room == name for message in self.messages):
            self.messages = [message for message in self.messages if message.room != name]
        if any(record.name == name for record in self.rooms):
            self.rooms = [record for record in self.rooms if record.name != name]
        if name not in self.dropped_rooms:
            self.dropped_rooms.append(name)

    def extend(self, later: Batch) -> None:
        """Add ``later``'s contents after this batch's, as if committed after it."""
        for name in later.dropped_rooms:
            self.drop_room(name)
        self.messages.extend(later.messages)
        self.rooms.extend(later.rooms)
        self.changes.extend(later.changes)
        self.private.extend(later.private)
        self.prefs.extend(later.prefs)


def stored_message(event: Chat) -> StoredMessage:
    """The record the store keeps of a chat event."""
    kind = "say" if isinstance(event, Said) else "me"
    return StoredMessage(event.room, event.id, event.ts, kind, event.sender, event.text)


def chat_event(record: StoredMessage, *, history: bool = True) -> Chat:
    """The event a stored record stands for (marked as history by default)."""
    kind = Said if record.kind == "say" else Acted
    return kind(record.ts, record.room, record.id, record.sender, record.text, history)
