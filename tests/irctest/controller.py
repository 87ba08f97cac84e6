"""irctest's controller for triochat: one ``triochat server`` per test, on loopback.

irctest (progval/irctest, the IRC conformance suite) loads this module with
``--controller tests.irctest.controller`` when the repository is on ``PYTHONPATH``
(``nox -s irctest`` does both). For each test it starts the ``triochat`` console script
of the current environment with ``--irc-port`` on the port irctest chose, the native
chat port on another free port, no web page, a fresh database in a temporary folder,
and no flood control (the suite sends its lines as fast as it can).

Accounts are made the way a person makes them: on the native port, ``/nick NAME`` then
``/register PASSWORD`` (the suite's passwords are as short as ``bar``, hence
``--min-password-length 3``). The services are built in, so there are none to wait for.
"""

from __future__ import annotations

import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any, ClassVar, Final

from irctest.basecontrollers import BaseServerController, DirectoryBasedController
from irctest.runner import NotImplementedByController
from irctest.specifications import Capabilities

__all__ = ["TriochatController", "get_irctest_controller_class"]

SERVER_NAME: Final = "My.Little.Server"  # the name the suite's own controllers use
MIN_PASSWORD_LENGTH: Final = 3  # the suite registers accounts with "sesame" and "bar"
REGISTER_TIMEOUT: Final = 15.0  # seconds for an account to be made (a hash, a commit)
LOOPBACK: Final = "127.0.0.1"


def triochat_command() -> list[str]:
    """The ``triochat`` console script of this environment (else ``python -m triochat``)."""
    script = shutil.which("triochat", path=str(Path(sys.executable).parent))
    return [script] if script is not None else [sys.executable, "-m", "triochat"]


class TriochatController(BaseServerController, DirectoryBasedController):  # type: ignore[misc]
    """Starts ``triochat server`` for each test; registers accounts on its native port."""

    software_name = "triochat"
    supported_sasl_mechanisms: ClassVar[set[str]] = {"PLAIN"}
    supports_sts = False
    capabilities = frozenset(
        {
            Capabilities.SERVER_TIME,
            Capabilities.ECHO_MESSAGE,
            Capabilities.MESSAGE_TAGS,
            Capabilities.BATCH,
        }
    )
    nickserv = "NickServ"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.native_port = 0

    def run(
        self,
        hostname: str,
        port: int,
        *,
        password: str | None,
        ssl: bool,
        run_services: bool,
        faketime: str | None,
        websocket_hostname: str | None,
        websocket_port: int | None,
    ) -> None:
        """Start the server: IRC on ``port`` (over TLS if ``ssl``), chat on a free port."""
        if websocket_hostname is not None or websocket_port is not None:
            raise NotImplementedByController("Websocket")
        self.hostname, self.port = hostname, port
        self.create_config()
        assert self.directory is not None
        _, self.native_port = self.get_hostname_and_port()
        args = [
            "server",
            "--host",
            LOOPBACK,
            "--port",
            str(self.native_port),
            "--web-port",
            "off",
            "--db",
            str(self.directory / "triochat.db"),
            "--irc-server-name",
            SERVER_NAME,
            "--min-password-length",
            str(MIN_PASSWORD_LENGTH),
            "--rate-limit",
            "0",
            "--log-format",
            "plain",
        ]
        if ssl:
            self.gen_ssl()
            _, tls_port = self.get_hostname_and_port()
            _, irc_port = self.get_hostname_and_port()
            args += ["--tls-cert", str(self.pem_path), "--tls-key", str(self.key_path)]
            args += ["--tls-port", str(tls_port), "--irc-tls-port", str(port)]
            args += ["--irc-port", str(irc_port)]
        else:
            args += ["--irc-port", str(port)]
        if password is not None:
            secret = self.directory / "server.pass"
            secret.write_text(password + "\n")
            args += ["--password-file", str(secret)]
        self.proc = self.execute([*triochat_command(), *args], proc_name="triochat")

    def wait_for_services(self) -> None:
        """Accounts are part of the server: nothing to wait for but its port."""
        self.wait_for_port()

    def registerUser(self, case: Any, username: str, password: str | None = None) -> None:
        """Register ``username`` as a person would, on the native port."""
        assert password is not None
        self.wait_for_port()
        deadline = time.monotonic() + REGISTER_TIMEOUT
        with socket.create_connection(
            (LOOPBACK, self.native_port), timeout=REGISTER_TIMEOUT
        ) as sock:
            reader = sock.makefile("r", encoding="utf-8", newline="\n")
            secret = self._server_password()
            if secret is not None:
                sock.sendall(f"/pass {secret}\n".encode())
            sock.sendall(f"/nick {username}\n/register {password}\n".encode())
            done = f"*** the name {username} is registered to you"
            while time.monotonic() < deadline:
                line = reader.readline().rstrip("\n")
                if not line:
                    break
                if line.startswith(done):
                    sock.sendall(b"/quit\n")
                    return
                if line.startswith("!"):
                    raise AssertionError(f"cannot register {username}: {line}")
        raise AssertionError(f"cannot register {username}: no answer")

    def _server_password(self) -> str | None:
        """The ``--password-file`` this test's server was given, if any."""
        assert self.directory is not None
        secret = self.directory / "server.pass"
        return secret.read_text().strip() if secret.exists() else None


def get_irctest_controller_class() -> type[TriochatController]:
    """The entry point irctest's ``--controller`` option looks for."""
    return TriochatController
