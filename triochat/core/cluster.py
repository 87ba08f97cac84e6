"""What nodes of a cluster tell each other, as plain values. No I/O, no trio.

Several servers ("nodes") form one chat through a shared log (Redis, see
:mod:`triochat.bus`). The chat state (:mod:`triochat.core.state`) of a
node in a cluster does not deliver its members' chat lines itself: it *publishes*
them as :class:`Line` operations, the log gives each its id (per room, strictly
increasing, cluster-wide) and every node, the publisher included, delivers the lines
in the order the log returns them (:class:`Sequenced`). Presence, renames, private
messages, rooms and topics are published the same way; a node applies its own at
once and other nodes' when it reads them.

Each operation names its member by ``conn`` (the connection id on its node); a
member's cluster-wide identity is its *token*, ``"NODE:CONN"``.

The wire form is a JSON object per operation (the ``o`` field says which), because
the log's scripts read them too: :func:`to_wire` and :func:`from_wire`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Final, assert_never

from triochat.core.records import (
    AccountRecord,
    BanRecord,
    Change,
    DropAccount,
    DropBan,
    DropMute,
    DropOp,
    MuteRecord,
    OpRecord,
    SaveAccount,
    SaveBan,
    SaveMute,
    SaveOp,
)

__all__ = [
    "ID_JUMP",
    "Arrive",
    "Backlog",
    "Changed",
    "ClusterDown",
    "ClusterIn",
    "ClusterUp",
    "Enter",
    "Exit",
    "Kick",
    "Leave",
    "Line",
    "NodeGone",
    "Op",
    "Private",
    "Refused",
    "Remote",
    "Rename",
    "RoomDropped",
    "RoomMade",
    "Sequenced",
    "TopicSet",
    "dumps",
    "from_wire",
    "line_from_wire",
    "to_wire",
    "token",
]

# After the log lost its data, ids go on from the last one a node saw plus this, so a
# node that lagged behind by fewer lines cannot hand out an id another node showed.
ID_JUMP: Final = 1000


def token(node: str, conn: int) -> str:
    """A member's identity across the cluster."""
    return f"{node}:{conn}"


@dataclass(frozen=True, slots=True)
class Arrive:
    """A member joined a node as ``name`` (name key ``key``) and is in ``rooms``.

    Also sent again for every member after the log lost its data, or after the other
    nodes took this node for dead: the log then claims each name anew.
    """

    conn: int
    name: str
    key: str
    rooms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Rename:
    conn: int
    old: str
    old_key: str
    name: str
    key: str


@dataclass(frozen=True, slots=True)
class Leave:
    conn: int
    name: str
    key: str
    reason: str


@dataclass(frozen=True, slots=True)
class Enter:
    """A member joined a room."""

    conn: int
    name: str
    key: str
    room: str


@dataclass(frozen=True, slots=True)
class Exit:
    """A member left a room (``part``, or the reason it left the server)."""

    conn: int
    name: str
    key: str
    room: str
    reason: str


# Line and Sequenced: one (or two) per chat line on a node with a bus, so they are not
# frozen: a frozen dataclass sets each field through object.__setattr__, 3x the cost of
# building a plain slotted one (1.0 against 0.3 us for a Line). Never changed once
# built, all the same (equal and hashable by value, as the frozen ops are).


@dataclass(slots=True, unsafe_hash=True)
class Line:
    """A chat line to sequence. ``floor``: its id must be larger (see :data:`ID_JUMP`)."""

    conn: int
    name: str
    key: str
    room: str
    kind: str  # "say" or "me"
    text: str
    ts: float
    floor: int


@dataclass(frozen=True, slots=True)
class Private:
    """A private message for the member whose token is ``to``."""

    conn: int
    name: str
    key: str
    to: str
    to_name: str
    text: str
    ts: float


@dataclass(frozen=True, slots=True)
class RoomMade:
    room: str


@dataclass(frozen=True, slots=True)
class RoomDropped:
    """An operator dropped ``room``: every node moves its members out and deletes it."""

    room: str
    by: str


@dataclass(frozen=True, slots=True)
class TopicSet:
    room: str
    text: str
    by: str
    ts: float
    locked: bool


@dataclass(frozen=True, slots=True)
class Changed:
    """An account, operator, ban or mute change: every node applies and stores it.

    They go to a stream of their own that is never trimmed, so a new node learns every
    account and ban (account records carry the password's scrypt hash, never the
    password, as in the database).
    """

    change: Change


@dataclass(frozen=True, slots=True)
class Kick:
    """An operator removed the member whose token is ``to``."""

    to: str
    to_name: str
    by: str
    reason: str


Op = (
    Arrive
    | Rename
    | Leave
    | Enter
    | Exit
    | Line
    | Private
    | RoomMade
    | RoomDropped
    | TopicSet
    | Changed
    | Kick
)


# -- what a node learns from the log ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Remote:
    """Another node's operation (never a :class:`Line`: those come as :class:`Sequenced`)."""

    node: str
    op: Op


@dataclass(slots=True, unsafe_hash=True)
class Sequenced:
    """A chat line with its id, from any node (this one included)."""

    node: str
    id: int
    line: Line


@dataclass(frozen=True, slots=True)
class Backlog:
    """Many lines of ``room`` read at once (a catch-up): stored, then replayed paced.

    A node that was cut off (its Redis away, its reads behind) reads what it missed
    in one go; delivered live, a burst of that size would overflow every member's
    send queue and drop them all as "too slow". So the lines are stored and cached
    as usual, and each member of the room gets them as a replay written as its
    connection drains (:class:`~triochat.core.model.Query`), not in its send queue.
    """

    room: str
    lines: tuple[Sequenced, ...]


@dataclass(frozen=True, slots=True)
class NodeGone:
    """A node stopped (``server stopped``) or was lost (``server lost``)."""

    node: str
    reason: str


@dataclass(frozen=True, slots=True)
class Refused:
    """The log refused an operation of this node.

    ``what`` is ``"name"`` (an :class:`Arrive` or :class:`Rename` whose name another
    node holds), or ``"line"`` (a line or private message from a member that does not
    hold its name in the cluster). ``op`` is the operation.
    """

    what: str
    op: Op


@dataclass(frozen=True, slots=True)
class ClusterDown:
    """The log cannot be reached; the node retries."""


@dataclass(frozen=True, slots=True)
class ClusterUp:
    """The log is back. ``lost_data``: it came back without its data.

    ``resync``: this node must publish its members and rooms again (the log lost
    them, or the other nodes took this node for dead).
    """

    lost_data: bool
    resync: bool


ClusterIn = Sequenced | Backlog | Remote | NodeGone | Refused | ClusterDown | ClusterUp


# -- the wire form ------------------------------------------------------------------------


def to_wire(op: Op) -> dict[str, Any]:
    """``op`` as a JSON-able object (times as strings: the log's JSON rounds floats)."""
    match op:  # (chat lines first: nearly every operation is one)
        case Line(conn=conn, name=name, key=key, room=room, kind=kind, text=text, ts=ts):
            return {
                "o": "line",
                "c": conn,
                "n": name,
                "k": key,
                "room": room,
                "kind": kind,
                "t": text,
                "ts": repr(ts),
                "f": op.floor,
            }
        case Arrive(conn=conn, name=name, key=key, rooms=rooms):
            return {"o": "arrive", "c": conn, "n": name, "k": key, "r": list(rooms)}
        case Rename(conn=conn, old=old, old_key=old_key, name=name, key=key):
            return {"o": "rename", "c": conn, "old": old, "ok": old_key, "n": name, "k": key}
        case Leave(conn=conn, name=name, key=key, reason=reason):
            return {"o": "leave", "c": conn, "n": name, "k": key, "why": reason}
        case Enter(conn=conn, name=name, key=key, room=room):
            return {"o": "enter", "c": conn, "n": name, "k": key, "room": room}
        case Exit(conn=conn, name=name, key=key, room=room, reason=reason):
            return {"o": "exit", "c": conn, "n": name, "k": key, "room": room, "why": reason}
        case Private(conn=conn, name=name, key=key, to=to, to_name=to_name, text=text, ts=ts):
            return {
                "o": "private",
                "c": conn,
                "n": name,
                "k": key,
                "to": to,
                "tn": to_name,
                "t": text,
                "ts": repr(ts),
            }
        case RoomMade(room=room):
            return {"o": "room", "room": room}
        case RoomDropped(room=room, by=by):
            return {"o": "droproom", "room": room, "by": by}
        case TopicSet(room=room, text=text, by=by, ts=ts, locked=locked):
            return {"o": "topic", "room": room, "t": text, "by": by, "ts": repr(ts), "l": locked}
        case Changed(change=change):
            fields = dataclasses.asdict(change)
            return {"o": "change", "what": type(change).__name__, **fields}
        case Kick(to=to, to_name=to_name, by=by, reason=reason):
            return {"o": "kick", "to": to, "tn": to_name, "by": by, "why": reason}
        case _:
            assert_never(op)


def _rooms(value: object) -> tuple[str, ...]:
    # Redis's cjson turns an empty array into an empty object.
    return tuple(str(room) for room in value) if isinstance(value, list) else ()


def from_wire(obj: dict[str, Any]) -> Op | None:
    """The operation ``obj`` stands for; None for one this version does not know.

    Raises KeyError, TypeError or ValueError for a malformed object.
    """
    match obj.get("o"):
        case "line":  # (first: nearly every operation is one)
            return line_from_wire(obj, int(obj.get("f", 0)))
        case "arrive":
            return Arrive(int(obj["c"]), str(obj["n"]), str(obj["k"]), _rooms(obj.get("r")))
        case "rename":
            return Rename(
                int(obj["c"]), str(obj["old"]), str(obj["ok"]), str(obj["n"]), str(obj["k"])
            )
        case "leave":
            return Leave(int(obj["c"]), str(obj["n"]), str(obj["k"]), str(obj["why"]))
        case "enter":
            return Enter(int(obj["c"]), str(obj["n"]), str(obj["k"]), str(obj["room"]))
        case "exit":
            return Exit(
                int(obj["c"]), str(obj["n"]), str(obj["k"]), str(obj["room"]), str(obj["why"])
            )
        case "private":
            return Private(
                int(obj["c"]),
                str(obj["n"]),
                str(obj["k"]),
                str(obj["to"]),
                str(obj["tn"]),
                str(obj["t"]),
                float(obj["ts"]),
            )
        case "room":
            return RoomMade(str(obj["room"]))
        case "droproom":
            return RoomDropped(str(obj["room"]), str(obj["by"]))
        case "topic":
            return TopicSet(
                str(obj["room"]), str(obj["t"]), str(obj["by"]), float(obj["ts"]), bool(obj["l"])
            )
        case "change":
            change = _change(obj)
            return Changed(change) if change is not None else None
        case "kick":
            return Kick(str(obj["to"]), str(obj["tn"]), str(obj["by"]), str(obj["why"]))
        case _:
            return None


def line_from_wire(obj: dict[str, Any], floor: int) -> Line:
    """The :class:`Line` a ``line`` object stands for, with ``floor``.

    Raises KeyError, TypeError or ValueError for a malformed object.
    """
    return Line(
        int(obj["c"]),
        str(obj["n"]),
        str(obj["k"]),
        str(obj["room"]),
        "me" if obj["kind"] == "me" else "say",
        str(obj["t"]),
        float(obj["ts"]),
        floor,
    )


_RECORDS: Final[dict[str, tuple[type[Any], type[Any] | None]]] = {
    "SaveAccount": (SaveAccount, AccountRecord),
    "SaveOp": (SaveOp, OpRecord),
    "SaveBan": (SaveBan, BanRecord),
    "SaveMute": (SaveMute, MuteRecord),
    "DropAccount": (DropAccount, None),
    "DropOp": (DropOp, None),
    "DropBan": (DropBan, None),
    "DropMute": (DropMute, None),
}


def _change(obj: dict[str, Any]) -> Change | None:
    """The :data:`Change` in a ``change`` object (its fields as ``dataclasses.asdict``)."""
    kinds = _RECORDS.get(str(obj.get("what")))
    if kinds is None:
        return None
    change_type, record_type = kinds
    if record_type is None:  # a Drop*: one key field
        (only,) = dataclasses.fields(change_type)
        value = obj[only.name]
        if not isinstance(value, str):
            raise TypeError(f"{only.name} must be a string")
        return change_type(value)  # type: ignore[no-any-return]
    record = obj["record"]
    if not isinstance(record, dict):
        raise TypeError("record must be an object")
    names = {f.name for f in dataclasses.fields(record_type)}
    return change_type(record_type(**{k: v for k, v in record.items() if k in names}))  # type: ignore[no-any-return]


def dumps(op: Op) -> str:
    """The wire form of ``op`` as JSON text."""
    return json.dumps(to_wire(op), ensure_ascii=False, separators=(",", ":"))
