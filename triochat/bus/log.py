"""The cluster's log as Redis keeps it: key names, and entries read back, without I/O.

Chat lines live in one stream per room (entry ``N-0`` is line N); everything else in
the ``log`` and ``changes`` streams (see :mod:`triochat.bus.scripts`).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Final

from triochat.bus.scripts import PREFIX
from triochat.core import cluster

__all__ = [
    "CHANGES_KEY",
    "EPOCH_KEY",
    "LOG_KEY",
    "json_list",
    "jumped",
    "line_entry",
    "room_key",
    "rooms_of",
]

LOG_KEY: Final = f"{PREFIX}log"
CHANGES_KEY: Final = f"{PREFIX}changes"
EPOCH_KEY: Final = f"{PREFIX}epoch"


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
        obj = json.loads(raw)
        op = cluster.from_wire({**obj, "f": 0})
        line_id = int(identifier.partition("-")[0])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"malformed line entry: {exc}") from None
    if isinstance(op, cluster.Line):
        return cluster.Sequenced(str(obj.get("node", "")), line_id, op)
    return None


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
