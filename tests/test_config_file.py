"""``--config FILE``, ``--print-config``, the shipped unit and TOML, and exit status 2.

Every problem with the configuration is one line naming the key, and exit status 2, so
the shipped unit (``RestartPreventExitStatus=2``) never restart-loops on it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.procs import STOP_TIMEOUT, run_triochat, triochat_command
from triochat.cli import server as server_command
from triochat.cli.configfile import (
    ConfigError,
    config_toml,
    read_config_file,
    settings_from_toml,
)
from triochat.cli.entry import build_parser
from triochat.cli.flags import given_values, server_config
from triochat.cli.settings import SERVER_SETTINGS
from triochat.config import ServerConfig

CONTRIB = Path(__file__).resolve().parent.parent / "contrib"


def config_for(*flags: str) -> ServerConfig:
    return server_config(given_values(build_parser().parse_args(["server", *flags])))


def test_config_file_contrib_toml_loads() -> None:
    """The shipped contrib/triochat.toml is read without error, with the values it shows."""
    config = server_config(read_config_file(str(CONTRIB / "triochat.toml")))
    assert (config.host, config.port, config.web_port, config.metrics_port) == (
        "0.0.0.0",
        30000,
        30080,
        30090,
    )
    assert config.db == "/var/lib/triochat/triochat.db"
    assert config.log_format == "plain"
    assert [str(network) for network in config.trusted] == ["127.0.0.0/8", "::1/128"]


def test_config_file_contrib_unit_is_hardened_and_verifies(tmp_path: Path) -> None:
    """The shipped unit has the hardening the docs promise and passes systemd-analyze."""
    text = (CONTRIB / "triochat.service").read_text()
    for line in (
        "DynamicUser=yes",
        "StateDirectory=triochat",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RestartPreventExitStatus=2",
        "ExecStart=/usr/local/bin/triochat server --config /etc/triochat/triochat.toml",
    ):
        assert f"\n{line}\n" in text, line
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    triochat = shutil.which("triochat") or str(Path(sys.executable).parent / "triochat")
    unit = tmp_path / "triochat.service"
    unit.write_text(text.replace("/usr/local/bin/triochat", triochat))
    verified = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=30, check=False
    )
    assert verified.returncode == 0, verified.stderr
    assert verified.stderr == ""  # systemd warns (exit 0) about keys it cannot parse
    broken = tmp_path / "broken.service"  # and it would notice a mistake
    broken.write_text(unit.read_text().replace("Restart=on-failure", "Restart=sometimes"))
    refused = subprocess.run(
        [analyze, "verify", str(broken)], capture_output=True, text=True, timeout=30, check=False
    )
    assert "sometimes" in refused.stderr


def test_config_file_print_config_round_trips_every_setting() -> None:
    """--print-config's TOML, read back through --config, is the same configuration."""
    config = config_for(
        "--host", "::", "--port", "4000", "--web-port", "off", "--metrics-port", "9100",
        "--web-origin", "https://a.example,https://b.example", "--web-cleartext",
        "--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-port", "4001", "--no-plain",
        "--db", "/srv/chat.db", "--durability", "power", "--history", "5", "--retain-days", "1.5",
        "--retain-messages", "100", "--no-search-index", "--resume-limit", "50", "--max-rooms", "7",
        "--max-rooms-per-member", "3", "--max-line-bytes", "512", "--rate-limit", "2.5",
        "--burst", "4", "--send-queue", "64", "--send-queue-bytes", "65536",
        "--max-clients", "10", "--max-per-address", "0", "--trusted", "none",
        "--coalesce-above", "9", "--op", "alice", "--op", "bob",
        "--password-file", "/etc/pw", "--log-level", "debug", "--log-format", "json",
        "--redis", "redis://127.0.0.1:6379/2", "--web-host", "chat.example,chat2.example",
        "--max-registrations-per-hour", "7", "--min-password-length", "6",
        "--irc-port", "6667", "--irc-tls-port", "6697", "--irc-server-name", "irc.example.org",
    )  # fmt: skip
    changed = {
        s.dest
        for s in SERVER_SETTINGS
        if getattr(config, s.dest) != getattr(ServerConfig(), s.dest)
    }
    assert changed == {s.dest for s in SERVER_SETTINGS}  # every setting is exercised
    text = config_toml(config)
    assert server_config(settings_from_toml(tomllib.loads(text))) == config
    defaults = ServerConfig(db="/x.db")
    assert server_config(settings_from_toml(tomllib.loads(config_toml(defaults)))) == defaults


def test_config_file_print_config_redacts_the_redis_password() -> None:
    """A printed configuration can be shared: the Redis password is ***."""
    text = config_toml(config_for("--redis", "redis://:hunter2@10.0.0.5:6379/0"))
    assert "hunter2" not in text
    assert 'redis = "redis://:***@10.0.0.5:6379/0"' in text


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("max_clientz = 5", "unknown key 'max_clientz' (did you mean 'max-clients'?)"),
        ("port = true", "port: expected a number or a string, not bool True"),
        ("port = 70000", "port: 70000 is out of range (must be from 0 to 65535)"),
        ("no-plain = 1", "no-plain: expected true or false, not int 1"),
        ('op = "alice"', "op: expected an array of strings, not str 'alice'"),
        ('log-level = "loud"', "log-level: 'loud' is not one of debug, info, warning, error"),
        ('trusted = ["10.0.0.0/8", "nope"]', "trusted: 'nope' is not an address"),
        ("history = -1", "history: -1 is out of range (must be at least 0)"),
    ],
)
def test_config_file_bad_keys_and_values_name_the_key(toml: str, message: str) -> None:
    """Unknown keys, wrong types and bad values: one line that names the key."""
    with pytest.raises(ConfigError) as caught:
        settings_from_toml(tomllib.loads(toml))
    assert str(caught.value).startswith(message), str(caught.value)
    assert "\n" not in str(caught.value)


def test_config_file_flags_override_the_file(tmp_path: Path) -> None:
    """A flag beats the file's key; the file's other keys stay (through the real command)."""
    path = tmp_path / "chat.toml"
    path.write_text('port = 4000\nmax-clients = 7\nop = ["alice"]\n')
    done = run_triochat("server", "--config", str(path), "--port", "5000", "--print-config")
    assert done.returncode == 0, done.stderr
    printed = tomllib.loads(done.stdout)
    assert (printed["port"], printed["max-clients"], printed["op"]) == (5000, 7, ["alice"])


@pytest.mark.parametrize(
    ("content", "args", "expected"),
    [
        (
            "max-clients = 0\n",
            (),
            r"^triochat: error: \S+chat.toml: max-clients: 0 is out of range",
        ),
        ("port = [\n", (), r"^triochat: error: \S+chat.toml: not valid TOML: "),
        (None, (), r"^triochat: error: cannot read the config file \S+chat.toml: "),
        ("", ("--password-file", "missing"), r"^triochat: error: cannot read the password file"),
    ],
)
def test_config_file_problems_exit_2_with_one_line(
    tmp_path: Path, content: str | None, args: tuple[str, ...], expected: str
) -> None:
    """Every configuration problem, the password file's too, is one line and exit 2."""
    path = tmp_path / "chat.toml"
    if content is not None:
        path.write_text(content)
    done = run_triochat("server", "--config", str(path), "--port", "0", "--db", ":memory:", *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert re.match(expected, done.stderr), done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stdout == ""


def test_config_file_start_up_lines_are_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """The start-up lines go out in one write, so no log record can land inside one."""
    writes: list[bytes] = []

    def write(fd: int, data: bytes) -> int:
        writes.append(bytes(data))
        return len(data)

    monkeypatch.setattr(os, "write", write)
    server_command._write_lines(["listening on 127.0.0.1:42502", "history: x", "web: y"])
    assert writes == [b"listening on 127.0.0.1:42502\nhistory: x\nweb: y\n"]


def test_start_up_lines_come_before_the_log_records_of_the_start(tmp_path: Path) -> None:
    """Stdout and stderr into one pipe: the start-up lines first, then the log records
    written while starting (rooms loaded, accounts), which are held until then."""
    command = [*triochat_command("server", "--port", "0", "--web-port", "0")]
    command += ["--db", str(tmp_path / "chat.db")]
    proc = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().decode() for _ in range(5)]
    finally:
        proc.terminate()
        proc.communicate(timeout=STOP_TIMEOUT)
    assert lines[0].startswith("listening on "), lines
    assert lines[1].startswith("history: "), lines
    assert lines[2].startswith("web: "), lines
    assert "rooms loaded" in lines[3], lines  # a log record, held until after the lines
