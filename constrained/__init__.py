"""constrained: constrained structured generation for diffusion language models.

Compile a constraint once (:func:`json_schema`, :func:`regex`, :func:`sql`, puzzles), bind it to a tokenizer once,
then let a denoiser fill canvases under its exact per-position masks (:func:`generate`, :func:`generate_json`,
:func:`edit`, :func:`generate_sql`, :func:`solve_sudoku`). ``model=None`` everywhere means the built-in model.
"""

from .constraint import BoundConstraint, Constraint, regex
from .default_model import load_default
from .edit import edit
from .errors import (
    CompileTimeout,
    ConstrainedError,
    ConstraintUnsatisfiable,
    DatabaseError,
    DenoiserError,
    GrammarError,
    PuzzleError,
    RegexError,
    SchemaError,
    UnsupportedSchema,
    VocabularyError,
)
from .generation import GenerationResult, generate, generate_json
from .json_schema import json_schema
from .lattice import Canvas
from .puzzles.sudoku import solve_sudoku
from .text_to_sql import SqlResult, generate_sql, sql

__all__ = [
    "BoundConstraint", "Canvas", "CompileTimeout", "ConstrainedError", "Constraint", "ConstraintUnsatisfiable",
    "DatabaseError", "DenoiserError", "GenerationResult", "GrammarError", "PuzzleError", "RegexError", "SchemaError",
    "SqlResult", "UnsupportedSchema", "VocabularyError", "edit", "generate", "generate_json", "generate_sql",
    "json_schema", "load_default", "regex", "solve_sudoku", "sql",
]
