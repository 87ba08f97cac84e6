"""Who is where, and how they are told: the shared part of the chat state. No I/O.

:class:`World` holds the members, rooms and names, collects the step's
:class:`~triochat.core.model.Effects`, and delivers events: to one member, to a room
(fan-out, once per wire protocol present), or to everyone. The arrivals, history and
talk modules work on it; :class:`triochat.core.state.ChatState` is the façade over all
of them.

Delivery never waits: a member whose link is full is noted as too slow and dropped
once the current step is done (:meth:`World.take_too_slow`), while everyone else
carries on. Buffering without bound would let one stalled client exhaust the server's
memory; waiting for it would stall everyone else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from triochat.core import cluster
from triochat.core.access import Access
from triochat.core.codec import Mode
from triochat.core.durations import format_remaining
from triochat.core.events import ErrorEvent, Event
from triochat.core.model import Effects, Limits, Member, RoomState
from triochat.core.names import LOBBY, name_key
from triochat.core.protocols import PROTOCOLS
from triochat.core.records import (
    Change,
    DropAccount,
    DropPrefs,
    MuteRecord,
    Pref,
    RoomRecord,
    SaveSeen,
)

if TYPE_CHECKING:
    from triochat.core.remote import ClusterSide, RemoteMember

__all__ = ["World", "room_record", "until_text"]


class World:
    """Members, rooms, names, and the step's effects; see the module docstring."""

    def __init__(self, limits: Limits, clock: Callable[[], float], access: Access) -> None:
        self.limits = limits
        self.clock = clock
        self.access = access
        self.members: dict[int, Member] = {}
        self.rooms: dict[str, RoomState] = {LOBBY: RoomState(LOBBY)}
        self.by_name: dict[str, Member] = {}
        self.too_slow: list[Member] = []
        self.effects = Effects()
        self.cluster: ClusterSide | None = None  # set by the façade in a cluster
        self.chat_events = 0  # chat lines since start, for the statistics
        self.private_last_id = 0  # the last stored private line's id (server-wide)
        # Counters for ChatState.statistics(): plain ints, counted per event, not per member.
        self.deliveries = 0  # events queued to members (a broadcast counts its audience)
        self.messages: dict[str, int] = {}  # by kind: say, me, private
        self.disconnects: dict[str, int] = {}  # members gone, by reason
        self.too_slow_dropped = 0
        # Accounts' own settings (triochat.core.notify): /notify levels by name key, then
        # room; when each account's last connection left.
        self.levels: dict[str, dict[str, str]] = {}
        self.seen: dict[str, float] = {}

    # -- delivery ---------------------------------------------------------------------

    def put(self, member: Member, data: bytes) -> None:
        """Queue ``data`` for one member, never waiting (full: it is too slow)."""
        if not member.link.put(data):
            self.too_slow.append(member)

    def tell(self, member: Member, event: Event) -> None:
        """Send an event to one member, encoded for its protocol and point of view."""
        data = PROTOCOLS[member.mode].encode_for(event, member)
        self.deliveries += 1
        if not member.link.put(data):
            self.too_slow.append(member)

    def error(self, member: Member, code: str, text: str) -> None:
        self.tell(member, ErrorEvent(self.clock(), code, text))

    def broadcast(self, room: RoomState, event: Event, skip: Member | None = None) -> None:
        """Send a room event to its members but ``skip``: one fan-out per protocol.

        The hottest path of the server (one iteration per delivery): each protocol
        encodes once per variant and runs its own tight loop of puts.
        """
        for mode, members in room.by_mode.items():
            if members:
                PROTOCOLS[mode].fanout(event, members, room.name, skip, self.too_slow)
                self.deliveries += len(members)

    def everyone(self, event: Event, skip: Member | None = None) -> None:
        """Send a server-wide event (a rename, shutdown) to every member but ``skip``."""
        encoded: dict[Mode, bytes] = {}
        for member in self.members.values():
            if member is not skip:
                data = encoded.get(member.mode)
                if data is None:
                    data = encoded[member.mode] = PROTOCOLS[member.mode].encode(event)
                self.put(member, data)

    def count(self, table: dict[str, int], key: str) -> None:
        """Add one to ``table[key]`` (a statistics counter)."""
        table[key] = table.get(key, 0) + 1

    def take_too_slow(self) -> list[Member]:
        """Members whose queue overflowed since the last call."""
        slow, self.too_slow = self.too_slow, []
        return slow

    # -- effects ------------------------------------------------------------------------

    def publish(self, op: cluster.Op) -> None:
        """Publish ``op`` to the other nodes (in a cluster; else nothing)."""
        if self.cluster is not None:
            self.effects.published.append(op)

    def save_room(self, room: RoomState) -> None:
        """Queue ``room``'s record (topic, lock) for the store."""
        self.effects.batch.rooms.append(room_record(room))

    def store_change(self, change: Change) -> None:
        """Apply an account, operator, ban or mute change and queue it for the store."""
        self.access.apply(change)
        self.effects.batch.changes.append(change)
        if isinstance(change, DropAccount):  # its own settings go with it
            self.levels.pop(change.key, None)
            self.seen.pop(change.key, None)
            self.store_pref(DropPrefs(change.key))

    def store_pref(self, pref: Pref) -> None:
        """Queue an account's own setting (a /notify level, a last-seen time) for the store."""
        self.effects.batch.prefs.append(pref)

    def note_left(self, member: Member) -> None:
        """``member`` leaves the server: if it is logged in, its account was here till now."""
        if member.account is not None:
            now = self.seen[member.account] = self.clock()
            self.store_pref(SaveSeen(member.account, now))

    def take_effects(self) -> Effects:
        effects, self.effects = self.effects, Effects()
        return effects

    # -- lookups ------------------------------------------------------------------------

    def room_or_new(self, name: str) -> RoomState:
        """The room ``name``, made (and stored) if this node has not heard of it yet."""
        room = self.rooms.get(name)
        if room is None:
            room = self.rooms[name] = RoomState(name)
            self.save_room(room)
        return room

    def holder(self, name: str) -> Member | None:
        """The member using ``name`` (or a name too like it), if any."""
        return self.by_name.get(name_key(name))

    def remote_holder(self, name: str) -> RemoteMember | None:
        """The member of another node using ``name`` (or one too like it), if any."""
        return self.cluster.holder(name_key(name)) if self.cluster is not None else None

    def names(self, room: str = LOBBY) -> list[str]:
        """Members' names in ``room``, sorted without regard to case."""
        state = self.rooms.get(room)
        if state is None:
            return []
        names = [m.name for m in state.members()]
        names.extend(state.remote.values())
        return sorted(names, key=str.casefold)

    def muted(self, member: Member) -> MuteRecord | None:
        """The mute in force on ``member``'s name, if any."""
        if not self.access.mutes:
            return None
        return self.access.mute(name_key(member.name), self.clock())

    def refuse_muted(self, member: Member) -> bool:
        """If ``member`` is muted, tell it so and return True."""
        if not self.access.mutes:
            return False  # the usual case, once per chat line: no lookup
        mute = self.muted(member)
        if mute is None:
            return False
        text = f"you are muted{until_text(mute.until, self.clock())}: you can read but not speak"
        self.error(member, "muted", text)
        return True

    def target(self, member: Member, room: str | None, *, must_be_in: bool) -> RoomState | None:
        """The room a command is about (default: current), or None after an error."""
        if room is None:
            room = member.current
            if room is None:
                self.error(member, "no-room", "you are in no room; /join one first")
                return None
        state = self.rooms.get(room)
        if state is None:
            self.error(member, "no-such-room", f"no such room: {room}")
            return None
        if must_be_in and room not in member.rooms:
            self.error(member, "not-in-room", f"you are not in {room}; /join it first")
            return None
        return state


def room_record(room: RoomState) -> RoomRecord:
    """A snapshot of ``room`` for the store (created, or its topic changed)."""
    return RoomRecord(
        room.name, room.last_id, room.topic, room.topic_by, room.topic_ts, room.topic_locked
    )


def until_text(until: float | None, now: float) -> str:
    """`` (9m more)`` for a ban or mute that ends, ``""`` for one until lifted."""
    return "" if until is None else f" ({format_remaining(until - now)} more)"
