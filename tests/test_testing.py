"""The public test harness (triochat.testing and its pytest plugin), tested on itself.

The harness is what other people's bots are tested with, so a check that passes when
it should fail is a bug here like any other: each failure path has its test.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import trio
import trio.testing

from tests.conftest import StartProcess
from triochat.core.events import Said
from triochat.server import ChatServer
from triochat.store import MemoryStore
from triochat.testing import ClientFactory, Peer, connect, join, open_client, open_test_server


async def test_chatclient_join_say_part_round_trip(
    autojump_clock: trio.testing.MockClock,
    triochat_server: ChatServer,
    triochat_client: ClientFactory,
) -> None:
    """join/say/part: a line said in #dev reaches a member there with the echo's id."""
    alice = await triochat_client("alice")
    bob = await triochat_client("bob")
    assert (alice.welcome["online"], bob.welcome["online"]) == (1, 2)
    joined = await alice.join("Dev")
    assert (joined["type"], joined["room"], joined["name"], joined["online"]) == (
        "join",
        "#dev",
        "alice",
        1,
    )
    await bob.join("#dev")
    await alice.expect("join", room="#dev", name="bob", online=2)
    echo = await bob.say("hello dev", room="dev")
    said = await alice.expect("say", room="#dev", from_="bob", text="hello dev")
    assert said["id"] == echo["id"]
    left = await bob.part("#dev")
    assert (left["type"], left["name"], left["reason"]) == ("leave", "bob", "part")
    await alice.expect(type="leave", room="#dev", name="bob", reason="part", online=1)  # (keyword)
    await alice.quiet()


async def test_chatclient_join_of_another_room_one_is_in_returns_current(
    triochat_server: ChatServer, triochat_client: ClientFactory
) -> None:
    """Joining a room one is in only makes it current: join() must not wait for a join."""
    alice = await triochat_client("alice")
    await alice.join("#dev")
    current = await alice.join("#lobby")
    assert (current["type"], current["room"]) == ("current", "#lobby")
    assert alice.current == "#lobby"
    await alice.quiet()


async def test_chatclient_join_of_the_current_room_is_answered(
    triochat_server: ChatServer, triochat_client: ClientFactory
) -> None:
    """A join of the current room gets its `current` reply; join() returns it, no hang."""
    alice = await triochat_client("alice")
    current = await alice.join("Lobby")
    assert (current["type"], current["room"]) == ("current", "#lobby")
    await alice.quiet()


async def test_chatclient_join_after_parting_every_room(
    triochat_server: ChatServer, triochat_client: ClientFactory
) -> None:
    """After parting its last room a member has no current room, and may join it again."""
    alice = await triochat_client("alice")
    await alice.part()
    after_part = alice.current
    assert after_part is None
    await alice.send(type="who")
    await alice.expect("error", code="no-room")
    joined = await alice.join("#lobby")
    assert (joined["type"], joined["room"], alice.current) == ("join", "#lobby", "#lobby")
    await alice.quiet()


async def test_chatclient_expect_timeout_lists_what_came_instead(
    autojump_clock: trio.testing.MockClock,
    triochat_server: ChatServer,
    triochat_client: ClientFactory,
) -> None:
    """No match: fail after the timeout (virtual) naming the expectation and what was seen."""
    alice = await triochat_client("alice")
    bob = await triochat_client("bob")
    await bob.say("not it")
    start = trio.current_time()
    with pytest.raises(AssertionError) as failure:
        await alice.expect("say", text="it", timeout=3)
    assert trio.current_time() - start == pytest.approx(3.0)
    message = str(failure.value)
    assert message.startswith("alice: say event with text='it' did not come within 3 s;")
    assert '"type": "join", "room": "#lobby", "name": "bob"' in message
    assert '"from": "bob", "text": "not it"' in message
    assert '"ts"' not in message  # noise in a failure message


async def test_chatclient_expect_fails_at_once_on_an_error_event(
    autojump_clock: trio.testing.MockClock,
    triochat_server: ChatServer,
    triochat_client: ClientFactory,
) -> None:
    """An error while expecting something else fails there and then; it is not skipped."""
    alice = await triochat_client("alice")
    await alice.send(type="say", room="#nowhere", text="lost")
    await alice.send(type="who")  # a match after the error must not hide it
    start = trio.current_time()
    with pytest.raises(AssertionError, match="error while waiting for who event") as failure:
        await alice.expect("who")
    assert trio.current_time() == start
    assert '"code": "no-such-room"' in str(failure.value)


async def test_chatclient_expect_error_when_asked_for_it(
    triochat_server: ChatServer, triochat_client: ClientFactory
) -> None:
    """expect('error', ...) is how a test says a refusal is the point."""
    alice = await triochat_client("alice")
    await alice.send(type="say", room="#nowhere", text="lost")
    refusal = await alice.expect("error", code="no-such-room")
    assert refusal["text"] == "no such room: #nowhere"
    await alice.quiet()


async def test_chatclient_refused_say_fails_the_say(
    autojump_clock: trio.testing.MockClock,
    triochat_server: ChatServer,
    triochat_client: ClientFactory,
) -> None:
    """say() into a room one is not in fails with the server's error, not a timeout."""
    alice = await triochat_client("alice")
    start = trio.current_time()
    with pytest.raises(AssertionError, match=r"error while waiting for the echo of 'x'"):
        await alice.say("x", room="#nowhere")
    assert trio.current_time() == start


async def test_chatclient_expect_fails_when_the_connection_closes(
    autojump_clock: trio.testing.MockClock,
    triochat_server: ChatServer,
    triochat_client: ClientFactory,
) -> None:
    """A server that hangs up ends the wait at once with what was seen before."""
    alice = await triochat_client("alice")
    await triochat_server.shutdown()
    with pytest.raises(AssertionError, match="connection closed while waiting") as failure:
        await alice.expect("say")
    assert '"type": "shutdown"' in str(failure.value)


async def test_chatclient_confirmations_leave_other_events_unread(
    triochat_server: ChatServer, triochat_client: ClientFactory
) -> None:
    """say() waits for its echo without swallowing what arrived before it."""
    alice = await triochat_client("alice")
    bob = await triochat_client("bob")
    await bob.say("first")
    echo = await alice.say("second")
    assert echo["text"] == "second"
    await alice.expect("join", name="bob")
    await alice.expect("say", from_="bob", text="first")
    await alice.quiet()
    assert [event["type"] for event in alice.events] == ["welcome", "join", "say", "say"]


async def test_chatclient_expect_patterns_and_predicates(
    triochat_server: ChatServer, triochat_client: ClientFactory
) -> None:
    """Field values may be regular expressions or functions, and must all match."""
    alice = await triochat_client("alice")
    bob = await triochat_client("bob")
    for text in ("one", "two", "three"):
        await bob.say(text)
    said = await alice.expect("say", text=re.compile("^t"), id=lambda i: i > 2)
    assert said["text"] == "three"


async def test_chatclient_quiet_fails_on_an_unread_event(
    triochat_server: ChatServer, triochat_client: ClientFactory
) -> None:
    """quiet() fails for an event still in the stream, and for one received but unread."""
    alice = await triochat_client("alice")
    bob = await triochat_client("bob")
    with pytest.raises(AssertionError, match="unexpected data"):
        await alice.quiet()  # bob's join, not read yet
    await bob.say("hi")
    await alice.say("me too")  # reads past bob's join and line, and leaves them unread
    with pytest.raises(AssertionError, match="alice has unread events") as failure:
        await alice.quiet()
    assert '"text": "hi"' in str(failure.value)


async def test_chatclient_quit_leaves_and_closes(
    triochat_server: ChatServer, triochat_client: ClientFactory
) -> None:
    """quit() returns what was unread; the others see an ordinary leave."""
    alice = await triochat_client("alice")
    bob = await triochat_client("bob")
    assert await bob.quit() == []
    await alice.expect("join", name="bob")
    await alice.expect("leave", name="bob", reason="quit")


@pytest.mark.triochat_config(rate_limit=5, burst=20)
async def test_chatclient_two_clients_in_virtual_time(
    autojump_clock: trio.testing.MockClock,
    triochat_server: ChatServer,
    triochat_client: ClientFactory,
) -> None:
    """40 lines at 5/s after a burst of 20 arrive at 4.0 s of virtual time, in order."""
    alice = await triochat_client("alice")
    bob = await triochat_client("bob")
    start = trio.current_time()
    for n in range(40):
        await alice.send(type="say", text=f"line {n}")
    arrivals = []
    for n in range(40):
        await bob.expect("say", from_="alice", text=f"line {n}")
        arrivals.append(trio.current_time() - start)
    assert arrivals[19] == 0.0  # the burst: at once
    assert arrivals[39] == pytest.approx(4.0, abs=0.01)
    assert triochat_server.config.rate_limit == 5


@pytest.mark.triochat_config(history=0, max_clients=3)
async def test_plugin_config_marker_configures_the_server(triochat_server: ChatServer) -> None:
    """The triochat_config marker's fields reach triochat_server; others keep defaults."""
    config = triochat_server.config
    assert (config.history, config.max_clients, config.burst) == (0, 3, 20)
    assert isinstance(triochat_server.hub.store, MemoryStore)


async def test_open_test_server_and_open_client_without_the_plugin(
    nursery: trio.Nursery,
) -> None:
    """The functions under the fixtures work on any nursery, with overrides."""
    server = await open_test_server(nursery, history=1)
    assert server.config.history == 1
    alice = await open_client(nursery, server, "alice")
    await alice.say("kept")
    bob = await open_client(nursery, server, "bob")
    replay = await bob.expect("say", history=True)
    assert replay["text"] == "kept"


async def test_peer_quiet_in_memory_lets_no_time_pass(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, server: ChatServer
) -> None:
    """quiet() waited 10 ms for data: under autojump that moved the clock and fired timers."""
    silent = connect(nursery, server)  # joins as a guest after 1 s of silence
    start = trio.current_time()
    await silent.quiet()
    assert trio.current_time() == start
    assert (await silent.line()).startswith("*** welcome, guest-1!")
    assert trio.current_time() - start == pytest.approx(1.0)


async def test_peer_quiet_in_memory_sees_a_line_in_flight(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """A line in the stream but not read fails quiet(), and stays there to be read."""
    alice = await join(nursery, server, "alice")
    await join(nursery, server, "bob")
    with pytest.raises(AssertionError, match=r"unexpected data: b'\*\*\* bob joined"):
        await alice.quiet()
    await alice.expect("*** bob joined (2 online)")
    await alice.quiet()


async def test_peer_quiet_sees_an_unterminated_line() -> None:
    """Half a line already received is data too: quiet() must not call that silence."""
    test_end, far_end = trio.testing.memory_stream_pair()
    peer = Peer(test_end)
    await far_end.send_all(b"whole\nhalf a li")
    assert await peer.line() == "whole"
    with pytest.raises(AssertionError, match="unread data"):
        await peer.quiet()


async def test_peer_quiet_over_tcp_asks_the_server(start_process: StartProcess) -> None:
    """Over TCP quiet() cannot see the server settle: it asks, and checks what comes first."""
    server = await start_process()
    alice = await server.client("alice")
    carol = await server.join("carol")
    await carol.quiet()  # plain mode: the reply to /who was the next line
    await alice.expect("join", name="carol")
    await alice.quiet()  # JSON mode: likewise, with a rooms request
    bob = await server.client("bob")
    await bob.say("in flight")  # handled: alice's copy is ahead of any later reply to her
    await alice.expect("join", name="bob")
    # Already read into the buffer, or still on its way: quiet() fails either way.
    with pytest.raises(AssertionError, match=r"unread data|before the rooms reply") as failure:
        await alice.quiet()
    assert '"in flight"' in str(failure.value)


def test_plugin_imports_nothing_but_pytest() -> None:
    """Installed triochat loads the plugin in every pytest run: it must import no more."""
    probe = (
        "import sys, pytest, triochat; before = set(sys.modules); "
        "import triochat._pytest_plugin; print(sorted(set(sys.modules) - before))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=30, check=True
    )
    assert done.stdout.strip() == "['triochat._pytest_plugin']"


def test_plugin_without_pytest_trio_says_what_is_missing(pytester: pytest.Pytester) -> None:
    """Without pytest-trio the fixtures fail naming it, not "fixture 'nursery' not found"."""
    pytester.makepyfile(
        """
        def test_uses_the_server(triochat_server):
            pass
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:trio", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*install pytest-trio*"])


async def test_peer_events_are_read_through_the_schema() -> None:
    """A line that breaks the JSON schema fails the test, naming what is wrong; a good one
    is the documented object, or (typed_event) the event itself."""
    client, far = trio.testing.memory_stream_pair()
    peer = Peer(client)
    await far.send_all(b'{"type": "say", "id": 1, "from": "bob", "text": "hi", "ts": 1}\n')
    with pytest.raises(AssertionError, match="missing field 'room'"):
        await peer.event()
    line = b'{"type":"say","room":"#a","id":1,"from":"bob","text":"hi","ts":1.5}\n'
    await far.send_all(line + line)
    assert await peer.event() == json.loads(line)
    assert await peer.typed_event() == Said(1.5, "#a", 1, "bob", "hi")
    await far.send_all(b'{"type": "hologram", "ts": 1}\n')
    with pytest.raises(AssertionError, match="unknown event type 'hologram'"):
        await peer.event()
