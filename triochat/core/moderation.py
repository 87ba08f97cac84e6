"""Operators' commands in the chat state: kick, ban, mute, op, drop, topic locks, rooms. No I/O.

Rules of this module:

* **One clear error, nothing else.** A member who is not an operator (logged into an
  account that ``--op`` or ``/op`` made one) gets ``not-operator`` and nothing changes.
* **``--op`` names stay theirs.** They cannot be ``/deop``-ed nor ``/drop``-ped: a
  dropped one could be registered by anyone, who would then be an operator that no
  ``/deop`` removes.
* **Every action is announced and logged with who did it.** The member acted on is
  told first; then the rooms it is in (a kick or ban shows as its ``leave``, with the
  reason ``kicked by bob: spam``; a mute as a ``mod`` event) and the operator.
* **Stored like everything else.** Bans, mutes and operators go into the state's
  batch as :data:`~triochat.core.records.Change` objects, so they are committed before
  anyone hears of them and survive a restart; :class:`~triochat.core.access.Access`
  holds them in memory, and the server's accept loop refuses a banned address from it.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final, assert_never

from triochat.core import cluster
from triochat.core.access import ban_target, ip_address
from triochat.core.admin import (
    Ban,
    Bans,
    Deop,
    Drop,
    DropRoom,
    Kick,
    LockTopic,
    ModCommand,
    Mute,
    Op,
    Unban,
    Unmute,
)
from triochat.core.durations import format_duration
from triochat.core.events import BanInfo, BanList, Moderated
from triochat.core.logevents import log_event
from triochat.core.names import LOBBY, name_error, name_key
from triochat.core.records import (
    BanRecord,
    Change,
    DropAccount,
    DropBan,
    DropMute,
    DropOp,
    MuteRecord,
    OpRecord,
    SaveBan,
    SaveMute,
    SaveOp,
)

if TYPE_CHECKING:
    from triochat.core.access import Access
    from triochat.core.model import ChatPort, Member

__all__ = ["VERBS", "Moderation"]

log = logging.getLogger(__name__)

VERBS: Final[dict[type, str]] = {  # how each command is named in its errors
    Op: "/op",
    Deop: "/deop",
    Kick: "/kick",
    Ban: "/ban",
    Unban: "/unban",
    Bans: "/bans",
    Mute: "/mute",
    Unmute: "/unmute",
    Drop: "/drop",
    DropRoom: "/droproom",
}
MAX_BANS: Final = 10_000  # bans in force; every accept checks the address ones


class Moderation:
    """The operator side of the chat state (see the module rules)."""

    def __init__(self, state: ChatPort, access: Access) -> None:
        self._state = state
        self.access = access

    def handle(self, member: Member, command: ModCommand) -> None:
        """Carry out an operator's command, or tell a non-operator it is not one."""
        if not self.access.is_op(member.account):
            verb = VERBS.get(type(command), "/locktopic")
            if isinstance(command, LockTopic) and not command.locked:
                verb = "/unlocktopic"
            text = f"only operators can use {verb}"
            if member.account is None:
                text += " (if you are one, /login first)"
            self._state.error(member, "not-operator", text)
            return
        match command:
            case Op(name=name):
                self._op(member, name)
            case Deop(name=name):
                self._deop(member, name)
            case Kick(name=name, reason=reason):
                self._kick(member, name, reason)
            case Ban(target=target, duration=duration, reason=reason):
                self._ban(member, target, duration, reason)
            case Unban(target=target):
                self._unban(member, target)
            case Bans():
                self._list(member)
            case Mute(name=name, duration=duration):
                self._mute(member, name, duration)
            case Unmute(name=name):
                self._unmute(member, name)
            case Drop(name=name):
                self._drop(member, name)
            case LockTopic(locked=locked, room=room):
                self._lock(member, locked, room)
            case DropRoom(room=room):
                self._drop_room(member, room)
            case _:
                assert_never(command)

    # -- helpers ------------------------------------------------------------------------

    def _event(
        self,
        op: Member,
        action: str,
        target: str,
        reason: str = "",
        until: float | None = None,
    ) -> Moderated:
        return Moderated(self._state.now(), action, target, op.name, reason, until)

    def _tell_all(self, event: Moderated, members: Iterable[Member]) -> None:
        """Send ``event`` once to each of ``members`` (in the order given)."""
        seen: set[int] = set()
        for member in members:
            if member.id not in seen:
                seen.add(member.id)
                self._state.tell(member, event)

    def _change(self, *changes: Change) -> None:
        for change in changes:
            self._state.change(change)

    def _until(self, duration: float | None) -> float | None:
        return None if duration is None else self._state.now() + duration

    # -- operators and accounts -------------------------------------------------------

    def _op(self, op: Member, name: str) -> None:
        key = name_key(name)
        if not self.access.registered(key):
            self._state.error(
                op, "no-such-account", f"{name} is not a registered account; it must /register"
            )
            return
        if self.access.is_op(key):
            self._state.error(op, "bad-request", f"{name} is an operator already")
            return
        self._change(SaveOp(OpRecord(key, name)))
        log_event(log, "moderation.op", conn=op.id, by=op.name, name=name)
        event = self._event(op, "op", name)
        self._tell_all(event, [*self._state.logged_in(key), op])

    def _deop(self, op: Member, name: str) -> None:
        key = name_key(name)
        if key in self.access.config_ops:
            text = f"{name} is an operator by the server's --op option; restart without it"
            self._state.error(op, "bad-request", text)
            return
        if key not in self.access.ops:
            self._state.error(op, "bad-request", f"{name} is not an operator")
            return
        self._change(DropOp(key))
        log_event(log, "moderation.deop", conn=op.id, by=op.name, name=name)
        event = self._event(op, "deop", name)
        self._tell_all(event, [*self._state.logged_in(key), op])

    def _drop(self, op: Member, name: str) -> None:
        key = name_key(name)
        if key in self.access.config_ops:  # else anyone could register it again, and be an op
            text = f"{name} is an operator by the server's --op option; restart without it first"
            self._state.error(op, "bad-request", text)
            return
        if not self.access.registered(key):
            self._state.error(op, "no-such-account", f"{name} is not a registered account")
            return
        owners = list(self._state.logged_in(key))
        self._change(DropAccount(key))
        if key in self.access.ops:
            self._change(DropOp(key))
        for owner in owners:
            owner.account = None
        log_event(log, "moderation.drop_account", conn=op.id, by=op.name, name=name)
        self._tell_all(self._event(op, "drop", name), [*owners, op])

    # -- kick, ban, mute ----------------------------------------------------------------

    def _kick(self, op: Member, name: str, reason: str) -> None:
        target = self._state.holder(name)
        if target is None:
            remote = self._state.remote_holder(name)
            if remote is None:
                self._state.error(op, "no-such-user", f"no such user: {name}")
                return
            log_event(
                log,
                "moderation.kick_remote",
                conn=op.id,
                by=op.name,
                name=remote.name,
                _why=_why(reason),
                reason=reason,
            )
            self._state.publish(cluster.Kick(remote.token, remote.name, op.name, reason))
            self._state.tell(op, self._event(op, "kick", remote.name, reason))
            return
        log_event(
            log,
            "moderation.kick",
            conn=op.id,
            by=op.name,
            name=target.name,
            _why=_why(reason),
            reason=reason,
        )
        event = self._event(op, "kick", target.name, reason)
        self._state.tell(target, event)
        self._state.remove(target, f"kicked by {op.name}{_why(reason)}")
        if target is not op:
            self._state.tell(op, event)

    def _ban(self, op: Member, text: str, duration: float | None, reason: str) -> None:
        parsed = ban_target(text)
        if isinstance(parsed, str):
            self._state.error(op, "bad-request", parsed)
            return
        kind, target, shown = parsed
        if len(self.access.bans) >= MAX_BANS and target not in self.access.bans:
            self._state.error(op, "bad-request", f"{MAX_BANS} bans are in force; lift some first")
            return
        now = self._state.now()
        until = self._until(duration)
        record = BanRecord(target, kind, shown, op.name, reason, now, until)
        victims = self._covered(record)
        if op in victims or (kind == "name" and target == name_key(op.name)):
            self._state.error(op, "bad-request", "that ban would include you")
            return
        self._change(SaveBan(record))
        how_long = f" for {format_duration(duration)}" if duration is not None else ""
        log_event(
            log,
            "moderation.ban",
            conn=op.id,
            by=op.name,
            name=shown,
            _for=how_long,
            seconds=duration,
            _why=_why(reason),
            reason=reason,
        )
        event = self._event(op, "ban", shown, reason, until)
        for victim in victims:
            self._state.tell(victim, self._event(op, "ban", victim.name, reason, until))
            self._state.remove(victim, f"banned by {op.name}{_why(reason)}")
        self._state.tell(op, event)

    def _covered(self, ban: BanRecord) -> list[Member]:
        """The members of this node that ``ban`` covers."""
        if ban.kind == "name":
            holder = self._state.holder(ban.shown)
            return [holder] if holder is not None else []
        network = ipaddress.ip_network(ban.target)
        return [m for m in self._state.all_members() if _in(m.address, network)]

    def _unban(self, op: Member, text: str) -> None:
        parsed = ban_target(text)
        target = text if isinstance(parsed, str) else parsed[1]
        ban = self.access.bans.get(target)
        if ban is None:
            self._state.error(op, "no-such-ban", f"{text} is not banned (see /bans)")
            return
        self._change(DropBan(target))
        log_event(log, "moderation.unban", conn=op.id, by=op.name, name=ban.shown)
        self._state.tell(op, self._event(op, "unban", ban.shown))

    def _list(self, op: Member) -> None:
        now = self._state.now()
        bans = sorted(
            (ban for ban in self.access.bans.values() if ban.until is None or ban.until > now),
            key=lambda ban: ban.ts,
        )
        rows = tuple(BanInfo(b.shown, b.kind, b.set_by, b.reason, b.ts, b.until) for b in bans)
        self._state.tell(op, BanList(now, rows))

    def _mute(self, op: Member, name: str, duration: float | None) -> None:
        problem = name_error(name)
        if problem is not None:
            self._state.error(op, "bad-name", problem)
            return
        key = name_key(name)
        if key == name_key(op.name):
            self._state.error(op, "bad-request", "you cannot mute yourself")
            return
        target = self._state.holder(name)
        shown = target.name if target is not None else name
        until = self._until(duration)
        self._change(SaveMute(MuteRecord(key, shown, op.name, self._state.now(), until)))
        how_long = f" for {format_duration(duration)}" if duration is not None else ""
        log_event(
            log,
            "moderation.mute",
            conn=op.id,
            by=op.name,
            name=shown,
            _for=how_long,
            seconds=duration,
        )
        self._announce(op, self._event(op, "mute", shown, until=until), target)

    def _unmute(self, op: Member, name: str) -> None:
        key = name_key(name)
        mute = self.access.mute(key, self._state.now())
        if mute is None:
            self._state.error(op, "bad-request", f"{name} is not muted")
            return
        self._change(DropMute(key))
        target = self._state.holder(name)
        shown = target.name if target is not None else mute.name
        log_event(log, "moderation.unmute", conn=op.id, by=op.name, name=shown)
        self._announce(op, self._event(op, "unmute", shown), target)

    def _announce(self, op: Member, event: Moderated, target: Member | None) -> None:
        """Tell ``target``, everyone in its rooms, and the operator."""
        concerned: list[Member] = []
        if target is not None:
            concerned.append(target)
            for room in target.rooms:
                concerned.extend(self._state.rooms[room].members())
        self._tell_all(event, [*concerned, op])

    # -- what operators on other nodes did --------------------------------------------------

    def kicked_elsewhere(self, target: Member, by: str, reason: str) -> None:
        """An operator on another node kicked ``target`` (a member of this node)."""
        now = self._state.now()
        self._state.tell(target, Moderated(now, "kick", target.name, by, reason, None))
        self._state.remove(target, f"kicked by {by}{_why(reason)}")

    def changed_elsewhere(self, change: Change) -> None:
        """Carry out here what a change made on another node means for this node's members.

        The change itself is applied already. A ban removes the members it covers; a
        dropped account logs its members out.
        """
        match change:
            case SaveBan(record=ban):
                for victim in self._covered(ban):
                    event = Moderated(
                        self._state.now(), "ban", victim.name, ban.set_by, ban.reason, ban.until
                    )
                    self._state.tell(victim, event)
                    self._state.remove(victim, f"banned by {ban.set_by}{_why(ban.reason)}")
            case DropAccount(key=key):
                for owner in self._state.logged_in(key):
                    owner.account = None
            case _:
                pass

    # -- topic locks --------------------------------------------------------------------

    def _lock(self, op: Member, locked: bool, room_name: str | None) -> None:
        room = self._state.room_for(op, room_name)
        if room is None:
            return
        action = "lock-topic" if locked else "unlock-topic"
        if room.topic_locked == locked:
            state = "locked" if locked else "not locked"
            self._state.error(op, "bad-request", f"the topic of {room.name} is {state} already")
            return
        room.topic_locked = locked
        self._state.save_room(room)
        topic = cluster.TopicSet(room.name, room.topic, room.topic_by, room.topic_ts, locked)
        self._state.publish(topic)
        how = action.split("-")[0]
        log_event(log, "moderation.topic_lock", conn=op.id, by=op.name, action=how, room=room.name)
        self._tell_all(self._event(op, action, room.name), [*room.members(), op])

    # -- rooms ----------------------------------------------------------------------------

    def _drop_room(self, op: Member, name: str) -> None:
        """Move everyone out of the room ``name`` and delete it, here and on every node."""
        if name == LOBBY:
            self._state.error(op, "bad-request", f"{LOBBY} cannot be dropped")
            return
        room = self._state.rooms.get(name)
        if room is None:
            self._state.error(op, "no-such-room", f"no such room: {name}")
            return
        log_event(
            log, "moderation.drop_room", conn=op.id, by=op.name, room=name, online=room.online
        )
        if room.name not in op.rooms:  # else it is told with the room's members
            self._state.tell(op, self._event(op, "drop-room", name))
        # Published first: the other nodes drop it before they hear this node's members
        # leave it, so nobody there sees them leave one by one.
        self._state.publish(cluster.RoomDropped(name, op.name))
        self._state.drop_room(room, op.name)


def _why(reason: str) -> str:
    return f": {reason}" if reason else ""


def _in(host: str | None, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    """True if the address ``host`` (None: no address) lies in ``network``."""
    address = ip_address(host) if host is not None else None
    return address is not None and address in network
