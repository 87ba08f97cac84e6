"""The chat state of cluster nodes, without Redis or an event loop.

:class:`FakeLog` stands in for the cluster's log with the same rules as the Redis
script (:mod:`triochat.bus.scripts`): lines are numbered per room in the
order published, a name belongs to the first node that claims it, and every node
hears what the others publish. The end-to-end tests against a real Redis are in
``tests/test_cluster.py``.
"""

from __future__ import annotations

import json

import pytest

from tests.helpers import FakeLink
from triochat.core import cluster
from triochat.core.admin import Ban, DropRoom, Kick
from triochat.core.codec import Mode
from triochat.core.commands import Hello, Join, Msg, Nick, Quit, Say, Topic, Who
from triochat.core.names import LOBBY, name_key
from triochat.core.records import (
    AccountRecord,
    BanRecord,
    Batch,
    DropBan,
    MuteRecord,
    SaveAccount,
    SaveBan,
    SaveMute,
)
from triochat.core.state import ChatState, Limits, Member

NOW = 1795714800.0


class FakeLog:
    """The cluster's log, in memory: see the module docstring."""

    def __init__(self) -> None:
        self.nodes: dict[str, ChatState] = {}
        self.names: dict[str, str] = {}  # name key -> token
        self.seq: dict[str, int] = {}
        self.stored: dict[str, Batch] = {}  # what each node's store was given, merged
        self.conns = 0

    def node(self, name: str, ops: tuple[str, ...] = ()) -> ChatState:
        state = ChatState(Limits(), clock=lambda: NOW, ops=ops, node=name)
        self.nodes[name] = state
        return state

    def join(self, node: str, name: str, mode: Mode = Mode.PLAIN) -> tuple[Member, FakeLink]:
        """Connect a member to ``node`` (not yet published: call :meth:`flush`)."""
        self.conns += 1
        link = FakeLink()
        first = Hello(name) if mode is Mode.JSON else Nick(name)
        member = self.nodes[node].register(self.conns, "test", link, mode, first)
        assert member is not None
        return member, link

    def flush(self) -> None:
        """Carry every published operation to every node, until nothing is left."""
        busy = True
        while busy:
            busy = False
            for node, state in self.nodes.items():
                effects = state.take_effects()
                stored = self.stored.setdefault(node, Batch())
                stored.messages.extend(effects.batch.messages)
                stored.rooms.extend(effects.batch.rooms)
                stored.changes.extend(effects.batch.changes)
                for op in effects.published:
                    busy = True
                    self._carry(node, state, op)

    def _others(self, node: str, item: cluster.ClusterIn) -> None:
        for other, state in self.nodes.items():
            if other != node:
                state.apply(item)

    def _carry(self, node: str, origin: ChatState, op: cluster.Op) -> None:
        tok = cluster.token(node, getattr(op, "conn", 0))
        match op:
            case cluster.Line(key=key, room=room, floor=floor):
                if self.names.get(key) != tok:
                    origin.apply(cluster.Refused("line", op))
                    return
                self.seq[room] = max(self.seq.get(room, 0), floor) + 1
                for state in self.nodes.values():
                    state.apply(cluster.Sequenced(node, self.seq[room], op))
                return
            case cluster.Arrive(key=key) | cluster.Rename(key=key):
                holder = self.names.get(key)
                if holder is not None and holder != tok:
                    origin.apply(cluster.Refused("name", op))
                    return
                if isinstance(op, cluster.Rename) and op.old_key != key:
                    self.names.pop(op.old_key, None)
                self.names[key] = tok
            case cluster.Leave(key=key):
                if self.names.get(key) == tok:
                    del self.names[key]
            case _:
                pass
        self._others(node, cluster.Remote(node, op))


@pytest.fixture
def log() -> FakeLog:
    return FakeLog()


def test_cluster_lines_are_numbered_by_the_log_and_reach_every_node(log: FakeLog) -> None:
    """A line is delivered only when the log numbers it: same id on every node."""
    a, b = log.node("aaaa"), log.node("bbbb")
    alice, a_link = log.join("aaaa", "alice")
    bob, b_link = log.join("bbbb", "bob", Mode.JSON)
    log.flush()
    a_link.lines(), b_link.lines()
    a.handle(alice, Say("hello from A"))
    assert b_link.lines() == []  # not before the log has numbered it
    b.handle(bob, Say("hello from B"))
    log.flush()
    said = b_link.events()
    assert [(e["id"], e["from"], e["text"]) for e in said] == [
        (1, "alice", "hello from A"),
        (2, "bob", "hello from B"),  # a JSON sender gets its own line back, numbered
    ]
    # A plain sender's terminal shows its own line already.
    assert a_link.lines() == ["<bob> hello from B"]
    assert a.rooms[LOBBY].last_id == b.rooms[LOBBY].last_id == 2


def test_cluster_presence_and_who_span_the_nodes(log: FakeLog) -> None:
    """Joins, /who, counts and leaves of other nodes' members, as for local ones."""
    a, _ = log.node("aaaa"), log.node("bbbb")
    alice, a_link = log.join("aaaa", "alice")
    log.flush()
    a_link.lines()
    _, b_link = log.join("bbbb", "bob")
    log.flush()
    assert b_link.lines()[0] == "*** welcome, bob! 2 online. Type /help for commands."
    assert a_link.lines() == ["*** bob joined (2 online)"]
    a.handle(alice, Who())
    assert a_link.lines() == ["*** online (2): alice, bob"]
    bob = log.nodes["bbbb"].holder("bob")
    assert bob is not None
    log.nodes["bbbb"].handle(bob, Quit())
    log.flush()
    assert a_link.lines() == ["*** bob left (1 online)"]
    assert a.names() == ["alice"]


def test_cluster_rooms_topics_and_private_messages(log: FakeLog) -> None:
    """A room made on one node exists on the others; topics and /msg cross nodes."""
    a, b = log.node("aaaa"), log.node("bbbb")
    alice, a_link = log.join("aaaa", "alice")
    bob, b_link = log.join("bbbb", "bob")
    log.flush()
    a.handle(alice, Join("#dev"))
    log.flush()
    assert "#dev" in b.rooms
    b.handle(bob, Join("#dev"))
    a.handle(alice, Topic("shipping", "#dev"))
    log.flush()
    a_link.lines(), b_link.lines()
    b.handle(bob, Say("in dev", "#dev"))
    a.handle(alice, Msg("bob", "psst"))
    log.flush()
    assert a_link.lines() == ["-> *bob* psst", "<bob> in dev"]
    assert b_link.lines() == ["*alice* psst"]
    assert b.rooms["#dev"].topic == "shipping"
    b.handle(bob, Msg("nobody", "x"))
    assert b_link.lines() == ["! no such user: nobody"]


def test_cluster_name_race_has_exactly_one_winner(log: FakeLog) -> None:
    """Two nodes admit the same name at once: the log gives it to one; the other is renamed."""
    a, b = log.node("aaaa"), log.node("bbbb")
    first, first_link = log.join("aaaa", "alice", Mode.JSON)
    second, second_link = log.join("bbbb", "Alice", Mode.JSON)
    b.handle(second, Say("am I alice?"))
    log.flush()
    assert first.name == "alice"
    assert second.name.startswith("guest-bbbb-")
    events = [(e["type"], e.get("code") or e.get("new")) for e in second_link.events()]
    assert ("error", "name-taken") in events
    assert ("nick", second.name) in events  # renamed
    assert ("error", "not-sent") in events  # its line went out under a name it lost
    assert a.names() == b.names() == sorted(["alice", second.name], key=str.casefold)
    assert [e["type"] for e in first_link.events()] == ["welcome", "join"]  # the guest's


def test_cluster_a_node_lost_takes_its_members_away(log: FakeLog) -> None:
    a, _ = log.node("aaaa"), log.node("bbbb")
    _, a_link = log.join("aaaa", "alice")
    log.join("bbbb", "bob")
    log.flush()
    a_link.lines()
    a.apply(cluster.NodeGone("bbbb", "server lost"))
    assert a_link.lines() == ["*** bob left: server lost (1 online)"]
    assert a.names() == ["alice"]
    assert a.holder("bob") is None
    assert a.remote_holder("bob") is None


def test_cluster_outage_and_data_loss_are_told_and_ids_jump(log: FakeLog) -> None:
    """Members hear of an outage; after a loss, ids go on past ID_JUMP and nodes announce."""
    a, _ = log.node("aaaa"), log.node("bbbb")
    alice, a_link = log.join("aaaa", "alice")
    log.flush()
    a.handle(alice, Say("one"))
    log.flush()
    a_link.lines()
    a.apply(cluster.ClusterDown())
    a.apply(cluster.ClusterUp(lost_data=True, resync=True))
    lines = a_link.lines()
    assert lines[0] == "*** lost contact with the cluster; messages will be delayed"
    assert lines[1] == "*** back in contact with the cluster"
    assert "lost its recent data" in lines[2]
    arrivals = [op for op in a.resync_ops() if isinstance(op, cluster.Arrive)]
    assert arrivals == [cluster.Arrive(alice.id, "alice", name_key("alice"), (LOBBY,))]
    a.handle(alice, Say("two"))
    (line,) = a.take_effects().published
    assert isinstance(line, cluster.Line)
    assert line.floor == 1 + cluster.ID_JUMP


def test_cluster_a_line_read_twice_is_delivered_once(log: FakeLog) -> None:
    a = log.node("aaaa")
    _, a_link = log.join("aaaa", "alice", Mode.JSON)
    log.flush()
    a_link.lines()
    line = cluster.Line(99, "zed", "zed", LOBBY, "say", "hi", NOW, 0)
    a.apply(cluster.Sequenced("bbbb", 1, line))
    a.apply(cluster.Sequenced("bbbb", 1, line))
    assert [e["id"] for e in a_link.events()] == [1]


def test_cluster_bans_and_kicks_reach_other_nodes(log: FakeLog) -> None:
    """An operator on one node bans or kicks a member of another."""
    a, b = log.node("aaaa", ops=("boss",)), log.node("bbbb")
    boss, _ = log.join("aaaa", "boss")
    a.access.apply(SaveAccount(AccountRecord("boss", "boss", "x", NOW)))
    boss.account = "boss"  # registered and logged in: --op boss makes it an operator
    _, troll_link = log.join("bbbb", "troll")
    _, pest_link = log.join("bbbb", "pest")
    log.flush()
    troll_link.lines(), pest_link.lines()
    a.handle(boss, Ban("troll", None, "spam"))
    a.handle(boss, Kick("pest", "calm down"))
    log.flush()
    assert troll_link.lines() == ["*** you were banned by boss: spam"]
    assert pest_link.lines() == [
        "*** troll left: banned by boss: spam (2 online)",
        "*** you were kicked by boss: calm down",
    ]
    assert b.holder("troll") is None
    assert b.holder("pest") is None
    assert b.access.name_ban(name_key("troll"), NOW) is not None
    log.flush()
    assert isinstance(log.stored["bbbb"].changes[-1], SaveBan)  # stored on that node too


@pytest.mark.parametrize(
    "op",
    [
        cluster.Arrive(3, "alice", "alice", (LOBBY, "#dev")),
        cluster.Arrive(3, "alice", "alice", ()),
        cluster.Rename(3, "alice", "alice", "Al", "al"),
        cluster.Leave(3, "alice", "alice", "quit"),
        cluster.Enter(3, "alice", "alice", "#dev"),
        cluster.Exit(3, "alice", "alice", "#dev", "part"),
        cluster.Line(3, "alice", "alice", "#dev", "me", "waves ✨", 1795714800.123456, 7),
        cluster.Private(3, "alice", "alice", "bbbb:4", "bob", "psst", 1795714800.5),
        cluster.RoomMade("#dev"),
        cluster.TopicSet("#dev", "shipping", "alice", 1795714800.25, True),
        cluster.Changed(SaveBan(BanRecord("troll", "name", "troll", "boss", "", NOW, None))),
        cluster.Changed(SaveMute(MuteRecord("m", "M", "boss", NOW, NOW + 60))),
        cluster.Changed(SaveAccount(AccountRecord("alice", "alice", "scrypt$x", NOW))),
        cluster.Changed(DropBan("10.0.0.0/8")),
        cluster.Kick("bbbb:4", "bob", "boss", "calm down"),
    ],
)
def test_cluster_operations_survive_the_wire(op: cluster.Op) -> None:
    """Each operation comes back equal from its JSON form (what the log stores)."""
    assert cluster.from_wire(json.loads(cluster.dumps(op))) == op


def test_cluster_unknown_operations_are_skipped() -> None:
    """A newer node's operation that this version does not know is not an error."""
    assert cluster.from_wire({"o": "teleport"}) is None
    assert cluster.from_wire({"o": "change", "what": "SaveTeleport"}) is None
    with pytest.raises(KeyError):
        cluster.from_wire({"o": "line"})


def test_cluster_a_dropped_room_is_dropped_on_every_node(log: FakeLog) -> None:
    """/droproom on one node: the other node moves its members out and deletes it too."""
    a, b = log.node("aaaa", ops=("boss",)), log.node("bbbb")
    boss, _ = log.join("aaaa", "boss")
    a.access.apply(SaveAccount(AccountRecord("boss", "boss", "x", NOW)))
    boss.account = "boss"
    alice, a_link = log.join("aaaa", "alice")
    bob, b_link = log.join("bbbb", "bob")
    log.flush()
    a.handle(alice, Join("#spam"))
    b.handle(bob, Join("#spam"))
    log.flush()
    a.take_effects(), b.take_effects()
    a_link.lines(), b_link.lines()
    a.handle(boss, DropRoom("#spam"))
    for op in a.take_effects().published:  # as flush() does, keeping b's batch to look at
        log._carry("aaaa", a, op)
    assert b.take_effects().batch.dropped_rooms == ["#spam"]  # deleted from that node's store
    log.flush()
    assert b_link.lines() == [
        "*** boss dropped the room #spam and its history",
        "*** you left #spam",
        "*** #lobby is now your current room",
    ]
    assert "#spam" not in a.rooms
    assert "#spam" not in b.rooms
    assert alice.rooms == bob.rooms == [LOBBY]
    remote_bob = a.remote_holder("bob")
    assert remote_bob is not None
    assert remote_bob.rooms == [LOBBY]
    a.handle(alice, Join("#spam"))  # made again: a new room everywhere
    log.flush()
    assert "#spam" in b.rooms
    assert cluster.from_wire(json.loads(cluster.dumps(cluster.RoomDropped("#x", "boss")))) == (
        cluster.RoomDropped("#x", "boss")
    )
