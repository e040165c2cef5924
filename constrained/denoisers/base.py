"""What the constrained sampler needs from a diffusion model, whatever its family.

Two families of text diffusion models refine a fixed-length block of tokens:

* **uniform noise** (DiffusionGemma): the block always holds real tokens; each step the model's prediction is
  sampled everywhere, a confident subset is *accepted* and the rest is replaced by random tokens. Acceptance is
  per step, not permanent; the block's output is the argmax of the last prediction.
* **mask noise** (LLaDA, Dream, MDLM, BERT-as-denoiser): the block starts as mask tokens; each step some masked
  positions are unmasked and stay fixed for the rest of the block.

A :class:`Denoiser` hides the model and its own rules so that one sampler can apply a constraint to either
family, for many requests at once. It is batch-first: every request (a *row*) has its own context object, made
by ``begin`` (take the prompt) and extended by ``commit`` (append a finished block); ``new_block`` starts a
block of a row. ``predict`` is the one batched call: the logits of ``B`` rows' blocks in one forward pass, with
the disallowed tokens at ``-inf``. The rest is per row, on that row's own random generator, so a row's draws do
not depend on what else is in the batch: ``propose`` (which positions the model's own rule wants to accept,
most confident first), ``renoise`` (what the other positions become), ``draft`` (the block as it reads now) and
``converged`` (the family's stopping rule). The sampler owns everything the constraint decides: which
proposals survive, what is reopened, when a block may be committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import torch

from ..errors import DenoiserError

Noise = Literal["uniform", "mask"]


@dataclass(frozen=True)
class Proposal:
    """The denoiser's wish for one step of one row.

    ``tokens[i]`` is the token it would place at ``i``; ``order`` lists the positions its acceptance rule selects,
    most confident first (the sampler accepts them in this order while the constraint stays satisfiable);
    ``confidence[i]`` ranks every position (higher is surer), used to pick what to reopen on a failed commit.
    """

    tokens: torch.Tensor  # long [L]
    order: torch.Tensor  # long [k]
    confidence: torch.Tensor  # float [L]


@runtime_checkable
class Denoiser(Protocol):
    """One diffusion model driving many rows block by block; see the module docstring for the two families.

    A row's context is whatever object ``begin`` returns; the sampler only hands it back.
    """

    noise: Noise
    canvas_length: int
    vocab_size: int
    steps: int

    def begin(self, prompt_ids: list[int], max_new_tokens: int) -> Any:
        """A new row's context with the prompt taken in; raise :class:`DenoiserError` if it cannot fit."""

    def new_block(self, context: Any, generator: torch.Generator, length: int | None = None) -> torch.Tensor:
        """The starting tokens ``[L]`` of the row's next block (random or mask tokens), ``canvas_length`` long
        unless ``length`` says; resets the row's per-block state (self-conditioning, stopping history)."""

    def predict(
        self, contexts: Sequence[Any], tokens: torch.Tensor, remaining: Sequence[int], allowed: torch.Tensor | None
    ) -> torch.Tensor:
        """Processed logits ``[B, L, V]`` for the rows' blocks ``tokens`` ``[B, L]``, in one forward pass; tokens
        outside ``allowed`` ``[B, L, V]`` get ``-inf``.

        ``remaining[b]`` counts the steps left in row ``b``'s block, from ``steps`` down to 1 (schedules depend
        on it). Row ``b``'s logits are those it would get alone, up to the floating-point reordering that a
        batched matrix product may bring.
        """

    def propose(
        self, context: Any, logits: torch.Tensor, tokens: torch.Tensor, generator: torch.Generator
    ) -> Proposal:
        """Apply the model family's own acceptance rule to one row's ``logits`` ``[L, V]``."""

    def renoise(
        self, tokens: torch.Tensor, keep: torch.Tensor, allowed: torch.Tensor | None, generator: torch.Generator
    ) -> torch.Tensor:
        """A row's next block: ``tokens`` where ``keep``, noise elsewhere (drawn from ``allowed`` when given)."""

    def draft(self, logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """The row's block as it would read now: what a streamer shows and what the block commits when it stops."""

    def converged(self, context: Any, logits: torch.Tensor, draft: torch.Tensor, tokens: torch.Tensor) -> bool:
        """The family's stopping rule (stable and confident predictions); mask models stop when nothing is open."""

    def commit(self, context: Any, block: list[int]) -> None:
        """Append a finished block to the row's context for its next one."""


def check_finite(logits: torch.Tensor, source: str) -> None:
    """Non-finite logits would turn every later choice into noise; refuse them where they appear."""
    if not torch.isfinite(logits).all():
        bad = (~torch.isfinite(logits)).nonzero()[0].tolist()
        raise DenoiserError(f"{source} returned non-finite logits (first at index {bad})")


def mask_logits(logits: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
    """``logits`` with every token outside ``allowed`` set to ``-inf``, *in place* (callers pass a fresh tensor)."""
    if allowed is None:
        return logits
    if allowed.shape != logits.shape:
        raise DenoiserError(f"mask shape {tuple(allowed.shape)} does not match logits shape {tuple(logits.shape)}")
    return logits.masked_fill_(~allowed.to(logits.device), float("-inf"))


def sample_rows(weights: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One index per row of ``weights`` ``[L, V]`` (non-negative), drawn in proportion to the row's weights.

    The distribution of ``torch.multinomial(weights, 1)``, by inverse transform: one uniform draw per row, found
    by binary search in the row's running sum (in float64, so that no entry is too small to be drawn). On the
    CPU ``multinomial`` costs a random number per entry, several times more over a large vocabulary. Raises
    DenoiserError for a row with no positive weight.
    """
    running = weights.cumsum(dim=-1, dtype=torch.float64)
    total = running[:, -1:]
    if not bool((total > 0).all()):  # NaN fails too
        raise DenoiserError("cannot sample a row whose weights are all zero (or NaN)")
    point = torch.rand(total.shape, generator=generator, dtype=torch.float64, device=weights.device) * total
    point = torch.minimum(point, torch.nextafter(total, torch.zeros_like(total)))  # strictly below the total
    return torch.searchsorted(running, point, right=True).view(-1)  # the first entry whose running sum passes it


def uniform_from_allowed(allowed: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One token per row of ``allowed`` ``[L, V]``, uniformly among that row's allowed tokens.

    Drawing noise from the allowed set keeps a renoised block inside what the constraint can still become, so
    the model is not asked to condition on tokens that can never appear there. One uniform draw per row picks
    a rank among the row's allowed tokens (found by binary search in the running count), which is several
    times cheaper than a random score per vocabulary entry.
    """
    counts = allowed.sum(dim=-1)
    rank = (torch.rand(allowed.shape[0], generator=generator, device=allowed.device) * counts).long()
    running = allowed.cumsum(dim=-1, dtype=torch.int32)
    return torch.searchsorted(running, (rank + 1).to(torch.int32).unsqueeze(-1)).view(-1)
