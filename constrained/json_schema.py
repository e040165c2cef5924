"""``json_schema(schema)``: a JSON Schema as a :class:`Constraint` over JSON text.

The schema is checked against its meta-schema first (``SchemaError`` with a JSON pointer), compiled to one
regex by :mod:`constrained.schema`, and paired with a commit-time check (full jsonschema validation, formats
asserted) whenever some keyword is post-checked. Formats are asserted because that is what MaskBench's labels
(and most users) expect; the check uses our format checkers for the formats we compile, so regex and check agree.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import jsonschema
from jsonschema import exceptions as js_exceptions
from jsonschema import validators

from constrained.constraint import Constraint
from constrained.errors import SchemaError
from constrained.schema import formats
from constrained.schema.compiler import Options, SchemaCompiler
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


def _as_dict(schema: Any) -> Any:
    if isinstance(schema, (str, bytes)):
        try:
            return json.loads(schema)
        except json.JSONDecodeError as error:
            raise SchemaError(f"schema is not valid JSON: {error.msg}", "") from None
    if isinstance(schema, type) and hasattr(schema, "model_json_schema"):
        return schema.model_json_schema()
    if isinstance(schema, (dict, bool)):
        return schema
    raise SchemaError(f"a schema must be a dict, a JSON string or a Pydantic model class, not {type(schema).__name__}")


def _pointer(path) -> str:
    return "".join(f"/{escape_pointer_token(p)}" for p in path)


def json_schema(schema: Any, *, options: Options | None = None, grounded_in: str | None = None) -> Constraint:
    """Compile a JSON Schema into a constraint on JSON text.

    What the masks cannot enforce (``uniqueItems``, formats the regex over-approximates, ...) is checked when a
    block is committed, and named in the constraint's ``post_checked``; nothing is silently dropped.

    Parameters:
        schema: a schema as a dict (or ``True``/``False``), as JSON text, or a Pydantic model class; its
            ``$schema`` picks the draft (2020-12 by default).
        options: bounds that keep the regex and its automaton small (:class:`constrained.schema.compiler.Options`).
        grounded_in: a source text whose spans and numbers are the only values free strings and numbers may take
            (grounded extraction, :mod:`constrained.schema.grounding`). The constraint's ``ungrounded`` then lists
            the values the document needs that no span fits, which keep their schema's own language. Such a
            constraint is one text's: its automata are kept out of the caches.

    Returns:
        The :class:`~constrained.constraint.Constraint`; its automaton is built on first use (``compile()`` or
        ``bind()``), which can raise the errors of :meth:`Constraint.bind`.

    Raises:
        SchemaError: the schema is not JSON, not a schema, or fails its meta-schema (with a JSON pointer).
        UnsupportedSchema: a keyword can be neither compiled into the masks nor checked at commit time, or no
            finite JSON text satisfies the schema.
        CompileTimeout: compiling exceeded ``options.time_budget_s`` or the regex ``options.max_regex_length``.
    """
    document = _as_dict(schema)
    cls = validators.validator_for(document) if isinstance(document, dict) else jsonschema.Draft202012Validator
    try:
        cls.check_schema(document)
    except js_exceptions.SchemaError as error:  # check_schema raises the best match among the meta-schema errors
        raise SchemaError(f"invalid schema: {error.message}", _pointer(error.path)) from None
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
            data = json.loads(text)
        except json.JSONDecodeError as error:
            return f"not JSON: {error.msg}"
        error = js_exceptions.best_match(validator.iter_errors(data))
        return None if error is None else f"{error.message} (at {_pointer(error.absolute_path) or '/'})"

    return Constraint(
        compiled.pattern,
        check=check if compiled.post_checked else None,
        post_checked=tuple(compiled.post_checked),
        kind="json",
        ungrounded=tuple(compiled.ungrounded),
        cached=grounded_in is None,
    )
