"""How a server setting's text is read: text in, value out, ValueError with a reason.

Nothing here knows argparse: a flag and (later) a config file's value are read alike.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from typing import TypeVar

from triochat.bus.url import redacted
from triochat.config import Network
from triochat.core.names import name_error

__all__ = ["bounded", "networks_text", "op_name", "port", "redacted", "redis_url", "web_port"]

Number = TypeVar("Number", int, float)


def bounded(
    kind: Callable[[str], Number], low: Number, high: Number | None = None
) -> Callable[[str], Number]:
    """Read ``kind`` and check it against ``[low, high]``."""

    def parse(text: str) -> Number:
        try:
            value = kind(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
        if value < low or (high is not None and value > high):
            span = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise ValueError(f"{text} is out of range (must be {span})")
        return value

    return parse


port = bounded(int, 0, 65535)


def web_port(text: str) -> int | None:
    """``--web-port``: a port, or ``off`` (None)."""
    if text.strip().lower() == "off":
        return None
    return port(text)


def op_name(text: str) -> str:
    """``--op``: a valid name."""
    problem = name_error(text)
    if problem is not None:
        raise ValueError(f"{text!r}: {problem}")
    return text


def redis_url(text: str) -> str:
    """``--redis``: ``redis://`` or ``rediss://`` with a host."""
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ValueError(
            f"{redacted(text)!r}: expected redis://[:PASSWORD@]HOST[:PORT][/DB] "
            "(or rediss:// for TLS)"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ValueError(f"{redacted(text)!r}: {exc}") from None
    return text


def networks_text(networks: tuple[Network, ...]) -> str:
    """Networks as ``--trusted`` takes them (``none`` for none)."""
    return ",".join(str(network) for network in networks) or "none"
