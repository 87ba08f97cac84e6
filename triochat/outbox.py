"""A member's outbox: the bounded queue between the room task and one connection.

Why not a ``trio.open_memory_channel`` and a writer task parked on it? That was the
first version. Measured, it cost two trips through trio's scheduler per member per
line at a steady chat rate (most of the server's CPU), and an idle connection paid for
a nursery and a parked writer task (about a third of its memory). Exactly one producer
(the room, which never waits) feeds exactly one connection here, so:

* **Puts only append.** The room calls :meth:`flush` once per batch of work for each
  outbox it touched, so a burst of N lines costs one write per member, not N.
* **An idle connection is written directly.** If no writer task is running and the
  outbox was made with ``direct=True`` (its owner can write to the socket without
  blocking), the batch is written at once, the way asyncio's ``transport.write`` does.
* **A writer task exists only while there is a backlog.** Whatever the kernel does not
  take at once (or everything, for outboxes without ``direct``) is left queued and
  the owner is asked to start its writer, which drains the outbox with one
  ``send_all`` per batch and then ends. At most one writer runs per outbox, so
  ordering is kept, and a peer that stops reading makes the queue grow until the room
  drops it as "too slow" (this class only reports a full outbox, with
  ``trio.WouldBlock``).
"""

from __future__ import annotations

from typing import Protocol

import trio

__all__ = ["Outbox", "OutboxOwner"]


class OutboxOwner(Protocol):
    """The connection behind an outbox."""

    def start_writer(self) -> None:
        """Start a task that calls :meth:`Outbox.take` and sends until it returns None."""

    def end(self) -> None:
        """The outbox is closed and fully sent: end the connection."""

    def try_write(self, data: bytes) -> int:
        """Write without blocking; return how many bytes were taken; raise OSError."""


class Outbox:
    """A bounded FIFO of encoded lines from the room to one connection."""

    __slots__ = (
        "_closed",
        "_direct",
        "_dirty",
        "_items",
        "_limit",
        "_owner",
        "_size",
        "_writing",
    )

    def __init__(self, limit: int, owner: OutboxOwner, *, direct: bool = False) -> None:
        if limit < 1:
            raise ValueError("an outbox holds at least one item")
        # A plain list, taken whole by the writer: an empty list costs 56 bytes where an
        # empty deque costs over 600, and most outboxes are empty most of the time.
        self._items: list[bytes] = []
        self._size = 0  # bytes queued
        self._limit = limit
        self._owner = owner
        self._direct = direct  # the owner's try_write may be used when no writer runs
        self._writing = False  # a writer task is running (or about to)
        self._closed = False
        self._dirty = False

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` or :meth:`abandon` was called."""
        return self._closed

    @property
    def writing(self) -> bool:
        """True while a writer task owns the connection's sending side."""
        return self._writing

    def put_nowait(self, data: bytes) -> bool:
        """Queue ``data``, never waiting; it goes out at the next :meth:`flush`.

        Returns True if the outbox had nothing waiting for a flush before, i.e. the
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
        """Send what was queued: directly if the connection is idle, else via its writer."""
        self._dirty = False
        if self._writing or not self._items or self._closed:
            return  # a running writer picks everything up; a closed outbox has its own path
        if self._direct:
            data = self._take_all()
            try:
                sent = self._owner.try_write(data)
            except OSError:
                sent = 0  # the writer's send_all will meet the same error and report it
            if sent == len(data):
                return
            self._items.append(data[sent:])
            self._size = len(data) - sent
        self._writing = True
        self._owner.start_writer()

    def close(self) -> None:
        """No more puts: send what is queued, then end the connection."""
        if self._closed:
            return
        self._closed = True
        self._dirty = False
        if self._writing:
            return  # the writer sees the outbox closed once it has drained it
        if self._items:
            self._writing = True
            self._owner.start_writer()
        else:
            self._owner.end()

    def abandon(self) -> None:
        """Close without sending what is queued (the connection is being cut off)."""
        self._closed = True
        self._dirty = False
        self._items = []
        self._size = 0

    def take(self, max_bytes: int) -> bytes | None:
        """For the writer: the next batch (up to about ``max_bytes``), or None when done.

        None means the outbox is empty; the writer must then stop. If the outbox was
        closed too, the writer's owner should end the connection.
        """
        items = self._items
        if not items:
            self._writing = False
            return None
        if self._size <= max_bytes:  # the usual case: take everything
            return self._take_all()
        count = size = 0
        while size < max_bytes:
            size += len(items[count])
            count += 1
        batch = b"".join(items[:count])
        del items[:count]
        self._size -= size
        return batch

    def _take_all(self) -> bytes:
        items = self._items
        self._items = []
        self._size = 0
        return items[0] if len(items) == 1 else b"".join(items)
