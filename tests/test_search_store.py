"""Search in the stores: newest first, paging, filters, and the index kept in step."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from triochat.core.names import name_key
from triochat.core.search import SearchQuery, fts_match, holds_all, words
from triochat.store import Batch, MemoryStore, SQLiteStore, Store, StoredMessage
from triochat.store.schema import MIGRATIONS, SCHEMA_VERSION
from triochat.store.search import SearchOff

NOW = 1_700_000_000.0


def say(
    room: str, id: int, text: str, sender: str = "bob", ts: float | None = None
) -> StoredMessage:
    return StoredMessage(room, id, NOW + id if ts is None else ts, "say", sender, text)


def found(store: Store, text: str, **more: object) -> list[tuple[str, int]]:
    query = SearchQuery(words(text), **more)  # type: ignore[arg-type]
    return [(hit.message.room, hit.message.id) for hit in store.search(query)]


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened: Store = (
        MemoryStore() if request.param == "memory" else SQLiteStore.open(tmp_path / "t.db")
    )
    yield opened
    opened.close()


def test_words_fold_case_and_accents_and_split_on_punctuation() -> None:
    assert words("Café, CAFE! snake_case x-ray") == ("cafe", "snake", "case", "x", "ray")
    assert holds_all("the Deploy went fine", ("deploy", "fine"))
    assert not holds_all("the deployment", ("deploy",))
    assert fts_match(("a", "b")) == '"a" "b"'


def test_search_is_newest_first_across_rooms_and_needs_every_word(store: Store) -> None:
    store.commit(Batch([say("#a", 1, "deploy the thing"), say("#b", 1, "no match here")]))
    store.commit(Batch([say("#b", 2, "Deploy THE fix"), say("#a", 2, "deploy later")]))
    assert found(store, "deploy", rooms=None) == [("#a", 2), ("#b", 2), ("#a", 1)]
    assert found(store, "deploy the", rooms=None) == [("#b", 2), ("#a", 1)]
    assert found(store, "nothing", rooms=None) == []


def test_search_pages_by_seq(store: Store) -> None:
    store.commit(Batch([say("#a", i, f"word {i}") for i in range(1, 8)]))
    first = store.search(SearchQuery(("word",), None, limit=3))
    assert [hit.message.id for hit in first] == [7, 6, 5]
    second = store.search(SearchQuery(("word",), None, before=first[-1].seq, limit=3))
    assert [hit.message.id for hit in second] == [4, 3, 2]
    last = store.search(SearchQuery(("word",), None, before=second[-1].seq, limit=3))
    assert [hit.message.id for hit in last] == [1]


def test_search_filters_rooms_and_sender(store: Store) -> None:
    store.commit(
        Batch(
            [
                say("#a", 1, "tea time", "Ann"),
                say("#b", 1, "tea please", "bob"),
                say("#c", 1, "tea here", "ann"),
            ]
        )
    )
    assert found(store, "tea", rooms=("#a", "#b")) == [("#b", 1), ("#a", 1)]
    assert found(store, "tea", rooms=()) == []
    assert found(store, "tea", rooms=None, sender=name_key("ANN")) == [("#c", 1), ("#a", 1)]
    assert found(store, "tea", rooms=("#b",), sender=name_key("ann")) == []


def test_search_follows_retention_and_dropped_rooms(store: Store) -> None:
    store.commit(Batch([say("#a", i, "old news", ts=NOW - 10 * 86400) for i in (1, 2)]))
    store.commit(Batch([say("#a", 3, "news today"), say("#b", 1, "news elsewhere")]))
    assert store.prune(NOW, 1.0, None) == 2
    assert found(store, "news", rooms=None) == [("#b", 1), ("#a", 3)]
    store.commit(Batch([], dropped_rooms=["#b"]))
    assert found(store, "news", rooms=None) == [("#a", 3)]
    store.commit(Batch([say("#b", 1, "news again")]))  # a room made again counts from 1
    assert found(store, "news", rooms=None) == [("#b", 1), ("#a", 3)]


def test_sqlite_index_stays_in_step_through_prune_and_restart(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    store = SQLiteStore.open(path)
    store.commit(Batch([say("#a", i, f"line {i} needle") for i in range(1, 51)]))
    assert store.prune(NOW, None, 10) == 40
    store.commit(Batch([say("#a", 50, "retried needle")]))  # a kept id again: a no-op
    store.close()
    store = SQLiteStore.open(path)
    try:
        hits = store.search(SearchQuery(("needle",), None, limit=100))
        assert [hit.message.id for hit in hits] == list(range(50, 40, -1))
        store.commit(Batch([say("#a", 51, "needle after restart")]))
        assert store.search(SearchQuery(("needle",), None, limit=1))[0].message.id == 51
    finally:
        store.close()
    conn = sqlite3.connect(path)
    try:  # the index holds exactly the lines kept: FTS5's own check agrees
        conn.execute("INSERT INTO search_index (search_index, rank) VALUES ('integrity-check', 1)")
        (rows,) = conn.execute("SELECT count(*) FROM search_rows").fetchone()
        (kept,) = conn.execute("SELECT count(*) FROM messages").fetchone()
        conn.execute(
            "CREATE VIRTUAL TABLE temp.words USING fts5vocab(main, search_index, instance)"
        )
        (documents,) = conn.execute("SELECT count(DISTINCT doc) FROM words").fetchone()
        assert rows == kept == documents == 11  # nothing pruned is left in the index
    finally:
        conn.close()


def test_sqlite_migration_indexes_an_existing_database(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for step in MIGRATIONS[: SCHEMA_VERSION - 1]:
        for statement in step:
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
    conn.executemany(
        "INSERT INTO messages (room, id, ts, kind, sender, text) VALUES (?, ?, ?, 'say', ?, ?)",
        [("#a", 2, NOW + 2, "bob", "later hello"), ("#a", 1, NOW + 1, "ann", "hello first")],
    )
    conn.close()
    store = SQLiteStore.open(path)
    try:
        assert found(store, "hello", rooms=None) == [("#a", 2), ("#a", 1)]
    finally:
        store.close()


def test_sqlite_without_the_index_refuses_search_and_rebuilds_it_later(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    store = SQLiteStore.open(path)
    store.commit(Batch([say("#a", 1, "indexed needle")]))
    store.close()
    store = SQLiteStore.open(path, search_index=False)  # --no-search-index: dropped
    try:
        store.commit(Batch([say("#a", 2, "unindexed needle")]))
        assert store.prune(NOW + 10, None, 1) == 1  # retention works without it
        with pytest.raises(SearchOff, match="search is off"):
            store.search(SearchQuery(("needle",), None))
    finally:
        store.close()
    conn = sqlite3.connect(path)
    try:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert not {"search_rows", "search_index", "messages_unindexed"} & names
    finally:
        conn.close()
    store = SQLiteStore.open(path)  # on again: what is stored is indexed at start
    try:
        assert found(store, "needle", rooms=None) == [("#a", 2)]
    finally:
        store.close()


def _v6_database(path: Path, indexed: bool) -> None:
    """A database as version 6 wrote it: two lines, the first indexed (or no index)."""
    conn = sqlite3.connect(path, isolation_level=None)
    for step in MIGRATIONS[:6]:
        for statement in step:
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 6")
    conn.executemany(
        "INSERT INTO messages (room, id, ts, kind, sender, text) VALUES (?, ?, ?, 'say', ?, ?)",
        [("#a", 1, NOW + 1, "ann", "hello first"), ("#b", 1, NOW + 2, "bob", "hello again")],
    )
    conn.executemany("INSERT INTO rooms (name, last_id) VALUES (?, 1)", [("#a",), ("#b",)])
    if indexed:  # v6 indexed in the commit; the second line's process was killed first
        conn.execute("INSERT INTO search_rows (docid, room, id) VALUES (1, '#a', 1)")
        conn.execute("INSERT INTO search_index (rowid, text) VALUES (1, 'hello first')")
    else:  # --no-search-index
        conn.execute("DROP TRIGGER messages_unindexed")
        conn.execute("DROP TABLE search_index")
        conn.execute("DROP TABLE search_rows")
    conn.close()


def _tables(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()


def test_sqlite_v7_rebuilds_a_v6_index_without_its_size_table(tmp_path: Path) -> None:
    path = tmp_path / "v6.db"
    _v6_database(path, indexed=True)
    assert "search_index_docsize" in _tables(path)
    store = SQLiteStore.open(path)
    try:
        assert found(store, "hello", rooms=None) == [("#b", 1), ("#a", 1)]
        store.commit(Batch([say("#a", 2, "hello later")]))
        assert store.prune(NOW + 1.5, None, 1) == 1  # #a 1 goes, and its words
        assert found(store, "hello", rooms=None) == [("#a", 2), ("#b", 1)]
    finally:
        store.close()
    tables = _tables(path)
    assert "search_index_docsize" not in tables
    assert {"search_rows", "search_index", "messages_unindexed"} <= tables
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        conn.execute("INSERT INTO search_index (search_index, rank) VALUES ('integrity-check', 1)")
    finally:
        conn.close()


def test_sqlite_v6_without_the_index_stays_without_it(tmp_path: Path) -> None:
    path = tmp_path / "v6.db"
    _v6_database(path, indexed=False)
    SQLiteStore.open(path, search_index=False).close()
    assert not {"search_rows", "search_index", "messages_unindexed"} & _tables(path)
    store = SQLiteStore.open(path)  # on again: built from what is stored
    try:
        assert found(store, "hello", rooms=None) == [("#b", 1), ("#a", 1)]
    finally:
        store.close()
    assert "search_index_docsize" not in _tables(path)
