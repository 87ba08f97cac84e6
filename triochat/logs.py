"""The server's log: queued by the event loop, formatted and written by one thread.

Rules of this module:

* **Logging never blocks the event loop.** The root logger's only handler is a
  :class:`DroppingQueueHandler`: it puts each record on a bounded queue with
  ``put_nowait`` and returns. One writer thread (a
  :class:`~logging.handlers.QueueListener`) formats the records and writes them. When
  the queue is full (whoever reads stderr is slower than the server, or has stopped
  reading) a record is dropped and counted (:func:`dropped_records`), never waited for.
* **The loop does as little as possible per record**: no formatting, no copy. The
  message is merged with its arguments in the writer thread, which is safe because
  the arguments are immutable (see :meth:`DroppingQueueHandler.prepare`).
* **The writer holds nothing the main thread needs.** It writes with ``os.write`` on
  the descriptor, not through ``sys.stderr``, and without a handler lock; so if the
  reader never reads again and the writer blocks for good, the process still exits:
  the thread is a daemon and :meth:`LogPipeline.stop` waits for it only briefly.

Formats: ``plain`` (one line per record: ISO time, level, logger, message), ``json``
(one object per line with the same fields) and, on a terminal, rich's console view.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import logging.handlers
import os
import queue
import select
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, NamedTuple

__all__ = [
    "EXTERNAL",
    "FLUSH_TIMEOUT",
    "LOG_FORMATS",
    "DroppingQueueHandler",
    "JsonFormatter",
    "LogPipeline",
    "PlainFormatter",
    "RepeatLimiter",
    "Repeats",
    "dropped_records",
    "release_logging",
    "renderer",
    "start_logging",
    "stop_logging",
]

EXTERNAL: Final = "external"  # the event of a record not logged by log_event (a library's)
LOG_FORMATS: Final = ("auto", "plain", "json")  # auto: rich on a terminal, plain otherwise
QUEUE_RECORDS: Final = 8192  # records waiting for the writer (~0.7 KB each, measured): a
#   burst of 4000 joins and leaves fits; a stopped reader costs at most ~6 MB, then drops
FLUSH_TIMEOUT: Final = 0.2  # seconds to write what is queued at exit; within the 2 s exit promise
REPEAT_INTERVAL: Final = 10.0  # seconds: one line per kind of repeated error, with a count
# Arguments of these exact types cannot change after the call, so merging them into the
# message later, in the writer thread, gives the same text as merging them now.
_IMMUTABLE: Final = frozenset({str, int, float, bool, type(None)})
_ARG_TYPES: Final = frozenset({tuple, dict})  # positional, or log_event's fields

Render = Callable[[logging.LogRecord], str]  # a record -> its text, newline included


# -- formats --------------------------------------------------------------------------


class _LocalTime:
    """ISO 8601 local time with milliseconds and UTC offset, cached per whole second.

    ``datetime.astimezone`` costs about 5 us; a busy log has many records per second.
    Used by one thread (the writer's formatter), so the cache needs no lock.
    """

    __slots__ = ("_second", "_stamp", "_zone")

    def __init__(self) -> None:
        self._second = -1
        self._stamp = ""
        self._zone = ""

    def __call__(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            local = dt.datetime.fromtimestamp(second).astimezone()
            text = local.isoformat(timespec="seconds")  # 2025-01-02T03:04:05+01:00
            self._stamp, self._zone, self._second = text[:19], text[19:], second
        return f"{self._stamp}.{int((created - second) * 1000):03d}{self._zone}"


def _one_line(text: str) -> str:
    """``text`` with line breaks escaped, so one record can never look like two."""
    if "\n" in text or "\r" in text:
        return text.replace("\r", "\\r").replace("\n", "\\n")
    return text


class PlainFormatter(logging.Formatter):
    """``2025-01-02T03:04:05.678+01:00 INFO triochat.room [c1] alice joined ...``.

    One line per record, for grep and journald. A traceback (a bug) follows on lines
    indented by four spaces.
    """

    def __init__(self) -> None:
        super().__init__()
        self._time = _LocalTime()

    def format(self, record: logging.LogRecord) -> str:
        line = (
            f"{self._time(record.created)} {record.levelname} {record.name} "
            f"{_one_line(record.getMessage())}"
        )
        trace = _trace(self, record)
        if trace:
            line += "\n" + "\n".join("    " + part for part in trace.splitlines())
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``event``, ``message``,
    the event's fields (:mod:`triochat.core.logevents`) and ``traceback`` when there is
    one. A record not logged by :func:`~triochat.core.logevents.log_event` (a library's)
    has the event ``external``."""

    def __init__(self) -> None:
        super().__init__()
        self._time = _LocalTime()

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, object] = {
            "time": self._time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "event": getattr(record, "event", EXTERNAL),
            "message": record.getMessage(),
        }
        args = record.args
        if type(args) is dict:  # log_event's fields; "_" ones only complete the text
            fields.update((k, v) for k, v in args.items() if k[0] != "_" and k not in fields)
        trace = _trace(self, record)
        if trace:
            fields["traceback"] = trace
        return json.dumps(fields, ensure_ascii=False, separators=(",", ":"), default=str)


def _trace(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    """The record's traceback and stack text, if any."""
    parts = []
    if record.exc_info and not record.exc_text:
        record.exc_text = formatter.formatException(record.exc_info)
    if record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(formatter.formatStack(record.stack_info))
    return "\n".join(parts)


def _line_renderer(formatter: logging.Formatter) -> Render:
    def render(record: logging.LogRecord) -> str:
        return formatter.format(record) + "\n"

    return render


def _rich_renderer() -> Render:
    """Rich's console view (time, coloured level, message), rendered to a string.

    Rendered with ``Console.capture`` rather than written by rich, so that the writer
    thread does the writing like in every other format (see the module's rules). The
    width follows the terminal's, as rich finds it.
    """
    from rich.console import Console
    from rich.logging import RichHandler

    console = Console(force_terminal=True, stderr=True)
    handler = RichHandler(
        console=console,
        show_path=False,
        markup=False,  # untrusted text (names, peers) is never markup
        rich_tracebacks=False,
        log_time_format="[%X]",
    )

    def render(record: logging.LogRecord) -> str:
        with console.capture() as capture:
            handler.emit(record)
        return capture.get()

    return render


def renderer(log_format: str, fd: int) -> Render:
    """The :data:`Render` for ``--log-format`` (``auto``: rich if ``fd`` is a terminal)."""
    if log_format == "auto":
        log_format = "rich" if os.isatty(fd) else "plain"
    if log_format == "rich":
        return _rich_renderer()
    if log_format == "json":
        return _line_renderer(JsonFormatter())
    if log_format == "plain":
        return _line_renderer(PlainFormatter())
    raise ValueError(f"unknown log format {log_format!r}; choose from {', '.join(LOG_FORMATS)}")


# -- the event loop's side --------------------------------------------------------------


class DroppingQueueHandler(logging.handlers.QueueHandler):
    """Puts records on a bounded queue without ever waiting; counts what did not fit.

    Attributes:
        dropped: records that found the queue full (changed under the handler lock).
    """

    def __init__(self, records: queue.Queue[logging.LogRecord | None]) -> None:
        super().__init__(records)
        self.records = records
        self.dropped = 0

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        """Make ``record`` safe to format later, in another thread; usually a no-op.

        The stdlib's ``prepare`` copies the record and formats it here, in the caller's
        thread: that is most of what a log call costs. Here the merge of message and
        arguments is left to the writer thread when the message is a ``str`` and every
        argument is an immutable scalar (every call in triochat: ids, names, counts),
        since the result is then the same; arguments are a tuple, or the fields
        :func:`~triochat.core.logevents.log_event` passes as a mapping. Anything else
        (a mutable argument, an exception's traceback) is resolved now, on a copy, as
        the stdlib would: the log shows the state at the time of the call, and a
        traceback's frames are not kept alive in the queue. A record with fields keeps
        them (a mutable value as its text) for the JSON format.
        """
        args = record.args
        values = args.values() if isinstance(args, dict) else args or ()
        lazy = type(record.msg) is str and (
            not args or (type(args) in _ARG_TYPES and all(type(a) in _IMMUTABLE for a in values))
        )
        if lazy and not record.exc_info:
            return record
        record = copy.copy(record)  # other handlers (pytest's caplog) keep the original
        if not lazy and isinstance(args, dict):  # keep the fields, mutable ones as text
            record.msg = record.getMessage().replace("%", "%%")  # no %(key) left to fill
            record.args = {k: v if type(v) in _IMMUTABLE else str(v) for k, v in args.items()}
        elif not lazy:
            record.msg = record.getMessage()
            record.args = None
        if record.exc_info:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
            record.exc_info = None
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        """Queue ``record``, or drop and count it if the queue is full."""
        try:
            self.records.put_nowait(record)
        except queue.Full:
            self.dropped += 1


_TRACEBACKS: Final = logging.Formatter()  # formats exceptions in the caller's thread


# -- the writer thread's side -------------------------------------------------------------


class _Writer(logging.Handler):
    """Renders records and writes them to a descriptor; only the writer thread calls it.

    Attributes:
        failed: records lost because the write failed (the reader closed the pipe).
    """

    def __init__(self, fd: int, render: Render) -> None:
        super().__init__()
        self.fd = fd
        self.render = render
        self.failed = 0

    def handle(self, record: logging.LogRecord) -> bool:
        """Write ``record``, without the handler lock.

        One thread calls this, so the lock protects nothing; and if a write blocks for
        good, ``logging.shutdown`` at exit would wait for that lock forever.
        """
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.render(record)
        except Exception as exc:  # a bad format string: say so, in the log, and go on
            text = f"cannot format a log record of {record.name} ({record.msg!r}): {exc!r}\n"
        try:
            _write_all(self.fd, text.encode("utf-8", "replace"))
        except OSError:
            self.failed += 1  # EPIPE and the like: nobody can read it; count, never raise


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until all of ``data`` is written; waits while the descriptor is full."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:  # someone made the descriptor non-blocking
            select.select([], [fd], [])


class _Listener(logging.handlers.QueueListener):
    """The writer thread, with a stop that gives up after a deadline."""

    _sentinel = None  # the stdlib's _monitor stops at self._sentinel; set here, not assumed

    def __init__(self, records: queue.Queue[logging.LogRecord | None], writer: _Writer) -> None:
        super().__init__(records, writer)
        self.records = records

    def stop_within(self, timeout: float) -> bool:
        """Write what is queued and end the thread; False if that took over ``timeout``.

        A writer still blocked (nobody reads the log) is left behind: it is a daemon
        thread, and holds no lock that the rest of the process needs.
        """
        thread = self._thread
        if thread is None:
            return True
        deadline = time.monotonic() + timeout
        try:
            self.records.put(self._sentinel, timeout=timeout)
        except queue.Full:
            return False
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            return False
        self._thread = None
        return True


@dataclass(eq=False)
class LogPipeline:
    """A :class:`DroppingQueueHandler` and the thread that writes what it queues to ``fd``."""

    handler: DroppingQueueHandler
    writer: _Writer
    listener: _Listener

    @classmethod
    def create(cls, fd: int, render: Render, capacity: int = QUEUE_RECORDS) -> LogPipeline:
        """A pipeline (not started) writing ``render(record)`` to ``fd``."""
        records: queue.Queue[logging.LogRecord | None] = queue.Queue(capacity)
        writer = _Writer(fd, render)
        return cls(DroppingQueueHandler(records), writer, _Listener(records, writer))

    @property
    def dropped(self) -> int:
        """Records that were never written: the queue was full, or the write failed."""
        return self.handler.dropped + self.writer.failed

    def start(self) -> None:
        """Start the writer thread (once; records queued before it are written first)."""
        if self.listener._thread is None:
            self.listener.start()

    def stop(self, timeout: float = FLUSH_TIMEOUT) -> bool:
        """Write what is queued (for at most ``timeout`` seconds); True if all was."""
        self.start()  # a pipeline still held writes what it holds
        return self.listener.stop_within(timeout)


_active: LogPipeline | None = None  # the pipeline start_logging installed


def start_logging(
    level: str, log_format: str = "auto", fd: int | None = None, *, held: bool = False
) -> LogPipeline:
    """Send every log record at ``level`` or above through a new pipeline to ``fd``.

    Args:
        level: ``debug``, ``info``, ``warning`` or ``error``.
        log_format: one of :data:`LOG_FORMATS`.
        fd: where to write; stderr's descriptor by default.
        held: queue the records but write none until :func:`release_logging` (or
            :func:`stop_logging`): the server's start-up lines go to stdout first, so
            a reader of both streams sees them before any log record.
    """
    global _active
    if fd is None:
        fd = sys.stderr.fileno()
    pipeline = LogPipeline.create(fd, renderer(log_format, fd))
    # Cheaper records: the logging HOWTO's "Optimization" switches for fields no format
    # here shows (thread, process and process names).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.basicConfig(level=level.upper(), handlers=[pipeline.handler], force=True)
    if not held:
        pipeline.start()
    _active = pipeline
    return pipeline


def release_logging() -> None:
    """Start writing the records a held pipeline queued (nothing if not held)."""
    if _active is not None:
        _active.start()


def stop_logging(timeout: float = FLUSH_TIMEOUT) -> bool:
    """Take the pipeline off the root logger and write what is queued (within ``timeout``).

    Returns False if records were left unwritten (nobody reads the log).
    """
    if _active is None:
        return True
    logging.getLogger().removeHandler(_active.handler)
    return _active.stop(timeout)


def dropped_records() -> int:
    """Log records dropped so far (queue full or write failed); 0 before logging starts."""
    return 0 if _active is None else _active.dropped


# -- repeated errors ------------------------------------------------------------------------


class Repeats(NamedTuple):
    """What :meth:`RepeatLimiter.allow` held back since the last line it let through."""

    held: int  # repeats not logged
    seconds: float  # since the last line let through (0 for the first)


@dataclass(slots=True)
class _Seen:
    logged_at: float
    held: int


class RepeatLimiter:
    """One line per ``interval`` for each kind of repeated message, with a count.

    No I/O and no clock of its own: the caller passes ``now`` (``trio.current_time()``
    in the server, any number in tests). Keys must come from a small fixed set (such
    as an error's description): one entry per key is kept for good. The count of the
    last interval is reported with the next repeat after it, if there is one.
    """

    __slots__ = ("_interval", "_seen")

    def __init__(self, interval: float = REPEAT_INTERVAL) -> None:
        self._interval = interval
        self._seen: dict[str, _Seen] = {}

    def allow(self, key: str, now: float) -> Repeats | None:
        """None if this repeat of ``key`` is to be counted, not logged; else log it now.

        The returned :class:`Repeats` says how many were held back since the last line
        for ``key``, over how many seconds (``held`` is 0 the first time).
        """
        seen = self._seen.get(key)
        if seen is None:
            self._seen[key] = _Seen(now, 0)
            return Repeats(0, 0.0)
        if now - seen.logged_at < self._interval:
            seen.held += 1
            return None
        report = Repeats(seen.held, now - seen.logged_at)
        seen.logged_at, seen.held = now, 0
        return report
