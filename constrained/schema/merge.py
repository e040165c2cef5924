"""``allOf`` by merging two schema objects into one whose language is the intersection (or a superset of it).

Bounds tighten, ``required`` unites, ``type`` and ``enum`` intersect, property schemas merge recursively (as a
nested ``allOf``). Where two values cannot be combined exactly (two different patterns, two formats, object
keywords whose ``additionalProperties`` would change meaning once the property lists are pooled), the first
value is kept and the keyword is returned as *inexact*: the caller records it as post-checked, so the
validator enforces the exact intersection at commit time.
"""

from __future__ import annotations

import json
from typing import Any

_LOWER = frozenset({"minimum", "minLength", "minItems", "minProperties", "minContains"})
_UPPER = frozenset({"maximum", "maxLength", "maxItems", "maxProperties", "maxContains"})
_OBJECT_SHAPE = frozenset({"properties", "patternProperties", "additionalProperties"})
_NUMERIC_TYPES = {"integer", "number"}


def _types(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _intersect_types(a: Any, b: Any) -> list[str]:
    out = []
    ta, tb = _types(a), _types(b)
    for t in ta:
        if t in tb:
            out.append(t)
        elif t == "integer" and "number" in tb:
            out.append("integer")
        elif t == "number" and "integer" in tb:
            out.append("integer")
    return list(dict.fromkeys(out))


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _closed(schema: dict) -> bool:
    """Does the object shape here restrict which property names may appear?"""
    extra = schema.get("additionalProperties", True)
    return extra is not True and extra != {}


def merge(a: dict, b: dict) -> tuple[dict, list[str]]:
    """Merge ``b`` into ``a``; returns the merged schema and the keywords merged inexactly."""
    out = dict(a)
    inexact: list[str] = []
    if _OBJECT_SHAPE & a.keys() and _OBJECT_SHAPE & b.keys() and (_closed(a) or _closed(b)):
        inexact.append("additionalProperties")
    for key, value in b.items():
        if key not in out:
            out[key] = value
            continue
        mine = out[key]
        if _canon(mine) == _canon(value):
            continue
        if key == "type":
            out[key] = _intersect_types(mine, value)
        elif key in _LOWER and isinstance(value, (int, float)) and isinstance(mine, (int, float)):
            out[key] = max(mine, value)
        elif key in _UPPER and isinstance(value, (int, float)) and isinstance(mine, (int, float)):
            out[key] = min(mine, value)
        elif key == "required":
            out[key] = list(dict.fromkeys([*mine, *value]))
        elif key in ("properties", "patternProperties") and isinstance(mine, dict) and isinstance(value, dict):
            merged = dict(mine)
            for name, sub in value.items():
                merged[name] = {"allOf": [merged[name], sub]} if name in merged else sub
            out[key] = merged
        elif key in ("items", "additionalProperties", "additionalItems", "propertyNames", "contains") and (
            isinstance(mine, (dict, bool)) and isinstance(value, (dict, bool))
        ):
            out[key] = False if (mine is False or value is False) else {"allOf": [mine, value]}
        elif key == "enum":
            allowed = {_canon(v) for v in value}
            out[key] = [v for v in mine if _canon(v) in allowed]
        elif key == "const":
            out["enum"] = []
        elif key == "allOf":
            out[key] = [*mine, *value]
        elif key in ("$defs", "definitions") or key not in _VALIDATION:
            continue
        else:
            inexact.append(key)
    return out, inexact


#: Keywords whose conflicts matter (annotations may differ freely).
_VALIDATION = frozenset({
    "type", "enum", "const", "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum",
    "maxLength", "minLength", "pattern", "format", "items", "prefixItems", "additionalItems", "maxItems",
    "minItems", "uniqueItems", "contains", "minContains", "maxContains", "maxProperties", "minProperties",
    "required", "properties", "patternProperties", "additionalProperties", "dependencies", "dependentRequired",
    "dependentSchemas", "propertyNames", "anyOf", "oneOf", "not", "if", "then", "else", "$ref",
    "unevaluatedProperties", "unevaluatedItems",
})
