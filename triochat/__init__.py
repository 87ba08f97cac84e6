"""triochat: a small self-hosted chat server and terminal client built on trio.

The package is laid out by layer:

* :mod:`triochat.core`: the sans-IO protocol and chat state. Framing, hygiene, names,
  commands, events, codecs, and :mod:`~triochat.core.state` (who is where, rooms,
  ids, recent history). No trio, no I/O: bytes in, events out.
* :mod:`triochat.server`: the async layer. The hub task that drives the state, one
  task per connection, the transport seam, and :class:`ChatServer`.
* :mod:`triochat.store`: durable history (SQLite by default, or in memory).
* :mod:`triochat.client`: the terminal client.
* :mod:`triochat.testing`: fixtures for testing bots against a real server in memory.
* :mod:`triochat.logs`, :mod:`triochat.config`, :mod:`triochat.cli`: the command.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names below are imported on first use (see __getattr__)
    from triochat.config import DEFAULT_HOST, DEFAULT_PORT, ServerConfig
    from triochat.core.codec import Mode, encode_json, encode_plain
    from triochat.core.commands import parse_json, parse_plain
    from triochat.core.framing import LineBuffer
    from triochat.core.hygiene import sanitise
    from triochat.core.ratelimit import TokenBucket
    from triochat.core.state import ChatState
    from triochat.server import ChatServer

__version__ = "0.2.0"

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "ChatServer",
    "ChatState",
    "LineBuffer",
    "Mode",
    "ServerConfig",
    "TokenBucket",
    "__version__",
    "encode_json",
    "encode_plain",
    "parse_json",
    "parse_plain",
    "sanitise",
]

# Where each public name lives. Imported lazily, so that ``import triochat`` (done by
# the pytest plugin in every test session, and by ``python -m triochat --help``) does
# not pay for trio and the whole server until a name is used.
_LAZY = {
    "DEFAULT_HOST": "triochat.config",
    "DEFAULT_PORT": "triochat.config",
    "ServerConfig": "triochat.config",
    "Mode": "triochat.core.codec",
    "encode_json": "triochat.core.codec",
    "encode_plain": "triochat.core.codec",
    "parse_json": "triochat.core.commands",
    "parse_plain": "triochat.core.commands",
    "LineBuffer": "triochat.core.framing",
    "sanitise": "triochat.core.hygiene",
    "TokenBucket": "triochat.core.ratelimit",
    "ChatState": "triochat.core.state",
    "ChatServer": "triochat.server",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'triochat' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
