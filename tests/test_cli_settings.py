"""The settings table (triochat/cli/settings.py) and the listen plan, in process.

One row per server setting builds both the ``triochat server`` flags and its
``ServerConfig``; these tests pin that the two cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from pathlib import Path

import pytest

from triochat.cli import build_parser, main
from triochat.cli.flags import given_values, server_config
from triochat.cli.listen import DOORS, Door, listen_plan
from triochat.cli.settings import NOT_SETTINGS, SERVER_SETTINGS, Setting
from triochat.config import DEFAULT_TLS_PORT, DEFAULT_WEB_PORT, ServerConfig

TLS_FILES = ("--tls-cert", "cert.pem", "--tls-key", "key.pem")

# Per setting key: flags that set it to something other than its default, and the value
# the config field must then hold.
SAMPLES: dict[str, tuple[tuple[str, ...], object]] = {
    "host": (("--host", "::"), "::"),
    "port": (("--port", "4000"), 4000),
    "web-port": (("--web-port", "off"), None),
    "web-origin": (("--web-origin", "https://Chat.example.org/"), ("https://chat.example.org",)),
    "web-host": (("--web-host", "Chat.Example.org,10.0.0.1"), ("chat.example.org", "10.0.0.1")),
    "web-cleartext": (("--web-cleartext",), True),
    "tls-cert": (TLS_FILES, "cert.pem"),
    "tls-key": (TLS_FILES, "key.pem"),
    "tls-port": (("--tls-port", "4001", *TLS_FILES), 4001),
    "no-plain": (("--no-plain", *TLS_FILES), True),
    "metrics-port": (("--metrics-port", "9100"), 9100),
    "irc-port": (("--irc-port", "6667"), 6667),
    "irc-tls-port": (("--irc-tls-port", "6697", *TLS_FILES), 6697),
    "irc-server-name": (("--irc-server-name", "irc.example.org"), "irc.example.org"),
    "db": (("--db", ":memory:"), ":memory:"),
    "durability": (("--durability", "power"), "power"),
    "history": (("--history", "0"), 0),
    "retain-days": (("--retain-days", "1.5"), 1.5),
    "retain-messages": (("--retain-messages", "7"), 7),
    "no-search-index": (("--no-search-index",), True),
    "resume-limit": (("--resume-limit", "9"), 9),
    "max-rooms": (("--max-rooms", "3"), 3),
    "max-rooms-per-member": (("--max-rooms-per-member", "2"), 2),
    "max-line-bytes": (("--max-line-bytes", "512"), 512),
    "rate-limit": (("--rate-limit", "0.5"), 0.5),
    "burst": (("--burst", "3"), 3),
    "send-queue": (("--send-queue", "8"), 8),
    "send-queue-bytes": (("--send-queue-bytes", "4096"), 4096),
    "max-clients": (("--max-clients", "5"), 5),
    "max-per-address": (("--max-per-address", "0"), 0),
    "trusted": (("--trusted", "10.0.0.0/8"), (ipaddress.ip_network("10.0.0.0/8"),)),
    "coalesce-above": (("--coalesce-above", "7"), 7),
    "max-registrations-per-hour": (("--max-registrations-per-hour", "0"), 0),
    "op": (("--op", "alice", "--op", "bob"), ("alice", "bob")),
    "password-file": (("--password-file", "chat.pass"), "chat.pass"),
    "min-password-length": (("--min-password-length", "6"), 6),
    "log-level": (("--log-level", "debug"), "debug"),
    "log-format": (("--log-format", "json"), "json"),
    "redis": (("--redis", "redis://127.0.0.1:6379/0"), "redis://127.0.0.1:6379/0"),
}


def config_for(*flags: str) -> ServerConfig:
    """The ServerConfig ``triochat server FLAGS`` would run with."""
    args = build_parser().parse_args(["server", *flags])
    return server_config(given_values(args))


def test_settings_every_config_field_has_exactly_one_flag() -> None:
    """Each ServerConfig field is one row (or listed as no flag); no key or field twice."""
    fields = [field.name for field in dataclasses.fields(ServerConfig)]
    dests = [setting.dest for setting in SERVER_SETTINGS]
    keys = [setting.key for setting in SERVER_SETTINGS]
    assert len(set(dests)) == len(dests)
    assert len(set(keys)) == len(keys)
    assert not NOT_SETTINGS & set(dests)
    assert sorted(dests + sorted(NOT_SETTINGS)) == sorted(fields)
    assert all(re.fullmatch(r"[a-z]+(-[a-z]+)*", key) for key in keys)  # flag == config key


def test_settings_no_flags_give_the_config_defaults() -> None:
    """`triochat server` alone runs with ServerConfig() exactly: defaults are written once."""
    assert given_values(build_parser().parse_args(["server"])) == {}
    assert config_for() == ServerConfig()


@pytest.mark.parametrize("setting", SERVER_SETTINGS, ids=lambda setting: setting.key)
def test_settings_flag_value_reaches_its_field(setting: Setting) -> None:
    """Each flag's value lands in its own field of the config (and changes it)."""
    assert set(SAMPLES) == {row.key for row in SERVER_SETTINGS}  # a new row needs a sample
    flags, expected = SAMPLES[setting.key]
    config = config_for(*flags)
    assert getattr(config, setting.dest) == expected
    assert getattr(ServerConfig(), setting.dest) != expected


def test_settings_help_explains_every_flag_with_its_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`triochat server --help` has each row's flag, help text and default."""
    with pytest.raises(SystemExit) as stopped:
        main(["server", "--help"])
    assert stopped.value.code == 0
    text = "".join(capsys.readouterr().out.split())  # (argparse wraps lines, even at hyphens)
    defaults = ServerConfig()
    for setting in SERVER_SETTINGS:
        assert setting.flag in text
        assert "".join(setting.help.split()) in text, setting.key
        assert f"(default:{setting.shown_default(defaults)})".replace(" ", "") in text
    assert "(default:none)" in text  # --tls-cert: None is shown as a word
    assert "(default:None)" not in text  # (argparse's own rendering said None, [] and ())
    assert "(default:())" not in text


def test_settings_readme_lists_every_flag() -> None:
    """The README's table of server flags has a row for each setting (docs cannot lag)."""
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `(--[a-z-]+)[` ]", readme, flags=re.MULTILINE))
    rows |= set(re.findall(r"^\| `--[a-z-]+`, `(--[a-z-]+)[` ]", readme, flags=re.MULTILINE))
    missing = [s.flag for s in SERVER_SETTINGS if s.flag not in rows]
    assert not missing


def test_settings_web_port_follows_port_zero() -> None:
    """--port 0 moves the page to a free port too, unless --web-port says otherwise."""
    assert config_for("--port", "0").web_port == 0
    assert config_for("--port", "0", "--web-port", "5000").web_port == 5000
    assert config_for("--port", "0", "--web-port", "off").web_port is None
    assert config_for("--port", "4000").web_port == DEFAULT_WEB_PORT


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--tls-cert", "cert.pem"), "--tls-cert and --tls-key go together: give both, or neither"),
        (("--no-plain",), "--no-plain needs --tls-cert and --tls-key (there would be no listener)"),
        (("--port", "4000", "--tls-port", "4000", *TLS_FILES), "--tls-port and --port are both"),
    ],
)
def test_settings_clashing_flags_are_one_line_usage_errors(
    flags: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Settings that do not go together: usage, one error line, exit 2, nothing started."""
    with pytest.raises(SystemExit) as stopped:
        main(["server", *flags])
    assert stopped.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("usage: triochat ")
    assert err.splitlines()[-1].startswith(f"triochat: error: {message}")
    assert "Traceback" not in err


def test_listen_plan_lists_the_ports_the_config_asks_for() -> None:
    """Plain, TLS and web ports, each only when the config wants it, in one order."""
    host = "::1"
    assert listen_plan(ServerConfig(host=host)) == (
        Door("plain", host, 30000, "--port"),
        Door("web", host, DEFAULT_WEB_PORT, "--web-port (or off)"),
    )
    with_tls = ServerConfig(host=host, tls_cert="c.pem", tls_key="k.pem", web_port=None)
    assert listen_plan(with_tls) == (
        Door("plain", host, 30000, "--port"),
        Door("tls", host, DEFAULT_TLS_PORT, "--tls-port"),
    )
    tls_only = dataclasses.replace(with_tls, no_plain=True, web_port=0)
    assert [(door.kind, door.port) for door in listen_plan(tls_only)] == [
        ("tls", DEFAULT_TLS_PORT),
        ("web", 0),
    ]
    assert len({row.kind for row in DOORS}) == len(DOORS)
