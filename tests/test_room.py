"""Join / say / leave / nick / who / me / msg / history over in-memory streams."""

from __future__ import annotations

import time

import trio
import trio.testing

from tests.conftest import StartServer
from tests.helpers import connect, join, join_json
from triochat.core.events import HELP_LINES
from triochat.server import ChatServer
from triochat.testing import open_client


async def test_room_join_welcomes_newcomer_and_tells_others(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """A newcomer gets a welcome naming them and the count; the others get the join."""
    alice = connect(nursery, server)
    await alice.send("/nick alice")
    await alice.expect("*** welcome, alice! 1 online. Type /help for commands.")
    bob = connect(nursery, server)
    await bob.send("/nick bob")
    await bob.expect("*** welcome, bob! 2 online. Type /help for commands.")
    await alice.expect("*** bob joined (2 online)")
    await bob.quiet()


async def test_room_say_reaches_others_but_not_plain_sender(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """A plain member's chat goes to everyone else and is not echoed back to it."""
    alice = await join(nursery, server, "alice")
    bob = await join(nursery, server, "bob")
    carol = await join(nursery, server, "carol")
    await alice.expect("*** bob joined (2 online)", "*** carol joined (3 online)")
    await bob.expect("*** carol joined (3 online)")
    await bob.send("hello there")
    await alice.expect("<bob> hello there")
    await carol.expect("<bob> hello there")
    await bob.quiet()


async def test_room_order_is_the_same_for_everyone(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """Lines from several senders arrive at every member in one and the same order."""
    members = [await open_client(nursery, server, name) for name in ("a", "b", "c")]
    for member in members:
        await member.send(type="say", text=f"one from {member.name}")
        await member.send(type="say", text=f"two from {member.name}")
    seen: list[list[tuple[int, str]]] = []
    for member in members:
        says = [await member.expect("say") for _ in range(6)]  # (skips later joins)
        seen.append([(event["id"], event["text"]) for event in says])
    assert seen[0] == seen[1] == seen[2]
    assert sorted(text for _, text in seen[0]) == sorted(
        f"{n} from {m}" for n in ("one", "two") for m in "abc"
    )
    assert [event_id for event_id, _ in seen[0]] == sorted(event_id for event_id, _ in seen[0])


async def test_room_json_sender_gets_own_events_with_increasing_ids(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """JSON members get their own chat back with the server's id and timestamp."""
    alice = await open_client(nursery, server, "alice")
    before = time.time()
    first = await alice.say("first")
    await alice.send(type="me", text="waves")
    second = await alice.event()
    assert (first["type"], first["from"], first["text"]) == ("say", "alice", "first")
    assert (second["type"], second["from"], second["text"]) == ("me", "alice", "waves")
    assert second["id"] > first["id"]
    assert before - 1 <= first["ts"] <= time.time() + 1
    assert "history" not in first


async def test_room_first_line_other_text_joins_as_guest_and_is_said(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """A first line that is not a registration joins as guest-N and is still delivered."""
    alice = await join(nursery, server, "alice")
    guest = connect(nursery, server)
    await guest.send("hi all")
    await guest.expect("*** welcome, guest-1! 2 online. Type /help for commands.")
    await alice.expect("*** guest-1 joined (2 online)", "<guest-1> hi all")


async def test_room_silent_connection_joins_as_guest_after_one_second(
    nursery: trio.Nursery, server: ChatServer, autojump_clock: trio.testing.MockClock
) -> None:
    """A client that sends nothing (telnet, waiting) joins as a guest after 1 s."""
    peer = connect(nursery, server)
    start = trio.current_time()
    welcome = await peer.line()
    assert welcome.startswith("*** welcome, guest-1!")
    assert 1.0 <= trio.current_time() - start < 1.5


async def test_room_silent_close_before_first_line_announces_nothing(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """A connection that closes without a word never joins, so no join or leave is shown."""
    alice = await join(nursery, server, "alice")
    drive_by = connect(nursery, server)
    await drive_by.stream.aclose()
    await alice.quiet()
    assert server.state.online == 1


async def test_room_nick_is_confirmed_and_announced(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """A rename is confirmed to the renamer and announced to all, in both modes."""
    alice = await join(nursery, server, "alice")
    bob = await join_json(nursery, server, "bob")
    await alice.expect("*** bob joined (2 online)")
    await alice.send("/nick alicia")
    await alice.expect("*** you are now known as alicia")
    event = await bob.event()
    assert (event["type"], event["old"], event["new"]) == ("nick", "alice", "alicia")
    await bob.send_json(type="nick", name="robert")
    event = await bob.event()
    assert (event["type"], event["old"], event["new"]) == ("nick", "bob", "robert")
    await alice.expect("*** bob is now known as robert")
    assert server.state.names() == ["alicia", "robert"]


async def test_room_nick_taken_without_regard_to_case_is_refused(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """Names are unique ignoring case; a refused rename changes nothing for anyone."""
    alice = await join(nursery, server, "alice")
    bob = await join(nursery, server, "bob")
    await alice.expect("*** bob joined (2 online)")
    await bob.send("/nick ALICE")
    await bob.expect("! the name ALICE is taken")
    await bob.send("/nick not valid!")
    line = await bob.line()
    assert line.startswith("! a name may contain only")
    await alice.quiet()
    assert server.state.names() == ["alice", "bob"]


async def test_room_nick_lookalike_of_online_name_is_refused(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """`/nick aIice` (capital I) was accepted while alice was online."""
    alice = await join(nursery, server, "alice")
    bob = await join(nursery, server, "bob")
    await alice.expect("*** bob joined (2 online)")
    for lookalike in ("aIice", "a1ice", "ALlCE"):
        await bob.send(f"/nick {lookalike}")
        await bob.expect(f"! the name {lookalike} is taken: it looks too much like alice")
    await bob.send("/nick b0b")  # one's own lookalike is fine: it is still you
    await bob.expect("*** you are now known as b0b")
    mallory = connect(nursery, server)
    await mallory.send_json(type="hello", name="AIice")
    refusal = await mallory.event()
    assert refusal["code"] == "name-taken"
    assert server.state.names() == ["alice", "b0b"]


async def test_room_invisible_message_is_refused_not_broadcast(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """A message of zero width spaces and fillers was broadcast as an empty-looking line."""
    alice = await join(nursery, server, "alice")
    bob = await join(nursery, server, "bob")
    await alice.expect("*** bob joined (2 online)")
    await bob.send("\u200b\u3164\ufeff")
    await bob.expect("! that message has nothing visible in it; it was not sent")
    await bob.send("hi\u200b there")
    await alice.expect("<bob> hi there")
    await alice.quiet()


async def test_room_nick_case_change_of_own_name_is_allowed(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """Renaming alice to Alice is not refused as 'taken' by oneself."""
    alice = await join(nursery, server, "alice")
    await alice.send("/nick Alice")
    await alice.expect("*** you are now known as Alice")


async def test_room_first_line_nick_taken_joins_as_guest_with_error(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """A plain /nick registration with a taken name gets the reason and a guest name."""
    await join(nursery, server, "alice")
    second = connect(nursery, server)
    await second.send("/nick Alice")
    await second.expect("*** welcome, guest-1! 2 online. Type /help for commands.")
    await second.expect("! the name Alice is taken; you joined as guest-1")


async def test_room_json_hello_with_taken_name_is_refused_and_closed(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """A JSON client whose name is taken gets an error event and the connection closes."""
    alice = await join(nursery, server, "alice")
    impostor = connect(nursery, server)
    await impostor.send_json(type="hello", name="ALICE")
    lines = await impostor.closed()
    assert len(lines) == 1
    assert '"code":"name-taken"' in lines[0]
    await alice.quiet()
    assert server.state.online == 1


async def test_room_json_hello_with_bad_name_is_refused(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """A JSON hello with an invalid name gets a bad-name error."""
    peer = connect(nursery, server)
    await peer.send_json(type="hello", name="x" * 25)
    event = await peer.event()
    assert (event["type"], event["code"]) == ("error", "bad-name")


async def test_room_who_lists_everyone_sorted(nursery: trio.Nursery, server: ChatServer) -> None:
    """/who answers the asker only, with names sorted without regard to case."""
    carol = await join(nursery, server, "carol")
    bob = await join(nursery, server, "Bob")
    alice = await open_client(nursery, server, "alice")
    await carol.expect("*** Bob joined (2 online)", "*** alice joined (3 online)")
    await bob.expect("*** alice joined (3 online)")
    await carol.send("/who")
    await carol.expect("*** online (3): alice, Bob, carol")
    await alice.send(type="who")
    event = await alice.expect("who")
    assert event["names"] == ["alice", "Bob", "carol"]
    assert event["online"] == 3
    for peer in (alice, bob, carol):  # (the docstring's "only": nobody else got a reply)
        await peer.quiet()


async def test_room_me_is_an_action(nursery: trio.Nursery, server: ChatServer) -> None:
    """/me shows as '* name action' to others and as a 'me' event in JSON mode."""
    alice = await join(nursery, server, "alice")
    bob = await join_json(nursery, server, "bob")
    await alice.expect("*** bob joined (2 online)")
    await alice.send("/me waves")
    event = await bob.event()
    assert (event["type"], event["from"], event["text"]) == ("me", "alice", "waves")
    await bob.send_json(type="me", text="bows")
    await alice.expect("* bob bows")


async def test_room_msg_reaches_only_its_target(nursery: trio.Nursery, server: ChatServer) -> None:
    """A private message goes to the target (and back to the sender), never to others."""
    alice = await join(nursery, server, "alice")
    bob = await join(nursery, server, "bob")
    carol = await join_json(nursery, server, "carol")
    await alice.expect("*** bob joined (2 online)", "*** carol joined (3 online)")
    await bob.expect("*** carol joined (3 online)")
    await alice.send("/msg BOB lunch?")
    await bob.expect("*alice* lunch?")
    await alice.expect("-> *bob* lunch?")
    await carol.send_json(type="msg", to="alice", text="psst")
    await alice.expect("*carol* psst")
    event = await carol.event()
    assert (event["type"], event["from"], event["to"]) == ("msg", "carol", "alice")
    await bob.quiet()
    await carol.quiet()


async def test_room_msg_to_unknown_user_is_an_error(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """/msg to nobody tells the sender so and sends nothing else."""
    alice = await join(nursery, server, "alice")
    bob = await join(nursery, server, "bob")
    await alice.expect("*** bob joined (2 online)")
    await alice.send("/msg zed hi")
    await alice.expect("! no such user: zed")
    await alice.quiet()  # (it never looked: "nothing else" was not checked)
    await bob.quiet()


async def test_room_history_is_replayed_and_marked(
    nursery: trio.Nursery, start_server: StartServer
) -> None:
    """A newcomer gets the last N chat events, marked as history, after the welcome."""
    server = await start_server(history=2)
    alice = await join(nursery, server, "alice")
    for text in ("one", "two", "three"):
        await alice.send(text)
    await alice.send("/msg alice private, not history")
    await alice.expect("*alice* private, not history")
    bob = connect(nursery, server)
    await bob.send_json(type="hello", name="bob")
    assert (await bob.event())["type"] == "welcome"
    replay = [await bob.event(), await bob.event()]
    assert [e["text"] for e in replay] == ["two", "three"]
    assert all(e["history"] is True for e in replay)
    carol = connect(nursery, server)
    await carol.send("/nick carol")
    await carol.line()
    await carol.expect("*** last 2 messages:")
    line = await carol.line()
    assert line.endswith("] <alice> two")
    assert line.startswith("[")


async def test_room_history_zero_turns_replay_off(
    nursery: trio.Nursery, start_server: StartServer
) -> None:
    """--history 0 replays nothing."""
    server = await start_server(history=0)
    alice = await join(nursery, server, "alice")
    carol = await open_client(nursery, server, "carol")
    await alice.send("forgotten")
    await carol.expect("say", from_="alice", text="forgotten")  # said before bob comes
    bob = await join(nursery, server, "bob")
    await bob.quiet()


async def test_room_help_and_unknown_command(nursery: trio.Nursery, server: ChatServer) -> None:
    """/help lists the commands; an unknown command gets an error naming /help."""
    alice = await join(nursery, server, "alice")
    await alice.send("/help")
    lines = [await alice.line() for _ in range(len(HELP_LINES))]
    assert lines[0] == "*** commands:"
    assert all(line.startswith("*** ") for line in lines)
    assert any("/msg NAME TEXT" in line for line in lines)
    await alice.send("/dance")
    line = await alice.line()
    assert line.startswith("! unknown command /dance")
    assert "/help" in line


async def test_room_quit_announces_leave_and_closes(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """/quit closes the connection; the others see an ordinary leave."""
    alice = await join(nursery, server, "alice")
    bob = await join_json(nursery, server, "bob")
    await alice.expect("*** bob joined (2 online)")
    await bob.send_json(type="quit")
    assert await bob.closed() == []
    await alice.expect("*** bob left (1 online)")
    assert server.state.names() == ["alice"]


async def test_room_eof_mid_line_is_an_ordinary_leave(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """EOF after an unterminated line delivers that line, then an ordinary leave."""
    alice = await join(nursery, server, "alice")
    bob = await join(nursery, server, "bob")
    await alice.expect("*** bob joined (2 online)")
    await bob.send(b"last words")
    await bob.stream.aclose()
    await alice.expect("<bob> last words", "*** bob left (1 online)")


async def test_room_json_malformed_line_gets_error_and_stays(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """Bad JSON, unknown types and missing fields get error events; the connection stays."""
    alice = await open_client(nursery, server, "alice")
    await alice.peer.send("{oops")
    await alice.expect("error", code="bad-json")
    await alice.send(type="dance")
    await alice.expect("error", code="unknown-command")
    await alice.send(type="say")
    await alice.expect("error", code="bad-request")
    assert (await alice.say("still here"))["text"] == "still here"
    await alice.quiet()  # one error each, nothing more


async def test_room_presence_is_coalesced_in_large_rooms(
    nursery: trio.Nursery, start_server: StartServer, autojump_clock: trio.testing.MockClock
) -> None:
    """Above the threshold, joins and leaves become one summary per interval."""
    server = await start_server(coalesce_above=2)
    alice = await join(nursery, server, "alice")
    await join(nursery, server, "bob")
    await alice.expect("*** bob joined (2 online)")
    late = [await join(nursery, server, f"late{i}") for i in range(3)]
    await late[0].stream.aclose()
    await alice.quiet()  # nothing announced one by one
    await alice.expect("*** 3 joined, 1 left (4 online)")
    await alice.quiet()


async def test_room_join_of_the_current_room_is_answered(
    nursery: trio.Nursery, server: ChatServer
) -> None:
    """`/join #lobby` in #lobby was met with silence, in both modes: a client waited forever."""
    alice = await join(nursery, server, "alice")
    bob = await open_client(nursery, server, "bob")
    await alice.expect("*** bob joined (2 online)")
    await bob.send(type="join", room="#lobby")
    await bob.send(type="who")
    reply = await bob.event()
    assert (reply["type"], reply["room"]) == ("current", "#lobby"), "no reply to the JSON join"
    await alice.send("/join #lobby")
    await alice.send("/who")
    assert await alice.line() == "*** #lobby is now your current room", "no reply to the /join"
