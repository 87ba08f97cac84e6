"""Password jobs: the hub never waits for a hash.

The chat state queues a :class:`~triochat.core.passwords.Job` for every password to
check or hash (its :class:`~triochat.core.model.Effects`). Each runs as a task of its
own: it reads the stored hash through the store's writer (in order, after the batches
submitted before it) and hashes in a worker thread (:data:`HASH_THREADS` at a time),
then reports back into the hub's inbound channel. Every room goes on meanwhile.

**Two lanes.** Hashes take turns (:class:`Turns`): an *urgent* job (an owner's: see
:mod:`triochat.core.accounts`) goes before every job that is not, so an owner's login
waits for at most the one hash in progress, however many guesses are queued.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

import trio

from triochat.core.passwords import Job, Outcome, check
from triochat.store import Store, StoreError

__all__ = ["HASH_THREADS", "JobStatistics", "PasswordJobs", "Turns"]

HASH_THREADS: Final = 1  # scrypt at a time: ~0.1 s and 32 MiB each; the loop keeps the other core


@dataclass(frozen=True, slots=True)
class JobStatistics:
    """Password checks (see :meth:`PasswordJobs.statistics`)."""

    started: int
    running: int


class Turns:
    """One slot, taken in turns: urgent waiters first, then the others, each in order."""

    def __init__(self) -> None:
        self._busy = False
        self._waiting: dict[bool, deque[trio.Event]] = {True: deque(), False: deque()}

    @contextlib.asynccontextmanager
    async def turn(self, urgent: bool) -> AsyncIterator[None]:
        """Hold the slot for the ``async with`` body (urgent: before the others)."""
        if self._busy:
            given = trio.Event()
            self._waiting[urgent].append(given)
            try:
                await given.wait()
            except BaseException:
                if given.is_set():  # handed the slot as it was cancelled: pass it on
                    self._hand_on()
                else:
                    self._waiting[urgent].remove(given)
                raise
        else:
            self._busy = True
        try:
            yield
        finally:
            self._hand_on()

    def _hand_on(self) -> None:
        """Give the slot to the next waiter (urgent ones first), or free it."""
        for urgent in (True, False):
            if self._waiting[urgent]:
                self._waiting[urgent].popleft().set()  # the slot stays busy: it is theirs
                return
        self._busy = False

    @property
    def waiting(self) -> int:
        """Jobs waiting for the slot."""
        return len(self._waiting[True]) + len(self._waiting[False])


class PasswordJobs:
    """Runs password jobs in tasks of their own; see the module docstring."""

    def __init__(
        self,
        call: Callable[..., Awaitable[Any]],
        store: Store,
        store_down: Callable[[], bool],
        done: Callable[[Job, Outcome], Awaitable[None]],
        read_timeout: float,
    ) -> None:
        self._call = call
        self._store = store
        self._store_down = store_down
        self._done = done
        self._read_timeout = read_timeout
        self._limiter = trio.CapacityLimiter(HASH_THREADS)
        self._turns = Turns()  # before the limiter: it decides who is next
        self._nursery: trio.Nursery | None = None
        self._started = self._running = 0

    def start_in(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery

    def start(self, jobs: list[Job]) -> None:
        for job in jobs:
            if self._nursery is None:  # pragma: no cover - the hub starts this first
                raise RuntimeError("the hub is not running")
            self._started += 1
            self._nursery.start_soon(self._run, job)

    async def _run(self, job: Job) -> None:
        """Read the stored hash (if needed), hash in the worker thread, report back.

        While the store is failing, or slower than the read timeout, the check fails as
        "unavailable" (not as a wrong password).
        """
        self._running += 1
        try:
            stored: str | None = None
            failure = "the store is not working right now" if self._store_down() else ""
            if not failure and job.needs_stored_hash:
                failure = f"reading the account took over {self._read_timeout:g} s"
                with trio.move_on_after(self._read_timeout):
                    try:
                        record = await self._call(self._store.account, job.key)
                    except (StoreError, trio.ClosedResourceError) as exc:
                        failure = str(exc)
                    else:
                        stored = None if record is None else record.password_hash
                        failure = ""
            if failure:
                outcome = Outcome(False, failure=failure)
            else:
                async with self._turns.turn(job.urgent):
                    outcome = await trio.to_thread.run_sync(
                        partial(check, job, stored), limiter=self._limiter
                    )
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await self._done(job, outcome)
        finally:
            self._running -= 1

    def statistics(self) -> JobStatistics:
        return JobStatistics(self._started, self._running)
