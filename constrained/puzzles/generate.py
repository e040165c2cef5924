"""Random valid Sudoku puzzles with a known solution, no data files: test and benchmark material.

Two kinds of solved grid. :func:`solved_grid` takes the pattern ``(b * (r % b) + r // b + c) % n`` for box size
``b``, then symmetries that keep it solved: relabel the values, permute rows within bands and the bands, columns
within stacks and the stacks, and maybe transpose. It is instant at any size, but every grid it gives is
equivalent to that one pattern, a vanishing share of all grids (with regularities a model can learn instead
of the rules). :func:`searched_grid` fills an empty grid by a randomized search, so any grid can come out.

Blanking random cells (:func:`random_puzzle`) keeps the grid a solution, not necessarily the only one.
:func:`unique_puzzle` blanks cells only while the solution stays the only one, down to a *minimal* puzzle
(no given can go): the puzzles people publish, and the ones where guidance matters.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from constrained.puzzles.classical import solve_classical
from constrained.puzzles.kinds import sudoku
from constrained.puzzles.propagation import Propagator, bit


def solved_grid(box: int, rng: random.Random) -> list[int]:
    """A random solved Sudoku of side ``box * box``, row-major values ``1..n``."""
    n = box * box
    relabel = list(range(1, n + 1))
    rng.shuffle(relabel)

    def shuffled_lines() -> list[int]:
        bands = list(range(box))
        rng.shuffle(bands)
        lines = []
        for band in bands:
            inner = list(range(box))
            rng.shuffle(inner)
            lines.extend(band * box + i for i in inner)
        return lines

    rows, cols = shuffled_lines(), shuffled_lines()
    grid = [relabel[(box * (r % box) + r // box + c) % n] for r in rows for c in cols]
    if rng.random() < 0.5:
        grid = [grid[c * n + r] for r in range(n) for c in range(n)]
    return grid


def random_puzzle(box: int, blanks: int, rng: random.Random) -> tuple[list[int | None], list[int]]:
    """``(givens, solution)``: a random solved grid with ``blanks`` random cells blanked."""
    solution = solved_grid(box, rng)
    givens: list[int | None] = list(solution)
    for cell in rng.sample(range(len(solution)), blanks):
        givens[cell] = None
    return givens, solution


def searched_grid(box: int, rng: random.Random) -> list[int]:
    """A random solved Sudoku of side ``box * box`` found by search: the classical solver on an empty grid
    (singles), trying each cell's candidates in random order, so a dead end backtracks (rarely, for 9x9)."""

    def shuffled(values: list[int]) -> list[int]:
        rng.shuffle(values)
        return values

    found = solve_classical(sudoku(box), level="singles", value_order=shuffled)
    if not found.solutions:
        raise RuntimeError("no solved grid found: an empty Sudoku always has one")
    return found.solutions[0]


def unique_puzzle(solution: Sequence[int], rng: random.Random, *, node_limit: int = 20_000) -> list[int | None]:
    """Givens of a minimal puzzle whose only solution is ``solution`` (a solved Sudoku, row-major values).

    Cells are tried in random order; one is blanked when no other value there admits a solution, which is
    the test that the puzzle stays unique (one search, for a solution that differs at that cell). A search
    that runs past ``node_limit`` keeps the cell, so the result is always unique, at worst not quite minimal.
    """
    box = round(len(solution) ** 0.25)
    blank = sudoku(box)
    prop = Propagator(blank, "gac")
    full = (1 << (box * box)) - 1
    givens: list[int | None] = list(solution)
    for cell in rng.sample(range(len(solution)), len(solution)):
        start = [full if value is None else bit(value) for value in givens]
        start[cell] = full & ~bit(solution[cell])
        other = solve_classical(blank, start=start, propagator=prop, node_limit=node_limit)
        if other.complete and not other.solutions:
            givens[cell] = None
    return givens
