"""Reference chat server for the benchmarks: the classic one-thread-per-client design.

This is the server most tutorials write first, kept deliberately plain so that
``scripts/bench.py`` can compare triochat against it:

- the main thread accepts; every connection gets its own (daemon) thread that
  reads lines with a blocking ``readline``;
- all members live in one shared list guarded by one ``threading.Lock``;
- a broadcast takes the lock and calls blocking ``sendall`` on every other member
  in turn, so one member that stops reading eventually blocks every broadcast
  (that is the behaviour the "slow reader" benchmark shows; it is not fixed here).

It speaks the subset of triochat's plain mode that the load generator needs: the
first line ``/nick NAME`` sets the name (any other first line joins as ``guest-N``
and is then handled as chat), ``<NAME> text`` goes to everyone else,
``* NAME joined (N online)`` / ``* NAME left (N online)`` announce members, and
``/quit`` leaves. It is not part of the triochat package.

Usage: ``python scripts/ref_threaded.py --host 127.0.0.1 --port 0`` prints
``listening on HOST:PORT`` once it accepts connections. SIGTERM ends it at once.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import re
import resource
import socket
import sys
import threading
from dataclasses import dataclass, field
from typing import Final

BACKLOG: Final[int] = 4096  # listen queue; the idle benchmark opens thousands of sockets
RECV_BYTES: Final[int] = 65536  # read size of each connection's buffered reader
MAX_LINE_BYTES: Final[int] = 4096  # same default as triochat; longer lines end the client
NAME_RE: Final = re.compile(r"[A-Za-z0-9_.\-]{1,24}")  # triochat's name rule


@dataclass(eq=False)
class Member:
    """One connected client: its socket and current name."""

    sock: socket.socket
    name: str
    joined: bool = field(default=False)


class Room:
    """All members, one lock; every broadcast holds the lock while it writes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.members: list[Member] = []
        self._guests = itertools.count(1)

    def guest_name(self) -> str:
        """Return the next unused ``guest-N`` name."""
        return f"guest-{next(self._guests)}"

    def name_taken(self, name: str) -> bool:
        """Tell whether ``name`` is online, ignoring case (caller holds the lock)."""
        folded = name.casefold()
        return any(m.name.casefold() == folded for m in self.members)

    def _send_locked(self, data: bytes, exclude: Member | None) -> None:
        for m in self.members:
            if m is exclude:
                continue
            with contextlib.suppress(OSError):  # its own thread notices and cleans up
                m.sock.sendall(data)

    def broadcast(self, data: bytes, exclude: Member | None) -> None:
        """Send ``data`` to every member except ``exclude``, blocking on each in turn."""
        with self.lock:
            self._send_locked(data, exclude)

    def join(self, member: Member, wanted: str | None) -> None:
        """Name the member, welcome it and announce it to everyone else."""
        with self.lock:
            error = b""
            if wanted is not None and NAME_RE.fullmatch(wanted) and not self.name_taken(wanted):
                member.name = wanted
            else:
                if wanted is not None:
                    error = f"! name not available: {wanted}\n".encode()
                member.name = self.guest_name()
            self.members.append(member)
            member.joined = True
            online = len(self.members)
            welcome = f"* welcome, {member.name}! {online} online. Type /help for commands.\n"
            with contextlib.suppress(OSError):
                member.sock.sendall(error + welcome.encode())
            self._send_locked(f"* {member.name} joined ({online} online)\n".encode(), member)

    def leave(self, member: Member) -> None:
        """Remove the member and announce it, if it had joined."""
        with self.lock:
            if not member.joined:
                return
            member.joined = False
            self.members.remove(member)
            notice = f"* {member.name} left ({len(self.members)} online)\n"
            self._send_locked(notice.encode(), None)


def _clean(raw: bytes) -> str:
    """Decode one line and drop the line end; good enough for a reference server."""
    return raw.decode("utf-8", "replace").rstrip("\r\n").strip()


def serve_client(room: Room, sock: socket.socket) -> None:
    """Run one connection to completion: join, relay chat lines, leave."""
    member = Member(sock, "?")
    reader = sock.makefile("rb", buffering=RECV_BYTES)
    try:
        first = reader.readline(MAX_LINE_BYTES + 2)
        if not first:
            return
        text = _clean(first)
        if text.startswith("/nick "):
            room.join(member, text[6:].strip())
            pending = None
        else:
            room.join(member, None)
            pending = text
        while True:
            if pending is None:
                raw = reader.readline(MAX_LINE_BYTES + 2)
                if not raw or not raw.endswith(b"\n"):
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
            room.broadcast(f"<{member.name}> {text}\n".encode(), member)
    except OSError:
        return
    finally:
        room.leave(member)
        with contextlib.suppress(OSError):
            reader.close()
            sock.close()


def raise_nofile_limit() -> None:
    """Raise the soft open-files limit to the hard limit (thousands of sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, listen, print the address and accept forever."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    raise_nofile_limit()
    room = Room()
    listener = socket.create_server((args.host, args.port), backlog=BACKLOG)
    host, port = listener.getsockname()[:2]
    print(f"listening on {host}:{port}", flush=True)
    try:
        while True:
            sock, _ = listener.accept()
            # trio and asyncio both set TCP_NODELAY; do the same so latency is comparable.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=serve_client, args=(room, sock), daemon=True).start()
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
