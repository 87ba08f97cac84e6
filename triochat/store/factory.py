"""Choosing a store from the ``--db`` option."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import platformdirs

from triochat.store.base import Store
from triochat.store.memory import MemoryStore
from triochat.store.sqlite import DEFAULT_DURABILITY, DURABILITY, SQLiteStore

__all__ = ["APP_NAME", "DB_FILENAME", "IN_MEMORY", "default_db_path", "open_store"]

APP_NAME: Final = "triochat"  # the per-user data folder's name on every platform
DB_FILENAME: Final = "triochat.db"  # one file (plus its -wal while running) in that folder
IN_MEMORY: Final = ":memory:"  # --db value for no database at all (SQLite's own spelling)


def default_db_path() -> Path:
    """Return where the database lives by default, per the platform's convention.

    For example ``~/.local/share/triochat/triochat.db`` on Linux (honouring
    ``XDG_DATA_HOME``), ``~/Library/Application Support/triochat/triochat.db`` on macOS
    and ``%LOCALAPPDATA%\\triochat\\triochat.db`` on Windows. Nothing is created here;
    :meth:`SQLiteStore.open` creates the folders.
    """
    return platformdirs.user_data_path(APP_NAME, appauthor=False) / DB_FILENAME


def open_store(
    db: str | Path, durability: str = DEFAULT_DURABILITY, *, search_index: bool = True
) -> Store:
    """Open the store the ``--db`` option names.

    Args:
        db: ``":memory:"`` for a :class:`MemoryStore` (nothing kept after exit), or the
            path of an SQLite database file.
        durability: ``--durability``: ``"process"`` (SQLite ``synchronous=NORMAL``) or
            ``"power"`` (``FULL``); see :mod:`triochat.store.sqlite`.
        search_index: Keep SQLite's full-text index for ``/search`` (the memory store
            has none: it scans).

    Raises:
        ValueError: An unknown durability.
        StoreError: The database cannot be used; ``str(exc)`` says why, on one line.
    """
    if durability not in DURABILITY:
        raise ValueError(f"durability is 'process' or 'power', not {durability!r}")
    if str(db) == IN_MEMORY:
        return MemoryStore()
    return SQLiteStore.open(db, synchronous=DURABILITY[durability], search_index=search_index)
