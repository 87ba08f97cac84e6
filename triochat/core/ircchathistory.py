"""IRCv3 ``draft/chathistory``: ``CHATHISTORY`` requests read from the store. No I/O.

A client that negotiated ``draft/chathistory`` asks for a channel's stored lines with
``CHATHISTORY LATEST|BEFORE|AFTER|AROUND|BETWEEN <#channel> <ref> [<ref>] <limit>``
(a ref is ``msgid=...``, ``timestamp=YYYY-MM-DDThh:mm:ss.sssZ`` or, for ``LATEST``, ``*``)
or for the channels it has history in with ``CHATHISTORY TARGETS <ts> <ts> <limit>``.

:func:`plan` checks a request and answers problems at once (``FAIL CHATHISTORY ...``);
a good request becomes a :class:`Chathistory`, queued on the member's link as a
:class:`~triochat.core.model.Query` with it as its ``plan``: the server's history
reader runs :meth:`Chathistory.read` in the store's thread (off the event loop, in
order after the batches already submitted, the way ``/history`` and resume read) and
writes :meth:`Chathistory.render` as the connection drains.

A msgid is the one triochat's IRC lines carry (``room-id``: ``lobby-42``), a
timestamp compares at the millisecond the ``time`` tag shows. Stored ids rise with
time in each room and have no holes above the oldest kept one (retention deletes the
oldest first), which is what lets a timestamp be found by bisecting the ids. Only
chat lines (PRIVMSG, ACTION) are stored: no ``draft/event-playback``.

A nick target reads the asker's private history with that nick (stored only between
two logged-in accounts): by the asker's own account key and the key of the nick, so
nobody reads a conversation they are not in. A stored private line's msgid is
``@-ID`` (the server-wide private id); the ids of one conversation have holes (other
conversations take the numbers between), so :class:`_PairReader` asks the store for
ranges instead of counting ids. A member not logged in gets an empty batch, and
``TARGETS`` lists its nicks only when it is logged in.
"""

from __future__ import annotations

import calendar
import itertools
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final, Protocol

from triochat.core.events import Event, Private
from triochat.core.names import name_key, room_error, room_name
from triochat.core.protocols.ircevents import encode_irc
from triochat.core.protocols.irclines import line
from triochat.core.protocols.ircsession import CHATHISTORY, CHATHISTORY_LIMIT, PRIVATE_MSGID
from triochat.core.records import StoredMessage, StoredPrivate, chat_event

__all__ = [
    "CHATHISTORY_CAP",
    "MAX_LIMIT",
    "Chathistory",
    "Ref",
    "empty_batch",
    "fail",
    "parse_ref",
    "plan",
    "tag_line",
]

CHATHISTORY_CAP: Final = CHATHISTORY
MAX_LIMIT: Final = CHATHISTORY_LIMIT  # lines one request may get (ISUPPORT CHATHISTORY=N)
SUBCOMMANDS: Final = frozenset({"LATEST", "BEFORE", "AFTER", "AROUND", "BETWEEN", "TARGETS"})
_TIMESTAMP: Final = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?Z?")
_batches = itertools.count(1)  # batch reference tags, unique on the server
_Lines = list[StoredMessage | StoredPrivate]


class HistoryStore(Protocol):
    """The store's reads a request uses (:class:`triochat.store.Store` has them)."""

    def recent(self, room: str, limit: int) -> list[StoredMessage]: ...

    def since(
        self, room: str, after_id: int, limit: int, upto: int | None = None
    ) -> tuple[list[StoredMessage], int]: ...

    def before(self, room: str, before_id: int, limit: int) -> list[StoredMessage]: ...

    def private_range(
        self, one: str, other: str, after_id: int, before_id: int, limit: int, *, oldest: bool
    ) -> list[StoredPrivate]: ...

    def private_peers(self, key: str) -> list[StoredPrivate]: ...


def millis(ts: float) -> int:
    """``ts`` in whole milliseconds, as the ``time`` tag shows it (truncated)."""
    whole = int(ts)
    return whole * 1000 + int((ts - whole) * 1000)


def stamp(ms: int) -> str:
    """Milliseconds since the epoch as an IRCv3 timestamp."""
    whole, rest = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{rest:03d}Z"


@dataclass(frozen=True, slots=True)
class Ref:
    """A message reference: a message id in the room, or a time in milliseconds."""

    msgid: int | None = None
    ms: int | None = None


def parse_ref(text: str, room: str) -> Ref | None:
    """``msgid=lobby-42`` (of ``room``; of a nick, ``@-42``) or ``timestamp=...``; None
    if it is neither."""
    key, _, value = text.partition("=")
    if key == "msgid":
        where, _, number = value.rpartition("-")
        scope = room[1:] if room.startswith("#") else PRIVATE_MSGID
        if where.casefold() != scope.casefold() or not number.isdigit():
            return None
        return Ref(msgid=int(number))
    if key == "timestamp":
        found = _TIMESTAMP.fullmatch(value)
        if found is None:
            return None
        try:
            whole = calendar.timegm(time.strptime(found[1], "%Y-%m-%dT%H:%M:%S"))
        except ValueError:
            return None
        return Ref(ms=whole * 1000 + int((found[2] or "0").ljust(3, "0")[:3]))
    return None


def tag_line(text: str, tag: str) -> str:
    """``text`` (one IRC line) with ``tag`` added to its tags."""
    if text.startswith("@"):
        return f"@{tag};{text[1:]}"
    return f"@{tag} {text}"


def fail(server: str, code: str, sub: str, *rest: str, label: str = "") -> bytes:
    """``FAIL CHATHISTORY <code> <subcommand> ...`` (labelled if the request was)."""
    text = line(server, "FAIL", "CHATHISTORY", code, sub, *rest)
    return (tag_line(text, f"label={label}") if label else text).encode()


def empty_batch(server: str, target: str, label: str = "") -> bytes:
    """A ``chathistory`` batch with nothing in it (a target with no stored history)."""
    ref = f"ch{next(_batches)}"
    start = line(server, "BATCH", f"+{ref}", "chathistory", target)
    if label:
        start = tag_line(start, f"label={label}")
    return (start + line(server, "BATCH", f"-{ref}")).encode()


@dataclass(frozen=True, slots=True)
class Chathistory:
    """One checked ``CHATHISTORY`` request: what to read (:meth:`read`) and how to frame it.

    ``room`` is the channel (for ``TARGETS``, ``rooms`` are the member's channels);
    ``upto`` the room's last id when asked (later lines reach the member live).
    ``private`` is (the asker's account key, the nick's key) for a nick target, or
    (the asker's key, "") for a logged-in member's ``TARGETS``; ``upto`` is then the
    last private id.
    """

    sub: str
    target: str
    room: str
    first: Ref | None  # None: "*" (LATEST)
    second: Ref | None  # BETWEEN's other end; TARGETS' upper bound
    limit: int
    upto: int
    server: str
    nick: str
    server_time: bool  # the member's caps: server-time ...
    message_tags: bool  # ... and message-tags (msgid)
    label: str = ""
    rooms: tuple[str, ...] = ()
    private: tuple[str, str] | None = None

    def labelled(self, label: str) -> Chathistory:
        return replace(self, label=label)

    # -- reading (the store's thread) ----------------------------------------------------

    def read(self, store: HistoryStore) -> _Lines:
        if self.sub == "TARGETS":
            latest: list[StoredMessage | StoredPrivate]
            latest = [rows[-1] for room in self.rooms if (rows := store.recent(room, 1))]
            if self.private is not None:
                latest.extend(store.private_peers(self.private[0]))
            low = self.first.ms if self.first is not None and self.first.ms is not None else 0
            high = self.second.ms if self.second is not None and self.second.ms else 2**62
            found = [r for r in latest if low < millis(r.ts) < high]
            return sorted(found, key=lambda r: r.ts)[: self.limit]
        reader = (
            _Reader(store, self.room, self.upto)
            if self.private is None
            else _PairReader(store, *self.private, self.upto)
        )
        top, n = self.upto + 1, self.limit
        first, second = self.first, self.second
        if self.sub == "LATEST":
            return reader.newest(0 if first is None else reader.lower(first), top, n)
        assert first is not None
        if self.sub == "BEFORE":
            return reader.newest(0, reader.upper(first), n)
        if self.sub == "AFTER":
            return reader.oldest(reader.lower(first), top, n)
        if self.sub == "AROUND":
            centre = reader.upper(first)
            earlier = reader.newest(0, centre, (n - 1) // 2) if n > 1 else []
            return earlier + reader.oldest(centre - 1, top, n - len(earlier))
        assert second is not None  # BETWEEN, either way round
        if reader.upper(first) <= reader.upper(second):
            return reader.oldest(reader.lower(first), reader.upper(second), n)
        return reader.newest(reader.lower(second), reader.upper(first), n)

    # -- framing (the server's loop) ------------------------------------------------------

    def render(self, records: Sequence[StoredMessage | StoredPrivate]) -> list[bytes]:
        ref = f"ch{next(_batches)}"
        server, batch = self.server, f"batch={ref}"
        if self.sub == "TARGETS":
            start = line(server, "BATCH", f"+{ref}", "draft/chathistory-targets")
        else:
            start = line(server, "BATCH", f"+{ref}", "chathistory", self.target)
        out = [(tag_line(start, f"label={self.label}") if self.label else start).encode()]
        for record in records:
            if self.sub == "TARGETS":
                where = self._target_of(record)
                text = line(server, "CHATHISTORY", "TARGETS", where, stamp(millis(record.ts)))
            else:
                event: Event
                if isinstance(record, StoredPrivate):
                    event = Private(record.ts, record.sender, record.to, record.text, record.id)
                else:
                    event = chat_event(record)
                text = encode_irc(event, server, self.nick, self.server_time, self.message_tags)
            out.append(tag_line(text, batch).encode())
        out.append(line(server, "BATCH", f"-{ref}").encode())
        return out

    def _target_of(self, record: StoredMessage | StoredPrivate) -> str:
        """A ``TARGETS`` row's name: the channel, or the other end of a conversation."""
        if isinstance(record, StoredMessage):
            return record.room
        mine = self.private[0] if self.private is not None else ""
        return record.to if name_key(record.sender) == mine else record.sender


class _Reader:
    """Reads of one room for a request (see the module docstring for the id rules)."""

    def __init__(self, store: HistoryStore, room: str, upto: int) -> None:
        self._store, self._room, self._upto = store, room, upto

    def _at_or_below(self, msg_id: int) -> StoredMessage | StoredPrivate | None:
        rows = self._store.before(self._room, msg_id + 1, 1)
        return rows[0] if rows else None

    def first_at(self, ms: int) -> int:
        """The first id whose line is at or after ``ms`` (``upto + 1``: none)."""
        lo, hi = 1, self._upto + 1
        while lo < hi:
            mid = (lo + hi) // 2
            row = self._at_or_below(mid)
            if row is not None and millis(row.ts) >= ms:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def first_above(self, low: int, high: int) -> int:
        """The first stored id above ``low`` (``high``: none below it)."""
        row = self._at_or_below(low + 1)
        if row is not None and row.id == low + 1:
            return low + 1
        lo, hi = low + 1, high
        while lo < hi:
            mid = (lo + hi) // 2
            row = self._at_or_below(mid)
            if row is not None and row.id > low:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def lower(self, ref: Ref) -> int:
        """The id just below what comes after ``ref``."""
        if ref.msgid is not None:
            return ref.msgid
        return self.first_at((ref.ms or 0) + 1) - 1

    def upper(self, ref: Ref) -> int:
        """The first id not before ``ref``."""
        if ref.msgid is not None:
            return ref.msgid
        return self.first_at(ref.ms or 0)

    def newest(self, low: int, high: int, limit: int) -> _Lines:
        """The newest ``limit`` lines with ``low < id < high``, oldest first."""
        if limit <= 0 or high - 1 <= low:
            return []
        rows, _ = self._store.since(self._room, low, limit, min(high - 1, self._upto))
        return list(rows)

    def oldest(self, low: int, high: int, limit: int) -> _Lines:
        """The oldest ``limit`` lines with ``low < id < high``, oldest first."""
        high = min(high, self._upto + 1)
        if limit <= 0 or high - 1 <= low:
            return []
        start = self.first_above(low, high)
        if start >= high:
            return []
        rows, _ = self._store.since(self._room, start - 1, limit, min(start - 1 + limit, high - 1))
        return list(rows)


class _PairReader(_Reader):
    """Reads of one conversation: the asker's (``mine``) with ``other``, by account key.

    Its ids have holes, so each read is a range the store cuts (``private_range``);
    :meth:`_Reader.first_at` still bisects, on "the newest line at or below an id".
    """

    def __init__(self, store: HistoryStore, mine: str, other: str, upto: int) -> None:
        super().__init__(store, "", upto)
        self._mine, self._other = mine, other

    def _range(self, low: int, high: int, limit: int, *, oldest: bool) -> _Lines:
        high = min(high, self._upto + 1)
        if limit <= 0 or high - 1 <= low:
            return []
        rows = self._store.private_range(self._mine, self._other, low, high, limit, oldest=oldest)
        return list(rows)

    def _at_or_below(self, msg_id: int) -> StoredMessage | StoredPrivate | None:
        rows = self._range(0, msg_id + 1, 1, oldest=False)
        return rows[0] if rows else None

    def newest(self, low: int, high: int, limit: int) -> _Lines:
        return self._range(low, high, limit, oldest=False)

    def oldest(self, low: int, high: int, limit: int) -> _Lines:
        return self._range(low, high, limit, oldest=True)


def plan(
    server: str,
    nick: str,
    params: tuple[str, ...],
    *,
    joined: tuple[str, ...],
    last_id: dict[str, int],
    caps: frozenset[str],
    account: str | None = None,
    private_upto: int = 0,
) -> Chathistory | bytes:
    """A ``CHATHISTORY`` request's :class:`Chathistory`, or the bytes answering it at once.

    ``joined`` are the member's channels, ``last_id`` their last ids; ``account`` the
    member's account key if it is logged in (None: no private history to read) and
    ``private_upto`` the last private id. A nick target of a member not logged in, and
    a target with nothing stored, get an empty batch.
    """
    sub = params[0].upper() if params else "*"
    need = 4 if sub in ("TARGETS", "BETWEEN") else 3
    if sub not in SUBCOMMANDS:
        return fail(server, "INVALID_PARAMS", sub, "Unknown subcommand")
    if len(params) < need + 1 - (sub == "TARGETS"):
        return fail(server, "NEED_MORE_PARAMS", sub, "Missing parameters")
    try:
        limit = int(params[-1])
    except ValueError:
        return fail(server, "INVALID_PARAMS", sub, params[-1], "Invalid limit")
    limit = MAX_LIMIT if limit <= 0 else min(limit, MAX_LIMIT)
    stamped, tagged = "server-time" in caps, "message-tags" in caps
    if sub == "TARGETS":
        low, high = parse_ref(params[1], "#"), parse_ref(params[2], "#")
        if low is None or high is None or low.ms is None or high.ms is None:
            return fail(server, "INVALID_PARAMS", sub, "Timestamps expected")
        low, high = (low, high) if low.ms <= high.ms else (high, low)
        mine = None if account is None else (account, "")
        return Chathistory(
            sub, "*", "", low, high, limit, 0, server, nick, stamped, tagged, "", joined, mine
        )
    target = params[1]
    private = not target.startswith("#")
    if private and (account is None or not private_upto):
        return empty_batch(server, target)  # a guest has no private history
    room = target if private else None if room_error(target) else room_name(target)
    if room is None or (not private and room not in joined):
        return fail(server, "INVALID_TARGET", sub, target, "Messages could not be retrieved")
    refs: list[Ref | None] = []
    for text in params[2 : need if sub == "BETWEEN" else 3]:
        ref = None if (text == "*" and sub == "LATEST") else parse_ref(text, room)
        if ref is None and not (text == "*" and sub == "LATEST"):
            return fail(server, "INVALID_PARAMS", sub, text, "Invalid message reference")
        refs.append(ref)
    first = refs[0]
    second = refs[1] if len(refs) > 1 else None
    if private:
        assert account is not None  # the asker's own key, never a name the client sent
        pair = (account, name_key(target))
        return Chathistory(
            sub, target, "", first, second, limit, private_upto, server, nick, stamped, tagged,
            private=pair,
        )  # fmt: skip
    upto = last_id.get(room, 0)
    return Chathistory(sub, target, room, first, second, limit, upto, server, nick, stamped, tagged)
