"""Populated copies of a database that holds a schema but no rows, for measuring execution accuracy.

The Spider dev databases in ../shared/data/spider have their tables but are empty, so every query that runs
returns the gold query's empty result and "same rows" says nothing. Following the test-suite idea of Zhong et
al. (2020), we fill in-memory copies with random rows and compare results there, on several copies: two queries
that agree on all of them very likely mean the same thing. To make filters and joins select something:

* columns tied by a foreign key (and primary keys) draw from one shared domain of small integers, so joins hit;
* other columns draw partly from the literals that the database's gold queries mention (``'France'``, ``30``,
  the fixed part of a ``LIKE`` pattern), partly from generic values, so a ``WHERE`` clause keeps some rows and
  drops others.

The copy's declared column types are only hints (Spider's come from ``tables.json`` and are often wrong, a
``Location number``), so a value's kind follows the type loosely and SQLite's affinity does the rest.
"""

from __future__ import annotations

import random
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from constrained.text_to_sql.database import connect_readonly

_STRING_LITERAL = re.compile(r"'((?:[^']|'')*)'|\"((?:[^\"]|\"\")*)\"")
_NUMBER_LITERAL = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?![\w.])")
_TEXT_TYPES = ("char", "text", "clob", "time", "date", "other")


@dataclass
class Literals:
    """Values the gold queries of one database compare against."""

    strings: list[str] = field(default_factory=list)
    numbers: list[float] = field(default_factory=list)


def gold_literals(queries: Iterable[str]) -> Literals:
    """String and number literals of ``queries``; ``LIKE`` patterns give their fixed text."""
    found = Literals()
    for query in queries:
        for single, double in _STRING_LITERAL.findall(query):
            text = (single or double).replace("''", "'").replace('""', '"')
            found.strings.extend(part for part in text.split("%") if part)
        found.numbers.extend(float(n) for n in _NUMBER_LITERAL.findall(_STRING_LITERAL.sub("''", query)))
    found.strings = sorted(set(found.strings))
    found.numbers = sorted(set(found.numbers))
    return found


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _KeyGroups:
    """Union-find over (table, column): columns joined by a foreign key share one value domain."""

    def __init__(self) -> None:
        self.parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(self, key: tuple[str, str]) -> tuple[str, str]:
        self.parent.setdefault(key, key)
        while self.parent[key] != key:
            key = self.parent[key]
        return key

    def union(self, a: tuple[str, str], b: tuple[str, str]) -> None:
        self.parent[self.find(a)] = self.find(b)

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self.parent


#: A column as ``(table, column)``, lower case.
Column = tuple[str, str]


def spider_keys(entry: dict) -> tuple[list[tuple[Column, Column]], list[Column]]:
    """Foreign-key pairs and primary keys of a Spider ``tables.json`` entry.

    Why not the SQLite file's own: the dev databases here were rebuilt from ``tables.json`` with a broken key
    clause (a column literally named ``key``, typed ``pk_StuID StuID``), so ``PRAGMA foreign_key_list`` names
    that column instead of the real one.
    """
    tables = [t.lower() for t in entry["table_names_original"]]
    columns = [(tables[t], c.lower()) if t >= 0 else ("", c) for t, c in entry["column_names_original"]]
    return [(columns[a], columns[b]) for a, b in entry["foreign_keys"]], [columns[k] for k in entry["primary_keys"]]


def populated_copy(path: Path, literals: Literals, seed: int, rows_per_table: int = 30,
                   keys: tuple[list[tuple[Column, Column]], list[Column]] | None = None) -> sqlite3.Connection:
    """An in-memory copy of the database at ``path`` with ``rows_per_table`` random rows in every table.

    ``keys`` (foreign-key pairs, primary keys) replaces what the file declares (see :func:`spider_keys`)."""
    source = connect_readonly(path)
    copy = sqlite3.connect(":memory:")
    try:
        source.backup(copy)
    finally:
        source.close()
    rng = random.Random(seed)
    tables = [name for (name,) in copy.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                                "AND name NOT LIKE 'sqlite_%'")]
    columns = {t: [(row[1], (row[2] or "").lower(), row[5]) for row in copy.execute(f"PRAGMA table_info({_quote(t)})")]
               for t in tables}
    foreign, primary = keys if keys is not None else _declared_keys(copy, tables, columns)
    groups = _KeyGroups()
    for child, parent in foreign:
        groups.union(child, parent)
    for column in primary:
        groups.find(column)
    for table in tables:
        rows = [tuple(_value(rng, table, name, kind, groups, literals, rows_per_table)
                      for name, kind, _pk in columns[table]) for _ in range(rows_per_table)]
        marks = ", ".join("?" * len(columns[table]))
        copy.executemany(f"INSERT OR IGNORE INTO {_quote(table)} VALUES ({marks})", rows)
    copy.commit()
    return copy


def _declared_keys(copy: sqlite3.Connection, tables: list[str], columns: dict[str, list]
                   ) -> tuple[list[tuple[Column, Column]], list[Column]]:
    """Foreign-key pairs and primary keys as the database file declares them."""
    foreign = []
    for table in tables:
        for _id, _seq, parent, child, parent_column, *_ in copy.execute(f"PRAGMA foreign_key_list({_quote(table)})"):
            foreign.append(((table.lower(), child.lower()), (parent.lower(), (parent_column or "").lower())))
    primary = [(table.lower(), name.lower()) for table in tables for name, _type, pk in columns[table] if pk]
    return foreign, primary


def _value(rng: random.Random, table: str, column: str, kind: str, keys: _KeyGroups, literals: Literals,
           rows: int) -> object:
    if (table.lower(), column.lower()) in keys:
        return rng.randint(1, rows)
    if rng.random() < 0.05:
        return None
    if any(t in kind for t in _TEXT_TYPES):
        if literals.strings and rng.random() < 0.5:
            return rng.choice(literals.strings)
        return f"{column.lower()}{rng.randint(1, 12)}"
    if literals.numbers and rng.random() < 0.3:
        return rng.choice(literals.numbers) + rng.choice((-1, 0, 0, 1))
    return rng.randint(0, 100)
