"""A member's outbox: the bounded queue between the hub and one connection.

No I/O of its own: :meth:`Outbox.write_released` writes through the transport it is
given.

Why not a ``trio.open_memory_channel`` and a writer task parked on it? That was the
first version. Measured, it cost two trips through trio's scheduler per member per
line at a steady chat rate (most of the server's CPU), and an idle connection paid for
a nursery and a parked writer task (about a third of its memory). Exactly one producer
(the hub, which never waits) feeds exactly one connection, so this is a plain queue;
when and how it is written is the connection's business
(:mod:`triochat.server.connection`).

* **Held until released.** :meth:`put` appends; nothing put may be taken until
  :meth:`release` lets it go, up to a *mark* (a count of items ever put, from
  :attr:`put_total`). The hub releases a batch's output only once the store has
  committed the batch's chat lines, so no client ever sees a line that a crash could
  lose; later batches' output, put meanwhile, stays held until their own commit.
* **Full means either bound is reached: bytes or items.** Bytes are what a stalled
  peer costs: one ``/who`` reply in a room of 1000 is 7 KB while a join notice is 30
  bytes, so a bound on items alone let a client that asks for the member list and
  never reads hold megabytes (50 of them: +130 MB in a minute). The bytes held include
  the batch being sent, which stays in memory until the send returns. The item bound
  stays because each queued item has a cost of its own (a list slot and, for a reply
  made for this member alone, a bytes object's header): a flood of tiny replies would
  otherwise cost about twice its byte count. One item is always accepted by an outbox
  holding nothing, however large: a single big reply to a member that keeps up must
  not drop it; the memory it costs is already spent.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["DirectWrite", "Outbox"]


class DirectWrite(Protocol):
    """Where :meth:`Outbox.write_released` writes: a transport that may write at once."""

    def try_write(self, data: bytes) -> int:
        """Write without waiting; how many bytes were taken (OSError: broken)."""


class Outbox:
    """A bounded FIFO of encoded lines for one connection."""

    __slots__ = (
        "_dirty",
        "_flush_list",
        "_held",
        "_items",
        "_limit",
        "_max_bytes",
        "_owner",
        "_released",
        "_sending",
        "_taken",
        "closed",
    )

    def __init__(self, limit: int, max_bytes: int) -> None:
        """Make an empty outbox.

        Args:
            limit: items it holds before it is full.
            max_bytes: bytes it holds (queued, plus the batch being sent) before it is
                full; an empty outbox still takes one item of any size.
        """
        if limit < 1:
            raise ValueError("an outbox holds at least one item")
        if max_bytes < 1:
            raise ValueError("an outbox holds at least one byte")
        # A plain list, taken whole by the writer: an empty list costs 56 bytes where an
        # empty deque costs over 600, and most outboxes are empty most of the time.
        self._items: list[bytes] = []
        self._taken = 0  # items ever taken (the list holds items _taken .. put_total)
        self._released = 0  # items ever released: may be taken up to this count
        # Bytes held: queued, plus the batch taken last (until the next take, or sent()).
        # One sum, not the two parts, because put tests and keeps it once per delivery.
        self._held = 0
        self._sending = 0  # bytes of the batch taken last (part of _held)
        self._limit = limit
        self._max_bytes = max_bytes
        self.closed = False  # no more puts: the connection ends once this is empty
        # Where the first put after a mark registers the owner for the next flush (so
        # the hub touches only connections that got output, and a put is one call).
        self._dirty = False
        self._owner: object = None
        self._flush_list: list[object] | None = None

    def attach(self, owner: object, flush_list: list[object]) -> None:
        """Register ``owner`` on ``flush_list`` at the first put after each :meth:`mark`."""
        self._owner = owner
        self._flush_list = flush_list

    def touch(self) -> None:
        """Register for the next flush even without a put (e.g. to close)."""
        if not self._dirty:
            self._dirty = True
            if self._flush_list is not None:
                self._flush_list.append(self._owner)

    def mark(self) -> int:
        """End of a batch: the mark that releases what was put so far; unregistered."""
        self._dirty = False
        return self._taken + len(self._items)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        """Bytes held: queued, plus the batch being sent."""
        return self._held

    @property
    def put_total(self) -> int:
        """Items ever put: the mark that releases everything put so far."""
        return self._taken + len(self._items)

    @property
    def ready(self) -> int:
        """Items released and not yet taken."""
        # Comparisons, not min() and max(): these run once per connection per batch, and
        # a builtin taking keyword arguments costs more than the test (callgrind).
        queued = len(self._items)
        released = self._released - self._taken
        return queued if queued < released else released

    @property
    def taken(self) -> int:
        """Items ever taken (a position, like :attr:`put_total`)."""
        return self._taken

    def put(self, data: bytes) -> bool:
        """Queue ``data``, never waiting; it may be taken once released.

        Returns False, and queues nothing, if the outbox is full: it holds ``limit``
        items, or ``data`` would take it past ``max_bytes`` (unless it holds nothing at
        all). On a closed outbox the data is dropped and True returned: the connection
        is ending, and that is not the member's fault.
        """
        if self.closed:
            return True
        items = self._items
        held = self._held
        total = held + len(data)
        if (total > self._max_bytes and held) or len(items) >= self._limit:
            return False
        items.append(data)
        self._held = total
        if not self._dirty:
            self._dirty = True
            if self._flush_list is not None:
                self._flush_list.append(self._owner)
        return True

    def release(self, mark: int | None = None) -> None:
        """Let items be taken up to ``mark`` (see :attr:`put_total`; default: all so far)."""
        if mark is None:
            mark = self._taken + len(self._items)
        if mark > self._released:
            self._released = mark

    def take(self, max_bytes: int, stop: int | None = None) -> bytes | None:
        """The next released batch (up to about ``max_bytes``), or None if none is ready.

        With ``stop`` (a position, like :attr:`put_total`), nothing at or after it is
        taken. Calling this again means the previous batch has been sent: until then it
        counts as held.
        """
        items = self._items
        queued = self._held - self._sending  # the batch taken before counts no more
        ready = self._released - self._taken
        if stop is not None and stop - self._taken < ready:
            ready = stop - self._taken
        if len(items) < ready:
            ready = len(items)
        if ready <= 0:
            self._held = queued
            self._sending = 0
            return None
        if ready == len(items) and queued <= max_bytes:  # usual: take everything
            batch = items[0] if ready == 1 else b"".join(items)
            self._items = []
        else:
            count = size = 0
            while count < ready and size < max_bytes:
                size += len(items[count])
                count += 1
            batch = b"".join(items[:count])
            del items[:count]
            ready = count
        self._taken += ready
        self._held = queued  # what is left queued, plus this batch
        self._sending = len(batch)
        return batch

    def write_released(self, mark: int, transport: DirectWrite, max_bytes: int) -> bool:
        """Release up to ``mark``, write what is released; True if some is left to write.

        :meth:`release`, :meth:`take`, ``transport.try_write`` and :meth:`sent` or
        :meth:`unsend` in one call: a connection's direct flush, once per connection per
        batch (the hub's hottest path after the puts themselves). What the transport
        does not take stays queued, at the front, for a writer task; a transport that
        raises ``OSError`` took nothing (the writer's ``send_all`` meets the error and
        reports it).
        """
        if mark > self._released:
            self._released = mark
        items = self._items
        count = len(items)
        if count and self._released - self._taken >= count and self._held <= max_bytes:
            # The usual case: everything queued is released and goes in one write (as
            # take() would do it; no batch is being sent while no writer task runs).
            data = items[0] if count == 1 else b"".join(items)
            self._items = []
            self._taken += count
            self._held = self._sending = len(data)
        else:  # nothing, or a part: some is held for a later commit, or too much
            taken = self.take(max_bytes)
            if taken is None:
                return False
            data = taken
        try:
            sent = transport.try_write(data)
        except OSError:
            sent = 0
        if sent < len(data):
            self.unsend(data[sent:])
            return True
        self._held -= self._sending  # as sent()
        self._sending = 0
        return self._released > self._taken and bool(self._items)

    def sent(self) -> None:
        """The batch taken last has been written: it no longer counts as held."""
        self._held -= self._sending
        self._sending = 0

    def unsend(self, rest: bytes) -> None:
        """Put back the part of the last batch that could not be written (at the front)."""
        self._items.insert(0, rest)
        self._held += len(rest) - self._sending
        self._taken -= 1  # the rest stands for (the tail of) the last item taken
        self._sending = 0

    def abandon(self) -> None:
        """Close and drop everything queued (the connection is being cut off)."""
        self.closed = True
        self._taken += len(self._items)
        self._released = self._taken
        self._items = []
        self._held = 0
        self._sending = 0
