"""The cluster's Lua scripts against a real Redis: numbering, claims, retries, expiry.

These call the scripts directly (as :class:`triochat.bus.redis_bus.RedisBus` does),
so each rule is checked on its own; ``tests/test_cluster.py`` runs whole nodes.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from typing import Any

import coredis
import pytest

from tests.redisproc import RedisServer
from triochat.bus import scripts as redis_scripts
from triochat.bus.log import line_entry, payload
from triochat.core import cluster

Client = coredis.Redis[str]


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[Client]:
    redis: Client = coredis.Redis.from_url(redis_server.url, decode_responses=True)
    async with redis:
        yield redis


async def publish(client: Client, node: str, seq: int, *ops: cluster.Op) -> list[Any]:
    """Run PUBLISH for ``ops`` as batch ``seq`` of ``node``; the refusals it returns."""
    await client.set(f"triochat:node:{node}", "1", px=10_000)  # alive
    script = client.register_script(redis_scripts.PUBLISH)  # the node's own payload:
    reply: str = await script(args=[node, seq, payload(ops), 1000, 1000])
    refused = json.loads(reply)
    return refused if isinstance(refused, list) else []


async def room_ids(client: Client, room: str) -> list[str]:
    entries = await client.xrange(f"triochat:room:{room}")
    return [str(entry.identifier) for entry in entries]


def line(conn: int, name: str, text: str, floor: int = 0) -> cluster.Line:
    return cluster.Line(conn, name, name, "#lobby", "say", text, 1795714800.0, floor)


async def test_scripts_number_lines_per_room_in_order(client: Client) -> None:
    """Stream entry ids are the line ids: 1, 2, 3 in the order published."""
    await publish(client, "aaaa", 1, cluster.Arrive(1, "alice", "alice", ("#lobby",)))
    assert await publish(client, "aaaa", 2, line(1, "alice", "one"), line(1, "alice", "two")) == []
    await publish(client, "aaaa", 3, line(1, "alice", "three"))
    assert await room_ids(client, "#lobby") == ["1-0", "2-0", "3-0"]


async def test_scripts_a_retried_batch_is_applied_once(client: Client) -> None:
    """A batch sent again with its number (its reply was lost) adds nothing."""
    await publish(client, "aaaa", 1, cluster.Arrive(1, "alice", "alice", ("#lobby",)))
    await publish(client, "aaaa", 2, line(1, "alice", "once"))
    await publish(client, "aaaa", 2, line(1, "alice", "once"))
    assert await room_ids(client, "#lobby") == ["1-0"]


async def test_scripts_a_name_has_one_holder_and_lines_need_it(client: Client) -> None:
    """The second claim of a live node's name is refused, and so are lines under it."""
    await client.set("triochat:node:bbbb", "1", px=10_000)
    assert await publish(client, "aaaa", 1, cluster.Arrive(1, "alice", "alice", ())) == []
    refused = await publish(
        client, "bbbb", 1, cluster.Arrive(7, "alice", "alice", ()), line(7, "alice", "hi")
    )
    assert refused == [[1, "name"], [2, "line"]]
    assert await client.get("triochat:name:alice") == "aaaa:1"
    assert await room_ids(client, "#lobby") == []


async def test_scripts_names_expire_with_their_node(client: Client) -> None:
    """A name held by a node whose heartbeat expired can be claimed; REAP frees it."""
    await publish(client, "aaaa", 1, cluster.Arrive(1, "alice", "alice", ("#lobby",)))
    await client.sadd("triochat:nodes", ["aaaa"])
    await client.delete(["triochat:node:aaaa"])  # its heartbeat ran out
    reap = client.register_script(redis_scripts.REAP)
    assert await reap(args=[1000]) == []  # no live node
    assert await client.get("triochat:name:alice") is None
    log = await client.xrange("triochat:log")
    gone = json.loads(log[-1].field_values["e"])
    assert (gone["o"], gone["node"], gone["why"]) == ("gone", "aaaa", "server lost")
    assert await publish(client, "bbbb", 1, cluster.Arrive(2, "alice", "alice", ())) == []


async def test_scripts_a_line_entry_reads_back_as_the_line_sent(client: Client) -> None:
    """A line goes to the script as an array; the entry is the usual object, and every
    field reads back as sent, the time to the last bit (the script's JSON library
    writes numbers to 14 digits: the time goes as text)."""
    times = [
        1795714800.0,
        1795714800.1234567,
        math.nextafter(1795714800.1, math.inf),
        1764948123.9999998,
        0.1 + 0.2,
        2.5e-7,
    ]
    sent = [
        cluster.Line(1, "alice", "alice", "#lobby", "me" if i % 2 else "say", f'é "{i}"', ts, 0)
        for i, ts in enumerate(times)
    ]
    await publish(client, "aaaa", 1, cluster.Arrive(1, "alice", "alice", ("#lobby",)))
    await publish(client, "aaaa", 2, *sent)
    entries = await client.xrange("triochat:room:#lobby")
    read = [
        line_entry(str(e.identifier).encode(), str(e.field_values["e"]).encode()) for e in entries
    ]
    assert [(one.node, one.id, one.line) for one in read if one is not None] == [
        ("aaaa", i, line) for i, line in enumerate(sent, 1)
    ]
    assert "u" not in entries[0].field_values  # no tag given: none written


async def test_scripts_ids_never_go_back_after_a_loss(client: Client) -> None:
    """After Redis lost its counters, a line's floor keeps its id above what was shown."""
    await publish(client, "aaaa", 1, cluster.Arrive(1, "alice", "alice", ("#lobby",)))
    await publish(client, "aaaa", 2, line(1, "alice", "after a loss", floor=1041))
    assert await room_ids(client, "#lobby") == ["1042-0"]


async def test_scripts_the_snapshot_lists_live_members_rooms_and_topics(client: Client) -> None:
    await client.set("triochat:node:aaaa", "1", px=10_000)
    beat = client.register_script(redis_scripts.BEAT)
    assert await beat(args=["aaaa", 4000]) == 0  # new: it must announce itself
    assert await beat(args=["aaaa", 4000]) == 1
    await publish(
        client,
        "aaaa",
        1,
        cluster.Arrive(1, "alice", "alice", ("#lobby",)),
        cluster.RoomMade("#dev"),
        cluster.Enter(1, "alice", "alice", "#dev"),
        cluster.TopicSet("#dev", "shipping", "alice", 1795714800.0, False),
    )
    snapshot = json.loads(await client.register_script(redis_scripts.SNAPSHOT)())
    assert snapshot["rooms"] == ["#dev"]
    ((node, fields),) = snapshot["nodes"]
    assert node == "aaaa"
    assert json.loads(fields[1]) == {"n": "alice", "k": "alice", "r": ["#lobby", "#dev"]}
    assert json.loads(snapshot["topics"][1])["t"] == "shipping"
    assert snapshot["position"] != "0-0"  # the log's last entry: a new node reads on from it
