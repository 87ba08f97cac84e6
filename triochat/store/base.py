"""What the store keeps and the interface every store implements.

Besides history: registered accounts (salted hashes only), operators made with
``/op``, bans and mutes, written through the same batches (``Batch.changes``).

Rules every store follows (the tests in ``tests/test_store_contract.py`` hold each
implementation to them):

* **Ids are the room's.** The hub assigns ids, per room, strictly increasing; the store
  only keeps them. ``(room, id)`` is unique, and writing it again is a no-op, so a
  batch retried after a failure that partly landed commits cleanly.
* **A batch is all or nothing.** :meth:`Store.commit` writes one :class:`Batch` in one
  transaction, or raises :class:`StoreError` and leaves the store as it was, usable for
  a retry of the same batch.
* **``last_id`` never goes backwards.** It is the highest id ever committed in a room,
  kept apart from the messages, so retention can delete every message of a room and a
  restart still hands the hub the right next id.
* **Calls are synchronous and serialised by the caller.** A store is not thread-safe;
  :class:`triochat.store.writer.StoreWriter` makes every call from one worker thread
  at a time, in order.
"""

from __future__ import annotations

from typing import Protocol

# What is stored is defined in the core (the chat state makes these records); the
# store only keeps them.
from triochat.core.records import (
    KINDS,
    AccountRecord,
    BanRecord,
    Batch,
    MuteRecord,
    OpRecord,
    Pref,
    RoomRecord,
    SearchHit,
    StoredMessage,
    StoredPrivate,
)
from triochat.core.search import SearchQuery

__all__ = [
    "KINDS",
    "AccountRecord",
    "BanRecord",
    "Batch",
    "MuteRecord",
    "OpRecord",
    "Pref",
    "RoomRecord",
    "SearchHit",
    "SearchQuery",
    "Store",
    "StoreError",
    "StoredMessage",
    "StoredPrivate",
    "check_limit",
]


class StoreError(Exception):
    """The store cannot do what was asked; ``str(exc)`` is one line for a person.

    The line says what is wrong and what to do about it, so the command line can print
    it and exit, and the hub can log it and tell members, with no traceback.
    """


class Store(Protocol):
    """Durable history: rooms, topics and ``say``/``me`` messages.

    Every method is synchronous and may block on a disk; call them from one worker
    thread at a time (see :class:`triochat.store.writer.StoreWriter`). Reads return
    messages oldest first. A negative ``limit`` is a :class:`ValueError`.
    """

    def load_rooms(self) -> list[RoomRecord]:
        """Return every room the store knows, with its ``last_id`` and topic."""
        ...

    def commit(self, batch: Batch) -> None:
        """Write ``batch`` in one transaction.

        Its ``dropped_rooms`` are deleted first, each with all its messages (the
        room's ``last_id`` goes with it: a room made again counts from 1); then its
        rooms and messages are written and its ``changes`` applied in order. Dropping a
        room that is not there is a no-op. Saving an account that exists changes
        only its password hash (its name and creation time stay); saving a ban, mute
        or operator replaces the one with the same key; dropping one that is not
        there is a no-op. Its ``prefs`` are written last, each replacing the setting
        of the same account (and room).

        Raises:
            StoreError: Nothing of the batch was written; the store is usable and the
                same batch may be committed again.
        """
        ...

    def recent(self, room: str, limit: int) -> list[StoredMessage]:
        """Return the last ``limit`` messages of ``room``, oldest first."""
        ...

    def since(
        self, room: str, after_id: int, limit: int, upto: int | None = None
    ) -> tuple[list[StoredMessage], int]:
        """Return messages newer than ``after_id`` (and at most ``upto``, if given) for a
        resuming client.

        Returns:
            ``(messages, skipped)``. If at most ``limit`` messages with an id above
            ``after_id`` are stored, ``messages`` is all of them and ``skipped`` is 0.
            Otherwise ``messages`` is the newest ``limit`` of them and ``skipped`` counts
            the older ones left out, so the client is told of a gap and then gets the
            latest messages. Both oldest first.
        """
        ...

    def before(self, room: str, before_id: int, limit: int) -> list[StoredMessage]:
        """Return the ``limit`` messages just before ``before_id`` (scrollback), oldest first."""
        ...

    def search(self, query: SearchQuery) -> list[SearchHit]:
        """Return the lines that hold every word of ``query`` (see
        :mod:`triochat.core.search`), newest first: by decreasing ``seq``, the order in
        which they were stored, each below ``query.before`` if given. ``rooms`` None
        searches every room, ``()`` none; ``sender`` is a name key.
        """
        ...

    def prune(
        self,
        now: float,
        retain_days: float | None,
        retain_messages: int | None,
        *,
        max_rows: int | None = None,
    ) -> int:
        """Delete what retention no longer keeps, in bounded chunks.

        Args:
            now: The current time, in seconds since the Unix epoch.
            retain_days: Delete messages older than this many days (None: no age limit).
            retain_messages: Keep at most this many messages per room (None: no limit).
            max_rows: Stop after deleting about this many rows, so one call holds the
                writer thread for a bounded time (None: delete everything due).

        Private lines go by age too (``retain_days``), never by count.

        Returns:
            How many messages (and private lines) were deleted. ``last_id`` is never
            changed.
        """
        ...

    def close(self) -> None:
        """Release the store; no method may be called afterwards."""
        ...

    def private_last_id(self) -> int:
        """Return the highest private line id ever committed (0 if none).

        Like a room's ``last_id`` it never goes backwards: retention deleting every
        private line does not lower it.
        """
        ...

    def private_since(
        self, key: str, after_id: int, limit: int, upto: int | None = None
    ) -> tuple[list[StoredPrivate], int]:
        """Return the private lines of account ``key`` (every conversation it is in) with
        an id above ``after_id`` (and at most ``upto``): the newest ``limit`` of them and
        how many older ones were skipped, as :meth:`since` does for a room."""
        ...

    def private_between(
        self, one: str, other: str, before_id: int | None, limit: int
    ) -> list[StoredPrivate]:
        """Return the ``limit`` newest private lines between accounts ``one`` and
        ``other`` (either order) with an id below ``before_id`` (None: the newest),
        oldest first. The one read of a conversation: paging, and search, use it."""
        ...

    def private_range(
        self, one: str, other: str, after_id: int, before_id: int, limit: int, *, oldest: bool
    ) -> list[StoredPrivate]:
        """Return the private lines between ``one`` and ``other`` (either order) with
        ``after_id < id < before_id``: the ``limit`` oldest of them (``oldest``) or the
        newest, oldest first. IRC ``CHATHISTORY`` of a nick reads with it."""
        ...

    def private_peers(self, key: str) -> list[StoredPrivate]:
        """Return the newest private line of each conversation of account ``key``
        (IRC ``CHATHISTORY TARGETS`` lists them)."""
        ...

    def account_keys(self) -> list[str]:
        """Return the name key of every registered account (no hashes: those stay here)."""
        ...

    def account(self, key: str) -> AccountRecord | None:
        """Return the account with name key ``key``, hash included, or None."""
        ...

    def load_ops(self) -> list[OpRecord]:
        """Return the operators made with ``/op``."""
        ...

    def load_bans(self) -> list[BanRecord]:
        """Return every ban, expired ones included (the hub drops those)."""
        ...

    def load_mutes(self) -> list[MuteRecord]:
        """Return every mute, expired ones included (the hub drops those)."""
        ...

    def load_prefs(self) -> list[Pref]:
        """Return accounts' own settings (``/notify`` levels, last-seen times), as the
        changes (``SaveNotify``, ``SaveSeen``) that make them."""
        ...


def check_limit(limit: int) -> None:
    """Raise ValueError for a negative limit (SQLite would read it as "no limit").

    Args:
        limit: A row limit passed to a read.
    """
    if limit < 0:
        raise ValueError(f"limit must be 0 or more, not {limit}")
