"""constrained: constrained structured generation for diffusion language models.

Compile a constraint once (:func:`json_schema`, :func:`regex`, :func:`sql`, :func:`grammar`, puzzles), bind it to a
tokenizer once, then let a denoiser fill canvases under its exact per-position masks (:func:`generate`,
:func:`generate_json`, :func:`edit`, :func:`generate_sql`, :func:`solve_sudoku`). ``model=None`` everywhere means
the built-in model.

``import constrained`` loads only the errors: each public name imports its module (and torch, transformers,
sqlglot or lark behind it) on first use, so a process pays for what it calls.
"""

from __future__ import annotations

import sys
from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .errors import (
    CompileError,
    CompileTimeout,
    ConstrainedError,
    ConstraintUnsatisfiable,
    DatabaseError,
    DenoiserError,
    GrammarError,
    PuzzleError,
    RegexError,
    RequestError,
    SchemaError,
    UnsatisfiableSchema,
    UnsupportedSchema,
    VocabularyError,
)

__version__ = "0.1.0"

#: Public name -> the module that defines it, imported on first access.
_LAZY = {
    "Batcher": ".batch",
    "Request": ".batch",
    "generate_batch": ".batch",
    "BoundConstraint": ".constraint",
    "Constraint": ".constraint",
    "regex": ".constraint",
    "load_default": ".default_model",
    "edit": ".edit",
    "ConstrainedLogitsProcessor": ".logits_processor",
    "GenerationResult": ".generation",
    "generate": ".generation",
    "generate_json": ".generation",
    "json_schema": ".json_schema",
    "grammar": ".grammar",
    "Canvas": ".lattice",
    "solve_sudoku": ".puzzles.sudoku",
    "SqlResult": ".text_to_sql",
    "generate_sql": ".text_to_sql",
    "sql": ".text_to_sql",
}

if TYPE_CHECKING:
    from .batch import Batcher, Request, generate_batch
    from .constraint import BoundConstraint, Constraint, regex
    from .default_model import load_default
    from .edit import edit
    from .generation import GenerationResult, generate, generate_json
    from .grammar import grammar
    from .json_schema import json_schema
    from .lattice import Canvas
    from .logits_processor import ConstrainedLogitsProcessor
    from .puzzles.sudoku import solve_sudoku
    from .text_to_sql import SqlResult, generate_sql, sql


class _Package(ModuleType):
    """This package's module type: a submodule named like the function it defines (``json_schema``, ``edit``)
    must not replace that function as the package's attribute when something imports the submodule."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, ModuleType) and _LAZY.get(name) == f".{name}":
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'constrained' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "Batcher", "BoundConstraint", "Canvas", "CompileError", "CompileTimeout", "ConstrainedError",
    "ConstrainedLogitsProcessor", "Constraint", "ConstraintUnsatisfiable", "DatabaseError", "DenoiserError",
    "GenerationResult", "GrammarError", "PuzzleError", "RegexError", "Request", "RequestError", "SchemaError",
    "SqlResult", "UnsatisfiableSchema", "UnsupportedSchema", "VocabularyError", "__version__", "edit", "generate",
    "generate_batch", "generate_json", "generate_sql", "grammar", "json_schema", "load_default", "regex",
    "solve_sudoku", "sql",
]
