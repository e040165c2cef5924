"""A drop-in for transformers: constrain ``DiffusionGemmaForBlockDiffusion.generate`` with a logits processor.

Usage: ``model.generate(input_ids, max_new_tokens=n, logits_processor=LogitsProcessorList([
ConstrainedLogitsProcessor(constraint, tokenizer, max_new_tokens=n)]))`` (a ``LogitsProcessorList``, not a plain
list: ``generate`` appends its temperature schedule to it and calls it).

transformers' DiffusionGemma loop calls ``processor(input_ids, scores, cur_step=...)`` at every denoising step of
a block, with ``scores`` ``[batch, block, vocab]`` and ``input_ids`` the prompt plus the blocks committed so far.
The processed scores feed everything: the sampled tokens, the entropy-bound acceptance, the stopping rule, the
self-conditioning of the next step (cast to the embedding dtype) and, when the block stops, the committed block,
which is their argmax.

Per-position masks alone cannot make that argmax admissible: each position's best allowed token may be fine on its
own while two of them together are not (``{"a": 1`` at one position and ``]`` at another). So this processor
makes the argmax *be* an admissible block. Its processed scores are, per row:

1. the scores with every token that no admissible continuation allows at that position set to ``-inf`` (given the
   committed text and the remaining budget: the lattice spans all the blocks still to come, so the text can
   always be finished within ``max_new_tokens``);
2. where the per-position argmax of those scores differs from the block's **constrained MAP**, the most probable
   admissible block under them (a Viterbi pass over the lattice), the MAP token lifted just above its position's
   maximum (by a margin that survives a cast to bfloat16 and the temperature schedule's division).

The block ``generate`` commits, whichever step it stops at, is therefore that step's constrained MAP block: every
committed block is accepted, and the whole output is a text the constraint accepts. When a block ends the text
(it holds an end token, or it is the last of the budget) and its MAP fails the constraint's commit-time check,
admissible blocks are drawn from the same scores (seeded per row) until one passes; when none does, the call
raises :class:`ConstraintUnsatisfiable`. A row whose text has ended gets only its end token.

``-inf`` is safe in the self-conditioning path: it stays ``-inf`` in bfloat16 and becomes probability zero in the
decoder's float32 softmax, and every position keeps at least one finite score.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import torch

from .constraint import BoundConstraint, Constraint
from .errors import ConstraintUnsatisfiable, RequestError
from .lattice import Canvas
from .sampler import DEFAULT_FALLBACK_DRAWS, block_logprobs, fit_vocabulary, lattice_masks


class ConstrainedLogitsProcessor:
    """Constrain every row of one ``DiffusionGemmaForBlockDiffusion.generate`` call; see the module docstring.

    Parameters: ``constraints``, one :class:`Constraint` for every row or one per row (``None``: that row runs
    unconstrained); ``tokenizer`` the model's; ``max_new_tokens`` the value given to ``generate`` (the lattice
    keeps the text finishable within it; past it only end tokens are allowed); ``fallback_draws`` and ``seed``
    for blocks whose MAP fails the commit-time check.

    Use one processor per ``generate`` call: it reads the prompt's length at its first call.

    Raises :class:`RequestError` for a budget below one token or a batch that does not match the constraints.
    """

    def __init__(
        self,
        constraints: Constraint | Sequence[Constraint | None],
        tokenizer: Any,
        *,
        max_new_tokens: int,
        fallback_draws: int = DEFAULT_FALLBACK_DRAWS,
        seed: int = 0,
    ) -> None:
        if max_new_tokens <= 0:
            raise RequestError(f"max_new_tokens must be positive, got {max_new_tokens}")
        if isinstance(constraints, Constraint):
            self._shared: BoundConstraint | None = constraints.bind(tokenizer)
            self._bound: list[BoundConstraint | None] = []
        else:
            self._shared = None
            self._bound = [None if c is None else c.bind(tokenizer) for c in constraints]
        self.max_new_tokens = max_new_tokens
        self.fallback_draws = fallback_draws
        self.seed = seed
        self._prompt_length: int | None = None
        self._blocks: dict[tuple[int, int], tuple[Canvas, torch.Tensor] | None] = {}  # by (row, block index)
        self._states: dict[tuple[int, int], int | None] = {}  # (row, block index) -> automaton state at its start

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor, cur_step: Any = None) -> torch.Tensor:
        """The processed ``scores`` ``[batch, block, vocab]`` (a new tensor); see the module docstring."""
        if self._prompt_length is None or input_ids.shape[1] < self._prompt_length:
            self._prompt_length = input_ids.shape[1]
            self._blocks.clear()
            self._states.clear()
        bounds = self._rows(scores.shape[0])
        length = scores.shape[1]
        committed = input_ids[:, self._prompt_length :].tolist()
        index = len(committed[0]) // length
        processed = scores.clone()
        for row, bound in enumerate(bounds):
            if bound is not None:
                processed[row] = self._row(row, bound, committed[row], index, length, scores[row])
        return processed

    def _rows(self, batch: int) -> list[BoundConstraint | None]:
        if self._shared is not None:
            return [self._shared] * batch
        if len(self._bound) != batch:
            raise RequestError(f"{len(self._bound)} constraints for a batch of {batch} rows")
        return self._bound

    def _row(self, row: int, bound: BoundConstraint, committed: list[int], index: int, length: int,
             scores: torch.Tensor) -> torch.Tensor:
        """One row's processed scores ``[L, V]`` for block ``index``."""
        ends = tuple(bound.eos_token_ids)
        if any(token in ends for token in committed):  # the text has ended: only the end token
            out = torch.full_like(scores, float("-inf"))
            out[:, ends[0]] = 0.0
            return out
        block = self._block(row, bound, committed, index, length, scores.shape[-1], scores.device)
        if block is None:
            raise ConstraintUnsatisfiable(
                f"no text accepted by the constraint fits in max_new_tokens={self.max_new_tokens}",
                partial=bound.decode(committed),
            )
        lattice, allowed = block
        masked = scores.masked_fill(~allowed, float("-inf"))
        target = torch.tensor(self._map_block(bound, lattice, masked, committed, length, row), device=scores.device)
        top, best = masked.max(dim=-1)
        lift = best != target
        if bool(lift.any()):
            margin = top.abs().float() * 2.0**-5 + 2.0**-5  # several bfloat16 steps above the maximum
            positions = torch.nonzero(lift).view(-1)
            masked[positions, target[positions]] = (top[positions].float() + margin[positions]).to(masked.dtype)
        return masked

    def _block(self, row: int, bound: BoundConstraint, committed: list[int], index: int, length: int, width: int,
               device: torch.device):
        """The lattice canvas of the rest of the budget from block ``index`` on and its block's masks over the
        model's ``width`` tokens (cached); ``None`` when nothing admissible fits."""
        key = (row, index)
        if key not in self._blocks:
            state = self._state(row, bound, committed, index, length)
            n_blocks = math.ceil(self.max_new_tokens / length)
            positions, text_budget = (n_blocks - index) * length, self.max_new_tokens - index * length
            lattice = bound.canvas(positions, final=True, start=state)
            lattice.decide({i: bound.eos_token_ids[0] for i in range(max(text_budget, 0), positions)})
            if not lattice.feasible():
                self._blocks[key] = None
            else:
                masks = lattice_masks(lattice, length, device)
                self._blocks[key] = (lattice, fit_vocabulary(masks, width))
        return self._blocks[key]

    def _state(self, row: int, bound: BoundConstraint, committed: list[int], index: int, length: int) -> int | None:
        """The automaton state after the committed blocks, walked one block at a time (cached per block)."""
        if index == 0:
            return None
        key = (row, index)
        if key not in self._states:
            start = self._state(row, bound, committed, index - 1, length)
            block = committed[(index - 1) * length : index * length]
            self._states[key] = bound.canvas_from(block, final=False, start=start).end_state()
        return self._states[key]

    def _map_block(self, bound: BoundConstraint, lattice: Canvas, masked: torch.Tensor, committed: list[int],
                   length: int, row: int) -> list[int]:
        """The constrained MAP block under ``masked``; where it ends the text and fails the commit-time check, the
        first admissible draw from the same scores that passes."""
        logprobs = block_logprobs(lattice, masked)
        block = lattice.map_decode(logprobs)[:length]
        ends = tuple(bound.eos_token_ids)
        last = len(lattice.tokens) == length
        if not last and not any(token in ends for token in block):
            return block
        if bound.constraint.violation(bound.decode(committed + block)) is None:
            return block
        generator = torch.Generator().manual_seed(self.seed + row)
        for drawn in itertools.islice(lattice.sample_decodes(logprobs, generator), self.fallback_draws):
            drawn = drawn[:length]
            ended = last or any(token in ends for token in drawn)
            if not ended or bound.constraint.violation(bound.decode(committed + drawn)) is None:
                return drawn
        raise ConstraintUnsatisfiable(
            "the constrained block fails the constraint's commit-time check, and so did every admissible draw",
            partial=bound.decode(committed + block),
        )
