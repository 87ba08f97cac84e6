"""A connection's phases: the transition table, and the server moving connections along it."""

from __future__ import annotations

import pytest
import trio

from tests.helpers import join
from triochat.core.lifecycle import TRANSITIONS, LifecycleError, Phase, Step, advance
from triochat.server import ChatServer


def test_the_usual_lives() -> None:
    """Register and leave; log in first; refused; cut off at any point."""
    phase = advance(Phase.REGISTERING, Step.JOINED)
    assert advance(advance(phase, Step.CLOSE), Step.END) is Phase.GONE
    assert advance(advance(Phase.REGISTERING, Step.LOGIN), Step.JOINED) is Phase.MEMBER
    assert advance(Phase.PENDING_LOGIN, Step.CLOSE) is Phase.CLOSING
    assert all(advance(phase, Step.END) is Phase.GONE for phase in Phase)


@pytest.mark.parametrize(
    ("phase", "step"),
    [
        (Phase.MEMBER, Step.LOGIN),
        (Phase.MEMBER, Step.JOINED),
        (Phase.CLOSING, Step.JOINED),
        (Phase.PENDING_LOGIN, Step.LOGIN),
    ],
)
def test_steps_out_of_order_are_errors(phase: Phase, step: Step) -> None:
    assert (phase, step) not in TRANSITIONS
    with pytest.raises(LifecycleError, match=phase.value):
        advance(phase, step)


async def test_the_server_moves_connections_along(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """Registering, then a member; closing on /quit, then gone."""
    alice = await join(nursery, server, "alice")
    (conn,) = [m.link for m in server.state.all_members()]
    assert getattr(conn, "phase", None) is Phase.MEMBER
    await alice.send("/quit")
    await alice.closed()
    await trio.testing.wait_all_tasks_blocked()
    assert getattr(conn, "phase", None) is Phase.GONE
