"""Masked diffusion (LLaDA, Dream, MDLM, BERT-as-denoiser) as a :class:`~.base.Denoiser`.

A masked diffusion model sees ``context + canvas`` with the undecided canvas positions set to a mask token and
predicts every position at once. Each step unmasks some positions for good:

* **low-confidence remasking** (LLaDA): with ``n`` masked positions and ``r`` steps left, the ``ceil(n / r)``
  most confident predictions are kept and the others stay masked, so the block finishes within its steps;
* **confidence-threshold parallel decoding** (Fast-dLLM): every masked position whose confidence reaches
  ``threshold`` is kept, and at least the single most confident one.

Confidence is the probability of the predicted token. Any ``AutoModelForMaskedLM`` works through
:meth:`MaskedDiffusionDenoiser.from_masked_lm`; any callable ``logits_fn(input_ids, attention_mask)`` returning
``[B, N, V]`` logits for masked sequences (LLaDA, Dream) works directly. Dream is trained autoregressive-style,
so its logits are *shifted*: the logits at index ``i`` predict the token at ``i + 1``; ``shifted=True`` reads them
one position earlier.

Batches: row ``b`` is its context then its block; rows of different lengths are right-padded (so every real
token keeps its position) and ``attention_mask`` marks the real tokens. When all rows have the same length the
mask is ``None``: the model's plain call.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..errors import DenoiserError
from .base import Proposal, check_finite, mask_logits, sample_rows

#: ``(input_ids [B, N], attention_mask [B, N] bool or None) -> logits [B, N, V]``.
LogitsFn = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


@dataclass
class MaskedRow:
    """One row's context: the prompt and committed blocks, and its block's steps left (the schedule's input)."""

    ids: list[int]
    remaining: int = 0


class MaskedDiffusionDenoiser:
    """A masked-diffusion model behind a ``logits_fn(input_ids [B, N], attention_mask) -> logits [B, N, V]``."""

    noise = "mask"

    def __init__(
        self,
        logits_fn: LogitsFn,
        *,
        mask_token_id: int | None,
        vocab_size: int,
        canvas_length: int = 32,
        steps: int | None = None,
        threshold: float | None = None,
        temperature: float = 0.0,
        shifted: bool = False,
        max_positions: int | None = None,
        device: torch.device | str = "cpu",
        name: str = "masked diffusion model",
    ) -> None:
        if mask_token_id is None:
            raise DenoiserError(f"{name} has no mask token, so it cannot start from a masked canvas")
        if not 0 <= mask_token_id < vocab_size:
            raise DenoiserError(f"mask token id {mask_token_id} is outside the vocabulary of {vocab_size}")
        if threshold is not None and not 0.0 < threshold <= 1.0:
            raise DenoiserError(f"confidence threshold must be in (0, 1], got {threshold}")
        self.logits_fn = logits_fn
        self.mask_token_id = int(mask_token_id)
        self.vocab_size = int(vocab_size)
        self.canvas_length = int(canvas_length)
        self.steps = int(steps) if steps is not None else self.canvas_length
        self.threshold = threshold
        self.temperature = float(temperature)
        self.shifted = shifted
        self.max_positions = max_positions
        self.device = torch.device(device)
        self.name = name

    @classmethod
    def from_masked_lm(cls, model, tokenizer=None, *, mask_token_id: int | None = None, **options):
        """Any model whose ``model(input_ids=...).logits`` is ``[B, N, V]`` over a masked sequence: transformers'
        ``AutoModelForMaskedLM`` (BERT, RoBERTa, ModernBERT), LLaDA, Dream (``shifted=True``)."""
        if mask_token_id is None and tokenizer is not None:
            mask_token_id = getattr(tokenizer, "mask_token_id", None)
        if mask_token_id is None:
            mask_token_id = getattr(model.config, "mask_token_id", None)
        model.eval()

        @torch.no_grad()
        def logits_fn(input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
            if attention_mask is None:
                return model(input_ids=input_ids).logits
            return model(input_ids=input_ids, attention_mask=attention_mask.long()).logits

        options.setdefault("max_positions", getattr(model.config, "max_position_embeddings", None))
        options.setdefault("device", getattr(model, "device", "cpu"))
        options.setdefault("name", type(model).__name__)
        return cls(logits_fn, mask_token_id=mask_token_id, vocab_size=model.config.vocab_size, **options)

    def begin(self, prompt_ids: list[int], max_new_tokens: int) -> MaskedRow:
        if self.shifted and not prompt_ids:
            raise DenoiserError(
                f"{self.name} has shifted logits: the first block token needs a context token before it"
            )
        if self.max_positions is not None and len(prompt_ids) + max_new_tokens > self.max_positions:
            raise DenoiserError(
                f"prompt of {len(prompt_ids)} tokens plus {max_new_tokens} new tokens exceeds the context of "
                f"{self.name} ({self.max_positions} positions)"
            )
        return MaskedRow(list(prompt_ids), self.steps)

    def new_block(self, context: MaskedRow, generator: torch.Generator, length: int | None = None) -> torch.Tensor:
        return torch.full((length or self.canvas_length,), self.mask_token_id, dtype=torch.long, device=self.device)

    @torch.no_grad()
    def predict(
        self,
        contexts: Sequence[MaskedRow],
        tokens: torch.Tensor,
        remaining: Sequence[int],
        allowed: torch.Tensor | None,
    ) -> torch.Tensor:
        length = tokens.shape[1]
        widths = [len(context.ids) + length for context in contexts]
        ids = torch.full((len(contexts), max(widths)), self.mask_token_id, dtype=torch.long, device=self.device)
        for row, context in enumerate(contexts):
            context.remaining = remaining[row]  # the unmasking schedule of the row's next propose() depends on it
            ids[row, : len(context.ids)] = torch.tensor(context.ids, dtype=torch.long, device=self.device)
            ids[row, len(context.ids) : widths[row]] = tokens[row]
        attention = None
        if len(set(widths)) > 1:
            ends = torch.tensor(widths, device=self.device)[:, None]
            attention = torch.arange(ids.shape[1], device=self.device)[None, :] < ends
        output = self.logits_fn(ids, attention)
        logits = getattr(output, "logits", output)
        if logits.dim() != 3 or logits.shape[:2] != ids.shape:
            raise DenoiserError(
                f"{self.name} returned logits of shape {tuple(logits.shape)} for input {tuple(ids.shape)}"
            )
        shift = 1 if self.shifted else 0
        logits = torch.stack(
            [logits[row, len(c.ids) - shift : len(c.ids) - shift + length] for row, c in enumerate(contexts)]
        ).float()
        check_finite(logits, self.name)
        logits = logits[..., : self.vocab_size].clone()
        # The mask token means "undecided"; predicting it would decide nothing (a constraint never allows it).
        logits[..., self.mask_token_id] = float("-inf")
        if self.temperature > 0:
            logits = logits / self.temperature
        return mask_logits(logits, allowed)

    def propose(
        self, context: MaskedRow, logits: torch.Tensor, tokens: torch.Tensor, generator: torch.Generator
    ) -> Proposal:
        probs = torch.softmax(logits, dim=-1)
        if self.temperature > 0:
            chosen = sample_rows(probs, generator)
        else:
            chosen = probs.argmax(dim=-1)
        confidence = probs.gather(-1, chosen.unsqueeze(-1)).view(-1)
        masked = tokens == self.mask_token_id
        candidates = torch.where(masked, confidence, torch.full_like(confidence, -1.0))
        ranked = torch.argsort(candidates, descending=True)[: int(masked.sum())]
        if self.threshold is not None:
            count = max(1, int((candidates >= self.threshold).sum()))
        else:
            count = math.ceil(int(masked.sum()) / max(1, context.remaining))
        return Proposal(tokens=chosen, order=ranked[:count], confidence=confidence)

    def renoise(
        self, tokens: torch.Tensor, keep: torch.Tensor, allowed: torch.Tensor | None, generator: torch.Generator
    ) -> torch.Tensor:
        return torch.where(keep, tokens, torch.full_like(tokens, self.mask_token_id))

    def draft(self, logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return torch.where(tokens == self.mask_token_id, logits.argmax(dim=-1), tokens)

    def converged(self, context: MaskedRow, logits: torch.Tensor, draft: torch.Tensor, tokens: torch.Tensor) -> bool:
        return not bool((tokens == self.mask_token_id).any())

    def commit(self, context: MaskedRow, block: list[int]) -> None:
        context.ids.extend(block)
