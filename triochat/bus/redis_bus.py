"""The cluster's log in Redis (or Valkey): how several nodes form one chat.

:class:`RedisBus` is a :class:`~triochat.bus.bus.Bus`: its publisher, log reader and
heartbeat talk to Redis through :class:`~triochat.bus.redis_link.RedisLink` only.

Rules of this module:

* **The hub never waits for Redis.** It hands what its state publishes to
  :meth:`RedisBus.publish` (a queue) and gets what the log reports through
  ``deliver`` (its inbound channel), like any connection's input.
* **One round trip per batch, not per message.** The publisher sends everything queued
  (up to :data:`MAX_BATCH_OPS` operations, of all rooms) as one call of the
  :data:`~triochat.bus.scripts.PUBLISH` script, which numbers each room's lines and
  appends them to its stream atomically. One blocking ``XREAD`` reads every stream.
* **Nothing lost, nothing twice.** A failed batch is sent again with the same number,
  which the script skips if seen; the reader goes on from the last entry it saw, and
  the chat state ignores a line whose id it has delivered.
* **Loss is said, not hidden.** If Redis comes back without its data (the ``epoch`` key
  is gone), members are told, ids jump ahead (:data:`~triochat.core.cluster.ID_JUMP`),
  and this node announces its members and rooms again.
* **Liveness.** Each node refreshes ``node:NODE`` every :data:`HEARTBEAT_S` (expiry
  :data:`NODE_TTL_MS`) and forgets nodes whose key expired (their members leave as
  "server lost"). Keys and scripts: :mod:`triochat.bus.scripts`.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Final

import trio

from triochat.bus.bus import BusStatistics, ClusterError, Deliver
from triochat.bus.log import (
    CHANGES_KEY,
    DONE_KEY,
    EPOCH_KEY,
    LOG_KEY,
    OwnLines,
    json_list,
    jumped,
    loads,
    payload,
    read_rooms,
    room_key,
    rooms_of,
)
from triochat.bus.redis_link import CONNECT_TIMEOUT, RedisLink, entry_value, reason
from triochat.bus.scripts import BEAT, BYE, PUBLISH, REAP, SNAPSHOT
from triochat.core import cluster
from triochat.core.logevents import log_event

__all__ = ["CATCH_UP", "RedisBus"]

log = logging.getLogger(__name__)

HEARTBEAT_S: Final = 1.0  # how often a node says it is alive (and looks for dead ones)
NODE_TTL_MS: Final = 4000  # a node silent this long is taken for dead
BLOCK_MS: Final = 2000  # one XREAD waits at most this long for news
READ_COUNT: Final = 1000  # entries per stream per XREAD
# Lines in one read, while behind, beyond which they are a catch-up replayed to members
# as their connections drain; a node keeping up hands a live burst to the hub this many
# at a time, flushed between (a replay per read cost 10x the CPU per delivery).
CATCH_UP: Final = 256
# A read that fills READ_COUNT while keeping up is a live burst unless its oldest line
# was said this long ago (by the line's own clock): then the node had stalled and what
# piled up meanwhile is a catch-up (docs/operations.md, "Catching up").
STALE_S: Final = 2.0
OP_TIMEOUT: Final = 5.0  # seconds any other call may take before Redis counts as gone
# Start-up waits this long at most for the room streams' lines (then opens the doors).
JOIN_READ_S: Final = 30.0
MAX_BATCH_OPS: Final = 512  # operations in one PUBLISH call
MAX_QUEUED_LINES: Final = 10_000  # lines kept while Redis is away; beyond, refused
LOG_MAXLEN: Final = 100_000  # entries kept in the log (a node reads it as it goes)
RETRY_MIN_S: Final = 0.1
RETRY_MAX_S: Final = 5.0
# After an outage every node's heartbeat has run out; each gets this long to come back
# before any is taken for dead (its retries are at most RETRY_MAX_S apart).
RECOVERY_GRACE_S: Final = RETRY_MAX_S + NODE_TTL_MS / 1000 + 1.0


class RedisBus:
    """This node's link to the others through Redis at ``url`` (a :class:`Bus`)."""

    def __init__(self, url: str, *, node: str | None = None, room_retain: int = 10_000) -> None:
        """``room_retain``: lines kept per room stream (``MAXLEN ~``).

        Raises :class:`ClusterError` if ``url`` cannot be used (or the Redis client
        library is missing).
        """
        self._link = RedisLink(url)
        self._errors = self._link.errors
        self._node = node or secrets.token_hex(4)
        self._room_retain = room_retain
        self._outgoing: deque[cluster.Op] = deque()
        self._queued_lines = 0
        self._inflight: list[cluster.Op] = []  # the batch being sent (numbered self._seq)
        self._inflight_lines = 0  # chat lines in it
        self._seq = 0  # the last batch number (goes on from this node name's: _join)
        self._lost_data = False  # the last recovery found Redis without its data
        self._own = OwnLines()  # the lines of batches sent, until read back
        self._wake = trio.Event()
        self._up = trio.Event()
        self._up.set()
        self._down = False
        self._trouble = trio.Event()  # a task failed: the heartbeat task recovers now
        self._resynced = trio.Event()
        self._epoch: str | None = None
        self._positions: dict[str, str] = {}
        self._behind = True  # reading what was written before (re)joining: a catch-up
        self._caught_up = trio.Event()  # what the streams held at joining was delivered
        self._known: dict[str, float] = {}  # other nodes seen -> when last seen alive
        self._reap_after = 0.0  # trio time before which no node is taken for dead
        self._deliver: Deliver | None = None
        # Counters for statistics(): plain ints, bumped once per batch or read.
        self._published = self._batches = self._refused = self._received = 0
        self._reads = self._outages = self._catch_ups = 0

    @property
    def node(self) -> str:
        """This node's name in the cluster (random unless given)."""
        return self._node

    @property
    def url(self) -> str:
        """The Redis this node meets the others in, its password masked."""
        return self._link.url

    def statistics(self) -> BusStatistics:
        """The bus's numbers so far (cheap: counters kept as it goes)."""
        return BusStatistics(
            node=self._node,
            down=self._down,
            queued=len(self._outgoing) + len(self._inflight),
            published=self._published,
            batches=self._batches,
            refused=self._refused,
            received=self._received,
            reads=self._reads,
            outages=self._outages,
            catch_ups=self._catch_ups,
        )

    # -- the hub's side -------------------------------------------------------------------

    def publish(self, ops: Iterable[cluster.Op]) -> list[cluster.Op]:
        """Queue ``ops`` for the log; returns the lines refused (Redis away too long)."""
        refused: list[cluster.Op] = []
        for op in ops:
            if type(op) is cluster.Line:
                if self._queued_lines >= MAX_QUEUED_LINES:
                    refused.append(op)
                    self._refused += 1
                    continue
                self._queued_lines += 1
            self._outgoing.append(op)
        self._wake.set()
        return refused

    def resync(self, ops: list[cluster.Op]) -> None:
        """Publish ``ops`` (this node's members and rooms) before anything else queued.

        After Redis lost its data, the batch in flight goes after them, as a new batch.
        Otherwise it is sent again first, under its own number, so that if it had gone
        through it is not applied twice (its lines refused if their names were freed).
        """
        if self._lost_data:
            self._outgoing = deque([*ops, *self._inflight, *self._outgoing])
            self._inflight = []
        else:
            self._outgoing.extendleft(reversed(ops))
        self._resynced.set()
        self._wake.set()

    @property
    def down(self) -> bool:
        """Redis cannot be reached right now."""
        return self._down

    async def check(self) -> None:
        """Make sure Redis answers at ``url`` (before anything else starts).

        Raises :class:`ClusterError` with the reason if not.
        """
        await self._link.check()

    async def run(
        self,
        deliver: Deliver,
        rooms: Mapping[str, int],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Join the cluster, then publish and read until cancelled; then say goodbye.

        ``rooms`` maps the rooms this node knows to the last id it has of each: reading
        goes on from there. Before ``task_status.started()`` the cluster's rooms, topics
        and members have been delivered, and the lines the room streams held (bounded by
        :data:`JOIN_READ_S`): ``deliver`` must be served meanwhile. Raises
        :class:`ClusterError` if Redis cannot be reached at start-up.
        """
        self._deliver = deliver
        link = self._link
        async with link:
            for name, script in (
                ("publish", PUBLISH),
                ("beat", BEAT),
                ("reap", REAP),
                ("bye", BYE),
                ("snapshot", SNAPSHOT),
            ):
                link.register(name, script)
            try:
                with trio.fail_after(CONNECT_TIMEOUT):
                    items = await self._join(rooms)
            except self._errors as exc:
                raise ClusterError(f"cannot reach Redis at {self.url}: {reason(exc)}") from None
            await deliver(items)
            log_event(log, "cluster.joined", node=self.node, url=self.url)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._reader)
                nursery.start_soon(self._publisher)
                nursery.start_soon(self._heartbeat)
                with trio.move_on_after(JOIN_READ_S) as scope:
                    await self._caught_up.wait()
                if scope.cancelled_caught:
                    log_event(log, "cluster.slow_join", seconds=JOIN_READ_S)
                task_status.started()

    async def _join(self, rooms: Mapping[str, int]) -> list[cluster.ClusterIn]:
        """Register this node and read what it must know; sets the read positions."""
        link = self._link
        await link.ping()
        await link.set_nx(EPOCH_KEY, secrets.token_hex(8))
        self._epoch = await link.get(EPOCH_KEY)
        await link.script("beat", [self.node, NODE_TTL_MS])
        self._seq = max(self._seq, int(await link.call("HGET", DONE_KEY, self.node) or 0))
        snapshot = loads(await link.script("snapshot", []))
        # Every account and ban change ever made: a node's store may lack some.
        self._positions = {LOG_KEY: str(snapshot["position"]), CHANGES_KEY: "0-0"}
        for room, last_id in rooms.items():
            self._positions[room_key(room)] = f"{last_id}-0"
        items: list[cluster.ClusterIn] = []
        for room in json_list(snapshot["rooms"]):
            items.append(cluster.Remote("", cluster.RoomMade(str(room))))
            self._positions.setdefault(room_key(str(room)), "0-0")
        topics = json_list(snapshot["topics"])
        for i in range(1, len(topics), 2):
            op = cluster.from_wire(loads(topics[i]))
            if op is not None:
                items.append(cluster.Remote("", op))
        now = trio.current_time()
        for node, fields in json_list(snapshot["nodes"]):
            if node == self.node:
                continue
            self._known[node] = now
            fields = json_list(fields)
            for i in range(0, len(fields) - 1, 2):
                member = loads(fields[i + 1])
                rooms_in = tuple(str(r) for r in json_list(member.get("r")))
                arrive = cluster.Arrive(
                    int(fields[i]), str(member["n"]), str(member["k"]), rooms_in
                )
                items.append(cluster.Remote(node, arrive))
        return items

    # -- the three tasks --------------------------------------------------------------------

    async def _reader(self) -> None:
        """Read every stream with one blocking XREAD at a time; deliver in order."""
        link = self._link
        assert self._deliver is not None
        errors = self._errors
        while True:
            await self._up.wait()
            try:
                with trio.fail_after(BLOCK_MS / 1000 + OP_TIMEOUT):
                    block = None if self._behind else BLOCK_MS  # behind: what is there now
                    reply = await link.xread(self._positions, READ_COUNT, block)
            except errors as exc:
                await self._lost(exc)
                continue
            if not reply:  # (a read while behind does not wait: nothing is there)
                self._behind = False
                self._caught_up.set()
                continue
            self._reads += 1
            items: list[cluster.ClusterIn] = []
            for key in (CHANGES_KEY, LOG_KEY):
                for _, fields in reply.get(key, ()):
                    self._log_entry(entry_value(fields), items)
            rooms = read_rooms(reply, self._positions, self.node, self._own)
            lines_read = sum(len(lines) for _, lines in rooms)
            now = time.time()
            oldest = min((lines[0].line.ts for _, lines in rooms if lines), default=now)
            # Behind (at a (re)join, the grace after an outage, or a full read of lines
            # said STALE_S ago or more: the node stalled): a large read is replayed paced.
            # Keeping up, a burst goes live, CATCH_UP at a time, even in full reads.
            full = any(len(v) >= READ_COUNT for v in reply.values())
            stale = full and oldest < now - STALE_S
            behind, self._behind = self._behind, stale
            behind = behind or trio.current_time() < self._reap_after
            catch_up = (behind or stale) and lines_read > CATCH_UP
            for key, lines in rooms:
                if catch_up and lines:
                    items.append(cluster.Backlog(key.removeprefix(room_key("")), tuple(lines)))
                    self._catch_ups += 1
                else:
                    items.extend(lines)
            if items:
                self._received += len(items)
                for start in range(0, len(items), CATCH_UP):  # the hub flushes between
                    await self._deliver(items[start : start + CATCH_UP])
            if not full:
                self._caught_up.set()  # (no stream had more than this read took)

    def _log_entry(self, raw: bytes, items: list[cluster.ClusterIn]) -> None:
        try:
            obj = loads(raw)
            node = str(obj.get("node", ""))
            if obj.get("o") == "gone":
                self._known.pop(node, None)
                if node == self.node:
                    self._trouble.set()  # the others took this node for dead: announce again
                else:
                    items.append(cluster.NodeGone(node, str(obj.get("why", "server lost"))))
                return
            op = cluster.from_wire(obj)
        except (ValueError, KeyError, TypeError, AttributeError):
            log_event(log, "cluster.bad_entry", raw=raw.decode(errors="replace"))
            return
        if op is None:
            return
        if isinstance(op, cluster.RoomMade):
            self._positions.setdefault(room_key(op.room), "0-0")
        if node == self.node:
            return  # applied when it was published
        self._known[node] = trio.current_time()
        for room in rooms_of(op):
            self._positions.setdefault(room_key(room), "0-0")
        items.append(cluster.Remote(node, op))

    async def _publisher(self) -> None:
        """Send what is queued, a batch per call, in order; a failed batch is sent again."""
        assert self._deliver is not None
        errors = self._errors
        while True:
            if not self._inflight:
                if not self._outgoing:
                    self._wake = trio.Event()
                    await self._wake.wait()
                    continue
                await self._up.wait()
                count = min(len(self._outgoing), MAX_BATCH_OPS)
                self._inflight = [self._outgoing.popleft() for _ in range(count)]
                self._seq += 1
                # (filed before the call: its entries may be read before the reply)
                self._inflight_lines = self._own.keep(self._seq, self._inflight)
            batch, seq, tag = self._inflight, self._seq, self._own.prefix(self._seq)
            args = (self.node, seq, payload(batch), self._room_retain, LOG_MAXLEN, tag)
            try:
                with trio.fail_after(OP_TIMEOUT):
                    reply = await self._link.script("publish", args)
            except errors as exc:
                await self._lost(exc)
                continue  # the same batch again, unless a resync after a loss requeued it
            self._inflight = []
            self._queued_lines -= self._inflight_lines
            self._published += len(batch)
            self._batches += 1
            refusals = [(int(index), str(what)) for index, what in json_list(loads(reply))]
            if refusals:  # (no entry comes for those: forget them)
                self._own.drop(seq, [index for index, _ in refusals])
                self._refused += len(refusals)
                await self._deliver([cluster.Refused(what, batch[i - 1]) for i, what in refusals])

    async def _heartbeat(self) -> None:
        """Say this node is alive, forget dead ones, and bring the link back after trouble."""
        errors = self._errors
        while True:
            with trio.move_on_after(HEARTBEAT_S):
                await self._trouble.wait()
            self._trouble = trio.Event()
            if self._down:
                await self._recover()
                continue
            reap = trio.current_time() >= self._reap_after
            try:
                with trio.fail_after(OP_TIMEOUT):  # one round trip for both
                    beat: tuple[str, list[str | int]] = ("beat", [self.node, NODE_TTL_MS])
                    replies = await self._link.scripts(
                        [beat, ("reap", [LOG_MAXLEN])] if reap else [beat]
                    )
                was_known = replies[0]
                live = json_list(replies[1]) if reap else []
            except errors as exc:
                await self._mark_down(exc)
                continue
            if not was_known:  # taken for dead (a long pause): the others forgot us
                log_event(log, "cluster.announced_again")
                await self._resync(lost_data=False)
            if reap:
                await self._forget_missing({str(node) for node in live})

    async def _forget_missing(self, live: set[str]) -> None:
        """Nodes not alive for longer than the expiry are gone (also after data loss)."""
        assert self._deliver is not None
        now = trio.current_time()
        gone: list[cluster.ClusterIn] = []
        for node, seen in list(self._known.items()):
            if node in live:
                self._known[node] = now
            elif now - seen > NODE_TTL_MS / 1000:
                del self._known[node]
                gone.append(cluster.NodeGone(node, "server lost"))
        if gone:
            await self._deliver(gone)

    # -- trouble ---------------------------------------------------------------------------

    async def _mark_down(self, exc: BaseException) -> None:
        assert self._deliver is not None
        if self._down:
            return
        self._down = True
        self._outages += 1
        self._up = trio.Event()
        self._trouble.set()
        log_event(log, "cluster.redis_lost", url=self.url, reason=reason(exc))
        await self._deliver([cluster.ClusterDown()])

    async def _lost(self, exc: BaseException) -> None:
        """A call failed: mark the link down (once) and wait until it is back."""
        await self._mark_down(exc)
        await self._up.wait()

    async def _recover(self) -> None:
        """Retry with back-off until Redis answers; then find out what it kept."""
        link = self._link
        errors = self._errors
        delay = RETRY_MIN_S
        while True:
            try:
                with trio.fail_after(OP_TIMEOUT):
                    await link.ping()
                    epoch = await link.get(EPOCH_KEY)
                    lost_data = epoch != self._epoch
                    if lost_data:
                        await link.set_nx(EPOCH_KEY, secrets.token_hex(8))
                        self._epoch = await link.get(EPOCH_KEY)
                    was_known = await link.script("beat", [self.node, NODE_TTL_MS])
                break
            except errors:
                await trio.sleep(delay * (0.5 + secrets.randbelow(1000) / 1000))
                delay = min(delay * 2, RETRY_MAX_S)
        self._reap_after = trio.current_time() + RECOVERY_GRACE_S
        now = trio.current_time()
        self._known = dict.fromkeys(self._known, now)  # nobody was seen during the outage
        lost = "; it lost its data: announcing this node again" if lost_data else ""
        log_event(log, "cluster.redis_back", _lost=lost, lost_data=lost_data)
        self._behind = True  # what was written meanwhile comes as a catch-up
        if lost_data:
            self._own.clear()  # unsent now: they go again in batches numbered anew
            for key in self._positions:
                self._positions[key] = "0-0"
            self._inflight = [jumped(op) for op in self._inflight]
            self._outgoing = deque(jumped(op) for op in self._outgoing)
        await self._resync(lost_data=lost_data, announce=lost_data or not was_known)

    async def _resync(self, *, lost_data: bool, announce: bool = True) -> None:
        """Tell the hub the link is back; if ``announce``, wait for its members and rooms."""
        assert self._deliver is not None
        self._lost_data = lost_data
        self._resynced = trio.Event()
        await self._deliver([cluster.ClusterUp(lost_data=lost_data, resync=announce)])
        if announce:
            with trio.move_on_after(OP_TIMEOUT):
                await self._resynced.wait()
        self._down = False
        self._up.set()

    async def leave(self) -> None:
        """Leave the cluster: this node's members leave everywhere, its names are free.

        Call it before cancelling :meth:`run`; bounded by :data:`OP_TIMEOUT`. If Redis
        is away, the others notice by the heartbeat's expiry instead.
        """
        if self._down or not self._link.registered("bye"):
            return
        try:
            with trio.fail_after(OP_TIMEOUT):
                await self._link.script("bye", [self.node, LOG_MAXLEN])
        except self._errors as exc:
            log_event(log, "cluster.goodbye_failed", reason=reason(exc))
        else:
            log_event(log, "cluster.left", node=self.node)
