"""Propagation: candidates never lose a solution's value, and each rule makes the inferences it promises."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constrained.puzzles.generate import random_puzzle, solved_grid
from constrained.puzzles.grid import Cage, GridPuzzle
from constrained.puzzles.kinds import futoshiki, killer_sudoku, latin_square, sudoku
from constrained.puzzles.propagation import Contradiction, Propagator, bit, values_of


def test_solved_grids_are_solutions() -> None:
    rng = random.Random(0)
    for box in (2, 3, 4):
        grid = solved_grid(box, rng)
        assert sudoku(box).violations(grid) == []


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), blanks=st.integers(0, 81), level=st.sampled_from(["singles", "gac"]))
def test_candidates_keep_the_solution_value(seed: int, blanks: int, level: str) -> None:
    """Completeness: whatever the givens, every cell keeps the value a known solution puts there."""
    givens, solution = random_puzzle(3, blanks, random.Random(seed))
    cands = Propagator(sudoku(3, givens=givens), level).initial()
    for cell, value in enumerate(solution):
        assert cands[cell] & bit(value), f"cell {cell} lost its solution value {value}"


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), blanks=st.integers(30, 64))
def test_gac_is_at_least_as_strong_as_singles(seed: int, blanks: int) -> None:
    givens, _ = random_puzzle(3, blanks, random.Random(seed))
    puzzle = sudoku(3, givens=givens)
    weak = Propagator(puzzle, "singles").initial()
    strong = Propagator(puzzle, "gac").initial()
    assert all(s & ~w == 0 for s, w in zip(strong, weak))


def test_naked_single_removes_value_from_peers() -> None:
    puzzle = sudoku(3)
    prop = Propagator(puzzle, "singles")
    cands = prop.assign(prop.initial(), {0: 5})
    peers = set(range(9)) | set(range(0, 81, 9)) | {1, 2, 9, 10, 11, 18, 19, 20}
    for cell in peers - {0}:
        assert not cands[cell] & bit(5)
    assert cands[40] & bit(5)  # r5c5 shares no group with r1c1


def test_hidden_single_places_the_only_fit() -> None:
    """Value 1 is excluded from every cell of row 1 but r1c9 (by 1s in the boxes' other rows): it must go there."""
    givens: list[int | None] = [None] * 81
    givens[9 + 0] = 1  # r2c1: blocks box 1 in row 1
    givens[18 + 4] = 1  # r3c5: blocks box 2 in row 1
    givens[36 + 6] = 1  # r5c7: blocks column 7
    givens[54 + 7] = 1  # r7c8: blocks column 8
    cands = Propagator(sudoku(3, givens=givens), "singles").initial()
    assert cands[8] == bit(1)
    assert all(not cands[c] & bit(1) for c in range(8))


def test_gac_removes_naked_pair_values() -> None:
    """Two cells of a row limited to {1, 2} take both values: no other cell of the row may keep them."""
    puzzle = latin_square(4)
    prop = Propagator(puzzle, "gac")
    start = [prop.full] * 16
    start[0] = start[1] = bit(1) | bit(2)
    cands = prop.propagate(start)
    assert values_of(cands[2]) == [3, 4] and values_of(cands[3]) == [3, 4]
    singles = Propagator(puzzle, "singles").propagate(start)
    assert values_of(singles[2]) == [1, 2, 3, 4]  # the weaker level does not see it


def test_pigeonhole_is_a_contradiction() -> None:
    prop = Propagator(latin_square(3), "gac")
    start = [prop.full] * 9
    start[0] = start[1] = start[2] = bit(1) | bit(2)
    with pytest.raises(Contradiction):
        prop.propagate(start)


def test_cage_sum_prunes_to_supported_values() -> None:
    puzzle = killer_sudoku([((0, 1), 3)])  # two distinct values summing to 3: {1, 2}
    cands = Propagator(puzzle).initial()
    assert values_of(cands[0]) == [1, 2] and values_of(cands[1]) == [1, 2]
    assert all(not cands[c] & (bit(1) | bit(2)) for c in range(2, 9))


def test_large_cage_uses_sound_bounds() -> None:
    # one cage over a whole 9-cell row summing to 45: enumeration is too large, bounds must keep everything
    puzzle = GridPuzzle(1, 9, tuple("123456789"), (tuple(range(9)),), (None,) * 9, (Cage(tuple(range(9)), 45),))
    assert Propagator(puzzle).initial() == [(1 << 9) - 1] * 9


def test_inequality_bounds() -> None:
    # r1c1 < r1c2 < r1c3 on a 3x3 Latin square forces 1, 2, 3
    cands = Propagator(futoshiki(3, [(0, 1), (1, 2)])).initial()
    assert [values_of(cands[c]) for c in range(3)] == [[1], [2], [3]]


def test_nogood_removes_the_last_open_value() -> None:
    prop = Propagator(latin_square(4))
    cands = prop.assign(prop.initial(), {0: 1}, nogoods=[((0, 1), (5, 2))])
    assert not cands[5] & bit(2)
    with pytest.raises(Contradiction):
        prop.assign(prop.initial(), {0: 1, 5: 2}, nogoods=[((0, 1), (5, 2))])


def test_unknown_level_is_rejected() -> None:
    with pytest.raises(ValueError, match="level"):
        Propagator(sudoku(2), "sat")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: killer_sudoku([((0, 0), 3)]), "distinct cells"),
        (lambda: killer_sudoku([((0, 1), 3)], givens=[2, 2] + [None] * 79), "repeats"),
        (lambda: killer_sudoku([((0, 1), 3)], givens=[4] + [None] * 80), "exceeds 3"),
        (lambda: futoshiki(3, [(0, 1)], givens=[3, 1] + [None] * 7), "is not less than"),
        (lambda: futoshiki(3, [(0, 0)]), "two different cells"),
        (lambda: latin_square(3, givens=[4] + [None] * 8), "outside 1..3"),
        (lambda: latin_square(3, givens=[None] * 8), "expected 9 givens"),
    ],
)
def test_malformed_puzzles_name_the_problem(build, message: str) -> None:
    from constrained.errors import PuzzleError

    with pytest.raises(PuzzleError, match=message):
        build()


@settings(max_examples=200, deadline=None)
@given(size=st.integers(2, 6), data=st.data())
def test_all_different_filter_keeps_exactly_the_supported_values(size: int, data: st.DataObject) -> None:
    """Régin's filter against brute force: a value stays iff some distinct assignment of the group uses it."""
    import itertools

    from constrained.puzzles.propagation import _regin

    k = data.draw(st.integers(1, size))
    masks = tuple(data.draw(st.integers(1, (1 << size) - 1)) for _ in range(k))
    supports = [0] * k
    for values in itertools.permutations(range(size), k):
        if all(masks[i] >> values[i] & 1 for i in range(k)):
            for i in range(k):
                supports[i] |= 1 << values[i]
    expected = tuple(supports) if any(supports) else None
    assert _regin(masks, size) == expected
