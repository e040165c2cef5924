"""Schema loading: the four kinds of input give the same tables; bad input is a DatabaseError naming why."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from constrained.errors import DatabaseError
from constrained.text_to_sql import load_schema

SPIDER = Path(__file__).resolve().parents[2] / "shared" / "data" / "spider"
DDL = (
    "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, age INT); "
    "CREATE TABLE concert (id INTEGER, year TEXT);"
)


def _shape(schema):
    return [(t.name, [(c.name, c.type) for c in t.columns]) for t in schema.tables]


def test_ddl_string():
    schema = load_schema(DDL)
    assert _shape(schema) == [("singer", [("singer_id", "INTEGER"), ("name", "TEXT"), ("age", "INT")]),
                              ("concert", [("id", "INTEGER"), ("year", "TEXT")])]
    assert schema.path is None


def test_file_and_connection_agree(tmp_path):
    path = tmp_path / "music.sqlite"
    with sqlite3.connect(path) as connection:
        connection.executescript(DDL)
    from_file = load_schema(path)
    assert _shape(from_file) == _shape(load_schema(DDL))
    assert from_file.path == path.resolve()
    assert _shape(load_schema(str(path))) == _shape(from_file)
    connection = sqlite3.connect(path)
    assert _shape(load_schema(connection)) == _shape(from_file)
    connection.close()


def test_loading_a_file_never_creates_one(tmp_path):
    with pytest.raises(DatabaseError, match="no database file"):
        load_schema(tmp_path / "absent.sqlite")
    assert not (tmp_path / "absent.sqlite").exists()


@pytest.mark.skipif(not SPIDER.exists(), reason="Spider data not available")
def test_spider_entry_matches_its_database():
    entry = next(e for e in json.loads((SPIDER / "tables.json").read_text()) if e["db_id"] == "concert_singer")
    from_json = load_schema(entry)
    from_file = load_schema(SPIDER / "database" / "concert_singer" / "concert_singer.sqlite")
    assert [t.name.lower() for t in from_json.tables] == [t.name.lower() for t in from_file.tables]
    for a, b in zip(from_json.tables, from_file.tables):  # (the shipped file has a column JSON lacks)
        assert {c.name.lower() for c in a.columns} <= {c.name.lower() for c in b.columns}
    assert from_json.table("SINGER").column("NAME") is not None  # SQLite names are case-insensitive


def test_not_sqlite_file(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("just some text, not a database")
    with pytest.raises(DatabaseError, match="not a SQLite database"):
        load_schema(path)


def test_empty_schemas():
    with pytest.raises(DatabaseError, match="no tables"):
        load_schema("CREATE VIEW v AS SELECT 1 AS x; DROP VIEW v;")
    with pytest.raises(DatabaseError, match="no tables"):
        load_schema(sqlite3.connect(":memory:"))
    with pytest.raises(DatabaseError, match="no tables"):
        load_schema({"db_id": "x", "table_names_original": [], "column_names_original": [[-1, "*"]]})


def test_bad_inputs():
    with pytest.raises(DatabaseError, match="DDL does not run"):
        load_schema("CREATE TABLE (")
    with pytest.raises(DatabaseError, match="table_names_original"):
        load_schema({"db_id": "x"})
    with pytest.raises(DatabaseError, match="table #3"):
        load_schema({"table_names_original": ["a"], "column_names_original": [[3, "x"]], "column_types": ["text"]})
    with pytest.raises(DatabaseError, match="cannot read a schema from a int"):
        load_schema(42)
