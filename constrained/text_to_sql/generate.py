"""``generate_sql``: a question about a database in, a read-only query (and optionally its rows) out.

The question reaches SQL only through generation: it is placed in the prompt, never interpolated into a
query. The schema goes into the prompt in the compact form of :func:`constrained.prompts.compact_sql_schema`.

No dead ends: the schema-wide constraint leaves column scoping to the commit-time check, and a denoiser can meet
it there draw after draw (an alias its FROM clause never declared, a column of another table). When a run
raises, the next one decides the FROM clause first (:mod:`constrained.text_to_sql.scope`): the one the failed
run wrote, where it is admissible, then single tables in order of relevance to the question; under those
constraints the masks offer only columns in reach.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlglot

from ..constraint import Constraint
from ..errors import ConstraintUnsatisfiable, GrammarError
from ..generation import GenerationResult, generate
from ..prompts import compact_sql_schema, sql_prompt
from .compiler import name_spellings, sql, sql_grammar
from .database import Schema, load_schema
from .execute import execute_readonly
from .scope import from_clause_of, scoped_sql, tables_by_relevance

#: Generation runs before giving up: the schema-wide constraint, then FROM clauses decided first. A FROM-first
#: run binds and draws over a small automaton, so a few more of them cost seconds.
DEFAULT_ATTEMPTS = 6
#: Admissible blocks the schema-wide run draws when its best block fails the commit check (the sampler's
#: ``fallback_draws``), unless the caller sets them. Its automaton is the large one, and each share of draws is a
#: pass over all its states at every position of the canvas, while what the draws fail on is mostly column scope,
#: which the FROM-first runs settle over automata a tenth of the size, whose draws are cheap.
SCHEMA_WIDE_FALLBACK_DRAWS = 0


@dataclass(frozen=True)
class SqlResult:
    """``sql``: the query (in ``dialect``); ``text``: what was generated (SQLite); ``rows`` when executed."""

    sql: str
    text: str
    dialect: str
    rows: list[tuple] | None
    generation: GenerationResult

    def to(self, dialect: str) -> str:
        """The query in another SQL dialect, through sqlglot."""
        return sqlglot.transpile(self.text, read="sqlite", write=dialect)[0]


def question_prompt(schema: Schema, question: str) -> str:
    """The prompt of a question over ``schema``: its tables in compact form, then the question."""
    return sql_prompt(compact_sql_schema({t.name: [c.name for c in t.columns] for t in schema.tables}), question)


def generate_sql(question: str, db: Any, *, model: Any = None, tokenizer: Any = None, execute: bool = False,
                 dialect: str = "sqlite", depth: int = 0, attempts: int = DEFAULT_ATTEMPTS,
                 **gen_kwargs: Any) -> SqlResult:
    """A query over ``db`` answering ``question``, generated under :func:`constrained.sql`'s constraint.

    When a run ends with no admissible query, the next one decides the FROM clause first (the failed run's
    own, where it is admissible, then single tables by relevance to the question), up to ``attempts`` runs.
    The schema-wide run draws no fallback blocks unless ``fallback_draws`` says otherwise
    (:data:`SCHEMA_WIDE_FALLBACK_DRAWS`).

    Parameters:
        question: the question, placed in the prompt (never into a query).
        db: SQLite path, connection, DDL text or Spider entry.
        model: the denoiser; ``None`` is the built-in model.
        tokenizer: the model's tokenizer (``None`` only with ``model=None``).
        execute: run the query read-only on ``db``, which must then be a file or a connection.
        dialect: the dialect of the returned ``sql`` (generated in SQLite's, converted by sqlglot).
        depth: nesting the schema-wide masks track exactly (see :func:`constrained.sql`).
        attempts: generation runs at most, the schema-wide one included.
        gen_kwargs: go to :func:`constrained.generation.generate` (``max_new_tokens``, ``steps``, ``seed``,
            ``fallback_draws``, ...).

    Returns:
        The query, the generated text, the rows when executed, and the generation's figures.

    Raises:
        ConstraintUnsatisfiable: every attempt ended without an admissible query (the last one's error, with its
            partial text).
        DatabaseError: ``db`` cannot be read as a SQLite schema, or ``execute`` and SQLite refuses the query.
        DenoiserError: an explicit model without its tokenizer, or a model that cannot serve.
        ValueError: ``attempts`` is below 1.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    schema = load_schema(db)
    prompt = question_prompt(schema, question)
    failures: list[ConstraintUnsatisfiable] = []
    result = None
    for index, constraint in enumerate(_constraints(schema, question, depth, failures)):
        options = gen_kwargs if index else {"fallback_draws": SCHEMA_WIDE_FALLBACK_DRAWS, **gen_kwargs}
        try:
            result = generate(constraint, prompt, model=model, tokenizer=tokenizer, **options)
            break
        except ConstraintUnsatisfiable as error:
            failures.append(error)
            if len(failures) >= attempts:
                break
    if result is None:
        last = failures[-1]
        raise ConstraintUnsatisfiable(f"no admissible query in {len(failures)} attempts; the last: {last}",
                                      partial=last.partial)
    text = result.text.strip()
    query = text if dialect == "sqlite" else sqlglot.transpile(text, read="sqlite", write=dialect)[0]
    rows = None
    if execute:
        rows = execute_readonly(db if isinstance(db, sqlite3.Connection) else schema, text)
    return SqlResult(query, text, dialect, rows, result)


def _constraints(schema: Schema, question: str, depth: int,
                 failures: list[ConstraintUnsatisfiable]) -> Iterator[Constraint]:
    """The constraints to try, in order, each built only when the one before has failed (``failures`` grows
    between them): the schema-wide one, the failed run's own FROM clause, then single tables."""
    yield sql(schema, depth=depth)
    partials = [error.partial for error in failures if error.partial]
    tried: set[str] = set()
    clauses = [clause for clause in map(from_clause_of, partials) if clause]
    grammar = sql_grammar()
    for table in tables_by_relevance(schema, question, partials):
        clauses.append(f"FROM {name_spellings([table.name], grammar)[0]}")
    for clause in clauses:
        if clause.lower() in tried:
            continue
        tried.add(clause.lower())
        try:
            constraint = scoped_sql(schema, clause)
        except GrammarError:
            continue  # the failed run's FROM clause is itself out of scope: the single tables follow
        yield constraint
