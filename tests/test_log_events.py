"""Named log events: every log call under triochat/ has a stable event name and fields.

The table is :data:`triochat.core.logevents.EVENTS`; the JSON format writes ``event`` and
the fields as top-level keys; docs/operations.md lists every event.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest

from tests.desk import Desk
from triochat.core.logevents import EVENTS, RESERVED, log_event
from triochat.logs import EXTERNAL, JsonFormatter, LogPipeline, PlainFormatter, renderer

ROOT: Final = Path(__file__).resolve().parent.parent
PACKAGE: Final = ROOT / "triochat"
LEVELS: Final = frozenset(
    {"debug", "info", "warning", "warn", "error", "exception", "critical", "fatal", "log"}
)
NAME: Final = re.compile(r"[a-z]+(\.[a-z_]+)*")
STOP_TIMEOUT: Final = 5.0


def _logger_names(tree: ast.Module) -> set[str]:
    """Names bound to ``logging.getLogger(...)`` anywhere in a module, and ``logging``."""
    names = {"logging"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and _is_get_logger(node.value):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def _is_get_logger(node: ast.expr) -> bool:
    func = node.func if isinstance(node, ast.Call) else None
    return (isinstance(func, ast.Attribute) and func.attr == "getLogger") or (
        isinstance(func, ast.Name) and func.id == "getLogger"
    )


def log_calls(source: str) -> tuple[list[str], list[tuple[str, set[str]]]]:
    """(problems, [(event, keywords)] of the ``log_event`` calls) found in ``source``."""
    tree = ast.parse(source)
    loggers = _logger_names(tree)
    problems: list[str] = []
    events: list[tuple[str, set[str]]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in LEVELS:
            target = func.value
            if (isinstance(target, ast.Name) and target.id in loggers) or _is_get_logger(target):
                problems.append(f"line {node.lineno}: .{func.attr}() instead of log_event")
        if not (isinstance(func, ast.Name) and func.id == "log_event"):
            continue
        event = node.args[1] if len(node.args) == 2 else None
        if not (isinstance(event, ast.Constant) and isinstance(event.value, str)):
            problems.append(f"line {node.lineno}: log_event needs (logger, 'event.name')")
            continue
        if event.value not in EVENTS:
            problems.append(f"line {node.lineno}: unknown event {event.value!r}")
            continue
        if any(k.arg is None for k in node.keywords):
            problems.append(f"line {node.lineno}: pass the fields by name, not **mapping")
            continue
        keys = {k.arg for k in node.keywords if k.arg is not None and k.arg != "exc_info"}
        if keys != EVENTS[event.value].keys:
            problems.append(
                f"line {node.lineno}: {event.value} takes {sorted(EVENTS[event.value].keys)}, "
                f"got {sorted(keys)}"
            )
        events.append((event.value, keys))
    return problems, events


def _modules() -> Iterator[Path]:
    return iter(sorted(PACKAGE.rglob("*.py")))


def test_every_log_call_names_a_known_event_with_its_fields() -> None:
    """A bare log.info(...) (no event, no fields) or a call whose fields differ from its
    row would give the JSON log a record a script cannot match on."""
    problems: list[str] = []
    used: set[str] = set()
    calls = 0
    for path in _modules():
        found, events = log_calls(path.read_text())
        problems += [f"{path.relative_to(ROOT)}: {problem}" for problem in found]
        used.update(event for event, _ in events)
        calls += len(events)
    assert not problems, "\n".join(problems)
    assert calls >= 80  # the walk really sees the calls (a moved package would pass)
    assert set(EVENTS) - used == set(), "events nobody logs: drop them from EVENTS"


def test_the_walk_catches_bare_and_wrong_calls() -> None:
    """The check itself: each kind of mistake is reported."""
    source = (
        "import logging\n"
        "log = logging.getLogger(__name__)\n"
        "log.info('hello %s', 1)\n"
        "logging.warning('x')\n"
        "logging.getLogger('y').error('z')\n"
        "log_event(log, 'no.such.event')\n"
        "log_event(log, 'server.stopped', extra=1)\n"
        "log_event(log, 'member.left', **fields)\n"
        "log_event(log, name)\n"
        "log_event(log, 'server.signal', signal='SIGTERM')\n"
    )
    problems, events = log_calls(source)
    assert [p.split(":")[0] for p in problems] == [f"line {n}" for n in range(3, 10)], problems
    assert events == [("server.stopped", {"extra"}), ("server.signal", {"signal"})]


def test_event_rows_are_well_formed() -> None:
    """Names are dotted lowercase; fields never shadow the JSON record's own keys; each
    message formats with its fields."""
    for name, row in EVENTS.items():
        assert NAME.fullmatch(name), name
        assert row.level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR)
        assert not set(row.fields) & RESERVED, name
        values = {key: 1 for key in row.keys}
        assert row.message % values, name


# -- the record and the JSON format ----------------------------------------------------


@pytest.fixture
def logger(request: pytest.FixtureRequest) -> Iterator[logging.Logger]:
    log = logging.getLogger(f"triochat.test.{request.node.name}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    yield log
    log.handlers.clear()


def _through_pipeline(logger: logging.Logger, log_format: str, *events: Any) -> list[str]:
    """Log ``events`` (name, fields) through a started pipeline; the lines it wrote."""
    read, write = os.pipe()
    try:
        pipeline = LogPipeline.create(write, renderer(log_format, write))
        logger.addHandler(pipeline.handler)
        pipeline.start()
        for name, fields in events:
            log_event(logger, name, **fields)
        assert pipeline.stop(STOP_TIMEOUT)
    finally:
        os.close(write)
    with os.fdopen(read) as pipe:
        return pipe.read().splitlines()


def test_json_record_has_event_and_fields(logger: logging.Logger) -> None:
    """--log-format json: event and each field are top-level keys; text-only pieces
    (``_more``) are not; the message is the text the plain format shows."""
    refused = {"conn": 4, "address": "10.0.0.9:5000", "reason": "too many", "repeated": 2}
    lines = _through_pipeline(
        logger,
        "json",
        ("member.left", {"conn": 7, "name": "bob", "reason": "quit", "online": 3}),
        ("connection.refused", {**refused, "_more": " (and 2 more in 10 s)"}),
        ("cluster.refused", {"what": "name", "op": ["a", "list"]}),  # mutable: kept as text
    )
    left, refusal, mutable = (json.loads(line) for line in lines)
    assert left["event"] == "member.left"
    assert left["message"] == "[c7] bob left: quit (3 online)"
    assert {k: left[k] for k in ("conn", "name", "reason", "online")} == {
        "conn": 7,
        "name": "bob",
        "reason": "quit",
        "online": 3,
    }
    assert refusal["event"] == "connection.refused"
    assert refusal["message"] == "[c4] refused 10.0.0.9:5000: too many (and 2 more in 10 s)"
    assert set(refusal) == {"time", "level", "logger", "event", "message", *refused}
    assert refusal["level"] == "WARNING"
    assert mutable["op"] == "['a', 'list']"
    assert mutable["message"] == "cluster: refused name ['a', 'list']"


def test_plain_format_shows_the_message_only(logger: logging.Logger) -> None:
    """The text formats read as before: the human message, no field dump."""
    fields = {"conn": 7, "name": "bob", "reason": "100% done", "online": 3}
    (line,) = _through_pipeline(logger, "plain", ("member.left", fields))
    assert line.endswith(f"INFO {logger.name} [c7] bob left: 100% done (3 online)")


def test_a_library_record_is_an_external_event() -> None:
    """A record not logged through log_event (a library's) still has an event."""
    record = logging.LogRecord("coredis", logging.WARNING, __file__, 1, "retry %d", (2,), None)
    obj = json.loads(JsonFormatter().format(record))
    assert obj["event"] == EXTERNAL
    assert obj["message"] == "retry 2"
    assert PlainFormatter().format(record).endswith("WARNING coredis retry 2")


def test_log_event_points_at_its_caller(caplog: pytest.LogCaptureFixture) -> None:
    """funcName and lineno are the call site's, not the helper's."""
    caplog.set_level(logging.INFO)
    log_event(logging.getLogger("triochat.test"), "server.stopped")
    (record,) = caplog.records
    assert record.funcName == "test_log_event_points_at_its_caller"
    assert record.event == "server.stopped"  # type: ignore[attr-defined]


def test_chat_state_records_carry_events(caplog: pytest.LogCaptureFixture) -> None:
    """A member who joins and leaves is logged as member.joined and member.left with
    the connection id, the name, the address and the reason as fields."""
    caplog.set_level(logging.INFO)
    desk = Desk()
    alice, _ = desk.plain("alice")
    desk.state.gone(alice.id, "closed")
    by_event = {getattr(r, "event", None): r for r in caplog.records}
    joined, left = by_event["member.joined"], by_event["member.left"]
    assert isinstance(joined.args, dict)
    assert isinstance(left.args, dict)
    assert joined.args["name"] == left.args["name"] == "alice"
    assert joined.args["conn"] == left.args["conn"] == alice.id
    assert joined.args["address"] == alice.peer
    assert left.args["reason"] == "closed"
    assert all(hasattr(r, "event") for r in caplog.records)


# -- the documentation ---------------------------------------------------------------------


def test_operations_doc_lists_every_event() -> None:
    """docs/operations.md has a row per event, with its level and its fields."""
    doc = (ROOT / "docs" / "operations.md").read_text()
    doc = doc.split("\n## Log events\n", 1)[1].split("\n## ", 1)[0]
    rows = {
        m.group(1): (m.group(2), m.group(3))
        for m in re.finditer(r"^\| `([a-z_.]+)` \| (\w+) \| ([^|]*) \|", doc, re.M)
    }
    for name, row in EVENTS.items():
        assert name in rows, f"docs/operations.md: no row for {name}"
        level, fields = rows[name]
        assert level == logging.getLevelName(row.level).lower(), name
        assert re.findall(r"`(\w+)`", fields) == list(row.fields), name
    assert set(rows) <= set(EVENTS), set(rows) - set(EVENTS)
