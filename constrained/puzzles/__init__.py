"""Grid puzzles (Sudoku 4x4/9x9/16x16, Latin squares, Killer Sudoku, Futoshiki) as canvas constraints, solved by
denoising.

- ``grid``: the declarative form (cells, values ``1..n``, all-different groups, givens, cages, inequalities);
  ``kinds``: each kind in a few lines on top of it.
- ``propagation``: candidates after propagation (naked/hidden singles, all-different arc consistency, cage sums,
  inequalities, learned nogoods) and contradiction detection.
- ``lattice``: the puzzle's mask lattice over a tokenizer's vocabulary (one canvas position per cell, one token
  per symbol; ``symbols`` checks every symbol is a single token). 16x16 uses ``1``-``9`` then ``A``-``G``.
- ``solver``: the solve loop (one call of a *cell scorer* per pass, confident commits checked by propagation,
  contradictions remask the least confident culprit); ``UniformScorer`` is the model-free baseline.
- ``classical``: propagation plus backtracking, the reference solver and the uniqueness check.
- ``sudoku``: parsing, printing and ``solve_sudoku``; ``model_scorer``: a diffusion model as a cell scorer.
"""

from constrained.puzzles.classical import ClassicalResult, solve_classical
from constrained.puzzles.grid import Cage, GridPuzzle, Inequality
from constrained.puzzles.kinds import futoshiki, killer_sudoku, latin_square
from constrained.puzzles.lattice import GridLattice
from constrained.puzzles.solver import CellScorer, CellTokens, PuzzleResult, UniformScorer, solve
from constrained.puzzles.sudoku import format_sudoku, parse_sudoku, solve_sudoku, sudoku_scorer
from constrained.puzzles.symbols import SymbolVocabulary

__all__ = [
    "Cage", "CellScorer", "CellTokens", "ClassicalResult", "GridLattice", "GridPuzzle", "Inequality",
    "PuzzleResult", "SymbolVocabulary", "UniformScorer", "format_sudoku", "futoshiki", "killer_sudoku",
    "latin_square", "parse_sudoku", "solve", "solve_classical", "solve_sudoku", "sudoku_scorer",
]
# The Sudoku *kind* is ``kinds.sudoku``: the name ``sudoku`` here is the parse/solve submodule.
