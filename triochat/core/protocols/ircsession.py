"""One IRC client's own state: what it said at registration and the capabilities it has. No I/O.

Kept on the member (:attr:`triochat.core.model.Member.irc`), so the IRC protocol's
fan-out can group a room's IRC members by capability set and encode once per group.
This module imports nothing of triochat, so the model can name it without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "BATCH",
    "CAPS",
    "CHATHISTORY",
    "CHATHISTORY_LIMIT",
    "ECHO",
    "LABELED_RESPONSE",
    "MESSAGE_TAGS",
    "MULTI_PREFIX",
    "PRIVATE_MSGID",
    "SASL",
    "SERVER_TIME",
    "USERHOST_IN_NAMES",
    "VARIANTS",
    "IrcSession",
    "variant_tags",
]

SERVER_TIME: Final = "server-time"
ECHO: Final = "echo-message"
MESSAGE_TAGS: Final = "message-tags"
SASL: Final = "sasl"
MULTI_PREFIX: Final = "multi-prefix"  # one prefix (@) exists, so it changes nothing
USERHOST_IN_NAMES: Final = "userhost-in-names"
BATCH: Final = "batch"  # CHATHISTORY answers and labelled responses come in batches
LABELED_RESPONSE: Final = "labeled-response"  # see triochat.core.irclabels
CHATHISTORY: Final = "draft/chathistory"  # see triochat.core.ircchathistory
PRIVATE_MSGID: Final = "@"  # a stored private line's msgid is "@-ID" (a room's "room-ID")
CHATHISTORY_LIMIT: Final = 100  # lines one CHATHISTORY request gets at most (ISUPPORT)
# What CAP LS offers, in order (values after "=": CAP LS 302 shows them).
CAPS: Final[dict[str, str]] = {
    SERVER_TIME: "",
    ECHO: "",
    MESSAGE_TAGS: "",
    SASL: "PLAIN",
    MULTI_PREFIX: "",
    USERHOST_IN_NAMES: "",
    BATCH: "",
    LABELED_RESPONSE: "",
    CHATHISTORY: "",
}


VARIANTS: Final = 4  # fan-out variants: server-time or not, times message-tags or not


def variant_tags(variant: int) -> tuple[bool, bool]:
    """A fan-out variant as (server-time, message-tags)."""
    return bool(variant & 1), bool(variant & 2)


@dataclass(slots=True)
class IrcSession:
    """An IRC connection's registration details and negotiated capabilities.

    ``variant`` (0 to 3) is what its capabilities make of a broadcast line: the fan-out
    encodes once per variant present, and reads only this integer per member.
    """

    user: str = ""  # the USER name it gave
    realname: str = ""
    caps: frozenset[str] = field(default_factory=frozenset)
    variant: int = 0

    def __post_init__(self) -> None:
        self.set_caps(self.caps)

    def set_caps(self, caps: frozenset[str]) -> None:
        """Take ``caps`` as its capabilities (CAP REQ) and work out its variant."""
        self.caps = caps
        self.variant = (SERVER_TIME in caps) | (MESSAGE_TAGS in caps) << 1
