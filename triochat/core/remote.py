"""This node's side of a cluster: other nodes' members, and what the log reports.

The chat state (:mod:`triochat.core.state`) of a node in a cluster has a
:class:`ClusterSide`. It keeps the members of the other nodes (in ``/who``, the
counts and name checks, never linked), collects what this node must publish, and
applies what the cluster's log reports (:mod:`triochat.core.cluster`): numbered chat
lines, other nodes' operations, nodes gone, refusals, outages. Like
:mod:`triochat.core.moderation` it acts through the state's public methods. No I/O,
no trio.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final, assert_never

from triochat.core import cluster
from triochat.core.cluster import ID_JUMP, token
from triochat.core.events import (
    PRESENCE_NAMES,
    Acted,
    Chat,
    Joined,
    Left,
    Private,
    Renamed,
    Said,
    TopicInfo,
)
from triochat.core.logevents import log_event
from triochat.core.model import Query, RemoteMember
from triochat.core.names import name_key

if TYPE_CHECKING:
    from triochat.core.model import ChatPort, Member, RoomState
    from triochat.core.moderation import Moderation

__all__ = ["CLUSTER_DOWN", "CLUSTER_GAP", "CLUSTER_UP", "ClusterSide", "RemoteMember"]

log = logging.getLogger(__name__)

CLUSTER_DOWN: Final = "lost contact with the cluster; messages will be delayed"
CLUSTER_UP: Final = "back in contact with the cluster"
CLUSTER_GAP: Final = (
    "the cluster lost its recent data (its Redis restarted without it); "
    "messages sent meanwhile may be missing"
)


class ClusterSide:
    """What a node of a cluster knows of the others; see the module docstring."""

    def __init__(self, state: ChatPort, moderation: Moderation, node: str) -> None:
        self._state = state
        self._moderation = moderation
        self.node = node
        self.members: dict[str, RemoteMember] = {}  # other nodes' members, by token
        self.by_key: dict[str, RemoteMember] = {}  # ... by name key

    def holder(self, key: str) -> RemoteMember | None:
        """The member of another node whose name has the key ``key``, if any."""
        return self.by_key.get(key)

    def clear(self) -> None:
        """Forget the other nodes' members (this node is stopping)."""
        self.members.clear()
        self.by_key.clear()

    def apply(self, item: cluster.ClusterIn) -> None:
        """Apply what the cluster's log reports (see :mod:`triochat.core.cluster`)."""
        if type(item) is cluster.Sequenced:  # (first, without the match: nearly all are)
            self._sequenced(item.node, item.id, item.line)
            return
        state = self._state
        match item:
            case cluster.Sequenced(node=node, id=line_id, line=line):
                self._sequenced(node, line_id, line)
            case cluster.Backlog(room=name, lines=lines):
                self._backlog(name, lines)
            case cluster.Remote(node=node, op=op):
                self._remote_op(node, op)
            case cluster.NodeGone(node=node, reason=reason):
                for remote in [r for r in self.members.values() if r.node == node]:
                    self._remote_leave(remote, reason)
            case cluster.Refused(what=what, op=op):
                self._refused(what, op)
            case cluster.ClusterDown():
                log_event(log, "cluster.down")
                state.notice_all("cluster-down", CLUSTER_DOWN)
            case cluster.ClusterUp(lost_data=lost_data):  # the hub publishes resync_ops()
                lost = " (it lost its data)" if lost_data else ""
                log_event(log, "cluster.up", _lost=lost, lost_data=lost_data)
                state.notice_all("cluster-up", CLUSTER_UP)
                if lost_data:
                    state.notice_all("gap", CLUSTER_GAP)
                    for room in state.rooms.values():
                        room.floor = max(room.floor, room.last_id + ID_JUMP)
            case _:
                assert_never(item)

    def resync_ops(self) -> list[cluster.Op]:
        """Everything the other nodes must know of this one: rooms, topics, members."""
        state = self._state
        ops: list[cluster.Op] = [cluster.RoomMade(name) for name in state.rooms]
        for room in state.rooms.values():
            if room.topic:
                ops.append(
                    cluster.TopicSet(
                        room.name, room.topic, room.topic_by, room.topic_ts, room.topic_locked
                    )
                )
        for member in state.members.values():
            key = name_key(member.name)
            ops.append(cluster.Arrive(member.id, member.name, key, tuple(member.rooms)))
        return ops

    def _sequenced(self, node: str, line_id: int, line: cluster.Line, *, live: bool = True) -> bool:
        """Store and (``live``) broadcast a line; False if it was delivered already."""
        state = self._state
        room = state.rooms.get(line.room)
        if room is None:
            room = state.room_or_new(line.room)
        if line_id <= room.last_id:
            return False  # read twice (after the log came back): delivered already
        room.last_id = line_id
        event: Chat
        if line.kind == "me":
            event = Acted(line.ts, room.name, line_id, line.name, line.text)
        else:
            event = Said(line.ts, room.name, line_id, line.name, line.text)
        sender = state.members.get(line.conn) if node == self.node else None
        state.deliver_chat(room, event, sender, live=live)
        return True

    def _backlog(self, name: str, lines: tuple[cluster.Sequenced, ...]) -> None:
        """A catch-up: store the lines, then replay them to each member, paced.

        The replay (a :class:`~triochat.core.model.Query` on each member's link, at its
        place in the output) is read from the store after this batch's commit and
        written as the member's connection drains: it never fills the send queue, so
        a burst of thousands of lines drops nobody. Beyond ``--resume-limit`` lines the
        oldest are skipped with a ``gap`` notice saying how many (``/history`` pages
        them).
        """
        first: int | None = None
        for item in lines:
            if self._sequenced(item.node, item.id, item.line, live=False) and first is None:
                first = item.id
        room = self._state.rooms.get(name)
        if first is None or room is None:
            return  # nothing new
        limit = self._state.limits.resume_limit
        log_event(log, "cluster.caught_up", lines=len(lines), room=name)
        for member in room.members():
            # Plain lines of a room that is not the member's current one come under a
            # "last N messages in ROOM" line, as /history of another room does.
            elsewhere = name != member.current
            query = Query(
                member,
                name,
                limit,
                after=first - 1,
                header=elsewhere,
                upto=room.last_id,
                elsewhere=elsewhere,
            )
            member.link.replay(query)

    def _remote_op(self, node: str, op: cluster.Op) -> None:
        state = self._state
        tok = token(node, getattr(op, "conn", 0))
        remote = self.members.get(tok)
        match op:
            case cluster.Arrive(name=name, rooms=rooms):
                if remote is None:
                    remote = RemoteMember(tok, node, name)
                    self.members[tok] = remote
                    self.by_key[name_key(name)] = remote
                elif remote.name != name:
                    self._remote_rename(remote, name)
                for room in rooms:
                    self._remote_enter(remote, room)
            case cluster.Rename(name=name):
                if remote is not None:
                    self._remote_rename(remote, name)
            case cluster.Leave(reason=reason):
                if remote is not None:
                    self._remote_leave(remote, reason)
            case cluster.Enter(room=room):
                if remote is not None:
                    self._remote_enter(remote, room)
            case cluster.Exit(room=room, reason=reason):
                if remote is not None and room in remote.rooms:
                    self._remote_exit(remote, state.room_or_new(room), reason)
            case cluster.Private(to=to, to_name=to_name, name=name, text=text, ts=ts):
                target = self._addressee(to, to_name)
                if target is not None:
                    state.tell(target, Private(ts, name, to_name, text))
            case cluster.RoomMade(room=room):
                state.room_or_new(room)
            case cluster.RoomDropped(room=name, by=by):
                dropped = state.rooms.get(name)
                if dropped is not None:
                    log_event(log, "cluster.room_dropped", by=by, room=name, node=node)
                    state.drop_room(dropped, by)
            case cluster.TopicSet(room=name, text=text, by=by, ts=ts, locked=locked):
                self._remote_topic(state.room_or_new(name), text, by, ts, locked)
            case cluster.Changed(change=change):
                state.store_change(change)
                self._moderation.changed_elsewhere(change)
            case cluster.Kick(to=to, to_name=to_name, by=by, reason=reason):
                target = self._addressee(to, to_name)
                if target is not None:
                    self._moderation.kicked_elsewhere(target, by, reason)
            case cluster.Line():  # pragma: no cover - lines come back as Sequenced
                pass
            case _:
                assert_never(op)

    def _addressee(self, to: str, name: str) -> Member | None:
        """The member of this node with token ``to``, if it is still called ``name``."""
        state = self._state
        node, _, conn = to.rpartition(":")
        member = state.members.get(int(conn)) if node == self.node and conn.isdigit() else None
        return member if member is not None and member.name == name else None

    def _remote_topic(self, room: RoomState, text: str, by: str, ts: float, locked: bool) -> None:
        state = self._state
        if (room.topic, room.topic_by, room.topic_ts) == (text, by, ts):
            if room.topic_locked != locked:  # an operator (un)locked it
                room.topic_locked = locked
                state.save_room(room)
            return  # else a node published its topics again
        room.topic, room.topic_by, room.topic_ts, room.topic_locked = text, by, ts, locked
        state.save_room(room)
        state.broadcast(room, TopicInfo(ts, room.name, text, by, True, locked))

    def _remote_enter(self, remote: RemoteMember, name: str) -> None:
        state = self._state
        if name in remote.rooms:
            return
        room = state.room_or_new(name)
        remote.rooms.append(name)
        room.remote[remote.token] = remote.name
        if room.online > state.limits.coalesce_above:
            room.pending_joined += 1
            if len(room.pending_names) < PRESENCE_NAMES:
                room.pending_names.append(remote.name)
            return
        state.broadcast(room, Joined(state.now(), room.name, remote.name, room.online))

    def _remote_exit(self, remote: RemoteMember, room: RoomState, reason: str) -> None:
        state = self._state
        remote.rooms.remove(room.name)
        room.remote.pop(remote.token, None)
        if room.online >= state.limits.coalesce_above:
            room.pending_left += 1
            return
        state.broadcast(room, Left(state.now(), room.name, remote.name, room.online, reason))

    def _remote_leave(self, remote: RemoteMember, reason: str) -> None:
        state = self._state
        self.members.pop(remote.token, None)
        key = name_key(remote.name)
        if self.by_key.get(key) is remote:
            del self.by_key[key]
        for name in list(remote.rooms):
            self._remote_exit(remote, state.rooms[name], reason)

    def _remote_rename(self, remote: RemoteMember, name: str) -> None:
        state = self._state
        old = remote.name
        if self.by_key.get(name_key(old)) is remote:
            del self.by_key[name_key(old)]
        remote.name = name
        self.by_key[name_key(name)] = remote
        for room in remote.rooms:
            state.rooms[room].remote[remote.token] = name
        state.everyone(Renamed(state.now(), old, name))

    def _refused(self, what: str, op: cluster.Op) -> None:
        """The log refused one of this node's operations (another node won a name)."""
        state = self._state
        conn = getattr(op, "conn", None)
        member = state.members.get(conn) if isinstance(conn, int) else None
        if member is None:
            return
        match op:
            case cluster.Arrive(name=name) if member.name == name:
                guest = state.guest_name()
                text = f"the name {name} was taken on another server at the same moment"
                log_event(log, "cluster.name_lost", conn=member.id, name=name)
                state.error(member, "name-taken", f"{text}; you are now {guest}")
                state.force_rename(member, guest)
                key = name_key(guest)
                state.publish(cluster.Arrive(member.id, guest, key, tuple(member.rooms)))
            case cluster.Rename(old=old, name=name) if member.name == name:
                text = f"the name {name} was taken on another server at the same moment"
                state.error(member, "name-taken", f"{text}; you are {old} again")
                state.force_rename(member, old)
            case cluster.Line(room=room) if what == "unavailable":
                text = f"your line in {room} was not sent: the cluster is unreachable for now"
                state.error(member, "not-sent", text)
            case cluster.Line(room=room):
                text = f"your line in {room} was not sent: your name is held on another server"
                state.error(member, "not-sent", text)
            case cluster.Private(to_name=to_name):
                text = f"your message to {to_name} was not sent: your name is held elsewhere"
                state.error(member, "not-sent", text)
            case _:
                log_event(log, "cluster.refused", what=what, op=repr(op))
