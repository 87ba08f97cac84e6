"""One HTTP exchange over a trio stream with h11: read a request head, drop a body, reply.

The I/O half of the HTTP stage (:mod:`triochat.web.server` decides what to answer,
:mod:`triochat.web.http` how). Rules of this module:

* **A head is held to** :data:`MAX_REQUEST_HEAD` **bytes however it arrives.** h11
  applies its ``max_incomplete_event_size`` only while a head is incomplete, so a
  larger head in one read would be accepted whole; :func:`next_head` counts.
* **Bodies are dropped**, up to :data:`MAX_REQUEST_BODY` (nothing here takes one).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Final

import h11
import trio

from triochat.web.http import Reply

__all__ = [
    "MAX_REQUEST_BODY",
    "MAX_REQUEST_HEAD",
    "RECEIVE_BYTES",
    "next_event",
    "next_head",
    "read_body",
    "send_reply",
]

MAX_REQUEST_HEAD: Final = 16384  # bytes of request line + headers (h11's default, stated)
MAX_REQUEST_BODY: Final = 65536  # bytes of body read and dropped to keep a connection alive
RECEIVE_BYTES: Final = 65536  # one read


async def next_head(
    http: h11.Connection, stream: trio.abc.Stream
) -> h11.Event | type[h11.PAUSED] | type[h11.NEED_DATA]:
    """The next request head, like :func:`next_event`, held to :data:`MAX_REQUEST_HEAD`.

    h11 applies its limit only while a head is incomplete; a larger head that arrives
    in one read is complete at once. So the bytes it took are counted here: those
    received for it, less what is left in h11's buffer after it.

    Raises:
        h11.RemoteProtocolError: 431 for a head over the limit.
    """
    before = len(http.trailing_data[0])  # pipelined bytes received with the last request
    received = 0
    while True:
        event = http.next_event()
        if event is not h11.NEED_DATA:
            if isinstance(event, h11.Request):
                size = before + received - len(http.trailing_data[0])
                if size > MAX_REQUEST_HEAD:
                    raise h11.RemoteProtocolError(
                        f"request head of {size} bytes, over {MAX_REQUEST_HEAD}", 431
                    )
            return event
        data = bytes(await stream.receive_some(RECEIVE_BYTES))
        received += len(data)
        http.receive_data(data)


async def next_event(
    http: h11.Connection, stream: trio.abc.Stream
) -> h11.Event | type[h11.PAUSED] | type[h11.NEED_DATA]:
    """The next h11 event, reading as needed (``h11.ConnectionClosed`` at EOF)."""
    while True:
        event = http.next_event()
        if event is not h11.NEED_DATA:
            return event
        http.receive_data(bytes(await stream.receive_some(RECEIVE_BYTES)))


async def read_body(http: h11.Connection, stream: trio.abc.Stream) -> bool:
    """Read (and drop) the rest of the request; False if it is too big to bother."""
    size = 0
    while True:
        event = await next_event(http, stream)
        if isinstance(event, h11.EndOfMessage) or event is h11.PAUSED:
            return True
        if isinstance(event, h11.Data):
            size += len(event.data)
            if size > MAX_REQUEST_BODY:
                return False
            continue
        return False  # closed mid-request


async def send_reply(http: h11.Connection, stream: trio.abc.Stream, reply: Reply) -> None:
    """Send ``reply`` (with ``Connection: close`` if it closes), all of it."""
    headers = [(name.encode(), value.encode()) for name, value in reply.headers]
    if reply.close:
        headers.append((b"Connection", b"close"))
    reason = HTTPStatus(reply.status).phrase.encode()
    data = http.send(h11.Response(status_code=reply.status, headers=headers, reason=reason)) or b""
    if reply.body:
        data += http.send(h11.Data(data=reply.body)) or b""
    data += http.send(h11.EndOfMessage()) or b""
    await stream.send_all(data)
