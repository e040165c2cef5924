"""DiffusionGemma (transformers' ``DiffusionGemmaForBlockDiffusion``) as a :class:`~.base.Denoiser`.

This adapter re-enacts the inner loop of transformers' own ``DiffusionGemmaGenerationMixin.generate`` one step
at a time so that the sampler can put a constraint between the model's logits and its choices, and so that
without a constraint the outcome is token for token that ``generate``'s:

* the prompt is encoded once into a ``DynamicCache``; every committed block is encoded after it, at the
  positions it occupied as a canvas;
* a block starts from uniformly random tokens (``torch.randint`` over the vocabulary);
* each step runs the decoder on the canvas with the previous step's processed logits as self-conditioning,
  divides by the linear temperature schedule (transformers' ``LinearTemperatureScheduleLogitsProcessor``),
  samples every position with ``torch.multinomial``, accepts the lowest-entropy positions whose summed entropy
  minus the largest stays within the entropy bound, and renoises the rest with fresh random tokens;
* the block stops when transformers' ``StableAndConfidentStoppingCriteria`` fires or the steps run out, and its
  output is the argmax of the last processed logits.

The random draws happen in the same order and shapes as in ``generate`` but on an explicit ``torch.Generator``;
seeded like the global generator, it yields the same stream.
"""

from __future__ import annotations

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
        self.stopper = StableAndConfidentStoppingCriteria(
            stability_threshold=int(
                _setting(stability_threshold, model_config, "stability_threshold", defaults["stability_threshold"])
            ),
            confidence_threshold=float(
                _setting(confidence_threshold, model_config, "confidence_threshold", defaults["confidence_threshold"])
            ),
        )
        eos = getattr(model_config, "eos_token_id", None)
        #: What ends an unconstrained run, as in transformers: the generation config's EOS (none: never stop early).
        self.stop_token_ids = tuple(eos if isinstance(eos, (list, tuple)) else [] if eos is None else [eos])
        self._cache = None
        self._length = 0  # tokens in the KV cache (prompt plus committed blocks)
        self._block_length = self.canvas_length
        self._decoder_mask = None
        self._self_conditioning = None

    @property
    def device(self) -> torch.device:
        return self.model.device

    def begin(self, prompt_ids: list[int], max_new_tokens: int) -> None:
        if not prompt_ids:
            raise DenoiserError("DiffusionGemma needs a non-empty prompt: the canvas attends to the encoded prompt")
        if len(prompt_ids) + max_new_tokens > self.max_positions:
            raise DenoiserError(
                f"prompt of {len(prompt_ids)} tokens plus {max_new_tokens} new tokens exceeds the model's context "
                f"of {self.max_positions} positions"
            )
        self._cache = DynamicCache(config=self.model.config.get_text_config(decoder=True))
        self._length = 0
        self._encode(torch.tensor([prompt_ids], dtype=torch.long, device=self.device))

    @torch.no_grad()
    def _encode(self, ids: torch.Tensor) -> None:
        """Append ``ids`` to the KV cache at the positions following what is already there."""
        start, end = self._length, self._length + ids.shape[1]
        positions = torch.arange(start, end, dtype=torch.int32, device=self.device).unsqueeze(0)
        attention = torch.ones((1, end), dtype=torch.bool, device=self.device)
        encoder = self.model.model.encoder
        mask_mapping = encoder.create_masks_for_generate(
            config=self.model.config,
            inputs_embeds=torch.empty((1, ids.shape[1], 0), dtype=self.model.dtype, device=self.device),
            attention_mask=attention,
            cache=self._cache,
            position_ids=positions,
            mm_token_type_ids=None,
        )
        encoder(input_ids=ids, attention_mask=mask_mapping, cache=self._cache, position_ids=positions)
        self._length = end

    def new_canvas(self, generator: torch.Generator, length: int | None = None) -> torch.Tensor:
        if self._cache is None:
            raise DenoiserError("begin() must encode a prompt before the first canvas")
        self._block_length = length or self.canvas_length
        canvas = torch.randint(0, self.vocab_size, (1, self._block_length), generator=generator, device=self.device)
        attention = torch.ones((1, self._length + self._block_length), dtype=torch.bool, device=self.device)
        self._decoder_mask = self.model.model.decoder.create_diffusion_decoder_attention_mask(
            config=self.model.config,
            inputs_embeds=canvas.unsqueeze(-1),
            cache=self._cache,
            decoder_attention_mask=attention,
        )
        self._self_conditioning = None
        self._temperature = LinearTemperatureScheduleLogitsProcessor(self.t_min, self.t_max, self.steps)
        self.stopper.reset()
        return canvas[0]

    @torch.no_grad()
    def predict(self, canvas: torch.Tensor, remaining: int, allowed: torch.Tensor | None) -> torch.Tensor:
        positions = torch.arange(
            self._length, self._length + canvas.shape[0], dtype=torch.int32, device=self.device
        ).unsqueeze(0)
        output = self.model(
            decoder_input_ids=canvas.unsqueeze(0),
            self_conditioning_logits=self._self_conditioning,
            decoder_attention_mask=self._decoder_mask,
            cache=self._cache,
            decoder_position_ids=positions,
        )
        check_finite(output.logits, "DiffusionGemma")
        step = torch.tensor(remaining, dtype=torch.int32, device=self.device)
        processed = self._temperature(None, output.logits, cur_step=step)
        processed = mask_logits(processed, None if allowed is None else allowed.unsqueeze(0))
        self._self_conditioning = processed.to(self.model.model.decoder.embed_tokens.weight.dtype)
        return processed[0]

    def propose(self, logits: torch.Tensor, canvas: torch.Tensor, generator: torch.Generator) -> Proposal:
        batched = logits.unsqueeze(0)
        probs = torch.softmax(batched, dim=-1, dtype=torch.float32)
        tokens = torch.multinomial(probs.view(-1, logits.shape[-1]), num_samples=1, generator=generator).view(-1)
        entropy = torch.distributions.Categorical(logits=batched).entropy()[0]
        sorted_entropy, order = torch.sort(entropy, dim=-1, descending=False)
        selected = torch.cumsum(sorted_entropy, dim=-1) - sorted_entropy <= self.entropy_bound
        return Proposal(tokens=tokens, order=order[selected], confidence=-entropy)

    def renoise(
        self, canvas: torch.Tensor, keep: torch.Tensor, allowed: torch.Tensor | None, generator: torch.Generator
    ) -> torch.Tensor:
        if allowed is None:
            noise = torch.randint(0, self.vocab_size, (1, canvas.shape[0]), generator=generator, device=self.device)[0]
        else:
            noise = uniform_from_allowed(allowed, generator)
        return torch.where(keep, canvas, noise)

    def draft(self, logits: torch.Tensor, canvas: torch.Tensor) -> torch.Tensor:
        return logits.argmax(dim=-1)

    def converged(self, logits: torch.Tensor, draft: torch.Tensor, canvas: torch.Tensor) -> bool:
        return bool(self.stopper(draft.unsqueeze(0), logits.unsqueeze(0))[0])

    def commit(self, block: list[int]) -> None:
        self._encode(torch.tensor([block], dtype=torch.long, device=self.device))
