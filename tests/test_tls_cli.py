"""The ``triochat`` command with TLS: server flags, start-up errors, SIGHUP, the client.

Real processes on loopback, certificates from ``trustme`` (see test_tls.py for the
in-memory tests of the same machinery). Every wait is bounded; the server is ended by
its PID (the ``start_process`` fixture).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
import trio

from tests.conftest import StartProcess
from tests.procs import IO_TIMEOUT, ServerProcess, run_triochat, triochat_command
from tests.test_tls import HINT, TlsFiles, make_tls_files
from triochat.client.tls import TlsFailure, open_stream
from triochat.core.framing import LineBuffer
from triochat.testing import Peer


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    return make_tls_files(tmp_path / "tls")


def tls_args(tls: TlsFiles) -> list[str]:
    return ["--db", ":memory:", "--tls-cert", str(tls.cert_file), "--tls-key", str(tls.key_file)]


async def tls_peer(server: ServerProcess, tls: TlsFiles) -> Peer:
    """A TLS connection to the server's TLS port, verified against ``tls``'s CA."""
    assert server.tls_port is not None
    stream = await open_stream("127.0.0.1", server.tls_port, tls.client_context())
    peer = Peer(stream, remote=True)
    server.peers.append(peer)
    return peer


async def run_client(*args: str, stdin: str = "") -> subprocess.CompletedProcess[bytes]:
    """``triochat client ARGS`` to completion, with ``stdin`` piped in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIOCHAT_")}
    with trio.fail_after(20):
        return await trio.run_process(
            triochat_command("client", *args),
            stdin=stdin.encode(),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=env,
        )


class LogReader:
    """The server's log read from its stderr pipe, line by line, waiting for a line."""

    def __init__(self, server: ServerProcess) -> None:
        assert server.proc.stderr is not None
        self._stderr = server.proc.stderr
        self._buffer = LineBuffer(1 << 16)

    async def wait_for(self, text: str) -> str:
        with trio.fail_after(IO_TIMEOUT):
            while True:
                line = self._buffer.next_line()
                if isinstance(line, bytes):
                    if text in line.decode():
                        return line.decode()
                    continue
                data = await self._stderr.receive_some()
                assert data, f"the server's log ended before {text!r}"
                self._buffer.feed(data)


async def test_tls_cli_round_trip_both_modes(start_process: StartProcess, tls: TlsFiles) -> None:
    """s_client-style plain mode and `triochat client --tls --ca` meet in one room over TLS."""
    server = await start_process(*tls_args(tls), "--tls-port", "0")
    assert server.stdout[1] == f"listening on 127.0.0.1:{server.tls_port} (TLS)"
    alice = await tls_peer(server, tls)
    await alice.send("/nick alice")
    assert (await alice.line()).startswith("*** welcome, alice! 1 online")
    carol = await server.join("carol")  # the cleartext port still works
    await alice.expect("*** carol joined (2 online)")
    port = str(server.tls_port)
    done = await run_client(
        "--tls", "--ca", str(tls.ca_file), "--port", port, "--name", "bob", stdin="hi, over TLS\n"
    )
    assert done.returncode == 0, done.stderr
    assert b"<bob> hi, over TLS" in done.stdout
    await alice.expect("*** bob joined (3 online)", "<bob> hi, over TLS", "*** bob left (2 online)")
    await carol.expect("*** bob joined (3 online)", "<bob> hi, over TLS", "*** bob left (2 online)")


async def test_tls_cli_client_refuses_an_untrusted_server(
    start_process: StartProcess, tls: TlsFiles, tmp_path: Path
) -> None:
    """A wrong --ca, or none for a private CA, is one line and exit 1; nothing goes in cleartext."""
    server = await start_process(*tls_args(tls), "--tls-port", "0")
    where = f"127.0.0.1:{server.tls_port}"
    stranger = make_tls_files(tmp_path / "stranger")
    for ca in (["--ca", str(stranger.ca_file)], []):
        done = await run_client(
            "--tls", *ca, "--port", str(server.tls_port), "--name", "bob", stdin="secret\n"
        )
        assert done.returncode == 1
        assert done.stderr.decode() == (
            f"triochat: cannot connect securely to {where}: the server's certificate was not "
            "accepted: unable to get local issuer certificate; for a private or self-signed "
            "certificate, give its CA with --ca FILE\n"
        )
    watcher = await tls_peer(server, tls)
    await watcher.send("/who")
    assert await watcher.line() == "*** welcome, guest-1! 1 online. Type /help for commands."
    assert await watcher.line() == "*** online (1): guest-1"  # bob never joined


async def test_tls_cli_client_tls_to_the_plain_port(
    start_process: StartProcess, tls: TlsFiles
) -> None:
    """--tls against the cleartext port fails (exit 1), naming the usual TLS port."""
    server = await start_process(*tls_args(tls), "--tls-port", "0")
    done = await run_client("--tls", "--ca", str(tls.ca_file), "--port", str(server.port))
    assert done.returncode == 1
    message = done.stderr.decode()
    assert message.startswith(f"triochat: cannot connect securely to 127.0.0.1:{server.port}: ")
    assert "30001" in message
    assert message.count("\n") == 1


async def test_tls_cli_insecure_is_loud(start_process: StartProcess, tls: TlsFiles) -> None:
    """--insecure connects without checking, and says so on stderr every time."""
    server = await start_process(*tls_args(tls), "--tls-port", "0")
    done = await run_client("--insecure", "--port", str(server.tls_port), stdin="hi\n")
    assert done.returncode == 0, done.stderr
    assert b"WARNING: --insecure: the server's certificate is NOT checked" in done.stderr
    both = await run_client("--insecure", "--ca", str(tls.ca_file), "--port", "1")
    assert both.returncode == 2
    assert (
        both.stderr == b"triochat: error: --insecure and --ca contradict each other: choose one\n"
    )


def test_tls_cli_client_help_names_the_flags() -> None:
    """--tls, --ca and --insecure are documented in the client's --help."""
    done = run_triochat("client", "--help")
    for flag in ("--tls", "--ca FILE", "--insecure"):
        assert flag in done.stdout


async def test_tls_cli_cleartext_on_the_tls_port(
    start_process: StartProcess, tls: TlsFiles
) -> None:
    """nc on a TLS-only server's port is told what the port wants and closed."""
    server = await start_process(*tls_args(tls), "--tls-port", "0", "--no-plain", log_pipe=True)
    assert server.stdout[0] == f"listening on 127.0.0.1:{server.tls_port} (TLS)"
    assert len(server.stdout) == 2
    log = LogReader(server)
    nc = await server.connect()  # --no-plain: server.port is the TLS port
    await nc.send("/nick mallory")
    assert await nc.closed() == [HINT]
    await log.wait_for("not TLS (a client speaking cleartext to the TLS port?); closed")


@pytest.mark.parametrize("problem", ["missing", "mismatch", "one flag"])
def test_tls_cli_bad_certificate_is_one_line_and_exit_2(
    tls: TlsFiles, tmp_path: Path, problem: str
) -> None:
    """An unusable certificate stops the server at start-up: one line, status 2, no traceback."""
    cert, key = str(tls.cert_file), str(tls.key_file)
    if problem == "one flag":
        done = run_triochat("server", "--port", "0", "--db", ":memory:", "--tls-cert", cert)
        assert done.returncode == 2
        assert done.stderr.endswith(
            "error: --tls-cert and --tls-key go together: give both, or neither\n"
        )
        return
    if problem == "missing":
        cert = str(tmp_path / "missing.pem")
        expected = f"triochat: error: cannot read the TLS certificate {cert}: no such file\n"
    else:
        key = str(make_tls_files(tmp_path / "other").key_file)
        expected = f"triochat: error: the TLS key {key} does not belong to the certificate {cert}\n"
    ports = ("--port", "0", "--tls-port", "0")  # if it did start, on no one else's port
    done = run_triochat("server", *ports, "--db", ":memory:", "--tls-cert", cert, "--tls-key", key)
    assert done.returncode == 2
    assert done.stderr == expected
    assert done.stdout == ""


async def test_tls_cli_sighup_reloads_the_certificate(
    start_process: StartProcess, tls: TlsFiles, tmp_path: Path
) -> None:
    """SIGHUP: new connections get a renewed certificate, old ones go on; a bad one is kept out."""
    server = await start_process(*tls_args(tls), "--tls-port", "0", log_pipe=True)
    log = LogReader(server)
    alice = await tls_peer(server, tls)
    await alice.send("/nick alice")
    assert (await alice.line()).startswith("*** welcome, alice!")
    renewed = make_tls_files(tmp_path / "renewed")
    tls.cert_file.write_bytes(renewed.cert_file.read_bytes())
    tls.key_file.write_bytes(renewed.key_file.read_bytes())
    server.signal(signal.SIGHUP)
    await log.wait_for("TLS: certificate reloaded")
    bob = await tls_peer(server, renewed)
    await bob.send("/nick bob")
    assert (await bob.line()).startswith("*** welcome, bob! 2 online")
    with pytest.raises(TlsFailure):
        await open_stream("127.0.0.1", server.tls_port or 0, tls.client_context())
    await alice.send("still here")  # the connection made before the reload
    await bob.expect("<alice> still here")
    tls.key_file.write_text("half-written\n")
    server.signal(signal.SIGHUP)
    await log.wait_for("TLS: reload failed, still using the previous certificate")
    carol = await tls_peer(server, renewed)
    await carol.send("/nick carol")
    assert (await carol.line()).startswith("*** welcome, carol! 3 online")
    assert server.running
