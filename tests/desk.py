"""A chat state driven by hand, for the sans-IO account and moderation tests.

:class:`Desk` plays the hub's part without an event loop: it registers connections on
fake links, and runs the password jobs the state queues (synchronously: the tests lower
the scrypt cost) with a dictionary standing in for the store's account table.
"""

from __future__ import annotations

from typing import Any

from tests.helpers import FakeLink
from triochat.core.codec import Mode
from triochat.core.commands import Command, Hello, Nick, parse_plain
from triochat.core.passwords import check
from triochat.core.records import DropAccount, SaveAccount
from triochat.core.state import ChatState, Limits, Member

__all__ = ["ELSEWHERE", "NOW", "Desk", "parse"]

NOW = 1795714800.0
ELSEWHERE = "203.0.113.5"  # a client on another machine (TEST-NET-3)


class Desk:
    """A chat state, fake links, and the account table the hub would read hashes from."""

    def __init__(self, limits: Limits | None = None, **options: Any) -> None:
        self.now = NOW
        self.state = ChatState(limits or Limits(), clock=lambda: self.now, **options)
        self.hashes: dict[str, str] = {}  # name key -> stored hash
        self.ids = 0

    def connect(
        self,
        mode: Mode,
        first: Command | None,
        *,
        address: str | None = ELSEWHERE,
        cleartext: bool = False,
        server_password: str | None = None,
    ) -> tuple[int, Member | None, FakeLink]:
        """Register a new connection; returns its id, the member (None: not yet) and link."""
        self.ids += 1
        link = FakeLink()
        member = self.state.register(
            self.ids,
            f"{address}:{40000 + self.ids}",
            link,
            mode,
            first,
            address=address,
            cleartext=cleartext,
            server_password=server_password,
        )
        return self.ids, member, link

    def plain(self, name: str, **options: Any) -> tuple[Member, FakeLink]:
        """A plain member called ``name`` (welcome read)."""
        _, member, link = self.connect(Mode.PLAIN, Nick(name), **options)
        assert member is not None
        assert member.name == name, link.lines()
        link.lines()
        return member, link

    def json(self, name: str, **hello: Any) -> tuple[int, Member | None, FakeLink]:
        """A JSON connection saying hello as ``name`` (with more hello fields)."""
        return self.connect(Mode.JSON, Hello(name, **hello))

    def run_jobs(self) -> int:
        """Do every queued password job, as the hub's worker would; return how many."""
        done = 0
        while jobs := self.state.take_effects().jobs:
            for job in jobs:
                outcome = check(job, self.hashes.get(job.key))
                self.state.password_done(job, outcome)  # it handles what was held, too
                done += 1
            self.save()
        self.save()
        return done

    def save(self) -> None:
        """Apply the state's batch of account changes to the account table."""
        for change in self.state.take_effects().batch.changes:
            if isinstance(change, SaveAccount):
                self.hashes[change.record.key] = change.record.password_hash
            elif isinstance(change, DropAccount):
                self.hashes.pop(change.key, None)

    def registered(
        self, name: str, password: str = "correct-horse", **options: Any
    ) -> tuple[Member, FakeLink]:
        """A plain member that has registered ``name`` with ``password``."""
        member, link = self.plain(name, **options)
        self.state.handle(member, parse(f"/register {password}"))
        assert self.run_jobs() == 1
        assert any("is registered to you" in line for line in link.lines())
        return member, link

    def account(self, name: str, password: str = "correct-horse") -> None:
        """Register ``name`` and leave: the account exists, nobody holds the name."""
        member, _ = self.registered(name, password)
        self.state.handle(member, parse("/quit"))
        self.save()  # its leaving is written down too (when the account was last seen)


def parse(line: str) -> Command:
    """A plain line as a command."""
    command = parse_plain(line)
    assert command is not None
    return command
