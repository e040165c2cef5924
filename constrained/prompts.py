"""The one place where prompt texts are formatted.

The built-in denoiser was trained on exactly these prompts (``model/corpus.py`` calls them), and the public API
calls them again at run time, so training and use can never drift apart. Prompts are kept short because the tiny
model's context is small: a JSON Schema is shown in a compact type notation rather than verbatim, a SQL schema as
``table(col, col); ...``, and a Sudoku as one line of 81 digits with ``0`` for a blank, so each cell is one token.
"""

from __future__ import annotations

import json
from typing import Any

from constrained.errors import DenoiserError, PuzzleError
from constrained.schema.document import schema_document

SUDOKU_CELLS = 81
#: What a sketch shows of a long list (enum values, members, alternatives) before summarising the rest, how deep
#: it follows nesting, and its longest text: a prompt must fit the denoiser's context beside the request.
SKETCH_LIST_LIMIT = 32
SKETCH_DEPTH_LIMIT = 12
SKETCH_LENGTH_LIMIT = 2000


def compact_json_schema(schema: Any) -> str:
    """Render a JSON Schema as a short type sketch, e.g. ``{name: string, age?: integer, tags: [string]}``.

    Why: the verbatim schema costs many tokens and the denoiser only needs field names, their order and rough
    types to know which part of the text goes where; the constraint itself enforces the exact schema. Keywords
    without a sketch form fall back to compact JSON. What cannot be shown in full is summarised (the first
    values of a long ``enum`` then ``...(+N more)``, nesting past a depth as ``...``, and the whole sketch cut at
    :data:`SKETCH_LENGTH_LIMIT` characters), so a schema of any size gives a prompt of bounded size.

    Parameters:
        schema: what :func:`constrained.json_schema` accepts (a dict, JSON text, a Pydantic model class).

    Raises:
        SchemaError: ``schema`` is none of those.
    """
    sketch = _sketch(schema_document(schema), 0)
    return sketch if len(sketch) <= SKETCH_LENGTH_LIMIT else sketch[:SKETCH_LENGTH_LIMIT - 3] + "..."


def _listed(parts: list[Any], render: Any, separator: str) -> str:
    """``parts`` rendered and joined, the ones past :data:`SKETCH_LIST_LIMIT` summarised as a count."""
    shown = separator.join(render(part) for part in parts[:SKETCH_LIST_LIMIT])
    hidden = len(parts) - SKETCH_LIST_LIMIT
    return shown + (f"{separator}...(+{hidden} more)" if hidden > 0 else "")


def _compact(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= SKETCH_LENGTH_LIMIT else text[:SKETCH_LENGTH_LIMIT - 3] + "..."


def _sketch(schema: Any, depth: int) -> str:
    if schema is True or schema == {}:
        return "any"
    if depth > SKETCH_DEPTH_LIMIT:
        return "..."
    if not isinstance(schema, dict):
        return _compact(schema)
    if "enum" in schema and isinstance(schema["enum"], list):
        return _listed(schema["enum"], _compact, "|")
    if "const" in schema:
        return _compact(schema["const"])
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            return _listed(schema[key], lambda sub: _sketch(sub, depth + 1), "|")
    kind = schema.get("type")
    if isinstance(kind, list):
        return "|".join(_sketch({**schema, "type": k}, depth + 1) for k in kind[:SKETCH_LIST_LIMIT])
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties", {})
        if not isinstance(props, dict):
            return "object"
        required = set(schema.get("required", [])) if isinstance(schema.get("required"), list) else set()

        def field(item: tuple[str, Any]) -> str:
            name, sub = item
            return f"{name}{'' if name in required else '?'}: {_sketch(sub, depth + 1)}"

        return "{" + _listed(list(props.items()), field, ", ") + "}" if props else "object"
    if kind == "array":
        items = schema.get("items")
        return f"[{_sketch(items, depth + 1)}]" if isinstance(items, dict) else "array"
    if kind == "string" and isinstance(schema.get("format"), str):
        return f"string<{schema['format']}>"
    if isinstance(kind, str):
        return kind
    if "$ref" in schema:
        return f"ref<{schema['$ref']}>"
    return _compact(schema)


def json_prompt(schema: Any, text: str) -> str:
    """Prompt asking for the JSON value, conforming to ``schema`` (anything :func:`compact_json_schema` takes),
    that ``text`` describes."""
    return f"Schema: {compact_json_schema(schema)}\nText: {text}\nJSON:"


def compact_sql_schema(tables: dict[str, list[str]]) -> str:
    """Render tables as ``singer(singer_id, name, age); concert(concert_id, year)``, in the order given."""
    return "; ".join(f"{table}({', '.join(columns)})" for table, columns in tables.items())


def sql_prompt(schema_text: str, question: str) -> str:
    """Prompt asking for the SQLite query over ``schema_text`` (see :func:`compact_sql_schema`) that answers
    ``question``."""
    return f"Tables: {schema_text}\nQuestion: {question}\nSQL:"


def sudoku_prompt(puzzle: str) -> str:
    """Prompt asking for the solution of ``puzzle``: 81 characters, rows in order, ``.`` (or ``0``) for a blank.

    The answer the model was trained to give is the 81-digit solution string.
    """
    if len(puzzle) != SUDOKU_CELLS or any(ch not in ".0123456789" for ch in puzzle):
        raise PuzzleError(f"a puzzle is 81 characters of digits and '.', got {len(puzzle)} characters: {puzzle!r}")
    return f"Sudoku: {puzzle.replace('.', '0')}\nSolution:"


def prompt_ids(tokenizer: Any, prompt: str | list[int]) -> list[int]:
    """The context of the first canvas: token ids pass through; a text becomes ``<bos>`` (where the tokenizer has
    one) then its tokens, with no other special token: the convention the built-in denoiser was trained on.

    Raises :class:`DenoiserError` for a text prompt without a tokenizer that can encode it.
    """
    if not isinstance(prompt, str):
        return [int(token) for token in prompt]
    if not hasattr(tokenizer, "encode"):
        raise DenoiserError("a text prompt needs a tokenizer with encode(); pass token ids instead")
    bos = getattr(tokenizer, "bos_token_id", None)
    return ([bos] if bos is not None else []) + list(tokenizer.encode(prompt, add_special_tokens=False))
