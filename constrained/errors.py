"""Typed errors. Every failure a user can cause names what is wrong.

All errors derive from :class:`ConstrainedError`, so callers can catch the family at once while tests and
tools match the precise kind.
"""

from __future__ import annotations


class ConstrainedError(Exception):
    """Base class of every error this package raises on purpose."""


class SchemaError(ConstrainedError, ValueError):
    """The JSON Schema itself is invalid (fails its meta-schema, or is not a schema at all)."""

    def __init__(self, message: str, pointer: str = "") -> None:
        super().__init__(f"{message} (at {pointer or '/'})")
        self.pointer = pointer


class UnsupportedSchema(ConstrainedError):
    """A schema keyword that can be neither compiled into the masks nor checked at commit time."""

    def __init__(self, keyword: str, pointer: str, reason: str = "") -> None:
        detail = f": {reason}" if reason else ""
        super().__init__(f"unsupported keyword {keyword!r} at {pointer or '/'}{detail}")
        self.keyword = keyword
        self.pointer = pointer


class UnsatisfiableSchema(UnsupportedSchema):
    """No JSON text satisfies the schema (as compiled: within its recursion bound); names the keywords and the
    pointer that emptied it, such as ``minLength`` above ``maxLength``. A subclass of :class:`UnsupportedSchema`,
    which earlier versions raised for it."""

    def __init__(self, keyword: str, pointer: str, reason: str) -> None:
        ConstrainedError.__init__(self, f"no JSON text satisfies the schema: {keyword} at {pointer or '/'}: {reason}")
        self.keyword = keyword
        self.pointer = pointer


class RegexError(ConstrainedError, ValueError):
    """A regular expression is malformed or uses syntax no finite automaton expresses (backreferences, lookaround)."""


class CompileTimeout(ConstrainedError):
    """Compiling a constraint exceeded its time or memory bound (for a schema: its regex's size bound too)."""


class CompileError(ConstrainedError, RuntimeError):
    """Compiling a constraint failed for a reason other than the constraint: its bounded build process raised an
    unexpected error (named in the message) or ended without an answer."""


class VocabularyError(ConstrainedError, ValueError):
    """A tokenizer cannot be read, or its vocabulary cannot spell any text the constraint accepts."""


class DenoiserError(ConstrainedError, ValueError):
    """A model cannot serve as a denoiser as asked: no mask token, prompt longer than its context, non-finite logits."""


class RequestError(ConstrainedError, ValueError):
    """A generation request is malformed: a token budget below one, an infill without a constraint, a field of
    a server request; ``param`` names the field where there is one (OpenAI's error shape carries it)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ConstraintUnsatisfiable(ConstrainedError):
    """No output satisfying the constraint exists within the limits given; carries what was produced so far."""

    def __init__(self, message: str, partial: str | None = None) -> None:
        super().__init__(message)
        self.partial = partial


class DatabaseError(ConstrainedError, ValueError):
    """A database given for SQL generation is missing, unreadable, not SQLite, or has no tables."""


class GrammarError(ConstrainedError, ValueError):
    """A grammar is malformed, or too large to approximate within the requested bounds."""


class PuzzleError(ConstrainedError, ValueError):
    """A puzzle is malformed: wrong size, illegal characters, or contradictory givens."""
