"""A member's outbox: the bounded queue between the room task and one writer task.

Why not a ``trio.open_memory_channel``? It was the first version, and it is the right
tool when several tasks may wait on either side. Here exactly one producer (the room,
which never waits) feeds exactly one consumer (the connection's writer, which always
takes everything queued at once). For that shape a list plus one parked task is
enough, and it is what the room does per member per event, so it is the hottest line
in the server. It also keeps each idle connection's memory small.

Two things keep a broadcast cheap:

* **Wake-ups are deferred.** :meth:`put_nowait` only appends. The room calls
  :meth:`flush` once per batch of work for each outbox it touched, so a burst of N
  lines costs each writer one wake-up and one ``send_all``, not N.
* **An idle writer is skipped.** If the writer is parked (nothing queued, nothing being
  sent) and the outbox was given a ``try_write`` function (a non-blocking write on the
  socket), :meth:`flush` writes the batch directly, the way asyncio's
  ``transport.write`` does. Waking the writer task would cost two trips through trio's
  scheduler per member per line, which at a steady chat rate is most of the server's
  CPU. Whatever the kernel does not take at once is queued and the writer is woken to
  send it, so ordering and back-pressure are unchanged; any error also goes to the
  writer, whose ``send_all`` then reports it properly.

The policy for a full outbox belongs to the caller (the room drops the member as
"too slow"); this class only reports it by raising ``trio.WouldBlock``.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

__all__ = ["Outbox", "TryWrite"]

TryWrite = Callable[[bytes], int]
"""Write without blocking; return how many bytes were taken (0 if none), raise OSError."""


class Outbox:
    """A bounded FIFO of encoded lines with one non-blocking producer and one consumer."""

    __slots__ = ("_closed", "_dirty", "_items", "_limit", "_size", "_try_write", "_waiter")

    def __init__(self, limit: int, try_write: TryWrite | None = None) -> None:
        if limit < 1:
            raise ValueError("an outbox holds at least one item")
        # A plain list, taken whole by the writer: an empty list costs 56 bytes where an
        # empty deque costs over 600, and most outboxes are empty most of the time.
        self._items: list[bytes] = []
        self._size = 0  # bytes queued
        self._limit = limit
        self._try_write = try_write
        self._waiter: trio.lowlevel.Task | None = None
        self._closed = False
        self._dirty = False

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (queued items may still be taken)."""
        return self._closed

    def put_nowait(self, data: bytes) -> bool:
        """Queue ``data``, never waiting; the writer sees it after :meth:`flush`.

        Returns True if this outbox had nothing waiting for a flush before, i.e. the
        caller should remember to flush it.

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
        if self._dirty:
            return False
        self._dirty = True
        return True

    def flush(self) -> None:
        """Hand what was queued since the last flush to the writer (or straight out)."""
        self._dirty = False
        if self._waiter is None or not self._items:
            return  # the writer is busy and will pick everything up when it loops
        if self._try_write is not None and not self._closed:
            data = self._take_all()
            try:
                sent = self._try_write(data)
            except OSError:
                sent = 0  # the writer's send_all will meet the same error and report it
            if sent == len(data):
                return
            self._items.append(data[sent:])
            self._size = len(data) - sent
        self._wake()

    def close(self) -> None:
        """No more items will be put; the writer drains what is queued, then gets ``None``."""
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None:
            task, self._waiter = self._waiter, None
            trio.lowlevel.reschedule(task)

    def _abort(self, _: object) -> trio.lowlevel.Abort:
        """Cancellation of a waiting writer: forget it, so no flush can wake it later."""
        self._waiter = None
        return trio.lowlevel.Abort.SUCCEEDED

    def _take_all(self) -> bytes:
        items = self._items
        self._items = []
        self._size = 0
        return items[0] if len(items) == 1 else b"".join(items)

    async def get_batch(self, max_bytes: int) -> bytes | None:
        """Wait for flushed data and take it all (up to about ``max_bytes``) as one string.

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
        if self._size <= max_bytes:  # the usual case: take everything
            return self._take_all()
        items = self._items
        count = size = 0
        while size < max_bytes:
            size += len(items[count])
            count += 1
        batch = b"".join(items[:count])
        del items[:count]
        self._size -= size
        return batch
