"""``/metrics``, ``/healthz`` and ``/readyz``: one collector over every owner's statistics.

Rules of this module:

* **Nothing on the hot path.** Every number is read from an owner's ``statistics()``
  (the server, the hub, the commit gate, the store writer, the bus, the web server)
  when Prometheus scrapes, never counted here; the two histograms are bucket counts the
  owners keep per batch (:mod:`triochat.latency`).
* **No threads, no global registry.** :class:`Monitor` owns a private
  ``CollectorRegistry`` with :class:`ChatCollector` and ``prometheus_client``'s process
  and platform collectors (which read ``/proc`` at scrape time), and renders it with
  ``generate_latest`` inside the web server's task: nothing runs between scrapes.
* **Names per Prometheus conventions**: ``triochat_`` prefix, base units (seconds),
  ``_total`` counters; labels only from small fixed sets (door, protocol, reason),
  never a user or a room.

The metrics table is in docs/operations.md ("Monitoring").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from triochat import __version__
from triochat.latency import Latency
from triochat.logs import dropped_records
from triochat.server import ChatServer
from triochat.web.server import WebStatistics

__all__ = ["ChatCollector", "Health", "Monitor"]


@dataclass(frozen=True, slots=True)
class Health:
    """An answer of ``/healthz`` or ``/readyz``.

    Attributes:
        ok: healthy (or ready): HTTP 200, else 503.
        checks: each check's name and ``"ok"``, or why not, in one line.
    """

    ok: bool
    checks: dict[str, str]

    @property
    def status(self) -> int:
        """The HTTP status: 200 or 503."""
        return 200 if self.ok else 503

    def body(self) -> bytes:
        """The JSON body: ``{"status": "ok"|"fail", "checks": {...}}`` and a newline."""
        answer = {"status": "ok" if self.ok else "fail", "checks": self.checks}
        return json.dumps(answer, sort_keys=True).encode() + b"\n"


def _health(checks: dict[str, str]) -> Health:
    return Health(all(value == "ok" for value in checks.values()), checks)


class Monitor:
    """What the web server answers on ``/metrics``, ``/healthz`` and ``/readyz``."""

    def __init__(self, chat: ChatServer, *, process: bool = True) -> None:
        """Watch ``chat`` (with the process's own metrics unless ``process`` is False)."""
        self.chat = chat
        self.collector = ChatCollector(chat)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)
        if process:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)

    def add_web(self, statistics: Callable[[], WebStatistics]) -> None:
        """Report the web server's numbers too (it is made after the chat server)."""
        self.collector.web = statistics

    def metrics(self) -> bytes:
        """The Prometheus text exposition of everything now."""
        return generate_latest(self.registry)

    def health(self, path: str) -> tuple[int, bytes]:
        """``/healthz`` (:meth:`live`) or ``/readyz`` (:meth:`ready`): status and JSON body."""
        answer = self.ready() if path == "/readyz" else self.live()
        return answer.status, answer.body()

    def live(self) -> Health:
        """Liveness: the event loop answers (this runs in it) and the hub task runs."""
        hub = "ok" if not self.chat.hub.stopped.is_set() else "the hub task has ended"
        return _health({"loop": "ok", "hub": hub})

    def ready(self) -> Health:
        """Readiness: accepting, history being saved, the cluster reachable if configured."""
        chat = self.chat
        hub = chat.hub
        checks = {
            "listening": "shutting down" if chat.stopping or hub.stopped.is_set() else "ok",
            "store": (
                "history is not being saved (commits to the database are failing)"
                if hub.gate.store_down
                else "ok"
            ),
        }
        if hub.bus is not None:
            checks["cluster"] = "the cluster (Redis) cannot be reached" if hub.bus.down else "ok"
        return _health(checks)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _labelled(family: GaugeMetricFamily | CounterMetricFamily, values: dict[str, int]) -> Metric:
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def _histogram(name: str, doc: str, latency: Latency) -> HistogramMetricFamily:
    buckets: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip((*latency.bounds, float("inf")), latency.counts, strict=True):
        running += count
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=latency.total)


class ChatCollector(Collector):
    """Reads every owner's ``statistics()`` at scrape time (see the module docstring)."""

    def __init__(self, chat: ChatServer) -> None:
        """Collect ``chat``'s numbers (and the web server's, once :attr:`web` is set)."""
        self.chat = chat
        self.web: Callable[[], WebStatistics] | None = None

    def collect(self) -> Iterator[Metric]:
        """The metric families now (called by the registry on every scrape)."""
        yield from self._server()
        yield from self._hub()
        yield from self._store()
        yield from self._cluster()
        yield from self._web()
        yield _counter(
            "triochat_log_records_dropped_total",
            "Log records dropped because stderr was not read fast enough.",
            dropped_records(),
        )
        info = GaugeMetricFamily(
            "triochat_build_info", "The triochat version running.", labels=["version"]
        )
        info.add_metric([__version__], 1)
        yield info

    def _server(self) -> Iterator[Metric]:
        stats = self.chat.statistics()
        doors = stats.listeners
        yield _labelled(
            GaugeMetricFamily(
                "triochat_connections", "Connections being served, by door.", labels=["door"]
            ),
            {door: stats.by_door.get(door, 0) for door in {*doors.accepted, *stats.by_door}},
        )
        yield _labelled(
            CounterMetricFamily(
                "triochat_connections_accepted_total", "Connections accepted.", labels=["door"]
            ),
            doors.accepted,
        )
        yield _labelled(
            CounterMetricFamily(
                "triochat_connections_admitted_total",
                "Connections admitted to the chat (past the limits).",
                labels=["door"],
            ),
            stats.admitted,
        )
        yield _labelled(
            CounterMetricFamily(
                "triochat_connections_refused_total", "Connections refused.", labels=["reason"]
            ),
            stats.refused,
        )
        yield _counter(
            "triochat_accept_errors_total",
            "Accepts that failed for want of descriptors or memory.",
            doors.accept_errors,
        )
        yield _gauge("triochat_tls_handshakes", "TLS handshakes in progress.", doors.handshakes)
        yield _labelled(
            CounterMetricFamily(
                "triochat_tls_handshake_failures_total",
                "TLS handshakes that failed.",
                labels=["door"],
            ),
            doors.handshake_failures,
        )

    def _hub(self) -> Iterator[Metric]:
        hub = self.chat.hub
        stats = hub.statistics()
        gate = hub.gate.statistics()
        yield _gauge("triochat_members_online", "Members online on this node.", stats.online)
        yield _labelled(
            GaugeMetricFamily(
                "triochat_members", "Members online, by wire protocol.", labels=["protocol"]
            ),
            stats.by_mode,
        )
        yield _gauge(
            "triochat_pending_logins", "Connections whose login is checked.", stats.pending_logins
        )
        yield _gauge("triochat_rooms", "Rooms on the server.", stats.rooms)
        yield _counter("triochat_chat_lines_total", "Chat lines handled.", stats.chat_events)
        yield _counter("triochat_hub_batches_total", "Batches the hub handled.", stats.batches)
        yield _counter("triochat_replays_total", "History replays filled.", stats.replays)
        yield _counter(
            "triochat_replay_failures_total",
            "Replays answered with 'history unavailable'.",
            stats.replay_failures,
        )
        yield _counter(
            "triochat_password_checks_total", "Password checks started.", stats.password_jobs
        )
        yield _histogram(
            "triochat_fanout_latency_seconds",
            "From a batch's first line taken to its output released to every member.",
            gate.fanout_latency,
        )
        yield _gauge(
            "triochat_held_batches", "Batches whose output waits for its commit.", gate.held_batches
        )
        yield _labelled(
            CounterMetricFamily(
                "triochat_lines_received", "Lines received from members.", labels=["protocol"]
            ),
            stats.lines_in,
        )
        state = hub.state.statistics()
        yield _labelled(
            CounterMetricFamily("triochat_messages", "Messages, by kind.", labels=["kind"]),
            state.messages,
        )
        yield _counter("triochat_deliveries_total", "Events queued to members.", state.deliveries)
        yield _labelled(
            CounterMetricFamily(
                "triochat_disconnects", "Members gone, by reason.", labels=["reason"]
            ),
            state.disconnects,
        )
        yield _counter(
            "triochat_too_slow_total", "Members dropped as too slow to read.", state.too_slow
        )

    def _store(self) -> Iterator[Metric]:
        hub = self.chat.hub
        stats = hub.writer.statistics()
        yield _gauge(
            "triochat_store_up", "1 while history is being saved.", 0 if hub.gate.store_down else 1
        )
        yield _counter("triochat_store_commits_total", "Store transactions.", stats.commits)
        yield _counter(
            "triochat_store_commit_failures_total", "Commits that failed.", stats.failures
        )
        yield _counter("triochat_store_messages_total", "Chat messages saved.", stats.messages)
        yield _gauge(
            "triochat_store_queue_depth", "Operations waiting for the store.", stats.queued
        )
        yield _histogram(
            "triochat_store_commit_latency_seconds",
            "Duration of the store's commits.",
            stats.commit_latency,
        )

    def _cluster(self) -> Iterator[Metric]:
        bus = self.chat.hub.bus
        if bus is None:
            return
        stats = bus.statistics()
        yield _gauge("triochat_cluster_up", "1 while the cluster is reachable.", not stats.down)
        yield _gauge(
            "triochat_cluster_queue_depth",
            "Operations waiting to be published (the cluster's lag).",
            stats.queued,
        )
        yield _counter("triochat_cluster_published_total", "Operations published.", stats.published)
        yield _counter(
            "triochat_cluster_received_total", "Items received from the log.", stats.received
        )
        yield _counter(
            "triochat_cluster_refused_total", "Lines refused by the cluster.", stats.refused
        )
        yield _counter(
            "triochat_cluster_outages_total", "Times the cluster link was lost.", stats.outages
        )

    def _web(self) -> Iterator[Metric]:
        if self.web is None:
            return
        stats = self.web()
        yield _gauge(
            "triochat_web_http_connections",
            "Web connections in the HTTP stage.",
            stats.http_connections,
        )
        yield _counter("triochat_web_requests_total", "HTTP requests answered.", stats.requests)
        yield _counter(
            "triochat_web_upgrades_total", "Connections switched to a WebSocket.", stats.upgrades
        )
        yield _labelled(
            CounterMetricFamily(
                "triochat_web_refused_total", "Web connections refused.", labels=["reason"]
            ),
            stats.refused,
        )
        yield _counter(
            "triochat_web_evicted_total",
            "Web connections closed to give their slot to a newcomer from a smaller holder.",
            stats.evicted,
        )
