"""Canvas masks over real MaskBench schemas and a real byte-level BPE vocabulary.

Completeness: every valid instance, tokenized, is allowed at every open position whatever order its tokens are
revealed in. Soundness: deciding positions in any order, each with any allowed token, ends in a text the
constraint accepts and that jsonschema validates (keywords the constraint post-checks aside: those it must
reject itself).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import jsonschema
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import constrained
from constrained import ConstrainedError

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "maskbench"
SPLITS = ["Github_easy", "Glaiveai2K", "Snowplow", "Handwritten", "Synthesized", "JME"]
PER_SPLIT = 5
PADDING = 4

pytestmark = pytest.mark.skipif(not DATA.exists(), reason="MaskBench data not present")


def _instance_text(data) -> str:
    return json.dumps(data, ensure_ascii=False)


def _repeats_a_name(text: str) -> bool:
    """Whether some object of the JSON ``text`` names a member twice (``json.loads`` would keep the last)."""
    repeated = False

    def pairs_to_dict(pairs: list[tuple[str, object]]) -> dict:
        nonlocal repeated
        repeated |= len({name for name, _ in pairs}) != len(pairs)
        return dict(pairs)

    json.loads(text, object_pairs_hook=pairs_to_dict)
    return repeated


def _sample_cases() -> list[tuple[str, dict, list[str]]]:
    """The first schemas of each split that compile, with their valid instances (short ones)."""
    cases = []
    for split in SPLITS:
        taken = 0
        with gzip.open(DATA / f"{split}.jsonl.gz", "rt") as lines:
            for line in lines:
                item = json.loads(line)
                valid = [_instance_text(t["data"]) for t in item["tests"] if t["valid"]]
                valid = [text for text in valid if len(text) <= 160]
                if not valid:
                    continue
                try:
                    constrained.json_schema(item["schema"]).compile()
                except ConstrainedError:
                    continue
                cases.append((f"{split}/{item['id']}", item["schema"], valid[:2]))
                taken += 1
                if taken == PER_SPLIT:
                    break
    return cases


CASES = _sample_cases() if DATA.exists() else []


@pytest.fixture(scope="module")
def tokenizer():
    """A byte-level BPE trained on the instances themselves: multi-character tokens that straddle JSON syntax."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1500, special_tokens=["<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator([text for _, _, texts in CASES for text in texts] * 3, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>")


@pytest.fixture(scope="module")
def bound_cases(tokenizer):
    return {name: constrained.json_schema(schema).bind(tokenizer) for name, schema, _ in CASES}


def _encode(tokenizer, text: str) -> list[int]:
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text
    return ids


def test_sample_covers_the_splits():
    assert len({name.split("/")[0] for name, _, _ in CASES}) == len(SPLITS)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.sampled_from(CASES), per_step=st.integers(1, 8), data=st.data())
def test_valid_instances_are_allowed_in_any_reveal_order(tokenizer, bound_cases, case, per_step, data):
    name, _, texts = case
    bound = bound_cases[name]
    for text in texts:
        target = _encode(tokenizer, text) + [bound.eos_token_ids[0]] * PADDING
        canvas = bound.canvas(len(target))
        order = data.draw(st.permutations(range(len(target))))
        for start in range(0, len(order), per_step):
            masks = canvas.masks()
            open_positions = [i for i, token in enumerate(canvas.tokens) if token is None]
            assert all(masks[i, target[i]] for i in open_positions), f"{name}: a token of {text!r} was masked"
            canvas.decide({i: target[i] for i in order[start:start + per_step]})
        assert canvas.complete()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.sampled_from(CASES), data=st.data())
def test_any_allowed_choices_end_in_a_valid_instance(tokenizer, bound_cases, case, data):
    name, schema, texts = case
    bound = bound_cases[name]
    length = len(_encode(tokenizer, texts[0])) + PADDING
    canvas = bound.canvas(length)
    assert canvas.feasible()
    for position in data.draw(st.permutations(range(length))):
        choices = torch.nonzero(canvas.allowed(position)).flatten().tolist()
        assert choices
        canvas.decide({position: data.draw(st.sampled_from(choices))})
    text = bound.decode(canvas.tokens)
    constraint = bound.constraint
    assert constraint.matches_pattern(text)
    value = json.loads(text)
    errors = list(jsonschema.validators.validator_for(schema)(schema).iter_errors(value))
    if constraint.post_checked:  # valid = the schema's verdict, and no member name repeated in an object
        assert (constraint.violation(text) is None) == (not errors and not _repeats_a_name(text))
    else:
        assert not errors, f"{name}: generated {text!r} violates the schema: {errors[0].message}"
