"""The commit-time check of a SQL text: what the regular approximation cannot see.

The masks keep a query inside the depth-bounded grammar with real names in every name position. They cannot
see *which* table a column belongs to, nor anything past the depth bound. When a block is committed we
therefore check, in order, and report the first problem in words a user (or a remasking loop) can act on:

1. the grammar (Lark), so nothing outside the read-only SELECT language passes;
2. sqlglot's parse, and that it is one read-only statement;
3. names: every table exists, every qualified column exists in the table its qualifier names, every
   unqualified column exists in some table in scope; then sqlglot's ``qualify`` for the rest (ambiguity,
   correlated references, select aliases);
4. SQLite compiling the query (``EXPLAIN``) against an empty in-memory copy of the schema: argument counts,
   aggregate misuse, row values where a scalar is needed -- SQLite's own notion of type sanity.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from functools import cached_property

import sqlglot
from lark import Lark
from lark.exceptions import LarkError
from sqlglot import exp
from sqlglot.errors import OptimizeError, ParseError, TokenError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, traverse_scope

from .database import Schema

_WRITE_NODES = (exp.Insert, exp.Update, exp.Delete, exp.Create, exp.Drop, exp.Alter, exp.Command, exp.Pragma,
                exp.Attach, exp.Detach, exp.Merge, exp.TruncateTable, exp.Set, exp.Transaction, exp.Commit,
                exp.Rollback)


class SqlChecker:
    """``checker(text)`` is ``None`` for an acceptable query, else the first problem found."""

    def __init__(self, schema: Schema, parser: Lark, dialect: str = "sqlite") -> None:
        self.schema = schema
        self.parser = parser
        self.dialect = dialect

    def __call__(self, text: str) -> str | None:
        for step in (self.grammar_problem, self.statement_problem):
            problem = step(text)
            if problem:
                return problem
        return None

    # ---- 1. grammar
    def grammar_problem(self, text: str) -> str | None:
        try:
            self.parser.parse(text)
        except LarkError as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return f"not in the read-only SELECT grammar: {first_line}"
        return None

    # ---- 2-4. sqlglot and SQLite
    def statement_problem(self, text: str) -> str | None:
        try:
            statements = [s for s in sqlglot.parse(text, read=self.dialect) if s is not None]
        except (ParseError, TokenError) as exc:
            return f"sqlglot cannot parse it: {str(exc).splitlines()[0]}"
        if len(statements) != 1:
            return f"expected one statement, found {len(statements)}"
        tree = self.strings_for_unknown_quoted_names(statements[0])
        writes = [type(node).__name__ for node in tree.walk() if isinstance(node, _WRITE_NODES)]
        if writes or not isinstance(tree, exp.Query):
            return f"not a read-only query ({writes[0] if writes else type(tree).__name__})"
        return self.name_problem(tree) or self.sqlite_problem(text)

    def strings_for_unknown_quoted_names(self, tree: exp.Expression) -> exp.Expression:
        """``tree`` with every double-quoted name that names no column in its scope made a string, as SQLite
        reads it (``"Asia"`` is a string unless a table in reach has a column Asia); sqlglot always reads a
        name. In reach: the tables and subqueries of the query's FROM and of the queries around it, and its
        own result-column names. The masks write double-quoted text wherever a string may go, so the check
        must not refuse ``"name"`` where SQLite takes it as a string (a column of a table out of reach)."""
        if not any(_is_quoted(column) for column in tree.find_all(exp.Column)):
            return tree
        try:
            scopes = traverse_scope(tree)
        except OptimizeError:
            return tree  # name_problem reports it
        for column, scope in _columns_by_owning_scope(scopes):
            if _is_quoted(column) and not self.resolves(scope, column.name):
                column.replace(exp.Literal.string(column.name))
        return tree

    def resolves(self, scope: Scope, name: str) -> bool:
        """Whether SQLite finds a column ``name`` for an unqualified reference in ``scope``."""
        folded = name.lower()
        for current in _scope_chain(scope):
            for source in current.sources.values():
                if isinstance(source, exp.Table):
                    table = self.schema.table(source.name)
                    if table is not None and table.column(name) is not None:
                        return True
                elif isinstance(source, Scope) and any(
                        output.lower() == folded for output in source.expression.named_selects):
                    return True
        return _is_select_alias(scope, name)

    def name_problem(self, tree: exp.Expression) -> str | None:
        try:
            scopes = traverse_scope(tree)
        except OptimizeError as exc:
            return f"cannot resolve the query's scopes: {exc}"
        for scope in scopes:
            for table in scope.tables:
                if table.name and table.name not in scope.cte_sources and self.schema.table(table.name) is None:
                    return f"unknown table '{table.name}'"
        for column, scope in _columns_by_owning_scope(scopes):
            problem = self.column_problem(scope, column)
            if problem:
                return problem
        try:
            qualify(tree.copy(), schema=self.sqlglot_schema, dialect=self.dialect, validate_qualify_columns=True)
        except OptimizeError as exc:
            return f"column scoping: {str(exc).splitlines()[0]}"
        return None

    def column_problem(self, scope: Scope, column: exp.Column) -> str | None:
        name = column.name
        if column.table:
            source = _find_source(scope, column.table)
            if source is None:
                return f"unknown table or alias '{column.table}' for column '{name}'"
            if isinstance(source, exp.Table):
                table = self.schema.table(source.name)
                if table is not None and table.column(name) is None:
                    return f"unknown column '{name}' in table '{table.name}'"
            return None
        if name == "*" or self.resolves(scope, name):
            return None
        if any(not isinstance(source, exp.Table) for s in _scope_chain(scope) for source in s.sources.values()):
            return None  # a derived table may provide it under a name sqlglot does not list; qualify decides
        in_scope = [self.schema.table(source.name) for s in _scope_chain(scope)
                    for source in s.sources.values() if isinstance(source, exp.Table)]
        tables = ", ".join(sorted({t.name for t in in_scope if t is not None})) or "no table"
        return f"unknown column '{name}' (not in {tables})"

    def sqlite_problem(self, text: str) -> str | None:
        try:
            self.empty_database.execute(f"EXPLAIN {text}")
        except sqlite3.Error as exc:
            return f"SQLite cannot compile it: {exc}"
        return None

    @cached_property
    def sqlglot_schema(self) -> dict[str, dict[str, str]]:
        return {t.name: {c.name: c.type or "TEXT" for c in t.columns} for t in self.schema.tables}

    @cached_property
    def empty_database(self) -> sqlite3.Connection:
        """An in-memory database with the schema's tables and no rows: enough for SQLite to compile against."""
        connection = sqlite3.connect(":memory:", check_same_thread=False)
        connection.executescript(self.schema.ddl())
        connection.execute("PRAGMA query_only = ON")
        return connection


def _is_quoted(column: exp.Column) -> bool:
    """An unqualified column written in quotes. sqlglot does not keep which quotes; a bracketed or backticked
    name that names no column is made a string too, and SQLite, which compiles the text itself, refuses it."""
    return not column.table and bool(column.this.args.get("quoted"))


def _scope_chain(scope: Scope) -> list[Scope]:
    chain = []
    current: Scope | None = scope
    while current is not None:
        chain.append(current)
        current = current.parent
    return chain


def _columns_by_owning_scope(scopes: list[Scope]) -> list[tuple[exp.Column, Scope]]:
    """Each column once, with the innermost scope whose query holds it.

    sqlglot also lists a subquery's columns under the enclosing scope (``capacity`` in
    ``x = (SELECT id FROM stadium ORDER BY capacity)`` shows up in the outer scope too), where they would be
    looked up among the wrong tables.
    """
    owner_of = {id(scope.expression): scope for scope in scopes}
    owned: dict[int, tuple[exp.Column, Scope]] = {}
    for scope in scopes:
        for column in scope.columns:
            node: exp.Expression | None = column
            while node is not None and id(node) not in owner_of:
                node = node.parent
            owned.setdefault(id(column), (column, owner_of[id(node)] if node is not None else scope))
    return list(owned.values())


def _find_source(scope: Scope, qualifier: str) -> object | None:
    folded = qualifier.lower()
    for current in _scope_chain(scope):
        for alias, source in current.sources.items():
            if alias.lower() == folded:
                return source.expression if isinstance(source, Scope) else source
    return None


def _is_select_alias(scope: Scope, name: str) -> bool:
    select = scope.expression
    return isinstance(select, exp.Select) and any(
        isinstance(e, exp.Alias) and e.alias.lower() == name.lower() for e in select.expressions)


def make_check(schema: Schema, parser: Lark, dialect: str = "sqlite") -> Callable[[str], str | None]:
    """The check function for :class:`constrained.constraint.Constraint`."""
    return SqlChecker(schema, parser, dialect)
