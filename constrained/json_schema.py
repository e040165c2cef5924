"""``json_schema(schema)``: a JSON Schema as a :class:`Constraint` over JSON text.

The schema is checked against its meta-schema first (``SchemaError`` with a JSON pointer), compiled to one
regex by :mod:`constrained.schema`, and paired with a commit-time check (full jsonschema validation, formats
asserted) whenever some keyword is post-checked. Formats are asserted because that is what MaskBench's labels
(and most users) expect; the check uses our format checkers for the formats we compile, so regex and check agree.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import lru_cache
from typing import Any

import jsonschema
from jsonschema import exceptions as js_exceptions
from jsonschema import validators

from constrained.constraint import Constraint
from constrained.errors import SchemaError
from constrained.schema import formats
from constrained.schema.compiler import Options, SchemaCompiler
from constrained.schema.document import schema_document
from constrained.schema.grounding import Grounding
from constrained.schema.refs import escape_pointer_token

_LEGACY = {"Draft3Validator", "Draft4Validator", "Draft6Validator", "Draft7Validator"}


@lru_cache(maxsize=1)
def format_checker() -> jsonschema.FormatChecker:
    """jsonschema's checkers for every format it knows, ours for the formats we compile."""
    checker = jsonschema.FormatChecker()
    for name, func in formats.CHECKERS.items():
        checker.checks(name)(_string_only(func))
    return checker


def _string_only(func):
    return lambda value: not isinstance(value, str) or func(value)


class _DuplicateMember(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``'s object hook that refuses a repeated member name (``json`` would keep the last value)."""
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        raise _DuplicateMember(next(name for name, _ in pairs if name in seen or seen.add(name)))
    return value


def _pointer(path) -> str:
    return "".join(f"/{escape_pointer_token(p)}" for p in path)


def json_schema(schema: Any, *, max_recursion: int | None = None, options: Options | None = None,
                grounded_in: str | None = None) -> Constraint:
    """Compile a JSON Schema into a constraint on JSON text.

    What the masks cannot enforce (``uniqueItems``, formats the regex over-approximates, repeated member names
    among free extra members, ...) is checked when a block is committed, and named in the constraint's
    ``post_checked``; nothing is silently dropped.

    Parameters:
        schema: a schema as a dict (or ``True``/``False``), as JSON text, or a Pydantic model class
            (:func:`constrained.schema.document.schema_document`); its ``$schema`` picks the draft (2020-12 by
            default).
        max_recursion: how many times one recursive ``$ref`` is followed on a path (default
            ``Options.max_recursion``). Deeper documents are valid (``accepts`` says so) but never generated; the
            constraint's ``beyond_masks`` lists where the masks stop. Each level multiplies the regex, so raise it
            only as far as the documents need.
        options: bounds that keep the regex and its automaton small (:class:`constrained.schema.compiler.Options`).
        grounded_in: a source text whose spans and numbers are the only values free strings and numbers may take
            (grounded extraction, :mod:`constrained.schema.grounding`). The constraint's ``ungrounded`` then lists
            the values the document needs that no span fits, which keep their schema's own language. Such a
            constraint is one text's: its automata are kept out of the caches.

    Returns:
        The :class:`~constrained.constraint.Constraint`; its automaton is built on first use (``compile()`` or
        ``bind()``), which can raise the errors of :meth:`Constraint.bind`.

    Raises:
        SchemaError: the schema is not JSON, not a schema, fails its meta-schema (with a JSON pointer), or
            ``max_recursion`` is not a positive integer.
        UnsatisfiableSchema: no JSON text satisfies the schema (naming the keywords and pointer that empty it).
        UnsupportedSchema: a keyword can be neither compiled into the masks nor checked at commit time, or the
            schema nests past ``options.max_depth``.
        CompileTimeout: compiling exceeded ``options.time_budget_s`` or the regex ``options.max_regex_length``
            (naming the pointer where it was crossed).
    """
    document = schema_document(schema)
    if max_recursion is not None:
        if isinstance(max_recursion, bool) or not isinstance(max_recursion, int) or max_recursion < 1:
            raise SchemaError(f"max_recursion must be a positive integer, got {max_recursion!r}")
        options = replace(options or Options(), max_recursion=max_recursion)
    cls = validators.validator_for(document) if isinstance(document, dict) else jsonschema.Draft202012Validator
    try:
        cls.check_schema(document)
    except js_exceptions.SchemaError as error:  # check_schema raises the best match among the meta-schema errors
        raise SchemaError(f"invalid schema: {error.message}", _pointer(error.path)) from None
    except RecursionError:
        raise SchemaError("the schema is nested too deeply to check") from None
    validator = cls(document, format_checker=format_checker())

    def validate(value: Any, subschema: Any) -> bool:
        return validator.evolve(schema=subschema).is_valid(value)

    compiler = SchemaCompiler(
        document,
        legacy=cls.__name__ in _LEGACY,
        validate=validate,
        known_format=lambda name: name in format_checker().checkers,
        options=options or Options(),
        grounding=Grounding.from_text(grounded_in) if grounded_in is not None else None,
    )
    compiled = compiler.compile()

    def check(text: str) -> str | None:
        try:
            data = json.loads(text, object_pairs_hook=_unique_members)
        except json.JSONDecodeError as error:
            return f"not JSON: {error.msg}"
        except _DuplicateMember as duplicate:
            return f"member name {duplicate.name!r} is repeated in one object"
        except RecursionError:
            return "nested too deeply to check"
        error = js_exceptions.best_match(validator.iter_errors(data))
        return None if error is None else f"{error.message} (at {_pointer(error.absolute_path) or '/'})"

    return Constraint(
        compiled.pattern,
        check=check if compiled.post_checked or compiled.beyond_masks else None,
        post_checked=tuple(compiled.post_checked),
        kind="json",
        ungrounded=tuple(compiled.ungrounded),
        beyond_masks=tuple(compiled.beyond_masks),
        cached=grounded_in is None,
    )
