"""DiffusionGemma (transformers' ``DiffusionGemmaForBlockDiffusion``) as a :class:`~.base.Denoiser`.

This adapter re-enacts the inner loop of transformers' own ``DiffusionGemmaGenerationMixin.generate`` one step
at a time so that the sampler can put a constraint between the model's logits and its choices, and so that
without a constraint the outcome is token for token that ``generate``'s:

* the prompt is encoded once into a ``DynamicCache``; every committed block is encoded after it, at the
  positions it occupied while denoised;
* a block starts from uniformly random tokens (``torch.randint`` over the vocabulary);
* each step runs the decoder on the block with the previous step's processed logits as self-conditioning,
  divides by the linear temperature schedule (transformers' ``LinearTemperatureScheduleLogitsProcessor``),
  samples every position with ``torch.multinomial``, accepts the lowest-entropy positions whose summed entropy
  minus the largest stays within the entropy bound, and renoises the rest with fresh random tokens;
* the block stops when transformers' ``StableAndConfidentStoppingCriteria`` fires or the steps run out, and its
  output is the argmax of the last processed logits.

The random draws happen in the same order and shapes as in ``generate`` but on an explicit ``torch.Generator``;
seeded like the global generator, it yields the same stream.

Batches: each row keeps its own cache (its prompt and blocks, encoded when it begins or commits). A batched
decoder pass reads one cache built from the rows': each layer's keys and values left-padded to the longest row
and stacked, with an attention mask that hides the padding and per-row position ids, so every row attends to
exactly its own context at its own positions. Rows whose block starts this step get no self-conditioning (a
zeroed signal, as alone). The padded cache is rebuilt only when a row's context changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache
from transformers.models.diffusion_gemma.generation_diffusion_gemma import (
    DiffusionGemmaGenerationConfig,
    EntropyBoundSamplerConfig,
    LinearTemperatureScheduleLogitsProcessor,
    StableAndConfidentStoppingCriteria,
)

from ..errors import DenoiserError
from .base import Proposal, check_finite, mask_logits, uniform_from_allowed


def _setting(explicit, model_config, name: str, default):
    """Explicit argument, else the model's generation config, else transformers' global default."""
    if explicit is not None:
        return explicit
    value = getattr(model_config, name, None) if model_config is not None else None
    return default if value is None else value


@dataclass(eq=False)
class GemmaRow:
    """One row's context: its KV cache (prompt and committed blocks) and its block's per-step state."""

    cache: DynamicCache
    stopper: StableAndConfidentStoppingCriteria
    length: int = 0  # tokens in the cache
    self_conditioning: torch.Tensor | None = field(default=None, repr=False)  # [1, L, V], the last processed logits


class DiffusionGemmaDenoiser:
    """Drive a ``DiffusionGemmaForBlockDiffusion`` step by step with its own sampler semantics."""

    noise = "uniform"

    def __init__(
        self,
        model,
        *,
        steps: int | None = None,
        entropy_bound: float | None = None,
        t_min: float | None = None,
        t_max: float | None = None,
        stability_threshold: int | None = None,
        confidence_threshold: float | None = None,
    ) -> None:
        defaults = DiffusionGemmaGenerationConfig._get_default_generation_params()
        model_config = getattr(model, "generation_config", None)
        self.model = model.eval()
        self.canvas_length = int(model.config.canvas_length)
        self.vocab_size = int(model.config.text_config.vocab_size)
        self.max_positions = int(model.config.text_config.max_position_embeddings)
        self.steps = int(_setting(steps, model_config, "max_denoising_steps", defaults["max_denoising_steps"]))
        sampler_config = _setting(None, model_config, "sampler_config", defaults["sampler_config"])
        if isinstance(sampler_config, dict):  # a generation_config.json read without transformers' resolution
            sampler_config = EntropyBoundSamplerConfig(entropy_bound=float(sampler_config["entropy_bound"]))
        self.entropy_bound = float(entropy_bound if entropy_bound is not None else sampler_config.entropy_bound)
        self.t_min = float(_setting(t_min, model_config, "t_min", defaults["t_min"]))
        self.t_max = float(_setting(t_max, model_config, "t_max", defaults["t_max"]))
        self.stability_threshold = int(
            _setting(stability_threshold, model_config, "stability_threshold", defaults["stability_threshold"])
        )
        self.confidence_threshold = float(
            _setting(confidence_threshold, model_config, "confidence_threshold", defaults["confidence_threshold"])
        )
        eos = getattr(model_config, "eos_token_id", None)
        #: What ends an unconstrained run, as in transformers: the generation config's EOS (none: never stop early).
        self.stop_token_ids = tuple(eos if isinstance(eos, (list, tuple)) else [] if eos is None else [eos])
        self._temperature = LinearTemperatureScheduleLogitsProcessor(self.t_min, self.t_max, self.steps)
        self._batch_key: tuple = ()
        self._batch_inputs: tuple = ()

    @property
    def device(self) -> torch.device:
        return self.model.device

    def begin(self, prompt_ids: list[int], max_new_tokens: int) -> GemmaRow:
        if not prompt_ids:
            raise DenoiserError("DiffusionGemma needs a non-empty prompt: each block attends to the encoded prompt")
        if len(prompt_ids) + max_new_tokens > self.max_positions:
            raise DenoiserError(
                f"prompt of {len(prompt_ids)} tokens plus {max_new_tokens} new tokens exceeds the model's context "
                f"of {self.max_positions} positions"
            )
        row = GemmaRow(
            DynamicCache(config=self.model.config.get_text_config(decoder=True)),
            StableAndConfidentStoppingCriteria(self.stability_threshold, self.confidence_threshold),
        )
        self._encode(row, torch.tensor([prompt_ids], dtype=torch.long, device=self.device))
        return row

    @torch.no_grad()
    def _encode(self, row: GemmaRow, ids: torch.Tensor) -> None:
        """Append ``ids`` to the row's KV cache at the positions following what is already there."""
        start, end = row.length, row.length + ids.shape[1]
        positions = torch.arange(start, end, dtype=torch.int32, device=self.device).unsqueeze(0)
        attention = torch.ones((1, end), dtype=torch.bool, device=self.device)
        encoder = self.model.model.encoder
        mask_mapping = encoder.create_masks_for_generate(
            config=self.model.config,
            inputs_embeds=torch.empty((1, ids.shape[1], 0), dtype=self.model.dtype, device=self.device),
            attention_mask=attention,
            cache=row.cache,
            position_ids=positions,
            mm_token_type_ids=None,
        )
        encoder(input_ids=ids, attention_mask=mask_mapping, cache=row.cache, position_ids=positions)
        row.length = end

    def new_block(self, context: GemmaRow, generator: torch.Generator, length: int | None = None) -> torch.Tensor:
        tokens = torch.randint(
            0, self.vocab_size, (1, length or self.canvas_length), generator=generator, device=self.device
        )
        context.self_conditioning = None
        context.stopper.reset()
        return tokens[0]

    def _batch(self, contexts: Sequence[GemmaRow], length: int) -> tuple:
        """The decoder's cache, attention masks and position ids for these rows' blocks of ``length`` tokens."""
        key = (length, *((row, row.length) for row in contexts))  # rows compare by identity
        if key == self._batch_key:
            return self._batch_inputs
        longest = max(row.length for row in contexts)
        if len(contexts) == 1:
            cache = contexts[0].cache
        else:
            cache = DynamicCache(config=self.model.config.get_text_config(decoder=True))
            for index, layer in enumerate(cache.layers):
                own = [row.cache.layers[index] for row in contexts]
                width = max(part.keys.shape[-2] for part in own)
                keys = torch.cat([_left_pad(part.keys, width) for part in own])
                values = torch.cat([_left_pad(part.values, width) for part in own])
                cache.update(keys, values, index)
                if hasattr(layer, "cumulative_length"):  # a sliding layer keeps its window of the longest row
                    layer.cumulative_length = longest
        padding = torch.tensor([longest - row.length for row in contexts], device=self.device)
        attention = torch.arange(longest + length, device=self.device)[None, :] >= padding[:, None]
        mask = self.model.model.decoder.create_diffusion_decoder_attention_mask(
            config=self.model.config,
            inputs_embeds=torch.empty((len(contexts), length, 1), dtype=torch.long, device=self.device),
            cache=cache,
            decoder_attention_mask=attention,
        )
        starts = torch.tensor([row.length for row in contexts], dtype=torch.int32, device=self.device)
        positions = starts[:, None] + torch.arange(length, dtype=torch.int32, device=self.device)[None, :]
        self._batch_key, self._batch_inputs = key, (cache, mask, positions)
        return self._batch_inputs

    @torch.no_grad()
    def predict(
        self,
        contexts: Sequence[GemmaRow],
        tokens: torch.Tensor,
        remaining: Sequence[int],
        allowed: torch.Tensor | None,
    ) -> torch.Tensor:
        cache, mask, positions = self._batch(contexts, tokens.shape[1])
        conditioning, conditioned = self._self_conditioning(contexts, tokens.shape[1])
        output = self.model(
            decoder_input_ids=tokens,
            self_conditioning_logits=conditioning,
            self_conditioning_mask=conditioned,
            decoder_attention_mask=mask,
            cache=cache,
            decoder_position_ids=positions,
        )
        check_finite(output.logits, "DiffusionGemma")
        processed = torch.cat([
            self._temperature(None, output.logits[row : row + 1], cur_step=torch.tensor(steps_left, dtype=torch.int32))
            for row, steps_left in enumerate(remaining)
        ])
        processed = mask_logits(processed, allowed)
        dtype = self.model.model.decoder.embed_tokens.weight.dtype
        for row, context in enumerate(contexts):
            context.self_conditioning = processed[row : row + 1].to(dtype)
        return processed

    def _self_conditioning(self, contexts: Sequence[GemmaRow], length: int) -> tuple:
        """The rows' last processed logits, and which rows have them (``None`` where all or none do)."""
        present = [row.self_conditioning is not None for row in contexts]
        if not any(present):
            return None, None
        if all(present):
            return torch.cat([row.self_conditioning for row in contexts]), None
        dtype = self.model.model.decoder.embed_tokens.weight.dtype
        filler = torch.zeros((1, length, self.vocab_size), dtype=dtype, device=self.device)
        logits = torch.cat([row.self_conditioning if row.self_conditioning is not None else filler for row in contexts])
        return logits, torch.tensor(present, device=self.device)

    def propose(
        self, context: GemmaRow, logits: torch.Tensor, tokens: torch.Tensor, generator: torch.Generator
    ) -> Proposal:
        batched = logits.unsqueeze(0)
        probs = torch.softmax(batched, dim=-1, dtype=torch.float32)
        chosen = torch.multinomial(probs.view(-1, logits.shape[-1]), num_samples=1, generator=generator).view(-1)
        entropy = torch.distributions.Categorical(logits=batched).entropy()[0]
        sorted_entropy, order = torch.sort(entropy, dim=-1, descending=False)
        selected = torch.cumsum(sorted_entropy, dim=-1) - sorted_entropy <= self.entropy_bound
        return Proposal(tokens=chosen, order=order[selected], confidence=-entropy)

    def renoise(
        self, tokens: torch.Tensor, keep: torch.Tensor, allowed: torch.Tensor | None, generator: torch.Generator
    ) -> torch.Tensor:
        if allowed is None:
            noise = torch.randint(0, self.vocab_size, (1, tokens.shape[0]), generator=generator, device=self.device)[0]
        else:
            noise = uniform_from_allowed(allowed, generator)
        return torch.where(keep, tokens, noise)

    def draft(self, logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return logits.argmax(dim=-1)

    def converged(self, context: GemmaRow, logits: torch.Tensor, draft: torch.Tensor, tokens: torch.Tensor) -> bool:
        return bool(context.stopper(draft.unsqueeze(0), logits.unsqueeze(0))[0])

    def commit(self, context: GemmaRow, block: list[int]) -> None:
        self._encode(context, torch.tensor([block], dtype=torch.long, device=self.device))


def _left_pad(states: torch.Tensor, width: int) -> torch.Tensor:
    """``states`` ``[1, heads, n, dim]`` with zeros before it up to ``width`` positions."""
    return torch.nn.functional.pad(states, (0, 0, width - states.shape[-2], 0))
