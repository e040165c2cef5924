"""The oracle of benchmarks/sudoku.py: the fewest passes any model can reach under the solve loop's
constraints, which is what makes ``uniform / oracle`` a bound on what a model can cut."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constrained.puzzles.generate import random_puzzle
from constrained.puzzles.propagation import Propagator, is_single
from constrained.puzzles.solver import solve
from constrained.puzzles.sudoku import parse_sudoku


@pytest.fixture(scope="module")
def sudoku():
    from benchmarks import sudoku

    return sudoku


def _puzzle(seed: int, blanks: int):
    givens, _ = random_puzzle(3, blanks, random.Random(seed))
    return parse_sudoku("".join("." if g is None else str(g) for g in givens))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), blanks=st.integers(40, 64), level=st.sampled_from(["singles", "gac"]))
def test_oracle_needs_one_pass_exactly_when_propagation_does_not_finish(sudoku, seed, blanks, level):
    puzzle = _puzzle(seed, blanks)
    scorer, vocabulary = sudoku.oracle_factory(puzzle)
    result = solve(puzzle, scorer, vocabulary, level=level, check_unique=False)
    propagation_finishes = all(is_single(m) for m in Propagator(puzzle, level).initial())
    assert result.remasks == 0
    assert result.forward_passes == (0 if propagation_finishes else 1)
    assert not puzzle.violations(result.values)

