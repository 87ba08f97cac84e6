"""Reference chat server for the benchmarks: an idiomatic asyncio-streams server.

This is the design the asyncio documentation leads to, written the way most
asyncio chat examples are, so that ``scripts/bench.py`` can compare triochat to it:

- ``asyncio.start_server`` gives every connection a ``StreamReader`` and a
  ``StreamWriter``, and one handler coroutine reads lines with ``readline()``;
- the room is a dict of writers; a broadcast calls ``write()`` on every other
  writer and then ``await drain()`` on each in turn, inside the sender's handler.
  ``drain()`` blocks while a writer's transport buffer is above its high-water mark
  (64 KiB), so a member that stops reading stalls every sender once its buffer fills
  (the "slow reader" benchmark shows this; it is not fixed here).

It speaks the subset of triochat's plain mode that the load generator needs: the
first line ``/nick NAME`` sets the name (any other first line joins as ``guest-N``
and is then handled as chat), ``<NAME> text`` goes to everyone else,
``* NAME joined (N online)`` / ``* NAME left (N online)`` announce members, and
``/quit`` leaves. It is not part of the triochat package.

Usage: ``python scripts/ref_asyncio.py --host 127.0.0.1 --port 0`` prints
``listening on HOST:PORT`` once it accepts connections. SIGTERM ends it at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import re
import resource
from typing import Final

BACKLOG: Final[int] = 4096  # listen queue; the idle benchmark opens thousands of sockets
FIRST_LINE_TIMEOUT: Final[float] = 1.0  # seconds to wait for /nick, as triochat does
NAME_RE: Final = re.compile(r"[A-Za-z0-9_.\-]{1,24}")  # triochat's name rule


class Room:
    """Every joined member's writer and name; only touched from the event loop."""

    def __init__(self) -> None:
        self.members: dict[asyncio.StreamWriter, str] = {}
        self._guests = itertools.count(1)

    def guest_name(self) -> str:
        """Return the next unused ``guest-N`` name."""
        return f"guest-{next(self._guests)}"

    def name_taken(self, name: str) -> bool:
        """Tell whether ``name`` is online, ignoring case."""
        folded = name.casefold()
        return any(n.casefold() == folded for n in self.members.values())

    async def broadcast(self, data: bytes, exclude: asyncio.StreamWriter | None) -> None:
        """Write ``data`` to every member but ``exclude``, then drain each writer."""
        targets = [w for w in self.members if w is not exclude]
        for w in targets:
            if not w.is_closing():
                w.write(data)
        for w in targets:
            with contextlib.suppress(ConnectionError):
                await w.drain()


def _clean(raw: bytes) -> str:
    """Decode one line and drop the line end; good enough for a reference server."""
    return raw.decode("utf-8", "replace").rstrip("\r\n").strip()


async def handle(room: Room, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Run one connection to completion: join, relay chat lines, leave."""
    joined = False
    try:
        try:
            first: bytes | None = await asyncio.wait_for(reader.readline(), FIRST_LINE_TIMEOUT)
        except TimeoutError:
            first = None
        if first is not None and not first:
            return
        text = _clean(first) if first else ""
        wanted = text[6:].strip() if text.startswith("/nick ") else None
        pending = None if wanted is not None else text
        error = b""
        if wanted is not None and NAME_RE.fullmatch(wanted) and not room.name_taken(wanted):
            name = wanted
        else:
            if wanted is not None:
                error = f"! name not available: {wanted}\n".encode()
            name = room.guest_name()
        room.members[writer] = name
        joined = True
        online = len(room.members)
        welcome = f"* welcome, {name}! {online} online. Type /help for commands.\n"
        writer.write(error + welcome.encode())
        await room.broadcast(f"* {name} joined ({online} online)\n".encode(), writer)
        while True:
            if pending is None:
                raw = await reader.readline()
                if not raw.endswith(b"\n"):
                    return
                text = _clean(raw)
            else:
                text, pending = pending, None
            if not text:
                continue
            if text == "/quit":
                return
            if text.startswith("//"):
                text = text[1:]
            await room.broadcast(f"<{name}> {text}\n".encode(), writer)
    except (ConnectionError, ValueError, asyncio.IncompleteReadError):
        return  # ValueError: a line over the reader limit ends the client
    finally:
        if joined:
            name = room.members.pop(writer)
            await room.broadcast(f"* {name} left ({len(room.members)} online)\n".encode(), None)
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def raise_nofile_limit() -> None:
    """Raise the soft open-files limit to the hard limit (thousands of sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve(host: str, port: int) -> None:
    """Listen, print the address and serve until cancelled."""
    room = Room()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await handle(room, reader, writer)

    # The StreamReader keeps its default 64 KiB limit: lines longer than that end the client.
    server = await asyncio.start_server(on_connect, host, port, backlog=BACKLOG)
    bound_host, bound_port = server.sockets[0].getsockname()[:2]
    print(f"listening on {bound_host}:{bound_port}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the server until SIGTERM or Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    raise_nofile_limit()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
