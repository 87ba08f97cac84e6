"""One IRC client's own state: what it said at registration and the capabilities it has. No I/O.

Kept on the member (:attr:`triochat.core.model.Member.irc`), so the IRC protocol's
fan-out can group a room's IRC members by capability set and encode once per group.
This module imports nothing of triochat, so the model can name it without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

__all__ = ["CAPS", "ECHO", "MESSAGE_TAGS", "SASL", "SERVER_TIME", "IrcSession"]

SERVER_TIME: Final = "server-time"
ECHO: Final = "echo-message"
MESSAGE_TAGS: Final = "message-tags"
SASL: Final = "sasl"
# What CAP LS offers, in order (values after "=": CAP LS 302 shows them).
CAPS: Final[dict[str, str]] = {
    SERVER_TIME: "",
    ECHO: "",
    MESSAGE_TAGS: "",
    SASL: "PLAIN",
}


@dataclass(slots=True)
class IrcSession:
    """An IRC connection's registration details and negotiated capabilities."""

    user: str = ""  # the USER name it gave
    realname: str = ""
    caps: frozenset[str] = field(default_factory=frozenset)

    @property
    def tags(self) -> tuple[bool, bool]:
        """Its variant for fan-out: (server-time, message-tags)."""
        caps = self.caps
        return SERVER_TIME in caps, MESSAGE_TAGS in caps
