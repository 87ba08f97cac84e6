"""A cluster catch-up never drops a node's members as "too slow" (real Redis, two nodes).

Redis is killed while two nodes chat at a few hundred lines a second, and started again
(with its data) six seconds later. Each node queued what its members said meanwhile and
reads what the other queued in a few large reads: before, those reads went into every
member's send queue at once and dropped them all ("too slow"), readers and talkers,
plain and JSON alike. Now such a read is stored and replayed to each member as its
connection drains. Counted per id on both nodes: nothing lost beyond what a ``gap``
notice or a ``not-sent`` error says, no id twice, no line under two ids, the same ids
on both nodes, and everything delivered in a bounded time.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Final

import trio

from tests.conftest import StartProcess
from tests.redisproc import RedisServer
from tests.test_cluster import start_nodes, until_who
from triochat.testing import Peer

RATE: Final = 100  # lines a second from each of four talkers (400 in all, in two rooms)
TICK_S: Final = 0.05  # talkers send RATE * TICK_S lines at a time
BEFORE_S: Final = 1.5  # chat before Redis is killed
OUTAGE_S: Final = 6.0  # Redis away (the reported case)
AFTER_S: Final = 2.0  # chat after it is back
SETTLE_S: Final = 40.0  # for every line to reach every member after the chat ends
NOT_SENT: Final = "! your line in "  # ... ROOM was not sent: ...
ROOMS: Final = ("#lobby", "#dev")
TALKERS: Final = {"talka": "#lobby", "tdeva": "#dev", "talkb": "#lobby", "tdevb": "#dev"}
SENT_TEXT: Final = re.compile(r"(?:talk|tdev)[ab]-(?:\d+|end)")


@dataclass
class Seen:
    """What one member received (read all the time, as a live client does)."""

    name: str
    lines: list[str] = field(default_factory=list)
    closed: bool = False
    changed: trio.Event = field(default_factory=trio.Event)

    def events(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.lines]

    def said(self) -> list[tuple[tuple[str, int], str]]:
        """((room, id), text) of every chat line, live or replayed (JSON members)."""
        return [
            ((str(event["room"]), int(str(event["id"]))), str(event["text"]))
            for event in self.events()
            if event.get("type") == "say"
        ]

    def heard(self) -> list[str]:
        """The talkers' texts among the lines received (plain members)."""
        return [m.group() for line in self.lines if (m := SENT_TEXT.search(line)) is not None]

    def skipped(self) -> int:
        """Lines a ``gap`` notice says were not replayed (JSON members)."""
        return sum(int(str(e["skipped"])) for e in self.events() if e.get("type") == "gap")


async def record(peer: Peer, seen: Seen) -> None:
    while True:
        line = await peer.next_line()
        if line is None:
            seen.closed = True
            seen.changed.set()
            return
        seen.lines.append(line)
        seen.changed.set()
        seen.changed = trio.Event()


async def talk(peer: Peer, name: str, until: trio.Event, sent: list[str]) -> None:
    """Send numbered lines at RATE until ``until`` is set, then an end marker."""
    per_tick = max(1, round(RATE * TICK_S))
    n = 0
    while not until.is_set():
        texts = [f"{name}-{n + i}" for i in range(per_tick)]
        n += per_tick
        await peer.send("".join(f"{text}\n" for text in texts).encode())
        sent.extend(texts)
        await trio.sleep(TICK_S)
    await peer.send(f"{name}-end")
    sent.append(f"{name}-end")


async def test_cluster_catch_up_after_a_redis_restart_drops_nobody(
    redis_server: RedisServer, start_process: StartProcess
) -> None:
    """Redis killed for 6 s at 400 lines/s in two rooms: every member stays, nothing is
    lost or doubled."""
    a, b = await start_nodes(start_process, redis_server, 2)
    members: dict[str, Peer] = {}
    for node, suffix in ((a, "a"), (b, "b")):
        for name in (f"talk{suffix}", f"tdev{suffix}", f"plain{suffix}"):
            members[name] = await node.join(name)
        members[f"json{suffix}"], _ = await node.join_json(f"json{suffix}")
    await until_who(members["plaina"], sorted(members))
    await until_who(members["plainb"], sorted(members))
    for name, peer in members.items():  # readers in both rooms; each talker in its own
        if name.startswith("json"):
            await peer.send_json(type="join", room="#dev")
        elif TALKERS.get(name, "#dev") == "#dev":
            await peer.send("/join #dev")
    await until_who(members["plaina"], sorted(n for n in members if not n.startswith("talk")))
    seen = {name: Seen(name) for name in members}
    sent: dict[str, list[str]] = {name: [] for name in TALKERS}
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        for name, peer in members.items():
            nursery.start_soon(record, peer, seen[name])
        for name in sent:
            nursery.start_soon(talk, members[name], name, stop, sent[name])
        await trio.sleep(BEFORE_S)
        redis_server.kill()
        await trio.sleep(OUTAGE_S)
        await redis_server.restart(keep_data=True)
        back = trio.current_time()
        await trio.sleep(AFTER_S)
        stop.set()
        with trio.move_on_after(SETTLE_S):
            for name in ("jsona", "jsonb"):
                while not all(
                    any(text == f"{t}-end" for _, text in seen[name].said()) for t in sent
                ):
                    if seen[name].closed:
                        break
                    await seen[name].changed.wait()
        settled = trio.current_time() - back
        nursery.cancel_scope.cancel()

    dropped = [name for name, s in seen.items() if s.closed]
    assert not dropped, {name: seen[name].lines[-3:] for name in dropped}
    assert settled < SETTLE_S, "not every line arrived in time"
    refused = sum(line.startswith(NOT_SENT) for t in sent for line in seen[t].lines)
    everything = {text for texts in sent.values() for text in texts}
    by_node: dict[str, dict[tuple[str, int], str]] = {}
    for name in ("jsona", "jsonb"):
        said = seen[name].said()
        ids = Counter(line_id for line_id, _ in said)
        texts = Counter(text for _, text in said)
        assert not [i for i, count in ids.items() if count > 1], f"{name}: an id twice"
        assert not [t for t, count in texts.items() if count > 1], f"{name}: a line twice"
        missing = everything - set(texts)
        assert len(missing) <= refused + seen[name].skipped(), (name, sorted(missing)[:20])
        by_node[name] = dict(said)
    common = by_node["jsona"].keys() & by_node["jsonb"].keys()
    assert all(by_node["jsona"][i] == by_node["jsonb"][i] for i in common)  # one order
    for name in ("plaina", "plainb"):
        heard = Counter(seen[name].heard())
        assert not [text for text, count in heard.items() if count > 1], f"{name}: a line twice"
        json_twin = seen[name.replace("plain", "json")]  # same node, same replays
        assert len(everything - set(heard)) <= refused + json_twin.skipped(), name
    logs = a.log() + b.log()
    assert "caught up, replayed paced" in logs  # the catch-up happened, and was paced
