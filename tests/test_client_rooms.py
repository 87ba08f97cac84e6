"""The client's room bookkeeping, typed-line translation and back-off schedule. No I/O.

Everything here is sans-IO: events in, decisions out. The sessions that use it are
tested against a real server in test_client.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from triochat.client.reconnect import BACKOFF_MAX, Backoff, backoff_delay
from triochat.client.requests import request_for
from triochat.client.rooms import ClientRooms, ResumeSummary, Shown
from triochat.core.commands import Invalid, Quit
from triochat.core.events import Event
from triochat.core.jsonwire import object_event


def wire(obj: dict[str, Any]) -> Event:
    """The event a JSON object stands for (``ts`` and ``online`` filled in if left out)."""
    return object_event({"ts": 0, "online": 1, **obj})


def chat(room: str, msg_id: int, sender: str = "bob", **extra: Any) -> Event:
    return wire(
        {
            "type": "say",
            "ts": 0,
            "room": room,
            "id": msg_id,
            "from": sender,
            "text": "x",
            **extra,
        }
    )


def welcomed(*others: str, me: str = "alice") -> ClientRooms:
    """State after the welcome into #lobby and joining ``others`` (the last is current)."""
    rooms = ClientRooms()
    rooms.apply(wire({"type": "welcome", "name": me, "room": "#lobby", "online": 1}), me)
    for room in others:
        rooms.apply(wire({"type": "join", "room": room, "name": me, "online": 1}), me)
        rooms.apply(wire({"type": "current", "room": room}), me)
    return rooms


# ---------------------------------------------------------------------------------------
# Dedupe, unread, current


def test_rooms_replayed_duplicate_is_dropped() -> None:
    """A replayed message at or below the last id shown in its room is never shown twice."""
    rooms = welcomed()
    assert rooms.apply(chat("#lobby", 5), "alice") == Shown()
    assert rooms.apply(chat("#lobby", 5, history=True), "alice") is None
    assert rooms.apply(chat("#lobby", 4, history=True), "alice") is None
    assert rooms.apply(chat("#lobby", 6, history=True), "alice") == Shown()
    assert rooms.rooms["#lobby"].last_id == 6


def test_rooms_live_id_going_backwards_restarts_the_count() -> None:
    """A live message below the last id (a server restarted without its store) is shown."""
    rooms = welcomed()
    rooms.apply(chat("#lobby", 40), "alice")
    assert rooms.apply(chat("#lobby", 1), "alice") == Shown()
    assert rooms.rooms["#lobby"].last_id == 1
    assert rooms.apply(chat("#lobby", 2, history=True), "alice") == Shown()


def test_rooms_ids_are_per_room() -> None:
    """Id 3 in #dev is not a duplicate of id 3 in #lobby."""
    rooms = welcomed("#dev")
    rooms.apply(chat("#lobby", 3), "alice")
    assert rooms.apply(chat("#dev", 3, history=True), "alice") == Shown()


def test_rooms_other_rooms_are_tagged_and_counted_unread() -> None:
    """Messages from a room that is not current are tagged and counted until it is current."""
    rooms = welcomed("#dev")
    assert rooms.apply(chat("#lobby", 1), "alice") == Shown(tag="#lobby")
    rooms.apply(chat("#lobby", 2), "alice")
    rooms.apply(chat("#lobby", 3, sender="ALICE"), "alice")  # your own: not unread
    assert rooms.apply(chat("#dev", 1), "alice") == Shown()
    assert rooms.rooms["#lobby"].unread == 2
    assert rooms.prompt("alice") == "alice #dev [#lobby 2]> "
    assert rooms.apply(wire({"type": "current", "room": "#lobby"}), "alice") == Shown()
    assert rooms.prompt("alice") == "alice #lobby> "


def test_rooms_prompt_lists_three_rooms_then_a_count() -> None:
    """The prompt stays short: three unread rooms, then "+N"."""
    rooms = welcomed("#a", "#b", "#c", "#d", "#e")
    for room in ("#lobby", "#a", "#b", "#c"):
        rooms.apply(chat(room, 1), "alice")
    assert rooms.prompt("alice") == "alice #e [#lobby 1, #a 1, #b 1, +1]> "
    assert rooms.prompt("alice", "reconnecting in 2 s").startswith("(reconnecting in 2 s) alice")


def test_rooms_join_moves_current_at_once_and_a_failure_moves_it_back() -> None:
    """After typing /join the next line goes there; a refused join returns to the old room."""
    rooms = welcomed()
    rooms.note_sent({"type": "join", "room": "#dev"})
    assert rooms.current == "#dev"
    rooms.apply(wire({"type": "error", "code": "too-many-rooms", "text": "no"}), "alice")
    assert rooms.current == "#lobby"


def test_rooms_current_after_own_join_is_quiet() -> None:
    """Joining shows one line ("you joined"); the current event that follows adds none."""
    rooms = welcomed()
    me = "alice"
    assert rooms.apply(wire({"type": "join", "room": "#dev", "name": me}), me) == Shown()
    assert rooms.apply(wire({"type": "current", "room": "#dev"}), me) == Shown(quiet=True)
    rooms.apply(wire({"type": "join", "room": "#ops", "name": me}), me)
    rooms.apply(wire({"type": "current", "room": "#ops"}), me)
    assert rooms.apply(wire({"type": "current", "room": "#dev"}), me) == Shown()  # a real switch


def test_rooms_parting_forgets_the_room() -> None:
    """Your own leave removes the room (and its unread count) from the state."""
    rooms = welcomed("#dev")
    rooms.apply(chat("#lobby", 1), "alice")
    left = wire({"type": "leave", "room": "#lobby", "name": "alice", "reason": "part"})
    rooms.apply(left, "alice")
    assert list(rooms.rooms) == ["#dev"]
    assert rooms.prompt("alice") == "alice #dev> "


def test_rooms_history_reply_is_shown_though_older() -> None:
    """Replies to /history are older than what was shown, yet not dropped as duplicates."""
    rooms = welcomed()
    rooms.apply(chat("#lobby", 30), "alice")
    assert rooms.history_before("#lobby") == 30
    rooms.note_sent({"type": "history", "room": "#lobby", "limit": 2, "before": 30})
    assert rooms.apply(chat("#lobby", 28, history=True), "alice") == Shown(reply=True)
    assert rooms.apply(chat("#lobby", 29, history=True), "alice") == Shown(reply=True)
    rooms.apply(wire({"type": "history-end", "room": "#lobby", "count": 2, "more": True}), "alice")
    assert rooms.history_before("#lobby") == 28
    assert rooms.apply(chat("#lobby", 29, history=True), "alice") is None  # dedupe is back


# ---------------------------------------------------------------------------------------
# Resume


def test_rooms_resume_hello_resumes_seen_rooms_and_joins_the_rest() -> None:
    """since has the last id shown per room; rooms with nothing shown go in "rooms"."""
    rooms = welcomed("#ops", "#dev")
    rooms.apply(chat("#lobby", 41), "alice")
    rooms.apply(chat("#dev", 7), "alice")
    hello = rooms.start_resume("alice")
    assert hello == {
        "type": "hello",
        "name": "alice",
        "since": {"#lobby": 41, "#dev": 7},
        "rooms": ["#ops"],
    }
    assert rooms.resuming


def test_rooms_resume_of_the_lobby_alone_asks_for_nothing_extra() -> None:
    """Nothing shown yet in #lobby: a plain hello (the lobby is joined anyway)."""
    assert welcomed().start_resume("alice") == {"type": "hello", "name": "alice"}


def test_rooms_resume_keeps_current_room_and_counts_missed() -> None:
    """The server walks through its rooms; the client's current room and unread stay right."""
    me = "alice"
    rooms = welcomed("#dev")
    rooms.apply(chat("#lobby", 2), me)  # unread: 1
    rooms.apply(chat("#dev", 5), me)
    rooms.start_resume(me)
    welcome = wire({"type": "welcome", "name": me, "room": "#lobby"})
    assert rooms.apply(welcome, me) == Shown(quiet=True)
    assert rooms.resume_requests("#lobby") == [
        {"type": "join", "room": "#dev"},
        {"type": "who", "room": "#dev"},
    ]
    assert rooms.apply(chat("#lobby", 2, history=True), me) is None
    assert rooms.apply(chat("#lobby", 3, history=True), me) == Shown(tag="#lobby")
    assert rooms.apply(wire({"type": "join", "room": "#dev", "name": me}), me) == Shown(quiet=True)
    assert rooms.apply(wire({"type": "current", "room": "#dev"}), me) == Shown(quiet=True)
    gap = wire({"type": "gap", "room": "#dev", "skipped": 10})
    assert rooms.apply(gap, me) == Shown(quiet=True)
    assert rooms.apply(chat("#dev", 16, history=True), me) == Shown()
    assert rooms.apply(wire({"type": "current", "room": "#lobby"}), me) == Shown(quiet=True)
    assert rooms.current == "#dev"
    assert rooms.ends_resume(wire({"type": "who", "room": "#dev", "names": [me]}))
    assert rooms.finish_resume() == ResumeSummary(missed=2, skipped=10, lost_rooms=())
    assert not rooms.resuming
    assert rooms.prompt(me) == "alice #dev [#lobby 2]> "


def test_rooms_resume_reports_rooms_not_rejoined() -> None:
    """A room the server did not rejoin is dropped and named, not kept as a ghost."""
    me = "alice"
    rooms = welcomed("#dev")
    rooms.start_resume(me)
    rooms.apply(wire({"type": "welcome", "name": me, "room": "#lobby"}), me)
    rooms.apply(wire({"type": "error", "code": "too-many-rooms", "text": "no"}), me)
    summary = rooms.finish_resume()
    assert summary.lost_rooms == ("#dev",)
    assert rooms.current == "#lobby"


def test_rooms_resume_parts_the_lobby_again_if_the_user_had() -> None:
    """Every hello lands in #lobby; if the user had parted it, the client parts it again."""
    me = "alice"
    rooms = welcomed("#dev")
    rooms.apply(wire({"type": "leave", "room": "#lobby", "name": me, "reason": "part"}), me)
    rooms.start_resume(me)
    rooms.apply(wire({"type": "welcome", "name": me, "room": "#lobby"}), me)
    assert {"type": "part", "room": "#lobby"} in rooms.resume_requests("#lobby")


# ---------------------------------------------------------------------------------------
# Typed lines


@pytest.mark.parametrize(
    ("line", "wanted"),
    [
        ("hello", {"type": "say", "text": "hello", "room": "#dev"}),
        ("//etc", {"type": "say", "text": "/etc", "room": "#dev"}),
        ("/me waves", {"type": "me", "text": "waves", "room": "#dev"}),
        ("/join Ops", {"type": "join", "room": "#ops"}),
        ("/JOIN #ops", {"type": "join", "room": "#ops"}),
        ("/part", {"type": "part", "room": "#dev"}),
        ("/part #lobby", {"type": "part", "room": "#lobby"}),
        ("/who", {"type": "who", "room": "#dev"}),
        ("/who lobby", {"type": "who", "room": "#lobby"}),
        ("/rooms", {"type": "rooms"}),
        ("/topic", {"type": "topic", "room": "#dev"}),
        ("/topic ship it", {"type": "topic", "room": "#dev", "text": "ship it"}),
        ("/history", {"type": "history", "room": "#dev", "limit": 20}),
        ("/history 5", {"type": "history", "room": "#dev", "limit": 5}),
        ("/msg bob hi", {"type": "msg", "to": "bob", "text": "hi"}),
        ("/nick ally", {"type": "nick", "name": "ally"}),
    ],
)
def test_request_for_names_the_current_room(line: str, wanted: dict[str, Any]) -> None:
    """Typed lines become JSON requests; room-scoped ones name the client's current room."""
    assert request_for(line, welcomed("#dev")) == wanted


def test_request_for_history_n_is_the_last_n() -> None:
    """/history N asks for the room's last N, not for those before the replay (which was
    often nothing: only "end of /history" was printed)."""
    rooms = welcomed()
    rooms.apply(chat("#lobby", 12), "alice")
    assert request_for("/history 3", rooms) == {"type": "history", "room": "#lobby", "limit": 3}


def test_request_for_history_more_pages_back_from_the_last_reply() -> None:
    """/history more continues before the oldest line /history showed, with the same N."""
    rooms = welcomed()
    rooms.apply(chat("#lobby", 12), "alice")
    assert request_for("/history more", rooms) == {
        "type": "history",
        "room": "#lobby",
        "before": 12,
    }
    typed = request_for("/history 3", rooms)
    assert isinstance(typed, dict)
    rooms.note_sent(typed)
    for msg_id in (10, 11, 12):
        rooms.apply(chat("#lobby", msg_id, history=True), "alice")
    assert request_for(" /History MORE ", rooms) == {
        "type": "history",
        "room": "#lobby",
        "limit": 3,
        "before": 10,
    }


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("/join", "bad-request"),
        ("/join #no way", "bad-room"),
        ("/join #" + "x" * 33, "bad-room"),
        ("/history 0", "bad-request"),
        ("/history 201", "bad-request"),
        ("/frob", "unknown-command"),
    ],
)
def test_request_for_bad_commands_stay_local(line: str, code: str) -> None:
    """A malformed room command is an error shown locally; nothing is sent."""
    typed = request_for(line, welcomed())
    assert isinstance(typed, Invalid)
    assert typed.code == code


@pytest.mark.parametrize(
    ("line", "text"),
    [
        ("/away at lunch", "at lunch"),
        ("/AWAY   back at 3  ", "back at 3"),
        ("/away", ""),
        ("  /away  ", ""),
        ("/away \x1b[2Jgone", "gone"),
    ],
)
def test_request_for_away_sets_or_clears(line: str, text: str) -> None:
    """/away MESSAGE sets the away message; /away alone clears it (text "")."""
    assert request_for(line, welcomed()) == {"type": "away", "text": text}


def test_request_for_away_needs_the_whole_verb() -> None:
    """/awayx is another (unknown) command, and "away" alone is chat."""
    assert isinstance(request_for("/awayx", welcomed()), Invalid)
    assert request_for("away for lunch", welcomed()) == {
        "type": "say",
        "text": "away for lunch",
        "room": "#lobby",
    }


def test_request_for_quit_and_blank() -> None:
    """/quit leaves; a blank line is nothing at all."""
    assert isinstance(request_for("/quit", welcomed()), Quit)
    assert request_for("   ", welcomed()) is None


# ---------------------------------------------------------------------------------------
# Back-off


def test_backoff_delay_doubles_from_half_a_second_to_thirty() -> None:
    """With no jitter the schedule is 0.5, 1, 2, 4, 8, 16, 30, 30 seconds."""
    assert [backoff_delay(n, 0.0) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert backoff_delay(10_000, 0.0) == BACKOFF_MAX  # no overflow, however long it runs


def test_backoff_delay_jitter_stays_within_half_of_nominal() -> None:
    """Jitter shortens a wait by at most half, and never lengthens it past the cap."""
    assert backoff_delay(0, 0.999999) == pytest.approx(0.25, rel=1e-5)
    assert backoff_delay(7, 0.5) == pytest.approx(22.5)
    with pytest.raises(ValueError, match="draw"):
        backoff_delay(0, 1.0)


def test_backoff_steps_and_resets() -> None:
    """Each try moves one step; reset starts over from half a second."""
    draws = iter([0.0, 0.0, 0.0, 0.5])
    backoff = Backoff(lambda: next(draws))
    assert [backoff.next_delay() for _ in range(3)] == [0.5, 1.0, 2.0]
    backoff.reset()
    assert backoff.next_delay() == 0.375


def test_rooms_prompt_never_carries_escapes_from_the_server() -> None:
    """A room name with an escape sequence is sanitised before it reaches the prompt."""
    rooms = welcomed()
    rooms.apply(wire({"type": "join", "room": "#x\x1b[2J", "name": "alice"}), "alice")
    rooms.apply(wire({"type": "current", "room": "#x\x1b]0;pwned\x07"}), "alice")
    assert "\x1b" not in rooms.prompt("alice")
