"""Generated Sudoku: solved grids are solutions, searched ones reach beyond the shuffled pattern, and the
puzzles cut from them have exactly the grid as solution, with no given to spare."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constrained.puzzles.classical import solve_classical
from constrained.puzzles.generate import searched_grid, solved_grid, unique_puzzle
from constrained.puzzles.kinds import sudoku


def looks_like_the_pattern(grid: list[int], box: int) -> bool:
    """Whether the grid shares the shuffled pattern's regularity: in every band the box rows hold only ``box``
    distinct sets of values (or, for a transposed grid, in every stack the box columns). Every symmetry
    ``solved_grid`` applies keeps that; a grid found by search almost never has it."""
    n = box * box

    def distinct_sets_per_band(at) -> set[int]:
        return {len({frozenset(at(line, stack * box + j) for j in range(box))
                     for line in range(band * box, band * box + box) for stack in range(box)})
                for band in range(box)}

    by_rows = distinct_sets_per_band(lambda r, c: grid[r * n + c])
    by_cols = distinct_sets_per_band(lambda c, r: grid[r * n + c])
    return by_rows == {box} or by_cols == {box}


@pytest.mark.parametrize("box", [2, 3, 4])
def test_searched_grids_are_solutions(box: int) -> None:
    rng = random.Random(box)
    for _ in range(5):
        assert sudoku(box).violations(searched_grid(box, rng)) == []


def test_searched_grids_reach_beyond_the_shuffled_pattern() -> None:
    rng = random.Random(0)
    assert all(looks_like_the_pattern(solved_grid(3, rng), 3) for _ in range(20))
    assert not any(looks_like_the_pattern(searched_grid(3, rng), 3) for _ in range(20))


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), box=st.sampled_from([2, 3]))
def test_unique_puzzles_have_the_grid_as_only_solution_and_no_given_to_spare(seed: int, box: int) -> None:
    rng = random.Random(seed)
    solution = searched_grid(box, rng)
    givens = unique_puzzle(solution, rng)
    found = solve_classical(sudoku(box, givens=givens), max_solutions=2, level="gac")
    assert found.complete and found.solutions == [solution]
    for cell, value in enumerate(givens):
        if value is not None:  # minimal: without any one given a second solution appears
            fewer = [None if i == cell else v for i, v in enumerate(givens)]
            assert len(solve_classical(sudoku(box, givens=fewer), max_solutions=2, level="gac").solutions) == 2
