"""The IRC desk: IRC requests checked, answered in numerics, or mapped onto triochat's. No I/O.

The IRC protocol (:mod:`triochat.core.protocols.irc`) parses a line into an
:class:`~triochat.core.commands.IrcAsk`; :meth:`IrcDesk.ask` checks it the way IRC
clients expect (``403`` no such channel, ``442`` not on it, ``401`` no such nick,
``461`` missing parameters, ...) and hands what is left to the chat state as the
command triochat already has: ``JOIN`` is :class:`Join`, ``PRIVMSG #room`` is
:class:`Say` (CTCP ACTION :class:`Me`), ``PRIVMSG nick`` :class:`Msg`, ``NICK``
:class:`Nick`, ``KICK`` :class:`RoomKick` and so on. What has no triochat command
(``WHO``, ``WHOIS``, ``NAMES``, ``LUSERS``, ``MODE``, ``PING``, ``CAP``) is answered
here. A ``NOTICE`` is never answered with an error. ``CHATHISTORY`` is read from the
store (:mod:`triochat.core.ircchathistory`), a client without it gets the room's last
lines after ``NAMES`` on ``JOIN`` (:mod:`triochat.core.ircplayback`), and a labelled
request is answered with its label (:mod:`triochat.core.irclabels`).

Room founders live here too (:meth:`IrcDesk.room_kick`): the first member to enter an
empty room is its operator (``@``) until it leaves, and may put others out of it;
server operators may everywhere.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable
from typing import Final

from triochat.core import cluster
from triochat.core import ircchathistory as chathistory
from triochat.core.access import Access
from triochat.core.admin import Login
from triochat.core.arrivals import Arrivals
from triochat.core.codec import Mode
from triochat.core.commands import (
    Command,
    Help,
    IrcAsk,
    IrcSay,
    Join,
    Me,
    Msg,
    Nick,
    Part,
    RoomKick,
    Say,
    Topic,
)
from triochat.core.events import Left
from triochat.core.hygiene import has_visible, sanitise
from triochat.core.irclabels import run_labelled
from triochat.core.ircplayback import join_playback
from triochat.core.logevents import log_event
from triochat.core.model import Member, Query, RoomState
from triochat.core.names import name_key, room_error, room_name
from triochat.core.protocols import IRC
from triochat.core.protocols.ircevents import KICKED
from triochat.core.protocols.irclines import line, numeric, source, time_tag
from triochat.core.protocols.ircregister import cap_reply, nick_problem
from triochat.core.protocols.ircsession import (
    ECHO,
    LABELED_RESPONSE,
    MESSAGE_TAGS,
    SERVER_TIME,
    USERHOST_IN_NAMES,
)
from triochat.core.world import World

__all__ = ["IrcDesk"]

log = logging.getLogger(__name__)

MAX_TARGETS: Final = 10  # channels or nicks in one comma list

Dispatch = Callable[[Member, Command], None]


class IrcDesk:
    """IRC requests and room founders; see the module docstring."""

    def __init__(
        self, world: World, arrivals: Arrivals, access: Access, dispatch: Dispatch
    ) -> None:
        self._world = world
        self._arrivals = arrivals
        self._access = access
        self._dispatch = dispatch
        self._tagged = 0  # TAGMSGs relayed: their msgids
        # The desk's table: each IRC verb it answers, and its method (PRIVMSG and NOTICE
        # carry tags as well, see ask).
        self._verbs: dict[str, Callable[[Member, tuple[str, ...]], None]] = {
            verb: getattr(self, f"_{verb.lower()}") for verb in _VERBS
        }
        self._verbs["AUTHENTICATE"] = self._arrivals.irc.authenticate  # SASL after registering

    # -- helpers ------------------------------------------------------------------------

    def _send(self, member: Member, text: str) -> None:
        self._world.put(member, text.encode())

    def _num(self, member: Member, code: str, *params: str) -> None:
        self._send(member, numeric(IRC.server, code, member.name, *params))

    def is_room_op(self, member_id: int, account: str | None, room: RoomState) -> bool:
        """A room's operator: its founder, or a server operator."""
        return room.founder == member_id or self._access.is_op(account)

    def _prefix(self, member: Member, room: RoomState) -> str:
        return "@" if self.is_room_op(member.id, member.account, room) else ""

    def _room(
        self, member: Member, text: str, *, must_be_in: bool, quiet: bool = False
    ) -> RoomState | None:
        """The room ``text`` names, or None after 403 / 442 (none when ``quiet``)."""
        room = None if room_error(text) else self._world.rooms.get(room_name(text))
        if room is None:
            if not quiet:
                self._num(member, "403", text, "No such channel")
            return None
        if must_be_in and room.name not in member.rooms:
            if not quiet:
                self._num(member, "442", room.name, "You're not on that channel")
            return None
        return room

    # -- the desk -----------------------------------------------------------------------

    def ask(self, member: Member, command: IrcAsk) -> None:
        """Answer one IRC request (see the module docstring), labelled if it asked."""
        if command.label and member.irc is not None and LABELED_RESPONSE in member.irc.caps:
            if not run_labelled(
                member, IRC.server, command.label, lambda: self._ask(member, command)
            ):
                self._world.too_slow.append(member)
            return
        self._ask(member, command)

    def _ask(self, member: Member, command: IrcAsk) -> None:
        verb, params = command.verb, command.params
        needs = _MIN_PARAMS.get(verb, 0)
        if len(params) < needs:
            if verb == "NICK":
                self._num(member, "431", "No nickname given")
            elif verb in ("PRIVMSG", "NOTICE") and not params:
                if verb == "PRIVMSG":
                    self._num(member, "411", f"No recipient given ({verb})")
            elif verb == "PRIVMSG":
                self._num(member, "412", "No text to send")
            elif verb != "NOTICE":
                self._num(member, "461", verb, "Not enough parameters")
            return
        if verb in ("PRIVMSG", "NOTICE"):
            self._privmsg(member, params, verb == "NOTICE", command.tags)
            return
        if verb == "TAGMSG":
            self._tagmsg(member, params[0], command.tags)
            return
        handler = self._verbs.get(verb)
        if handler is None:
            self._num(member, "421", verb, "Unknown command")
            return
        handler(member, params)

    def _nick(self, member: Member, params: tuple[str, ...]) -> None:
        name = sanitise(params[0]).strip()
        problem = nick_problem(IRC.server, member.name, name)
        if problem is not None:
            self._send(member, problem)
            return
        holder = self._world.holder(name)
        if holder is not None and holder is not member:
            self._num(member, "433", name, "Nickname is already in use")
            return
        if name != member.name:
            self._dispatch(member, Nick(name))

    def _user(self, member: Member, params: tuple[str, ...]) -> None:
        self._num(member, "462", "You may not reregister")

    _pass = _user

    def _cap(self, member: Member, params: tuple[str, ...]) -> None:
        if member.irc is None:  # pragma: no cover - only IRC members send IrcAsk
            return
        caps = set(member.irc.caps)
        reply = cap_reply(IRC.server, member.name, params, caps)
        member.irc.set_caps(frozenset(caps))
        if reply:
            self._send(member, reply)

    def _ping(self, member: Member, params: tuple[str, ...]) -> None:
        self._send(member, line(IRC.server, "PONG", IRC.server, params[0]))

    def _motd(self, member: Member, params: tuple[str, ...]) -> None:
        self._num(member, "422", "MOTD File is missing")

    def _help(self, member: Member, params: tuple[str, ...]) -> None:
        self._dispatch(member, Help())

    def _list(self, member: Member, params: tuple[str, ...]) -> None:
        """Rooms with someone in them (an IRC channel exists while it has members)."""
        wanted = (
            {room_name(t) for t in params[0].split(",") if not room_error(t)} if params else None
        )
        self._num(member, "321", "Channel", "Users  Name")
        for room in sorted(self._world.rooms.values(), key=lambda r: r.name):
            if room.online and (wanted is None or room.name in wanted):
                self._num(member, "322", room.name, str(room.online), room.topic)
        self._num(member, "323", "End of /LIST")

    def _quit(self, member: Member, params: tuple[str, ...]) -> None:
        """ERROR to the quitter (RFC 2812), then it leaves; the others see its reason."""
        why = sanitise(params[0]).strip()[:200] if params else ""
        self._send(member, line("", "ERROR", f"Closing link ({why or 'Quit'})"))
        self._arrivals.remove(member, f"Quit: {why}" if why else "quit")

    def _join(self, member: Member, params: tuple[str, ...]) -> None:
        if params[0] == "0":
            for name in list(member.rooms):
                self._dispatch(member, Part(name))
            return
        for text in params[0].split(",")[:MAX_TARGETS]:
            problem = room_error(text) if text.startswith("#") else "no #"
            if problem is not None:
                self._num(member, "403", text, "No such channel")
                continue
            name = room_name(text)
            if name in member.rooms:
                continue
            self._dispatch(member, Join(name))
            room = self._world.rooms.get(name)
            if room is not None and name in member.rooms:
                self._names_of(member, room)
                limit = self._world.limits.history
                for data in join_playback(member, room.name, room.recent, limit, IRC.server):
                    self._world.put(member, data)

    def _part(self, member: Member, params: tuple[str, ...]) -> None:
        reason = sanitise(params[1]).strip()[:200] if len(params) > 1 else ""
        for text in params[0].split(",")[:MAX_TARGETS]:
            room = self._room(member, text, must_be_in=True)
            if room is not None:
                self._dispatch(member, Part(room.name, reason))

    def _chathistory(self, member: Member, params: tuple[str, ...]) -> None:
        """IRCv3 ``CHATHISTORY``, read from the store (see :mod:`.ircchathistory`)."""
        rooms = self._world.rooms
        caps = member.irc.caps if member.irc is not None else frozenset()
        joined = tuple(member.rooms)
        last = {name: rooms[name].last_id for name in joined if name in rooms}
        asked = chathistory.plan(
            IRC.server, member.name, params, joined=joined, last_id=last, caps=caps,
            account=member.account, private_upto=self._world.private_last_id,
        )  # fmt: skip
        if isinstance(asked, bytes):
            self._world.put(member, asked)
        elif asked.sub != "TARGETS" and not asked.upto:
            self._world.put(member, b"".join(asked.render([])))  # nothing stored yet
        else:
            member.link.replay(Query(member, asked.room or asked.target, asked.limit, plan=asked))

    def _privmsg(
        self, member: Member, params: tuple[str, ...], notice: bool = False, tags: str = ""
    ) -> None:
        text = params[1]
        action = text.startswith("\x01ACTION ") or text == "\x01ACTION\x01"
        if action:
            text = text[8:].rstrip("\x01")
        elif text.startswith("\x01"):
            return  # other CTCP (VERSION, PING ...): not answered
        text = sanitise(text).strip()
        if not has_visible(text):
            if not notice:
                self._num(member, "412", "No text to send")
            return
        for target in params[0].split(",")[:MAX_TARGETS]:
            if target.startswith("#"):
                room = self._room(member, target, must_be_in=False, quiet=notice)
                if room is None:
                    continue
                if room.name not in member.rooms:
                    if not notice:
                        self._num(member, "404", room.name, "Cannot send to channel")
                    continue
                said: Command = Say(text, room.name)
                if action:
                    said = Me(text, room.name)
                elif notice or tags:
                    said = IrcSay(text, room.name, notice, tags)
                self._dispatch(member, said)
            elif target.casefold() == "nickserv":
                self._nickserv(member, text)
            elif self._world.holder(target) is None and self._world.remote_holder(target) is None:
                if not notice:
                    self._num(member, "401", target, "No such nick/channel")
            else:
                self._dispatch(member, Msg(target, f"* {text}" if action else text))

    def _tagmsg(self, member: Member, target: str, tags: str) -> None:
        """IRCv3 TAGMSG: tags alone, to the members that asked for message-tags (only
        IRC members can; nothing is stored, plain and JSON members see nothing)."""
        if target.startswith("#"):
            room = self._room(member, target, must_be_in=True)
            if room is None:
                return
            name, members = room.name, list(room.local(Mode.IRC).values())
        else:
            one = self._world.holder(target)
            if one is None:
                self._num(member, "401", target, "No such nick/channel")
                return
            name, members = one.name, [one, member]
        self._tagged += 1
        now = self._world.clock()
        head = f"msgid=tag-{self._tagged}" + (f";{tags}" if tags else "")
        text = line(source(member.name, IRC.server), "TAGMSG", name)
        for who in dict.fromkeys(members):
            caps = who.irc.caps if who.irc is not None else frozenset()
            if MESSAGE_TAGS not in caps or (who is member and ECHO not in caps):
                continue
            stamp = f"{time_tag(now)};" if SERVER_TIME in caps else ""
            self._world.put(who, f"@{stamp}{head} {text}".encode())

    def _notice(self, member: Member, params: tuple[str, ...]) -> None:
        self._privmsg(member, params, notice=True)

    def _nickserv(self, member: Member, text: str) -> None:
        """``IDENTIFY [NAME] PASSWORD``: log in to a triochat account."""
        words = text.split()
        if len(words) in (2, 3) and words[0].upper() == "IDENTIFY":
            name, password = (member.name, words[1]) if len(words) == 2 else (words[1], words[2])
            self._dispatch(member, Login(name, password))
            return
        reply = "usage: IDENTIFY [NAME] PASSWORD (triochat accounts; see /help on the native port)"
        self._send(member, line("NickServ!NickServ@" + IRC.server, "NOTICE", member.name, reply))

    def _topic(self, member: Member, params: tuple[str, ...]) -> None:
        setting = len(params) > 1
        room = self._room(member, params[0], must_be_in=setting)
        if room is None:
            return
        if setting and room.topic_locked and not self.is_room_op(member.id, member.account, room):
            self._num(member, "482", room.name, "You're not channel operator")
            return
        self._dispatch(member, Topic(sanitise(params[1]).strip() if setting else None, room.name))

    def _kick(self, member: Member, params: tuple[str, ...]) -> None:
        reason = sanitise(params[2]).strip() if len(params) > 2 else ""
        self.room_kick(member, RoomKick(params[0], params[1], reason))

    def _names(self, member: Member, params: tuple[str, ...]) -> None:
        if not params:
            self._num(member, "366", "*", "End of /NAMES list")
            return
        room = self._room(member, params[0], must_be_in=False, quiet=True)
        if room is None:
            self._num(member, "366", params[0], "End of /NAMES list")
            return
        self._names_of(member, room)

    def _names_of(self, member: Member, room: RoomState) -> None:
        full = member.irc is not None and USERHOST_IN_NAMES in member.irc.caps
        names = [
            self._prefix(m, room) + (source(m.name, IRC.server) if full else m.name)
            for m in room.members()
        ]
        names.extend(room.remote.values())
        out = numeric(IRC.server, "353", member.name, "=", room.name, " ".join(names))
        self._send(
            member, out + numeric(IRC.server, "366", member.name, room.name, "End of /NAMES list")
        )

    def _who(self, member: Member, params: tuple[str, ...]) -> None:
        """``WHO #room``, ``WHO nick`` or ``WHO mask`` (``*`` and ``?`` in a nick)."""
        mask = params[0] if params else "*"
        rows: list[tuple[Member, RoomState | None]] = []
        if mask.startswith("#"):
            room = self._room(member, mask, must_be_in=False, quiet=True)
            if room is not None:
                rows = [(m, room) for m in room.members()]
        else:
            pattern = mask.casefold()
            for who in self._world.members.values():
                if fnmatch.fnmatchcase(who.name.casefold(), pattern):
                    shared = self._world.rooms.get(who.rooms[0]) if who.rooms else None
                    rows.append((who, shared))
        server = IRC.server
        for who, room in rows:
            flags = "G" if who.away else "H"
            if room is not None:
                flags += self._prefix(who, room)
            real = who.irc.realname if who.irc is not None else who.name
            user = who.irc.user if who.irc is not None and who.irc.user else who.name
            channel = room.name if room is not None else "*"
            self._num(member, "352", channel, user, server, server, who.name, flags, f"0 {real}")
        self._num(member, "315", mask, "End of /WHO list")

    def _whois(self, member: Member, params: tuple[str, ...]) -> None:
        name = params[-1]
        who = self._world.holder(name)
        server = IRC.server
        if who is None:
            self._num(member, "401", name, "No such nick/channel")
            self._num(member, "318", name, "End of /WHOIS list")
            return
        user = who.irc.user if who.irc is not None and who.irc.user else who.name
        real = who.irc.realname if who.irc is not None else who.name
        self._num(member, "311", who.name, user, server, "*", real)
        rooms = [self._prefix(who, self._world.rooms[r]) + r for r in who.rooms]
        if rooms:
            self._num(member, "319", who.name, " ".join(rooms))
        self._num(member, "312", who.name, server, "triochat")
        if self._access.is_op(who.account):
            self._num(member, "313", who.name, "is an IRC operator")
        if who.account is not None:
            self._num(member, "330", who.name, who.name, "is logged in as")
        if who.away:
            self._num(member, "301", who.name, who.away)
        self._num(member, "318", who.name, "End of /WHOIS list")

    def _lusers(self, member: Member, params: tuple[str, ...]) -> None:
        world = self._world
        users = len(world.members)
        self._num(member, "251", f"There are {users} users and 0 invisible on 1 servers")
        self._num(member, "254", str(len(world.rooms)), "channels formed")
        self._num(member, "255", f"I have {users} clients and 1 servers")

    def _mode(self, member: Member, params: tuple[str, ...]) -> None:
        target = params[0]
        if not target.startswith("#"):
            if name_key(target) != name_key(member.name):
                self._num(member, "502", "Can't change mode for other users")
            else:  # no user modes are kept: a change is answered with what they are
                self._num(member, "221", "+")
            return
        room = self._room(member, target, must_be_in=False)
        if room is None:
            return
        if len(params) == 1:
            self._num(member, "324", room.name, "+nt" if room.topic_locked else "+n")
        elif params[1] in ("b", "+b"):
            self._num(member, "368", room.name, "End of channel ban list")
        elif not self.is_room_op(member.id, member.account, room):
            self._num(member, "482", room.name, "You're not channel operator")
        else:
            self._num(
                member, "472", params[1].lstrip("+-")[:1] or "*", "is unknown mode char to me"
            )

    # -- founders ------------------------------------------------------------------------

    def room_kick(self, member: Member, command: RoomKick) -> None:
        """Put a member out of a room: its founder or a server operator may."""
        world = self._world
        room = self._room(member, command.room, must_be_in=False)
        if room is None:
            return
        if not self.is_room_op(member.id, member.account, room):
            self._num(member, "482", room.name, "You're not channel operator")
            return
        target = world.holder(command.name)
        if target is None or room.name not in target.rooms:
            self._num(member, "441", command.name, room.name, "They aren't on that channel")
            return
        reason = f"{KICKED}{room.name} by {member.name}: {command.reason or member.name}"
        log_event(
            log,
            "room.irc_kick",
            conn=member.id,
            by=member.name,
            name=target.name,
            room=room.name,
            reason=command.reason,
        )
        self._arrivals.exit(target, room, reason)
        key = name_key(target.name)
        world.publish(cluster.Exit(target.id, target.name, key, room.name, reason))
        world.tell(target, Left(world.clock(), room.name, target.name, room.online, reason))
        if target.current == room.name:
            target.current = target.rooms[-1] if target.rooms else None


_MIN_PARAMS: Final[dict[str, int]] = {
    "NICK": 1, "JOIN": 1, "PART": 1, "PRIVMSG": 2, "TAGMSG": 1, "NOTICE": 2, "TOPIC": 1,
    "KICK": 2, "WHOIS": 1, "MODE": 1, "PING": 1, "CAP": 1, "CHATHISTORY": 1,
}  # fmt: skip
_VERBS: Final = frozenset(
    {
        "NICK", "USER", "PASS", "CAP", "PING", "MOTD", "HELP", "LIST", "JOIN", "PART", "QUIT",
        "TOPIC", "KICK", "NAMES", "WHO", "WHOIS", "LUSERS", "MODE", "CHATHISTORY",
    }
)  # fmt: skip
