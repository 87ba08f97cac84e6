"""The server's log: formats, the queue that drops instead of blocking, repeated errors.

The real command with a log pipe nobody reads is in tests/test_cli.py
(``test_cli_unread_log_pipe_does_not_freeze_the_server``).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Iterator
from typing import Any, Final, cast

import pytest
import trio

from triochat.config import ServerConfig
from triochat.logs import (
    DroppingQueueHandler,
    LogPipeline,
    PlainFormatter,
    RepeatLimiter,
    Repeats,
    renderer,
)
from triochat.server.hub import STATUS_EVERY
from triochat.testing import open_test_server

STOP_TIMEOUT: Final = 5.0  # seconds for a pipeline to write a few records to a pipe we read
ISO_TIME: Final = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(?:[+-]\d\d:\d\d|Z)?"


def _record(msg: str, *args: object, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("triochat.room", level, __file__, 1, msg, args, None)


@pytest.fixture
def logger(request: pytest.FixtureRequest) -> Iterator[logging.Logger]:
    """A logger of this test's own that does not propagate (root is left alone)."""
    log = logging.getLogger(f"triochat.test.{request.node.name}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    yield log
    for handler in log.handlers[:]:
        if isinstance(handler, DroppingQueueHandler):  # (pytest adds its own; those stay)
            log.removeHandler(handler)


def _read_all(fd: int) -> str:
    chunks = []
    while data := os.read(fd, 65536):
        chunks.append(data)
    return b"".join(chunks).decode()


def _pipeline_output(logger: logging.Logger, log_format: str, *calls: tuple[Any, ...]) -> str:
    """Log ``calls`` (msg, *args) through a started pipeline into a pipe; what it wrote."""
    read, write = os.pipe()
    try:
        pipeline = LogPipeline.create(write, renderer(log_format, write))
        logger.addHandler(pipeline.handler)
        pipeline.start()
        for msg, *args in calls:
            logger.info(msg, *args)
        assert pipeline.stop(STOP_TIMEOUT)
    finally:
        os.close(write)
    try:
        return _read_all(read)
    finally:
        os.close(read)


# -- formats ---------------------------------------------------------------------------


def test_plain_format_is_one_line_per_record(logger: logging.Logger) -> None:
    """Plain records (off a terminal) are one line each: ISO time, level, logger, message."""
    out = _pipeline_output(
        logger,
        "auto",  # a pipe is not a terminal: plain, not rich
        ("[c%d] %s joined from %s (%s, %d online)", 1, "alice", "127.0.0.1:5000", "plain", 1),
        ("[c%d] %s left: %s (%d online)", 1, "alice", "quit", 0),
    )
    lines = out.splitlines()
    assert len(lines) == 2, out
    name = re.escape(logger.name)
    assert re.fullmatch(
        rf"{ISO_TIME} INFO {name} \[c1\] alice joined from 127\.0\.0\.1:5000 \(plain, 1 online\)",
        lines[0],
    ), lines[0]
    assert re.fullmatch(rf"{ISO_TIME} INFO {name} \[c1\] alice left: quit \(0 online\)", lines[1])


def test_plain_format_escapes_line_breaks() -> None:
    """A message with a line break cannot forge a second record."""
    text = PlainFormatter().format(_record("refused %s", "eve\n2025-01-01T00:00:00 INFO fake"))
    assert "\n" not in text
    assert text.endswith("refused eve\\n2025-01-01T00:00:00 INFO fake")


def test_json_format_has_time_level_logger_message(logger: logging.Logger) -> None:
    """--log-format json writes one parseable object per line with the five fields."""
    out = _pipeline_output(logger, "json", ("[c%d] %s joined", 7, "bob"), ("status: %d online", 3))
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["message"] for r in records] == ["[c7] bob joined", "status: 3 online"]
    for r in records:
        assert set(r) == {"time", "level", "logger", "event", "message"}
        assert r["event"] == "external"  # not logged through log_event
        assert re.fullmatch(ISO_TIME, r["time"])
        assert r["level"] == "INFO"
        assert r["logger"] == logger.name


def test_formats_show_a_traceback_after_the_record(logger: logging.Logger) -> None:
    """An exception logged in the loop keeps its traceback (formatted at call time)."""
    read, write = os.pipe()
    pipeline = LogPipeline.create(write, renderer("json", write))
    logger.addHandler(pipeline.handler)
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("[c%d] unexpected error", 3)
    pipeline.start()
    assert pipeline.stop(STOP_TIMEOUT)
    os.close(write)
    (line,) = _read_all(read).splitlines()
    os.close(read)
    record = json.loads(line)
    assert record["message"] == "[c3] unexpected error"
    assert record["level"] == "ERROR"
    assert "ValueError: boom" in record["traceback"]
    plain = PlainFormatter().format(_with_exc_text(record["traceback"]))
    first, *rest = plain.splitlines()
    assert first.endswith("INFO triochat.room failed")
    assert rest
    assert all(part.startswith("    ") for part in rest)


def _with_exc_text(text: str) -> logging.LogRecord:
    record = _record("failed")
    record.exc_text = text
    return record


def test_rich_format_renders_the_message() -> None:
    """The terminal view (rich) renders a record to text with the message in it."""
    render = renderer("rich", -1)
    text = render(_record("[c%d] %s joined", 2, "carol"))
    assert "carol joined" in text
    assert text.endswith("\n")


def test_renderer_unknown_format_is_refused() -> None:
    """A format name that is not one of LOG_FORMATS is an error, not a silent default."""
    with pytest.raises(ValueError, match="unknown log format"):
        renderer("xml", 2)


# -- the queue: cheap, and never blocking --------------------------------------------------


def test_queue_handler_full_queue_drops_and_counts(logger: logging.Logger) -> None:
    """With the queue full (writer stuck or slow), a log call drops the record and returns."""
    records: queue.Queue[logging.LogRecord | None] = queue.Queue(2)
    handler = DroppingQueueHandler(records)
    logger.addHandler(handler)
    start = time.monotonic()
    for i in range(5):
        logger.info("record %d", i)
    assert time.monotonic() - start < 1.0  # (a blocking put would never return here)
    assert handler.dropped == 3
    queued = [records.get_nowait() for _ in range(2)]
    assert [r.getMessage() for r in queued if r is not None] == ["record 0", "record 1"]


def _fill(fd: int) -> None:
    """Write to the pipe ``fd`` until it is full, as an unread log pipe ends up."""
    os.set_blocking(fd, False)
    try:
        while True:
            os.write(fd, b"x" * 65536)
    except BlockingIOError:
        pass
    finally:
        os.set_blocking(fd, True)


def test_pipeline_unread_pipe_drops_and_stop_gives_up(logger: logging.Logger) -> None:
    """A full pipe nobody reads: logging stays fast, drops are counted, stop returns in time."""
    read, write = os.pipe()
    _fill(write)
    pipeline = LogPipeline.create(write, renderer("plain", write), capacity=100)
    logger.addHandler(pipeline.handler)
    pipeline.start()
    try:
        start = time.monotonic()
        for i in range(1000):
            logger.info("[c%d] %s joined from %s", i, "someone", "127.0.0.1:1")
        assert time.monotonic() - start < 5.0
        assert pipeline.handler.dropped >= 1000 - 100 - 1  # the queue, and one being written
        started = time.monotonic()
        assert not pipeline.stop(0.05)  # the writer is blocked in write(2): give up
        assert time.monotonic() - started < 1.0
    finally:
        os.close(read)  # the blocked write fails with EPIPE; the thread can end
    assert pipeline.stop(STOP_TIMEOUT)
    os.close(write)
    assert pipeline.writer.failed > 0  # lost to the closed pipe: counted as dropped too


def test_queue_handler_defers_formatting_immutable_args() -> None:
    """Scalar args are left for the writer thread: no copy, no formatting in the loop."""
    handler = DroppingQueueHandler(queue.Queue())
    record = _record("[c%d] %s joined (%.1f)", 1, "alice", 2.5)
    prepared = handler.prepare(record)
    assert prepared is record
    assert record.args == (1, "alice", 2.5)
    assert prepared.getMessage() == "[c1] alice joined (2.5)"


def test_queue_handler_merges_mutable_args_at_call_time() -> None:
    """A mutable argument is merged at once, so the log shows its value at call time."""
    handler = DroppingQueueHandler(queue.Queue())
    names = ["alice"]
    record = _record("online: %s", names)
    prepared = handler.prepare(record)
    names.append("bob")
    assert prepared.getMessage() == "online: ['alice']"
    assert prepared.args is None
    assert record.args == (names,)  # the original (seen by other handlers) is untouched


# -- repeated errors ---------------------------------------------------------------------------


def test_repeatlimiter_collapses_repeats_with_a_count() -> None:
    """Ten errors a second become one line per 10 s, each saying how many it stood for."""
    limiter = RepeatLimiter(10.0)
    allowed = [(i, r) for i in range(250) if (r := limiter.allow("EMFILE", i / 10)) is not None]
    assert allowed == [(0, Repeats(0, 0.0)), (100, Repeats(99, 10.0)), (200, Repeats(99, 10.0))]


def test_repeatlimiter_keys_are_independent() -> None:
    """A different error is logged at once, even while another is being held back."""
    limiter = RepeatLimiter(10.0)
    assert limiter.allow("Too many open files", 0.0) == Repeats(0, 0.0)
    assert limiter.allow("Too many open files", 1.0) is None
    assert limiter.allow("No buffer space available", 2.0) == Repeats(0, 0.0)
    assert limiter.allow("Too many open files", 30.0) == Repeats(1, 30.0)


class _ExhaustedListener(trio.abc.Listener[trio.SocketStream]):
    """A listener whose every accept fails as when the process is out of descriptors."""

    def __init__(self) -> None:
        self.attempts = 0

    async def accept(self) -> trio.SocketStream:
        await trio.lowlevel.checkpoint()
        self.attempts += 1
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


async def test_server_accept_errors_are_rate_limited(
    nursery: trio.Nursery, autojump_clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Out of descriptors for 25 s: 3 error lines with counts, not one per retry (~250)."""
    server = await open_test_server(nursery)
    listener = _ExhaustedListener()
    caplog.set_level(logging.ERROR, logger="triochat.server")
    with trio.move_on_after(25.0):
        await server.serve_listeners([cast(trio.SocketListener, listener)])
    lines = [r.getMessage() for r in caplog.records if "cannot accept" in r.getMessage()]
    assert listener.attempts >= 240
    assert len(lines) == 3, lines
    assert lines[0] == "cannot accept a connection (Too many open files); retrying in 0.1 s"
    for line in lines[1:]:
        match = re.search(r"\(repeated (\d+) times in the last 10 s\)$", line)
        assert match, line
        assert 95 <= int(match.group(1)) <= 100


async def test_room_status_line_reports_dropped_records(
    nursery: trio.Nursery,
    autojump_clock: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The periodic status line says how many log records were dropped so far."""
    monkeypatch.setattr("triochat.server.hub.dropped_records", lambda: 42)
    caplog.set_level(logging.INFO, logger="triochat.server.hub")
    await open_test_server(nursery)
    await trio.sleep(STATUS_EVERY + 2 * ServerConfig().presence_interval)  # (virtual time)
    status = [r.getMessage() for r in caplog.records if r.getMessage().startswith("status:")]
    assert status
    assert status[-1].endswith(", 42 log records dropped")


def test_writer_thread_is_a_daemon(logger: logging.Logger) -> None:
    """The writer must not keep a process alive at exit when its reader has stopped."""
    read, write = os.pipe()
    pipeline = LogPipeline.create(write, renderer("plain", write))
    before = set(threading.enumerate())
    pipeline.start()
    (thread,) = set(threading.enumerate()) - before
    assert thread.daemon
    assert pipeline.stop(STOP_TIMEOUT)
    os.close(write)
    os.close(read)
