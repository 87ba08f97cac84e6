"""``--db`` refuses another program's SQLite database and leaves it as it was."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from tests.procs import run_triochat
from triochat.store import SQLiteStore, StoreError
from triochat.store.schema import SCHEMA_VERSION, foreign_tables
from triochat.store.sqlite import ForeignDatabase


def foreign_db(path: Path, *, version: int = 0) -> bytes:
    """Another program's database at ``path`` (one table, one row); its bytes."""
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    connection.execute("INSERT INTO notes (body) VALUES ('keep me')")
    connection.execute(f"PRAGMA user_version = {version}")
    connection.commit()
    connection.close()
    return path.read_bytes()


def test_foreign_tables_tells_ours_from_others() -> None:
    """Empty, or triochat's tables at a version: ours; tables at version 0, or a version
    without triochat's tables: another program's."""
    assert foreign_tables(0, set()) is None
    assert foreign_tables(0, {"sqlite_sequence"}) is None
    assert foreign_tables(SCHEMA_VERSION, {"rooms", "messages", "accounts"}) is None
    assert foreign_tables(0, {"notes"}) == ["notes"]
    assert foreign_tables(1, {"notes", "tags"}) == ["notes", "tags"]
    assert foreign_tables(SCHEMA_VERSION + 1, {"future"}) is None  # "a newer triochat"


@pytest.mark.parametrize("version", [0, 1, SCHEMA_VERSION])
def test_sqlite_store_refuses_a_foreign_database(tmp_path: Path, version: int) -> None:
    """Another program's file is refused with one line and not changed at all."""
    path = tmp_path / "other.db"
    before = foreign_db(path, version=version)
    with pytest.raises(ForeignDatabase) as caught:
        SQLiteStore.open(path)
    assert isinstance(caught.value, StoreError)
    text = str(caught.value)
    assert "\n" not in text
    assert "not triochat's" in text
    assert "notes" in text
    assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(before).digest()
    assert not (tmp_path / "other.db-wal").exists()


def test_sqlite_store_still_opens_new_and_own_databases(tmp_path: Path) -> None:
    """An empty file and triochat's own database open as before."""
    empty = tmp_path / "empty.db"
    empty.touch()
    SQLiteStore.open(empty).close()
    SQLiteStore.open(empty).close()  # now triochat's: opened again
    SQLiteStore.open(tmp_path / "new.db").close()


def test_server_command_refuses_a_foreign_db_with_exit_2(tmp_path: Path) -> None:
    """``triochat server --db OTHER.db``: one line on stderr, exit status 2."""
    path = tmp_path / "other.db"
    before = foreign_db(path)
    done = run_triochat("server", "--port", "0", "--db", str(path))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("triochat: error: cannot open database")
    assert "not triochat's" in lines[0]
    assert path.read_bytes() == before
