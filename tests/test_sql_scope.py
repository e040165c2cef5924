"""FROM first: with the FROM clause decided, the masks offer only the columns in its scope, and what a walk over
the automaton writes is SQL that SQLite compiles against the schema, but for the few rules left to the commit."""

from __future__ import annotations

import re
import sqlite3

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from constrained.errors import GrammarError
from constrained.text_to_sql.database import load_schema
from constrained.text_to_sql.scope import from_clause_of, scoped_sql, tables_by_relevance
from constrained.vocabulary import byte_vocabulary

DDL = """CREATE TABLE singer (singer_id INTEGER, name TEXT, age INTEGER);
CREATE TABLE concert (concert_id INTEGER, title TEXT, singer_id INTEGER, year INTEGER);"""
JOIN = "FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id"


def matches(constraint, text: str) -> bool:
    return all(re.fullmatch(p, text) for p in constraint.patterns)


@pytest.mark.parametrize("text, clause", [
    ("SELECT name FROM singer WHERE age > 3", "FROM singer"),
    ("SELECT T2.title FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id ORDER BY T1.age",
     "FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id"),
    ("SELECT name FROM singer WHERE age > (SELECT avg(age) FROM concert) GROUP BY name", "FROM singer"),
    ("SELECT count(*) FROM singer AS T1 JOIN conc", "FROM singer AS T1 JOIN conc"),  # unfinished text
    ("SELECT name, (SELECT 1 FROM concert) FROM singer;", "FROM singer"),
    ("SELECT 'FROM x' FROM singer UNION SELECT title FROM concert", "FROM singer"),
    ("SELECT name", None),
])
def test_the_top_level_from_clause_is_found(text, clause):
    assert from_clause_of(text) == clause


def test_one_table_offers_its_own_columns_only():
    constraint = scoped_sql(DDL, "FROM singer")
    assert matches(constraint, "SELECT name, count(*) FROM singer WHERE age BETWEEN 20 AND 30 GROUP BY name")
    assert not matches(constraint, "SELECT title FROM singer")  # concert's column
    assert not matches(constraint, "SELECT name FROM concert")  # another FROM clause
    assert not matches(constraint, "SELECT name FROM singer WHERE age > (SELECT 1 FROM singer)")  # no subqueries


@pytest.mark.parametrize("query", [
    "SELECT total(count(*)) FROM singer",  # an aggregate of an aggregate: SQLite's misuse
    "SELECT lower(DISTINCT name) FROM singer",  # DISTINCT only in an aggregate
    "SELECT lag(age) FROM singer",  # a window function without OVER (and no windows here at all)
    "SELECT lower() FROM singer",
    "SELECT sum(*) FROM singer",
])
def test_calls_are_written_as_sqlite_takes_them(query):
    constraint = scoped_sql(DDL, "FROM singer")
    assert matches(constraint, "SELECT round(avg(age), 1), count(DISTINCT name), max(age, 3), count(*) FROM singer")
    assert not matches(constraint, query)


def test_a_join_offers_qualified_columns_of_its_tables():
    constraint = scoped_sql(DDL, JOIN)
    assert matches(constraint, f"SELECT T1.name, T2.title {JOIN} WHERE T2.year > 2000 ORDER BY T1.age DESC")
    assert not matches(constraint, f"SELECT T1.title {JOIN}")  # title is T2's
    assert not matches(constraint, f"SELECT T3.name {JOIN}")  # no T3 in scope
    assert not matches(constraint, f"SELECT singer_id {JOIN}")  # ambiguous unqualified


@pytest.mark.parametrize("clause", [
    "FROM singers",  # no such table
    "FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T3.singer_id",  # T3 undeclared
    "FROM (SELECT name FROM singer)",  # not a table of the schema
    "FROM singer; DROP TABLE singer",
])
def test_a_from_clause_out_of_scope_is_refused(clause):
    with pytest.raises(GrammarError):
        scoped_sql(DDL, clause)


def test_tables_are_ranked_by_what_was_written_then_by_the_question():
    schema = load_schema(DDL)
    assert [t.name for t in tables_by_relevance(schema, "Which concerts happened in 2014?", [])] == \
        ["concert", "singer"]
    assert [t.name for t in tables_by_relevance(schema, "Which concerts happened?", ["SELECT name FROM singer"])] \
        == ["singer", "concert"]


# ---- walks over the automaton: random logprobs, admissible draws, judged by SQLite on the schema
#: What the masks cannot see and the commit check refuses: SQLite's rules on where aggregates may stand, the
#: range of a numbered ORDER BY / GROUP BY term, and the widths of a compound's parts.
COMMIT_ONLY = re.compile(r"misuse of aggregate|aggregate functions are not allowed|term out of range|"
                         r"do not have the same number of result columns|does not match any column", re.I)


def bound_walker(clause: str):
    bound = scoped_sql(DDL, clause).bind(byte_vocabulary())
    database = sqlite3.connect(":memory:")
    database.executescript(DDL)
    return bound, database


def walk(bound, database, seed: int, length: int) -> None:
    """One draw from the automaton under random logprobs; SQLite compiles it, or it breaks a commit-only rule
    (and the commit check says so)."""
    generator = torch.Generator().manual_seed(seed)
    logprobs = torch.randn(length, bound.vocab_size, generator=generator).log_softmax(-1)
    text = bound.decode(bound.canvas(length).sample_decode(logprobs, generator))
    try:
        database.execute(f"EXPLAIN {text}")
    except sqlite3.Error as error:
        assert COMMIT_ONLY.search(str(error)), (text, str(error))
        assert bound.constraint.check(text) is not None
    else:
        assert bound.constraint.check(text) is None, text


@pytest.fixture(scope="module")
def one_table_walker():
    return bound_walker("FROM singer")


@pytest.fixture(scope="module")
def join_walker():
    return bound_walker(JOIN)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), length=st.integers(24, 64))
def test_walks_write_sql_that_sqlite_compiles(one_table_walker, seed, length):
    walk(*one_table_walker, seed, length)


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), length=st.integers(90, 140))
def test_walks_over_a_join_write_sql_that_sqlite_compiles(join_walker, seed, length):
    walk(*join_walker, seed, length)
