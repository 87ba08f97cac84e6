"""Checkpoints of the SQLite store's WAL, in a thread and a connection of their own.

Why: a checkpoint copies the WAL's frames into the database file and fsyncs both, about
3-12 ms for 1,000-3,000 frames on the project's 2-core machine. Run by SQLite itself
inside the commit that takes the WAL past 1,000 pages (its default), it held up every
line waiting behind that commit: in the steady bench run SQLite's p99 was 2-4x memory's,
and about 1x with no checkpoint in the commit path (docs/benchmarks.md, "Checkpoints
out of the commit"). So the writer's connection never checkpoints by itself
(``PRAGMA wal_autocheckpoint = 0``) and this thread does:

* **PASSIVE, beside the commits.** In WAL mode a checkpoint copies frames while the
  writer appends new ones; a PASSIVE one never waits for the writer. The writer wakes
  the thread after each transaction (:meth:`Checkpointer.wrote`: an ``Event.set``); it
  checkpoints at most every :data:`PAUSE_S`, only when something was written.
* **The WAL starts over only at a writer's transaction** that finds every frame copied.
  Beside a steady stream of commits that rarely happens, so the WAL would grow for as
  long as the load lasts. When a pass finds :data:`WAL_LONG_FRAMES` frames or more,
  :attr:`Checkpointer.long_wal` asks the writer to checkpoint once itself, before its
  next transaction (:meth:`Checkpointer.restart_from`: short, only the frames written
  since this pass are left), and that transaction starts the WAL over.
* **A failure is logged and retried** at the next pass; the WAL only grows meanwhile.
* **Closed before the store's own connection** (:meth:`Checkpointer.close`): the last
  connection to close checkpoints the WAL into the file and removes it.

This needs a second connection, so the store cannot use SQLite's exclusive locking
mode: a second server on the same file is refused by a lock on the file instead
(:func:`triochat.store.sqlite_open.lock_file`).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import Final

from triochat.core.logevents import log_event
from triochat.store.sqlite_errors import error

__all__ = ["PAUSE_S", "WAL_LONG_FRAMES", "Checkpointer"]

log = logging.getLogger("triochat.store")

PAUSE_S: Final = 0.1  # at most ten passes a second
WAL_LONG_FRAMES: Final = 4000  # frames (pages, about 16 MB): the writer helps restart the WAL


class Checkpointer:
    """Checkpoints ``path``'s WAL in a thread of its own; see the module docstring."""

    def __init__(self, path: Path, synchronous: str, busy_timeout: float) -> None:
        """Open the second connection (raises ``sqlite3.Error``); :meth:`start` runs it."""
        self._path = path
        self._conn = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        # The checkpoint's fsyncs follow the connection's setting: the same as the writer's.
        self._conn.execute(f"PRAGMA synchronous = {synchronous}")
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self.passes = 0  # checkpoints run so far (for statistics and tests)
        self.long_wal = False  # the writer checkpoints once before its next transaction
        self.writer_passes = 0  # checkpoints the writer made when asked (restart_from)

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="triochat-store-checkpoint", daemon=True
            )
            self._thread.start()

    def wrote(self) -> None:
        """The writer committed: a pass is due (cheap; call it after every transaction)."""
        self._wake.set()

    def checkpoint(self) -> tuple[int, int]:
        """One PASSIVE pass now: (frames in the WAL, frames copied). Raises sqlite3.Error."""
        _busy, frames, copied = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.passes += 1
        if frames >= WAL_LONG_FRAMES:
            self.long_wal = True
        return int(frames), int(copied)

    def restart_from(self, writer: sqlite3.Connection) -> None:
        """The WAL is long: copy what the last pass left (the frames written since), from
        the writer's connection, where no commit runs beside it, so that its next
        transaction starts the WAL over. Failing (a pass at the same moment) or leaving
        frames, it is tried again before the writer's next transaction."""
        try:
            _busy, frames, copied = writer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:
            return
        self.writer_passes += 1
        if frames == copied:
            self.long_wal = False

    def close(self) -> None:
        """Stop the thread (after its pass, if one runs) and close the connection."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        self._conn.close()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            if self._stopping.is_set():
                return
            self._wake.clear()
            try:
                self.checkpoint()
            except sqlite3.Error as exc:
                if not self._failing:  # once per run of failures
                    reason = str(error("cannot checkpoint", self._path, exc))
                    log_event(log, "store.failed", what="checkpointing", reason=reason)
                self._failing = True
            else:
                self._failing = False
            if self._stopping.wait(PAUSE_S):
                return
