"""``triochat server --config FILE`` and ``--print-config``: the settings table as TOML.

Every row of :data:`~triochat.cli.settings.SERVER_SETTINGS` is a key of the same name
as its flag (``max-clients = 2000``), read by the same ``parse`` as the flag's text, so
a value is accepted in the file exactly when it is accepted on the command line. Flags
override the file. Any problem (an unreadable file, bad TOML, an unknown key, a wrong
type, a bad value) is one :class:`ConfigError` line naming the file and the key; the
command prints it and exits 2.

:func:`config_toml` writes a configuration back as TOML that this module reads again
(only the Redis password is replaced by ``***``), for ``--print-config``.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import tomllib
from collections.abc import Mapping
from typing import Any, Final

from triochat.cli.settings import SERVER_SETTINGS, Setting
from triochat.cli.values import redacted
from triochat.config import ServerConfig

__all__ = ["ConfigError", "config_toml", "read_config_file", "settings_from_toml"]

# Settings whose flag takes comma-separated values: the file may give an array instead.
# Settings whose flag takes a comma-separated list ("NAME,...") take an array in the file.
_LISTS: Final = frozenset(
    setting.key for setting in SERVER_SETTINGS if (setting.metavar or "").endswith(",...")
)
_BY_KEY: Final = {setting.key: setting for setting in SERVER_SETTINGS}


class ConfigError(Exception):
    """A configuration file that cannot be used: one line, naming the file and the key."""


def read_config_file(path: str) -> dict[str, Any]:
    """The settings ``path`` gives, by ServerConfig field.

    Raises:
        ConfigError: the file cannot be read or is not TOML, or a key is unknown, of the
            wrong type or has a bad value.
    """
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return settings_from_toml(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def settings_from_toml(data: Mapping[str, Any]) -> dict[str, Any]:
    """Read a parsed TOML document's keys through the settings table (see the module doc).

    Raises:
        ConfigError: naming the first key that is unknown, of the wrong type or bad.
    """
    given: dict[str, Any] = {}
    for key, value in data.items():
        setting = _BY_KEY.get(key)
        if setting is None:
            close = difflib.get_close_matches(key.replace("_", "-"), _BY_KEY, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown key {key!r}{hint}; `triochat server --help` lists them")
        given[setting.dest] = _value(setting, value)
    return given


def _type_error(setting: Setting, wanted: str, value: object) -> ConfigError:
    got = type(value).__name__
    return ConfigError(f"{setting.key}: expected {wanted}, not {got} {value!r}")


def _value(setting: Setting, value: object) -> Any:
    """``value`` for ``setting``, read by the row's own parser (the flag's rules)."""
    if setting.parse is None:  # a switch
        if not isinstance(value, bool):
            raise _type_error(setting, "true or false", value)
        return value
    if setting.repeat:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise _type_error(setting, "an array of strings", value)
        return [_parsed(setting, item) for item in value]
    if isinstance(value, list) and setting.key in _LISTS:
        if not all(isinstance(item, str) for item in value):
            raise _type_error(setting, "an array of strings", value)
        return _parsed(setting, ",".join(value) if value else "none")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        lists = setting.key in _LISTS
        wanted = "a string or an array of strings" if lists else "a number or a string"
        raise _type_error(setting, wanted, value)
    return _parsed(setting, str(value))


def _parsed(setting: Setting, text: str) -> Any:
    if setting.choices is not None and text not in setting.choices:
        raise ConfigError(f"{setting.key}: {text!r} is not one of {', '.join(setting.choices)}")
    assert setting.parse is not None
    try:
        return setting.parse(text)
    except ValueError as exc:
        raise ConfigError(f"{setting.key}: {exc}") from None


# -- writing a configuration back ----------------------------------------------------------


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return json.dumps(str(value))  # a TOML basic string is a JSON string


def _shown(setting: Setting, value: object) -> object | None:
    """The TOML value of ``setting`` (None: not set, written as a comment)."""
    if setting.key in ("web-port", "metrics-port") and value is None:
        return "off"
    if setting.key == "trusted":
        assert isinstance(value, tuple)
        return [str(network) for network in value] if value else "none"
    if setting.key == "redis" and isinstance(value, str):
        return redacted(value)
    if value is None or value == ():
        return None
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return str(value)
    return value


def config_toml(config: ServerConfig, *, source: str | None = None) -> str:
    """``config`` as a TOML file ``--config`` reads back (the Redis password as ``***``)."""
    lines = ["# triochat server: the effective configuration"]
    if source is not None:
        lines.append(f"# read from {source}, then the command line")
    group = None
    for setting in SERVER_SETTINGS:
        if setting.group is not group:
            group = setting.group
            lines.append(f"\n# -- {group.title} --")
        shown = _shown(setting, getattr(config, setting.dest))
        if shown is None:
            lines.append(f"# {setting.key} is not set")
        else:
            lines.append(f"{setting.key} = {_toml(shown)}")
    return "\n".join(lines) + "\n"
