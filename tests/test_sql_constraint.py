"""The SQL constraint: real names only, read-only statements only, column scoping at commit, Spider gold accepted.

Membership of the pattern is mostly tested with Python's ``re`` (it reads the same regex syntax), which needs no
automaton; ``accepts`` (the constraint's own automaton and check) where the automaton itself is the subject.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constrained.errors import GrammarError
from constrained.text_to_sql import sql
from constrained.text_to_sql.compiler import sql_grammar
from constrained.token_dfa import DEAD
from constrained.vocabulary import byte_vocabulary

SPIDER = Path(__file__).resolve().parents[2] / "shared" / "data" / "spider"
DDL = """CREATE TABLE singer (singer_id INTEGER, name TEXT, country TEXT, age INTEGER);
CREATE TABLE concert (concert_id INTEGER, concert_name TEXT, singer_id INTEGER, year TEXT);"""


class Patterns:
    """The regular part of a constraint (its pattern and every ``also_matches`` pattern) through ``re``."""

    def __init__(self, constraint) -> None:
        self.compiled = [re.compile(p) for p in constraint.patterns]

    def fullmatch(self, text: str) -> bool:
        return all(p.fullmatch(text) for p in self.compiled)


@pytest.fixture(scope="module")
def music():
    constraint = sql(DDL)
    return constraint, Patterns(constraint)


def accepted(music, text: str) -> bool:
    constraint, pattern = music
    return pattern.fullmatch(text) and constraint.check(text) is None


@pytest.mark.parametrize("query", [
    "SELECT name FROM singer",
    "select NAME, Age from SINGER where age > 30 order by age desc limit 3",
    "SELECT count(*) FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id WHERE T2.year = '2014'",
    "SELECT country, avg(age) FROM singer GROUP BY country HAVING count(*) >= 2",
    "SELECT DISTINCT name FROM singer WHERE name LIKE 'A%' AND age BETWEEN 20 AND 30",
    "SELECT name FROM singer WHERE country IS NOT NULL OR NOT age = 3;",
    "SELECT count(DISTINCT country) FROM singer",
    "SELECT name FROM singer UNION SELECT concert_name FROM concert",
    'SELECT name FROM singer WHERE country = "France"',
])
def test_valid_queries_accepted(music, query):
    assert accepted(music, query), music[0].check(query)


@pytest.mark.parametrize("query", [
    "SELECT name FROM singers",  # no such table
    "SELECT nickname FROM singer",  # no such column anywhere
    "SELECT name FROM singer WHERE foo = 1",
    "SELECT name FROM singer HAVING age > 3",  # HAVING without GROUP BY: SQLite refuses it
])
def test_unknown_names_are_not_in_the_pattern(music, query):
    assert not music[1].fullmatch(query)


def test_scoping_is_checked_at_commit(music):
    constraint, pattern = music
    query = "SELECT T1.year FROM singer AS T1"  # `year` exists, but in concert
    assert pattern.fullmatch(query)
    assert constraint.check(query) == "unknown column 'year' in table 'singer'"
    assert "concert_name" in constraint.check("SELECT concert_name FROM singer") or \
        "unknown column" in constraint.check("SELECT concert_name FROM singer")


@pytest.mark.parametrize("statement", [
    "DROP TABLE singer", "DELETE FROM singer", "INSERT INTO singer VALUES (1, 'a', 'b', 2)",
    "UPDATE singer SET age = 1", "PRAGMA table_info(singer)", "ATTACH DATABASE 'x.db' AS x",
    "CREATE TABLE t (a INT)", "SELECT name FROM singer; DROP TABLE singer", "SELECT name FROM singer -- comment",
])
def test_only_read_only_queries(music, statement):
    constraint, pattern = music
    assert not pattern.fullmatch(statement)
    assert constraint.check(statement) is not None


def test_check_messages(music):
    constraint, _ = music
    assert constraint.check("SELECT name FROM nowhere") == "unknown table 'nowhere'"
    assert constraint.check("SELECT name FROM singer WHERE") .startswith("not in the read-only SELECT grammar")
    assert constraint.check("SELECT name FROM singer GROUP BY count(*)").startswith("SQLite cannot compile it")


def test_bounds_give_grammar_errors():
    with pytest.raises(GrammarError, match="override"):
        sql_grammar().regex(0)  # the generic NAME (with its keyword lookahead) has no regular form
    with pytest.raises(GrammarError, match="characters"):
        sql(DDL, depth=1, loose_depth=0)  # the unrolled subquery level exceeds the size budget: an error, not a hang
    with pytest.raises(GrammarError, match="dialect"):
        sql(DDL, dialect="postgres")


NESTED = "SELECT name FROM singer WHERE age > (SELECT avg(age) FROM singer WHERE country = 'France')"


def test_depth_zero_without_loosening_has_no_subqueries_but_aggregates():
    exact_only = sql(DDL, loose_depth=0)
    pattern = Patterns(exact_only)
    assert not pattern.fullmatch(NESTED)
    assert exact_only.check(NESTED) is None  # the grammar itself has it: only the depth bound excludes it
    assert pattern.fullmatch("SELECT avg(age), count(DISTINCT name) FROM singer")


def test_nesting_past_the_depth_is_loosened_and_checked_at_commit(music):
    constraint, pattern = music
    assert accepted(music, NESTED)
    assert accepted(music, "SELECT name FROM singer WHERE singer_id NOT IN (SELECT singer_id FROM concert "
                           "WHERE year IN (SELECT year FROM concert WHERE concert_id = 1))")
    assert accepted(music, "SELECT lower(name), round(avg(age), 1) FROM singer GROUP BY lower(name)")
    loosened = "SELECT name FROM singer WHERE age > (SELECT avg(concert_name) FROM singer)"
    assert pattern.fullmatch(loosened)  # inside the brackets the masks balance them and allow only real words ...
    assert constraint.check(loosened) == "unknown column 'concert_name' (not in singer)"  # ... the check rules
    assert not pattern.fullmatch(loosened.replace("concert_name", "nickname"))
    assert not pattern.fullmatch("SELECT name FROM singer WHERE age > (SELECT avg(age) FROM singer")


@pytest.mark.parametrize("query", [
    "SELECT lower() FROM singer",  # SQLite and sqlglot both refuse a call without its arguments ...
    "SELECT lower( ) FROM singer",
    "SELECT sum(*) FROM singer",  # ... and `*` anywhere but count(*)
    "SELECT name FROM singer WHERE age > lag(*)",
    "SELECT (*) FROM singer",  # a loosened bracket opens as what it stands for does
    "SELECT name FROM (*)",
    "SELECT name FROM (WHERE name = 1)",  # a subquery opens with SELECT or WITH, a window with its keywords
    "SELECT name FROM singer WHERE EXISTS (name)",
    "SELECT rank() OVER (name) FROM singer",
    "SELECT name FROM singer WHERE (= 1)",  # a bracketed expression opens as an expression does
    "SELECT name, lag(age) FROM singer",  # a window function only with its OVER
    "SELECT rank() FROM singer",
    "SELECT2.5 FROM singer",  # a decimal glued to a keyword
    "SELECT name FROM singer WHERE age IN ()",
    "SELECT name FROM cte",  # a common table's name only where a WITH declares common tables
    "SELECT T.name FROM totals AS T",
    "SELECT age / notnull FROM singer",  # NOT and NULL glued after a symbol: one word, no postfix there
])
def test_dead_ends_are_out_of_the_masks(music, query):
    assert not music[1].fullmatch(query)


@pytest.mark.parametrize("query", [
    "SELECT count(*), count(*) OVER (), date() FROM singer",
    "SELECT round(avg(age * 2), 1), lower(name) FROM singer GROUP BY name",
    "SELECT name, rank() OVER (ORDER BY age) FROM singer",
    "WITH totals AS (SELECT country, count(*) AS n FROM singer GROUP BY country) SELECT country FROM totals",
    "WITH t AS (SELECT name FROM singer) SELECT name FROM t UNION SELECT concert_name FROM concert",
])
def test_what_the_dead_end_rules_keep(music, query):
    assert accepted(music, query), music[0].check(query)


def test_a_double_quoted_name_out_of_reach_is_a_string_as_in_sqlite(music):
    """SQLite reads ``"x"`` as a column when one in reach is called x, else as a string; the masks write double-quoted
    text wherever a string may go, so the check must read it the same way."""
    constraint, pattern = music
    out_of_reach = 'SELECT name FROM singer WHERE country = "concert_name"'  # a column of concert, not in FROM
    assert pattern.fullmatch(out_of_reach) and constraint.check(out_of_reach) is None
    assert constraint.check('SELECT name FROM singer WHERE country = "Name"') is None  # the column itself
    assert constraint.check(
        'SELECT name FROM singer WHERE singer_id IN (SELECT singer_id FROM concert WHERE "country" = 1)') is None
    assert constraint.check("SELECT [concert_name] FROM singer").startswith("SQLite cannot compile it")


def test_columns_of_a_subquery_are_looked_up_in_its_own_tables(music):
    constraint, _ = music
    ordered = "SELECT name FROM singer WHERE singer_id = (SELECT singer_id FROM concert ORDER BY year LIMIT 1)"
    assert constraint.check(ordered) is None  # `year` is concert's, and concert is the subquery's table
    union = "SELECT name FROM singer WHERE singer_id IN (SELECT singer_id FROM concert UNION SELECT age FROM singer)"
    assert constraint.check(union) is None
    correlated = "SELECT name FROM singer WHERE EXISTS (SELECT 1 FROM concert WHERE concert.singer_id = age)"
    assert constraint.check(correlated) is None  # `age` is the outer query's
    assert "unknown column 'rank'" in constraint.check(ordered.replace("ORDER BY year", "ORDER BY rank"))


def test_the_automaton_agrees_with_the_pattern(music):
    constraint, _ = music
    assert constraint.accepts(NESTED)
    assert not constraint.accepts(NESTED + " ORDER")
    assert constraint.accepts("SELECT name  ,   age FROM singer")  # whitespace runs within the bound
    assert not constraint.accepts("SELECT name      FROM singer")


@pytest.mark.parametrize("glued, spaced", [
    ("SELECT count(DISTINCTcountry) FROM singer", "SELECT count(DISTINCT country) FROM singer"),
    ("SELECT country FROM singer GROUP BYage", "SELECT country FROM singer GROUP BY age"),
    ("SELECT22 FROM singer", "SELECT 22 FROM singer"),
])
def test_word_tokens_never_touch(music, glued, spaced):
    """Where the previous token may end in a word character or not, the grammar's regex alone leaves the
    space optional; the automaton also follows the lexical pattern, so the glued spelling is never offered."""
    constraint, _ = music
    assert re.fullmatch(constraint.pattern, glued)  # the regex alone has the gap
    assert not constraint.matches_pattern(glued) and constraint.matches_pattern(spaced)


@pytest.fixture(scope="module")
def exact_byte_automaton():
    constraint = sql(DDL, loose_depth=0)
    return constraint, constraint.bind(byte_vocabulary()).dfa


@settings(max_examples=150, deadline=None)
@given(st.randoms(use_true_random=False))
def test_texts_of_the_exact_masks_are_in_the_grammar(exact_byte_automaton, rng):
    """Where nothing is loosened, every text the masks allow parses with the grammar at commit: a random walk
    over the byte automaton (a uniformly chosen allowed byte at each step, stopping at random where the text
    may end) that ends is a text Lark accepts. Scope and SQLite's checks are not the subject here."""
    constraint, dfa = exact_byte_automaton
    state, text = dfa.initial, bytearray()
    while len(text) < 300:
        moves = [(byte, int(dfa.table[state, dfa.token_class[byte]])) for byte in range(256)]
        moves = [(byte, target) for byte, target in moves if target != DEAD]
        if dfa.accepting[state] and (not moves or rng.random() < 0.2):
            break
        byte, state = rng.choice(moves)
        text.append(byte)
    if dfa.accepting[state]:
        query = text.decode()
        assert constraint.check.grammar_problem(query) is None, query


# ---- a tiny generator of queries over the schema: everything it writes is accepted
_COLUMNS = {"singer": ["singer_id", "name", "country", "age"], "concert": ["concert_id", "concert_name", "year"]}


@st.composite
def queries(draw):
    table = draw(st.sampled_from(sorted(_COLUMNS)))
    columns = _COLUMNS[table]
    pick = st.sampled_from(columns)
    case = st.sampled_from([str.lower, str.upper, lambda s: s])
    space = st.sampled_from([" ", "  ", "\n"])
    select = draw(st.lists(st.one_of(pick, st.just("count(*)"), pick.map(lambda c: f"max({c})")), min_size=1,
                           max_size=3))
    parts = [draw(case)("SELECT"), ", ".join(select), draw(case)("FROM"), draw(case)(table)]
    if draw(st.booleans()):
        literal = draw(st.one_of(st.integers(0, 999).map(str), st.text("abc XY%", max_size=5).map(lambda t: f"'{t}'")))
        parts += [draw(case)("WHERE"), draw(pick), draw(st.sampled_from(["=", "<", ">=", "!="])), literal]
    if draw(st.booleans()):
        parts += [draw(case)("ORDER BY"), draw(pick), draw(st.sampled_from(["ASC", "desc", ""]))]
    if draw(st.booleans()):
        parts += ["LIMIT", str(draw(st.integers(1, 50)))]
    return draw(space).join(p for p in parts if p)


@settings(max_examples=60, deadline=None)
@given(queries())
def test_generated_queries_are_accepted(music, query):
    assert accepted(music, query), (query, music[0].check(query))


@pytest.mark.skipif(not SPIDER.exists(), reason="Spider data not available")
def test_spider_gold_sample():
    dev = [x for x in json.loads((SPIDER / "dev.json").read_text()) if x["db_id"] == "pets_1"]
    constraint = sql(SPIDER / "database" / "pets_1" / "pets_1.sqlite")
    pattern = Patterns(constraint)
    sample = random.Random(0).sample(dev, 20)
    flat = [x["query"] for x in sample if "(select" not in x["query"].lower().replace("( select", "(select")]
    rejected = [q for q in flat if not (pattern.fullmatch(q) and constraint.check(q) is None)]
    assert len(flat) >= 12 and not rejected
