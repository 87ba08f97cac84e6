"""What an IRC member costs in fan-out, next to a plain and a JSON member.

``python scripts/irc_fanout.py [--members 1000] [--lines 2000] [--repeat 5]``

In process and without sockets, so it measures the chat state's share alone: one room
of ``--members`` members all in one wire mode (plain; JSON; IRC without tags; IRC
where half asked for ``server-time`` and ``echo-message``), one more member says
``--lines`` lines, and every delivery is a ``put`` onto a link that only counts bytes.
Reported per mode: nanoseconds of CPU per delivery (the best of ``--repeat`` runs) and
bytes per delivery. The fan-out encodes once per variant (IRC: per tag set), so the
cost per delivery should be the same loop for every mode.

The server's end-to-end figures (sockets, commits, writers) are ``scripts/bench.py``'s.
"""

from __future__ import annotations

import argparse
import json
import time

from triochat.core.codec import Mode
from triochat.core.commands import Command, Hello, IrcHello, Join, Nick, Say
from triochat.core.model import Limits, Query
from triochat.core.protocols.ircsession import ECHO, SERVER_TIME
from triochat.core.state import ChatState

ROOM = "#bench"


class CountingLink:
    """A link that takes everything and counts it."""

    def __init__(self) -> None:
        self.puts = 0
        self.bytes = 0

    def put(self, data: bytes) -> bool:
        self.puts += 1
        self.bytes += len(data)
        return True

    def replay(self, query: Query) -> None:
        pass

    def close(self) -> None:
        pass

    def cut(self) -> None:
        pass


def first_line(mode: Mode, name: str, tagged: bool) -> tuple[Mode, Command]:
    if mode is Mode.IRC:
        caps = frozenset({SERVER_TIME, ECHO}) if tagged else frozenset()
        return mode, IrcHello(name, name, name, caps)
    if mode is Mode.JSON:
        return mode, Hello(name)
    return mode, Nick(name)


def run(mode: Mode, members: int, lines: int, half_tagged: bool) -> tuple[float, float]:
    """(CPU ns per delivery, bytes per delivery) for one room in ``mode``."""
    state = ChatState(Limits(history=0, coalesce_above=members + 10), time.time)
    links: list[CountingLink] = []
    for n in range(members + 1):
        link = CountingLink()
        links.append(link)
        kind, first = first_line(mode, f"m{n}", half_tagged and n % 2 == 0)
        member = state.register(n + 1, f"peer{n}", link, kind, first)
        assert member is not None
        state.handle(member, Join(ROOM))
    sender = state.member(members + 1)
    assert sender is not None
    for link in links:
        link.puts = link.bytes = 0

    def say(command: Command) -> None:
        state.handle(sender, command)

    start = time.process_time_ns()
    for i in range(lines):
        say(Say(f"line {i} of the fan-out benchmark", ROOM))
        if i % 256 == 255:
            state.take_effects()  # what the hub does once per batch
    spent = time.process_time_ns() - start
    deliveries = sum(link.puts for link in links)
    return spent / deliveries, sum(link.bytes for link in links) / deliveries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    cases = [
        ("plain", Mode.PLAIN, False),
        ("json", Mode.JSON, False),
        ("irc", Mode.IRC, False),
        ("irc-half-tagged", Mode.IRC, True),
    ]
    results: dict[str, dict[str, float]] = {}
    for label, mode, tagged in cases:
        runs = [run(mode, args.members, args.lines, tagged) for _ in range(args.repeat)]
        best = min(ns for ns, _ in runs)
        results[label] = {"ns_per_delivery": round(best, 1), "bytes_per_delivery": runs[0][1]}
        print(f"{label:16} {best:8.1f} ns/delivery  {runs[0][1]:6.1f} bytes/delivery")
    print(json.dumps({"members": args.members, "lines": args.lines, "results": results}))


if __name__ == "__main__":
    main()
