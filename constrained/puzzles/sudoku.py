"""Sudoku in and out: parse the usual one-line and grid forms, print a grid, and the ``solve_sudoku`` entry point."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from constrained.default_model import resolve
from constrained.errors import DenoiserError, PuzzleError
from constrained.puzzles.grid import GridPuzzle
from constrained.puzzles.kinds import SYMBOLS, sudoku
from constrained.puzzles.model_scorer import ModelScorer
from constrained.puzzles.solver import CellScorer, PuzzleResult, solve
from constrained.puzzles.symbols import SymbolVocabulary

BLANKS = ".0"

SudokuInput = str | Sequence[Sequence[Any]]


def _side(count: int, what: str) -> int:
    """Side of a Sudoku with ``count`` cells (4, 9, 16 or 25): it must be a square of a square."""
    box = round(count**0.25)
    if box < 2 or box**4 != count or box * box > len(SYMBOLS):
        raise PuzzleError(f"a Sudoku has 16, 81, 256 or 625 cells; this {what} has {count}")
    return box * box


def parse_sudoku(puzzle: SudokuInput) -> GridPuzzle:
    """A Sudoku from an 81-character line (``.`` or ``0`` blank; whitespace ignored; 16/256/625 for other sizes)
    or a grid (list of rows; cells are symbols, ints, or ``None``/``0``/``"."`` for blanks).

    Errors name the problem: wrong length, illegal character (with its position), contradictory givens.
    """
    if isinstance(puzzle, str):
        text = "".join(puzzle.split())
        n = _side(len(text), "text")
        cells: list[Any] = list(text)
    elif isinstance(puzzle, Sequence) and all(isinstance(row, Sequence) and not isinstance(row, str) for row in puzzle):
        n = len(puzzle)
        if n == 0 or any(len(row) != n for row in puzzle):
            raise PuzzleError(f"a grid must be square; got rows of lengths {[len(row) for row in puzzle]}")
        _side(n * n, "grid")
        cells = [cell for row in puzzle for cell in row]
    else:
        raise PuzzleError(f"expected an 81-character string or a grid (list of rows), got {type(puzzle).__name__}")
    symbols = SYMBOLS[:n]
    givens: list[int | None] = []
    for index, cell in enumerate(cells):
        where = f"r{index // n + 1}c{index % n + 1}"
        if cell is None or (isinstance(cell, str) and cell in BLANKS) or (isinstance(cell, int) and cell == 0):
            givens.append(None)
        elif isinstance(cell, int) and not isinstance(cell, bool) and 1 <= cell <= n:
            givens.append(cell)
        elif isinstance(cell, str) and len(cell) == 1 and cell.upper() in symbols:
            givens.append(symbols.index(cell.upper()) + 1)
        else:
            raise PuzzleError(
                f"illegal cell {cell!r} at {where} (position {index}): use {symbols} or {BLANKS!r} for a blank"
            )
    return sudoku(math.isqrt(n), givens=givens)


def format_sudoku(values: str, pretty: bool = False) -> str:
    """A solution line as-is, or (``pretty``) as rows with box separators for people to read."""
    n = _side(len(values), "text")
    if not pretty:
        return values
    box = math.isqrt(n)
    lines = []
    for r in range(n):
        if r and r % box == 0:
            lines.append("+".join(["-" * (2 * box - 1)] * box))
        row = values[r * n : (r + 1) * n]
        lines.append("|".join(" ".join(row[b : b + box]) for b in range(0, n, box)))
    return "\n".join(lines)


def sudoku_scorer(puzzle: GridPuzzle, *, model: Any = None, tokenizer: Any = None, seed: int = 0) -> ModelScorer:
    """The seam where a model plugs in: a diffusion model as the cell scorer of a 9x9 Sudoku.

    It is prompted with ``constrained.prompts.sudoku_prompt`` the way the built-in model was trained (``<bos>`` +
    prompt; the solution's digits start the canvas, ``<eos>`` after them), one model forward per call.

    Parameters:
        puzzle: the parsed Sudoku (its givens go into the prompt).
        model: anything ``constrained.denoisers.as_denoiser`` takes; ``None`` is the built-in model.
        tokenizer: the model's tokenizer (``None`` only with ``model=None``: the built-in model's own).
        seed: seeds the noise the open cells hold at each call.

    Returns:
        ``cell tokens -> log-probs [81, V]``.

    Raises:
        DenoiserError: an explicit model without a tokenizer, a model no adapter serves, a tokenizer with no
            ``<eos>``, or a grid other than 9x9 (the prompt covers those only).
    """
    from constrained.denoisers import as_denoiser
    from constrained.prompts import prompt_ids, sudoku_prompt

    model, tokenizer = resolve(model, tokenizer)
    if puzzle.size != 9:
        raise DenoiserError(f"the Sudoku prompt covers 9x9 grids; this one is {puzzle.rows}x{puzzle.cols}")
    ids = prompt_ids(tokenizer, sudoku_prompt(puzzle.format(puzzle.givens)))
    return ModelScorer(as_denoiser(model, tokenizer), ids, puzzle.n_cells, tokenizer.eos_token_id, seed)


def solve_sudoku(
    puzzle: SudokuInput,
    *,
    model: Any = None,
    tokenizer: Any = None,
    scorer: CellScorer | None = None,
    seed: int = 0,
    **options: Any,
) -> PuzzleResult:
    """Solve a Sudoku, a cell scorer (by default the built-in model) guiding each pass and propagation ruling out
    what cannot be right.

    Parameters:
        puzzle: an 81-character line (``.`` or ``0`` for a blank; 16, 256 or 625 characters for other sizes) or
            a grid (a list of rows).
        model: the model that guides the search (see :func:`sudoku_scorer`); ``None`` is the built-in model.
        tokenizer: the model's tokenizer (Hugging Face, or a ``{token: id}`` dict); it also decides which token id
            writes each symbol. ``None`` with ``model=None`` is the built-in model's own; with ``scorer`` and no
            tokenizer the symbols are token ids ``0..n-1``.
        scorer: a ready cell scorer that guides the search instead of a model, ``cell tokens -> log-probs
            [n_cells, V]`` (``solver.UniformScorer(n)`` is the model-free baseline); ``model`` is not used then.
        seed: seeds the model's sampling.
        options: go to :func:`constrained.puzzles.solver.solve` (``level``, ``max_passes``, ``max_remasks``,
            ``remasks_per_pass``, ``commit_threshold``, ``check_unique``, ``callback``, ...).

    Returns:
        The :class:`~constrained.puzzles.solver.PuzzleResult`: the solution, the forward passes it took, the
        remasks, and whether the solution is unique.

    Raises:
        PuzzleError: the puzzle is malformed (size, an illegal character, contradictory givens).
        ConstraintUnsatisfiable: the puzzle has no solution, or the pass or remask bounds ran out (with the
            grid reached).
        VocabularyError: a symbol is not a single token of the tokenizer.
        DenoiserError: a model came without its tokenizer, the puzzle is not 9x9 (the model's prompt covers 9x9
            grids), or the scorer's output has the wrong shape.
    """
    grid = parse_sudoku(puzzle)
    if scorer is None:
        model, tokenizer = resolve(model, tokenizer)
        scorer = sudoku_scorer(grid, model=model, tokenizer=tokenizer, seed=seed)
    vocabulary = (
        SymbolVocabulary.from_tokenizer(tokenizer, grid.symbols)
        if tokenizer is not None
        else SymbolVocabulary.plain(grid.symbols)
    )
    return solve(grid, scorer, vocabulary, **options)
