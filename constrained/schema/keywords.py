"""The explicit table of JSON Schema keywords (drafts 4 to 2020-12) and how the compiler treats each.

Nothing is dropped silently: every standard keyword is either compiled into the regex, post-checked by the
validator at commit time, ignored because the validator ignores it too (annotations), or refused with
:class:`UnsupportedSchema`. Names outside this table are not JSON Schema keywords; jsonschema ignores them
(``x-...``, ``readonly``, ``nullable`` from OpenAPI, typos such as ``additonalProperties``), and so do we, since
the validator is the ground truth of what is valid.
"""

from __future__ import annotations

#: Annotations and structure: no effect on validity (``format`` is handled separately: we assert it).
ANNOTATIONS = frozenset({
    "$schema", "$id", "id", "$comment", "$defs", "definitions", "$anchor", "$vocabulary", "title",
    "description", "default", "examples", "readOnly", "writeOnly", "deprecated", "contentEncoding",
    "contentMediaType", "contentSchema", "$dynamicAnchor", "$recursiveAnchor",
})

#: Compiled into the regex (possibly with a post-checked remainder, recorded when it happens).
COMPILED = frozenset({
    "type", "enum", "const", "$ref", "allOf", "anyOf", "oneOf",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "minLength", "maxLength", "pattern", "format",
    "items", "prefixItems", "additionalItems", "minItems", "maxItems",
    "properties", "required", "additionalProperties", "patternProperties", "minProperties", "maxProperties",
    "propertyNames",
})

#: Beyond regular languages (or not worth a regex): always verified by the validator at commit time.
POST_CHECKED = frozenset({
    "uniqueItems", "contains", "minContains", "maxContains", "not", "if", "then", "else",
    "dependencies", "dependentRequired", "dependentSchemas", "unevaluatedProperties", "unevaluatedItems",
})

#: Standard keywords we refuse: dynamic scoping needs the evaluation path, which a regex cannot carry.
UNSUPPORTED = frozenset({"$dynamicRef", "$recursiveRef"})

KNOWN = ANNOTATIONS | COMPILED | POST_CHECKED | UNSUPPORTED
