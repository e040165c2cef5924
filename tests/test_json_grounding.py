"""Grounded extraction: a JSON constraint whose free strings and numbers are spans and numbers of a source text.

Soundness: whatever the canvas decides, the text validates against the schema and every free value is one the
source text offers. Completeness: a document whose values the text states is accepted, and allowed at every
position in any reveal order. A value the document needs but the text lacks falls back to its schema's own
language and is named; one it can leave out is left out.
"""

from __future__ import annotations

import json

import jsonschema
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from constrained.generation import generate_json
from constrained.json_schema import json_schema
from constrained.schema.grounding import MAX_SPAN_WORDS, Grounding
from model import corpus

#: Held-out extraction items, half of them with invented words (values the built-in model never saw).
ITEMS = [item for share in (0.0, 1.0) for item in corpus.take(40, "held_out", mix={"json": 1.0},
                                                              invented_words=share)]
PADDING = 3


def offered(value, grounding: Grounding, schema_words: set) -> bool:
    """Every string and number inside ``value`` (keys aside) is a candidate of ``grounding`` or a word the schema
    itself spells (an enum option)."""

    def fits(leaf) -> bool:
        if isinstance(leaf, bool) or leaf is None:
            return True
        candidates = grounding.strings if isinstance(leaf, str) else grounding.numbers
        return leaf in candidates or leaf in schema_words

    return all(fits(leaf) for leaf in corpus.json_leaves(value))


def schema_words(schema) -> set:
    """Every scalar an ``enum`` or ``const`` of the schema lists."""
    found: set = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            for key, sub in node.items():
                if key == "enum":
                    found.update(v for v in sub if not isinstance(v, (dict, list)))
                elif key == "const" and not isinstance(sub, (dict, list)):
                    found.add(sub)
                else:
                    walk(sub)
        elif isinstance(node, list):
            for sub in node:
                walk(sub)

    walk(schema)
    return found


# ---- the candidates


def test_spans_stay_within_a_clause_and_come_with_and_without_outer_punctuation():
    grounding = Grounding.from_text("lives at 188 Nelous Boulevard, Kozozes; see (Paris). Ticket VRI-26350.\nok")
    assert {"188 Nelous Boulevard", "Kozozes", "Paris", "(Paris)", "VRI-26350", "Ticket VRI-26350", "ok"} <= set(
        grounding.strings)
    assert "Boulevard, Kozozes" not in grounding.strings and "Boulevard Kozozes" not in grounding.strings
    assert "VRI-26350. ok" not in grounding.strings
    assert len(grounding.strings) == len(set(grounding.strings))


def test_spans_are_at_most_the_word_bound():
    words = [f"w{i}" for i in range(MAX_SPAN_WORDS + 3)]
    grounding = Grounding.from_text(" ".join(words))
    assert " ".join(words[:MAX_SPAN_WORDS]) in grounding.strings
    assert " ".join(words[:MAX_SPAN_WORDS + 1]) not in grounding.strings


#: Words of a clause: punctuation anywhere but a sentence end's (which would end the clause).
WORDS = st.text(st.sampled_from("ab\"'()é.:-@1"), min_size=1, max_size=5).filter(lambda word: word[-1] not in ".!?")


@settings(max_examples=60, deadline=None)
@given(clauses=st.lists(st.lists(WORDS, min_size=1, max_size=10), min_size=1, max_size=4), data=st.data())
def test_every_run_of_words_within_a_clause_is_a_string_value(clauses, data):
    text = "; ".join(" ".join(words) for words in clauses)
    words = data.draw(st.sampled_from(clauses))
    start = data.draw(st.integers(0, len(words) - 1))
    run = " ".join(words[start:start + data.draw(st.integers(1, MAX_SPAN_WORDS))])
    constraint = json_schema({"type": "string"}, grounded_in=text)
    assert constraint.accepts(json.dumps(run, ensure_ascii=False)), (text, run)
    assert run in Grounding.from_text(text).strings


def test_numbers_are_words_that_read_as_json_numbers():
    grounding = Grounding.from_text("paid $12.50 for 3 items, 007 bond, 1e999 stars, -4 degrees, 2003-09-14, v2")
    assert grounding.numbers == (12.5, 3, -4)
    assert grounding.numbers_of(integer=True) == (3, -4)


# ---- soundness and completeness over the corpus's held-out items


def test_every_stated_document_is_accepted_and_nothing_falls_back():
    for item in ITEMS:
        constraint = json_schema(item.meta["schema"], grounded_in=item.meta["text"])
        assert constraint.accepts(item.target), (item.meta["text"], item.target)
        assert constraint.ungrounded == ()


@pytest.fixture(scope="module")
def bound_items(tok):
    return [(item, json_schema(item.meta["schema"], grounded_in=item.meta["text"]).bind(tok)) for item in ITEMS[::4]]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_allowed_choices_end_in_a_valid_document_of_offered_values(tok, bound_items, data):
    item, bound = data.draw(st.sampled_from(bound_items))
    length = len(tok.encode(item.target, add_special_tokens=False)) + PADDING
    canvas = bound.canvas(length)
    for position in data.draw(st.permutations(range(length))):
        choices = torch.nonzero(canvas.allowed(position)).flatten().tolist()
        assert choices, "a feasible canvas allows some token at every open position"
        canvas.decide({position: data.draw(st.sampled_from(choices))})
    value = json.loads(bound.decode(canvas.tokens))
    jsonschema.validate(value, item.meta["schema"])
    assert offered(value, Grounding.from_text(item.meta["text"]), schema_words(item.meta["schema"])), value


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(per_step=st.integers(1, 8), data=st.data())
def test_stated_documents_are_allowed_in_any_reveal_order(tok, bound_items, per_step, data):
    item, bound = data.draw(st.sampled_from(bound_items))
    target = tok.encode(item.target, add_special_tokens=False) + [bound.eos_token_ids[0]] * PADDING
    canvas = bound.canvas(len(target))
    order = data.draw(st.permutations(range(len(target))))
    for start in range(0, len(order), per_step):
        masks = canvas.masks()
        assert all(masks[i, target[i]] for i, token in enumerate(canvas.tokens) if token is None)
        canvas.decide({i: target[i] for i in order[start:start + per_step]})
    assert canvas.complete()


# ---- what the text does not state

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0},
                   "phone": {"type": "string", "pattern": "^[+][0-9 ]+$"}, "tags": {"type": "array",
                                                                                  "items": {"type": "string"}}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


def test_a_value_the_text_lacks_is_left_out_where_the_schema_allows():
    constraint = json_schema(PERSON, grounded_in="Ada Lovelace, aged 36")
    assert constraint.accepts('{"name": "Ada Lovelace", "age": 36}')
    assert constraint.accepts('{"name": "Ada", "age": 36, "tags": ["aged 36"]}')
    assert not constraint.accepts('{"name": "Ada Lovelace", "age": 36, "phone": "+1 555"}')  # no phone stated
    assert not constraint.accepts('{"name": "Ada Loveless", "age": 36}')
    assert not constraint.accepts('{"name": "Ada Lovelace", "age": 37}')
    assert constraint.ungrounded == ()


def test_a_value_the_document_needs_falls_back_to_its_schema_and_is_named():
    constraint = json_schema(PERSON, grounded_in="Ada Lovelace")  # no age stated, and age is required
    assert constraint.ungrounded == ("/properties/age",)
    assert constraint.accepts('{"name": "Ada Lovelace", "age": 41}')
    assert not constraint.accepts('{"name": "Ada", "age": -1}')  # the fallback is still the schema's own language
    assert not constraint.accepts('{"name": "Grace", "age": 41}')


def test_schema_keywords_filter_the_candidates():
    schema = {"type": "object", "properties": {"email": {"type": "string", "format": "email"},
                                               "code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]+$"}},
              "required": ["email", "code"]}
    constraint = json_schema(schema, grounded_in="write to ada@example.org about ABC-12, not abc-12")
    assert constraint.accepts('{"email": "ada@example.org", "code": "ABC-12"}')
    assert not constraint.accepts('{"email": "ABC-12", "code": "ABC-12"}')
    assert not constraint.accepts('{"email": "ada@example.org", "code": "abc-12"}')


def test_unconstrained_values_are_grounded_too():
    constraint = json_schema({"type": "object"}, grounded_in="city Paris, n 3, ok")
    assert constraint.accepts('{"city": "Paris", "n": 3, "ok": true}')
    assert not constraint.accepts('{"city": "Lyon"}')
    assert not constraint.accepts('{"town": "Paris"}')


def test_a_grounded_constraint_is_kept_out_of_the_disk_cache(tok, tmp_path, monkeypatch):
    monkeypatch.setenv("CONSTRAINED_CACHE", str(tmp_path))
    json_schema(PERSON, grounded_in="Ada Lovelace, aged 36").bind(tok)
    assert not any(tmp_path.rglob("*.npz"))
    json_schema(PERSON).bind(tok)
    assert any(tmp_path.rglob("*.npz"))


def test_generate_json_grounded_extracts_values_from_the_prompt():
    text = "Grace Hopper, 85, grace@navy.mil"
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                                               "email": {"type": "string", "format": "email"}},
              "required": ["name", "age", "email"], "additionalProperties": False}
    result = generate_json(schema, text, seed=0, grounded=True)
    assert offered(result.value, Grounding.from_text(text), set()), result.value
    assert result.value["age"] == 85 and result.value["email"] == "grace@navy.mil"


def test_members_the_schema_does_not_list_are_named_by_the_text():
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "additionalProperties": {"type": "integer"}}
    constraint = json_schema(schema, grounded_in="Ada Lovelace; apples 3, pears 4")
    assert constraint.accepts('{"name": "Ada Lovelace", "apples": 3, "pears": 4}')
    assert not constraint.accepts('{"name": "Ada Lovelace", "plums": 3}')  # a key the text never writes
    assert not constraint.accepts('{"name": "Ada Lovelace", "name": 3}')  # a listed key is not an extra one
    mapping = {"type": "object", "patternProperties": {"^p": {"type": "integer"}}, "additionalProperties": False}
    constraint = json_schema(mapping, grounded_in="apples 3, pears 4")
    assert constraint.accepts('{"pears": 4}')
    assert not constraint.accepts('{"apples": 3}')  # the text writes it, but the pattern does not name it
