"""A diffusion model as a puzzle's cell scorer: one model forward per solver pass, cells as the first canvas
positions.

The puzzle loop wants ``cell tokens -> log-probs [n_cells, V]`` (a ``solver.CellScorer``); the model adapters of
``constrained.denoisers`` speak block diffusion (``begin`` with a prompt, ``new_block``, ``renoise``,
``predict``). This wraps the latter as the former, following the built-in model's convention
(``constrained.default_model``): the answer (the cells' symbols) starts the canvas and ``<eos>`` fills every
position after it. Decided cells keep their tokens; open cells hold the
family's noise (a mask token, or fresh random tokens for uniform-noise models such as DiffusionGemma), drawn
anew each pass the way the family's own sampler would.

The whole answer must sit in one canvas: the canvas asked for is ``max(model canvas, n_cells + 1)`` positions, so
a model trained with shorter canvases sees a longer block than in training (it still runs; quality may suffer).
"""

from __future__ import annotations

from typing import Any

import torch

from constrained.errors import DenoiserError


class ModelScorer:
    """``cell tokens -> log-probs [n_cells, V]`` over a ``constrained.denoisers`` adapter; one ``predict`` per
    call."""

    def __init__(self, adapter: Any, prompt_ids: list[int], n_cells: int, eos_token_id: int, seed: int = 0) -> None:
        if eos_token_id is None:
            raise DenoiserError("the tokenizer has no <eos> token to fill the canvas after the cells")
        self.adapter = adapter
        self.n_cells = n_cells
        self.eos_token_id = int(eos_token_id)
        self.generator = torch.Generator().manual_seed(seed)
        self.length = max(int(adapter.canvas_length), n_cells + 1)
        self.context = adapter.begin(prompt_ids, self.length)
        self.canvas = adapter.new_block(self.context, self.generator, self.length)
        self.calls = 0

    def __call__(self, cells: list[int | None]) -> torch.Tensor:
        if len(cells) != self.n_cells:
            raise DenoiserError(f"expected a canvas of {self.n_cells} cells, got {len(cells)}")
        target = self.canvas.clone()
        keep = torch.zeros(self.length, dtype=torch.bool, device=target.device)
        for position, token in enumerate(cells):
            if token is not None:
                target[position] = token
                keep[position] = True
        target[self.n_cells :] = self.eos_token_id
        keep[self.n_cells :] = True
        self.canvas = self.adapter.renoise(target, keep, None, self.generator)
        remaining = max(int(self.adapter.steps) - self.calls, 1)  # the family's schedule runs from steps to 1
        self.calls += 1
        logits = self.adapter.predict([self.context], self.canvas.unsqueeze(0), [remaining], None)[0]
        return torch.log_softmax(logits[: self.n_cells].float(), dim=-1)
