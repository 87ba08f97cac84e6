"""A store that keeps everything in memory: ``--db :memory:`` and tests.

Accounts, operators, bans and mutes too: with ``--db :memory:`` they last as long as
the process.

It follows the same rules as the SQLite store (see :mod:`triochat.store.base`) and
forgets everything when the process ends. Without retention it grows with every
message, like a database would.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import replace
from typing import assert_never

from triochat.core.names import name_key
from triochat.core.records import (
    Change,
    DropAccount,
    DropBan,
    DropMute,
    DropOp,
    DropPrefs,
    Pref,
    SaveAccount,
    SaveBan,
    SaveMute,
    SaveNotify,
    SaveOp,
    SaveSeen,
    SearchHit,
    StoredPrivate,
    pair_of,
)
from triochat.core.search import SearchQuery, holds_all
from triochat.core.search_pages import merge_hits
from triochat.store.base import (
    AccountRecord,
    BanRecord,
    Batch,
    MuteRecord,
    OpRecord,
    RoomRecord,
    StoredMessage,
    check_limit,
)
from triochat.store.private_search import private_hits
from triochat.store.retention import age_cutoff, check_retention

__all__ = ["MemoryStore"]


def _id(message: StoredMessage) -> int:
    return message.id


def _private_id(line: StoredPrivate) -> int:
    return line.id


class MemoryStore:
    """Rooms and messages in dictionaries; implements :class:`~triochat.store.base.Store`.

    Not thread-safe: like every store, its calls must be serialised by the caller.
    """

    def __init__(self) -> None:
        self._rooms: dict[str, RoomRecord] = {}
        self._messages: dict[str, list[StoredMessage]] = {}  # per room, ordered by id
        self._accounts: dict[str, AccountRecord] = {}
        self._ops: dict[str, OpRecord] = {}
        self._bans: dict[str, BanRecord] = {}
        self._mutes: dict[str, MuteRecord] = {}
        self._private: dict[tuple[str, str], list[StoredPrivate]] = {}  # per pair, by id
        self._private_last = 0
        self._notify: dict[tuple[str, str], SaveNotify] = {}  # by account key and room
        self._seen: dict[str, SaveSeen] = {}  # by account key
        self._seq: dict[tuple[str, int], int] = {}  # (room, id) -> order of arrival (search)
        self._next_seq = 1

    def load_rooms(self) -> list[RoomRecord]:
        """Return every room, ordered by name."""
        return [self._rooms[name] for name in sorted(self._rooms)]

    def commit(self, batch: Batch) -> None:
        """Apply ``batch``; a message whose ``(room, id)`` is already kept is ignored."""
        for name in batch.dropped_rooms:  # first: what the batch holds of them came after
            self._rooms.pop(name, None)
            self._forget(self._messages.pop(name, []))
        for record in batch.rooms:
            old = self._rooms.get(record.name)
            if old is not None and old.last_id > record.last_id:
                record = replace(record, last_id=old.last_id)
            self._rooms[record.name] = record
        top: dict[str, int] = {}  # the highest id per room in this batch
        # Once per chat line in a burst: attributes read once, no list made per message.
        logs, seq, next_seq = self._messages, self._seq, self._next_seq
        for message in batch.messages:
            name, number = message.room, message.id
            log = logs.get(name)
            if log is None:
                log = logs[name] = []
            if not log or number > log[-1].id:
                log.append(message)  # the usual case: ids arrive in order
            else:
                at = bisect_left(log, number, key=_id)
                if at < len(log) and log[at].id == number:
                    continue
                log.insert(at, message)
            seq[name, number] = next_seq
            next_seq += 1
            if number > top.get(name, 0):
                top[name] = number
        self._next_seq = next_seq
        # Once per room, not per message: the hub commits in the event loop when the
        # store is in memory, and replace() per message was a tenth of a burst's CPU.
        for name, last_id in top.items():
            room = self._rooms.get(name)
            if room is None:
                self._rooms[name] = RoomRecord(name, last_id=last_id)
            elif last_id > room.last_id:
                self._rooms[name] = replace(room, last_id=last_id)
        for change in batch.changes:
            self._apply(change)
        for line in batch.private:
            talk = self._private.setdefault((line.a, line.b), [])
            if talk and line.id <= talk[-1].id:
                if any(kept.id == line.id for kept in talk):
                    continue  # a retried batch
                talk.append(line)
                talk.sort(key=_private_id)
            else:
                talk.append(line)
            self._private_last = max(self._private_last, line.id)
        for pref in batch.prefs:
            match pref:
                case SaveNotify():
                    self._notify[pref.key, pref.room] = pref
                case SaveSeen():
                    self._seen[pref.key] = pref
                case DropPrefs(key=key):
                    self._seen.pop(key, None)
                    for room_key in [k for k in self._notify if k[0] == key]:
                        del self._notify[room_key]
                case _:
                    assert_never(pref)

    def _apply(self, change: Change) -> None:
        match change:
            case SaveAccount(record=record):
                old = self._accounts.get(record.key)
                if old is not None:  # a password change: the name and the date stay
                    record = replace(old, password_hash=record.password_hash)
                self._accounts[record.key] = record
            case DropAccount(key=key):
                self._accounts.pop(key, None)
            case SaveOp(record=op):
                self._ops[op.key] = op
            case DropOp(key=key):
                self._ops.pop(key, None)
            case SaveBan(record=ban):
                self._bans[ban.target] = ban
            case DropBan(target=target):
                self._bans.pop(target, None)
            case SaveMute(record=mute):
                self._mutes[mute.key] = mute
            case DropMute(key=key):
                self._mutes.pop(key, None)
            case _:
                assert_never(change)

    def account_keys(self) -> list[str]:
        """Return every account's name key, sorted."""
        return sorted(self._accounts)

    def account(self, key: str) -> AccountRecord | None:
        """Return the account with name key ``key``, or None."""
        return self._accounts.get(key)

    def load_ops(self) -> list[OpRecord]:
        """Return the stored operators, by key."""
        return [self._ops[key] for key in sorted(self._ops)]

    def load_bans(self) -> list[BanRecord]:
        """Return every ban, oldest first (then by target)."""
        return sorted(self._bans.values(), key=lambda ban: (ban.ts, ban.target))

    def load_mutes(self) -> list[MuteRecord]:
        """Return every mute, oldest first (then by key)."""
        return sorted(self._mutes.values(), key=lambda mute: (mute.ts, mute.key))

    def load_prefs(self) -> list[Pref]:
        """Return the /notify levels (by account, room), then the last-seen times."""
        levels: list[Pref] = [self._notify[k] for k in sorted(self._notify)]
        return levels + [self._seen[key] for key in sorted(self._seen)]

    def recent(self, room: str, limit: int) -> list[StoredMessage]:
        """Return the last ``limit`` messages of ``room``, oldest first."""
        check_limit(limit)
        log = self._messages.get(room, [])
        return log[len(log) - limit :] if limit < len(log) else list(log)

    def since(
        self, room: str, after_id: int, limit: int, upto: int | None = None
    ) -> tuple[list[StoredMessage], int]:
        """Return the newest ``limit`` messages above ``after_id`` and how many were skipped."""
        check_limit(limit)
        log = self._messages.get(room, [])
        start = bisect_right(log, after_id, key=_id)
        end = len(log) if upto is None else bisect_right(log, upto, key=_id)
        newer = end - start
        if newer <= limit:
            return log[start:end], 0
        return log[end - limit : end], newer - limit

    def before(self, room: str, before_id: int, limit: int) -> list[StoredMessage]:
        """Return the ``limit`` messages just before ``before_id``, oldest first."""
        check_limit(limit)
        log = self._messages.get(room, [])
        end = bisect_left(log, before_id, key=_id)
        return log[max(0, end - limit) : end]

    def search(self, query: SearchQuery) -> list[SearchHit]:
        """Return the lines ``query`` finds, newest first, by scanning every line."""
        if not query.terms or query.limit <= 0:
            return []
        return merge_hits(self._room_hits(query), self._private_hits(query), query.limit)

    def _private_hits(self, query: SearchQuery) -> list[SearchHit]:
        """The asker's own private lines ``query`` finds (triochat.store.private_search)."""
        mine = query.mine
        if mine is None:
            return []
        if query.peer is not None:
            logs = [self._private.get(pair_of(mine, query.peer), [])]
        else:
            logs = [log for pair, log in self._private.items() if mine in pair]
        top = 2**63 if query.private_before is None else query.private_before
        lines = sorted((p for log in logs for p in log if p.id < top), key=_private_id)
        return private_hits(reversed(lines), query)

    def _room_hits(self, query: SearchQuery) -> list[SearchHit]:
        names = self._messages if query.rooms is None else query.rooms
        top = 2**63 if query.before is None else query.before
        seq = self._seq
        hits: list[SearchHit] = []
        for room in names:
            for message in self._messages.get(room, ()):
                at = seq[message.room, message.id]
                if at >= top or not holds_all(message.text, query.terms):
                    continue
                if query.sender is None or name_key(message.sender) == query.sender:
                    hits.append(SearchHit(at, message))
        hits.sort(key=lambda hit: hit.seq, reverse=True)
        return hits[: query.limit]

    def _forget(self, messages: Iterable[StoredMessage]) -> None:
        for message in messages:
            self._seq.pop((message.room, message.id), None)

    def prune(
        self,
        now: float,
        retain_days: float | None,
        retain_messages: int | None,
        *,
        max_rows: int | None = None,
    ) -> int:
        """Delete messages beyond the retention limits; ``last_id`` is kept."""
        check_retention(retain_days, retain_messages, max_rows)
        cutoff = age_cutoff(now, retain_days)
        budget = max_rows
        deleted = 0
        for room, log in self._messages.items():
            if budget is not None and deleted >= budget:
                break
            keep_from = 0 if retain_messages is None else max(0, len(log) - retain_messages)
            doomed = [
                index
                for index, message in enumerate(log)
                if index < keep_from or (cutoff is not None and message.ts < cutoff)
            ]
            if budget is not None:
                doomed = doomed[: budget - deleted]
            if doomed:
                gone = set(doomed)
                self._forget(log[i] for i in doomed)
                self._messages[room] = [m for i, m in enumerate(log) if i not in gone]
                deleted += len(doomed)
        if cutoff is not None:
            for pair, lines in self._private.items():
                if budget is not None and deleted >= budget:
                    break
                old = [line for line in lines if line.ts < cutoff]
                if budget is not None:
                    old = old[: budget - deleted]
                if old:
                    self._private[pair] = lines[len(old) :]
                    deleted += len(old)
        return deleted

    def private_last_id(self) -> int:
        """Return the highest private line id ever committed (0 if none)."""
        return self._private_last

    def private_since(
        self, key: str, after_id: int, limit: int, upto: int | None = None
    ) -> tuple[list[StoredPrivate], int]:
        """Return the newest ``limit`` private lines of ``key`` above ``after_id`` and how
        many older ones were skipped, oldest first (a scan of its conversations)."""
        check_limit(limit)
        top = upto if upto is not None else self._private_last
        mine = sorted(
            (
                line
                for pair, log in self._private.items()
                if key in pair
                for line in log
                if after_id < line.id <= top
            ),
            key=_private_id,
        )
        if len(mine) <= limit:
            return mine, 0
        return mine[len(mine) - limit :], len(mine) - limit

    def private_between(
        self, one: str, other: str, before_id: int | None, limit: int
    ) -> list[StoredPrivate]:
        """Return the ``limit`` newest lines between ``one`` and ``other`` below
        ``before_id`` (None: the newest), oldest first."""
        check_limit(limit)
        log = self._private.get(pair_of(one, other), [])
        end = len(log) if before_id is None else bisect_left(log, before_id, key=_private_id)
        return log[max(0, end - limit) : end]

    def private_range(
        self, one: str, other: str, after_id: int, before_id: int, limit: int, *, oldest: bool
    ) -> list[StoredPrivate]:
        """Return the oldest (or newest) ``limit`` lines between ``one`` and ``other``
        with ``after_id < id < before_id``, oldest first."""
        check_limit(limit)
        log = self._private.get(pair_of(one, other), [])
        start = bisect_right(log, after_id, key=_private_id)
        end = max(start, bisect_left(log, before_id, key=_private_id))
        if oldest:
            return log[start : min(end, start + limit)]
        return log[max(start, end - limit) : end]

    def private_peers(self, key: str) -> list[StoredPrivate]:
        """Return the newest line of each conversation of ``key``."""
        return [log[-1] for pair, log in self._private.items() if key in pair and log]

    def close(self) -> None:
        """Forget everything."""
        self._rooms.clear()
        self._messages.clear()
        self._accounts.clear()
        self._ops.clear()
        self._bans.clear()
        self._mutes.clear()
        self._private.clear()
        self._seq.clear()
