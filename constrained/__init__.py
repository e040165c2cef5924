"""constrained: constrained structured generation for diffusion language models."""

from .constraint import BoundConstraint, Constraint, regex
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
from .lattice import Canvas

__all__ = [
    "BoundConstraint", "Canvas", "CompileTimeout", "ConstrainedError", "Constraint", "ConstraintUnsatisfiable",
    "DatabaseError", "DenoiserError", "GrammarError", "PuzzleError", "RegexError", "SchemaError",
    "UnsupportedSchema", "VocabularyError", "regex",
]
