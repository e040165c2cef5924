"""The constrained sampler: jointly feasible acceptance, remasking, budget-wide lattice, commit checks, fallback."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from constrained import Constraint, regex
from constrained.denoisers import DiffusionGemmaDenoiser, MaskedDiffusionDenoiser
from constrained.denoisers.base import Proposal
from constrained.errors import ConstraintUnsatisfiable
from constrained.sampler import ConstrainedSampler
from constrained.testing import byte_tokenizer, diffusion_gemma, masked_lm

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tokenizer():
    return byte_tokenizer(300)


@pytest.fixture(scope="module")
def gemma(tokenizer):
    return diffusion_gemma(len(tokenizer), canvas_length=8)


@pytest.fixture(scope="module")
def bert(tokenizer):
    return masked_lm(len(tokenizer))


def byte_id(char: str) -> int:
    """Id of a one-byte token in :func:`byte_tokenizer` (specials 0-3, then bytes in order)."""
    return 4 + ord(char)


def run(denoiser, constraint, tokenizer, max_new_tokens, seed=0, prompt=(2, 40, 41), **options):
    bound = constraint.bind(tokenizer) if constraint is not None else None
    sampler = ConstrainedSampler(denoiser, bound, torch.Generator().manual_seed(seed), end_token_ids=(1, 0), **options)
    sample = sampler.generate(list(prompt), max_new_tokens)
    return sample, bound.decode(sample.token_ids) if bound is not None else None


def test_jointly_conflicting_acceptances_keep_the_surer_and_remask_the_other(tokenizer):
    # Both positions prefer "a"; each "a" alone is completable ("ab" / "ba") but "aa" is not. Threshold decoding
    # proposes both at once; the surer position 0 keeps its "a", position 1 is remasked and becomes "b".
    a, b = byte_id("a"), byte_id("b")
    rows = {0: {a: 5.0, b: 0.0}, 1: {a: 4.0, b: 3.9}}

    def logits_fn(ids, attention_mask):
        out = torch.zeros(*ids.shape, len(tokenizer))
        for position, row in rows.items():
            for token, value in row.items():
                out[:, 1 + position, token] = value
        return out

    def denoiser():
        return MaskedDiffusionDenoiser(logits_fn, mask_token_id=3, vocab_size=len(tokenizer), canvas_length=2,
                                       steps=2, threshold=0.3)

    drafts = []
    sample, text = run(denoiser(), regex("ab|ba"), tokenizer, 2, prompt=(2,), on_draft=lambda s, d: drafts.append(d))
    assert text == "ab" and sample.forward_passes == 2
    assert drafts[0].tolist() == [a, a]  # after step 1 position 1 was open again, its argmax still "a"
    unconstrained, _ = run(denoiser(), None, tokenizer, 2, prompt=(2,))
    assert list(unconstrained.blocks[0]) == [a, a]


class ScriptedUniformDenoiser:
    """A uniform-noise denoiser with fixed logits that accepts nothing during a round: its block is its draft,
    the argmax of the masked logits, so what a clash reopens is all that decides the retry."""

    noise = "uniform"
    steps = 1

    def __init__(self, rows: dict[int, dict[int, float]], vocab_size: int) -> None:
        self.rows, self.vocab_size, self.canvas_length = rows, vocab_size, len(rows)

    def begin(self, prompt_ids, max_new_tokens):
        return None

    def new_block(self, context, generator, length=None):
        return torch.zeros(length or self.canvas_length, dtype=torch.long)

    def predict(self, contexts, tokens, remaining, allowed):
        logits = torch.full((*tokens.shape, self.vocab_size), -10.0)
        for position, row in self.rows.items():
            for token, value in row.items():
                logits[:, position, token] = value
        return logits.masked_fill_(~allowed, float("-inf"))

    def propose(self, context, logits, tokens, generator):
        return Proposal(tokens=logits.argmax(-1), order=torch.zeros(0, dtype=torch.long), confidence=logits.amax(-1))

    def renoise(self, tokens, keep, allowed, generator):
        return tokens

    def draft(self, logits, tokens):
        return logits.argmax(-1)

    def converged(self, context, logits, draft, tokens):
        return True

    def commit(self, context, block):
        pass


def test_a_clashing_draft_keeps_its_text_before_the_first_clash_and_redoes_the_rest(tokenizer):
    # The draft "aad" reads left to right as "a" then a clash ("aa" starts nothing in abc|bad). Its surest token,
    # the final "d", came with a layout the "a" contradicts; the retry keeps only "a" and so must end "abc".
    # Keeping every token that fits ("d", then "a" at position 1) would have forced "bad".
    a, b, c, d = (byte_id(char) for char in "abcd")
    rows = {0: {a: 5.0, b: 0.0}, 1: {a: 4.0, b: 3.0}, 2: {d: 6.0, c: 0.0}}
    sample, text = run(ScriptedUniformDenoiser(rows, len(tokenizer)), regex("abc|bad"), tokenizer, 3, prompt=(2,))
    assert text == "abc" and sample.forward_passes == 2


@pytest.mark.parametrize("kind", ["gemma", "bert"])
@pytest.mark.parametrize("seed", range(4))
def test_output_longer_than_one_canvas_is_accepted(kind, seed, tokenizer, gemma, bert):
    constraint = regex(r"\[[0-9]{1,3}(, [0-9]{1,3}){5,7}\]")
    if kind == "gemma":
        denoiser = DiffusionGemmaDenoiser(gemma, steps=6)
    else:
        denoiser = MaskedDiffusionDenoiser.from_masked_lm(bert, tokenizer, canvas_length=8, steps=4, temperature=1.0)
    sample, text = run(denoiser, constraint, tokenizer, 48, seed)
    assert constraint.accepts(text)
    assert len(sample.blocks) >= 3 and len(sample.token_ids) > 8


def test_budget_is_a_hard_limit_on_text_tokens(tokenizer, bert):
    denoiser = MaskedDiffusionDenoiser.from_masked_lm(bert, tokenizer, canvas_length=8, steps=4)
    sample, text = run(denoiser, regex("[a-z]+"), tokenizer, 10)
    assert 1 <= len(sample.token_ids) <= 10 and regex("[a-z]+").accepts(text)
    ends = [t for block in sample.blocks for t in block][len(sample.token_ids):]
    assert ends and all(t in (0, 1) for t in ends)  # text, then only end tokens


def test_constraint_that_cannot_fit_the_budget(tokenizer, gemma):
    with pytest.raises(ConstraintUnsatisfiable, match="max_new_tokens=8") as failure:
        run(DiffusionGemmaDenoiser(gemma, steps=2), regex("a{12}"), tokenizer, 8)
    assert failure.value.partial == ""


def test_failing_commit_check_raises_with_the_partial_text(tokenizer, gemma):
    never = Constraint("[a-c]{3}", check=lambda text: "rejected at commit time")
    with pytest.raises(ConstraintUnsatisfiable, match="rejected at commit time") as failure:
        run(DiffusionGemmaDenoiser(gemma, steps=3), never, tokenizer, 8)
    assert regex("[a-c]{3}").accepts(failure.value.partial)


def test_no_fallback_draws_means_no_drawing_passes(tokenizer, gemma, monkeypatch):
    """``fallback_draws=0`` leaves the MAP block alone: no lattice pass for draws (each costs one over the whole
    automaton and canvas), and the failure says no other draw was tried."""
    from constrained.lattice import Canvas

    def no_draws(*args, **kwargs):
        raise AssertionError("sample_decodes called with fallback_draws=0")

    monkeypatch.setattr(Canvas, "sample_decodes", no_draws)
    never = Constraint("[a-c]{3}", check=lambda text: "rejected at commit time")
    with pytest.raises(ConstraintUnsatisfiable, match="and 0 other admissible draws"):
        run(DiffusionGemmaDenoiser(gemma, steps=3), never, tokenizer, 8, fallback_draws=0)


def test_commit_check_is_never_bypassed(tokenizer, bert):
    # the regex cannot count letters; the check can. Every run either satisfies it or fails loudly.
    counted = Constraint("[ab]{6}", check=lambda text: None if text.count("a") == 3 else "needs three a")
    outcomes = []
    for seed in range(8):
        denoiser = MaskedDiffusionDenoiser.from_masked_lm(bert, tokenizer, canvas_length=8, steps=4, temperature=2.0)
        try:
            outcomes.append(run(denoiser, counted, tokenizer, 8, seed)[1])
        except ConstraintUnsatisfiable as failure:
            assert failure.partial is not None and counted.violation(failure.partial)
    assert outcomes and all(counted.accepts(text) for text in outcomes)


PATTERNS = [r"(ab|ba)+", r"[0-9]{2}-[0-9]{2}", r"(true|false|null)", r"\{\"k\": [0-9]+\}", r"x(yz)*w"]


@settings(max_examples=12, deadline=None)
@given(pattern=st.sampled_from(PATTERNS), seed=st.integers(0, 2**31), threshold=st.sampled_from([None, 0.2]))
def test_every_completed_generation_is_accepted(pattern, seed, threshold, tokenizer, bert):
    constraint = regex(pattern)
    denoiser = MaskedDiffusionDenoiser.from_masked_lm(
        bert, tokenizer, canvas_length=8, steps=3, threshold=threshold, temperature=1.0
    )
    _, text = run(denoiser, constraint, tokenizer, 16, seed)
    assert constraint.accepts(text)


@settings(max_examples=6, deadline=None)
@given(pattern=st.sampled_from(PATTERNS), seed=st.integers(0, 2**31))
def test_every_completed_uniform_noise_generation_is_accepted(pattern, seed, tokenizer, gemma):
    constraint = regex(pattern)
    _, text = run(DiffusionGemmaDenoiser(gemma, steps=4), constraint, tokenizer, 16, seed)
    assert constraint.accepts(text)
