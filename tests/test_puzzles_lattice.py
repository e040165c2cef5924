"""A grid's mask lattice: masks are the propagated candidates as token masks; decide, feasibility, MAP decoding."""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from constrained.errors import ConstraintUnsatisfiable, PuzzleError, VocabularyError
from constrained.puzzles.generate import random_puzzle
from constrained.puzzles.kinds import latin_square, sudoku
from constrained.puzzles.lattice import GridLattice
from constrained.puzzles.propagation import Propagator, bit
from constrained.puzzles.symbols import SymbolVocabulary

DIGITS = SymbolVocabulary(tuple("123456789"), tuple(range(20, 29)), 40)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), blanks=st.integers(20, 64))
def test_masks_are_the_candidates_as_tokens(seed: int, blanks: int) -> None:
    givens, solution = random_puzzle(3, blanks, random.Random(seed))
    puzzle = sudoku(3, givens=givens)
    lattice = GridLattice(puzzle, DIGITS)
    masks = lattice.masks()
    assert isinstance(masks, torch.Tensor) and masks.dtype == torch.bool and masks.shape == (81, 40)
    cands = Propagator(puzzle).initial()
    for cell in range(81):
        expected = {20 + v - 1 for v in range(1, 10) if cands[cell] & bit(v)}
        assert set(torch.nonzero(masks[cell]).flatten().tolist()) == expected
        assert torch.equal(lattice.allowed(cell), masks[cell])
        assert masks[cell, 20 + solution[cell] - 1]  # the solution's token is never masked


def test_decide_reopen_and_tokens() -> None:
    lattice = GridLattice(latin_square(3), SymbolVocabulary(("1", "2", "3"), (5, 6, 7), 8))
    assert lattice.tokens == [None] * 9 and lattice.feasible()
    lattice.decide({0: 5})
    assert lattice.tokens[0] == 5
    assert lattice.masks()[0].tolist() == [False] * 5 + [True, False, False]
    assert not lattice.masks()[1, 5] and not lattice.masks()[3, 5]
    lattice.decide({0: None})
    assert lattice.tokens[0] is None and lattice.masks()[1, 5]


def test_contradictory_decision_is_infeasible_and_masks_nothing() -> None:
    lattice = GridLattice(latin_square(3))
    lattice.decide({0: 0, 1: 0})
    assert not lattice.feasible()
    assert not lattice.masks().any()
    with pytest.raises(ConstraintUnsatisfiable):
        lattice.map_decode(torch.zeros(9, 3))


def test_feasible_is_exact_where_propagation_is_not() -> None:
    puzzle = sudoku(3, givens=[None if ch == "." else int(ch) for ch in
                               "..7..8.....6.2.3...3......9.1..5..6.....1.....7.9....8........4.83..4...26....51."])
    lattice = GridLattice(puzzle)
    assert lattice.candidates is not None  # propagation sees no contradiction
    assert not lattice.feasible()  # search does


def test_givens_cannot_change_and_bad_tokens_are_rejected() -> None:
    lattice = GridLattice(sudoku(2, givens=[1] + [None] * 15))
    assert lattice.tokens[0] == 0
    with pytest.raises(PuzzleError, match="r1c1 is a given"):
        lattice.decide({0: 1})
    with pytest.raises(VocabularyError):
        lattice.decide({1: 99})
    with pytest.raises(IndexError):
        lattice.decide({16: 0})


def test_map_decode_returns_the_best_solution() -> None:
    givens, solution = random_puzzle(3, 50, random.Random(1))
    lattice = GridLattice(sudoku(3, givens=givens), DIGITS)
    logprobs = torch.full((81, 40), -5.0)
    logprobs[torch.arange(81), torch.tensor(solution) + 19] = -0.1
    decoded = lattice.map_decode(logprobs)
    assert decoded == [20 + v - 1 for v in solution]
    with pytest.raises(ValueError):
        lattice.map_decode(torch.zeros(81, 9))


def test_map_decode_with_uninformative_scores_is_still_a_solution() -> None:
    puzzle = latin_square(4)
    decoded = GridLattice(puzzle).map_decode(torch.full((16, 4), float("-inf")))
    assert puzzle.violations([t + 1 for t in decoded]) == []


def test_vocabulary_from_dict_and_errors() -> None:
    vocabulary = SymbolVocabulary.from_tokenizer({"1": 7, "2": 9, "x": 30}, ("1", "2"))
    assert vocabulary.token_ids == (7, 9) and vocabulary.vocab_size == 31
    assert vocabulary.value_of(9) == 2
    with pytest.raises(VocabularyError, match="'3'"):
        SymbolVocabulary.from_tokenizer({"1": 7}, ("1", "3"))
    with pytest.raises(VocabularyError, match="share"):
        SymbolVocabulary(("1", "2"), (4, 4), 5)


def test_vocabulary_from_a_hugging_face_tokenizer() -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, **{str(d): d + 1 for d in range(10)}, "ab": 11, "a": 12, "b": 13}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")
    vocabulary = SymbolVocabulary.from_tokenizer(tokenizer, tuple("123456789"))
    assert vocabulary.token_ids == tuple(range(2, 11)) and vocabulary.vocab_size == len(tokenizer)
    with pytest.raises(VocabularyError, match="'A' is not a single token"):
        SymbolVocabulary.from_tokenizer(tokenizer, tuple("123456789ABCDEFG"))


def test_vocabulary_must_spell_the_puzzles_symbols() -> None:
    from constrained.puzzles.solver import UniformScorer, solve

    with pytest.raises(VocabularyError, match="spells"):
        GridLattice(sudoku(2), DIGITS)
    with pytest.raises(VocabularyError, match="spells"):
        solve(sudoku(2), UniformScorer(40), DIGITS)
