"""DDL and SQL scripts from strangers run in a sandbox: in memory, no other database, no file written or read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import constrained
from constrained.errors import DatabaseError
from constrained.text_to_sql.database import load_schema, load_script, open_database

TABLE = "CREATE TABLE t(a INTEGER, b TEXT);\n"


def _file_touching(folder: Path) -> list[str]:
    target = folder / "written.db"
    return [
        f"ATTACH DATABASE '{target}' AS other; CREATE TABLE other.x(y); INSERT INTO other.x VALUES (1);",
        f"ATTACH '{target}' AS other",
        "ATTACH 'relative.db' AS other",
        f"ATTACH 'file:{target}?mode=rwc' AS other",
        f"VACUUM INTO '{target}'",
        f"CREATE TABLE u(v); VACUUM INTO 'file:{target}'",
        "DETACH DATABASE main",
        "PRAGMA journal_mode = WAL",
        "PRAGMA temp_store_directory = '/tmp'",
        "PRAGMA writable_schema = ON",
        "SELECT load_extension('libsomething')",
    ]


@pytest.fixture
def empty_folder(tmp_path, monkeypatch):
    """A temporary working folder (relative paths land in it), checked to stay empty."""
    folder = tmp_path / "cwd"
    folder.mkdir()
    monkeypatch.chdir(folder)
    yield folder
    assert os.listdir(folder) == []


@pytest.mark.parametrize("index", range(len(_file_touching(Path("/x")))))
def test_every_file_touching_statement_is_refused_and_writes_nothing(empty_folder, index):
    statement = _file_touching(empty_folder)[index]
    with pytest.raises(DatabaseError, match="may not"):
        load_script(TABLE + statement)
    with pytest.raises(DatabaseError, match="may not"):
        constrained.sql(TABLE + statement)
    script = empty_folder.parent / "script.sql"
    script.write_text(TABLE + statement)
    with pytest.raises(DatabaseError, match="may not"):
        open_database(script)


def test_a_script_builds_its_tables_and_rows_and_is_read_only_afterwards(empty_folder):
    connection = load_script(TABLE + "INSERT INTO t VALUES (1, 'x'), (2, 'y'); PRAGMA foreign_keys = ON;")
    assert connection.execute("SELECT count(*) FROM t").fetchone() == (2,)
    assert [t.name for t in load_schema(connection).tables] == ["t"]
    with pytest.raises(Exception, match="readonly|not authorized|too many"):
        connection.execute(f"ATTACH '{empty_folder / 'later.db'}' AS later")


def test_a_script_that_runs_forever_or_grows_without_end_is_stopped(monkeypatch):
    from constrained.text_to_sql import database

    monkeypatch.setattr(database, "SCRIPT_TIMEOUT_S", 0.5)
    forever = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c;"
    with pytest.raises(DatabaseError, match="ran longer than 0.5 s"):
        load_script(forever)
    monkeypatch.setattr(database, "SCRIPT_MAX_PAGES", 64)
    grows = TABLE + "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 5000) " \
                    "INSERT INTO t SELECT x, randomblob(100) FROM c;"
    with pytest.raises(DatabaseError, match="larger than"):
        load_script(grows)


def test_a_database_file_opened_read_only_cannot_attach_another(tmp_path):
    import sqlite3

    path = tmp_path / "music.sqlite"
    with sqlite3.connect(path) as setup:
        setup.execute("CREATE TABLE song(title TEXT)")
    from constrained.text_to_sql.database import connect_readonly

    connection = connect_readonly(path)
    with pytest.raises(sqlite3.OperationalError, match="too many attached"):
        connection.execute(f"ATTACH '{tmp_path / 'other.db'}' AS other")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["music.sqlite"]
