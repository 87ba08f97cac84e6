"""Per-room notification levels (``/notify``) and missed mentions (``/mentions``). No I/O.

A registered member's levels are kept per account in the store (``SaveNotify``) and
told to it when it logs in, so every client of that account rings, notifies or stays
silent alike; a guest's last for its session only (``Member.notify``). Clients do the
alerting: the server only keeps and tells the level (``all``, ``mentions``: the
default, ``none``). When an account's last connection leaves, the time is kept
(``SaveSeen``); ``/mentions`` lists the lines of the member's rooms that named it since
then, newest first, at most :data:`MAX_MENTIONS`. They are read from the store, paced
like a replay (:class:`~triochat.core.mentions.MentionQuery`: the search index finds the
candidates, the mention rule confirms them); without an index (``--no-search-index``)
the answer comes from the lines the server holds in memory (the last
:data:`~triochat.core.model.CACHE_MESSAGES` of each room), made when it is asked.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, assert_never

from triochat.core.commands import Notify
from triochat.core.events import MentionInfo, NotifyInfo
from triochat.core.mentions import DEFAULT_LEVEL, MentionQuery, names
from triochat.core.model import Member, Query
from triochat.core.records import DropPrefs, Pref, SaveNotify, SaveSeen
from triochat.core.world import World

__all__ = ["MAX_MENTIONS", "MAX_NOTIFY_ROOMS", "Notifications"]

MAX_MENTIONS: Final = 50  # lines one /mentions lists at most: a screenful, newest first
MAX_NOTIFY_ROOMS: Final = 200  # rooms one account may set a level for (all told at login)


class Notifications:
    """The ``/notify`` and ``/mentions`` handlers; see the module docstring."""

    def __init__(self, world: World) -> None:
        self._world = world

    def load(self, prefs: Iterable[Pref]) -> None:
        """Restore the stored levels and last-seen times (at start, from the store)."""
        world = self._world
        for pref in prefs:
            match pref:
                case SaveNotify(key=key, room=room, level=level):
                    world.levels.setdefault(key, {})[room] = level
                case SaveSeen(key=key, ts=ts):
                    world.seen[key] = ts
                case DropPrefs():  # pragma: no cover - a store hands back none
                    pass
                case _:
                    assert_never(pref)

    def _levels(self, member: Member) -> dict[str, str]:
        if member.account is None:
            return member.notify
        return self._world.levels.get(member.account, {})

    def level(self, member: Member, room: str) -> str:
        """``member``'s notification level in ``room``."""
        return self._levels(member).get(room, DEFAULT_LEVEL)

    def notify(self, member: Member, command: Notify) -> None:
        """``/notify [ROOM] [LEVEL]``: show or set a room's level."""
        world = self._world
        room = command.room or member.current
        if room is None:
            world.error(member, "no-room", "you are in no room; name one: /notify #room all")
            return
        levels = self._levels(member)
        if command.level is not None:
            if room not in levels and len(levels) >= MAX_NOTIFY_ROOMS:
                text = f"you have set {MAX_NOTIFY_ROOMS} rooms already; set one back to mentions"
                world.error(member, "too-many-rooms", text)
                return
            if member.account is None:
                member.notify[room] = command.level
            else:
                world.levels.setdefault(member.account, {})[room] = command.level
                world.store_pref(SaveNotify(member.account, room, command.level))
        world.tell(member, NotifyInfo(world.clock(), room, self.level(member, room)))

    def tell_all(self, member: Member) -> None:
        """Tell a member that just logged in every level its account has set."""
        world = self._world
        now = world.clock()
        for room, level in sorted(self._levels(member).items()):
            world.tell(member, NotifyInfo(now, room, level))

    def mentions(self, member: Member) -> None:
        """``/mentions``: the lines that named a registered member since it was last here."""
        world = self._world
        if member.account is None:
            text = "/mentions is for registered names: /register PASSWORD keeps yours"
            world.error(member, "not-registered", text)
            return
        since = world.seen.get(member.account, 0.0)
        recent = tuple(self._recent(member, since))
        asked = MentionQuery(member.name, tuple(member.rooms), since, MAX_MENTIONS, recent)
        room = member.current or ""
        member.link.replay(Query(member, room, MAX_MENTIONS, mentions=asked))

    def _recent(self, member: Member, since: float) -> list[MentionInfo]:
        """The mentions of ``member`` since ``since`` in its rooms' recent lines."""
        world = self._world
        me = member.name.casefold()
        found: list[MentionInfo] = []
        for name in member.rooms:
            room = world.rooms.get(name)
            if room is None:
                continue
            count = 0
            for line in reversed(room.recent):
                record = line.record
                if record.ts <= since or count >= MAX_MENTIONS:
                    break
                if record.sender.casefold() != me and names(record.text, member.name):
                    info = MentionInfo(name, record.id, record.ts, record.sender, record.text)
                    found.append(info)
                    count += 1
        found.sort(key=lambda m: (m.ts, m.room, m.id), reverse=True)
        return found[:MAX_MENTIONS]
