"""Mentions and notifications: the one rule, /notify levels, /mentions, the bell.

The rule (a line names you: ``alice`` or ``@alice``, word-bounded, case-folded) lives in
``triochat.core.mentions``; ``/notify`` levels are kept per account in the store (for a
guest, for the session); ``/mentions`` lists what named a registered member since it
last left; the terminal's bell follows each room's level.
"""

from __future__ import annotations

import io
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from tests.desk import NOW, Desk, parse
from tests.test_ui import say
from triochat.client.requests import request_for
from triochat.client.rooms import ClientRooms
from triochat.client.view import BELL, ChatView, make_console
from triochat.core.codec import Mode
from triochat.core.commands import Invalid, Mentions, Notify, parse_json, parse_plain
from triochat.core.events import NotifyInfo
from triochat.core.jsonwire import decode_event
from triochat.core.mentions import alerts, is_mention, mention_spans
from triochat.core.names import name_key
from triochat.core.notify import MAX_MENTIONS
from triochat.core.records import SaveAccount, SaveNotify, SaveSeen
from triochat.store import MemoryStore, SQLiteStore, Store

KEY = name_key("alice")  # what the store keys accounts by

# --------------------------------------------------------------------------------------
# The rule


@pytest.mark.parametrize(
    ("text", "spans"),
    [
        ("alice", [(0, 5)]),
        ("hi @Alice!", [(3, 9)]),
        ("ALICE. see you", [(0, 5)]),  # a sentence's full stop still names her
        ("alice.smith was here", []),  # a longer name
        ("malice aforethought", []),
        ("alice_2 or alice-b", []),
        ("alice, alice", [(0, 5), (7, 12)]),
    ],
)
def test_mention_rule_word_bounded_case_folded(text: str, spans: list[tuple[int, int]]) -> None:
    assert mention_spans(text, "alice") == spans


@pytest.mark.parametrize(
    ("level", "plain", "named"),
    [("all", True, True), ("mentions", False, True), ("none", False, False)],
)
def test_alerts_follow_the_level(level: str, plain: bool, named: bool) -> None:
    assert alerts(say("nothing to see"), "alice", level) is plain
    assert alerts(say("hey alice"), "alice", level) is named
    assert not alerts(say("my own line", sender="Alice"), "alice", level)
    assert not alerts(say("alice", history=True), "alice", level)
    assert is_mention(say("@ALICE"), "alice")


# --------------------------------------------------------------------------------------
# Parsing


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("/notify", Notify()),
        ("/notify ALL", Notify(None, "all")),
        ("/notify #Dev", Notify("#dev")),
        ("/notify dev none", Notify("#dev", "none")),
        ("/notify #dev loud", Invalid("bad-request", "usage: /notify [ROOM] [all|mentions|none]")),
        ("/notify #a all x", Invalid("bad-request", "usage: /notify [ROOM] [all|mentions|none]")),
        ("/mentions", Mentions()),
    ],
)
def test_notify_and_mentions_parse_in_plain_mode(line: str, command: Any) -> None:
    assert parse_plain(line) == command


def test_notify_and_mentions_parse_in_json_mode() -> None:
    assert parse_json('{"type": "notify", "room": "#dev", "level": "none"}') == Notify(
        "#dev", "none"
    )
    assert parse_json('{"type": "notify"}') == Notify()
    assert isinstance(parse_json('{"type": "notify", "level": "loud"}'), Invalid)
    assert isinstance(parse_json('{"type": "notify", "level": 3}'), Invalid)
    assert parse_json('{"type": "mentions"}') == Mentions()


def test_client_sends_notify_for_its_current_room() -> None:
    rooms = ClientRooms()
    rooms.current = "#dev"
    assert request_for("/notify all", rooms) == {"type": "notify", "room": "#dev", "level": "all"}
    assert request_for("/notify #ops", rooms) == {"type": "notify", "room": "#ops"}
    assert request_for("/mentions", rooms) == {"type": "mentions"}


# --------------------------------------------------------------------------------------
# The state, with a store


class StoredDesk(Desk):
    """A desk whose every batch is committed to a real store, as the hub does."""

    def __init__(self, store: Store, **options: Any) -> None:
        super().__init__(**options)
        self.store = store
        self.hashes = {key: self._hash(key) for key in store.account_keys()}
        self.state.load_access(store.account_keys(), [], [], [])
        self.state.load_prefs(store.load_prefs())

    def _hash(self, key: str) -> str:
        account = self.store.account(key)
        assert account is not None
        return account.password_hash

    def save(self) -> None:
        batch = self.state.take_effects().batch
        self.store.commit(batch)
        for change in batch.changes:
            if isinstance(change, SaveAccount):
                self.hashes[change.record.key] = change.record.password_hash

    def log_in(self, name: str) -> tuple[Any, Any]:
        _, member, link = self.connect(Mode.PLAIN, parse(f"/login {name} correct-horse"))
        assert member is None  # pending: the password is checked first
        self.run_jobs()
        member = self.state.holder(name)
        assert member is not None, link.lines()
        assert member.account is not None
        return member, link


def test_notify_levels_are_kept_across_a_restart(tmp_path: Path) -> None:
    """A registered member's levels go to SQLite and come back when it logs in again."""
    db = tmp_path / "chat.db"
    store = SQLiteStore.open(db)
    desk = StoredDesk(store)
    alice, link = desk.registered("alice")
    desk.state.handle(alice, parse("/notify all"))
    desk.state.handle(alice, parse("/notify #dev none"))
    assert link.lines() == [
        "*** notifications in #lobby: all (every line alerts you)",
        "*** notifications in #dev: none (nothing alerts you: muted)",
    ]
    desk.state.handle(alice, parse("/quit"))
    desk.save()
    store.close()

    store = SQLiteStore.open(db)
    try:
        levels = [p for p in store.load_prefs() if isinstance(p, SaveNotify)]
        assert sorted(levels, key=lambda p: p.room) == [
            SaveNotify(KEY, "#dev", "none"),
            SaveNotify(KEY, "#lobby", "all"),
        ]
        assert SaveSeen(KEY, NOW) in store.load_prefs()
        again = StoredDesk(store)
        alice, link = again.log_in("alice")
        lines = link.lines()
        assert "*** notifications in #dev: none (nothing alerts you: muted)" in lines
        assert "*** notifications in #lobby: all (every line alerts you)" in lines
        again.state.handle(alice, parse("/notify"))
        assert link.lines() == ["*** notifications in #lobby: all (every line alerts you)"]
    finally:
        store.close()


def test_notify_in_json_mode() -> None:
    """JSON members get a ``notify`` event with the room and the level."""
    desk = Desk()
    _, member, link = desk.json("carol")
    assert member is not None
    link.lines()
    desk.state.handle(member, Notify("#lobby", "none"))
    (event,) = [decode_event(line) for line in link.lines()]
    assert isinstance(event, NotifyInfo)
    assert (event.room, event.level) == ("#lobby", "none")


def test_guest_levels_last_for_the_session_only() -> None:
    """A guest's /notify is told and used, but never stored; /mentions is refused."""
    desk = Desk()
    guest, link = desk.plain("gus")
    desk.state.handle(guest, parse("/notify none"))
    assert link.lines() == ["*** notifications in #lobby: none (nothing alerts you: muted)"]
    assert desk.state.notifications.level(guest, "#lobby") == "none"
    desk.state.handle(guest, parse("/mentions"))
    assert link.lines() == ["! /mentions is for registered names: /register PASSWORD keeps yours"]
    desk.state.handle(guest, parse("/quit"))
    assert desk.state.take_effects().batch.prefs == []  # no level, no last-seen time
    again, link = desk.plain("gus")
    assert desk.state.notifications.level(again, "#lobby") == "mentions"


def test_mentions_lists_what_named_you_while_away() -> None:
    """Lines naming alice after she left, in her rooms, newest first; not before, not hers."""
    store = MemoryStore()
    desk = StoredDesk(store)
    alice, _ = desk.registered("alice")
    bob, _ = desk.plain("bob")
    desk.state.handle(bob, parse("alice: before you left"))
    desk.now += 10
    desk.state.handle(alice, parse("/quit"))
    desk.save()
    for text in ("hi @Alice", "alice.smith is not you", "malice", "ALICE. back soon?"):
        desk.now += 10
        desk.state.handle(bob, parse(text))
    desk.save()
    alice, link = desk.log_in("alice")
    link.lines()
    desk.state.handle(alice, parse("/mentions"))
    link.serve(store)
    lines = link.lines()
    assert lines[0] == "*** mentions of you since 2026-11-26 17:40 UTC (2, newest first):"
    assert [line.split("> ", 1)[1] for line in lines[1:]] == ["ALICE. back soon?", "hi @Alice"]
    assert all(line.startswith("***   #lobby [2026-11-26 17:4") for line in lines[1:])
    desk.state.handle(alice, parse("alice: my own line"))
    desk.state.handle(alice, parse("/mentions"))
    desk.save()
    link.serve(store)
    assert len(link.lines()) == 3  # the same two: her own line is not a mention


def test_mentions_are_bounded_and_json_has_the_records() -> None:
    desk = StoredDesk(MemoryStore())
    alice, _ = desk.registered("alice")
    bob, _ = desk.plain("bob")
    desk.state.handle(alice, parse("/quit"))
    for number in range(MAX_MENTIONS + 10):
        desk.now += 1
        desk.state.handle(bob, parse(f"alice {number}"))
    desk.save()
    _, member, link = desk.json("alice", password="correct-horse")
    assert member is None
    desk.run_jobs()
    back = desk.state.holder("alice")
    assert back is not None
    link.lines()
    desk.state.handle(back, Mentions())
    link.serve(desk.store)
    (event,) = link.events()
    assert event["type"] == "mentions"
    assert event["since"] == NOW
    found = event["mentions"]
    assert len(found) == MAX_MENTIONS
    assert found[0]["text"] == f"alice {MAX_MENTIONS + 9}"  # newest first
    assert set(found[0]) == {"room", "id", "ts", "from", "text"}


# --------------------------------------------------------------------------------------
# The terminal client's bell


def _view() -> tuple[ChatView, io.StringIO]:
    file = io.StringIO()
    console = make_console(file=file, force_terminal=True, width=100)
    return ChatView(console, "alice", tz=UTC), file


def test_bell_follows_each_rooms_level() -> None:
    """all: every line rings; mentions (default): only a mention; none: nothing."""
    view, out = _view()
    view.show(say("nothing for you", room="#lobby"))
    assert BELL not in out.getvalue()
    view.show(NotifyInfo(NOW, "#lobby", "all"))
    view.show(say("nothing for you", room="#lobby"))
    assert out.getvalue().count(BELL) == 1
    view.show(say("alice, in another room", room="#dev"))  # default there: a mention rings
    assert out.getvalue().count(BELL) == 2
    view.show(NotifyInfo(NOW, "#dev", "none"))
    view.show(say("alice, muted", room="#dev"))
    assert out.getvalue().count(BELL) == 2
    assert "notifications in #dev: none" in out.getvalue()


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
def test_a_dropped_accounts_settings_go_with_it(tmp_path: Path, kind: str) -> None:
    """Whoever registers a dropped name next starts afresh: no levels, no last-seen time."""
    store = SQLiteStore.open(tmp_path / "chat.db") if kind == "sqlite" else MemoryStore()
    try:
        desk = StoredDesk(store, ops=("boss",))
        boss, _ = desk.registered("boss")
        alice, _ = desk.registered("alice")
        desk.state.handle(alice, parse("/notify none"))
        desk.state.handle(alice, parse("/quit"))
        desk.save()
        assert {p.key for p in store.load_prefs()} == {KEY}
        desk.state.handle(boss, parse("/drop alice"))
        desk.save()
        assert store.load_prefs() == []
        assert KEY not in desk.state.world.levels
        assert KEY not in desk.state.world.seen
    finally:
        store.close()
