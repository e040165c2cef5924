"""Read-only execution: writes fail with a clear error whatever the SQL, time and row limits hold."""

from __future__ import annotations

import sqlite3

import pytest

from constrained.errors import DatabaseError
from constrained.text_to_sql import execute_readonly, load_schema

DDL = "CREATE TABLE singer (singer_id INTEGER, name TEXT, age INTEGER);"


@pytest.fixture()
def db_path(tmp_path):
    path = tmp_path / "music.sqlite"
    with sqlite3.connect(path) as connection:
        connection.executescript(DDL)
        connection.executemany("INSERT INTO singer VALUES (?, ?, ?)", [(i, f"s{i}", 20 + i) for i in range(50)])
    connection.close()
    return path


def _count(path) -> int:
    with sqlite3.connect(path) as connection:
        return connection.execute("SELECT count(*) FROM singer").fetchone()[0]


def test_select_runs(db_path):
    assert execute_readonly(db_path, "SELECT name FROM singer WHERE age = 21") == [("s1",)]
    assert execute_readonly(load_schema(db_path), "SELECT count(*) FROM singer") == [(50,)]


def test_row_limit(db_path):
    assert len(execute_readonly(db_path, "SELECT * FROM singer", max_rows=7)) == 7


@pytest.mark.parametrize("statement", [
    "DELETE FROM singer", "DROP TABLE singer", "INSERT INTO singer VALUES (99, 'x', 1)",
    "UPDATE singer SET age = 0", "CREATE TABLE t (a)", "PRAGMA journal_mode = DELETE",
    "ATTACH DATABASE ':memory:' AS other", "SELECT 1; DELETE FROM singer",
])
def test_writes_are_refused(db_path, statement):
    with pytest.raises(DatabaseError, match="SQLite refused the query"):
        execute_readonly(db_path, statement)
    assert _count(db_path) == 50


def test_callers_connection_is_protected_and_restored(db_path):
    connection = sqlite3.connect(db_path)
    with pytest.raises(DatabaseError):
        execute_readonly(connection, "DELETE FROM singer")
    assert connection.execute("PRAGMA query_only").fetchone()[0] == 0
    connection.close()
    assert _count(db_path) == 50


def test_timeout(db_path):
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    with pytest.raises(DatabaseError, match="longer than 0.2 s"):
        execute_readonly(db_path, endless, timeout_s=0.2)


def test_bad_databases(tmp_path):
    with pytest.raises(DatabaseError, match="no database file"):
        execute_readonly(tmp_path / "missing.sqlite", "SELECT 1")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(DatabaseError, match="not a SQLite database"):
        execute_readonly(junk, "SELECT 1")
    with pytest.raises(DatabaseError, match="no database file to run"):
        execute_readonly(load_schema(DDL), "SELECT 1")
