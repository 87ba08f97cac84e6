"""Durable history (rooms, topics, ``say``/``me`` messages), accounts and moderation.

:mod:`~triochat.store.base` defines what is stored and the synchronous
:class:`Store` interface; :class:`MemoryStore` and :class:`SQLiteStore` implement it;
:class:`~triochat.store.writer.StoreWriter` runs one store's calls off the event loop,
in one long-lived thread of its own, in order, with grouped commits. :func:`open_store`
picks a store from the ``--db`` option.
"""

from triochat.store.base import (
    AccountRecord,
    BanRecord,
    Batch,
    MuteRecord,
    OpRecord,
    RoomRecord,
    Store,
    StoredMessage,
    StoreError,
)
from triochat.store.factory import default_db_path, open_store
from triochat.store.memory import MemoryStore
from triochat.store.sqlite import DURABILITIES, SQLiteStore
from triochat.store.writer import StoreWriter

__all__ = [
    "DURABILITIES",
    "AccountRecord",
    "BanRecord",
    "Batch",
    "MemoryStore",
    "MuteRecord",
    "OpRecord",
    "RoomRecord",
    "SQLiteStore",
    "Store",
    "StoreError",
    "StoreWriter",
    "StoredMessage",
    "default_db_path",
    "open_store",
]
