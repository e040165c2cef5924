"""A database schema from whatever the user has: a SQLite file, a connection, DDL text, or a Spider entry.

Everything downstream (the identifier alternatives in the masks, the commit-time scoping check, the prompt)
needs only table names, column names and declared types, so all four inputs become one small, immutable
:class:`Schema`. A file is opened read-only through a ``file:...?mode=ro`` URI so that loading a schema can
never create or modify a database.

DDL text and SQL scripts (``constrained sql --db script.sql``) come from whoever sends them, so they run in a
sandbox (:func:`load_script`): an in-memory database that may attach no other database (SQLite's
``SQLITE_LIMIT_ATTACHED`` is 0, which also stops ``VACUUM INTO``), under an authorizer that refuses ``ATTACH``,
``DETACH``, every pragma but those reading the schema, and extension loading, and within a time and size bound.
A script can build tables and rows in memory and nothing else: it cannot read or write a file.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DatabaseError

_SQLITE_MAGIC = b"SQLite format 3\x00"
#: Pragmas a script may run: they read or set its own database's schema metadata and touch no file.
_SCRIPT_PRAGMAS = frozenset({
    "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo", "foreign_key_list",
    "foreign_keys", "defer_foreign_keys", "recursive_triggers", "case_sensitive_like", "user_version",
    "application_id", "encoding",
})
#: SQL functions a script may not call (extension loading; the rest exist only in some builds).
_SCRIPT_FUNCTIONS_DENIED = frozenset({"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit"})
#: A script's bounds: wall time, and the in-memory database's size (in 4 KiB pages).
SCRIPT_TIMEOUT_S = 10.0
SCRIPT_MAX_PAGES = 64 * 1024
_PROGRESS_STEPS = 10_000  # SQLite virtual-machine steps between two looks at the clock


@dataclass(frozen=True)
class Column:
    name: str
    type: str = ""  # the declared type, upper-cased; "" when undeclared


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]

    def column(self, name: str) -> Column | None:
        """The column of that name, compared case-insensitively as SQLite does."""
        folded = name.lower()
        return next((c for c in self.columns if c.name.lower() == folded), None)


@dataclass(frozen=True)
class Schema:
    """The tables of one database; ``path`` is set when it came from a file (so queries can run on it)."""

    tables: tuple[Table, ...]
    path: Path | None = None

    def table(self, name: str) -> Table | None:
        folded = name.lower()
        return next((t for t in self.tables if t.name.lower() == folded), None)

    @property
    def table_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tables)

    @property
    def column_names(self) -> tuple[str, ...]:
        """Distinct column names over all tables (case-insensitively distinct, first spelling kept)."""
        seen: dict[str, str] = {}
        for table in self.tables:
            for column in table.columns:
                seen.setdefault(column.name.lower(), column.name)
        return tuple(seen.values())

    def ddl(self) -> str:
        """CREATE TABLE statements for an in-memory copy (used to let SQLite itself compile a query)."""
        def quote(name: str) -> str:
            return '"' + name.replace('"', '""') + '"'

        return ";\n".join(
            f"CREATE TABLE {quote(t.name)} ("
            + ", ".join(f"{quote(c.name)} {c.type}".rstrip() for c in t.columns) + ")"
            for t in self.tables) + ";"


def load_schema(db: Any) -> Schema:
    """A :class:`Schema` from a path (str or Path) to a SQLite file, a ``sqlite3.Connection``, a DDL string,
    or a Spider ``tables.json`` entry; raises :class:`DatabaseError` naming what is wrong."""
    if isinstance(db, Schema):
        return db
    if isinstance(db, sqlite3.Connection):
        return _nonempty(Schema(_read_tables(db)), "the connection")
    if isinstance(db, Mapping):
        return _from_spider(db)
    if isinstance(db, Path) or (isinstance(db, str) and _looks_like_path(db)):
        path = Path(db)
        with connect_readonly(path) as connection:
            return _nonempty(Schema(_read_tables(connection), path.resolve()), str(path))
    if isinstance(db, str):
        return _from_ddl(db)
    raise DatabaseError(f"cannot read a schema from a {type(db).__name__}; give a SQLite path, a "
                        "sqlite3.Connection, DDL text, or a Spider tables.json entry")


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection to an existing SQLite file, after checking it is one."""
    if not path.is_file():
        raise DatabaseError(f"no database file at {path}")
    try:
        with path.open("rb") as handle:
            header = handle.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise DatabaseError(f"cannot read {path}: {exc.strerror}") from exc
    if header != _SQLITE_MAGIC:
        raise DatabaseError(f"{path} is not a SQLite database (bad header)")
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
        connection.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)  # read-only must not mean "may attach a writable one"
        connection.execute("PRAGMA query_only = ON")
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot open {path} read-only: {exc}") from exc
    return connection


def _looks_like_path(text: str) -> bool:
    stripped = text.strip()
    return "\n" not in stripped and not stripped.lower().startswith("create") and (
        stripped.endswith((".sqlite", ".sqlite3", ".db")) or "/" in stripped or Path(stripped).exists())


def _read_tables(connection: sqlite3.Connection) -> tuple[Table, ...]:
    try:
        names = [row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' "
            "ORDER BY rowid")]
        tables = []
        for name in names:
            rows = connection.execute("SELECT name, type FROM pragma_table_info(?)", (name,)).fetchall()
            tables.append(Table(name, tuple(Column(col, (typ or "").upper()) for col, typ in rows)))
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"cannot read the schema: {exc}") from exc
    return tuple(tables)


def load_script(script: str, source: str = "the SQL script") -> sqlite3.Connection:
    """A new in-memory database holding what ``script`` (DDL, rows) builds, run in the sandbox the module
    describes; the connection comes back read-only (``PRAGMA query_only``) and still unable to attach.

    Parameters:
        script: SQL statements separated by ``;``.
        source: how errors name the script (a path, "the DDL").

    Returns:
        The connection, usable from any thread (``check_same_thread=False``).

    Raises:
        DatabaseError: the script does not run, does something the sandbox refuses (naming it), runs past
            :data:`SCRIPT_TIMEOUT_S`, or outgrows :data:`SCRIPT_MAX_PAGES`.
    """
    if not isinstance(script, str):
        raise DatabaseError(f"{source} must be text, not {type(script).__name__}")
    connection = sqlite3.connect(":memory:", check_same_thread=False)
    connection.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    connection.execute(f"PRAGMA max_page_count = {SCRIPT_MAX_PAGES}")
    connection.execute("PRAGMA temp_store = MEMORY")
    refused: list[str] = []
    deadline = time.monotonic() + SCRIPT_TIMEOUT_S
    connection.set_authorizer(lambda *request: _authorize_script(refused, *request))
    connection.set_progress_handler(lambda: int(time.monotonic() > deadline), _PROGRESS_STEPS)
    try:
        connection.executescript(script)
    except sqlite3.Error as exc:
        connection.close()
        if refused:
            raise DatabaseError(f"{source} may not {refused[-1]}: a script builds tables in an in-memory database "
                                "and touches no file") from None
        if "interrupted" in str(exc):
            raise DatabaseError(f"{source} ran longer than {SCRIPT_TIMEOUT_S:g} s") from None
        if "full" in str(exc):
            raise DatabaseError(f"{source} builds a database larger than {SCRIPT_MAX_PAGES * 4 >> 10} MiB") from None
        raise DatabaseError(f"{source} does not run: {exc}") from None
    except (ValueError, OverflowError, MemoryError) as exc:  # a NUL character in the text, a huge literal
        connection.close()
        raise DatabaseError(f"{source} does not run: {exc}") from None
    connection.set_progress_handler(None, _PROGRESS_STEPS)
    connection.set_authorizer(None)
    connection.execute("PRAGMA query_only = ON")
    return connection


def open_database(path: Path) -> Path | sqlite3.Connection:
    """The database a ``--db`` path names: a ``.sql`` script (schema and rows) runs into a sandboxed in-memory
    database (:func:`load_script`); anything else is a SQLite file path, returned as it is.

    Raises:
        DatabaseError: the script cannot be read, or :func:`load_script` refuses it.
    """
    if path.suffix.lower() != ".sql":
        return path
    try:
        script = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatabaseError(f"cannot read the SQL script {path}: {exc}") from exc
    return load_script(script, f"the SQL script {path}")


def _authorize_script(refused: list[str], action: int, first: str | None, second: str | None, *_: object) -> int:
    """The script sandbox's authorizer; notes in ``refused`` what it denied, for the error message."""
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        verb = "attach" if action == sqlite3.SQLITE_ATTACH else "detach"
        refused.append(f"{verb} a database ({first!r}; VACUUM INTO attaches one too)")
    elif action == sqlite3.SQLITE_PRAGMA and (first or "").lower() not in _SCRIPT_PRAGMAS:
        refused.append(f"run PRAGMA {first}")
    elif action == sqlite3.SQLITE_FUNCTION and (second or "").lower() in _SCRIPT_FUNCTIONS_DENIED:
        refused.append(f"call {second}()")
    else:
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def _from_ddl(ddl: str) -> Schema:
    connection = load_script(ddl, "the DDL")
    try:
        return _nonempty(Schema(_read_tables(connection)), "the DDL")
    finally:
        connection.close()


def _from_spider(entry: Mapping[str, Any]) -> Schema:
    try:
        table_names = list(entry["table_names_original"])
        columns = entry["column_names_original"]
        types = entry.get("column_types") or [""] * len(columns)
    except (KeyError, TypeError) as exc:
        raise DatabaseError("a Spider entry needs table_names_original and column_names_original") from exc
    per_table: list[list[Column]] = [[] for _ in table_names]
    for (table_index, name), typ in zip(columns, types, strict=True):
        if table_index < 0:
            continue  # Spider's "*" pseudo-column
        if not 0 <= table_index < len(table_names):
            raise DatabaseError(f"column {name!r} refers to table #{table_index}, which does not exist")
        per_table[table_index].append(Column(name, str(typ).upper()))
    tables = tuple(Table(n, tuple(cols)) for n, cols in zip(table_names, per_table, strict=True))
    return _nonempty(Schema(tables), f"Spider entry {entry.get('db_id', '?')!r}")


def _nonempty(schema: Schema, source: str) -> Schema:
    if not schema.tables:
        raise DatabaseError(f"{source} has no tables")
    empty = [t.name for t in schema.tables if not t.columns]
    if empty:
        raise DatabaseError(f"{source}: table(s) without columns: {', '.join(empty)}")
    return schema
