"""Puzzle kinds as a few lines each on top of :mod:`constrained.puzzles.grid`.

Symbols: value ``v`` is written ``SYMBOLS[v - 1]``: ``1``-``9`` then ``A``-``P``. So 16x16 Sudoku uses
``123456789ABCDEFG`` (not hexadecimal ``0``-``F``): ``0`` and ``.`` stay free to mean a blank in every size, the
nine digits mean the same value in every size, and every symbol is a single character that common tokenizers
hold as one token.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from constrained.errors import PuzzleError
from constrained.puzzles.grid import Cage, GridPuzzle, Inequality

SYMBOLS = "123456789ABCDEFGHIJKLMNOP"


def _symbols(n: int) -> tuple[str, ...]:
    if not 1 <= n <= len(SYMBOLS):
        raise PuzzleError(f"grids of side 1..{len(SYMBOLS)} are supported, got {n}")
    return tuple(SYMBOLS[:n])


def _rows_and_columns(n: int) -> list[tuple[int, ...]]:
    rows = [tuple(r * n + c for c in range(n)) for r in range(n)]
    cols = [tuple(r * n + c for r in range(n)) for c in range(n)]
    return rows + cols


def _blank(n_cells: int, givens: Sequence[int | None] | None) -> tuple[int | None, ...]:
    return tuple(givens) if givens is not None else (None,) * n_cells


def latin_square(n: int, givens: Sequence[int | None] | None = None) -> GridPuzzle:
    """n x n, every row and column a permutation of 1..n."""
    return GridPuzzle(n, n, _symbols(n), tuple(_rows_and_columns(n)), _blank(n * n, givens), name=f"latin{n}")


def sudoku(box_rows: int = 3, box_cols: int | None = None, givens: Sequence[int | None] | None = None) -> GridPuzzle:
    """Sudoku with boxes of ``box_rows x box_cols`` (2x2 -> 4x4, 3x3 -> 9x9, 4x4 -> 16x16)."""
    box_cols = box_rows if box_cols is None else box_cols
    n = box_rows * box_cols
    boxes = [
        tuple((br * box_rows + r) * n + bc * box_cols + c for r in range(box_rows) for c in range(box_cols))
        for br in range(n // box_rows)
        for bc in range(n // box_cols)
    ]
    groups = tuple(_rows_and_columns(n) + boxes)
    return GridPuzzle(n, n, _symbols(n), groups, _blank(n * n, givens), name=f"sudoku{n}")


def killer_sudoku(
    cages: Iterable[tuple[Sequence[int], int]], givens: Sequence[int | None] | None = None, box: int = 3
) -> GridPuzzle:
    """Sudoku plus cages ``(cells, total)`` whose distinct values sum to the total; usually no givens."""
    base = sudoku(box, givens=givens)
    return GridPuzzle(
        base.rows,
        base.cols,
        base.symbols,
        base.groups,
        base.givens,
        cages=tuple(Cage(tuple(cells), total) for cells, total in cages),
        name=f"killer{base.rows}",
    )


def futoshiki(
    n: int, inequalities: Iterable[tuple[int, int]], givens: Sequence[int | None] | None = None
) -> GridPuzzle:
    """Latin square plus signs ``(a, b)`` meaning ``value(a) < value(b)`` between cells."""
    base = latin_square(n, givens)
    return GridPuzzle(
        n,
        n,
        base.symbols,
        base.groups,
        base.givens,
        inequalities=tuple(Inequality(a, b) for a, b in inequalities),
        name=f"futoshiki{n}",
    )
