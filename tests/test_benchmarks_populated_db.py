"""Populated copies for execution accuracy (benchmarks/populated_db.py): rows everywhere, joins and the gold
queries' filters select something, the same seed gives the same copy, and the source file is never written."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

GOLD = ["SELECT name FROM singer WHERE country = 'France'", "SELECT count(*) FROM singer WHERE age > 30",
        "SELECT name FROM singer WHERE name LIKE 'Jo%'"]


@pytest.fixture(scope="module")
def populated_db():
    from benchmarks import populated_db

    return populated_db


@pytest.fixture()
def empty_db(tmp_path: Path) -> Path:
    path = tmp_path / "music.sqlite"
    with sqlite3.connect(path) as connection:
        connection.executescript("""
            CREATE TABLE singer (singer_id number, name text, country text, age number, PRIMARY KEY (singer_id));
            CREATE TABLE concert (concert_id number PRIMARY KEY, year text,
                                  singer_id number REFERENCES singer (singer_id));""")
    return path


def count(connection: sqlite3.Connection, query: str) -> int:
    return connection.execute(query).fetchone()[0]


def test_gold_literals(populated_db):
    found = populated_db.gold_literals(GOLD)
    assert found.strings == ["France", "Jo"] and found.numbers == [30.0]


def test_copies_have_rows_that_joins_and_filters_select(populated_db, empty_db):
    copy = populated_db.populated_copy(empty_db, populated_db.gold_literals(GOLD), seed=0)
    assert count(copy, "SELECT count(*) FROM singer") > 10 and count(copy, "SELECT count(*) FROM concert") > 10
    assert count(copy, "SELECT count(*) FROM concert JOIN singer USING (singer_id)") > 0
    filtered = count(copy, "SELECT count(*) FROM singer WHERE country = 'France'")
    assert 0 < filtered < count(copy, "SELECT count(*) FROM singer")
    assert count(sqlite3.connect(empty_db), "SELECT count(*) FROM singer") == 0  # the source is untouched


def test_the_seed_fixes_the_copy(populated_db, empty_db):
    literals = populated_db.gold_literals(GOLD)
    rows = [populated_db.populated_copy(empty_db, literals, seed).execute("SELECT * FROM singer").fetchall()
            for seed in (0, 0, 1)]
    assert rows[0] == rows[1] != rows[2]


def test_keys_can_come_from_a_spider_entry(populated_db, empty_db):
    """Spider's ``tables.json`` keys (column indices) override what the file declares: here, none."""
    with sqlite3.connect(empty_db) as connection:
        connection.execute("CREATE TABLE ticket (ticket_id number, concert_id number)")
    entry = {"table_names_original": ["singer", "concert", "ticket"],
             "column_names_original": [[-1, "*"], [0, "Singer_ID"], [1, "concert_id"], [2, "ticket_id"],
                                       [2, "Concert_ID"]],
             "foreign_keys": [[4, 2]], "primary_keys": [1, 2, 3]}
    keys = populated_db.spider_keys(entry)
    assert keys == ([(("ticket", "concert_id"), ("concert", "concert_id"))],
                    [("singer", "singer_id"), ("concert", "concert_id"), ("ticket", "ticket_id")])
    outside_key_domain = "SELECT count(*) FROM ticket WHERE concert_id NOT BETWEEN 1 AND 30"
    literals = populated_db.gold_literals(GOLD)
    assert count(populated_db.populated_copy(empty_db, literals, seed=0, keys=keys), outside_key_domain) == 0
    assert count(populated_db.populated_copy(empty_db, literals, seed=0), outside_key_domain) > 0  # no key: any number
