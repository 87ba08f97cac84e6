"""The Redis password never reaches the terminal or the log (one redaction helper).

Each message that names the ``--redis`` URL is checked: the start-up error (in this
process and from the real command), the join line, the outage line and the line
printed at start-up. The password-protected Redis is a real ``redis-server`` with
``--requirepass``.
"""

from __future__ import annotations

import logging
import signal
import subprocess
from pathlib import Path
from typing import Final

import pytest
import trio

from tests.procs import STOP_TIMEOUT, run_triochat, triochat_command
from tests.redisproc import PING_TIMEOUT, RedisServer, free_port, redis_server_command
from triochat.bus.redis_bus import RedisBus
from triochat.bus.url import redacted
from triochat.core import cluster

SECRET: Final = "s3cretPW"
WAIT: Final = 15.0  # real seconds for Redis to be reached, lost and noticed
POLL_S: Final = 0.05  # seconds between looks at another process's log file


def test_redacted_masks_every_form_of_password() -> None:
    """The user part's password and a ``password=`` parameter are masked; the rest stays."""
    assert redacted(f"redis://:{SECRET}@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert redacted(f"rediss://bob:{SECRET}@h:1/2") == "rediss://bob:***@h:1/2"
    assert redacted(f"redis://h/0?db=1&password={SECRET}") == "redis://h/0?db=1&password=***"
    assert redacted("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert redacted(f"redis://:{SECRET}@h:port/0") == "redis://:***@h:port/0"
    assert SECRET not in redacted(f"redis://:{SECRET}@[::1")


def secret_url(port: int) -> str:
    return f"redis://:{SECRET}@127.0.0.1:{port}/0"


def no_secret_logged(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        assert SECRET not in record.getMessage(), record.getMessage()


def test_redis_url_shown_by_the_bus_is_masked() -> None:
    """The bus's ``url`` (what the start-up line and its messages show) has no password."""
    bus = RedisBus(secret_url(free_port()))
    assert bus.url.startswith("redis://:***@127.0.0.1:")
    assert SECRET not in bus.url


def test_redis_start_up_error_of_the_command_masks_the_password(tmp_path: Path) -> None:
    """The real command's one-line start-up error shows no password."""
    url = secret_url(free_port())
    done = run_triochat("server", "--port", "0", "--db", ":memory:", "--redis", url)
    assert done.returncode != 0
    assert "cannot reach Redis at redis://:***@" in done.stderr
    assert SECRET not in done.stdout + done.stderr


class PasswordRedis(RedisServer):
    """A redis-server that asks for :data:`SECRET` (``--requirepass``)."""

    def argv(self, command: str) -> list[str]:
        return [*super().argv(command), "--requirepass", SECRET]

    async def ping(self) -> bool:
        with trio.move_on_after(PING_TIMEOUT):
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", self.port)
            except OSError:
                return False
            async with stream:
                try:
                    auth = f"*2\r\n$4\r\nAUTH\r\n${len(SECRET)}\r\n{SECRET}\r\n"
                    await stream.send_all(auth.encode() + b"*1\r\n$4\r\nPING\r\n")
                    answer = b""
                    while answer.count(b"\r\n") < 2:
                        data = await stream.receive_some(1024)
                        if not data:
                            return False
                        answer += data
                except trio.BrokenResourceError:
                    return False
                return answer == b"+OK\r\n+PONG\r\n"
        return False


async def test_redis_join_line_masks_the_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The INFO line at every start shows no password (the outage line: the next test)."""
    if redis_server_command() is None:
        pytest.skip("redis-server is not installed")
    caplog.set_level(logging.INFO, logger="triochat")
    redis = await PasswordRedis.start(tmp_path / "redis")
    try:
        bus = RedisBus(secret_url(redis.port), node="n1")

        async def deliver(items: list[cluster.ClusterIn]) -> None:
            pass

        async with trio.open_nursery() as nursery:
            with trio.fail_after(WAIT):
                await nursery.start(bus.run, deliver, {})
                await bus.leave()
            nursery.cancel_scope.cancel()
    finally:
        await redis.stop()
    messages = [record.getMessage() for record in caplog.records]
    assert any("joined through redis://:***@127.0.0.1:" in m for m in messages), messages
    no_secret_logged(caplog)


async def logged(path: Path, text: str) -> None:
    """Return once the log file at ``path`` holds ``text`` (polled: another process)."""
    for _ in range(int(WAIT / POLL_S)):
        if text in path.read_text():  # noqa: ASYNC240 (a small local file)
            return
        await trio.sleep(POLL_S)
    raise AssertionError(f"never logged {text!r}: {path.read_text()}")  # noqa: ASYNC240


async def test_redis_command_output_and_log_mask_the_password(tmp_path: Path) -> None:
    """The real command: its "cluster: node N through URL" line, its log's join line
    and, Redis killed, its outage line show the URL without the password."""
    if redis_server_command() is None:
        pytest.skip("redis-server is not installed")
    redis = await PasswordRedis.start(tmp_path / "redis")
    log_path = tmp_path / "server.log"
    args = ["server", "--port", "0", "--db", ":memory:", "--redis", secret_url(redis.port)]
    try:
        with open(log_path, "wb") as log:  # noqa: ASYNC230 (a local file)
            proc = await trio.lowlevel.open_process(
                triochat_command(*args),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        try:
            assert proc.stdout is not None
            printed = b""
            with trio.fail_after(WAIT):
                while b"cluster: node" not in printed or not printed.endswith(b"\n"):
                    data = await proc.stdout.receive_some()
                    assert data, f"the server ended: {log_path.read_text()}"
                    printed += data
                await logged(log_path, "joined through")
                redis.kill()
                await logged(log_path, "lost contact with Redis")
        finally:
            with trio.CancelScope(shield=True):
                proc.send_signal(signal.SIGTERM)
                with trio.move_on_after(STOP_TIMEOUT):
                    await proc.wait()
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
    finally:
        await redis.stop()
    text = printed.decode() + log_path.read_text()
    assert "through redis://:***@127.0.0.1:" in printed.decode()
    assert "joined through redis://:***@127.0.0.1:" in text
    assert "lost contact with Redis at redis://:***@127.0.0.1:" in text
    assert SECRET not in text
