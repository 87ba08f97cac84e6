"""A member's outbox: the bounded queue between the room task and one writer task.

Why not a ``trio.open_memory_channel``? It was the first version, and it is the right
tool when several tasks may wait on either side. Here exactly one producer (the room,
which never waits) feeds exactly one consumer (the connection's writer, which always
takes everything queued at once). For that shape a deque plus one parked task is
enough, and it is what the room does per member per event, so it is the hottest line
in the server: ``put_nowait`` is an append and, at most once per batch, a wake-up.
It also keeps each idle connection's memory small (no per-channel task registries,
no deque).

The policy for a full outbox belongs to the caller (the room drops the member as
"too slow"); this class only reports it by raising ``trio.WouldBlock``.
"""

from __future__ import annotations

import trio

__all__ = ["Outbox"]


class Outbox:
    """A bounded FIFO of encoded lines with one non-blocking producer and one consumer."""

    __slots__ = ("_closed", "_items", "_limit", "_size", "_waiter")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("an outbox holds at least one item")
        # A plain list, taken whole by the writer: an empty list costs 56 bytes where an
        # empty deque costs over 600, and most outboxes are empty most of the time.
        self._items: list[bytes] = []
        self._size = 0  # bytes queued
        self._limit = limit
        self._waiter: trio.lowlevel.Task | None = None
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (queued items may still be taken)."""
        return self._closed

    def put_nowait(self, data: bytes) -> None:
        """Queue ``data`` for the writer, never waiting.

        Raises:
            trio.WouldBlock: the outbox holds ``limit`` items already.
            trio.ClosedResourceError: the outbox was closed.
        """
        if self._closed:
            raise trio.ClosedResourceError("outbox is closed")
        if len(self._items) >= self._limit:
            raise trio.WouldBlock
        self._items.append(data)
        self._size += len(data)
        if self._waiter is not None:
            task, self._waiter = self._waiter, None
            trio.lowlevel.reschedule(task)

    def close(self) -> None:
        """No more items will be put; the writer drains what is queued, then gets ``None``."""
        self._closed = True
        if self._waiter is not None:
            task, self._waiter = self._waiter, None
            trio.lowlevel.reschedule(task)

    def _abort(self, _: object) -> trio.lowlevel.Abort:
        """Cancellation of a waiting writer: forget it, so no put can wake it later."""
        self._waiter = None
        return trio.lowlevel.Abort.SUCCEEDED

    async def get_batch(self, max_bytes: int) -> bytes | None:
        """Wait for queued data and take it all (up to about ``max_bytes``) as one string.

        Returns ``None`` once the outbox is closed and empty. Only one task may wait.
        """
        if self._items:
            await trio.lowlevel.checkpoint()
        elif self._closed:
            await trio.lowlevel.checkpoint()
            return None
        else:
            if self._waiter is not None:
                raise trio.BusyResourceError("another task is already waiting on this outbox")
            self._waiter = trio.lowlevel.current_task()
            await trio.lowlevel.wait_task_rescheduled(self._abort)
            if not self._items:
                return None  # woken by close()
        items = self._items
        if self._size <= max_bytes:  # the usual case: take everything
            self._items = []
            self._size = 0
            return items[0] if len(items) == 1 else b"".join(items)
        count = size = 0
        while size < max_bytes:
            size += len(items[count])
            count += 1
        batch = b"".join(items[:count])
        del items[:count]
        self._size -= size
        return batch
