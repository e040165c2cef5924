"""The ``constrained`` command on the built-in model: each command's answer satisfies its constraint, ``--json``
is one parseable object, and bad input is a typed error with exit status 1."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import sqlglot

from constrained.cli import main
from constrained.puzzles.sudoku import parse_sudoku

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCHEMA = EXAMPLES / "person.schema.json"
PUZZLE = "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79"
HARD = "4...3.......6..8..........1....5..9..8....6...7.2........1.27..5.3....4.9........"  # needs search


def run_json(capsys, *argv: str) -> tuple[int, dict]:
    status = main([*argv, "--json"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1, lines
    return status, json.loads(lines[0])


def test_json_command_output_validates(capsys) -> None:
    status, report = run_json(capsys, "json", "--schema", str(SCHEMA), "Grace Hopper, 85, grace@navy.mil")
    assert status == 0 and report["command"] == "json"
    jsonschema.validate(report["value"], json.loads(SCHEMA.read_text()))
    assert json.loads(report["text"]) == report["value"]
    assert report["forward_passes"] > 0 and report["tokens_per_forward"] > 0
    # grounded by default: the only number and the only email the text states
    assert report["value"]["age"] == 85 and report["value"]["email"] == "grace@navy.mil"


def test_free_json_output_validates_too(capsys) -> None:
    status, report = run_json(capsys, "json", "--schema", str(SCHEMA), "--free", "Grace Hopper, 85, grace@navy.mil")
    assert status == 0
    jsonschema.validate(report["value"], json.loads(SCHEMA.read_text()))


def test_plain_output_is_the_answer_alone(capsys) -> None:
    assert main(["json", "--schema", str(SCHEMA), "Alan Turing, 41, alan@bletchley.uk"]) == 0
    captured = capsys.readouterr()
    jsonschema.validate(json.loads(captured.out), json.loads(SCHEMA.read_text()))
    assert "forward passes" in captured.err


def test_sql_command_runs_a_query_over_real_tables(capsys) -> None:
    status, report = run_json(capsys, "sql", "--db", str(EXAMPLES / "concerts.sql"), "--execute",
                              "How many singers are from France?")
    assert status == 0, report
    tree = sqlglot.parse_one(report["sql"], read="sqlite")
    assert {t.name for t in tree.find_all(sqlglot.exp.Table)} <= {"singer", "concert", "singer_in_concert"}
    assert isinstance(report["rows"], list)


@pytest.mark.parametrize("guide", [[], ["--uniform"]])
def test_sudoku_command_solves(capsys, guide: list[str]) -> None:
    status, report = run_json(capsys, "sudoku", HARD, *guide)
    assert status == 0 and report["unique"] is True
    solution = parse_sudoku(report["solution"])
    assert solution.violations(solution.givens) == []
    assert all(p == "." or p == s for p, s in zip(HARD, report["solution"]))
    assert report["forward_passes"] > 0


def test_sudoku_grid_output(capsys) -> None:
    assert main(["sudoku", PUZZLE]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 11 and "|" in out


def test_edit_command_keeps_everything_outside_the_span(capsys, tmp_path: Path) -> None:
    document = '{"name": "Ada Lovelace", "age": 36, "email": "ada@example.org"}'
    (tmp_path / "person.json").write_text(document + "\n")
    status, report = run_json(capsys, "edit", "--schema", str(SCHEMA), "--span", "$.email",
                              "--prompt", "Ada Lovelace, 36, countess@analytical.engine", str(tmp_path / "person.json"))
    assert status == 0
    prefix = document[: document.index('"ada@')]
    assert report["text"].startswith(prefix + '"') and report["text"].endswith('"}')
    jsonschema.validate(report["value"], json.loads(SCHEMA.read_text()))


def test_edit_by_character_range_under_a_regex(capsys, tmp_path: Path) -> None:
    (tmp_path / "date.txt").write_text("2024-05-17")
    date = str(tmp_path / "date.txt")
    status, report = run_json(capsys, "edit", "--regex", r"\d{4}-\d{2}-\d{2}", "--span", "5:7", date)
    assert status == 0 and report["text"][:5] == "2024-" and report["text"][7:] == "-17"


def test_bad_input_is_a_typed_error(capsys, tmp_path: Path) -> None:
    status, report = run_json(capsys, "sudoku", "12345")
    assert status == 1 and report["error"] == "PuzzleError" and "81" in report["message"]
    (tmp_path / "bad.json").write_text('{"type": "object", "minProperties": -1}')
    status, report = run_json(capsys, "json", "--schema", str(tmp_path / "bad.json"), "x")
    assert status == 1 and report["error"] == "SchemaError"
    status, report = run_json(capsys, "sql", "--db", str(tmp_path / "missing.sqlite"), "how many?")
    assert status == 1 and report["error"] == "DatabaseError"
    assert main(["json", "--schema", str(tmp_path / "absent.json"), "x"]) == 1
    assert "cannot read the schema" in capsys.readouterr().err


def test_unsolvable_puzzle_reports_its_partial_grid(capsys) -> None:
    status, report = run_json(capsys, "sudoku", "12345678." + "........9" + "." * 63)
    assert status == 1 and report["error"] == "ConstraintUnsatisfiable" and len(report["partial"]) == 81


def test_progress_notes_reach_the_terminal_only_while_a_command_runs():
    import io
    import logging

    from rich.console import Console

    from constrained.cli import progress_notes

    shown = io.StringIO()
    console = Console(file=shown, force_terminal=False, width=200)
    logger = logging.getLogger("constrained.token_dfa")
    with progress_notes(console, enabled=True):
        logger.info("building the token automaton of a constraint not seen before")
    logger.info("after the command")
    with progress_notes(console, enabled=False):
        logger.info("not a terminal")
    assert shown.getvalue().splitlines() == ["building the token automaton of a constraint not seen before"]


def test_without_rich_the_command_prints_plain_text(capsys, monkeypatch, tmp_path: Path) -> None:
    """The ``cli`` extra is optional: without rich, answers, rows and errors come out as plain lines."""
    from constrained import cli

    monkeypatch.setattr(cli, "Console", None)
    status = main(["sudoku", "--line", "--no-live", PUZZLE])
    captured = capsys.readouterr()
    assert status == 0 and parse_sudoku(captured.out.strip()).givens  # the solved grid, one line
    assert "forward passes" in captured.err
    (tmp_path / "bad.json").write_text("{")
    assert main(["json", "--schema", str(tmp_path / "bad.json"), "x"]) == 1
    assert capsys.readouterr().err.startswith("ConstrainedError: the schema ")
    cli._show_rows(cli.PlainConsole(), [[1, None], ["a", 2.5]])
    assert capsys.readouterr().out.splitlines() == ["1\tNULL", "a\t2.5", "2 rows"]
