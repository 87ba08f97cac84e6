"""Rooms: joining, parting, listing, topics, ``/history``, and resuming after a hello. No I/O.

How many rooms may be made, which expire and how operators drop one:
:mod:`triochat.core.roomcare`.
"""

from __future__ import annotations

import logging
from typing import Final

from triochat.core import cluster
from triochat.core.access import Access
from triochat.core.arrivals import Arrivals
from triochat.core.codec import Mode
from triochat.core.commands import Hello, History
from triochat.core.events import Current, Left, RoomInfo, RoomList, TopicInfo
from triochat.core.history import Replays
from triochat.core.logevents import log_event
from triochat.core.model import Member, RoomState
from triochat.core.names import LOBBY, PRIVATE_SINCE, name_key
from triochat.core.protocols import PROTOCOLS
from triochat.core.roomcare import RoomCare
from triochat.core.world import World

__all__ = ["MAX_TOPIC_CHARS", "Rooms"]

log = logging.getLogger(__name__)

MAX_TOPIC_CHARS: Final = 300  # one line in any client; IRC networks allow 300-390


class Rooms:
    """What members do with rooms; see the module docstring."""

    def __init__(
        self, world: World, arrivals: Arrivals, replays: Replays, access: Access, care: RoomCare
    ) -> None:
        self._world = world
        self._arrivals = arrivals
        self._replays = replays
        self._access = access
        self._care = care

    def join(self, member: Member, name: str, after: int | None = None) -> None:
        """``/join``: enter ``name`` (made if new); ``after``: resume it from that id.

        Making a room counts against the member's and its address's quota
        (:mod:`triochat.core.roomcare`); a room that exists is always joinable.
        """
        world = self._world
        room = world.rooms.get(name)
        if room is not None and name in member.rooms:
            # Already in it: it becomes (or stays) current, and the member is told so
            # either way: a client waiting for a reply to its join gets one.
            member.current = name
            world.tell(member, Current(world.clock(), name))
            return
        if len(member.rooms) >= world.limits.max_rooms_per_member:
            limit = world.limits.max_rooms_per_member
            world.error(member, "too-many-rooms", f"you are in {limit} rooms already; /part one")
            return
        if room is None:
            if len(world.rooms) >= world.limits.max_rooms:
                world.error(member, "too-many-rooms", "this server has no room for more rooms")
                return
            if not self._care.may_make(member):
                return
            room = world.room_or_new(name)
            log_event(log, "room.created", conn=member.id, by=member.name, room=name)
            world.publish(cluster.RoomMade(name))
        self._arrivals.enter(member, room, announce_self=True)
        world.publish(cluster.Enter(member.id, member.name, name_key(member.name), name))
        if room.topic:
            topic = TopicInfo(
                world.clock(), name, room.topic, room.topic_by, False, room.topic_locked
            )
            world.tell(member, topic)
        if after is not None:
            self._replays.since(member, room, after)
        elif PROTOCOLS[member.mode].replays_on_join:
            self._replays.recent(member, room, world.limits.history, header=True)

    def part(self, member: Member, room_name: str | None, reason: str = "") -> None:
        world = self._world
        room = world.target(member, room_name, must_be_in=True)
        if room is None:
            return
        why = f"part: {reason}" if reason else "part"  # "part: why" reads as a reason too
        self._arrivals.exit(member, room, why)
        key = name_key(member.name)
        world.publish(cluster.Exit(member.id, member.name, key, room.name, why))
        world.tell(member, Left(world.clock(), room.name, member.name, room.online, why))
        if member.current == room.name:
            member.current = member.rooms[-1] if member.rooms else None
            if member.current is not None:
                world.tell(member, Current(world.clock(), member.current))

    def list_rooms(self, member: Member) -> None:
        world = self._world
        rooms = tuple(
            RoomInfo(room.name, room.online, room.topic)
            for room in sorted(world.rooms.values(), key=lambda r: r.name)
        )
        world.tell(member, RoomList(world.clock(), rooms))

    def topic(self, member: Member, text: str | None, room_name: str | None) -> None:
        world = self._world
        room = world.target(member, room_name, must_be_in=text is not None)
        if room is None:
            return
        now = world.clock()
        if text is None:
            topic = TopicInfo(now, room.name, room.topic, room.topic_by, False, room.topic_locked)
            world.tell(member, topic)
            return
        if room.topic_locked and not self._access.is_op(member.account):
            text = f"the topic of {room.name} is locked: only operators may change it"
            world.error(member, "topic-locked", text)
            return
        if world.refuse_muted(member):
            return
        if len(text) > MAX_TOPIC_CHARS:
            world.error(member, "too-long", f"a topic is at most {MAX_TOPIC_CHARS} characters")
            return
        room.topic, room.topic_by, room.topic_ts = text, member.name, now
        world.save_room(room)
        world.publish(cluster.TopicSet(room.name, text, member.name, now, room.topic_locked))
        log_event(log, "room.topic_set", conn=member.id, by=member.name, room=room.name)
        changed = TopicInfo(now, room.name, text, member.name, True, room.topic_locked)
        world.broadcast(room, changed)

    def history(self, member: Member, command: History) -> None:
        if command.peer is not None:
            self._replays.private_history(member, command.peer, command.limit, command.before)
            return
        room = self._world.target(member, command.room, must_be_in=False)
        if room is not None:
            before = command.before
            if command.around is not None:  # a search hit in the middle of the page
                before = command.around + command.limit // 2 + 1
            self._replays.history(member, room, command.limit, before)

    def resume(self, member: Member, hello: Hello) -> None:
        """After a hello: replay the lobby since its id, then (re)join the other rooms.

        Every replay is queued on the member's link in this order and paced by the
        server; none waits for another here.
        """
        world = self._world
        for room_name, after in (*hello.since, *((room, -1) for room in hello.rooms)):
            if room_name == PRIVATE_SINCE:
                self._replays.private_since(member, after)
            elif room_name == LOBBY:
                if after >= 0:
                    self._replays.since(member, world.rooms[LOBBY], after)
            elif room_name not in member.rooms:
                self.join(member, room_name, after if after >= 0 else None)
        if member.current != LOBBY and LOBBY in member.rooms and member.mode is Mode.JSON:
            member.current = LOBBY  # a resumed client starts where a new one would
            world.tell(member, Current(world.clock(), LOBBY))

    def room_for(self, member: Member, room: str | None) -> RoomState | None:
        """The room a command is about (default: current), or None after an error."""
        return self._world.target(member, room, must_be_in=False)
