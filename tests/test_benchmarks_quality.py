"""The judges of benchmarks/quality.py, independent of the constraints: each held-out target is valid, and a
broken answer is not (jsonschema for JSON, sqlglot and SQLite for SQL, the grid's rules for Sudoku)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def quality():
    from benchmarks import quality

    return quality


@pytest.fixture(scope="module")
def items(quality):
    return quality.held_out({"json": 8, "sql": 8, "sudoku": 8})


def test_held_out_items_are_never_training_items(quality, items):
    from model.corpus import split_of

    assert all(split_of(item.prompt) == "held_out" for group in items.values() for item in group)
    assert [len(group) for group in items.values()] == [8, 8, 8]


def test_targets_are_judged_valid(quality, items):
    assert all(quality.json_valid(item, item.target) for item in items["json"])
    assert all(quality.sql_valid(item, item.target) for item in items["sql"])
    assert all(quality.sudoku_valid(item, item.target) for item in items["sudoku"])


def test_broken_answers_are_judged_invalid(quality, items):
    for item in items["json"]:
        assert not quality.json_valid(item, item.target[:-1]) and not quality.json_valid(item, None)
    for item in items["sql"]:
        assert not quality.sql_valid(item, item.target + " FROM no_such_table")
        assert not quality.sql_valid(item, "SELECT no_such_column FROM " + next(iter(item.meta["tables"])))
    for item in items["sudoku"]:
        swapped = item.target[1] + item.target[0] + item.target[2:]  # two different digits in one row
        assert not quality.sudoku_valid(item, swapped)
        assert not quality.sudoku_valid(item, item.target[:80])


def test_minimal_sudoku_items_have_one_solution_and_leave_the_other_tasks_alone(quality, items):
    from constrained.puzzles.classical import solve_classical
    from constrained.puzzles.sudoku import parse_sudoku

    minimal = quality.held_out({"json": 8, "sql": 8, "sudoku": 4}, minimal_sudoku=True)
    assert minimal["json"] == items["json"] and minimal["sql"] == items["sql"]
    for item in minimal["sudoku"]:
        found = solve_classical(parse_sudoku(item.meta["puzzle"]), max_solutions=2, level="gac")
        assert found.complete and ["".join(map(str, s)) for s in found.solutions] == [item.target]
        assert quality.sudoku_valid(item, item.target)
