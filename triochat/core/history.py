"""Replays: the recent lines on joining, ``/history``, and resuming. No I/O.

Three kinds of replay, two ways of sending them:

* **From the cache, at once.** Joining a room replays its last ``--history`` lines,
  and ``/history`` is answered from the room's cache of recent lines when that covers
  it. Both are small (at most :data:`~triochat.core.model.CACHE_MESSAGES` lines) and
  go straight onto the member's link.
* **Paced, through the link.** A resume (a hello's ``since``) and a ``/history`` the
  cache cannot cover become a :class:`~triochat.core.model.Query` queued on the link
  (:meth:`~triochat.core.model.Link.replay`) at its place in the member's output.
  The server reads the lines from the store and writes them as the connection drains:
  a replay of thousands of lines never fills the live send queue (so nobody is dropped
  as "too slow" for having been away), and never makes the hub wait for a disk.

:func:`replay_bytes` encodes a replay the same way for both.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from triochat.core.codec import Mode
from triochat.core.commands.types import Search
from triochat.core.events import (
    Event,
    Found,
    Gap,
    MentionInfo,
    MentionList,
    Private,
    SearchResults,
)
from triochat.core.model import CachedLine, Member, Query, RoomState
from triochat.core.names import PRIVATE_SINCE, name_key
from triochat.core.protocols import PROTOCOLS
from triochat.core.records import SearchHit, StoredMessage, StoredPrivate, chat_event
from triochat.core.search import SEARCH_PAGE, SearchQuery, unpack_position
from triochat.core.search_pages import next_position
from triochat.core.world import World

__all__ = ["Replays", "mention_bytes", "replay_bytes", "search_bytes"]


def mention_bytes(query: Query, found: Sequence[MentionInfo] | None, now: float) -> bytes:
    """The answer to a ``/mentions``: the lines the store found, newest first, or (None:
    the store has no search index or could not be read) those of the recent lines."""
    asked = query.mentions
    assert asked is not None, "a /mentions query"
    lines = asked.recent if found is None else tuple(found)
    member = query.member
    event = MentionList(now, asked.since, lines[: asked.limit])
    return PROTOCOLS[member.mode].encode(event, member.name, member.current)


def search_bytes(query: Query, hits: list[SearchHit], now: float) -> bytes:
    """The answer to a ``/search``: a page of ``hits`` (the store may give one more
    than a page: that one only says there is more)."""
    asked = query.search
    text = asked.text if asked is not None else ""
    page = hits[: query.limit]
    more = next_position(asked, page) if len(hits) > query.limit else 0
    found = tuple(
        Found(m.room, m.id, m.sender, m.kind, m.text, m.ts) for m in (hit.message for hit in page)
    )
    member = query.member
    event = SearchResults(now, text, found, more)
    return PROTOCOLS[member.mode].encode(event, member.name, member.current)


def replay_bytes(
    query: Query,
    records: Iterable[StoredMessage | StoredPrivate],
    count: int,
    skipped: int,
    now: float,
) -> list[bytes]:
    """A replay of ``records`` (``count`` of them, oldest first) for ``query``'s member.

    ``skipped`` older lines did not fit: a :class:`~triochat.core.events.Gap` comes
    first. Then the protocol's header (plain), the lines, and its end marker (JSON,
    when the query asked for one).
    """
    if query.plan is not None:
        return query.plan.render(list(records))
    member = query.member
    protocol = PROTOCOLS[member.mode]
    out: list[bytes] = []
    if skipped:
        out.append(protocol.encode(Gap(now, query.room, skipped), member.name, member.current))
    if query.header:
        header = protocol.replay_header(count, query.room if query.elsewhere else None)
        if header is not None:
            out.append(header)
    oldest = None
    for record in records:
        if oldest is None:
            oldest = record.id
        if isinstance(record, StoredPrivate):
            event: Event = Private(
                record.ts, record.sender, record.to, record.text, record.id, history=True
            )
            out.append(protocol.encode(event, member.name, member.current))
        else:
            out.append(protocol.encode(chat_event(record)))
    if query.end:
        first = oldest if oldest is not None else query.before or 1
        # Private ids are server-wide: a full page is the only sign of more.
        more = count >= query.limit if query.private is not None else first > 1
        end = protocol.replay_end(query.room, count, more, now)
        if end is not None:
            out.append(end)
    return out


class Replays:
    """The state's side of replays (see the module docstring)."""

    def __init__(self, world: World) -> None:
        self._world = world

    def recent(self, member: Member, room: RoomState, limit: int, *, header: bool) -> None:
        """Replay the latest ``limit`` lines of ``room`` from the cache (joining)."""
        if limit <= 0 or not room.recent:
            return
        entries = list(room.recent)[-limit:]
        protocol = PROTOCOLS[member.mode]
        put = self._world.put
        if header:
            data = protocol.replay_header(len(entries), None)
            if data is not None:
                put(member, data)
        mode = member.mode
        for entry in entries:
            put(member, _cached(entry, mode))

    def search(self, member: Member, command: Search) -> None:
        """``/search``: over the rooms ``member`` is in (an operator: every room) and the
        member's own private lines (``in:@NAME``: one conversation), paced like a replay
        (the store's search runs in the history reader, off the hub)."""
        world = self._world
        operator = world.access.is_op(member.account)
        rooms: tuple[str, ...] | None = None if operator else tuple(member.rooms)
        mine = member.account  # the session's account key: a guest has no private lines
        peer: str | None = None
        if command.room is not None and command.room.startswith("@"):
            if mine is None:
                text = "private lines are kept for registered names only: log in (/login) first"
                world.error(member, "not-logged-in", text)
                return
            rooms, peer = (), name_key(command.room[1:])
        elif command.room is not None:
            if not operator and command.room not in member.rooms:
                text = f"you are not in {command.room}; /search covers the rooms you are in"
                world.error(member, "not-in-room", text)
                return
            rooms, mine = (command.room,), None
        sender = None if command.sender is None else name_key(command.sender)
        before, private_before = unpack_position(command.before)
        # One more than a page: if it comes, there is a next page.
        asked = SearchQuery(
            command.terms,
            rooms,
            sender,
            before,
            SEARCH_PAGE + 1,
            command.text,
            mine=mine,
            peer=peer,
            private_before=private_before,
        )
        room = command.room or member.current or ""
        member.link.replay(Query(member, room, SEARCH_PAGE, search=asked))

    def history(self, member: Member, room: RoomState, limit: int, before: int | None) -> None:
        """``/history``: from the cache if it covers the request, else paced."""
        elsewhere = room.name != member.current
        query = Query(member, room.name, limit, None, before, True, True, room.last_id, elsewhere)
        cached = [e for e in room.recent if before is None or e.record.id < before]
        if len(cached) >= limit or room.complete:
            records = [e.record for e in cached[-limit:]]
            now = self._world.clock()
            for data in replay_bytes(query, records, len(records), 0, now):
                self._world.put(member, data)
            return
        member.link.replay(query)

    def private_history(self, member: Member, other: str, limit: int, before: int | None) -> None:
        """``/history @NAME``: the asker's own conversation with NAME, read from the store.

        Only a logged-in member has one; the query carries the asker's own account key,
        so nobody (operators included) can read a conversation they are not in.
        """
        world = self._world
        if member.account is None:
            text = "private history is kept for registered names only: log in (/login) first"
            world.error(member, "not-logged-in", text)
            return
        key = name_key(other)
        if not world.access.registered(key):
            world.error(member, "no-such-account", f"{other} is not a registered name")
            return
        query = Query(
            member,
            f"@{other}",
            limit,
            None,
            before,
            True,
            True,
            world.private_last_id,
            True,
            private=(member.account, key),
        )
        member.link.replay(query)

    def private_since(self, member: Member, after: int) -> None:
        """Resume: the logged-in member's private lines after id ``after``, all peers."""
        world = self._world
        last = world.private_last_id
        if member.account is None or after >= last:
            return
        limit = world.limits.resume_limit
        query = Query(
            member, PRIVATE_SINCE, limit, after=after, upto=last, private=(member.account, "")
        )
        member.link.replay(query)

    def since(self, member: Member, room: RoomState, after: int) -> None:
        """Resume: every line of ``room`` after id ``after`` (up to the resume limit)."""
        if after >= room.last_id:
            return  # nothing missed: nothing to read
        limit = self._world.limits.resume_limit
        member.link.replay(Query(member, room.name, limit, after=after, upto=room.last_id))


def _cached(entry: CachedLine, mode: Mode) -> bytes:
    """A cached line's replay encoding for ``mode``, made on first use."""
    encoded = entry.encoded
    if encoded is None:
        encoded = entry.encoded = {}
    data = encoded.get(mode)
    if data is None:
        data = encoded[mode] = PROTOCOLS[mode].encode(chat_event(entry.record))
    return data
