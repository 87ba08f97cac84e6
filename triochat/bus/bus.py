"""What the hub sees of the cluster: the :class:`Bus` port and its statistics.

The hub is given a bus (or none) and never builds one: a node's link to the others is
injected (:class:`~triochat.bus.redis_bus.RedisBus` in production; any object with
these methods in a test). The hub hands the bus what its state publishes
(:meth:`Bus.publish`, a queue: the hub never waits for the cluster) and gets what the
cluster's log reports through ``deliver`` (its inbound channel), like any
connection's input.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

import trio

from triochat.core import cluster

__all__ = ["Bus", "BusStatistics", "ClusterError", "Deliver", "first_leaf"]

Deliver = Callable[[list[cluster.ClusterIn]], Awaitable[None]]


class ClusterError(Exception):
    """The cluster cannot be reached (at start-up), or its address cannot be used."""


@dataclass(frozen=True, slots=True)
class BusStatistics:
    """A bus's numbers (see :meth:`Bus.statistics`).

    Attributes:
        node: this node's name in the cluster.
        down: the cluster cannot be reached right now.
        queued: operations waiting to be published (the batch in flight included).
        published: operations published so far.
        batches: publish calls that went through (one round trip each).
        refused: lines refused so far (queued past the limit, or by the cluster).
        received: items delivered to the hub from the cluster's log so far.
        reads: reads of the log that brought something.
        outages: times the link to the cluster was lost.
        catch_ups: reads so large that their lines were replayed to members, paced,
            instead of sent live (one per room in such a read).
    """

    node: str
    down: bool
    queued: int
    published: int
    batches: int
    refused: int
    received: int
    reads: int
    outages: int
    catch_ups: int = 0


class Bus(Protocol):
    """A node's link to the other nodes, as the hub uses it."""

    @property
    def node(self) -> str:
        """This node's name in the cluster (numbers its members' tokens)."""
        ...

    @property
    def url(self) -> str:
        """Where the nodes meet, for people to read: any password masked."""
        ...

    @property
    def down(self) -> bool:
        """The cluster cannot be reached right now."""
        ...

    async def check(self) -> None:
        """Make sure the cluster answers; raises :class:`ClusterError` if not."""
        ...

    async def run(
        self,
        deliver: Deliver,
        rooms: Mapping[str, int],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Join (``rooms``: last id known of each), then publish and read until cancelled.

        Started once what the cluster holds (rooms, members, the room streams' recent
        lines) was handed to ``deliver``, which the hub serves meanwhile.
        """
        ...

    def publish(self, ops: Iterable[cluster.Op]) -> list[cluster.Op]:
        """Queue ``ops``; returns the lines refused at once (the cluster away too long)."""
        ...

    def resync(self, ops: list[cluster.Op]) -> None:
        """Publish ``ops`` (this node's members and rooms) before anything else queued."""
        ...

    async def leave(self) -> None:
        """Leave the cluster (before :meth:`run` is cancelled); bounded."""
        ...

    def statistics(self) -> BusStatistics:
        """The numbers so far."""
        ...


def first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first exception in a (nested) group."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc
