"""What members say and are: chat lines, private messages, names, who, away, help. No I/O.

Private messages between two logged-in members are numbered (one server-wide sequence)
and stored through the same batch as chat lines; guests' are delivered only.

Chat lines get their id here, strictly increasing per room, and go into the step's
batch for the store; the hub commits that batch before it lets any queued byte go out,
so nothing a client has seen can be missing after a crash. In a cluster (the world's
``cluster`` is set) the chat log numbers chat lines instead: :meth:`Talk.say`
publishes a :class:`~triochat.core.cluster.Line` and every node delivers it when the
log hands it back with its id (:meth:`Talk.deliver_chat`).
"""

from __future__ import annotations

import logging

from triochat.core import cluster
from triochat.core.access import Access
from triochat.core.arrivals import Arrivals
from triochat.core.commands import HELP_LINES, OPERATOR_HELP_LINES, Away, IrcSay, Me, Msg, Say
from triochat.core.events import Acted, Chat, HelpText, Private, Said, WhoList
from triochat.core.events import Away as AwayEvent
from triochat.core.logevents import log_event
from triochat.core.model import CachedLine, Member, RoomState
from triochat.core.names import name_key
from triochat.core.protocols import PROTOCOLS
from triochat.core.records import StoredPrivate, pair_of, stored_message
from triochat.core.world import World

__all__ = ["Talk"]

log = logging.getLogger(__name__)


class Talk:
    """Chat, private messages, renames, who, away and help; see the module docstring."""

    def __init__(self, world: World, arrivals: Arrivals, access: Access) -> None:
        self._world = world
        self._arrivals = arrivals
        self._access = access

    def say(self, member: Member, command: Say | Me | IrcSay) -> None:
        """A chat line (``Say``, or an IRC member's ``IrcSay``) or an action (``Me``) in a
        room the member is in."""
        world = self._world
        room = world.target(member, command.room, must_be_in=True)
        if room is None or world.refuse_muted(member):
            return
        now = world.clock()
        if world.cluster is not None:  # the cluster's log numbers it; see deliver_chat()
            kind = "me" if isinstance(command, Me) else "say"
            floor = max(room.floor, room.last_id)
            key = name_key(member.name)
            line = cluster.Line(
                member.id, member.name, key, room.name, kind, command.text, now, floor
            )
            world.publish(line)
            return
        room.last_id += 1
        event: Chat
        if isinstance(command, Say):
            event = Said(now, room.name, room.last_id, member.name, command.text)
        elif isinstance(command, IrcSay):
            notice, tags = command.notice, command.tags
            event = Said(
                now, room.name, room.last_id, member.name, command.text, notice=notice, tags=tags
            )
        else:
            event = Acted(now, room.name, room.last_id, member.name, command.text)
        self.deliver_chat(room, event, member)

    def deliver_chat(
        self, room: RoomState, event: Chat, sender: Member | None, *, live: bool = True
    ) -> None:
        """Store, cache and broadcast a numbered chat line (``sender``: if on this node).

        ``live=False``: store and cache only (members get it as a replay instead).
        """
        world = self._world
        record = stored_message(event)
        world.effects.batch.messages.append(record)
        recent = room.recent
        if len(recent) == recent.maxlen:
            room.complete = False  # the oldest cached line is about to be only on disk
        recent.append(CachedLine(record))
        world.chat_events += 1
        messages = world.messages  # as world.count(), written out: once per chat line
        messages[record.kind] = messages.get(record.kind, 0) + 1
        if not live:
            return
        # JSON clients get their own line back, to show the server's order, id and time;
        # a terminal already shows what was typed.
        echo = sender is None or PROTOCOLS[sender.mode].echoes_own_chat
        world.broadcast(room, event, None if echo else sender)

    def rename(self, member: Member, name: str) -> None:
        world = self._world
        old = member.name
        if name == old:
            world.error(member, "bad-request", f"you are already {name}")
            return
        problem = self._arrivals.name_problem(name, member)
        if problem is None and world.muted(member) is not None:
            problem = ("muted", "you are muted: you cannot change your name")
        if problem is not None:
            log_event(
                log, "member.rename_refused", conn=member.id, old=old, name=name, reason=problem[1]
            )
            world.error(member, *problem)
            return
        if member.account is not None and name_key(name) != member.account:
            member.account = None  # one is logged in while one holds the name
        world.publish(cluster.Rename(member.id, old, name_key(old), name, name_key(name)))
        log_event(log, "member.renamed", conn=member.id, old=old, name=name)
        self._arrivals.set_name(member, name)

    def private(self, member: Member, command: Msg) -> None:
        world = self._world
        if world.refuse_muted(member):
            return
        to, text = command.to, command.text
        target = world.holder(to)
        if target is None:
            remote = world.remote_holder(to)
            if remote is None:
                world.error(member, "no-such-user", f"no such user: {to}")
                return
            now = world.clock()
            key = name_key(member.name)
            op = cluster.Private(member.id, member.name, key, remote.token, remote.name, text, now)
            world.count(world.messages, "private")
            world.publish(op)
            world.tell(member, Private(now, member.name, remote.name, text))
            return
        event = self._stored_private(member, target, text)
        world.count(world.messages, "private")
        world.tell(target, event)
        if target is not member:
            world.tell(member, event)
            if target.away:
                world.tell(member, AwayEvent(event.ts, target.name, target.away))

    def _stored_private(self, member: Member, target: Member, text: str) -> Private:
        """The event of a private message on this node, numbered and put in the step's
        batch (committed before it is delivered) when both ends are logged in.

        A guest's is never stored; nor, in a cluster, is any (the nodes' stores would
        each number their own: docs/operations.md says so).
        """
        world = self._world
        now = world.clock()
        one, other = member.account, target.account
        if one is None or other is None or world.cluster is not None:
            return Private(now, member.name, target.name, text)
        world.private_last_id += 1
        line_id = world.private_last_id
        a, b = pair_of(one, other)
        record = StoredPrivate(a, b, line_id, now, member.name, target.name, text)
        world.effects.batch.private.append(record)
        return Private(now, member.name, target.name, text, line_id)

    def who(self, member: Member, room_name: str | None) -> None:
        world = self._world
        room = world.target(member, room_name, must_be_in=False)
        if room is not None:
            names = tuple(world.names(room.name))
            away = tuple(
                sorted(
                    ((m.name, m.away) for m in room.members() if m.away),
                    key=lambda pair: pair[0].casefold(),
                )
            )
            founder = next((m.name for m in room.members() if m.id == room.founder), None)
            ops = (founder,) if founder is not None else ()
            world.tell(member, WhoList(world.clock(), room.name, names, away, ops))

    def away(self, member: Member, command: Away) -> None:
        """``/away [MESSAGE]``: set (or, with none, clear) the member's away message."""
        member.away = command.text
        world = self._world
        status = "away" if command.text else "back"
        log_event(log, "member.away", conn=member.id, name=member.name, status=status)
        world.tell(member, AwayEvent(world.clock(), member.name, command.text))

    def help(self, member: Member) -> None:
        world = self._world
        if self._access.is_op(member.account):
            world.tell(member, HelpText(world.clock(), (*HELP_LINES, *OPERATOR_HELP_LINES)))
        else:
            world.tell(member, HelpText(world.clock()))
