"""The denoising objective, shared by both trainers: the streaming one here and the bundle one on a GPU machine.

Objective (what DiffusionGemma's ``EntropyBoundSampler`` expects at sampling time): the sampler starts from a canvas
of uniformly random tokens, keeps the tokens it accepts and re-draws the others uniformly. So training corrupts a
clean canvas by replacing each token, with probability ``t ~ U(0, 1)`` per example, by a uniformly random vocabulary
token, and asks for the clean canvas back (cross-entropy over every canvas position, since the model is not told
which ones were corrupted). Self-conditioning: for half of the batches, a first pass without gradients produces
logits that are fed back as ``self_conditioning_logits``, as the sampler does with the previous step's logits.

This module imports only torch, transformers and the tokenizer module, so that :mod:`model.train_bundle` runs on
a machine that has nothing of this project installed (no compiled extension, no corpus dependencies).
"""

from __future__ import annotations

import copy
import inspect
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import DiffusionGemmaForBlockDiffusion, PreTrainedTokenizerFast
from transformers.models.diffusion_gemma.generation_diffusion_gemma import (
    DiffusionGemmaGenerationConfig,
    EntropyBoundSamplerConfig,
)

from model import tokenizer as tokenizer_lib

# The keyword that hands the encoder's KV cache to the decoder: ``cache`` in the transformers release this project
# pins, ``past_key_values`` in the earlier 5.x releases (a GPU machine's image may hold one).
_CACHE_KEYWORD = "cache" if "cache" in inspect.signature(DiffusionGemmaForBlockDiffusion.forward).parameters \
    else "past_key_values"


@dataclass
class Example:
    """One training canvas and the context it is denoised against.

    ``values`` flags the canvas positions that spell a JSON value (empty for the other tasks): the tokens that the
    text, not the schema, decides, which a value weight above 1 weighs up in the loss.
    """

    kind: str
    context: list[int]
    canvas: list[int]
    values: list[bool] = field(default_factory=list)


def collate(batch: list[Example], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-pad contexts (RoPE is relative, so left padding leaves the context-to-canvas geometry intact)."""
    width = max(len(e.context) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, e in enumerate(batch):
        ids[row, width - len(e.context) :] = torch.tensor(e.context)
        mask[row, width - len(e.context) :] = 1
    canvas = torch.tensor([e.canvas for e in batch], dtype=torch.long)
    return ids, mask, canvas


def value_flags(values: list[bool], canvas_length: int) -> torch.Tensor:
    """Per-token value flags as a ``[canvas_length]`` boolean row (positions past the answer are no values)."""
    return torch.tensor(values + [False] * (canvas_length - len(values)), dtype=torch.bool)


def position_weights(batch: list[Example], canvas_length: int, value_weight: float) -> torch.Tensor:
    """``[batch, canvas_length]`` loss weights: ``value_weight`` at value positions, 1 elsewhere."""
    weights = torch.ones(len(batch), canvas_length)
    for row, e in enumerate(batch):
        weights[row, value_flags(e.values, canvas_length)] = value_weight
    return weights


def corrupt(
    canvas: torch.Tensor,
    vocab_size: int,
    generator: torch.Generator,
    only: torch.Tensor | None = None,
) -> torch.Tensor:
    """Replace each token by a uniform random one with probability ``t``, ``t ~ U(0, 1)`` drawn per example.

    ``only`` (``[batch, canvas]`` booleans) confines the noise to the flagged positions; its all-``True`` rows
    (or ``None``) corrupt the whole canvas. The noise is drawn on ``generator``'s device.
    """
    device = generator.device
    t = torch.rand(canvas.shape[0], 1, generator=generator, device=device)
    hit = torch.rand(canvas.shape, generator=generator, device=device) < t
    if only is not None:
        hit &= only.to(device)
    noise = torch.randint(0, vocab_size, canvas.shape, generator=generator, device=device)
    return torch.where(hit, noise, canvas.to(device))


def value_noise_rows(
    batch: list[Example], canvas_length: int, share: float, generator: torch.Generator
) -> torch.Tensor:
    """Where :func:`corrupt` may put noise: for a ``share`` of the JSON examples (drawn per example) only their value
    positions, elsewhere everywhere.

    Those examples are the state the constrained sampler reaches once keys and punctuation, the low-entropy
    positions it accepts first, have settled: structure clean, values still noise. The model must then read
    the values from the text, the skill extraction is scored on.
    """
    rows = torch.ones(len(batch), canvas_length, dtype=torch.bool)
    drawn = torch.rand(len(batch), generator=generator) < share
    for row, e in enumerate(batch):
        if drawn[row] and any(e.values):
            rows[row] = value_flags(e.values, canvas_length)
    return rows


def denoising_loss(
    model: DiffusionGemmaForBlockDiffusion,
    context: torch.Tensor,
    context_mask: torch.Tensor,
    canvas: torch.Tensor,
    noisy: torch.Tensor,
    self_condition: bool,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-example cross-entropy of the clean canvas given the noisy one (shape ``[batch]``), averaged over the
    canvas with ``weights`` (``[batch, canvas]``, uniform if ``None``). The loss itself is computed in float32,
    also under autocast."""
    encoded = model.model.encoder(input_ids=context, attention_mask=context_mask)
    cache = getattr(encoded, _CACHE_KEYWORD)
    decoder_mask = torch.cat([context_mask, torch.ones_like(canvas)], dim=1)
    sc_logits = None
    if self_condition:
        with torch.no_grad():
            sc_logits = model(decoder_input_ids=noisy, decoder_attention_mask=decoder_mask,
                              **{_CACHE_KEYWORD: cache}).logits
    logits = model(
        decoder_input_ids=noisy,
        decoder_attention_mask=decoder_mask,
        self_conditioning_logits=sc_logits,
        **{_CACHE_KEYWORD: cache},
    ).logits
    loss = F.cross_entropy(logits.float().transpose(1, 2), canvas, reduction="none")
    if weights is None:
        return loss.mean(dim=1)
    return (loss * weights).sum(dim=1) / weights.sum(dim=1)


def learning_rate(step: int, progress: float, peak: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to a tenth of the peak as ``progress`` goes 0 -> 1."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def generation_config(tok: PreTrainedTokenizerFast, canvas_length: int) -> DiffusionGemmaGenerationConfig:
    """Defaults for transformers' own ``generate``: two canvases, 32 steps, EOS/pad ids of this tokenizer.

    The sampling temperature runs from 0.6 down to 0.3 (transformers' defaults: 0.8 to 0.4). Too hot, a small
    model samples wrong values it would not pick by argmax and the sampler keeps them; too cold, it settles on
    its first guess at the answer's layout and cannot move a value that landed at the wrong positions (the sweep
    is in ``docs/experiments.md``, "Built-in model quality, warmer sampling").
    """
    return DiffusionGemmaGenerationConfig(
        max_new_tokens=2 * canvas_length,
        max_denoising_steps=32,
        sampler_config=EntropyBoundSamplerConfig(entropy_bound=0.1),
        t_min=0.3,
        t_max=0.6,
        stability_threshold=1,
        confidence_threshold=0.005,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )


def save_checkpoint(
    model: DiffusionGemmaForBlockDiffusion,
    tok: PreTrainedTokenizerFast,
    out: Path,
    stats: dict,
    dtype: torch.dtype | None = None,
) -> None:
    """Config, weights, generation config, tokenizer and the training record, into ``out``.

    ``dtype`` (e.g. ``torch.float16``) stores the weights in that precision, from a copy, so the model being
    trained keeps its own; ``config.json`` then records it, and :func:`constrained.default_model.load` widens
    them back to float32.
    """
    out.mkdir(parents=True, exist_ok=True)
    stored = model if dtype is None else copy.deepcopy(model).to(dtype)
    stored.save_pretrained(str(out))
    tokenizer_lib.save(tok, out)
    (out / "training.json").write_text(json.dumps(stats, indent=2) + "\n")
