"""``sql(db)``: a :class:`Constraint` whose texts are read-only queries naming only the database's tables and
columns.

The masks come from the SELECT grammar (``constrained/grammars/sql.lark``) unrolled to a regular expression, with the
grammar's three name rules replaced by the real names, intersected with the grammar's lexical language (word
tokens never touch, every word is a keyword, a real name or a number); the commit-time check (Lark, sqlglot,
SQLite) covers what a regular language cannot: which table a column belongs to, and anything nested deeper
than ``depth``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from ..constraint import Constraint
from ..errors import GrammarError
from ..grammar_regex import OTHER, GrammarRegex, Piece, names_pieces
from .checks import SqlChecker
from .database import Schema, load_schema

GRAMMAR_PATH = Path(str(files("constrained") / "grammars" / "sql.lark"))
#: Aliases the masks offer (``FROM singer AS T1``): Spider's convention, and enough for nine-way joins.
DEFAULT_ALIASES = tuple(f"T{i}" for i in range(1, 10))
#: Names the masks offer for common table expressions (``WITH ranked AS (...)``): a regular language cannot tie a
#: later ``FROM ranked`` to any declared name, so a finite list of the generic names analysts give them.
DEFAULT_CTE_NAMES = ("cte", "base", "sub", "t", "totals", "counts", "stats", "summary", "ranked", "filtered",
                     "grouped", "yearly", "monthly", "daily")
#: Bare names the masks offer for result columns (``SUM(x) AS total``); any name double-quoted is offered too.
#: Finite for the same reason, and because a free identifier at every ``AS`` multiplied the automaton's build
#: time (docs/experiments.md).
DEFAULT_OUTPUT_NAMES = ("total", "cnt", "n", "num", "amount", "average", "avg_value", "max_value", "min_value",
                        "pct", "percentage", "share", "ratio", "rate", "diff", "difference", "growth", "rn",
                        "rnk", "ranking", "position", "yr", "label", "category", "value", "result")
POST_CHECKED = (
    "grammar beyond the nesting depth (Lark parse)",
    "column scoping: a column belongs to a table in scope or is a result column declared in reach (sqlglot qualify)",
    "single read-only statement (sqlglot)",
    "SQLite compiles the query against the schema",
)


@lru_cache(maxsize=4)
def sql_grammar(path: Path = GRAMMAR_PATH) -> GrammarRegex:
    """The loaded SELECT grammar (Lark parser and rule trees), shared by every constraint."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GrammarError(f"cannot read the SQL grammar at {path}: {exc.strerror}") from exc
    return GrammarRegex(text)


def name_spellings(names: tuple[str, ...] | list[str], grammar: GrammarRegex) -> list[str]:
    """How each name may be written: bare when the grammar's NAME takes it (not a keyword, a plain
    identifier); otherwise quoted, in each of SQLite's three quotings that can hold it (``"a b"``, `` `a b` ``,
    ``[a b]``), since analysts write all three for names with spaces, dashes or brackets."""
    bare = re.compile(grammar.terminals["NAME"].pattern.to_regexp())
    spellings = []
    for name in names:
        if bare.fullmatch(name):
            spellings.append(name)
            continue
        spellings.append('"' + name.replace('"', '""') + '"')
        if "`" not in name:
            spellings.append(f"`{name}`")
        if "]" not in name:
            spellings.append(f"[{name}]")
    return spellings


def sql_overrides(schema: Schema, grammar: GrammarRegex, aliases: tuple[str, ...], cte_names: tuple[str, ...],
                  output_names: tuple[str, ...]) -> dict[str, list[Piece]]:
    """The name rules of the grammar, spelled with the schema's real names and the offered aliases, CTE names
    and result-column names (or any double-quoted one: ``AS "share of sales"``).

    A column may also be named by one of the bare result-column names: that of a CTE or a derived table read
    by the query, or of the query's own select list in WHERE, GROUP BY, HAVING or ORDER BY, as SQLite allows.
    Which name was declared where is left to the commit check (a regular language cannot carry the set of
    declared names along); double-quoted ones are not offered there, where ``"..."`` is already a string."""
    return {
        "output_name": [*names_pieces(name_spellings(output_names, grammar)),
                        Piece('"[ !#-~]+"', frozenset({OTHER}), frozenset({OTHER}))],
        "table_name": names_pieces(name_spellings(schema.table_names, grammar)),
        "column_name": names_pieces(name_spellings([*schema.column_names, *output_names], grammar)),
        "alias": names_pieces(name_spellings(aliases, grammar)),
        "cte_name": names_pieces(name_spellings(cte_names, grammar)),
    }


#: Bracket levels past ``depth`` kept as balanced free text. Spider's dev queries nest brackets at most two deep;
#: one level more is headroom, and costs few automaton states (docs/experiments.md).
DEFAULT_LOOSE_DEPTH = 3
#: Longest whitespace run between tokens: Spider's gold queries have runs of up to three (``T1.id  =  T2.id``
#: has two); one more is headroom.
DEFAULT_MAX_WHITESPACE = 4


def sql(db: Any, *, dialect: str = "sqlite", depth: int = 0, max_whitespace: int = DEFAULT_MAX_WHITESPACE,
        loose_depth: int = DEFAULT_LOOSE_DEPTH, aliases: tuple[str, ...] = DEFAULT_ALIASES,
        cte_names: tuple[str, ...] = DEFAULT_CTE_NAMES, output_names: tuple[str, ...] = DEFAULT_OUTPUT_NAMES,
        compile_timeout_s: float = 120.0) -> Constraint:
    """The constraint for read-only queries over ``db``, naming only its tables and columns.

    Parameters:
        db: the database: a SQLite file path, a ``sqlite3.Connection``, DDL text, or a Spider ``tables.json``
            entry.
        dialect: only ``"sqlite"``: queries are generated in SQLite's dialect; convert them with sqlglot.
        depth: nesting the masks track exactly (subqueries, parenthesised expressions, general function
            calls; ``count(*)`` and ``avg(col)`` are free).
        max_whitespace: the longest run of whitespace between tokens.
        loose_depth: levels past ``depth`` allowed with only balanced brackets of real words in the masks, and
            everything verified at commit (``0`` forbids them).
        aliases: the table aliases the masks offer.
        cte_names: the names the masks offer for common table expressions.
        output_names: the bare names the masks offer for result columns (any double-quoted name is offered too),
            and as column names, for the result columns of CTEs, derived tables and the select list.
        compile_timeout_s: the bound on building the token automaton, per vocabulary.

    Returns:
        The :class:`~constrained.constraint.Constraint`, its commit-time check covering what the masks do not
        (``POST_CHECKED``); its automaton is built on first use.

    Raises:
        GrammarError: another dialect, the grammar cannot be read, or its regex outgrows the size budget.
        DatabaseError: the database cannot be read or has no tables.
    """
    if dialect != "sqlite":
        raise GrammarError(f"only the sqlite dialect is generated (got {dialect!r}); convert the result with "
                           "sqlglot.transpile")
    schema = load_schema(db)
    grammar = sql_grammar()
    overrides = sql_overrides(schema, grammar, aliases, cte_names, output_names)
    pattern = grammar.regex(depth, overrides, max_whitespace=max_whitespace, loose_depth=loose_depth)
    return Constraint(pattern, check=SqlChecker(schema, grammar.lark, dialect), post_checked=POST_CHECKED,
                      kind="sql", also_matches=(grammar.lexical_regex(overrides),),
                      compile_timeout_s=compile_timeout_s)
