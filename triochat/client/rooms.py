"""What the client knows about its rooms, and what it has shown in each. No I/O, no trio.

Rules of this module:

* :meth:`ClientRooms.apply` takes every server event in the order it arrives and says
  whether to show it (and which room to tag it with), or to drop it.
* **Dedupe.** A replayed message (``"history": true``) whose id is not above the last id
  shown in its room is a duplicate and is dropped; so a resume can never show a line
  twice, even from a server that ignores ``since`` and replays its usual recent history.
  Replies to the user's own ``/history`` are the exception: they are older by design.
* A *live* message is always shown. A live id at or below the last one shown can only
  mean the server's ids started again (it restarted without its store), so the room's
  count starts again from that id instead of hiding everything until it catches up.
* **The current room** is where typed text goes. It follows the server's ``current``
  events, moves at once when the user types ``/join`` (so the next line, even from a
  pipe, goes where the user meant), and is kept steady through a resume, whose
  ``current`` events are the server walking through the rooms it rejoins.
* **Unread** counts messages from other people in a room that is not current, since
  that room was last current; the prompt shows the counts.
* **Resume.** :meth:`ClientRooms.start_resume` builds the hello for a reconnect: ``since``
  is the last id shown in each room; rooms where nothing has been shown yet go in
  ``rooms`` rather than ``since: 0``, which would replay up to a thousand messages
  from before the user ever joined (on a server that replays nothing on joining).
  Such a room gets the server's usual replay on joining, its latest few lines; as
  nothing was shown there before, they are all news, and are counted as missed with
  the replayed lines of the other rooms. The session then sends
  :meth:`ClientRooms.resume_requests` (make the old current room current again, and a
  ``who`` whose answer marks the end of the replay) and calls
  :meth:`ClientRooms.finish_resume` when that answer arrives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from triochat.core.events import (
    Acted,
    Current,
    ErrorEvent,
    Event,
    Gap,
    HistoryEnd,
    Joined,
    Left,
    Presence,
    Private,
    Renamed,
    Said,
    TopicInfo,
    Welcome,
    WhoList,
)
from triochat.core.hygiene import sanitise
from triochat.core.names import PRIVATE_SINCE

__all__ = [
    "JOIN_FAILURES",
    "ClientRooms",
    "ResumeSummary",
    "RoomMemo",
    "Shown",
]

JOIN_FAILURES: Final = frozenset({"bad-room", "too-many-rooms", "no-such-room"})  # error codes
# that answer a /join; the client then goes back to the room it was in
MAX_UNREAD_IN_PROMPT: Final = 3  # rooms listed with unread counts; more become "+N"


def _same_name(a: str, b: str) -> bool:
    return a.casefold() == b.casefold()


@dataclass
class RoomMemo:
    """The client's memory of one room it is in."""

    last_id: int | None = None  # the highest message id shown (None: nothing shown yet)
    earliest_id: int | None = None  # the lowest id shown
    paged_id: int | None = None  # the lowest id a /history reply showed: /history more
    # continues from there (from earliest_id before any /history)
    page_limit: int = 0  # the N of the last /history N (0: the server's default)
    unread: int = 0  # messages from others since the room was last current
    topic: str = ""
    history_requests: int = 0  # /history replies still to come: shown even though older


@dataclass(frozen=True, slots=True)
class Shown:
    """How to show an event: tagged with its room, or quietly (not to people)."""

    tag: str = ""  # the room to name in front of the line; "" for the current room
    quiet: bool = False  # nothing a person needs (the prompt says it); --json prints it
    reply: bool = False  # a replayed line that answers the user's own /history


SHOW: Final = Shown()
QUIET: Final = Shown(quiet=True)


@dataclass(frozen=True, slots=True)
class ResumeSummary:
    """What a resume brought back."""

    missed: int  # replayed messages not shown before (see the module docstring)
    skipped: int  # messages the server would not replay (``gap``): over its resume limit
    lost_rooms: tuple[str, ...]  # rooms the client was in but the server did not rejoin


@dataclass
class _Resume:
    rooms_before: list[str]
    target: str  # the room that was current when the connection was lost
    rejoined: set[str] = field(default_factory=set)
    missed: int = 0
    skipped: int = 0


class ClientRooms:
    """The rooms the client is in, the current one, and what was shown in each."""

    def __init__(self) -> None:
        self.rooms: dict[str, RoomMemo] = {}
        self.current = ""
        self.home = ""  # the room every member starts in (the first welcome's)
        self._confirmed = ""  # the current room as the server last stated it
        self._just_joined: str | None = None
        self._resume: _Resume | None = None
        self.names: dict[str, str] = {}  # people seen (casefolded -> as written), for Tab
        # Private lines (stored ones, between registered names): the highest id shown,
        # resumed with since "@"; /history @NAME replies still to come.
        self.private_last: int | None = None
        self.private_requests = 0

    @property
    def resuming(self) -> bool:
        """True between a reconnect's hello and the answer that ends its replay."""
        return self._resume is not None

    def _room(self, room: str) -> str:
        """The event's room (sanitised: it ends up in the prompt), else the current one."""
        return sanitise(room) if room else self.current

    def _set_current(self, room: str) -> None:
        self.current = room
        memo = self.rooms.get(room)
        if memo is not None:
            memo.unread = 0

    # ----------------------------------------------------------------------------------
    # Requests

    def note_sent(self, request: Mapping[str, Any]) -> None:
        """Record a request the user's input has just sent (before any answer to it)."""
        kind, room = request.get("type"), request.get("room")
        if kind == "history" and "with" in request:
            self.private_requests += 1
            return
        if not isinstance(room, str):
            return
        if kind == "join":
            self._set_current(room)  # what the user types next belongs there
        elif kind == "history" and room in self.rooms:
            memo = self.rooms[room]
            memo.history_requests += 1
            if "before" not in request:  # /history N starts again from the newest
                memo.paged_id = None
            limit = request.get("limit")
            if isinstance(limit, int):
                memo.page_limit = limit

    def history_before(self, room: str) -> int | None:
        """Where ``/history more`` in ``room`` continues from: the oldest message a
        ``/history`` reply showed there, else the oldest message shown there at all."""
        memo = self.rooms.get(room)
        if memo is None:
            return None
        return memo.paged_id if memo.paged_id is not None else memo.earliest_id

    def page_limit(self, room: str) -> int:
        """The N of the last ``/history N`` in ``room`` (0: none yet)."""
        memo = self.rooms.get(room)
        return memo.page_limit if memo is not None else 0

    def start_resume(self, name: str) -> dict[str, Any]:
        """Begin a resume; return the hello that asks the server for it."""
        since = {r: memo.last_id for r, memo in self.rooms.items() if memo.last_id is not None}
        fresh = [r for r, m in self.rooms.items() if m.last_id is None and r != self.home]
        self._resume = _Resume(rooms_before=list(self.rooms), target=self.current)
        for memo in self.rooms.values():
            memo.history_requests = 0  # answers to a lost connection's requests never come
        self.private_requests = 0
        if self.private_last is not None:
            since[PRIVATE_SINCE] = self.private_last  # the server replays what came after
        hello: dict[str, Any] = {"type": "hello", "name": name}
        if since:
            hello["since"] = since
        if fresh:
            hello["rooms"] = fresh
        return hello

    def resume_requests(self, welcome_room: str) -> list[dict[str, Any]]:
        """What to send once a resume is welcomed, the last one marking the replay's end."""
        resume = self._resume
        assert resume is not None, "resume_requests() without start_resume()"
        requests: list[dict[str, Any]] = []
        if resume.target and resume.target != welcome_room:
            requests.append({"type": "join", "room": resume.target})
        if resume.rooms_before and welcome_room not in resume.rooms_before:
            requests.append({"type": "part", "room": welcome_room})  # the user had left it
        marker = resume.target or welcome_room
        requests.append({"type": "who", "room": marker})
        return requests

    def ends_resume(self, event: Event) -> bool:
        """True for the answer to the marker of :meth:`resume_requests`."""
        return self._resume is not None and isinstance(event, WhoList)

    def finish_resume(self) -> ResumeSummary:
        """End the resume: settle the current room and report what came back."""
        resume = self._resume
        assert resume is not None, "finish_resume() without start_resume()"
        self._resume = None
        lost = [r for r in resume.rooms_before if r not in resume.rejoined and r in self.rooms]
        for room in lost:
            del self.rooms[room]
        if resume.target in self.rooms:
            self._set_current(resume.target)
        elif self.rooms:
            self._set_current(next(iter(self.rooms)))
        self._confirmed = self.current
        return ResumeSummary(resume.missed, resume.skipped, tuple(lost))

    def abandon_resume(self) -> None:
        """The connection was lost during a resume: keep what it showed, try again later."""
        resume = self._resume
        self._resume = None
        if resume is not None and resume.target in self.rooms:
            self.current = resume.target

    # ----------------------------------------------------------------------------------
    # Events

    def apply(self, event: Event, me: str) -> Shown | None:
        """Update the state for one server event; say how to show it (None: drop it)."""
        resume = self._resume
        self._note_names(event)
        match event:
            case Said() | Acted():
                return self._chat(event, me)
            case Private():
                return self._private(event)
            case Welcome(room=room):
                room = self._room(room)
                self.rooms.setdefault(room, RoomMemo())
                if resume is not None:
                    resume.rejoined.add(room)
                    return QUIET
                self.home = room
                self._set_current(room)
                self._confirmed = room
                return SHOW
            case Joined(room=room, name=name) if _same_name(name, me):
                room = self._room(room)
                self.rooms.setdefault(room, RoomMemo())
                if resume is not None:
                    resume.rejoined.add(room)
                    return QUIET
                self._just_joined = room
                return SHOW
            case Left(room=room, name=name) if _same_name(name, me):
                self.rooms.pop(self._room(room), None)
                return SHOW
            case Current(room=room):
                return self._current(self._room(room), resume)
            case TopicInfo(room=room, topic=topic):
                room = self._room(room)
                memo = self.rooms.get(room)
                known = memo is not None and memo.topic == topic
                if memo is not None:
                    memo.topic = topic
                if resume is not None and known:
                    return QUIET
                return self._tagged(room)
            case Gap(room=room, skipped=skipped):
                if resume is not None:
                    resume.skipped += skipped
                    return QUIET
                return self._tagged(self._room(room))
            case HistoryEnd(room=room) if room.startswith("@"):
                self.private_requests = max(0, self.private_requests - 1)
                return SHOW
            case HistoryEnd(room=room):
                room = self._room(room)
                memo = self.rooms.get(room)
                if memo is not None and memo.history_requests:
                    memo.history_requests -= 1
                return self._tagged(room)
            case ErrorEvent(code=code) if code in JOIN_FAILURES:
                self.current = self._confirmed  # the /join that moved it did not happen
                return SHOW
            case Joined(room=room) | Left(room=room) | Presence(room=room) | WhoList(room=room):
                return self._tagged(self._room(room))
            case _:
                return SHOW

    def _note_names(self, event: Event) -> None:
        """Remember who the client has seen, for Tab to complete."""
        match event:
            case Said(sender=name) | Acted(sender=name) | Joined(name=name):
                seen: tuple[str, ...] = (name,)
            case WhoList(names=names):
                seen = names
            case Renamed(old=old, new=new):
                self.names.pop(old.casefold(), None)
                seen = (new,)
            case _:
                return
        for name in seen:
            clean = sanitise(name)
            self.names[clean.casefold()] = clean

    def _tagged(self, room: str) -> Shown:
        return SHOW if room == self.current else Shown(tag=room)

    def _current(self, room: str, resume: _Resume | None) -> Shown:
        if resume is not None:
            return QUIET  # the server walking through the rooms it rejoins
        before, joined = self._confirmed, self._just_joined
        self._just_joined = None
        self._set_current(room)
        self._confirmed = room
        # A line only when it says something the join line and the prompt do not.
        return QUIET if room in (before, joined) else SHOW

    def _private(self, event: Private) -> Shown | None:
        """A private line: a stored one is shown once (a resume may replay it again)."""
        if not event.id:
            return SHOW  # a guest's: never stored, never replayed
        if event.history and self.private_requests:
            return Shown(reply=True)  # an answer to /history @NAME: older by design
        if event.history and self.private_last is not None and event.id <= self.private_last:
            return None  # already shown
        if event.history and self._resume is not None:
            self._resume.missed += 1
        self.private_last = max(self.private_last or 0, event.id)
        return SHOW

    def _chat(self, event: Said | Acted, me: str) -> Shown | None:
        room = self._room(event.room)
        memo = self.rooms.get(room)
        msg_id = event.id
        if memo is None:
            return self._tagged(room)
        history = event.history
        if history and memo.history_requests:
            if memo.earliest_id is None or msg_id < memo.earliest_id:
                memo.earliest_id = msg_id
            if memo.paged_id is None or msg_id < memo.paged_id:
                memo.paged_id = msg_id
            return Shown(tag=self._tagged(room).tag, reply=True)
        if history and memo.last_id is not None and msg_id <= memo.last_id:
            return None  # already shown
        resume = self._resume
        if resume is not None and history:
            resume.missed += 1  # replayed and not shown before: posted while we were away
        memo.last_id = msg_id
        if memo.earliest_id is None or msg_id < memo.earliest_id:
            memo.earliest_id = msg_id
        if room != self.current and not _same_name(event.sender, me):
            memo.unread += 1
        return self._tagged(room)

    # ----------------------------------------------------------------------------------
    # Prompt

    def prompt(self, me: str, status: str = "") -> str:
        """The prompt: ``alice #dev [#lobby 3]> ``, after a status such as a countdown."""
        unread = [(room, memo.unread) for room, memo in self.rooms.items() if memo.unread]
        text = f"{me} {self.current}" if self.current else me
        if unread:
            shown = [f"{room} {count}" for room, count in unread[:MAX_UNREAD_IN_PROMPT]]
            if len(unread) > MAX_UNREAD_IN_PROMPT:
                shown.append(f"+{len(unread) - MAX_UNREAD_IN_PROMPT}")
            text += " [" + ", ".join(shown) + "]"
        return f"({status}) {text}> " if status else f"{text}> "
