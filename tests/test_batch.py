"""Batched generation: rows share forward passes, each keeps the single-request result, bad rows fail alone."""

from __future__ import annotations

import json

import pytest
import torch

from constrained import Batcher, ConstrainedError, Request, generate, generate_batch, regex
from constrained.denoisers import DiffusionGemmaDenoiser, MaskedDiffusionDenoiser
from constrained.errors import ConstraintUnsatisfiable, DenoiserError, RequestError, SchemaError
from constrained.json_schema import json_schema
from constrained.sampler import BatchStats
from constrained.testing import byte_tokenizer, diffusion_gemma

torch.set_num_threads(1)
#: Byte-level BPE with JSON-flavoured pieces, so that constraints meet multi-byte tokens.
TOKENIZER = byte_tokenizer(300)


@pytest.fixture(scope="module")
def tokenizer():
    return TOKENIZER


@pytest.fixture(scope="module")
def gemma():
    """The tiny random DiffusionGemma: 8-token blocks, a context long enough for every request here."""
    return diffusion_gemma(len(TOKENIZER), canvas_length=8, max_positions=256)


def hashed_denoiser(vocab_size: int, **options) -> MaskedDiffusionDenoiser:
    """A deterministic masked model whose logits at a position depend only on that row's tokens up to it.

    Padding and the other rows cannot reach a row's logits, so a batched row must reproduce its solo run exactly.
    """
    weights = torch.randn(vocab_size, vocab_size, generator=torch.Generator().manual_seed(7))

    def logits_fn(ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        running = torch.cumsum(ids, dim=1) % vocab_size
        return weights[running] + 0.01 * torch.arange(ids.shape[1])[None, :, None]

    return MaskedDiffusionDenoiser(logits_fn, mask_token_id=3, vocab_size=vocab_size, **options)


SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 6}, "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}


def mixed_requests() -> list[Request]:
    """Different constraints (JSON Schema, regexes, none), prompt lengths, budgets and seeds."""
    return [
        Request([2, 40], regex("[a-z]{3,9}"), max_new_tokens=16, seed=1),
        Request([2, 40, 41, 42, 43, 44, 45], json_schema(SCHEMA), max_new_tokens=40, seed=2, json=True),
        Request([2], None, max_new_tokens=12, seed=3),
        Request([2, 50, 51], regex(r"\[[0-9]{1,2}(, [0-9]{1,2}){2,5}\]"), max_new_tokens=24, seed=4,
                options={"max_retries": 2}),
        Request([2, 60, 61, 62], regex("(yes|no)"), max_new_tokens=8, seed=5),
    ]


def solo(request: Request, model, tokenizer, **options):
    return generate_batch([request], model=model, tokenizer=tokenizer, **options)[0]


@pytest.mark.parametrize("max_batch_size", [1, 2, 64])
def test_a_row_gets_its_solo_result_whatever_the_batch_deterministic(tokenizer, max_batch_size):
    denoiser = hashed_denoiser(len(tokenizer), canvas_length=8, steps=4, temperature=1.0)
    requests = mixed_requests()
    alone = [solo(request, denoiser, tokenizer) for request in requests]
    batched = generate_batch(requests, model=denoiser, tokenizer=tokenizer, max_batch_size=max_batch_size)
    reordered = generate_batch(requests[::-1], model=denoiser, tokenizer=tokenizer, max_batch_size=max_batch_size)
    assert batched == alone
    assert reordered[::-1] == alone
    for request, result in zip(requests, alone, strict=True):
        assert not isinstance(result, ConstrainedError), result
        if request.constraint is not None:
            assert request.constraint.accepts(result.text)
    assert json.loads(alone[1].text) == alone[1].value


def test_batch_of_one_is_generate(tokenizer):
    denoiser = hashed_denoiser(len(tokenizer), canvas_length=8, steps=4, temperature=1.0)
    request = mixed_requests()[3]
    expected = generate(request.constraint, request.prompt, model=denoiser, tokenizer=tokenizer,
                        max_new_tokens=request.max_new_tokens, seed=request.seed, max_retries=2)
    assert solo(request, denoiser, tokenizer) == expected


def test_diffusion_gemma_rows_match_their_solo_runs(gemma, tokenizer):
    # Padded caches and per-row positions give each row its own context; the batched matrix products may reorder
    # float sums (last-bit differences), which a random model's sampled tokens are not sensitive to here.
    requests = mixed_requests()
    alone = [solo(request, gemma, tokenizer, steps=6) for request in requests]
    batched = generate_batch(requests, model=gemma, tokenizer=tokenizer, steps=6)
    assert [r.token_ids for r in batched] == [r.token_ids for r in alone]
    for request, result in zip(requests, batched, strict=True):
        if request.constraint is not None:
            assert request.constraint.accepts(result.text)


@pytest.mark.parametrize("window", [64, 6])
def test_diffusion_gemma_batched_logits_equal_solo_logits_within_float_tolerance(window):
    # window 6: the sliding-attention layers keep only the last tokens of each row's context, so the padded cache
    # must line up rows whose kept windows differ in length
    model = diffusion_gemma(len(TOKENIZER), canvas_length=8, max_positions=256, sliding_window=window, layers=3)
    denoiser = DiffusionGemmaDenoiser(model, steps=4)
    prompts = [[2, 40], [2, 40, 41, 42, 43, 44, 45, 46, 47], [2, 60, 61]]
    rows = [denoiser.begin(prompt, 16) for prompt in prompts]
    denoiser.commit(rows[1], list(range(10, 18)))  # one row a block ahead: a longer cache
    blocks = [denoiser.new_block(row, torch.Generator().manual_seed(i)) for i, row in enumerate(rows)]
    for row, block in zip(rows[1:], blocks[1:], strict=True):  # rows 1 and 2 one step in: self-conditioned
        denoiser.predict([row], block[None], [4], None)
    conditioning = [row.self_conditioning for row in rows]
    alone = [denoiser.predict([row], block[None], [3], None)[0] for row, block in zip(rows, blocks, strict=True)]
    for row, before in zip(rows, conditioning, strict=True):
        row.self_conditioning = before
    together = denoiser.predict(rows, torch.stack(blocks), [3, 3, 3], None)
    for solo_logits, batch_logits in zip(alone, together, strict=True):
        torch.testing.assert_close(batch_logits, solo_logits, atol=1e-5, rtol=1e-5)


def test_a_bad_row_fails_alone(tokenizer):
    denoiser = hashed_denoiser(len(tokenizer), canvas_length=8, steps=4, temperature=1.0, max_positions=64)
    good = mixed_requests()[0]
    requests = [
        good,
        Request([2, 40], regex("[a-z]{3}"), max_new_tokens=0),  # no budget
        Request([2, 40], regex("[0-9]{40}"), max_new_tokens=8),  # cannot fit in 8 tokens of at most 2 digits
        Request(list(range(4, 70)), None, max_new_tokens=8),  # prompt longer than the context
        Request([2], None, options={"temperature": 2.0}),  # not a request option
        good,
    ]
    results = generate_batch(requests, model=denoiser, tokenizer=tokenizer)
    assert isinstance(results[1], RequestError) and "max_new_tokens" in str(results[1])
    assert isinstance(results[2], ConstraintUnsatisfiable)
    assert isinstance(results[3], DenoiserError) and "exceeds the context" in str(results[3])
    assert isinstance(results[4], RequestError) and "temperature" in str(results[4])
    assert results[0] == results[5] == solo(good, denoiser, tokenizer)


def test_a_bad_schema_fails_where_the_request_is_made():
    with pytest.raises(SchemaError):
        Request.for_json({"type": "objekt"}, "text")


def test_continuous_batching_lets_waiting_rows_in_as_others_finish(tokenizer):
    # one long request and four short ones through two slots: the short ones go through the second slot while
    # the long one runs, so the batch takes about as many passes as the long request plus nothing like waves
    denoiser = hashed_denoiser(len(tokenizer), canvas_length=8, steps=4)
    long = Request([2, 40], None, max_new_tokens=64, seed=0)
    shorts = [Request([2, 41 + i], regex("[a-z]{2,7}"), max_new_tokens=8, seed=i) for i in range(4)]
    stats = BatchStats()
    results = generate_batch([long, *shorts], model=denoiser, tokenizer=tokenizer, max_batch_size=2, stats=stats)
    passes = [result.forward_passes for result in results]
    assert results == [solo(request, denoiser, tokenizer) for request in [long, *shorts]]
    assert stats.row_steps == sum(passes)
    assert stats.forward_passes == max(passes[0], sum(passes[1:])) < sum(passes)


def test_non_positive_budget_is_a_typed_error(tokenizer):
    denoiser = hashed_denoiser(len(tokenizer), canvas_length=8, steps=4)
    with pytest.raises(RequestError, match="max_new_tokens"):
        generate(regex("a"), [2], model=denoiser, tokenizer=tokenizer, max_new_tokens=0)
    with pytest.raises(RequestError, match="max_batch_size"):
        generate_batch([], model=denoiser, tokenizer=tokenizer, max_batch_size=0)


def test_a_request_submitted_while_others_run_joins_and_gets_its_solo_result(tokenizer):
    denoiser = hashed_denoiser(len(tokenizer), canvas_length=8, steps=4, temperature=1.0)
    first, late = mixed_requests()[1], mixed_requests()[3]
    batcher = Batcher(model=denoiser, tokenizer=tokenizer, max_batch_size=4)
    outcomes, blocks = {}, []
    batcher.submit(first, lambda outcome: outcomes.setdefault("first", outcome))
    for _ in range(3):
        batcher.step()
    batcher.submit(late, lambda outcome: outcomes.setdefault("late", outcome), on_commit=blocks.append)
    while batcher.busy:
        batcher.step()
    assert outcomes["first"] == solo(first, denoiser, tokenizer)
    assert outcomes["late"] == solo(late, denoiser, tokenizer)
    assert tuple(map(tuple, blocks)) == outcomes["late"].blocks
    assert batcher.stats.forward_passes < outcomes["first"].forward_passes + outcomes["late"].forward_passes
