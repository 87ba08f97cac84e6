"""The cluster's log as Redis keeps it: key names, and entries read back, without I/O.

Chat lines live in one stream per room (entry ``N-0`` is line N); everything else in
the ``log`` and ``changes`` streams (see :mod:`triochat.bus.scripts`). JSON goes through
orjson (:func:`loads`, :func:`payload`), as JSON mode on the wire does.

A node's own lines come back to it too (it delivers them in the log's order). They are
not decoded again: each entry of a line carries a tag (field ``u``) naming the batch
and the place in it, and :class:`OwnLines` keeps what this node sent under those tags
until it reads them back (see its docstring).
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Final

import orjson
from orjson import loads

from triochat.bus.redis_link import Entry, entry_value
from triochat.bus.scripts import PREFIX
from triochat.core import cluster
from triochat.core.logevents import log_event

__all__ = [
    "CHANGES_KEY",
    "EPOCH_KEY",
    "LOG_KEY",
    "MAX_OWN_LINES",
    "OwnLines",
    "json_list",
    "jumped",
    "line_entry",
    "loads",
    "payload",
    "read_rooms",
    "room_key",
    "room_lines",
    "rooms_of",
]

LOG_KEY: Final = f"{PREFIX}log"
CHANGES_KEY: Final = f"{PREFIX}changes"
EPOCH_KEY: Final = f"{PREFIX}epoch"
DONE_KEY: Final = f"{PREFIX}done"  # node -> its last batch number (scripts.PUBLISH)

# Lines kept by OwnLines at most: those sent and not read back yet. A line is read back
# within a batch or two; one never is if its entry was trimmed or its room dropped
# before this node read it: past this many, the oldest are forgotten (and decoded, if
# they ever come).
MAX_OWN_LINES: Final = 20_000

log = logging.getLogger(__name__)


def room_key(room: str) -> str:
    """The stream holding ``room``'s chat lines."""
    return f"{PREFIX}room:{room}"


def json_list(value: object) -> list[Any]:
    """A JSON array from Redis's cjson, which writes an empty one as ``{}``."""
    return value if isinstance(value, list) else []


def line_entry(identifier: bytes, raw: bytes) -> cluster.Sequenced | None:
    """A room stream's entry (its id, its ``e`` field) as the line it numbers (None: it
    holds no chat line).

    Raises:
        ValueError: the entry is malformed.
    """
    try:
        obj = loads(raw)
        if obj.get("o") != "line":
            return None
        line = cluster.line_from_wire(obj, 0)  # (no floor: the id is the entry's)
        line_id = int(identifier.partition(b"-")[0])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"malformed line entry: {exc}") from None
    return cluster.Sequenced(str(obj.get("node", "")), line_id, line)


class OwnLines:
    """The lines this node sent, by tag, until its log reader sees them come back.

    The publisher numbers its batches; :meth:`prefix` is the batch's tag (this
    process's random token and the batch number), which the PUBLISH script writes into
    each line's entry, followed by the line's place in the batch (field ``u``).
    :meth:`keep` files the batch's lines under those tags *before* the call, so the
    reader finds them whether it reads the entries before or after the script's reply
    comes back. A batch sent again after an outage has the same number, hence the same
    tags, whether or not the first try went through. The token is new in every process:
    a node restarted under the same name (its batches numbered from 1 again) cannot
    take another process's entry for its own. :meth:`take` hands a line over once;
    refused lines are dropped on the reply (:meth:`drop`), everything when the log lost
    its data (:meth:`clear`: the batches are numbered anew), and beyond
    :data:`MAX_OWN_LINES` the oldest.
    """

    def __init__(self) -> None:
        self._token = secrets.token_hex(4).encode()
        self._lines: dict[bytes, cluster.Line] = {}

    def __len__(self) -> int:
        return len(self._lines)

    def prefix(self, seq: int) -> bytes:
        """The tag of batch ``seq``; a line's is this and its place in the batch (from 1)."""
        return b"%s.%d." % (self._token, seq)

    def keep(self, seq: int, batch: Sequence[cluster.Op]) -> int:
        """File the lines of batch ``seq`` (about to be sent) under their tags; returns
        how many lines it holds."""
        prefix = self.prefix(seq)
        lines = self._lines
        count = 0
        line_type = cluster.Line
        for place, op in enumerate(batch, 1):
            if type(op) is line_type:
                lines[b"%s%d" % (prefix, place)] = op
                count += 1
        excess = len(lines) - MAX_OWN_LINES
        if excess > 0:
            for tag in list(itertools.islice(lines, excess)):
                del lines[tag]
        return count

    def drop(self, seq: int, places: Sequence[int]) -> None:
        """Forget the lines of batch ``seq`` at ``places`` (refused: no entry comes)."""
        prefix = self.prefix(seq)
        for place in places:
            self._lines.pop(b"%s%d" % (prefix, place), None)

    def take(self, tag: bytes) -> cluster.Line | None:
        """The line sent under ``tag`` (once), or None if it is not this process's."""
        return self._lines.pop(tag, None)

    def clear(self) -> None:
        self._lines.clear()


def room_lines(entries: Sequence[Entry], node: str, own: OwnLines) -> list[cluster.Sequenced]:
    """A room stream's entries as its lines; a malformed one is logged, skipped.

    An entry tagged with one of ``own``'s tags is that line, from ``node`` (this node),
    and is not decoded; only its id is read.
    """
    lines: list[cluster.Sequenced] = []
    append = lines.append
    take = own.take
    sequenced = cluster.Sequenced
    for identifier, fields in entries:
        # The script writes a line's entry as [e, JSON, u, tag].
        if fields is not None and len(fields) == 4 and fields[2] == b"u":
            line = take(fields[3])
            if line is not None:
                append(sequenced(node, int(identifier.partition(b"-")[0]), line))
                continue
        raw = entry_value(fields)
        try:
            one = line_entry(identifier, raw)
        except ValueError:
            log_event(log, "cluster.bad_line", raw=raw.decode(errors="replace"))
            continue
        if one is not None:
            append(one)
    return lines


def read_rooms(
    reply: dict[str, list[Entry]], positions: dict[str, str], node: str, own: OwnLines
) -> list[tuple[str, list[cluster.Sequenced]]]:
    """The lines of each room stream in an XREAD ``reply`` (:func:`room_lines`), and
    ``positions`` moved past the last entry read of every stream."""
    rooms: list[tuple[str, list[cluster.Sequenced]]] = []
    for key, entries in reply.items():
        if entries:
            positions[key] = entries[-1][0].decode()
            if key not in (LOG_KEY, CHANGES_KEY):  # (they hold no chat lines)
                rooms.append((key, room_lines(entries, node, own)))
    return rooms


def payload(ops: Sequence[cluster.Op]) -> bytes:
    """The PUBLISH script's argument: ``ops`` as one JSON array (UTF-8, compact).

    A chat line goes as an array, ``[conn, name, key, room, kind, text, ts, floor]``
    (the script writes the entry's object, as :func:`~triochat.core.cluster.to_wire`
    would); anything else as ``to_wire``'s object. Per line, the object cost the node
    1.6 us, the array 0.6 us. ``ts`` is text (``repr``), as in the object: the script's
    JSON library would round a number to 14 digits, and writing it back exactly in
    Lua (``%.17g``) cost Redis more (2-4 us per line) than ``repr`` costs the node
    (0.4 us). orjson, not the standard library (~7 us per line with ``json`` for the
    batch and the entries read back, ~2 with orjson; docs/benchmarks.md).
    """
    line_type = cluster.Line
    return orjson.dumps(
        [
            (op.conn, op.name, op.key, op.room, op.kind, op.text, repr(op.ts), op.floor)
            if type(op) is line_type
            else cluster.to_wire(op)
            for op in ops
        ]
    )


def jumped(op: cluster.Op) -> cluster.Op:
    """A queued line numbered after a loss: past every id a lagging node may have shown."""
    if isinstance(op, cluster.Line):
        return replace(op, floor=op.floor + cluster.ID_JUMP)
    return op


def rooms_of(op: cluster.Op) -> tuple[str, ...]:
    """The rooms an operation from another node tells this node about."""
    match op:
        case cluster.Arrive(rooms=rooms):
            return rooms
        case cluster.Enter(room=room) | cluster.TopicSet(room=room):
            return (room,)
        case _:
            return ()
