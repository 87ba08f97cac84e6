"""The operations a :class:`~triochat.store.writer.StoreWriter` queues for its thread.

Plain records: a batch to commit (with its sequence number), a call (a read) whose
caller waits for its outcome, a retention step, a checkpoint, a nudge (a wake-up), and
the stop that ends the thread; and what the writer reports of itself.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import trio

from triochat.latency import Latency
from triochat.store.base import Batch

__all__ = [
    "Call",
    "Checkpoint",
    "Commit",
    "Nudge",
    "Op",
    "Prune",
    "Stop",
    "WriterStatistics",
    "merge",
    "take_group",
]

T = TypeVar("T")


@dataclass(slots=True)
class Commit:
    batch: Batch
    seq: int


@dataclass(slots=True)
class Prune:
    pass


@dataclass(slots=True)
class Checkpoint:
    """Checkpoint the WAL: commits made in the event loop never do (``loop_commit``)."""


@dataclass(slots=True)
class Nudge:
    """Wakes the thread only: lines committed in the event loop wait to be indexed."""


@dataclass(slots=True)
class Stop:
    """The last operation: the thread closes the store and ends."""


class Call(Generic[T]):
    """A read (or any store function) waiting for its turn in the writer thread."""

    __slots__ = ("abandoned", "done", "error", "fn", "value")

    def __init__(self, fn: Callable[[], T]) -> None:
        self.fn = fn
        self.done = trio.Event()
        self.abandoned = False  # the caller was cancelled while it waited
        self.value: T | None = None
        self.error: BaseException | None = None

    def finish(self, value: T | None, error: BaseException | None) -> None:
        """Record the outcome (the first one only) and wake the caller."""
        if not self.done.is_set():
            self.value, self.error = value, error
            self.done.set()

    def result(self) -> T:
        """Return the value, or raise the error, of a finished call."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]  # None only when T includes None


Op = Commit | Call[Any] | Prune | Checkpoint | Nudge | Stop


@dataclass(frozen=True, slots=True)
class WriterStatistics:
    """What :meth:`StoreWriter.statistics` reports.

    Attributes:
        submitted: batches submitted so far (the last sequence number handed out).
        committed: batches committed so far (the last sequence number reported).
        commits: transactions that landed (each holds one or more grouped batches).
        messages: chat messages those transactions saved.
        failures: commit attempts that failed (each was retried).
        queued: operations waiting for the writer thread (commits, reads, prune steps).
        commit_seconds: time the landed commits took in the writer thread, in total
            (``commit_seconds / commits`` is the mean commit latency).
        calls: reads (and other calls) run in the writer thread so far.
        commit_latency: the landed commits' durations, in buckets.
        loop_commits: those of ``commits`` made in the event loop (``loop_commit``).
    """

    submitted: int
    committed: int
    commits: int
    messages: int
    failures: int
    queued: int
    commit_seconds: float
    calls: int
    commit_latency: Latency
    loop_commits: int = 0


def take_group(first: Commit, inbox: queue.SimpleQueue[Op]) -> tuple[list[Commit], Op | None]:
    """``first`` and every commit queued right behind it (one transaction), and the
    operation that ended the run, if one was taken (it runs next)."""
    group = [first]
    while True:
        try:
            ahead = inbox.get_nowait()
        except queue.Empty:
            return group, None
        if not isinstance(ahead, Commit):
            return group, ahead
        group.append(ahead)


def merge(commits: list[Commit]) -> Batch:
    """Return one batch holding every commit's rooms and messages, in order."""
    if len(commits) == 1:
        return commits[0].batch
    merged = Batch()
    for commit in commits:
        merged.extend(commit.batch)  # a later batch's dropped rooms take earlier lines too
    return merged
