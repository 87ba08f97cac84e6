"""``triochat server``'s web listener, end to end: flags, start-up lines, errors, shutdown.

Real subprocesses on loopback (:class:`tests.procs.BlockingServer`); a browser's part is
played by a blocking socket speaking HTTP, or wsproto's client side for the WebSocket.
"""

from __future__ import annotations

import json
import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Message, Request, TextMessage

from tests.procs import STARTUP_TIMEOUT, BlockingServer, run_triochat
from tests.test_tls import make_tls_files
from triochat.web.http import CSP

IO_TIMEOUT: Final = 10.0  # seconds for any one read from the server
SHUTDOWN_LIMIT: Final = 2.0  # seconds from SIGTERM to exit, browsers connected or not


@pytest.fixture
def server(tmp_path: Path) -> Iterator[BlockingServer]:
    """``triochat server --port 0 --db :memory:`` (so its web port is a free one too)."""
    running = BlockingServer.start("--db", ":memory:", log_path=str(tmp_path / "server.log"))
    try:
        yield running
    finally:
        running.stop()


class BrowserSocket:
    """The chat WebSocket as a browser opens it, over a blocking socket (wsproto client)."""

    opened: list[socket.socket] = []  # noqa: RUF012 - closed by the autouse fixture below

    def __init__(self, port: int, name: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        BrowserSocket.opened.append(self.sock)
        self.ws = WSConnection(ConnectionType.CLIENT)
        host = f"127.0.0.1:{port}"
        origin = [(b"origin", f"http://{host}".encode())]
        self.sock.sendall(self.ws.send(Request(host=host, target="/ws", extra_headers=origin)))
        self.events = self._events()
        assert isinstance(next(self.events), AcceptConnection)
        self.sock.sendall(self.ws.send(Message(data=json.dumps({"type": "hello", "name": name}))))
        assert self.message()["type"] == "welcome"

    def _events(self) -> Iterator[object]:
        while True:
            data = self.sock.recv(65536)
            self.ws.receive_data(data or None)
            yield from self.ws.events()
            if not data:
                return

    def message(self) -> dict[str, object]:
        """The next text message, as JSON."""
        for event in self.events:
            if isinstance(event, TextMessage):
                obj = json.loads(event.data)
                assert isinstance(obj, dict)
                return obj
            if isinstance(event, CloseConnection):
                raise AssertionError(f"closed with {event.code}")
        raise AssertionError("connection ended")

    def close_code(self) -> int | None:
        """Read to the end; the code of the server's close frame (None if none came)."""
        for event in self.events:
            if isinstance(event, CloseConnection):
                return int(event.code)
        return None


@pytest.fixture(autouse=True)
def _close_browser_sockets() -> Iterator[None]:
    yield
    while BrowserSocket.opened:
        BrowserSocket.opened.pop().close()


def test_web_cli_prints_url_and_serves_the_page(server: BlockingServer) -> None:
    """With --port 0 the web port is a free one too, printed as a URL that serves the page."""
    assert server.stdout[0].startswith("listening on 127.0.0.1:")
    assert server.stdout[2] == f"web: http://127.0.0.1:{server.web_port}/"
    assert server.web_port not in (0, 30080, server.port)
    with urllib.request.urlopen(server.web_url, timeout=IO_TIMEOUT) as response:
        assert response.status == 200
        assert response.headers["Content-Security-Policy"] == CSP
        assert b'src="/static/app.js"' in response.read()


def test_web_cli_browser_and_nc_in_one_room(server: BlockingServer) -> None:
    """A WebSocket member of the real server hears a TCP member, and the other way round."""
    browser = BrowserSocket(server.web_port, "alice")
    with socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT) as nc:
        nc.sendall(b"/nick carol\nhello alice\n")
        while (event := browser.message())["type"] != "say":
            pass
        assert (event["from"], event["text"]) == ("carol", "hello alice")
        browser.sock.sendall(browser.ws.send(Message(data='{"type": "say", "text": "hi"}')))
        received = b""
        while b"<alice> hi\n" not in received:
            chunk = nc.recv(65536)
            assert chunk, received
            received += chunk


def test_web_cli_sigterm_tells_browsers_and_exits(server: BlockingServer) -> None:
    """SIGTERM: a browser member gets the shutdown event and a close frame; exit 0 in 2 s."""
    browser = BrowserSocket(server.web_port, "alice")
    start = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert browser.message()["type"] == "shutdown"
    assert browser.close_code() == 1000
    assert server.proc.wait(STARTUP_TIMEOUT) == 0
    assert time.monotonic() - start < SHUTDOWN_LIMIT


def test_web_cli_web_port_off(tmp_path: Path) -> None:
    """--web-port off serves no page and prints no web line."""
    running = BlockingServer.start(
        "--db", ":memory:", "--web-port", "off", log_path=str(tmp_path / "server.log")
    )
    try:
        assert len(running.stdout) == 2
        assert running.web_url == ""
    finally:
        assert running.stop() == 0


def test_web_cli_web_port_follows_tls(tmp_path: Path) -> None:
    """With --tls-cert the page is HTTPS (the URL says so); plain HTTP there gets a 400."""
    tls = make_tls_files(tmp_path / "tls")
    running = BlockingServer.start(
        "--db", ":memory:", "--tls-port", "0",
        "--tls-cert", str(tls.cert_file), "--tls-key", str(tls.key_file),
        log_path=str(tmp_path / "server.log"),
    )  # fmt: skip
    try:
        assert running.stdout[-1] == f"web: https://127.0.0.1:{running.web_port}/"
        context = tls.client_context()
        with urllib.request.urlopen(running.web_url, timeout=IO_TIMEOUT, context=context) as page:
            assert page.status == 200
            assert b'src="/static/app.js"' in page.read()
        cleartext = f"http://127.0.0.1:{running.web_port}/"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(cleartext, timeout=IO_TIMEOUT)
        assert refused.value.code == 400
        assert b"https://" in refused.value.read()
        refused.value.close()
        assert "CLEARTEXT" not in running.log()
    finally:
        assert running.stop() == 0


def test_web_cli_web_port_in_use_is_one_line_error(tmp_path: Path) -> None:
    """A taken web port gives one line naming --web-port, exit 1, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_triochat("server", "--port", "0", "--db", ":memory:", "--web-port", str(port))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}: the port is already in use" in lines[0]
    assert "--web-port (or off)" in lines[0]
    assert result.stdout == ""


def test_web_cli_bad_flags_are_usage_errors() -> None:
    """A bad --web-origin or --web-port is a usage error (exit 2) that names the flag."""
    result = run_triochat("server", "--web-origin", "chat.example.org")
    assert result.returncode == 2
    assert "--web-origin" in result.stderr
    assert "is not an origin" in result.stderr
    result = run_triochat("server", "--web-port", "http")
    assert result.returncode == 2
    assert "--web-port" in result.stderr


def test_web_cli_help_names_the_default_web_port() -> None:
    """--help says where the page is by default: 30080 (a free port with --port 0)."""
    result = run_triochat("server", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "--web-port PORT|off" in text
    assert "default: 30080, or 0 with --port 0" in text


def test_web_cli_foreign_page_gets_403(server: BlockingServer) -> None:
    """Over real TCP, an upgrade from another site's page is refused with 403."""
    request = urllib.request.Request(
        f"{server.web_url}ws",
        headers={
            "Origin": "https://evil.example",
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=IO_TIMEOUT)
    assert refused.value.code == 403
    refused.value.close()
