"""The denoiser adapters: DiffusionGemma re-enacts transformers' generate exactly; masked models follow their rules."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers.models.diffusion_gemma.generation_diffusion_gemma import EntropyBoundSamplerConfig

from constrained.denoisers import DiffusionGemmaDenoiser, MaskedDiffusionDenoiser, as_denoiser
from constrained.denoisers.base import sample_rows, uniform_from_allowed
from constrained.errors import DenoiserError
from constrained.sampler import ConstrainedSampler
from constrained.testing import byte_tokenizer, diffusion_gemma, masked_lm

torch.set_num_threads(1)
PAD, EOS = 0, 1


@pytest.fixture(scope="module")
def tokenizer():
    return byte_tokenizer(300)


@pytest.fixture(scope="module")
def gemma(tokenizer):
    return diffusion_gemma(len(tokenizer), canvas_length=8)


def ours(model, prompt, max_new_tokens, seed, **options):
    """Our unconstrained path, padded after the first end token as transformers pads it."""
    sampler = ConstrainedSampler(
        DiffusionGemmaDenoiser(model, **options), None, torch.Generator().manual_seed(seed), end_token_ids=(EOS,)
    )
    sample = sampler.generate(prompt, max_new_tokens)
    tokens = [t for block in sample.blocks for t in block]
    if EOS in tokens:
        first = tokens.index(EOS)
        tokens = tokens[: first + 1] + [PAD] * (len(tokens) - first - 1)
    return tokens, sample.forward_passes


def theirs(model, prompt, max_new_tokens, seed, **options):
    torch.manual_seed(seed)
    out = model.generate(
        torch.tensor([prompt]), max_new_tokens=max_new_tokens, eos_token_id=EOS, pad_token_id=PAD, **options
    )
    tokens = out.sequences[0, len(prompt):].tolist()
    passes = round(sum(t != PAD for t in tokens) / float(out.tokens_per_forward[0]))
    return tokens, passes


def test_unconstrained_diffusion_gemma_is_transformers_generate(gemma):
    # two canvases under the default 48-step schedule: every random draw and float op lines up
    prompt = [2, 50, 60, 70]
    assert ours(gemma, prompt, 12, 0) == theirs(gemma, prompt, 12, 0)


@pytest.mark.parametrize("seed", [1, 2])
def test_same_tokens_as_transformers_with_other_settings(gemma, seed):
    options = dict(entropy_bound=0.5, t_min=0.2, t_max=1.5)
    mine = ours(gemma, [2, 9], 16, seed, steps=10, **options)
    sampler_config = EntropyBoundSamplerConfig(entropy_bound=0.5)
    assert mine == theirs(gemma, [2, 9], 16, seed, max_denoising_steps=10, sampler_config=sampler_config, t_min=0.2,
                          t_max=1.5)


def test_same_stop_at_end_token_as_transformers(tokenizer):
    model = diffusion_gemma(len(tokenizer), canvas_length=8, seed=3)
    with torch.no_grad():
        model.lm_head.weight[EOS] *= 40  # the end token now wins many positions
    mine = ours(model, [2, 5], 24, 0, steps=6)
    assert mine == theirs(model, [2, 5], 24, 0, max_denoising_steps=6)
    assert len(mine[0]) == 8 and EOS in mine[0]  # no second canvas after the end token


def test_same_early_stop_as_transformers(gemma):
    # a criterion that holds at once: each of the three canvases ends after one step, in both implementations
    mine = ours(gemma, [2, 5], 24, 4, steps=6, stability_threshold=0, confidence_threshold=1e3)
    assert mine == theirs(gemma, [2, 5], 24, 4, max_denoising_steps=6, stability_threshold=0, confidence_threshold=1e3)
    assert mine[1] == 3


def test_gemma_settings_come_from_generation_config(gemma):
    denoiser = DiffusionGemmaDenoiser(gemma)
    assert (denoiser.steps, denoiser.entropy_bound, denoiser.t_min, denoiser.t_max) == (48, 0.1, 0.4, 0.8)
    assert DiffusionGemmaDenoiser(gemma, steps=7).steps == 7
    assert isinstance(as_denoiser(gemma, steps=5), DiffusionGemmaDenoiser)


def test_gemma_prompt_longer_than_context(tokenizer):
    model = diffusion_gemma(len(tokenizer), canvas_length=8, max_positions=32)
    denoiser = DiffusionGemmaDenoiser(model)
    with pytest.raises(DenoiserError, match="exceeds the model's context"):
        denoiser.begin(list(range(4, 30)), 8)
    with pytest.raises(DenoiserError, match="non-empty prompt"):
        denoiser.begin([], 8)


def test_gemma_non_finite_logits(tokenizer):
    model = diffusion_gemma(len(tokenizer), canvas_length=8, seed=1)
    with torch.no_grad():
        model.lm_head.weight[7, 0] = float("nan")
    sampler = ConstrainedSampler(DiffusionGemmaDenoiser(model, steps=2), None, torch.Generator(), end_token_ids=(EOS,))
    with pytest.raises(DenoiserError, match="non-finite logits"):
        sampler.generate([2, 3], 8)


def scripted(rows: list[list[float]], vocab: int = 6, **options) -> MaskedDiffusionDenoiser:
    """A masked-diffusion hook whose logits for sequence index ``j`` are ``rows[j]`` (padded with -5)."""

    def logits_fn(ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        out = torch.full((*ids.shape, vocab), -5.0)
        for j, row in enumerate(rows[: ids.shape[1]]):
            out[:, j, : len(row)] = torch.tensor(row)
        return out

    return MaskedDiffusionDenoiser(logits_fn, mask_token_id=vocab - 1, vocab_size=vocab, **options)


def test_dream_shifted_logits_read_one_position_earlier():
    # sequence index j "predicts" token j: unshifted, canvas position k (index 2 + k) gets token 2 + k;
    # shifted, the logits at index 2 + k predict index 3 + k, so position k reads the row before: token 1 + k
    rows = [[10.0 if t == j else 0.0 for t in range(5)] for j in range(5)]
    for shifted, expected in ((False, [2, 3]), (True, [1, 2])):
        denoiser = scripted(rows, canvas_length=2, steps=2, shifted=shifted)
        sample = ConstrainedSampler(denoiser, None, torch.Generator(), end_token_ids=(9,)).generate([0, 0], 2)
        assert list(sample.blocks[0]) == expected


def test_shifted_model_needs_a_context_token():
    with pytest.raises(DenoiserError, match="shifted"):
        scripted([[0.0]], shifted=True).begin([], 4)


def test_low_confidence_remasking_unmasks_evenly():
    # 6 positions in 3 steps: two per step, the most confident first
    rows = [[0.0]] * 2 + [[float(k)] + [0.0] * 3 for k in (1, 6, 2, 5, 3, 4)]
    denoiser = scripted(rows, canvas_length=6, steps=3)
    row = denoiser.begin([4, 4], 6)
    tokens = denoiser.new_block(row, torch.Generator())
    logits = denoiser.predict([row], tokens.unsqueeze(0), [3], None)[0]
    proposal = denoiser.propose(row, logits, tokens, torch.Generator())
    assert proposal.order.tolist() == [1, 3]


def test_threshold_decoding_takes_every_confident_position():
    rows = [[0.0]] * 2 + [[9.0, 0, 0, 0], [9.0, 0, 0, 0], [0.5, 0, 0, 0], [9.0, 0, 0, 0]]
    denoiser = scripted(rows, canvas_length=4, steps=4, threshold=0.9)
    row = denoiser.begin([4, 4], 4)
    tokens = denoiser.new_block(row, torch.Generator())
    proposal = denoiser.propose(row, denoiser.predict([row], tokens.unsqueeze(0), [4], None)[0], tokens,
                                torch.Generator())
    assert sorted(proposal.order.tolist()) == [0, 1, 3]


def test_masked_lm_adapter(tokenizer):
    bert = masked_lm(len(tokenizer))
    denoiser = as_denoiser(bert, tokenizer, canvas_length=8, steps=4)
    assert isinstance(denoiser, MaskedDiffusionDenoiser) and denoiser.mask_token_id == tokenizer.mask_token_id
    sample = ConstrainedSampler(denoiser, None, torch.Generator(), end_token_ids=(EOS,)).generate([2, 40], 16)
    assert all(tokenizer.mask_token_id not in block for block in sample.blocks)
    assert sample.forward_passes <= 2 * 4


def test_masked_model_without_mask_token(tokenizer):
    bert = masked_lm(len(tokenizer))
    with pytest.raises(DenoiserError, match="no mask token"):
        MaskedDiffusionDenoiser.from_masked_lm(bert, tokenizer=None)


def test_masked_model_prompt_longer_than_context(tokenizer):
    denoiser = MaskedDiffusionDenoiser.from_masked_lm(masked_lm(len(tokenizer), max_positions=24), tokenizer)
    with pytest.raises(DenoiserError, match="exceeds the context"):
        denoiser.begin(list(range(4, 20)), 16)


def test_masked_model_non_finite_logits():
    denoiser = scripted([[float("inf")]] * 4, canvas_length=2)
    sampler = ConstrainedSampler(denoiser, None, torch.Generator(), end_token_ids=(9,))
    with pytest.raises(DenoiserError, match="non-finite"):
        sampler.generate([0, 0], 2)


def test_unknown_model_kind():
    with pytest.raises(DenoiserError, match="neither"):
        as_denoiser(torch.nn.Linear(2, 2))


def test_dream_and_llada_are_recognised_by_model_type():
    class RemoteCode(torch.nn.Module):
        def __init__(self, model_type):
            super().__init__()
            self.config = SimpleNamespace(model_type=model_type, vocab_size=6, mask_token_id=5,
                                          max_position_embeddings=64)

        def forward(self, input_ids, attention_mask=None):
            return SimpleNamespace(logits=torch.zeros(*input_ids.shape, 6))

    assert as_denoiser(RemoteCode("Dream")).shifted is True
    assert as_denoiser(RemoteCode("llada")).shifted is False


def test_same_tokens_as_transformers_on_the_built_in_model():
    # a trained model: confident predictions, so the stopping criterion (not the step limit) ends the canvas
    from constrained.default_model import load_default

    try:
        model, tok = load_default()
    except DenoiserError as missing:
        pytest.skip(f"built-in checkpoint not available: {missing}")
    prompt = [tok.bos_token_id, *tok.encode('Text: Ana is 31.\nJSON:', add_special_tokens=False)]
    eos, pad = tok.eos_token_id, tok.pad_token_id
    sampler = ConstrainedSampler(DiffusionGemmaDenoiser(model), None, torch.Generator().manual_seed(0),
                                 end_token_ids=(eos,))
    sample = sampler.generate(prompt, model.config.canvas_length)
    torch.manual_seed(0)
    out = model.generate(torch.tensor([prompt]), max_new_tokens=model.config.canvas_length)
    expected = out.sequences[0, len(prompt):].tolist()
    mine = list(sample.blocks[0])
    if eos in mine:  # transformers pads after the first end token
        first = mine.index(eos)
        mine = mine[: first + 1] + [pad] * (len(mine) - first - 1)
    assert mine == expected
    assert sample.forward_passes == round(sum(t != pad for t in expected) / float(out.tokens_per_forward[0]))


# ---- the draws of a constrained step


@settings(max_examples=50, deadline=None)
@given(rows=st.lists(st.lists(st.sampled_from([0.0, 0.0, 1e-30, 1e-3, 0.5, 1.0, 7.0]), min_size=1, max_size=40)
                     .filter(lambda row: any(row)), min_size=1, max_size=8), seed=st.integers(0, 2**31))
def test_sample_rows_never_draws_an_entry_of_zero_weight(rows, seed):
    width = max(map(len, rows))
    weights = torch.tensor([row + [0.0] * (width - len(row)) for row in rows])
    drawn = sample_rows(weights, torch.Generator().manual_seed(seed))
    assert drawn.shape == (len(rows),)
    assert all(weights[i, int(token)] > 0 for i, token in enumerate(drawn))


def test_sample_rows_draws_in_proportion_to_the_weights():
    weights = torch.tensor([0.0, 1.0, 0.0, 2.0, 5.0, 0.0, 2.0])
    drawn = sample_rows(weights.expand(40_000, -1), torch.Generator().manual_seed(0))
    shares = torch.bincount(drawn, minlength=len(weights)).double() / len(drawn)
    assert torch.allclose(shares, (weights / weights.sum()).double(), atol=0.01), shares


def test_uniform_from_allowed_is_uniform_over_the_allowed_tokens():
    allowed = torch.tensor([False, True, False, True, True, False]).expand(30_000, -1)
    drawn = uniform_from_allowed(allowed, torch.Generator().manual_seed(1))
    shares = torch.bincount(drawn, minlength=6).double() / len(drawn)
    assert torch.allclose(shares, allowed[0].double() / 3, atol=0.01), shares


def test_sample_rows_refuses_a_row_without_weight():
    with pytest.raises(DenoiserError, match="all zero"):
        sample_rows(torch.tensor([[0.0, 1.0], [0.0, 0.0]]), torch.Generator())
