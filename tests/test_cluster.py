"""End to end: several ``triochat server`` processes forming one chat through Redis.

Every test runs a real ``redis-server`` (the ``redis_server`` fixture, tests/redisproc.py)
and real server processes ("nodes", the ``start_process`` fixture) on loopback, and
talks to them over TCP with triochat.testing's Peer (plain mode) and ChatClient (JSON).
What one node's members do must reach the members of every other node as if they were
on one server: chat, joins and leaves with cluster-wide counts, /who, rooms, topics,
private messages, unique names, resume, and what happens when a node or Redis dies.

Everything runs in real time (no ``autojump_clock``); every wait is bounded.
"""

from __future__ import annotations

import itertools
import json
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

import trio

from tests.conftest import StartProcess
from tests.procs import ServerProcess, run_triochat
from tests.redisproc import RedisServer
from triochat.bus.redis_bus import HEARTBEAT_S, NODE_TTL_MS, RETRY_MAX_S
from triochat.testing import ChatClient, JsonEvent, Peer

# Extra flags of every node; the rate limit is off so that bursts are not slowed down.
NODE_ARGS: Final = ("--db", ":memory:", "--web-port", "off", "--rate-limit", "0")
CROSS_TIMEOUT: Final = 5.0  # seconds for an event to reach another node's members
NODE_LOST_TIMEOUT: Final = 10.0  # seconds for a dead node's members to be seen leaving
REDIS_TIMEOUT: Final = 10.0  # seconds for the nodes to notice Redis going and coming back
RACE_ROUNDS: Final = 10  # rounds of the same name registered on two nodes at once
RACE_SETTLE: Final = 3.0  # seconds for one of two same-named members to lose the name
CLUSTER_DOWN_TEXT: Final = "lost contact with the cluster; messages will be delayed"


async def start_nodes(
    start_process: StartProcess, redis: RedisServer, count: int
) -> list[ServerProcess]:
    """Start ``count`` nodes on ``redis`` at once; return them in a fixed order.

    Node N logs to ``node-N.log`` beside Redis's folder (the test's ``tmp_path``),
    numbered on from the nodes started before.
    """
    nodes: list[ServerProcess | None] = [None] * count
    started = len(list(redis.dir.parent.glob("node-*.log")))

    async def start(index: int) -> None:
        log_path = redis.dir.parent / f"node-{started + index + 1}.log"
        nodes[index] = await start_process("--redis", redis.url, *NODE_ARGS, log_path=log_path)

    async with trio.open_nursery() as nursery:
        for index in range(count):
            nursery.start_soon(start, index)
    return [node for node in nodes if node is not None]


async def line_matching(
    peer: Peer, want: str | Callable[[str], bool], timeout: float = CROSS_TIMEOUT
) -> list[str]:
    """Read plain lines until one is ``want`` (or satisfies it); return all lines read.

    The matching line is the last one of the list. Fails, listing what came, if it
    does not come within ``timeout``.
    """
    matches = want if callable(want) else want.__eq__
    seen: list[str] = []
    with trio.move_on_after(timeout):
        while True:
            line = await peer.next_line()
            if line is None:
                raise AssertionError(f"connection closed while waiting for {want!r}: {seen!r}")
            seen.append(line)
            if matches(line):
                return seen
    raise AssertionError(f"{want!r} did not come within {timeout:g} s; came instead: {seen!r}")


async def plain_who(peer: Peer) -> list[str]:
    """Ask ``/who`` in plain mode; the names listed (other lines before it are skipped).

    A room's operators are marked ``@name``; the mark is not part of the name.
    """
    await peer.send("/who")
    reply = (await line_matching(peer, lambda line: line.startswith("*** online (")))[-1]
    head, _, names = reply.partition(": ")
    listed = [name.removeprefix("@") for name in names.split(", ")] if names else []
    assert head == f"*** online ({len(listed)})", reply
    return listed


async def json_who(client: ChatClient, room: str = "#lobby") -> list[str]:
    """Ask who is in ``room`` in JSON mode; the names listed."""
    await client.send(type="who", room=room)
    reply = await client.expect("who", room=room)
    names: list[str] = reply["names"]
    assert reply["online"] == len(names), reply
    return names


async def until_who(member: ChatClient | Peer, names: Sequence[str], room: str = "#lobby") -> None:
    """Ask who is in ``room`` until the answer is ``names``: the node has heard of them.

    Presence reaches the other nodes a few milliseconds after a member is welcomed, so
    a test that needs every node to know everyone waits for it (a plain Peer asks
    about its current room).
    """
    listed: list[str] = []
    with trio.move_on_after(CROSS_TIMEOUT):
        while True:
            if isinstance(member, ChatClient):
                listed = await json_who(member, room)
            else:
                listed = await plain_who(member)
            if sorted(listed) == sorted(names):
                return
            await trio.sleep(0.02)
    raise AssertionError(f"who in {room} is still {listed}, not {sorted(names)}")


def chat(events: Sequence[JsonEvent], room: str = "#lobby") -> list[tuple[int, str, str]]:
    """(id, from, text) of the live ``say`` and ``me`` events of ``room``, in order."""
    return [
        (event["id"], event["from"], event["text"])
        for event in events
        if event.get("type") in ("say", "me")
        and event.get("room") == room
        and not event.get("history")
    ]


def assert_increasing(ids: Sequence[int]) -> None:
    """Ids strictly increase."""
    assert all(a < b for a, b in itertools.pairwise(ids)), ids


async def test_two_nodes_one_conversation(
    redis_server: RedisServer, start_process: StartProcess
) -> None:
    """Members of two nodes chat, see each other in /who, and see each other come and go.

    Join and leave notices count the members of both nodes.
    """
    a, b = await start_nodes(start_process, redis_server, 2)
    alice = await a.join("alice")  # plain, on A
    bob = await b.client("bob")  # JSON, on B
    await alice.expect("*** bob joined (2 online)")
    await bob.say("hello from B")
    await alice.expect("<bob> hello from B")
    await alice.send("hello from A")
    await bob.expect("say", from_="alice", text="hello from A", room="#lobby")

    assert await plain_who(alice) == ["alice", "bob"]
    assert await json_who(bob) == ["alice", "bob"]

    carol = await a.client("carol")  # joins on A: B's member hears of it
    await bob.expect("join", name="carol", room="#lobby", online=3)
    await alice.expect("*** carol joined (3 online)")
    await carol.quit()
    await bob.expect("leave", name="carol", room="#lobby", online=2, reason="quit")
    await alice.expect("*** carol left (2 online)")

    await bob.quit()  # leaves from B: A's member hears of it
    await alice.expect("*** bob left (1 online)")
    assert await plain_who(alice) == ["alice"]

    again = await b.client("bob")  # the name is free again, cluster-wide
    await alice.expect("*** bob joined (2 online)")
    await again.say("back")
    await alice.expect("<bob> back")
    await alice.quiet()


async def test_three_nodes_agree_on_order(
    redis_server: RedisServer, start_process: StartProcess
) -> None:
    """Members on three nodes talk at once in two rooms: all see one order per room.

    Every member receives every line of each room once, in the same sequence, with
    strictly increasing ids.
    """
    per_node, lines_each, rooms = 2, 8, ("#lobby", "#ops")
    nodes = await start_nodes(start_process, redis_server, 3)
    clients = [
        await node.client(f"n{n}m{m}", rooms=["#ops"])
        for n, node in enumerate(nodes)
        for m in range(per_node)
    ]
    names = [client.name for client in clients]
    for client in clients:  # every node knows every member is in both rooms
        await client.expect("current", room="#lobby")
        await until_who(client, names, "#ops")
        await until_who(client, names, "#lobby")
    total = len(clients) * lines_each  # lines per room

    async def talk(client: ChatClient) -> None:
        for number in range(lines_each):
            for room in rooms:
                await client.send(type="say", room=room, text=f"{client.name} {room} {number}")

    async def listen(client: ChatClient) -> None:
        while min(len(chat(client.events, room)) for room in rooms) < total:
            await client.expect("say", timeout=CROSS_TIMEOUT)

    with trio.fail_after(4 * CROSS_TIMEOUT):
        async with trio.open_nursery() as nursery:
            for client in clients:
                nursery.start_soon(listen, client)
                nursery.start_soon(talk, client)

    for room in rooms:
        reference = chat(clients[0].events, room)
        assert len(reference) == total
        assert_increasing([id_ for id_, _, _ in reference])
        sent = {f"{client.name} {room} {n}" for client in clients for n in range(lines_each)}
        assert sorted(text for _, _, text in reference) == sorted(sent)
        for client in clients[1:]:
            assert chat(client.events, room) == reference, client.name


async def test_rooms_span_nodes(redis_server: RedisServer, start_process: StartProcess) -> None:
    """A room joined on two nodes is one room: talk, /rooms, the topic."""
    a, b = await start_nodes(start_process, redis_server, 2)
    alice = await a.join("alice")  # plain, on A
    bob = await b.client("bob")  # JSON, on B
    await alice.expect("*** bob joined (2 online)")
    await alice.send("/join #dev")
    await alice.expect("*** you joined #dev (1 online)")
    with trio.fail_after(CROSS_TIMEOUT):  # B hears of #dev (and of alice in it)
        while True:
            await bob.send(type="rooms")
            listed = {info["room"]: info for info in (await bob.expect("rooms"))["rooms"]}
            if listed.get("#dev", {}).get("online") == 1:
                break
            await trio.sleep(0.02)
    joined = await bob.join("#dev")
    assert joined["online"] == 2, joined
    await alice.expect("*** bob joined (2 online)")  # #dev is alice's current room

    await alice.send("anyone in dev?")
    await bob.expect("say", room="#dev", from_="alice", text="anyone in dev?")
    await bob.say("here", room="#dev")
    await alice.expect("<bob> here")
    await bob.say("and in the lobby", room="#lobby")
    await alice.expect("#lobby <bob> and in the lobby")

    await bob.send(type="rooms")
    listed = {info["room"]: info for info in (await bob.expect("rooms"))["rooms"]}
    assert listed["#dev"]["online"] == 2, listed
    assert listed["#lobby"]["online"] == 2, listed

    await alice.send("/topic release on friday")
    await line_matching(alice, "*** alice set the topic: release on friday")
    await bob.expect("topic", room="#dev", topic="release on friday", by="alice", changed=True)
    await bob.send(type="topic", room="#dev")  # asked on B: B knows it too
    asked = await bob.expect("topic", room="#dev", changed=False)
    assert asked["topic"] == "release on friday", asked
    assert await json_who(bob, "#dev") == ["alice", "bob"]


async def test_private_messages_cross_nodes(
    redis_server: RedisServer, start_process: StartProcess
) -> None:
    """/msg reaches a member of another node, both ways; an unknown name is an error."""
    a, b = await start_nodes(start_process, redis_server, 2)
    alice = await a.join("alice")  # plain, on A
    bob = await b.client("bob")  # JSON, on B
    await alice.expect("*** bob joined (2 online)")

    await alice.send("/msg bob psst, lunch?")
    await alice.expect("-> *bob* psst, lunch?")
    await bob.expect("msg", from_="alice", to="bob", text="psst, lunch?")
    await bob.send(type="msg", to="alice", text="sure")
    await bob.expect("msg", from_="bob", to="alice", text="sure")
    await alice.expect("*bob* sure")

    await alice.send("/msg nobody x")
    await alice.expect("! no such user: nobody")
    await bob.send(type="msg", to="nobody", text="x")
    error = await bob.expect("error")
    assert error["code"] == "no-such-user", error
    await alice.quiet()
    await bob.quiet()


def _lost_name(event: JsonEvent, name: str) -> bool:
    """A rename of ``name`` to a guest name (the ``nick`` event; ``renamed`` accepted)."""
    if event.get("type") not in ("nick", "renamed"):
        return False
    new = event.get("new", event.get("name"))
    return event.get("old") == name and isinstance(new, str) and new.startswith("guest-")


@dataclass
class Contender:
    """One client saying hello as ``name``, and what it received.

    ``line``: said at once if welcomed. ``lost``: it did not keep the name (refused,
    or welcomed then renamed); ``guest``: the guest name it was given instead.
    """

    peer: Peer
    name: str
    line: str = ""
    events: list[JsonEvent] = field(default_factory=list)
    lost: bool = False
    refused: bool = False
    guest: str = ""

    def __str__(self) -> str:
        shown = "\n".join(f"  {json.dumps(event)}" for event in self.events)
        return f"{self.name} received:\n{shown or '  nothing'}"

    def errors(self) -> list[str]:
        """The codes of the errors received so far."""
        return [event["code"] for event in self.events if event.get("type") == "error"]

    async def read_to_who(self) -> None:
        """Ask who is in #lobby and read everything up to the answer."""
        await self.peer.send_json(type="who")
        while True:
            self.events.append(event := await self.peer.event())
            if event.get("type") == "who":
                return


async def _contend(contender: Contender, someone_lost: trio.Event | None = None) -> None:
    """Say hello (and the line, once welcomed); return once the name is lost.

    Losing is: the hello refused (an ``error`` name-taken, then the connection closes),
    or a ``welcome`` followed by an ``error`` name-taken and a rename to a guest name
    (in either order). Sets ``someone_lost`` then. A winner reads until cancelled.
    """
    peer, name = contender.peer, contender.name
    await peer.send_json(type="hello", name=name)
    contender.events.append(first := await peer.event(RACE_SETTLE))
    if first["type"] == "error":
        assert first["code"] == "name-taken", contender
        assert await peer.closed() == [], contender
        contender.refused = True
    else:
        assert first["type"] == "welcome", contender
        assert first["name"] == name, contender
        if contender.line:
            await peer.send_json(type="say", text=contender.line)
        while not ("name-taken" in contender.errors() and contender.guest):
            contender.events.append(event := await peer.event(RACE_SETTLE * 2))
            if event["type"] == "error":
                assert event["code"] in ("name-taken", "not-sent"), contender
            elif _lost_name(event, name):
                contender.guest = str(event.get("new", event.get("name")))
    contender.lost = True
    if someone_lost is not None:
        someone_lost.set()


async def test_name_race_across_nodes_has_one_winner(
    redis_server: RedisServer, start_process: StartProcess
) -> None:
    """Two clients take one name on two nodes at the same moment: exactly one keeps it.

    Both may be welcomed, but within about a second the loser gets the error
    ``name-taken`` and a rename to a guest name; then /who on both nodes lists the name
    once, and the winner hears nothing of having lost it. Each says a line as soon as
    it is welcomed: nobody ever sees the loser's line under the name (it comes under
    the guest name, or the loser gets ``not-sent``); the winner's comes once.
    """
    a, b = await start_nodes(start_process, redis_server, 2)
    watchers = [await a.client("watch-a"), await b.client("watch-b")]
    for watcher in watchers:
        await until_who(watcher, ["watch-a", "watch-b"])
    contenders: list[Contender] = []
    for round_ in range(RACE_ROUNDS):
        name = f"racer{round_}"
        first, second = (a, b) if round_ % 2 == 0 else (b, a)
        pair = [
            Contender(await node.connect(), name, line=f"{name} on node {side}")
            for node, side in ((first, "first"), (second, "second"))
        ]
        someone_lost = trio.Event()
        with trio.move_on_after(RACE_SETTLE) as settle:
            async with trio.open_nursery() as nursery:
                for contender in pair:
                    nursery.start_soon(_contend, contender, someone_lost)
                await someone_lost.wait()
                await trio.sleep(0.2)  # the other one must not lose it too
                nursery.cancel_scope.cancel()
        both = f"round {round_}:\n{pair[0]}\n{pair[1]}"
        assert not settle.cancelled_caught, f"both kept the name; {both}"
        assert not all(contender.lost for contender in pair), f"both lost the name; {both}"
        contenders += pair

    winners = [contender for contender in contenders if not contender.lost]
    guests = [contender.guest for contender in contenders if contender.guest]
    racers = [winner.name for winner in winners]
    for watcher in watchers:
        with trio.fail_after(RACE_SETTLE):
            while True:  # the last round's loser may still be on its way out of /who
                names = await json_who(watcher)
                if all(names.count(name) == 1 for name in racers):
                    break
                await trio.sleep(0.1)
        assert sorted(set(names)) == sorted(names), names
        assert set(racers + guests) <= set(names), names

    for contender in contenders:  # read what came after the race was decided
        if not contender.refused:
            await contender.read_to_who()
    for winner in winners:
        assert winner.errors() == [], winner  # not told it lost, later
    for watcher in watchers:
        said = chat(watcher.events)
        for winner in winners:
            under_name = [text for _, sender, text in said if sender == winner.name]
            assert under_name == [winner.line], (watcher.name, winner.name, said)
        for loser in contenders:
            if loser.lost and not loser.refused:
                as_guest = [text for _, sender, text in said if sender == loser.guest]
                delivered = as_guest == [loser.line]
                assert delivered != ("not-sent" in loser.errors()), (watcher.name, said, loser)


async def test_taken_name_is_taken_on_every_node(
    redis_server: RedisServer, start_process: StartProcess
) -> None:
    """A name (or a lookalike of it) online on one node is not given on another.

    Once the other node has heard of alice, a newcomer there is refused
    (``name-taken``), or welcomed and then renamed to a guest name with that error;
    alice keeps the name. (Before it has heard of her it is a race, as in
    test_name_race_across_nodes_has_one_winner.)
    """
    a, b = await start_nodes(start_process, redis_server, 2)
    alice = await a.client("alice")
    watcher = await b.client("watcher")
    await until_who(watcher, ["alice", "watcher"])
    guests: list[str] = []
    for name in ("alice", "ALICE", "a1ice"):
        contender = Contender(await b.connect(), name)
        with trio.move_on_after(RACE_SETTLE * 2):
            await _contend(contender)
        assert contender.lost, f"{name} was given on B while alice is on A; {contender}"
        guests += [contender.guest] if contender.guest else []
    assert sorted(await json_who(watcher)) == sorted(["alice", "watcher", *guests])
    assert sorted(await json_who(alice)) == sorted(["alice", "watcher", *guests])
    assert not any(event.get("type") == "error" for event in alice.events)


async def test_dead_node_members_leave(
    redis_server: RedisServer, start_process: StartProcess
) -> None:
    """A node killed with SIGKILL: its members leave, "server lost", on the other node."""
    a, b = await start_nodes(start_process, redis_server, 2)
    alice = await a.join("alice")  # plain, on A
    carol = await a.client("carol")  # JSON, on A
    await alice.expect("*** carol joined (2 online)")
    await b.client("bob")
    await alice.expect("*** bob joined (3 online)")
    await carol.expect("join", name="bob", online=3)

    b.kill()
    await b.wait()
    with trio.fail_after(NODE_LOST_TIMEOUT):
        left = await carol.expect("leave", name="bob", timeout=NODE_LOST_TIMEOUT)
        await line_matching(alice, "*** bob left: server lost (2 online)", NODE_LOST_TIMEOUT)
    assert left["reason"] == "server lost", left
    assert left["online"] == 2, left
    assert left["room"] == "#lobby", left

    assert await plain_who(alice) == ["alice", "carol"]
    await alice.send("still here")
    await carol.expect("say", from_="alice", text="still here")
    again = await a.client("bob")  # the dead node's names are free
    await carol.expect("join", name="bob", online=3)
    await again.say("back on A")
    await alice.expect("*** bob joined (3 online)", "<bob> back on A")


async def test_stopped_node_members_leave(
    redis_server: RedisServer, start_process: StartProcess
) -> None:
    """A node stopped with SIGTERM: its members leave elsewhere, "server stopped"."""
    a, b = await start_nodes(start_process, redis_server, 2)
    alice = await a.join("alice")  # plain, on A
    await b.client("bob")
    await alice.expect("*** bob joined (2 online)")
    b.signal(signal.SIGTERM)
    assert await b.wait() == 0
    await alice.expect("*** bob left: server stopped (1 online)")
    assert await plain_who(alice) == ["alice"]
    again = await a.client("bob")  # its names are free at once
    await again.say("moved to A")
    await alice.expect("*** bob joined (2 online)", "<bob> moved to A")


async def test_late_node_knows_the_cluster(
    redis_server: RedisServer, start_process: StartProcess
) -> None:
    """A node started later knows the members, rooms, topics and history.

    Its member sees #dev in /rooms with its topic and count, everyone in /who, the
    topic and the last lines on joining #dev, and is heard by the others.
    """
    a, b = await start_nodes(start_process, redis_server, 2)
    alice = await a.client("alice", rooms=["#dev"])
    bob = await b.client("bob", rooms=["#dev"])
    await until_who(alice, ["alice", "bob"], "#dev")
    await alice.send(type="topic", room="#dev", text="release on friday")
    await bob.expect("topic", room="#dev", topic="release on friday", changed=True)
    said = [await alice.say("one", room="#dev"), await bob.say("two", room="#dev")]
    await alice.expect("say", room="#dev", text="two")

    (c,) = await start_nodes(start_process, redis_server, 1)
    carol = await c.client("carol")
    await carol.send(type="rooms")
    listed = {info["room"]: info for info in (await carol.expect("rooms"))["rooms"]}
    assert listed.get("#dev", {}).get("online") == 2, listed
    assert listed["#dev"]["topic"] == "release on friday", listed
    assert await json_who(carol) == ["alice", "bob", "carol"]

    joined = await carol.join("#dev")
    assert joined["online"] == 3, joined
    topic = await carol.expect("topic", room="#dev")
    assert (topic["topic"], topic["by"]) == ("release on friday", "alice"), topic
    assert await json_who(carol, "#dev") == ["alice", "bob", "carol"]  # after the replay
    replay = [
        (event["id"], event["from"], event["text"])
        for event in carol.events
        if event.get("type") == "say" and event.get("room") == "#dev" and event.get("history")
    ]
    assert replay == [(event["id"], event["from"], event["text"]) for event in said]
    await alice.expect("join", room="#dev", name="carol", online=3)
    mine = await carol.say("three", room="#dev")
    assert mine["id"] > said[-1]["id"]
    for client in (alice, bob):
        await client.expect("say", room="#dev", from_="carol", text="three", id=mine["id"])


async def test_redis_restart_with_data_delays_nothing_lost(
    redis_server: RedisServer, start_process: StartProcess
) -> None:
    """Redis stops and comes back with its data: lines sent meanwhile arrive once each.

    Members are told (``cluster-down``, then ``cluster-up``), nobody is disconnected,
    and every member sees the same lines, each once, ids strictly increasing.
    """
    a, b = await start_nodes(start_process, redis_server, 2)
    alice = await a.client("alice")  # JSON, on A
    bob = await b.client("bob")  # JSON, on B
    carol = await b.join("carol")  # plain, on B
    for member in (alice, bob, carol):
        await until_who(member, ["alice", "bob", "carol"])
    await alice.say("before")
    await bob.expect("say", from_="alice", text="before")
    await carol.expect("<alice> before")

    await redis_server.stop()
    for client in (alice, bob):
        notice = await client.expect("notice", code="cluster-down", timeout=REDIS_TIMEOUT)
        assert notice["text"] == CLUSTER_DOWN_TEXT, notice
    carol_lines = await line_matching(carol, f"*** {CLUSTER_DOWN_TEXT}", REDIS_TIMEOUT)

    await alice.send(type="say", text="while down from A")
    await bob.send(type="say", text="while down from B")
    await carol.send("while down from carol")
    await trio.sleep(0.5)  # handled by the nodes while Redis is down
    await redis_server.restart(keep_data=True)

    for client in (alice, bob):
        await client.expect("notice", code="cluster-up", timeout=REDIS_TIMEOUT)
    # The delayed lines are sent once the node is back in contact, so a line said
    # after cluster-up elsewhere may come before them: wait for all three first.
    delayed = {"while down from A", "while down from B", "while down from carol"}
    with trio.fail_after(REDIS_TIMEOUT):
        for client in (alice, bob):
            while not delayed <= {text for _, _, text in chat(client.events)}:
                await client.expect("say", timeout=REDIS_TIMEOUT)
        carol_lines += await line_matching(carol, lambda line: line.startswith("<"), REDIS_TIMEOUT)
        carol_lines += await line_matching(carol, lambda line: line.startswith("<"), REDIS_TIMEOUT)
    await alice.send(type="say", text="after")  # (say() could take an older echo)
    for client in (alice, bob):
        await client.expect("say", from_="alice", text="after", timeout=CROSS_TIMEOUT)
    carol_lines += await line_matching(carol, "<alice> after")

    sequence = chat(alice.events)
    assert chat(bob.events) == sequence
    assert_increasing([id_ for id_, _, _ in sequence])
    texts = [text for _, _, text in sequence]
    assert texts[0] == "before", texts
    assert texts[-1] == "after", texts
    assert sorted(texts[1:-1]) == sorted(delayed), texts  # each once
    heard = [line for line in carol_lines if line.startswith("<")]
    assert heard[-1] == "<alice> after", carol_lines
    assert sorted(heard[:-1]) == ["<alice> while down from A", "<bob> while down from B"]
    by_id = [f"<{sender}> {text}" for _, sender, text in sequence if sender != "carol"]
    assert heard == by_id[1:], (carol_lines, sequence)  # carol's order is the same
    down = carol_lines.index(f"*** {CLUSTER_DOWN_TEXT}")
    assert any(line.startswith("*** ") for line in carol_lines[down + 1 :]), carol_lines  # up

    assert await json_who(alice) == ["alice", "bob", "carol"]  # nobody was disconnected
    assert await plain_who(carol) == ["alice", "bob", "carol"]
    await alice.quiet()
    await bob.quiet()


async def test_redis_outage_longer_than_heartbeat_expiry_loses_nothing(
    redis_server: RedisServer, start_process: StartProcess
) -> None:
    """Redis away for longer than a node's heartbeat expiry, then back with its data.

    The nodes come back at slightly different times. Still: every line said meanwhile
    is delivered once to everyone (none refused as ``not-sent``), and nobody is seen
    leaving ("server lost") or coming back: the members never went anywhere.
    """
    a, b = await start_nodes(start_process, redis_server, 2)
    alice = await a.client("alice")
    bob = await b.client("bob")
    for client in (alice, bob):
        await until_who(client, ["alice", "bob"])
    seen_before = {client.name: len(client.events) for client in (alice, bob)}
    await redis_server.stop()
    for client in (alice, bob):  # as Redis goes: maybe before the node notices
        await client.send(type="say", text=f"{client.name} as Redis goes")
    for client in (alice, bob):
        await client.expect("notice", code="cluster-down", timeout=REDIS_TIMEOUT)
    for client in (alice, bob):
        await client.send(type="say", text=f"{client.name} while Redis is away")
    await trio.sleep(NODE_TTL_MS / 1000 + 2)  # every heartbeat key expires meanwhile
    await redis_server.restart(keep_data=True)

    delayed = {
        f"{name} {when}"
        for name in ("alice", "bob")
        for when in ("as Redis goes", "while Redis is away")
    }
    # Each node retries with a back-off of up to RETRY_MAX_S (and jitter): allow for it.
    with trio.move_on_after(REDIS_TIMEOUT + RETRY_MAX_S):
        for client in (alice, bob):
            await client.expect("notice", code="cluster-up", timeout=REDIS_TIMEOUT)
            while not delayed <= {text for _, _, text in chat(client.events)}:
                await client.expect("say", timeout=REDIS_TIMEOUT)
    for client in (alice, bob):
        since = client.events[seen_before[client.name] :]
        shown = [{k: v for k, v in event.items() if k != "ts"} for event in since]
        assert delayed <= {text for _, _, text in chat(since)}, (client.name, shown)
    await trio.sleep(HEARTBEAT_S * 2)  # a node taken for dead would be announced by now
    for client in (alice, bob):
        assert await json_who(client) == ["alice", "bob"]
        assert sorted(text for _, _, text in chat(client.events)) == sorted(delayed)
        since = client.events[seen_before[client.name] :]
        moved = [e for e in since if e.get("type") in ("leave", "join", "error")]
        assert moved == [], (client.name, moved)
    assert chat(alice.events) == chat(bob.events)


async def test_redis_restart_without_data_is_a_gap(
    redis_server: RedisServer, start_process: StartProcess
) -> None:
    """Redis comes back empty: members are told (``gap``), chat goes on, ids grow."""
    a, b = await start_nodes(start_process, redis_server, 2)
    alice = await a.client("alice")
    bob = await b.client("bob")
    await alice.expect("join", name="bob", online=2)
    for number in range(3):
        await alice.say(f"a{number}")
        await bob.say(f"b{number}")
    await alice.expect("say", from_="bob", text="b2")
    await bob.expect("say", from_="alice", text="a2")
    highest = max(id_ for client in (alice, bob) for id_, _, _ in chat(client.events))

    await redis_server.stop()
    for client in (alice, bob):
        await client.expect("notice", code="cluster-down", timeout=REDIS_TIMEOUT)
    await redis_server.restart(keep_data=False)
    for client in (alice, bob):
        await client.expect("notice", code="gap", timeout=REDIS_TIMEOUT)

    said = await alice.say("after the gap", timeout=REDIS_TIMEOUT)
    assert said["id"] > highest, (said, highest)
    heard = await bob.expect("say", from_="alice", text="after the gap", timeout=CROSS_TIMEOUT)
    assert heard["id"] == said["id"]
    reply = await bob.say("still here")
    assert reply["id"] > said["id"]
    await alice.expect("say", from_="bob", text="still here", id=reply["id"])
    assert await json_who(alice) == ["alice", "bob"]
    assert await json_who(bob) == ["alice", "bob"]


async def test_resume_on_another_node(
    redis_server: RedisServer, start_process: StartProcess
) -> None:
    """A client that saw up to id N resumes on another node: exactly the lines after N."""
    a, b = await start_nodes(start_process, redis_server, 2)
    alice = await a.client("alice")
    carol = await a.client("carol")
    bob = await b.client("bob")
    await alice.expect("join", name="bob", online=3)
    for speaker, text in ((bob, "one"), (carol, "two"), (bob, "three")):
        await speaker.say(text)
    seen = await alice.expect("say", text="three")
    last_seen = seen["id"]
    await alice.aclose()
    await bob.expect("leave", name="alice")

    missed = [await speaker.say(text) for speaker, text in ((carol, "four"), (bob, "five"))]
    missed += [await carol.say("six")]
    resumed = await b.client("alice", since={"#lobby": last_seen})
    assert await json_who(resumed) == ["alice", "bob", "carol"]  # the replay came before
    replay = [
        (event["id"], event["from"], event["text"])
        for event in resumed.events
        if event.get("type") == "say" and event.get("history")
    ]
    assert replay == [(event["id"], event["from"], event["text"]) for event in missed]
    assert not any(event.get("type") == "gap" for event in resumed.events)

    live = await carol.say("seven")  # said on A, after the resume on B
    heard = await resumed.expect("say", text="seven", from_="carol")
    assert heard["id"] == live["id"] > missed[-1]["id"]
    assert "history" not in heard


def test_unreachable_redis_is_one_line_error() -> None:
    """--redis with nothing listening: exit 1 and one line on stderr, no traceback."""
    result = run_triochat("server", "--port", "0", "--redis", "redis://127.0.0.1:1/0", *NODE_ARGS)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "redis" in lines[0].lower(), lines
    assert "127.0.0.1:1" in lines[0], lines
