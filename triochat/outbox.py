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

**Full means either bound is reached: bytes or items.** Bytes are what a stalled peer
costs: one ``/who`` reply in a room of 1000 is 7 KB while a join notice is 30 bytes,
so a bound on items alone let a client that asks for the member list and never reads
hold megabytes (50 of them: +130 MB in a minute). The bytes held include the batch the
writer is sending, which stays in memory until ``send_all`` returns. The item bound
stays because each queued item has a cost of its own (a list slot and, for a reply
made for this member alone, a bytes object's header): a flood of tiny replies (an
error line is about 40 bytes) would otherwise cost about twice its byte count. One
item is always accepted by an outbox holding nothing, however large: a single big
reply (``/who`` in a huge room) to a member that keeps up must not drop it; the
memory it costs is already spent.
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
        "_max_bytes",
        "_owner",
        "_sending",
        "_size",
        "_writing",
    )

    def __init__(
        self, limit: int, owner: OutboxOwner, *, max_bytes: int, direct: bool = False
    ) -> None:
        """Make an empty outbox.

        Args:
            limit: items it holds before it is full.
            owner: the connection it feeds.
            max_bytes: bytes it holds (queued, plus the batch being sent) before it is
                full; an empty outbox still takes one item of any size.
            direct: the owner's ``try_write`` may be used while no writer runs.
        """
        if limit < 1:
            raise ValueError("an outbox holds at least one item")
        if max_bytes < 1:
            raise ValueError("an outbox holds at least one byte")
        # A plain list, taken whole by the writer: an empty list costs 56 bytes where an
        # empty deque costs over 600, and most outboxes are empty most of the time.
        self._items: list[bytes] = []
        self._size = 0  # bytes queued
        self._sending = 0  # bytes of the batch the writer took last (held until it asks again)
        self._limit = limit
        self._max_bytes = max_bytes
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
    def nbytes(self) -> int:
        """Bytes held: queued, plus the batch a writer is sending."""
        return self._size + self._sending

    @property
    def writing(self) -> bool:
        """True while a writer task owns the connection's sending side."""
        return self._writing

    def put_nowait(self, data: bytes) -> bool:
        """Queue ``data``, never waiting; it goes out at the next :meth:`flush`.

        Returns True if the outbox had nothing waiting for a flush before, i.e. the
        caller should remember to flush it.

        Raises:
            trio.WouldBlock: the outbox holds ``limit`` items already, or ``data`` would
                take it past ``max_bytes`` (unless it holds nothing at all).
            trio.ClosedResourceError: the outbox was closed.
        """
        if self._closed:
            raise trio.ClosedResourceError("outbox is closed")
        held = self._size + self._sending
        if len(self._items) >= self._limit or (held and held + len(data) > self._max_bytes):
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
        self._sending = 0

    def take(self, max_bytes: int) -> bytes | None:
        """For the writer: the next batch (up to about ``max_bytes``), or None when done.

        None means the outbox is empty; the writer must then stop. If the outbox was
        closed too, the writer's owner should end the connection. Calling this again
        means the previous batch has been sent: until then it counts as held.
        """
        items = self._items
        if not items:
            self._writing = False
            self._sending = 0
            return None
        if self._size <= max_bytes:  # the usual case: take everything
            batch = self._take_all()
            self._sending = len(batch)
            return batch
        count = size = 0
        while size < max_bytes:
            size += len(items[count])
            count += 1
        batch = b"".join(items[:count])
        del items[:count]
        self._size -= size
        self._sending = size
        return batch

    def _take_all(self) -> bytes:
        items = self._items
        self._items = []
        self._size = 0
        return items[0] if len(items) == 1 else b"".join(items)
