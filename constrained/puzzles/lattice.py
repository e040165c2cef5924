"""A grid puzzle's mask lattice over a tokenizer's vocabulary: one canvas position per cell, one token per symbol.

Same surface as a constraint's lattice over a canvas (``constrained.lattice.Canvas``): ``decide``, ``tokens``,
``allowed``, ``masks``, ``feasible``, ``map_decode``. One difference, stated plainly: for a regular language the
masks are exact, while here deciding whether a token at a cell has *some* completion is as hard as solving the
puzzle, so the masks are the candidates after propagation. They are sound (a token some solution uses is never
masked) and usually close to exact; :meth:`GridLattice.feasible` is the exact check (bounded search), and
:meth:`GridLattice.map_decode` only returns complete, valid grids.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from constrained.errors import ConstraintUnsatisfiable, PuzzleError, VocabularyError
from constrained.lattice import check_logprobs_shape
from constrained.puzzles.classical import best_completion, solve_classical
from constrained.puzzles.grid import GridPuzzle
from constrained.puzzles.propagation import Contradiction, Propagator, bit
from constrained.puzzles.symbols import SymbolVocabulary


class GridLattice:
    """The cells of ``puzzle`` as canvas positions, each with its candidate tokens; givens start decided and
    cannot be reopened."""

    def __init__(
        self,
        puzzle: GridPuzzle,
        vocabulary: SymbolVocabulary | None = None,
        *,
        level: str = "gac",
        search_node_limit: int = 100_000,
    ) -> None:
        self.puzzle = puzzle
        self.vocabulary = vocabulary or SymbolVocabulary.plain(puzzle.symbols)
        if self.vocabulary.symbols != puzzle.symbols:
            raise VocabularyError(f"vocabulary spells {self.vocabulary.symbols}, the puzzle uses {puzzle.symbols}")
        self.length = puzzle.n_cells
        self.search_node_limit = search_node_limit
        self._prop = Propagator(puzzle, level)
        self._values: list[int | None] = list(puzzle.givens)
        self._feasible: bool | None = None
        self._cands: list[int] | None = None
        self._refresh()

    @property
    def vocab_size(self) -> int:
        return self.vocabulary.vocab_size

    @property
    def tokens(self) -> list[int | None]:
        ids = self.vocabulary.token_ids
        return [None if v is None else ids[v - 1] for v in self._values]

    @property
    def candidates(self) -> list[int] | None:
        """Candidate bitmask per cell after propagation (bit ``v - 1`` for value ``v``); None on a contradiction."""
        return None if self._cands is None else list(self._cands)

    def decide(self, changes: Mapping[int, int | None]) -> None:
        """Fix cells to symbol tokens, or reopen them with ``None``; givens cannot change."""
        for position, token in changes.items():
            if not 0 <= position < self.length:
                raise IndexError(f"position {position} outside a canvas of {self.length} cells")
            given = self.puzzle.givens[position]
            value = None if token is None else self.vocabulary.value_of(token)
            if given is not None and value != given:
                raise PuzzleError(f"{self.puzzle.cell_name(position)} is a given and cannot change")
            self._values[position] = value
        self._refresh()

    def _refresh(self) -> None:
        self._feasible = None
        start = [self._prop.full if v is None else bit(v) for v in self._values]
        try:
            self._cands = self._prop.propagate(start)
        except Contradiction:
            self._cands = None

    def feasible(self) -> bool:
        """Whether the open cells can be completed into a solution: propagation, then a bounded search.

        If the search runs out of ``search_node_limit`` nodes before deciding, propagation's verdict (no
        contradiction, so True) stands.
        """
        if self._feasible is None:
            if self._cands is None:
                self._feasible = False
            else:
                result = solve_classical(
                    self.puzzle, node_limit=self.search_node_limit, start=self._cands, propagator=self._prop
                )
                self._feasible = bool(result.solutions) or not result.complete
        return self._feasible

    def _allowed_array(self) -> np.ndarray:
        """Bool ``[L, size]``: value ``v`` allowed at a cell (all False after a contradiction)."""
        if self._cands is None:
            return np.zeros((self.length, self.puzzle.size), dtype=bool)
        cands = np.asarray(self._cands, dtype=np.int64)
        return ((cands[:, None] >> np.arange(self.puzzle.size)) & 1).astype(bool)

    def allowed(self, position: int) -> torch.Tensor:
        """Bool ``[V]`` mask of the tokens position ``position`` may hold."""
        if not 0 <= position < self.length:
            raise IndexError(f"position {position} outside a canvas of {self.length} cells")
        mask = torch.zeros(self.vocab_size, dtype=torch.bool)
        mask[list(self.vocabulary.token_ids)] = torch.from_numpy(self._allowed_array()[position])
        return mask

    def masks(self, device: torch.device | str | None = None) -> torch.Tensor:
        """Bool ``[L, V]``: candidate symbol tokens per cell (decided cells: their token; contradiction: none)."""
        result = torch.zeros(self.length, self.vocab_size, dtype=torch.bool)
        result[:, list(self.vocabulary.token_ids)] = torch.from_numpy(self._allowed_array())
        return result.to(device) if device is not None else result

    def map_decode(self, logprobs: torch.Tensor) -> list[int]:
        """The highest-scoring solution consistent with the decided cells, as token ids.

        Branch and bound over the propagated candidates (see ``classical.best_completion``): exact when it ends
        within ``search_node_limit`` nodes, else the best solution found. ConstraintUnsatisfiable if none is found.
        """
        check_logprobs_shape(logprobs, self.length, self.vocab_size)
        if self._cands is None:
            raise ConstraintUnsatisfiable("the decided cells contradict the puzzle's rules")
        picked = logprobs[:, list(self.vocabulary.token_ids)].detach().to("cpu", torch.float64)
        if torch.isnan(picked).any():
            raise ValueError("logprobs contain NaN at puzzle symbol tokens")
        scores = picked.clamp(min=-1e30).tolist()  # -inf would make every bound tie and prune everything
        best = best_completion(self._prop, self._cands, scores, self.search_node_limit)
        if best is None:
            raise ConstraintUnsatisfiable("no solution is consistent with the decided cells", self.puzzle.format(
                self._values))
        return [self.vocabulary.token_ids[v - 1] for v in best]
