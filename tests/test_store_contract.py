"""The Store contract, held against both stores: MemoryStore and SQLiteStore."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.deadlines import DISK_DEADLINE
from triochat.core.records import (
    DropAccount,
    DropBan,
    DropMute,
    DropOp,
    SaveAccount,
    SaveBan,
    SaveMute,
    SaveOp,
)
from triochat.store import (
    AccountRecord,
    BanRecord,
    Batch,
    MemoryStore,
    MuteRecord,
    OpRecord,
    RoomRecord,
    SQLiteStore,
    Store,
    StoredMessage,
)
from triochat.store.retention import SECONDS_PER_DAY

NOW = 1_700_000_000.0  # a fixed "now" for retention by age


def msg(room: str, id: int, ts: float = NOW, text: str | None = None) -> StoredMessage:
    """A ``say`` by bob (text defaults to one naming the room and id)."""
    return StoredMessage(room, id, ts, "say", "bob", text if text is not None else f"{room} {id}")


def ids(messages: list[StoredMessage]) -> list[int]:
    return [m.id for m in messages]


def fill(store: Store, room: str, last: int, ts: float = NOW) -> None:
    """Commit messages 1..last to ``room``."""
    store.commit(Batch([msg(room, i, ts) for i in range(1, last + 1)]))


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Each store implementation, fresh and empty; closed after the test."""
    opened: Store = (
        MemoryStore() if request.param == "memory" else SQLiteStore.open(tmp_path / "t.db")
    )
    yield opened
    opened.close()


def test_store_roundtrip_keeps_every_field(store: Store) -> None:
    """What is committed is read back field for field: say and me, unicode, timestamps."""
    said = StoredMessage("#lobby", 1, 1.5, "say", "ann", "héllo ✓")
    acted = StoredMessage("#lobby", 2, 2.25, "me", "bob", "waves")
    store.commit(Batch([said, acted], [RoomRecord("#lobby", 0, "tea", "ann", 1.25)]))
    assert store.recent("#lobby", 10) == [said, acted]
    assert store.load_rooms() == [RoomRecord("#lobby", 2, "tea", "ann", 1.25)]


def test_store_ids_are_per_room(store: Store) -> None:
    """Two rooms may both have id 1; each room's history and last_id are its own."""
    store.commit(Batch([msg("#a", 1), msg("#b", 1), msg("#a", 2)]))
    assert ids(store.recent("#a", 10)) == [1, 2]
    assert ids(store.recent("#b", 10)) == [1]
    assert [(r.name, r.last_id) for r in store.load_rooms()] == [("#a", 2), ("#b", 1)]


def test_store_message_rooms_appear_without_a_room_record(store: Store) -> None:
    """A message alone creates its room's record, so load_rooms knows its last id."""
    store.commit(Batch([msg("#new", 7)]))
    assert store.load_rooms() == [RoomRecord("#new", 7)]


def test_store_commit_of_a_landed_batch_again_is_harmless(store: Store) -> None:
    """A retried batch that (partly) landed before commits cleanly, without duplicates."""
    store.commit(Batch([msg("#a", 1), msg("#a", 2)]))
    store.commit(Batch([msg("#a", 1), msg("#a", 2), msg("#a", 3)]))
    assert ids(store.recent("#a", 10)) == [1, 2, 3]


def test_store_room_record_never_lowers_last_id(store: Store) -> None:
    """A topic change sent with last_id 0 keeps the room's last id; the topic is replaced."""
    fill(store, "#a", 5)
    store.commit(Batch(rooms=[RoomRecord("#a", 0, "first", "ann", 1.0)]))
    store.commit(Batch(rooms=[RoomRecord("#a", 0, "second", "bob", 2.0)]))
    assert store.load_rooms() == [RoomRecord("#a", 5, "second", "bob", 2.0)]


def test_store_later_room_record_in_one_batch_wins(store: Store) -> None:
    """Two topic changes merged into one batch land in order: the later one stays."""
    store.commit(
        Batch(rooms=[RoomRecord("#a", topic="old", topic_by="ann"), RoomRecord("#a", topic="new")])
    )
    assert store.load_rooms()[0].topic == "new"


def test_store_empty_batch_changes_nothing(store: Store) -> None:
    """An empty batch (a flush with nothing stored) is a no-op."""
    store.commit(Batch())
    assert store.load_rooms() == []


def test_store_recent_returns_the_last_n_oldest_first(store: Store) -> None:
    """recent() is the newest ``limit`` in chronological order; unknown rooms are empty."""
    fill(store, "#a", 10)
    assert ids(store.recent("#a", 3)) == [8, 9, 10]
    assert ids(store.recent("#a", 50)) == list(range(1, 11))
    assert store.recent("#a", 0) == []
    assert store.recent("#nowhere", 5) == []


def test_store_since_returns_everything_newer_when_it_fits(store: Store) -> None:
    """A client that missed a few messages gets all of them and no gap."""
    fill(store, "#a", 10)
    messages, skipped = store.since("#a", 7, 5)
    assert (ids(messages), skipped) == ([8, 9, 10], 0)
    messages, skipped = store.since("#a", 5, 5)
    assert (ids(messages), skipped) == ([6, 7, 8, 9, 10], 0)


def test_store_since_with_a_gap_returns_the_newest_and_counts_the_skipped(store: Store) -> None:
    """More than ``limit`` missed: the newest ``limit``, oldest first, plus the older count."""
    fill(store, "#a", 10)
    messages, skipped = store.since("#a", 2, 3)
    assert (ids(messages), skipped) == ([8, 9, 10], 5)
    messages, skipped = store.since("#a", 0, 0)
    assert (messages, skipped) == ([], 10)


def test_store_since_up_to_date_or_ahead_is_empty(store: Store) -> None:
    """A client at (or, after a database swap, beyond) the last id gets nothing, no gap."""
    fill(store, "#a", 4)
    assert store.since("#a", 4, 10) == ([], 0)
    assert store.since("#a", 99, 10) == ([], 0)
    assert store.since("#nowhere", 0, 10) == ([], 0)


def test_store_since_counts_only_what_is_still_stored(store: Store) -> None:
    """After retention, skipped counts the stored messages left out, not pruned ones."""
    fill(store, "#a", 10)
    store.prune(NOW, None, 6)  # keeps 5..10
    messages, skipped = store.since("#a", 1, 2)
    assert (ids(messages), skipped) == ([9, 10], 4)


def test_store_before_pages_back_through_history(store: Store) -> None:
    """Scrollback: the ``limit`` just before an id, oldest first, until the start."""
    fill(store, "#a", 10)
    assert ids(store.before("#a", 8, 3)) == [5, 6, 7]
    assert ids(store.before("#a", 3, 5)) == [1, 2]
    assert store.before("#a", 1, 5) == []
    assert ids(store.before("#a", 1000, 2)) == [9, 10]


@pytest.mark.parametrize(
    "read",
    [
        lambda store: store.recent("#a", -1),
        lambda store: store.since("#a", 0, -1),
        lambda store: store.before("#a", 5, -1),
    ],
    ids=["recent", "since", "before"],
)
def test_store_negative_limit_is_refused(store: Store, read: Callable[[Store], object]) -> None:
    """A negative limit is a bug (SQLite would read it as 'no limit'), not a huge read."""
    with pytest.raises(ValueError, match="limit"):
        read(store)


def test_store_retention_by_count_keeps_the_last_n_per_room(store: Store) -> None:
    """retain_messages keeps each room's newest N and returns how many went."""
    fill(store, "#a", 10)
    fill(store, "#b", 3)
    assert store.prune(NOW, None, 4) == 6
    assert ids(store.recent("#a", 100)) == [7, 8, 9, 10]
    assert ids(store.recent("#b", 100)) == [1, 2, 3]
    assert store.prune(NOW, None, 4) == 0


def test_store_retention_by_age_deletes_older_messages(store: Store) -> None:
    """retain_days deletes what is older than now minus that many days, in every room."""
    day = SECONDS_PER_DAY
    store.commit(
        Batch(
            [msg("#a", 1, NOW - 10 * day), msg("#a", 2, NOW - 2 * day), msg("#b", 1, NOW - 5 * day)]
        )
    )
    store.commit(Batch([msg("#a", 3, NOW), msg("#b", 2, NOW - 0.5 * day)]))
    assert store.prune(NOW, 3, None) == 2
    assert ids(store.recent("#a", 10)) == [2, 3]
    assert ids(store.recent("#b", 10)) == [2]


def test_store_retention_by_age_and_count_applies_both(store: Store) -> None:
    """With both limits, a message goes if either says so."""
    fill(store, "#a", 6, NOW)
    store.commit(Batch([msg("#b", 1, NOW - 30 * SECONDS_PER_DAY), msg("#b", 2, NOW)]))
    assert store.prune(NOW, 7, 3) == 4
    assert ids(store.recent("#a", 10)) == [4, 5, 6]
    assert ids(store.recent("#b", 10)) == [2]


def test_store_retention_stops_at_max_rows(store: Store) -> None:
    """max_rows bounds one call's work; calling again finishes the job."""
    fill(store, "#a", 50)
    assert store.prune(NOW, None, 10, max_rows=15) == 15
    assert store.prune(NOW, None, 10, max_rows=15) == 15
    assert store.prune(NOW, None, 10, max_rows=15) == 10
    assert store.prune(NOW, None, 10, max_rows=15) == 0
    assert ids(store.recent("#a", 100)) == list(range(41, 51))


def test_store_last_id_survives_pruning_every_message(store: Store) -> None:
    """A room pruned to nothing still reports its last id, so ids are never reused."""
    fill(store, "#a", 5)
    store.prune(NOW, None, 0)
    assert store.recent("#a", 10) == []
    assert store.load_rooms() == [RoomRecord("#a", 5)]


def test_store_retention_rejects_negative_limits(store: Store) -> None:
    """A negative retention setting is a configuration slip, refused loudly."""
    with pytest.raises(ValueError, match="retain_messages"):
        store.prune(NOW, None, -1)
    with pytest.raises(ValueError, match="retain_days"):
        store.prune(NOW, -1.0, None)


def test_stored_message_rejects_text_sqlite_cannot_encode() -> None:
    """A lone surrogate (JSON allows "\\ud800") is refused when the message is built, so
    it cannot poison a batch that would then fail on every retry."""
    with pytest.raises(ValueError, match="surrogate"):
        StoredMessage("#a", 1, NOW, "say", "bob", "half a pair: \ud800")


def test_stored_message_rejects_other_kinds() -> None:
    """Only say and me are stored: a private message can never be built for the store."""
    with pytest.raises(ValueError, match="say"):
        StoredMessage("#a", 1, NOW, "msg", "bob", "secret")


def test_stored_message_rejects_ids_below_one() -> None:
    """Id 0 means 'none yet' in last_id and since(); a message can never carry it."""
    with pytest.raises(ValueError, match="start at 1"):
        StoredMessage("#a", 0, NOW, "say", "bob", "zero")


@settings(max_examples=60, deadline=DISK_DEADLINE)
@given(
    present=st.sets(st.integers(1, 40), max_size=30),
    after=st.integers(-1, 45),
    limit=st.integers(0, 12),
)
def test_store_reads_agree_with_a_reference_model(
    present: set[int], after: int, limit: int
) -> None:
    """Both stores answer recent/since/before like a plain sorted list, gaps in ids included."""
    ordered = sorted(present)
    newer = [i for i in ordered if i > after]
    older = [i for i in ordered if i < after]
    expected_since = (newer[max(0, len(newer) - limit) :], max(0, len(newer) - limit))
    expected_before = older[max(0, len(older) - limit) :]
    expected_recent = ordered[max(0, len(ordered) - limit) :]
    for store in (MemoryStore(), SQLiteStore.open(":memory:")):
        try:
            store.commit(Batch([msg("#a", i) for i in ordered]))
            messages, skipped = store.since("#a", after, limit)
            assert (ids(messages), skipped) == expected_since
            assert ids(store.before("#a", after, limit)) == expected_before
            assert ids(store.recent("#a", limit)) == expected_recent
        finally:
            store.close()


# -- accounts and moderation (schema v3) ------------------------------------------------


def _ban(target: str, kind: str = "name", until: float | None = None) -> BanRecord:
    return BanRecord(target, kind, target, "bob", "spam", NOW, until)


def test_store_accounts_keep_hashes_and_a_password_change_keeps_the_rest(store: Store) -> None:
    """An account is read back by key; saving it again changes only its hash."""
    store.commit(Batch(changes=[SaveAccount(AccountRecord("allce", "alice", "scrypt$1", NOW))]))
    store.commit(Batch(changes=[SaveAccount(AccountRecord("bob", "bob", "scrypt$2", NOW))]))
    assert store.account_keys() == ["allce", "bob"]
    store.commit(Batch(changes=[SaveAccount(AccountRecord("allce", "ALICE", "scrypt$3", 9.0))]))
    assert store.account("allce") == AccountRecord("allce", "alice", "scrypt$3", NOW)
    assert store.account("nobody") is None
    store.commit(Batch(changes=[DropAccount("allce"), DropAccount("never-was")]))
    assert store.account_keys() == ["bob"]


def test_store_ops_bans_and_mutes_are_saved_replaced_and_dropped(store: Store) -> None:
    """Operators, bans and mutes: saved, replaced by key, dropped; in the order given."""
    store.commit(
        Batch(
            changes=[
                SaveOp(OpRecord("carol", "carol")),
                SaveBan(_ban("zed")),
                SaveBan(_ban("10.0.0.0/8", "address", NOW + 60)),
                SaveMute(MuteRecord("loud", "loud", "bob", NOW, None)),
                SaveMute(MuteRecord("quiet", "quiet", "bob", NOW, NOW + 600)),
                DropMute("quiet"),
            ]
        )
    )
    assert store.load_ops() == [OpRecord("carol", "carol")]
    assert store.load_bans() == [_ban("10.0.0.0/8", "address", NOW + 60), _ban("zed")]
    assert store.load_mutes() == [MuteRecord("loud", "loud", "bob", NOW, None)]
    store.commit(
        Batch(changes=[SaveBan(_ban("zed", until=NOW + 5)), DropOp("carol"), DropBan("x")])
    )
    assert store.load_bans()[1] == _ban("zed", until=NOW + 5)
    assert store.load_ops() == []


def test_store_topic_lock_is_kept(store: Store) -> None:
    """A room's topic lock is saved with its topic."""
    store.commit(Batch(rooms=[RoomRecord("#a", 0, "rules", "bob", 1.0, topic_locked=True)]))
    assert store.load_rooms() == [RoomRecord("#a", 0, "rules", "bob", 1.0, True)]


def test_store_dropped_room_goes_with_its_messages(store: Store) -> None:
    """A dropped room is deleted with every message; other rooms are untouched."""
    fill(store, "#spam", 3)
    fill(store, "#dev", 2)
    store.commit(Batch(rooms=[RoomRecord("#spam", topic="buy now")]))
    drop = Batch()
    drop.drop_room("#spam")
    store.commit(drop)
    assert [room.name for room in store.load_rooms()] == ["#dev"]
    assert store.recent("#spam", 10) == []
    assert store.since("#spam", 0, 10) == ([], 0)
    assert ids(store.recent("#dev", 10)) == [1, 2]
    store.commit(drop)  # dropping a room that is not there is a no-op
    assert [room.name for room in store.load_rooms()] == ["#dev"]


def test_store_room_dropped_and_made_again_in_one_batch_is_new(store: Store) -> None:
    """The drop comes first: what the batch holds of the room is its new life, ids from 1."""
    fill(store, "#x", 5)
    batch = Batch()
    batch.drop_room("#x")
    batch.rooms.append(RoomRecord("#x"))
    batch.messages.append(msg("#x", 1, text="new"))
    store.commit(batch)
    assert [(m.id, m.text) for m in store.recent("#x", 10)] == [(1, "new")]
    (room,) = store.load_rooms()
    assert (room.name, room.last_id) == ("#x", 1)
