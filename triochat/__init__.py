"""triochat: a small self-hosted terminal chat room built on trio.

The sans-IO core (:mod:`triochat.core`: framing, hygiene, names, commands, events,
codecs) turns bytes into commands and events
into bytes; :mod:`triochat.room` owns the room; :mod:`triochat.server` connects streams
to it; :mod:`triochat.logs` writes the server's log from a thread, so that it never
holds up the event loop; :mod:`triochat.cli` is the ``triochat`` command.
"""

from triochat.config import DEFAULT_HOST, DEFAULT_PORT, ServerConfig
from triochat.core.codec import Mode, encode_json, encode_plain
from triochat.core.commands import parse_json, parse_plain
from triochat.core.framing import LineBuffer
from triochat.core.hygiene import sanitise
from triochat.core.ratelimit import TokenBucket
from triochat.room import Room
from triochat.server import ChatServer

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "ChatServer",
    "LineBuffer",
    "Mode",
    "Room",
    "ServerConfig",
    "TokenBucket",
    "__version__",
    "encode_json",
    "encode_plain",
    "parse_json",
    "parse_plain",
    "sanitise",
]
