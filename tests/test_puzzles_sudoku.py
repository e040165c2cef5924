"""Sudoku in and out: accepted forms, errors that name the problem, and the solve_sudoku entry point."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from constrained.errors import ConstraintUnsatisfiable, DenoiserError, PuzzleError
from constrained.puzzles.sudoku import format_sudoku, parse_sudoku, solve_sudoku

PUZZLE = "4...3.......6..8..........1....5..9..8....6...7.2........1.27..5.3....4.9........"
DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "sudoku"


def test_dots_and_zeros_are_blanks_and_whitespace_is_ignored() -> None:
    with_zeros = PUZZLE.replace(".", "0")
    multiline = "\n".join(PUZZLE[r * 9 : (r + 1) * 9] for r in range(9))
    assert parse_sudoku(with_zeros).givens == parse_sudoku(PUZZLE).givens == parse_sudoku(multiline).givens
    assert sum(g is not None for g in parse_sudoku(PUZZLE).givens) == 18


def test_grid_input() -> None:
    rows = [[None if ch == "." else int(ch) for ch in PUZZLE[r * 9 : (r + 1) * 9]] for r in range(9)]
    assert parse_sudoku(rows).givens == parse_sudoku(PUZZLE).givens
    as_strings = [[ch for ch in PUZZLE[r * 9 : (r + 1) * 9]] for r in range(9)]
    assert parse_sudoku(as_strings).givens == parse_sudoku(PUZZLE).givens


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (PUZZLE[:80], "has 80"),
        (PUZZLE + "1", "has 82"),
        (PUZZLE[:5] + "x" + PUZZLE[6:], r"illegal cell 'x' at r1c6"),
        (PUZZLE[:5] + "A" + PUZZLE[6:], "illegal cell 'A'"),
        ("44" + PUZZLE[2:], "contradictory givens: group 0 repeats 4"),
        ([[1, 2], [3, 4]], "has 4"),
        ([[0] * 9] * 8, "square"),
        ([[0] * 9] * 8 + [[10] + [0] * 8], "illegal cell 10 at r9c1"),
        (12345, "expected an 81-character string"),
    ],
)
def test_bad_input_names_the_problem(bad: object, message: str) -> None:
    with pytest.raises(PuzzleError, match=message):
        parse_sudoku(bad)  # type: ignore[arg-type]


def test_sizes_and_sixteen_by_sixteen_symbols() -> None:
    assert parse_sudoku("." * 16).size == 4
    big = parse_sudoku("G" + "." * 254 + "a")
    assert big.size == 16 and big.symbols == tuple("123456789ABCDEFG")
    assert big.givens[0] == 16 and big.givens[255] == 10


def test_solve_sudoku_returns_a_valid_unique_solution() -> None:
    result = solve_sudoku(PUZZLE)
    assert len(result.solution) == 81 and result.unique is True
    assert all(p in (".", s) for p, s in zip(PUZZLE, result.solution))
    assert parse_sudoku(result.solution).violations(parse_sudoku(result.solution).givens) == []
    assert len(result.grid) == 9 and "".join(map("".join, result.grid)) == result.solution
    assert result.forward_passes >= 0 and result.remasks >= 0


def test_solve_sudoku_with_a_scorer_and_a_tokenizer_dict() -> None:
    vocab = {**{str(d): 100 + d for d in range(10)}, "<mask>": 3}
    seen = []

    def scorer(cells: list[int | None]) -> torch.Tensor:
        seen.append(cells)
        return torch.zeros(81, 110)

    result = solve_sudoku(PUZZLE, tokenizer=vocab, scorer=scorer)
    assert result.tokens == tuple(100 + int(ch) for ch in result.solution)
    assert all(t is None or 101 <= t <= 109 for cells in seen for t in cells)


def test_model_needs_a_tokenizer_and_a_known_family() -> None:
    from constrained.testing import byte_tokenizer

    with pytest.raises(DenoiserError, match="tokenizer"):
        solve_sudoku(PUZZLE, model=object())
    with pytest.raises(DenoiserError, match="neither"):
        solve_sudoku(PUZZLE, model=object(), tokenizer=byte_tokenizer())


def test_a_random_init_masked_lm_drives_the_loop() -> None:
    """A real (untrained) model through the adapter seam: the constraints still make its answer valid."""
    from constrained import testing

    tokenizer = testing.byte_tokenizer()
    result = solve_sudoku(PUZZLE, model=testing.masked_lm(len(tokenizer)), tokenizer=tokenizer)
    assert result.unique is True
    assert all(p == "." or p == s for p, s in zip(PUZZLE, result.solution))
    assert set(result.tokens) <= set(tokenizer.convert_tokens_to_ids(list("123456789")))


def test_diffusion_gemma_adapter_gives_one_log_prob_row_per_cell() -> None:
    """One pass of a random-init DiffusionGemma (slow on CPU, so one call rather than a whole solve)."""
    from constrained import testing
    from constrained.puzzles.sudoku import sudoku_scorer

    tokenizer = testing.byte_tokenizer()
    scorer = sudoku_scorer(parse_sudoku(PUZZLE), model=testing.diffusion_gemma(len(tokenizer)), tokenizer=tokenizer)
    one = tokenizer.convert_tokens_to_ids("1")
    logprobs = scorer([one] + [None] * 80)
    assert logprobs.shape == (81, len(tokenizer))
    assert torch.allclose(logprobs.exp().sum(-1), torch.ones(81), atol=1e-4)
    assert scorer.canvas[0] == one and (scorer.canvas[81:] == tokenizer.eos_token_id).all()


def test_contradictory_givens_and_no_solution() -> None:
    with pytest.raises(PuzzleError, match="repeats"):
        solve_sudoku("1" + "." * 8 + "1" + "." * 71)  # r1c1 and r2c1 share a column
    # legal on its face, but r1c9 can hold nothing: 1-8 in its row, 9 in its column
    with pytest.raises(ConstraintUnsatisfiable):
        solve_sudoku("12345678." + "........9" + "." * 63)


def test_format_pretty() -> None:
    text = solve_sudoku(PUZZLE).solution
    pretty = format_sudoku(text, pretty=True)
    assert pretty.count("\n") == 10 and "|" in pretty
    assert format_sudoku(text) == text


@pytest.mark.skipif(not DATA.is_dir(), reason="shared data not present")
@pytest.mark.parametrize("name", ["puzzles2_17_clue", "puzzles3_magictour_top1465"])
def test_first_real_puzzles_are_solved(name: str) -> None:
    lines = [line.strip() for line in (DATA / name).read_text().splitlines() if line and not line.startswith("#")]
    for index, line in enumerate(lines[:5]):
        result = solve_sudoku(line, seed=index)
        assert result.unique is True
        assert all(p in ".0" or p == s for p, s in zip(line, result.solution))


@pytest.mark.skipif(not DATA.is_dir(), reason="shared data not present")
def test_benchmark_script_reports_every_solver(tmp_path: Path) -> None:
    import json

    from benchmarks import sudoku as module

    out = tmp_path / "figures.json"
    threads = torch.get_num_threads()
    try:
        assert module.main(["--limit", "3", "--json", str(out), "puzzles3_magictour_top1465"]) == 0
    finally:
        torch.set_num_threads(threads)  # the script pins one thread for timing; leave the session as it was
    figures = json.loads(out.read_text())["sets"]["puzzles3_magictour_top1465"]
    assert figures["uniform"]["solve_rate"] == 1.0 and figures["classical"]["solve_rate"] == 1.0
    assert figures["uniform"]["puzzles"] == 3 and figures["classical"]["nodes_mean"] > 0
