"""A schema as callers give it (a dict, JSON text, a Pydantic model class) -> the JSON Schema document.

One function for every place that takes a schema (the compiler's entry point, the prompt builder), so whatever
:func:`constrained.json_schema` accepts, the prompt of :func:`constrained.generate_json` accepts too.
"""

from __future__ import annotations

import json
from typing import Any

from constrained.errors import SchemaError


def schema_document(schema: Any) -> dict | bool:
    """The JSON Schema document of ``schema``.

    Parameters:
        schema: a dict or boolean (returned as is), JSON text, or a Pydantic model class (its
            ``model_json_schema()``).

    Returns:
        The schema as a dict or boolean.

    Raises:
        SchemaError: text that is not JSON (or nested too deeply to parse), or a value of another type.
    """
    if isinstance(schema, (str, bytes)):
        try:
            return json.loads(schema)
        except json.JSONDecodeError as error:
            raise SchemaError(f"schema is not valid JSON: {error.msg}", "") from None
        except RecursionError:
            raise SchemaError("schema text is nested too deeply to parse", "") from None
    if isinstance(schema, type) and hasattr(schema, "model_json_schema"):
        return schema.model_json_schema()
    if isinstance(schema, (dict, bool)):
        return schema
    raise SchemaError(f"a schema must be a dict, a JSON string or a Pydantic model class, not {type(schema).__name__}")
