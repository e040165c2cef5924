"""SQL generation support: schemas, the read-only SELECT constraint, its commit check, and safe execution."""

from .compiler import sql
from .database import Column, Schema, Table, load_schema
from .execute import execute_readonly
from .generate import SqlResult, generate_sql

__all__ = ["Column", "Schema", "SqlResult", "Table", "execute_readonly", "generate_sql", "load_schema", "sql"]
