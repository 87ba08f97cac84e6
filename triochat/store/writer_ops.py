"""The operations a :class:`~triochat.store.writer.StoreWriter` queues for its thread.

Plain records: a batch to commit (with its sequence number), a call (a read) whose
caller waits for its outcome, a retention step, and the stop that ends the thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import trio

from triochat.store.base import Batch

__all__ = ["Call", "Commit", "Op", "Prune", "Stop", "merge"]

T = TypeVar("T")


@dataclass(slots=True)
class Commit:
    batch: Batch
    seq: int


@dataclass(slots=True)
class Prune:
    pass


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


Op = Commit | Call[Any] | Prune | Stop


def merge(commits: list[Commit]) -> Batch:
    """Return one batch holding every commit's rooms and messages, in order."""
    if len(commits) == 1:
        return commits[0].batch
    merged = Batch()
    for commit in commits:
        merged.extend(commit.batch)  # a later batch's dropped rooms take earlier lines too
    return merged
