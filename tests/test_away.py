"""``/away [MESSAGE]``: the command the command table was proved with.

One row in the table, one handler: parsed in both wire modes, listed in ``/help``,
shown by ``/who`` and to whoever sends the away member a private message, cleared by
``/away`` alone.
"""

from __future__ import annotations

import pytest
import trio

from tests.helpers import join, join_json
from triochat.core.commands import (
    COMMANDS,
    HELP_LINES,
    MAX_AWAY_CHARS,
    Away,
    Invalid,
    handler_for,
    parse_json,
    parse_plain,
)
from triochat.core.model import Limits
from triochat.core.state import ChatState
from triochat.server import ChatServer


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("/away lunch", Away("lunch")),
        ("/AWAY  back at 3 ", Away("back at 3")),
        ("/away", Away("")),
        ("/away \u200b", Away("")),  # nothing visible: the same as no message
    ],
)
def test_away_parses_in_plain_mode(line: str, command: Away) -> None:
    assert parse_plain(line) == command


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ('{"type": "away", "text": "lunch"}', Away("lunch")),
        ('{"type": "away", "text": ""}', Away("")),
        ('{"type": "away"}', Away("")),
        ('{"type": "away", "text": 5}', Invalid("bad-request", "field 'text' must be a string")),
    ],
)
def test_away_parses_in_json_mode(line: str, command: Away | Invalid) -> None:
    assert parse_json(line) == command


def test_away_message_has_a_length_limit() -> None:
    too_long = parse_plain("/away " + "x" * (MAX_AWAY_CHARS + 1))
    assert isinstance(too_long, Invalid)
    assert too_long.code == "too-long"
    assert parse_plain("/away " + "x" * MAX_AWAY_CHARS) == Away("x" * MAX_AWAY_CHARS)


def test_every_row_has_a_handler_and_every_command_a_row() -> None:
    """The state's dispatch is the table's: no row without a handler, no orphan."""
    state = ChatState(Limits(), clock=lambda: 0.0)
    assert {spec.handler for spec in COMMANDS} == set(state.handlers)
    assert handler_for(Away("x")) == "away"


def test_help_comes_from_the_table() -> None:
    """Each row with a usage is one line of /help (operators' rows in their own list)."""
    usages = [spec.usage for spec in COMMANDS if spec.usage and not spec.operator]
    listed = [line.split()[0] for line in HELP_LINES[1:] if not line.startswith(" " * 10)]
    assert listed == [usage.split()[0] for usage in usages]
    assert any(line.startswith("  /away [MESSAGE]") for line in HELP_LINES)


async def test_away_in_plain_mode(nursery: trio.Nursery, server: ChatServer) -> None:
    """Set, seen by /who and by a private message's sender, then cleared."""
    alice = await join(nursery, server, "alice")
    bob = await join(nursery, server, "bob")
    await alice.expect("*** bob joined (2 online)")
    await bob.send("/away at lunch")
    await bob.expect("*** you are marked away: at lunch")
    await alice.send("/who")
    await alice.expect("*** online (2): alice, bob; away: bob (at lunch)")
    await alice.send("/msg bob are you there?")
    await alice.expect("-> *bob* are you there?", "*** bob is away: at lunch")
    await bob.expect("*alice* are you there?")
    await bob.send("/away")
    await bob.expect("*** you are back (no longer away)")
    await alice.send("/msg bob now?")
    await alice.expect("-> *bob* now?")
    await alice.send("/who")
    await alice.expect("*** online (2): alice, bob")


async def test_away_in_json_mode(nursery: trio.Nursery, server: ChatServer) -> None:
    alice = await join_json(nursery, server, "alice")
    bob = await join_json(nursery, server, "bob")
    assert (await alice.event())["type"] == "join"
    await bob.send_json(type="away", text="in a meeting")
    away = await bob.event()
    assert {k: away[k] for k in ("type", "name", "text")} == {
        "type": "away",
        "name": "bob",
        "text": "in a meeting",
    }
    await alice.send_json(type="who")
    who = await alice.event()
    assert (who["names"], who["away"]) == (["alice", "bob"], {"bob": "in a meeting"})
    await alice.send_json(type="msg", to="bob", text="ping")
    assert (await alice.event())["type"] == "msg"
    told = await alice.event()
    assert (told["type"], told["name"], told["text"]) == ("away", "bob", "in a meeting")
    await bob.send_json(type="away")
    assert (await bob.event())["type"] == "msg"  # alice's ping
    back = await bob.event()
    assert (back["type"], back["text"]) == ("away", "")
    await alice.send_json(type="who")
    assert "away" not in await alice.event()
