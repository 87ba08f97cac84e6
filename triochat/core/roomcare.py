"""Keeping the room table usable: who may make rooms, which rooms expire, dropping one. No I/O.

Every room costs each node some memory and the store a row, and ``--max-rooms`` caps
how many there are. Without these rules one guest could fill the table for good (22
JSON hellos asking for 50 new rooms each) and nothing ever removed a room. So:

* **Making rooms is rationed** (:class:`RoomQuota`): one member (a connection) may make
  :data:`ROOMS_PER_MEMBER` new rooms, and one client address :data:`ROOMS_PER_ADDRESS`,
  in any :data:`QUOTA_WINDOW_S` (a sliding window), whether by ``/join``, a JSON
  ``join`` or a hello's ``rooms``/``since``. Past that the member gets
  ``too-many-rooms`` saying when it may try again. The address counts because
  reconnecting makes a new member. Joining a room that exists is never limited, and
  operators are exempt.
* **Empty rooms expire** (:meth:`RoomCare.expire`, on the state's tick): a room with
  nobody in it (on this node or another) for :data:`EMPTY_ROOM_EXPIRY_S`, and no chat
  line in that time, is removed from memory and from the store. ``#lobby`` never
  expires, nor does a *registered* room: one whose topic an operator locked
  (``/locktopic``), which is stored and crosses the cluster, so no second flag is
  needed. The time counts from when this node first saw the room empty: a restart
  starts it again.
* **Operators drop rooms** (``/droproom``, :mod:`triochat.core.moderation`): the
  members in it are moved out and told why, and the room and its stored history are
  deleted, on every node of a cluster (:class:`triochat.core.cluster.RoomDropped`).

Memory stays bounded: the quota remembers a member or an address only while it has
made a room within the window, so never more entries than the rooms made in an hour.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Final

from triochat.core import cluster
from triochat.core.access import Access
from triochat.core.durations import format_remaining
from triochat.core.events import Current, Left, Moderated
from triochat.core.logevents import log_event
from triochat.core.model import Member, RoomState
from triochat.core.names import LOBBY, name_key
from triochat.core.world import World

__all__ = [
    "EMPTY_ROOM_EXPIRY_S",
    "QUOTA_WINDOW_S",
    "ROOMS_PER_ADDRESS",
    "ROOMS_PER_MEMBER",
    "RoomCare",
    "RoomQuota",
]

log = logging.getLogger(__name__)

QUOTA_WINDOW_S: Final = 3600.0  # seconds: the quotas below are "per hour", sliding
ROOMS_PER_MEMBER: Final = 10  # new rooms one connection may make per window; people make a few
ROOMS_PER_ADDRESS: Final = 20  # ... one address (reconnecting is a new member); a NAT shares it
EMPTY_ROOM_EXPIRY_S: Final = 86_400.0  # a day: a room left overnight is still there next morning


class RoomQuota:
    """How many rooms each member and each address made lately (a sliding window)."""

    def __init__(
        self,
        window: float = QUOTA_WINDOW_S,
        per_member: int = ROOMS_PER_MEMBER,
        per_address: int = ROOMS_PER_ADDRESS,
    ) -> None:
        self.window = window
        self.per_member = per_member
        self.per_address = per_address
        self._members: dict[int, deque[float]] = {}  # member id -> when it made rooms
        self._addresses: dict[str, deque[float]] = {}  # address -> ...

    def __len__(self) -> int:
        """Members and addresses remembered."""
        return len(self._members) + len(self._addresses)

    def wait(self, member: Member, now: float) -> float:
        """Seconds before ``member`` may make another room (0.0: now)."""
        wait = 0.0
        address = self._addresses.get(member.address) if member.address is not None else None
        mine = self._members.get(member.id)
        for times, limit in ((mine, self.per_member), (address, self.per_address)):
            if times is None:
                continue
            while times and times[0] <= now - self.window:
                times.popleft()
            if len(times) >= limit:
                wait = max(wait, times[-limit] + self.window - now)
        return wait

    def spend(self, member: Member, now: float) -> None:
        """``member`` made a room at ``now``."""
        self._members.setdefault(member.id, deque()).append(now)
        if member.address is not None:
            self._addresses.setdefault(member.address, deque()).append(now)

    def sweep(self, now: float) -> None:
        """Forget the members and addresses that made no room within the window."""
        cutoff = now - self.window
        self._members = {k: t for k, t in self._members.items() if t and t[-1] > cutoff}
        self._addresses = {k: t for k, t in self._addresses.items() if t and t[-1] > cutoff}


class RoomCare:
    """The room table's upkeep; see the module docstring."""

    def __init__(self, world: World, access: Access, quota: RoomQuota | None = None) -> None:
        self._world = world
        self._access = access
        self.quota = quota if quota is not None else RoomQuota()

    def may_make(self, member: Member) -> bool:
        """True (and counted) if ``member`` may make a room now; else it is told when."""
        if self._access.is_op(member.account):
            return True
        world = self._world
        now = world.clock()
        wait = self.quota.wait(member, now)
        if wait > 0:
            quota = self.quota
            text = (
                f"you may make {quota.per_member} new rooms an hour "
                f"({quota.per_address} from one address); try again in "
                f"{format_remaining(wait)}, or join a room that exists (/rooms)"
            )
            world.error(member, "too-many-rooms", text)
            return False
        self.quota.spend(member, now)
        return True

    def drop(self, room: RoomState, by: str) -> None:
        """Move everyone out of ``room`` (telling them why), then delete it and its history."""
        world = self._world
        now = world.clock()
        reason = f"room dropped by {by}"
        dropped = Moderated(now, "drop-room", room.name, by)
        for member in list(room.members()):
            world.tell(member, dropped)
            room.discard(member)
            member.rooms.remove(room.name)
            key = name_key(member.name)
            world.publish(cluster.Exit(member.id, member.name, key, room.name, reason))
            world.tell(member, Left(now, room.name, member.name, room.online, reason))
            if member.current == room.name:
                member.current = member.rooms[-1] if member.rooms else None
                if member.current is not None:
                    world.tell(member, Current(now, member.current))
        if world.cluster is not None:  # other nodes' members leave it there by themselves
            for token in room.remote:
                remote = world.cluster.members.get(token)
                if remote is not None and room.name in remote.rooms:
                    remote.rooms.remove(room.name)
        self._remove(room)

    def expire(self, now: float) -> list[str]:
        """Remove the rooms that have been empty and silent long enough; their names."""
        self.quota.sweep(now)
        expired: list[str] = []
        for room in list(self._world.rooms.values()):
            if room.online or room.name == LOBBY or room.topic_locked:
                room.empty_since = None  # in use, or kept
            elif room.empty_since is None:
                room.empty_since = now
            else:
                last_line = room.recent[-1].record.ts if room.recent else 0.0
                if now - max(room.empty_since, last_line) >= EMPTY_ROOM_EXPIRY_S:
                    self._remove(room)
                    expired.append(room.name)
        if expired:
            log_event(log, "room.expired", count=len(expired), rooms=" ".join(expired[:20]))
        return expired

    def _remove(self, room: RoomState) -> None:
        world = self._world
        del world.rooms[room.name]
        world.effects.batch.drop_room(room.name)
