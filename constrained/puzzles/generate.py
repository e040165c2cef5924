"""Random valid Sudoku puzzles from shuffled solved grids: test material with a known solution, no data files.

A solved grid of box size ``b`` comes from the pattern ``(b * (r % b) + r // b + c) % n``, then symmetries that
keep it solved: relabel the values, permute rows within bands and the bands, columns within stacks and the
stacks, and maybe transpose. Blanking cells keeps the original grid a solution (not necessarily the only one).
"""

from __future__ import annotations

import random


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
