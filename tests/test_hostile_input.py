"""Careless and hostile input: bounded before the work, typed errors that name the cause, and no silent cut."""

from __future__ import annotations

import json
import time
import tracemalloc

import pytest

import constrained
from constrained import CompileTimeout, RegexError, UnsatisfiableSchema, UnsupportedSchema
from constrained.errors import ConstraintUnsatisfiable, SchemaError
from constrained.json_schema import json_schema
from constrained.prompts import compact_json_schema, json_prompt
from constrained.puzzles.sudoku import solve_sudoku
from constrained.schema.compiler import Options

#: Every refusal below must come this fast (seconds) and within this much Python memory (bytes).
FAST_S = 5.0
SMALL_BYTES = 64 << 20


def _bounded(compile_schema):
    """Run ``compile_schema``; return what it raised (or returned), its time and its peak Python memory."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        outcome = compile_schema()
    except constrained.ConstrainedError as error:
        outcome = error
    finally:
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return outcome, elapsed, peak


def _nested_arrays(depth: int) -> dict:
    schema: dict = {"type": "integer"}
    for _ in range(depth):
        schema = {"type": "array", "maxItems": 2, "items": schema}
    return schema


# ---- memory and time, bounded while building


@pytest.mark.parametrize("depth", [20, 30, 50])
def test_nested_bounded_arrays_fail_fast_in_bounded_memory(depth):
    """Each level wrote its items' regex twice: depth 20 built a 183-million-character string, 30 ran out."""
    error, elapsed, peak = _bounded(lambda: json_schema(_nested_arrays(depth)))
    assert isinstance(error, CompileTimeout), error
    assert "max_regex_length" in str(error) and "/items/items" in str(error)
    assert elapsed < FAST_S and peak < SMALL_BYTES


def test_references_that_double_at_every_level_are_bounded():
    """No recursion at all, yet each definition uses the next one twice (the billion laughs of $ref)."""
    defs = {f"d{i}": {"type": "object", "properties": {"a": {"$ref": f"#/$defs/d{i + 1}"},
                                                       "b": {"$ref": f"#/$defs/d{i + 1}"}},
                      "required": ["a", "b"], "additionalProperties": False} for i in range(40)}
    defs["d40"] = {"type": "integer"}
    error, elapsed, peak = _bounded(lambda: json_schema({"$defs": defs, "$ref": "#/$defs/d0"}))
    assert isinstance(error, CompileTimeout) and "max_regex_length" in str(error)
    assert elapsed < FAST_S and peak < SMALL_BYTES


def test_many_optional_members_are_bounded():
    """A run of optional members costs quadratic regex text; the bound holds inside the layout too."""
    props = {f"field_{i}": {"type": "integer"} for i in range(600)}
    error, elapsed, peak = _bounded(lambda: json_schema({"type": "object", "properties": props,
                                                         "additionalProperties": False}))
    assert isinstance(error, CompileTimeout) and "max_regex_length" in str(error)
    assert elapsed < FAST_S and peak < 4 * SMALL_BYTES


def test_deep_nesting_is_a_typed_error_not_a_recursion_error():
    def nested(depth: int) -> dict:
        schema: dict = {"type": "string"}
        for _ in range(depth):
            schema = {"type": "object", "properties": {"a": schema}, "required": ["a"]}
        return schema

    with pytest.raises(UnsupportedSchema, match="max_depth"):
        json_schema(nested(80))
    with pytest.raises(SchemaError, match="nested too deeply"):  # the meta-schema check recurses first
        json_schema(nested(1000))
    with pytest.raises(SchemaError, match="nested too deeply"):
        json_schema("[" * 100_000 + "]" * 100_000)


def test_options_bound_the_regex_while_it_is_built():
    with pytest.raises(CompileTimeout, match="the regex for /properties/a reaches"):
        json_schema({"type": "object", "properties": {"a": {"enum": [f"value {i}" for i in range(100)]}}},
                    options=Options(max_regex_length=500))


@pytest.mark.parametrize("pattern, why", [
    ("a{1000000}", "unrolls"), ("(?:ab|cd){100}{100}", "unrolls"), ("[^x]{0,5000}", "unrolls"),
    ("(a)\\1", "backreference"), ("(?P<x>a)(?P=x)", "backreference"), ("a(?=b)", "lookahead"),
])
def test_unbuildable_patterns_are_refused_from_their_text(pattern, why):
    """a{1000000} took 60 s to reach CompileTimeout; now the pattern alone decides."""
    started = time.perf_counter()
    with pytest.raises(RegexError, match=why):
        constrained.regex(pattern)
    assert time.perf_counter() - started < 1.0


def test_a_counted_pattern_inside_a_schema_is_post_checked_not_built():
    c = json_schema({"type": "string", "pattern": "^((ab){100}){100}$"})
    assert "pattern at /pattern" in c.post_checked and len(c.pattern) < 1000


# ---- anchors


@pytest.mark.parametrize("pattern, text", [("^abc", "abc"), ("abc$", "abc"), (r"^\d{4}-\d{2}-\d{2}$", "2024-01-02"),
                                           (r"\Aa+\z", "aaa"), ("^yes$|^no$", "no"), ("(?:^a|b$)", "b")])
def test_anchors_around_the_whole_pattern_are_what_whole_text_matching_means(pattern, text):
    constraint = constrained.regex(pattern)
    assert constraint.accepts(text) and not constraint.accepts(text + "x") and not constraint.accepts("x" + text)


@pytest.mark.parametrize("pattern", ["a^b", "a$b", "(^a)*", r"a\Ab", "x(?:$)y"])
def test_anchors_in_the_middle_are_refused_saying_so(pattern):
    with pytest.raises(RegexError, match="anchor .* is not at the (start|end) of the pattern"):
        constrained.regex(pattern)


# ---- recursion depth: an option, listed where it cuts


TREE = {"$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer"},
                                                            "kids": {"type": "array",
                                                                     "items": {"$ref": "#/$defs/node"}}},
                           "required": ["v"], "additionalProperties": False}},
        "$ref": "#/$defs/node"}


def _tree(levels: int) -> dict:
    node: dict = {"v": levels}
    for level in range(levels - 1, 0, -1):
        node = {"v": level, "kids": [node]}
    return node


def test_recursion_depth_is_a_keyword_and_the_cut_is_listed():
    default = json_schema(TREE)
    assert default.beyond_masks == ("$ref #/$defs/node at /$defs/node/properties/kids/items entered more than 3 "
                                    "times",)
    assert default.matches_pattern(json.dumps(_tree(3))) and not default.matches_pattern(json.dumps(_tree(4)))
    assert default.accepts(json.dumps(_tree(4)))  # valid, only never generated
    deeper = json_schema(TREE, max_recursion=5)
    assert deeper.matches_pattern(json.dumps(_tree(5))) and not deeper.matches_pattern(json.dumps(_tree(6)))
    assert json_schema({"type": "object"}).beyond_masks == ()
    with pytest.raises(SchemaError, match="max_recursion"):
        json_schema(TREE, max_recursion=0)


def test_a_schema_that_needs_deeper_recursion_says_so():
    chain = {"$defs": {"n": {"type": "object", "properties": {"next": {"$ref": "#/$defs/n"}}, "required": ["next"]}},
             "$ref": "#/$defs/n"}
    with pytest.raises(UnsatisfiableSchema, match=r"\$ref at /.*max_recursion"):
        json_schema(chain)


# ---- duplicate member names


FREE = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def test_duplicate_member_names_are_refused():
    c = json_schema(FREE)
    assert "unique member names at /" in c.post_checked
    assert c.accepts('{"name": "a", "x": 1}')
    assert c.violation('{"name": "a", "x": 1, "x": 2}') == "member name 'x' is repeated in one object"
    assert not c.accepts('{"name": "a", "x": {"y": 1, "y": 1}}')


def test_listed_names_cannot_come_back_as_extra_members_in_the_masks():
    loose = {"type": "object", "properties": {"name": {"type": "string"}},
             "patternProperties": {"^a": {"type": "integer"}, "^b": {"type": "integer"}}}
    for schema in (FREE, loose):
        c = json_schema(schema)
        assert not c.matches_pattern('{"name": "a", "name": "b"}')
        assert c.matches_pattern('{"name": "a", "other": 1}') or schema is loose


def test_objects_without_extra_members_need_no_duplicate_check():
    closed = {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": False}
    assert json_schema(closed).post_checked == ()


# ---- messages that say what is wrong


def test_contradictory_lengths_name_the_keywords_and_the_pointer():
    schema = {"type": "object", "properties": {"code": {"type": "string", "minLength": 5, "maxLength": 2}},
              "required": ["code"]}
    with pytest.raises(UnsatisfiableSchema) as info:
        json_schema(schema)
    assert str(info.value) == ("no JSON text satisfies the schema: minLength/maxLength at /properties/code: "
                               "minLength 5 exceeds maxLength 2")
    assert info.value.pointer == "/properties/code" and isinstance(info.value, UnsupportedSchema)


@pytest.mark.parametrize("schema, cause", [
    ({"type": "array", "minItems": 3, "maxItems": 1}, "minItems 3 exceeds maxItems 1"),
    ({"type": "integer", "minimum": 5, "maximum": 1}, "no integer lies within the bounds"),
    ({"enum": [1, 2], "type": "string"}, "no listed value satisfies"),
    ({"type": "object", "properties": {"a": False}, "required": ["a"]}, "false at /properties/a"),
])
def test_other_empty_schemas_name_their_cause(schema, cause):
    with pytest.raises(UnsatisfiableSchema, match=cause):
        json_schema(schema)


def test_a_sudoku_contradiction_names_the_blank_cell_not_the_given():
    givens = ["."] * 81
    givens[0] = "5"  # r1c1
    for row, digit in zip(range(1, 9), "12346789"):
        givens[row * 9 + 4] = digit  # column 5 leaves r1c5 only a 5
    with pytest.raises(ConstraintUnsatisfiable, match=r"r1c5 has no candidate left \(its only one, 5, is r1c1's\)"):
        solve_sudoku("".join(givens))


def test_a_huge_enum_gives_a_short_prompt():
    prompt = json_prompt({"type": "object", "properties": {"code": {"enum": [f"C{i:04d}" for i in range(5000)]}}},
                         "text")
    assert len(prompt) < 2100 and "...(+4968 more)" in prompt
    assert compact_json_schema({"enum": ["a", "b"]}) == '"a"|"b"'  # small schemas render as before


def test_the_prompt_takes_a_pydantic_model_like_json_schema_does():
    pydantic = pytest.importorskip("pydantic")

    class Person(pydantic.BaseModel):
        name: str
        age: int | None = None

    assert json_prompt(Person, "Ada") == json_prompt(Person.model_json_schema(), "Ada")
    assert json_prompt(Person, "Ada").startswith("Schema: {name: string, age?: integer|null}")
    assert json_schema(Person).accepts('{"name": "Ada"}')
    with pytest.raises(SchemaError):
        json_prompt(object(), "x")


def test_repr_shows_kind_size_and_a_preview():
    c = json_schema({"type": "object", "properties": {f"k{i}": {"type": "string"} for i in range(50)}})
    text = repr(c)
    assert text.startswith("Constraint(kind='json', pattern of ") and len(text) < 200
    assert f"{len(c.pattern):,} characters" in text
