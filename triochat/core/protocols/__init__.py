"""The wire protocols, one object each, and the sniffer that picks one. No I/O.

:data:`PROTOCOLS` maps each :class:`~triochat.core.codec.Mode` to its protocol object
(:class:`~triochat.core.protocols.base.WireProtocol`). :func:`sniff` reads a
connection's first line and says which protocol it speaks on the shared port.
"""

from __future__ import annotations

from typing import Final

from triochat.core.codec import Mode
from triochat.core.commands import Command, parse_registration
from triochat.core.protocols.base import WireProtocol
from triochat.core.protocols.irc import IRC, IrcProtocol
from triochat.core.protocols.json import JSON, JsonProtocol
from triochat.core.protocols.plain import PLAIN, PlainProtocol

__all__ = [
    "IRC",
    "JSON",
    "PLAIN",
    "PROTOCOLS",
    "IrcProtocol",
    "JsonProtocol",
    "PlainProtocol",
    "WireProtocol",
    "sniff",
]

PROTOCOLS: Final[dict[Mode, WireProtocol]] = {Mode.PLAIN: PLAIN, Mode.JSON: JSON, Mode.IRC: IRC}


def sniff(line: str) -> tuple[WireProtocol, Command | None]:
    """The protocol a connection speaks, from its first line, and that line's command.

    A JSON ``hello`` object (even a malformed one) picks JSON; anything else is plain
    text, where ``/nick NAME`` registers under that name and other text joins as a
    guest.
    """
    json_mode, command = parse_registration(line)
    return (JSON if json_mode else PLAIN), command
