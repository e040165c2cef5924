"""Public generation API on MaskBench schemas with tiny random-init models: every completed output validates."""

from __future__ import annotations

import json
from functools import cache, lru_cache

import jsonschema
import pytest
import torch

from benchmarks.generation import MASKBENCH, load_schemas
from constrained import regex
from constrained.errors import ConstraintUnsatisfiable, DenoiserError
from constrained.generation import generate, generate_json
from constrained.json_schema import json_schema
from constrained.testing import byte_tokenizer, diffusion_gemma, masked_lm

torch.set_num_threads(1)

# Github_easy schemas that compile, with a valid instance of at most 60 characters (the random models need
# budget to wander); o17460 (multipleOf) and o13671 (oneOf) also exercise the commit-time check.
SCHEMAS = [
    "o12503", "o15726", "o17460", "o17663", "o10059", "o13671", "o17424", "o17692", "o10008", "o12182",
    "o16365", "o17437", "o20376", "o19044", "o12086", "o17546", "o10065", "o10468", "o13140", "o20457",
]
QUICK = SCHEMAS[:5]


@lru_cache(maxsize=1)
def maskbench_schemas() -> dict[str, dict]:
    return load_schemas(SCHEMAS) if MASKBENCH.is_dir() else {}


@cache
def compiled(name: str):
    return json_schema(maskbench_schemas()[name])


@lru_cache(maxsize=1)
def tokenizer():
    return byte_tokenizer(320)


@cache
def model(kind: str):
    if kind == "gemma":
        return diffusion_gemma(len(tokenizer()), canvas_length=16)
    return masked_lm(len(tokenizer()))


OPTIONS = {"gemma": {"steps": 4}, "bert": {"steps": 4, "canvas_length": 16, "temperature": 1.0}}


def check_schema_generation(kind: str, name: str, seed: int) -> None:
    schema = maskbench_schemas()[name]
    try:
        result = generate_json(
            schema, "fill in", model=model(kind), tokenizer=tokenizer(), max_new_tokens=64, seed=seed, **OPTIONS[kind]
        )
    except ConstraintUnsatisfiable as failure:  # allowed only when the commit-time check could not be met
        assert compiled(name).post_checked and failure.partial is not None
        return
    validator = jsonschema.validators.validator_for(schema)(schema, format_checker=jsonschema.FormatChecker())
    assert not list(validator.iter_errors(result.value)), result.text
    assert result.value == json.loads(result.text) and compiled(name).accepts(result.text)
    assert len(result.token_ids) <= 64 and result.forward_passes > 0


needs_maskbench = pytest.mark.skipif(not MASKBENCH.is_dir(), reason="MaskBench data is not checked out")


@needs_maskbench
@pytest.mark.parametrize("kind", ["gemma", "bert"])
@pytest.mark.parametrize("name", QUICK)
def test_maskbench_generations_validate(kind, name):
    for seed in range(10 if kind == "bert" else 3):
        check_schema_generation(kind, name, seed)


@pytest.mark.slow
@needs_maskbench
@pytest.mark.parametrize("kind", ["gemma", "bert"])
@pytest.mark.parametrize("name", SCHEMAS)
def test_maskbench_sweep_200_seeds(kind, name):
    for seed in range(200):
        check_schema_generation(kind, name, seed)


def test_result_fields_and_streaming():
    events: list[tuple] = []

    class Recorder:
        def put(self, value):
            events.append(("put", value.tolist()))

        def put_draft(self, value):
            events.append(("draft", value.shape))

        def end(self):
            events.append(("end",))

    drafts: list[tuple[int, str]] = []
    result = generate(
        regex("[a-z]{20,24}"), "spell", model=model("gemma"), tokenizer=tokenizer(), max_new_tokens=32, steps=3,
        seed=1, callback=lambda step, text: drafts.append((step, text)), streamer=Recorder(),
    )
    assert 20 <= len(result.text) <= 24 and result.text.isalpha()
    assert result.tokens_per_forward == pytest.approx(len(result.token_ids) / result.forward_passes)
    assert [step for step, _ in drafts] == list(range(1, result.forward_passes + 1))
    assert drafts[-1][1] == result.text
    kinds = [event[0] for event in events]
    assert kinds[0] == "put" and kinds[-1] == "end" and kinds.count("draft") == result.forward_passes
    assert events[0][1] == [[tokenizer().bos_token_id, *tokenizer().encode("spell", add_special_tokens=False)]]
    committed = [t for event in events[1:-1] if event[0] == "put" for t in event[1][0]]
    assert committed == result.token_ids


def test_unconstrained_generate_is_the_models_own(tokenizer_=None):
    gemma = model("gemma")
    result = generate(None, "hello", model=gemma, tokenizer=tokenizer(), max_new_tokens=16, steps=5, seed=3)
    prompt = torch.tensor([[tokenizer().bos_token_id, *tokenizer().encode("hello", add_special_tokens=False)]])
    torch.manual_seed(3)
    expected = gemma.generate(prompt, max_new_tokens=16, max_denoising_steps=5).sequences[0, prompt.shape[1]:]
    assert [t for block in result.blocks for t in block] == expected.tolist()


def test_prompt_longer_than_the_context():
    small = diffusion_gemma(len(tokenizer()), canvas_length=8, max_positions=40)
    with pytest.raises(DenoiserError, match="context"):
        generate(regex("[a-z]+"), "x" * 40, model=small, tokenizer=tokenizer(), max_new_tokens=8)


def test_schema_that_cannot_fit_max_new_tokens():
    schema = {"type": "object", "properties": {"k": {"type": "string", "minLength": 300}}, "required": ["k"]}
    with pytest.raises(ConstraintUnsatisfiable, match="max_new_tokens"):
        generate_json(schema, "x", model=model("bert"), tokenizer=tokenizer(), max_new_tokens=16, **OPTIONS["bert"])


def test_built_in_model_when_its_checkpoint_is_present():
    from constrained.default_model import load_default

    try:
        load_default()
    except DenoiserError as missing:
        pytest.skip(f"built-in checkpoint not available: {missing}")
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}}, "required": ["city"]}
    result = generate_json(schema, "I live in Oslo.", max_new_tokens=32, steps=8, seed=0)
    jsonschema.validate(result.value, schema)
