"""Edit: regenerate spans of a valid text under its constraint; every byte outside the spans stays."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from constrained import regex
from constrained.edit import edit, edit_canvas, json_value_span, parse_path, resolve_spans
from constrained.errors import ConstrainedError, ConstraintUnsatisfiable
from constrained.json_schema import json_schema
from constrained.testing import byte_tokenizer, diffusion_gemma, masked_lm

torch.set_num_threads(1)

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "zip": {"type": "integer", "minimum": 1000, "maximum": 99999}},
            "required": ["city", "zip"],
            "additionalProperties": False,
        },
        "tags": {"type": "array", "items": {"type": "string", "enum": ["red", "green", "blue"]}, "uniqueItems": True},
    },
    "required": ["name", "address", "tags"],
    "additionalProperties": False,
}
TEXT = json.dumps({"name": "Alice", "address": {"city": "Paris", "zip": 75001}, "tags": ["red", "blue"]})


@pytest.fixture(scope="module")
def tokenizer():
    return byte_tokenizer(320)


@pytest.fixture(scope="module")
def models(tokenizer):
    return {"gemma": diffusion_gemma(len(tokenizer), canvas_length=8), "bert": masked_lm(len(tokenizer))}


@pytest.fixture(scope="module")
def constraint():
    return json_schema(SCHEMA)


def outside_kept(original: str, ranges: list[tuple[int, int]], result: str) -> bool:
    """Whether ``result`` is ``original`` with only the given ranges replaced (by anything)."""
    pieces, cursor = [], 0
    for start, end in ranges:
        pieces.append(re.escape(original[cursor:start]))
        cursor = end
    pieces.append(re.escape(original[cursor:]))
    return re.fullmatch("(.*?)".join(pieces), result, flags=re.DOTALL) is not None


def test_json_paths():
    assert parse_path("$.a.b[3]['c d'][\"e\"]") == ["a", "b", 3, "c d", "e"]
    text = '{"a": {"b": [10, {"c": "xy"}, true]}, "d": null}'
    assert text[slice(*json_value_span(text, "$.a.b[1].c"))] == '"xy"'
    assert text[slice(*json_value_span(text, "$.a.b[2]"))] == "true"
    assert text[slice(*json_value_span(text, "$.d"))] == "null"
    assert text[slice(*json_value_span(text, "$.a"))] == '{"b": [10, {"c": "xy"}, true]}'
    inner = text.index("xy")
    assert resolve_spans(text, ["$.a.b[1].c", (0, 2), (1, 3)]) == [(0, 3), (inner, inner + 2)]  # contents, merged


@pytest.mark.parametrize("path", ["$.missing", "$.a.b[7]", "$.d.e", "a.b", "$.a.b[x]"])
def test_bad_paths(path):
    with pytest.raises(ConstrainedError):
        json_value_span('{"a": {"b": [10]}, "d": null}', path)


@pytest.mark.parametrize("kind", ["gemma", "bert"])
@pytest.mark.parametrize("seed", range(5))
def test_multi_span_edit_keeps_the_rest_and_stays_valid(kind, seed, models, tokenizer, constraint):
    spans = ["$.address.city", "$.address.zip", "$.tags[1]", (9, 14)]  # (9, 14) is Alice
    options = {"steps": 4} if kind == "gemma" else {"steps": 4, "temperature": 1.0}
    result = edit(TEXT, spans, constraint, prompt="rewrite", model=models[kind], tokenizer=tokenizer, seed=seed,
                  **options)
    assert outside_kept(TEXT, resolve_spans(TEXT, spans), result.text)
    jsonschema.validate(result.value, SCHEMA)
    assert constraint.accepts(result.text) and result.value == json.loads(result.text)
    assert result.value["tags"][0] == "red"  # not in a span: kept


@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_any_character_ranges_can_be_regenerated(data, models, tokenizer, constraint):
    count = data.draw(st.integers(1, 3))
    bounds = [sorted(data.draw(st.lists(st.integers(0, len(TEXT)), min_size=2, max_size=2, unique=True)))
              for _ in range(count)]
    spans = [(start, end) for start, end in bounds]
    try:
        result = edit(TEXT, spans, constraint, model=models["bert"], tokenizer=tokenizer, steps=3, temperature=1.0,
                      seed=data.draw(st.integers(0, 2**31)))
    except ConstraintUnsatisfiable as failure:
        # only the commit-time check (uniqueItems here) may defeat the retries, and never silently
        assert "non-unique" in str(failure) and outside_kept(TEXT, resolve_spans(TEXT, spans), failure.partial)
        return
    assert outside_kept(TEXT, resolve_spans(TEXT, spans), result.text)
    jsonschema.validate(result.value, SCHEMA)


def test_extra_tokens_make_room_for_a_longer_replacement(models, tokenizer, constraint):
    original = edit_canvas(TEXT, [], constraint.bind(tokenizer))
    result = edit(TEXT, ["$.name"], constraint, model=models["gemma"], tokenizer=tokenizer, seed=0, steps=4,
                  extra_tokens=3)
    assert len(result.token_ids) == len(original) + 3  # "Alice" is 5 tokens here; 8 still fit maxLength 12
    assert outside_kept(TEXT, resolve_spans(TEXT, ["$.name"]), result.text)
    jsonschema.validate(result.value, SCHEMA)
    digits = regex(r'\{"n": [0-9]{1,3}\}').bind(tokenizer)
    assert edit_canvas('{"n": 42}', [(6, 8)], digits, extra_tokens=3).count(None) == 3  # at most 3 digits fit


def test_edit_respects_the_commit_time_check(models, tokenizer, constraint):
    # uniqueItems is checked at commit time: re-generating the second tag must not repeat "red"
    for seed in range(4):
        result = edit(TEXT, ["$.tags[1]"], constraint, model=models["bert"], tokenizer=tokenizer, seed=seed, steps=3,
                      temperature=1.0)
        assert result.value["tags"][0] == "red" and result.value["tags"][1] in ("green", "blue")


def test_edit_rejects_invalid_text_and_bad_spans(models, tokenizer, constraint):
    with pytest.raises(ConstrainedError, match="not accepted"):
        edit('{"name": 3}', ["$.name"], constraint, model=models["bert"], tokenizer=tokenizer)
    with pytest.raises(ConstrainedError, match="not a non-empty range"):
        edit(TEXT, [(5, 500)], constraint, model=models["bert"], tokenizer=tokenizer)
