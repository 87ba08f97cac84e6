"""The cluster's log as Redis keeps it: key names, and entries read back, without I/O.

Chat lines live in one stream per room (entry ``N-0`` is line N); everything else in
the ``log`` and ``changes`` streams (see :mod:`triochat.bus.scripts`). JSON goes through
orjson (:func:`loads`, :func:`payload`), as JSON mode on the wire does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Final

import orjson
from orjson import loads

from triochat.bus.scripts import PREFIX
from triochat.core import cluster
from triochat.core.logevents import log_event

__all__ = [
    "CHANGES_KEY",
    "EPOCH_KEY",
    "LOG_KEY",
    "json_list",
    "jumped",
    "line_entry",
    "loads",
    "payload",
    "room_key",
    "room_lines",
    "rooms_of",
]

LOG_KEY: Final = f"{PREFIX}log"
CHANGES_KEY: Final = f"{PREFIX}changes"
EPOCH_KEY: Final = f"{PREFIX}epoch"

log = logging.getLogger(__name__)


def room_key(room: str) -> str:
    """The stream holding ``room``'s chat lines."""
    return f"{PREFIX}room:{room}"


def json_list(value: object) -> list[Any]:
    """A JSON array from Redis's cjson, which writes an empty one as ``{}``."""
    return value if isinstance(value, list) else []


def line_entry(identifier: str, raw: str) -> cluster.Sequenced | None:
    """A room stream's entry as the line it numbers (None: it holds no chat line).

    Raises:
        ValueError: the entry is malformed.
    """
    try:
        obj = loads(raw)
        if obj.get("o") != "line":
            return None
        line = cluster.line_from_wire(obj, 0)  # (no floor: the id is the entry's)
        line_id = int(identifier.partition("-")[0])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"malformed line entry: {exc}") from None
    return cluster.Sequenced(str(obj.get("node", "")), line_id, line)


def payload(ops: Sequence[cluster.Op]) -> bytes:
    """The PUBLISH script's argument: ``ops`` as one JSON array (UTF-8, compact).

    orjson, not the standard library: per line, encoding the batch and decoding the
    entries read back took ~7 us with ``json`` and ~2 us with orjson (the node's own
    CPU per line, docs/benchmarks.md). The script decodes it (cjson), so only its
    meaning matters, not its spacing; entries are written by the script.
    """
    return orjson.dumps([cluster.to_wire(op) for op in ops])


def room_lines(entries: Sequence[tuple[str, str]]) -> list[cluster.Sequenced]:
    """A room stream's entries (id, JSON) as its lines; a malformed one is logged, skipped."""
    lines: list[cluster.Sequenced] = []
    for identifier, raw in entries:
        try:
            sequenced = line_entry(identifier, raw)
        except ValueError:
            log_event(log, "cluster.bad_line", raw=raw)
            continue
        if sequenced is not None:
            lines.append(sequenced)
    return lines


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
