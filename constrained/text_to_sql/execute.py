"""Running a generated query without any way to change the database.

Three independent locks, so that no single oversight opens a write path even for hostile SQL: the file is
opened through a ``file:...?mode=ro`` URI, ``PRAGMA query_only`` is on, and an authorizer denies every action
but reading (no writes, no PRAGMA, no ATTACH, no DDL, no transactions). A progress handler enforces the time
limit and rows are fetched only up to ``max_rows``.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from ..errors import DatabaseError
from .database import Schema, connect_readonly

#: Authorizer actions a read-only query needs; everything else is denied.
_ALLOWED_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                              getattr(sqlite3, "SQLITE_RECURSIVE", 33)})
#: Functions with side effects or access outside the database.
_DENIED_FUNCTIONS = frozenset({"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"})
_PROGRESS_STEPS = 1000


def _authorize(action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None) -> int:
    if action not in _ALLOWED_ACTIONS:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _DENIED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def execute_readonly(db: Any, sql: str, timeout_s: float = 5.0, max_rows: int = 1000) -> list[tuple]:
    """Run ``sql`` on ``db`` read-only, within a time limit.

    Parameters:
        db: a SQLite file path, a :class:`Schema` loaded from a file, or a ``sqlite3.Connection`` (which gets
            its ``query_only`` setting back afterwards).
        sql: one statement.
        timeout_s: the time the query may run, in seconds.
        max_rows: the most rows fetched (``0``: none).

    Returns:
        The first ``max_rows`` rows, as tuples.

    Raises:
        DatabaseError: the database cannot be opened, SQLite refuses the statement (a write attempt among them:
            "not authorized"), or the query runs out of time.
        ValueError: ``timeout_s`` is not positive or ``max_rows`` is negative.
    """
    if timeout_s <= 0 or max_rows < 0:
        raise ValueError("timeout_s must be positive and max_rows non-negative")
    own = not isinstance(db, sqlite3.Connection)
    connection = _open(db) if own else db
    previous_query_only = connection.execute("PRAGMA query_only").fetchone()[0]
    connection.execute("PRAGMA query_only = ON")  # a caller's connection gets its setting back below
    deadline = time.monotonic() + timeout_s
    connection.set_progress_handler(lambda: int(time.monotonic() > deadline), _PROGRESS_STEPS)
    connection.set_authorizer(_authorize)
    try:
        cursor = connection.execute(sql)
        return cursor.fetchmany(max_rows) if max_rows else []
    except sqlite3.OperationalError as exc:
        if "interrupted" in str(exc):
            raise DatabaseError(f"the query ran longer than {timeout_s:g} s and was stopped") from exc
        raise DatabaseError(f"SQLite refused the query: {exc}") from exc
    except (sqlite3.DatabaseError, sqlite3.Warning, sqlite3.ProgrammingError) as exc:
        raise DatabaseError(f"SQLite refused the query: {exc}") from exc
    finally:
        connection.set_authorizer(None)
        connection.set_progress_handler(None, _PROGRESS_STEPS)
        if own:
            connection.close()
        else:
            connection.execute(f"PRAGMA query_only = {int(previous_query_only)}")


def _open(db: Any) -> sqlite3.Connection:
    if isinstance(db, Schema):
        if db.path is None:
            raise DatabaseError("this schema has no database file to run queries on (it came from DDL or JSON)")
        return connect_readonly(db.path)
    if isinstance(db, (str, Path)):
        return connect_readonly(Path(db))
    raise DatabaseError(f"cannot run a query on a {type(db).__name__}; give a SQLite path or a connection")
