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

SUDOKU_CELLS = 81


def compact_json_schema(schema: Any) -> str:
    """Render a JSON Schema as a short type sketch, e.g. ``{name: string, age?: integer, tags: [string]}``.

    Why: the verbatim schema costs many tokens and the denoiser only needs field names, their order and rough
    types to know which part of the text goes where; the constraint itself enforces the exact schema. Keywords
    without a sketch form fall back to compact JSON, so any schema renders (never raises).
    """
    if schema is True or schema == {}:
        return "any"
    if not isinstance(schema, dict):
        return json.dumps(schema, ensure_ascii=False, separators=(",", ":"))
    if "enum" in schema and isinstance(schema["enum"], list):
        return "|".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"], ensure_ascii=False)
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            return "|".join(compact_json_schema(s) for s in schema[key])
    kind = schema.get("type")
    if isinstance(kind, list):
        return "|".join(compact_json_schema({**schema, "type": k}) for k in kind)
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties", {})
        if not isinstance(props, dict):
            return "object"
        required = set(schema.get("required", []))
        fields = [f"{name}{'' if name in required else '?'}: {compact_json_schema(sub)}" for name, sub in props.items()]
        return "{" + ", ".join(fields) + "}" if fields else "object"
    if kind == "array":
        items = schema.get("items")
        return f"[{compact_json_schema(items)}]" if isinstance(items, dict) else "array"
    if kind == "string" and isinstance(schema.get("format"), str):
        return f"string<{schema['format']}>"
    if isinstance(kind, str):
        return kind
    if "$ref" in schema:
        return f"ref<{schema['$ref']}>"
    return json.dumps(schema, ensure_ascii=False, separators=(",", ":"))


def json_prompt(schema: dict, text: str) -> str:
    """Prompt asking for the JSON value, conforming to ``schema``, that ``text`` describes."""
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
