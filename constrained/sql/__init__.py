"""SQL generation support: schemas, the read-only SELECT constraint, its commit check, and safe execution."""

from .compiler import sql
from .database import Column, Schema, Table, load_schema
from .execute import execute_readonly

__all__ = ["Column", "Schema", "Table", "execute_readonly", "load_schema", "sql"]
