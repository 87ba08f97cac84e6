"""SASL PLAIN over IRC's ``AUTHENTICATE``, as one small exchange. No I/O.

IRCv3 sasl-3.1: the client names a mechanism (``AUTHENTICATE PLAIN``), the server
answers ``AUTHENTICATE +``, and the client sends its response in base64 cut into
chunks of :data:`CHUNK_BYTES`: a shorter chunk ends it, and a response whose last
chunk is exactly that long (or an empty response) ends with ``AUTHENTICATE +``.
``AUTHENTICATE *`` aborts (``906``); a chunk over the limit is refused (``905``); a
response longer than any credentials triochat accepts is refused (``904``) as soon as
it is, so a client cannot make the server keep more than :data:`MAX_RESPONSE_CHARS`.

:class:`SaslExchange` is that exchange for one connection wherever it stands: the
reader's registration, an arrival waiting at the hub, or a member (sasl-3.2: a client
may authenticate after registering). Other lines (``NICK``, ``USER``...) do not
interrupt it. It answers, and hands back the credentials once a response is whole;
checking them is the caller's (the hub's password worker).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Final

from triochat.core.hygiene import sanitise
from triochat.core.names import MAX_NAME_CHARS
from triochat.core.passwords import MAX_PASSWORD_CHARS
from triochat.core.protocols.irclines import line, numeric

__all__ = ["CHUNK_BYTES", "MAX_RESPONSE_CHARS", "MECHANISMS", "SaslExchange", "sasl_plain"]

MECHANISMS: Final = "PLAIN"  # what 908 lists (and CAP LS 302 shows as sasl=PLAIN)
CHUNK_BYTES: Final = 400  # sasl-3.1: a response travels in base64 chunks of 400 bytes
# The longest PLAIN response worth reading: two names and a password of the longest
# allowed, each character up to 4 bytes of UTF-8, two NULs, in base64 (4 per 3 bytes).
_LONGEST_PLAIN: Final = 4 * (2 * MAX_NAME_CHARS + MAX_PASSWORD_CHARS) + 2  # bytes
MAX_RESPONSE_CHARS: Final = 4 * ((_LONGEST_PLAIN + 2) // 3)

Credentials = tuple[str, str]  # (account name, password)


def sasl_plain(arg: str) -> Credentials | None:
    """SASL PLAIN's base64 ``authzid NUL authcid NUL password``: (name, password), or None."""
    try:
        fields = base64.b64decode(arg, validate=True).decode("utf-8").split("\0")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if len(fields) != 3 or not fields[1] or not fields[2]:
        return None
    return sanitise(fields[1]).strip(), fields[2]


@dataclass(slots=True)
class SaslExchange:
    """One connection's SASL PLAIN exchange (see the module docstring)."""

    active: bool = False  # a mechanism chosen; the response not complete yet
    _chunks: list[str] = field(default_factory=list, repr=False)
    _size: int = 0

    def step(
        self, server: str, nick: str, params: tuple[str, ...]
    ) -> tuple[str, Credentials | None]:
        """Take one ``AUTHENTICATE``: what to answer, and the credentials once complete.

        An answer of ``904`` or ``906`` ends the exchange; the client may start again.
        """
        arg = params[0] if params else ""
        nick = nick or "*"
        if not self.active:
            if arg.upper() == MECHANISMS:
                self.active = True
                return line("", "AUTHENTICATE", "+"), None
            if arg == "*":
                return numeric(server, "906", nick, "SASL authentication aborted"), None
            return (
                numeric(server, "908", nick, MECHANISMS, "are available SASL mechanisms")
                + numeric(server, "904", nick, "SASL authentication failed"),
                None,
            )
        if arg == "*":
            return self.abort(server, nick), None
        if len(arg.encode()) > CHUNK_BYTES:
            self._reset()
            return numeric(server, "905", nick, "SASL message too long"), None
        if arg != "+":
            self._size += len(arg)
            if self._size > MAX_RESPONSE_CHARS:
                self._reset()
                return numeric(server, "904", nick, "SASL authentication failed"), None
            self._chunks.append(arg)
            if len(arg) == CHUNK_BYTES:
                return "", None  # more follows (or AUTHENTICATE +)
        response = "".join(self._chunks)
        self._reset()
        credentials = sasl_plain(response)
        if credentials is None:
            return numeric(server, "904", nick, "SASL authentication failed"), None
        return "", credentials

    def abort(self, server: str, nick: str) -> str:
        """End an exchange in progress (``906``); nothing if there is none."""
        if not self.active:
            return ""
        self._reset()
        return numeric(server, "906", nick or "*", "SASL authentication aborted")

    def _reset(self) -> None:
        self.active = False
        self._chunks = []
        self._size = 0
