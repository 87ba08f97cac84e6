"""``/metrics``, ``/healthz`` and ``/readyz``: scraped with prometheus_client's own parser.

The web door is reached over memory streams (a peer with no address counts as trusted)
and, for the ``--trusted`` refusal, over real loopback TCP.
"""

from __future__ import annotations

import json
from pathlib import Path

import trio
import trio.testing
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.conftest import StartProcess, StartServer
from tests.helpers import join
from tests.redisproc import RedisServer, free_port
from tests.test_web import HttpPeer, open_web
from triochat.core.records import Batch
from triochat.latency import LatencyHistogram
from triochat.metrics import Monitor
from triochat.server import ChatServer
from triochat.server.commit import STORE_DOWN
from triochat.store import StoreError
from triochat.store.sqlite import SQLiteStore
from triochat.web import WebServer

WAIT = 10.0  # seconds for a store or Redis failure to be noticed


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape by (name, labels), through prometheus_client's parser."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        sample: Sample
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(
    scrape: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return scrape[(name, tuple(sorted(labels.items())))]


async def scrape(
    nursery: trio.Nursery, web: WebServer
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response, body = await HttpPeer(open_web(nursery, web)).get("/metrics")
    assert response.status_code == 200, body
    return samples(body.decode())


FAMILIES = {
    "triochat_build_info",
    "triochat_connections",
    "triochat_connections_accepted",
    "triochat_connections_admitted",
    "triochat_connections_refused",
    "triochat_members_online",
    "triochat_members",
    "triochat_rooms",
    "triochat_chat_lines",
    "triochat_fanout_latency_seconds",
    "triochat_store_up",
    "triochat_store_commits",
    "triochat_store_queue_depth",
    "triochat_store_commit_latency_seconds",
    "triochat_log_records_dropped",
    "triochat_web_requests",
    "process_cpu_seconds",
    "process_resident_memory_bytes",
}


async def test_metrics_scrape_has_the_families_and_counters_move(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """Every documented family is there, parsed by prometheus_client; chat moves the counters."""
    monitor = Monitor(server)
    web = WebServer(server, monitor=monitor)
    monitor.add_web(web.statistics)
    response, body = await HttpPeer(open_web(nursery, web)).get("/metrics")
    assert response.status_code == 200
    assert dict(response.headers)[b"content-type"].startswith(b"text/plain; version=0.0.4")
    names = {family.name for family in text_string_to_metric_families(body.decode())}
    assert names >= FAMILIES, FAMILIES - names
    before = samples(body.decode())
    assert value(before, "triochat_members_online") == 0

    alice = await join(nursery, server, "alice")
    bob = await join(nursery, server, "bob")
    for n in range(3):
        await alice.send(f"line {n}")
        await bob.expect(f"<alice> line {n}")
    after = await scrape(nursery, web)
    assert value(after, "triochat_members_online") == 2
    assert value(after, "triochat_members", protocol="plain") == 2
    assert (
        value(after, "triochat_chat_lines_total") == value(before, "triochat_chat_lines_total") + 3
    )
    for histogram in ("triochat_fanout_latency_seconds", "triochat_store_commit_latency_seconds"):
        grew = value(after, f"{histogram}_count") - value(before, f"{histogram}_count")
        assert grew >= 3, histogram
        assert value(after, f"{histogram}_bucket", le="+Inf") == value(after, f"{histogram}_count")
    assert value(after, "triochat_store_commits_total") >= 3
    assert value(after, "triochat_connections_admitted_total", door="plain") == 2
    assert value(after, "triochat_web_requests_total") == 1  # the first scrape


async def test_metrics_refused_to_untrusted_peer_but_health_is_open(
    nursery: trio.Nursery, start_server: StartServer
) -> None:
    """On the web port, /metrics is 403 unless the peer is in --trusted; health is for all."""
    server = await start_server(trusted=())  # not even loopback
    web = WebServer(server, monitor=Monitor(server, process=False))
    port = (await nursery.start(web.serve_tcp, "127.0.0.1", 0))[0].socket.getsockname()[1]
    assert await get_tcp(port, "/metrics") == (403, True)
    assert await get_tcp(port, "/healthz") == (200, False)
    loopback = await start_server()  # loopback is trusted by default
    trusting = WebServer(loopback, monitor=Monitor(loopback, process=False))
    port = (await nursery.start(trusting.serve_tcp, "127.0.0.1", 0))[0].socket.getsockname()[1]
    assert await get_tcp(port, "/metrics") == (200, False)


async def get_tcp(port: int, target: str) -> tuple[int, bool]:
    """GET ``target`` over loopback TCP: the status, and whether the body names --trusted."""
    with trio.fail_after(WAIT):
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            response, body = await HttpPeer(stream).get(target)
    return response.status_code, b"--trusted" in body


async def test_metrics_door_without_page_serves_only_monitoring(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """The --metrics-port door answers the three paths and nothing else (no page, no chat)."""
    web = WebServer(server, monitor=Monitor(server, process=False), page=False)
    for path, status in (("/metrics", 200), ("/readyz", 200), ("/", 404), ("/ws", 404)):
        response, _ = await HttpPeer(open_web(nursery, web)).get(path)
        assert response.status_code == status, path


async def test_healthz_fails_when_the_hub_has_ended(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """Liveness: once the hub task is gone the server is not alive, whatever else answers.

    (Asked of the monitor directly: shutdown also ends the web door's HTTP stage.)
    """
    monitor = Monitor(server, process=False)
    web = WebServer(server, monitor=monitor)
    response, _ = await HttpPeer(open_web(nursery, web)).get("/healthz")
    assert response.status_code == 200
    await server.shutdown()
    with trio.fail_after(WAIT):
        await server.hub.stopped.wait()
    status, body = monitor.health("/healthz")
    assert status == 503
    assert json.loads(body) == {
        "status": "fail",
        "checks": {"loop": "ok", "hub": "the hub task has ended"},
    }


class ReadOnlyStore(SQLiteStore):
    """A database that can be read but not written (a full disk, a read-only mount)."""

    def commit(self, batch: Batch) -> None:
        raise StoreError("attempt to write a readonly database")


async def test_readyz_fails_while_the_store_cannot_be_written(
    nursery: trio.Nursery, start_server: StartServer, tmp_path: Path
) -> None:
    """Readiness: a store that refuses commits makes /readyz 503, naming the store."""
    opened = SQLiteStore.open(tmp_path / "chat.db")
    store = ReadOnlyStore(opened._conn, tmp_path / "chat.db")
    server = await start_server(store=store)
    web = WebServer(server, monitor=Monitor(server, process=False))
    response, _ = await HttpPeer(open_web(nursery, web)).get("/readyz")
    assert response.status_code == 200
    alice = await join(nursery, server, "alice")
    await alice.send("this is not saved")
    with trio.fail_after(WAIT):
        while STORE_DOWN not in await alice.line():  # members are told, once
            pass
    response, body = await HttpPeer(open_web(nursery, web)).get("/readyz")
    assert response.status_code == 503
    answer = json.loads(body)
    assert answer["status"] == "fail"
    assert answer["checks"]["store"].startswith("history is not being saved")
    assert answer["checks"]["listening"] == "ok"
    assert value(await scrape(nursery, web), "triochat_store_up") == 0


async def test_readyz_fails_while_redis_is_down(
    start_process: StartProcess, redis_server: RedisServer
) -> None:
    """Readiness: a cluster node whose Redis is gone is not ready, and says why.

    (A server process on its --metrics-port: the node's own event loop, as deployed.)
    """
    port = free_port()
    await start_process(
        "--redis", redis_server.url, "--db", ":memory:", "--web-port", "off",
        "--metrics-port", str(port),
    )  # fmt: skip
    status, body = await get_body(port, "/readyz")
    assert status == 200, body
    assert json.loads(body)["checks"]["cluster"] == "ok"
    assert b"triochat_cluster_up 1.0" in (await get_body(port, "/metrics"))[1]
    await redis_server.stop()
    with trio.fail_after(WAIT):
        while status == 200:
            await trio.sleep(0.1)
            status, body = await get_body(port, "/readyz")
    assert status == 503
    assert json.loads(body)["checks"]["cluster"] == "the cluster (Redis) cannot be reached"
    metrics = samples((await get_body(port, "/metrics"))[1].decode())
    assert value(metrics, "triochat_cluster_up") == 0


async def get_body(port: int, target: str) -> tuple[int, bytes]:
    """GET ``target`` over loopback TCP: the status and the body."""
    with trio.fail_after(WAIT):
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            response, body = await HttpPeer(stream).get(target)
    return response.status_code, body


def test_latency_histogram_buckets_are_upper_bounds() -> None:
    """A duration equal to a bound counts in that bucket (Prometheus ``le``), more goes to +Inf."""
    histogram = LatencyHistogram((0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 1.0, 7.0):
        histogram.observe(seconds)
    snapshot = histogram.snapshot()
    assert snapshot.counts == (2, 2, 1)
    assert snapshot.count == 5
    assert abs(snapshot.total - 8.65) < 1e-9


async def test_metrics_count_messages_deliveries_lines_and_disconnects(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """The chat state's counters: messages by kind, deliveries, lines by protocol, leaves."""
    monitor = Monitor(server)
    web = WebServer(server, monitor=monitor)
    alice = await join(nursery, server, "alice")
    bob = await join(nursery, server, "bob")
    await alice.expect("*** bob joined (2 online)")
    await alice.send("hello")
    await bob.expect("<alice> hello")
    await alice.send("/msg bob psst")
    await bob.expect("*alice* psst")
    await alice.expect("-> *bob* psst")
    await bob.send("/quit")
    await alice.expect("*** bob left (1 online)")
    after = await scrape(nursery, web)
    assert value(after, "triochat_messages_total", kind="say") == 1
    assert value(after, "triochat_messages_total", kind="private") == 1
    assert value(after, "triochat_lines_received_total", protocol="plain") == 3
    assert value(after, "triochat_disconnects_total", reason="quit") == 1
    assert value(after, "triochat_too_slow_total") == 0
    # the say reached bob (alice's own terminal shows it), the private both, and more
    assert value(after, "triochat_deliveries_total") >= 3
