"""``generate_sql``: a question about a database in, a read-only query (and optionally its rows) out.

The question reaches SQL only through generation: it is placed in the prompt, never interpolated into a
query. The schema goes into the prompt in the compact form of :func:`constrained.prompts.compact_sql_schema`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import sqlglot

from ..errors import ConstraintUnsatisfiable
from ..generation import GenerationResult, generate
from ..prompts import compact_sql_schema, sql_prompt
from .compiler import DEFAULT_LOOSE_DEPTH, sql
from .database import load_schema
from .execute import execute_readonly


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


def generate_sql(question: str, db: Any, *, model: Any = None, tokenizer: Any = None, execute: bool = False,
                 dialect: str = "sqlite", depth: int = 0, **gen_kwargs: Any) -> SqlResult:
    """A query over ``db`` answering ``question``, generated under :func:`constrained.sql`'s constraint.

    When no admissible query passes the commit check, it tries once more without the loosened brackets
    (``loose_depth=0``: no nesting past ``depth``) before giving up.

    Parameters:
        question: the question, placed in the prompt (never into a query).
        db: SQLite path, connection, DDL text or Spider entry.
        model: the denoiser; ``None`` is the built-in model.
        tokenizer: the model's tokenizer (``None`` only with ``model=None``).
        execute: run the query read-only on ``db``, which must then be a file or a connection.
        dialect: the dialect of the returned ``sql`` (generated in SQLite's, converted by sqlglot).
        depth: nesting the masks track exactly (see :func:`constrained.sql`).
        gen_kwargs: go to :func:`constrained.generation.generate` (``max_new_tokens``, ``steps``, ``seed``, ...).

    Returns:
        The query, the generated text, the rows when executed, and the generation's figures.

    Raises:
        ConstraintUnsatisfiable: no admissible query passed the commit check within the budget, twice.
        DatabaseError: ``db`` cannot be read as a SQLite schema.
        DenoiserError: an explicit model without its tokenizer, or a model that cannot serve.
    """
    schema = load_schema(db)
    prompt = sql_prompt(compact_sql_schema({t.name: [c.name for c in t.columns] for t in schema.tables}), question)

    def generate_under(loose_depth: int) -> GenerationResult:
        constraint = sql(schema, depth=depth, loose_depth=loose_depth)
        return generate(constraint, prompt, model=model, tokenizer=tokenizer, **gen_kwargs)

    try:
        result = generate_under(DEFAULT_LOOSE_DEPTH)
    except ConstraintUnsatisfiable:
        # Past ``depth`` the masks keep brackets only balanced, with free text inside, and a denoiser can fill
        # them with text the commit check rejects draw after draw (``FROM ( GROUP BY x)``). The tight
        # language has no such spans: everything its masks allow up to the commit check is real SQL.
        result = generate_under(0)
    text = result.text.strip()
    query = text if dialect == "sqlite" else sqlglot.transpile(text, read="sqlite", write=dialect)[0]
    rows = None
    if execute:
        rows = execute_readonly(db if isinstance(db, sqlite3.Connection) else schema, text)
    return SqlResult(query, text, dialect, rows, result)
