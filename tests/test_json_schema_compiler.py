"""Specification of the JSON Schema compiler, keyword by keyword: accepted and rejected texts, what is
post-checked, and the errors bad schemas raise."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constrained.errors import SchemaError, UnsupportedSchema
from constrained.json_schema import json_schema
from constrained.schema.compiler import Options


def texts(value) -> list[str]:
    """The layouts we promise to accept: json.dumps default, compact, and indent=2."""
    return [
        json.dumps(value, ensure_ascii=False),
        json.dumps(value, ensure_ascii=False, separators=(",", ":")),
        json.dumps(value, ensure_ascii=False, indent=2),
    ]


def assert_language(schema, good: list, bad: list) -> None:
    constraint = json_schema(schema)
    for value in good:
        for text in texts(value):
            assert constraint.accepts(text), (schema, text)
    for value in bad:
        for text in texts(value):
            assert not constraint.accepts(text), (schema, text)


# ---- layout


def test_whitespace_is_bounded_and_separators_are_json():
    c = json_schema({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]})
    assert c.accepts('{"a": 1}') and c.accepts('{"a":1}') and c.accepts('{\n  "a": 1\n}')
    assert not c.accepts('{"a" : 1}')  # no space before the colon
    assert not c.accepts('{\t"a": 1}')
    assert not c.accepts('{\n' + " " * 40 + '"a": 1}')  # indentation past the bound
    assert not c.accepts('{"a": 1,}')


def test_every_ordered_subset_of_optional_properties_has_correct_commas():
    props = {k: {"type": "integer"} for k in "abc"}
    c = json_schema({"type": "object", "properties": props, "additionalProperties": False})
    import itertools

    for n in range(4):
        for keys in itertools.combinations("abc", n):
            assert c.accepts(json.dumps({k: 1 for k in keys}))
    assert not c.accepts('{"b": 1, "a": 1}')  # schema order
    assert not c.accepts('{, "a": 1}') and not c.accepts('{"a": 1 "b": 1}')


def test_required_properties_are_mandatory():
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "integer"}, "c": {"type": "boolean"}},
        "required": ["b"],
        "additionalProperties": False,
    }
    assert_language(schema, [{"b": 1}, {"a": "x", "b": 2}, {"a": "x", "b": 2, "c": True}], [{"a": "x"}, {}])


def test_extra_properties_follow_the_listed_ones_unless_forbidden():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    assert_language(schema, [{"a": 1, "zz": [1, "x"]}, {"zz": None}], [{"a": "no"}])
    c = json_schema(schema)
    assert not c.accepts('{"a": 1, "a": "x"}')  # an extra member may not reuse a listed name
    assert_language({**schema, "additionalProperties": False}, [{"a": 1}], [{"a": 1, "b": 2}])
    assert_language({**schema, "additionalProperties": {"type": "string"}}, [{"a": 1, "b": "x"}], [{"b": 2}])


def test_pattern_properties():
    schema = {"type": "object", "patternProperties": {"^x-[a-z]+$": {"type": "integer"}}, "additionalProperties": False}
    assert_language(schema, [{"x-ab": 1, "x-c": 2}, {}], [{"x-ab": "s"}, {"y": 1}, {"x-A": 1}])


def test_min_max_properties_are_post_checked():
    c = json_schema({"type": "object", "minProperties": 1, "maxProperties": 2})
    assert any("minProperties" in p for p in c.post_checked)
    assert c.accepts('{"a": 1}') and not c.accepts("{}") and not c.accepts('{"a": 1, "b": 2, "c": 3}')


def test_property_names_filter_listed_names():
    c = json_schema(
        {"type": "object", "properties": {"ok": {}, "BAD": {}}, "propertyNames": {"pattern": "^[a-z]+$"},
         "additionalProperties": False}
    )
    assert c.accepts('{"ok": 1}') and not c.accepts('{"BAD": 1}')


# ---- numbers


def test_integer_bounds_inclusive_and_exclusive():
    assert_language({"type": "integer", "minimum": -5, "maximum": 12}, [-5, 0, 7, 12], [-6, 13, 1.5, 100])
    assert_language({"type": "integer", "exclusiveMinimum": -5, "exclusiveMaximum": 12}, [-4, 11], [-5, 12])


def test_draft4_boolean_exclusive_bounds():
    schema = {"$schema": "http://json-schema.org/draft-04/schema#", "type": "number", "minimum": 0,
              "exclusiveMinimum": True, "maximum": 1}
    assert_language(schema, [0.5, 1, 0.001], [0, -0.5, 1.01])


def test_number_bounds_with_fractions():
    assert_language({"type": "number", "minimum": 0.25, "maximum": 2.5}, [0.25, 1, 2.5, 2.4999], [0.2, 2.51, 3])
    assert_language({"type": "number", "exclusiveMaximum": 0}, [-1, -0.001], [0, 0.0, 1])


def test_huge_bounds_are_post_checked_not_dropped():
    c = json_schema({"type": "number", "maximum": 1.7976931348623157e308, "minimum": -1e300})
    assert any("minimum/maximum" in p for p in c.post_checked)
    assert c.accepts("12.5")


def test_multiple_of_is_post_checked():
    c = json_schema({"type": "number", "multipleOf": 0.5})
    assert c.post_checked == ("multipleOf at /multipleOf",)
    assert c.accepts("1.5") and not c.accepts("1.2")


def _pattern(schema) -> re.Pattern:
    return re.compile(json_schema(schema).pattern)


@settings(max_examples=40, deadline=None)
@given(st.integers(-10**6, 10**6), st.integers(2, 10**6), st.booleans(), st.booleans(),
       st.lists(st.integers(-2 * 10**6, 2 * 10**6), max_size=30))
def test_integer_bounds_property(lo, width, lo_excl, hi_excl, probes):
    """Every integer within the bounds is accepted and every one outside refused (numbers are plain ASCII
    regexes, so Python's ``re`` reads them the same way the automaton does)."""
    hi = lo + width
    schema = {"type": "integer", ("exclusiveMinimum" if lo_excl else "minimum"): lo,
              ("exclusiveMaximum" if hi_excl else "maximum"): hi}
    rx = _pattern(schema)
    for x in [lo - 1, lo, lo + 1, hi - 1, hi, hi + 1, *probes]:
        inside = (x > lo if lo_excl else x >= lo) and (x < hi if hi_excl else x <= hi)
        assert bool(rx.fullmatch(json.dumps(x))) == inside, (schema, x)


@settings(max_examples=40, deadline=None)
@given(st.decimals(-1000, 1000, places=3), st.decimals("0.001", 1000, places=3), st.booleans(),
       st.lists(st.decimals(-2100, 2100, places=4), max_size=30))
def test_number_bounds_property(lo, width, exclusive, probes):
    hi = lo + width
    schema = {"type": "number", "minimum": float(lo), ("exclusiveMaximum" if exclusive else "maximum"): float(hi)}
    rx = _pattern(schema)
    lo_d, hi_d = Decimal(repr(float(lo))), Decimal(repr(float(hi)))
    for x in [lo_d, hi_d, lo_d - Decimal("0.001"), hi_d + Decimal("0.001"), *probes]:
        text = format(x, "f")
        inside = x >= lo_d and (x < hi_d if exclusive else x <= hi_d)
        if x == 0 and text.startswith("-"):
            continue  # "-0" spellings are left out (never invalid, only not generated)
        assert bool(rx.fullmatch(text)) == inside, (schema, text)


# ---- strings


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 20), st.integers(0, 20), st.lists(st.text(max_size=45), max_size=15))
def test_string_length_property(lo, width, probes):
    hi = lo + width
    rx = _pattern({"type": "string", "minLength": lo, "maxLength": hi})
    for s in probes + ["a" * lo, "é" * hi, "\n" * (hi + 1)]:
        assert bool(rx.fullmatch(json.dumps(s, ensure_ascii=False))) == (lo <= len(s) <= hi), (lo, hi, s)


def test_string_escapes():
    c = json_schema({"type": "string", "maxLength": 3})
    assert c.accepts(json.dumps('a"\n')) and not c.accepts('"\n"')  # a raw newline is not JSON
    assert c.accepts(json.dumps("é\\", ensure_ascii=False)) and c.accepts(json.dumps("é\\", ensure_ascii=True))
    assert not c.accepts(json.dumps("\U0001F600"))  # surrogate pair: refused (length would miscount)
    assert not c.accepts(json.dumps("abcd"))


def test_pattern_is_an_unanchored_search_translated_to_the_rust_dialect():
    assert_language({"type": "string", "pattern": r"\d{3}"}, ["ab123", "123"], ["12", "abc"])
    assert_language({"type": "string", "pattern": r"^[a-z]+$"}, ["abc"], ["Abc", "", "ab1"])
    assert_language({"type": "string", "pattern": r"^\w+@\S+$"}, ["a_b@c.d"], ["a b@c", "@x"])
    assert_language({"type": "string", "pattern": r'^[^"]*$'}, ["plain", "new\nline"], ['quote"d'])


def test_pattern_with_lookaround_is_post_checked():
    c = json_schema({"type": "string", "pattern": r"^(?!admin)[a-z]+$"})
    assert c.post_checked == ("pattern at /pattern",)
    assert c.accepts('"bob"') and not c.accepts('"admin"')


def test_length_with_simple_pattern_is_exact_and_otherwise_post_checked():
    exact = json_schema({"type": "string", "pattern": "^[a-z]*$", "minLength": 2, "maxLength": 3})
    assert exact.post_checked == () and exact.accepts('"ab"') and not exact.accepts('"abcd"')
    mixed = json_schema({"type": "string", "pattern": "^a.*z$", "maxLength": 4})
    assert mixed.post_checked == ("minLength/maxLength at /",)
    assert mixed.accepts('"abz"') and not mixed.accepts('"abbbz"')


def test_long_strings_stay_bounded():
    c = json_schema({"type": "string", "maxLength": 5000})
    assert c.post_checked == ("maxLength at /maxLength",) and len(c.pattern) < 200
    assert c.accepts(json.dumps("x" * 5000)) and not c.accepts(json.dumps("x" * 5001))


@pytest.mark.parametrize(
    ("fmt", "good", "bad"),
    [
        ("date", ["2024-02-29", "1999-12-31"], ["2023-02-29", "2024-13-01", "2024-1-01"]),
        ("time", ["12:30:00Z", "23:59:59.5+02:00"], ["12:30:00", "24:00:00Z"]),
        ("date-time", ["2024-01-01T12:00:00Z"], ["2024-01-01 12:00:00Z", "2024-01-01T12:00:00"]),
        ("email", ["a.b@example.com"], ["a@b", "no-at.example.com"]),
        ("uuid", ["123e4567-e89b-12d3-a456-426614174000"], ["123e4567e89b12d3a456426614174000"]),
        ("ipv4", ["192.168.0.1"], ["256.1.1.1", "1.2.3"]),
        ("ipv6", ["::1", "2001:db8::8a2e:370:7334"], ["2001:db8:::1", "12345::"]),
        ("hostname", ["example.com", "a-b.c"], ["-bad.com", "a..b"]),
        ("uri", ["https://example.com/a?b=c#d"], ["not a uri", "//no-scheme"]),
    ],
)
def test_formats(fmt, good, bad):
    assert_language({"type": "string", "format": fmt}, good, bad)


def test_unknown_format_is_an_annotation():
    c = json_schema({"type": "string", "format": "my-own-format"})
    assert c.post_checked == () and c.accepts('"anything"')


# ---- arrays


def test_min_max_items():
    assert_language({"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 3},
                    [[1], [1, 2, 3]], [[], [1, 2, 3, 4], ["a"]])


def test_prefix_items_and_draft4_array_items():
    assert_language({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": False},
                    [["a", 1], ["a"], []], [[1], ["a", 1, 2]])
    assert_language({"$schema": "http://json-schema.org/draft-04/schema#", "type": "array",
                     "items": [{"type": "string"}], "additionalItems": {"type": "boolean"}, "minItems": 2},
                    [["a", True, False]], [["a"], ["a", 1]])


def test_many_complex_items_stay_bounded():
    item = {"type": "object", "properties": {"a": {"type": "string", "maxLength": 20}}, "required": ["a"]}
    c = json_schema({"type": "array", "items": item, "maxItems": 1000})
    assert "maxItems at /maxItems" in c.post_checked and len(c.pattern) < 5000
    assert not c.accepts(json.dumps([{"a": "x"}] * 1001)) and c.accepts(json.dumps([{"a": "x"}] * 3))


def test_unique_items_and_contains_are_post_checked():
    c = json_schema({"type": "array", "uniqueItems": True, "contains": {"const": 1}})
    assert set(c.post_checked) == {"uniqueItems at /uniqueItems", "contains at /contains",
                                   "unique member names at /items"}  # free items may be objects
    assert c.accepts("[1, 2]") and not c.accepts("[1, 1]") and not c.accepts("[2]")


# ---- values, combinators, references


def test_enum_and_const_of_any_json_value():
    schema = {"enum": ["a", 1, None, {"k": [1, {"z": False}]}, [1, "x"]]}
    assert_language(schema, ["a", 1, None, {"k": [1, {"z": False}]}, [1, "x"]], ["b", 2, {"k": [1]}, [1]])
    assert_language({"const": {"a": 1}}, [{"a": 1}], [{"a": 2}, {}])
    assert_language({"type": "string", "enum": ["a", 1, "bb"], "maxLength": 1}, ["a"], [1, "bb"])


def test_type_arrays():
    assert_language({"type": ["string", "null"], "maxLength": 2}, ["ab", None], ["abc", 1])


def test_all_of_merges():
    schema = {"allOf": [{"type": "object", "properties": {"a": {"type": "integer", "minimum": 0}}},
                        {"properties": {"a": {"maximum": 5}}, "required": ["a"]}]}
    assert_language(schema, [{"a": 0}, {"a": 5}], [{"a": 6}, {"a": -1}, {}])


def test_any_of_and_one_of():
    assert_language({"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 1}]}, [1, "a"], ["ab", None])
    c = json_schema({"oneOf": [{"type": "integer"}, {"type": "number", "minimum": 5}]})
    assert "oneOf at /oneOf" in c.post_checked
    assert c.accepts("1") and c.accepts("5.5") and not c.accepts("7")  # 7 matches both branches


def test_not_and_if_then_else_are_post_checked():
    c = json_schema({"type": "integer", "not": {"const": 3}, "if": {"minimum": 10}, "then": {"multipleOf": 2}})
    assert {"not at /not", "if at /if"} <= set(c.post_checked)
    assert c.accepts("4") and not c.accepts("3") and c.accepts("12") and not c.accepts("11")


def test_dependent_required_is_post_checked():
    c = json_schema({"type": "object", "properties": {"a": {}, "b": {}}, "dependentRequired": {"a": ["b"]}})
    assert c.post_checked[0] == "dependentRequired at /dependentRequired"
    assert c.accepts('{"a": 1, "b": 2}') and not c.accepts('{"a": 1}')


def test_refs_and_bounded_recursion():
    kids = {"type": "array", "items": {"$ref": "#/$defs/node"}}
    tree = {"$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer"}, "kids": kids},
                               "required": ["v"], "additionalProperties": False}},
            "$ref": "#/$defs/node"}
    shallow = {"v": 1, "kids": [{"v": 2}]}
    deep = {"v": 1, "kids": [{"v": 2, "kids": [{"v": 3, "kids": [{"v": 4}]}]}]}
    assert json_schema(tree).accepts(json.dumps(shallow))
    assert not json_schema(tree, options=Options(max_recursion=2)).matches_pattern(json.dumps(deep))
    assert json_schema(tree, options=Options(max_recursion=2)).accepts(json.dumps(deep))  # valid, never generated
    assert json_schema(tree, options=Options(max_recursion=4)).matches_pattern(json.dumps(deep))
    draft7 = {"$schema": "http://json-schema.org/draft-07/schema#", "definitions": {"s": {"type": "string"}},
              "properties": {"a": {"$ref": "#/definitions/s"}}, "type": "object", "required": ["a"]}
    assert_language(draft7, [{"a": "x"}], [{"a": 1}])


# ---- bad input


def test_invalid_schema_raises_schema_error_with_pointer():
    with pytest.raises(SchemaError) as info:
        json_schema({"type": "object", "properties": {"a": {"type": 5}}})
    assert info.value.pointer.startswith("/properties/a")
    with pytest.raises(SchemaError) as info:  # a meta-schema bound rather than a type
        json_schema({"type": "object", "minProperties": -1})
    assert info.value.pointer == "/minProperties"
    with pytest.raises(SchemaError):
        json_schema("{not json")


def test_remote_ref_is_unsupported_with_keyword_and_pointer():
    with pytest.raises(UnsupportedSchema) as info:
        json_schema({"type": "object", "properties": {"a": {"$ref": "https://example.com/s.json"}}})
    assert info.value.keyword == "$ref" and info.value.pointer == "/properties/a/$ref"


def test_dynamic_ref_is_unsupported():
    with pytest.raises(UnsupportedSchema) as info:
        json_schema({"$dynamicRef": "#meta"})
    assert info.value.keyword == "$dynamicRef"


def test_unsatisfiable_schema_is_reported():
    with pytest.raises(UnsupportedSchema):
        json_schema({"type": "integer", "minimum": 5, "maximum": 1})


# ---- entry points


def test_json_text_and_pydantic_model_inputs():
    class Point(pydantic.BaseModel):
        x: int
        label: str = "p"

    c = json_schema(Point)
    assert c.accepts('{"x": 1, "label": "a"}') and c.accepts('{"x": 1}') and not c.accepts('{"label": "a"}')
    assert json_schema('{"type": "boolean"}').accepts("true")
    assert c.kind == "json"
