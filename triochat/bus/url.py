"""Redis addresses as the terminal and the log may show them: without their password.

A ``--redis`` URL may carry a password (``redis://:PASSWORD@host``, ``redis://user:
PASSWORD@host`` or ``?password=PASSWORD``). Every message that names the URL (the
start-up line, the start-up error, the join line, the outage line) shows it through
:func:`redacted`; nothing else prints it. No I/O, no trio.
"""

from __future__ import annotations

import urllib.parse
from typing import Final

__all__ = ["MASK", "redacted"]

MASK: Final = "***"  # what stands for a password in a shown URL
_SECRET_PARAMS: Final = frozenset({"password"})  # query keys whose values are masked


def redacted(url: str) -> str:
    """``url`` without its password (in the user part or the query), for people to read.

    A text that is not a URL comes back masked whole if it might hold a password.
    """
    try:
        parts = urllib.parse.urlsplit(url)  # (a bad port is kept as it is, shown)
    except ValueError:  # e.g. an unclosed "[" of an IPv6 address
        return MASK if "@" in url or "password" in url.lower() else url
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        user = userinfo.partition(":")[0]
        netloc = f"{user}:{MASK}@{hostport}"
    query = parts.query
    if query:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        if any(key.lower() in _SECRET_PARAMS for key, _ in pairs):
            query = "&".join(
                f"{key}={MASK}" if key.lower() in _SECRET_PARAMS else f"{key}={value}"
                for key, value in pairs
            )
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))
