"""FROM first: a constraint whose masks know which columns are in reach, because the FROM clause is decided.

The schema-wide constraint (:func:`constrained.text_to_sql.sql`) cannot tell, while denoising, which table a
column belongs to or which alias a query declared: a regular language would have to remember the FROM clause,
which a canvas may even fill in after the select list. Those rules are left to the commit-time check, and a
denoiser can meet them there draw after draw (``T2.name`` with no ``T2`` in FROM, a column of another table).

Decide the FROM clause first, and the scope is known: every column reference the masks offer is then a column
of a table in that clause: unqualified when the clause reads one table, qualified by a qualifier it declares
when it reads several (so that none is ambiguous). :func:`scoped_sql` builds that constraint; the FROM clause is
kept verbatim, joins and ON conditions included (checked once, up front). Nesting is not loosened here: a
subquery would open a scope of its own, which the masks could not see.
"""

from __future__ import annotations

import re
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from ..constraint import Constraint
from ..errors import GrammarError
from ..grammar_regex import WORD, Piece, char_kind, literal_text_regex, names_pieces
from .checks import SqlChecker
from .compiler import DEFAULT_MAX_WHITESPACE, POST_CHECKED, name_spellings, sql_grammar, sql_overrides
from .database import Schema, Table, load_schema

#: Keywords that end a FROM clause at bracket depth 0.
_AFTER_FROM = re.compile(r"\b(?:where|group|having|order|limit|union|intersect|except|window)\b|;", re.I)
_FROM = re.compile(r"\bfrom\b", re.I)


def from_clause_of(text: str) -> str | None:
    """The top-level FROM clause of a (possibly unfinished) query text, or ``None`` when it has none.

    Parameters:
        text: a query, as generated.

    Returns:
        ``FROM ...`` up to the next top-level clause, stripped; ``None`` when no FROM sits at bracket depth 0.
    """
    flat = _top_level(text)
    start = _FROM.search(flat)
    if start is None:
        return None
    end = _AFTER_FROM.search(flat, start.end())
    clause = text[start.start(): end.start() if end else len(text)].strip()
    return clause if len(clause) > len("from") else None


def _top_level(text: str) -> str:
    """``text`` with everything inside brackets or quotes blanked out (same length), and cut where a bracket
    closes that it did not open."""
    out = []
    depth, quote = 0, ""
    for char in text:
        if quote:
            out.append(" ")
            quote = "" if char == quote else quote
        elif char in "'\"`":
            quote = char
            out.append(" ")
        elif char == "(":
            depth += 1
            out.append(" ")
        elif char == ")":
            depth -= 1
            if depth < 0:
                break
            out.append(" ")
        else:
            out.append(char if depth == 0 else " ")
    return "".join(out)


def scope_sources(schema: Schema, from_clause: str) -> list[tuple[str, Table]]:
    """The (qualifier, table) pairs a FROM clause brings into scope, in order.

    Raises:
        GrammarError: the clause does not parse, or one of its sources is not a table of the schema (a
            subquery, a table function).
    """
    try:
        tree = sqlglot.parse_one(f"SELECT * {from_clause}", read="sqlite")
    except SqlglotError as exc:
        raise GrammarError(f"the FROM clause does not parse: {str(exc).splitlines()[0]}") from exc
    sources = []
    for source in [tree.args.get("from_") or tree.args.get("from"), *(tree.args.get("joins") or [])]:
        node = source.this if source is not None else None
        table = schema.table(node.name) if isinstance(node, exp.Table) else None
        if table is None:
            raise GrammarError(f"the FROM clause reads from something that is not a table of the schema: {node}")
        sources.append((node.alias_or_name, table))
    return sources


def scoped_sql(db: Any, from_clause: str, *, max_whitespace: int = DEFAULT_MAX_WHITESPACE,
               compile_timeout_s: float = 120.0) -> Constraint:
    """The read-only SELECT constraint over ``db`` with its FROM clause fixed to ``from_clause``.

    Parameters:
        db: the database, as for :func:`constrained.text_to_sql.sql`.
        from_clause: ``FROM`` and its table sources (joins and ON conditions included), as SQLite text; every
            source a table of the database.
        max_whitespace: the longest run of whitespace between tokens.
        compile_timeout_s: the bound on building the token automaton, per vocabulary.

    Returns:
        The :class:`~constrained.constraint.Constraint`: queries (compound ones too) whose every SELECT reads
        from exactly ``from_clause``, naming only columns in its scope, with no subqueries, windows,
        result-column names or CTEs; the commit-time check is the full one of :func:`~constrained.text_to_sql.sql`.

    Raises:
        GrammarError: the clause does not parse, reads from something other than the schema's tables, or fails
            the commit-time check (``SELECT * <clause>``).
        DatabaseError: the database cannot be read or has no tables.
    """
    schema = load_schema(db)
    grammar = sql_grammar()
    clause = from_clause.strip()
    checker = SqlChecker(schema, grammar.lark)
    problem = checker(f"SELECT * {clause}")
    if problem is not None:
        raise GrammarError(f"the FROM clause {clause!r} is not admissible: {problem}")
    sources = scope_sources(schema, clause)
    qualifiers = [spelling for qualifier, _ in sources for spelling in name_spellings([qualifier], grammar)]
    if len(sources) == 1:  # one table: its columns, unqualified (each spelling is a copy in every position)
        references = name_spellings([column.name for column in sources[0][1].columns], grammar)
    else:  # several: qualified, so that no reference is ambiguous
        references = [f"{q}.{c}" for qualifier, table in sources
                      for q in name_spellings([qualifier], grammar)
                      for c in name_spellings([column.name for column in table.columns], grammar)]
    overrides = sql_overrides(schema, grammar, aliases=(), cte_names=(), output_names=())
    fixed = Piece(literal_text_regex(clause, False), frozenset({WORD}), frozenset({char_kind(ord(clause[-1]))}))
    overrides.update(
        from_clause=[fixed],
        plain_from_clause=[fixed],  # the FROM of a query without WITH (sql.lark keeps the two apart)
        column_ref=names_pieces(references),
        qualifier=names_pieces(qualifiers),
        output_name=[],
        over_clause=[],  # windows would multiply the tight automaton; they stay with the schema-wide constraint
    )
    pattern = grammar.regex(0, overrides, max_whitespace=max_whitespace, loose_depth=0)
    return Constraint(pattern, check=checker, post_checked=POST_CHECKED, kind="sql",
                      also_matches=(grammar.lexical_regex(overrides),), compile_timeout_s=compile_timeout_s)


def tables_by_relevance(schema: Schema, question: str, texts: list[str]) -> list[Table]:
    """The schema's tables, those named in ``texts`` (earlier attempts) first, then by how many words of the
    question their own and their columns' names share; ties keep the schema's order."""
    mentioned = " ".join(texts).lower()

    def words(text: str) -> set[str]:
        split = re.sub(r"([a-z])([A-Z])", r"\1 \2", text).lower()
        return {word.rstrip("s") for word in re.findall(r"[a-z]+", split) if len(word) > 2}

    asked = words(question)

    def score(table: Table) -> tuple[int, int]:
        named = re.search(rf"(?<![\w]){re.escape(table.name.lower())}(?![\w])", mentioned)
        own = len(words(table.name) & asked)
        columns = len(set().union(*(words(c.name) for c in table.columns)) & asked)
        return (0 if named else 1, -(2 * own + columns))

    return sorted(schema.tables, key=score)
