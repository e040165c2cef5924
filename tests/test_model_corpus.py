"""The training corpus: deterministic, split-disjoint, and every target is a correct answer to its prompt."""

from __future__ import annotations

import json
import re
import sqlite3

import jsonschema
import pytest
import sqlglot

from constrained.errors import PuzzleError
from constrained.prompts import compact_json_schema, compact_sql_schema, json_prompt, sql_prompt, sudoku_prompt
from model import corpus

N = 600


@pytest.fixture(scope="module")
def train_items() -> list[corpus.Item]:
    return corpus.take(N, "train")


@pytest.fixture(scope="module")
def held_out_items() -> list[corpus.Item]:
    return corpus.take(200, "held_out")


@pytest.fixture(scope="module", params=["listed", "invented", "varied"])
def json_items(request, train_items) -> list[corpus.Item]:
    """The JSON items as drawn, (``invented``) with every listed word swapped for an invented one, and
    (``varied``) all records in running prose."""
    if request.param == "listed":
        return [i for i in train_items if i.kind == "json"]
    if request.param == "varied":
        return corpus.take(200, "train", mix={"json": 1.0}, varied=1.0)
    return corpus.take(200, "train", mix={"json": 1.0}, invented_words=1.0)


def _enum_options(schema) -> set:
    if isinstance(schema, dict):
        return set(schema.get("enum", [])).union(*(_enum_options(v) for v in schema.values()))
    if isinstance(schema, list):
        return set().union(*(_enum_options(v) for v in schema))
    return set()


def _full(items: list[corpus.Item]) -> list[tuple]:
    return [(i.kind, i.prompt, i.target, json.dumps(i.meta, sort_keys=True)) for i in items]


def test_same_seed_same_items(train_items):
    assert _full(corpus.take(N, "train")) == _full(train_items)


def test_other_seed_other_items(train_items):
    assert _full(corpus.take(50, "train", seed=1)) != _full(train_items[:50])


def test_all_three_tasks_are_present(train_items):
    kinds = {i.kind for i in train_items}
    assert kinds == set(corpus.KINDS)


def test_splits_are_disjoint_by_construction(train_items, held_out_items):
    assert all(corpus.split_of(i.prompt) == "train" for i in train_items)
    assert all(corpus.split_of(i.prompt) == "held_out" for i in held_out_items)
    assert not {i.prompt for i in train_items} & {i.prompt for i in held_out_items}


def test_unknown_split_is_refused():
    with pytest.raises(ValueError):
        next(corpus.items("validation"))


def test_json_targets_validate_and_keep_schema_order(json_items):
    assert len(json_items) > 100
    checker = jsonschema.FormatChecker()
    for item in json_items:
        schema = item.meta["schema"]
        value = json.loads(item.target)
        jsonschema.Draft202012Validator(schema, format_checker=checker).validate(value)
        # MaskBench's instance text: default separators, no ASCII escaping, properties in schema order.
        assert item.target == json.dumps(value, ensure_ascii=False)
        order = list(schema["properties"])
        assert list(value) == [k for k in order if k in value]
        assert item.prompt == json_prompt(schema, item.meta["text"])


def test_json_values_are_stated_in_the_text(json_items):
    """Extraction is learnable only if each scalar in the target appears in the text (booleans may be yes/no, an
    enum's option may be read off another spelling, as a currency code off its symbol)."""
    for item in json_items:
        text = item.meta["text"]
        options = _enum_options(item.meta["schema"])
        for scalar in corpus.json_leaves(json.loads(item.target)):
            if isinstance(scalar, bool) or scalar in options:
                continue
            assert str(scalar) in text, (scalar, text)


def test_invented_words_leave_the_default_stream_alone(train_items):
    assert _full(corpus.take(N, "train", invented_words=0.0)) == _full(train_items)


def test_varied_records_leave_the_default_stream_alone_and_bring_prose_in_many_scripts(train_items):
    assert _full(corpus.take(N, "train", varied=0.0)) == _full(train_items)
    varied = corpus.take(200, "train", mix={"json": 1.0}, varied=1.0)
    keys = {frozenset(json.loads(item.target)) for item in varied}
    for record_keys in ({"title", "authors", "year", "venue"}, {"recipient", "street", "postal_code", "city"},
                        {"brand", "model", "price", "currency"}, {"name"}):
        assert any(record_keys <= k for k in keys), record_keys
    texts = [item.meta["text"] for item in varied]
    assert sum(not text.isascii() for text in texts) > 50
    assert any(re.search(r"[\u0400-\u04ff]", t) for t in texts) and any(re.search(r"[\u4e00-\u9fff]", t) for t in texts)


def test_invented_words_replace_every_listed_word_the_schema_does_not_spell():
    plain = corpus.take(200, "train", mix={"json": 1.0})
    invented = corpus.take(200, "train", mix={"json": 1.0}, invented_words=1.0)
    changed = 0
    for before, after in zip(plain, invented):
        schema_words = {w.lower() for w in re.findall(r"[A-Za-z]+", json.dumps(after.meta["schema"]))}
        words = {w.lower() for w in re.findall(r"[A-Za-z]+", after.target)} - schema_words
        assert not words & corpus._LISTED_WORDS, after.target
        changed += before.target != after.target
    assert changed > 50


def test_sql_targets_parse_and_run_on_their_schema(train_items):
    items = [i for i in train_items if i.kind == "sql"]
    assert len(items) > 80
    for item in items:
        sqlglot.parse_one(item.target, read="sqlite")
        tables = item.meta["tables"]
        assert compact_sql_schema({t: [c for c, _ in cols] for t, cols in tables.items()}) in item.prompt
        db = sqlite3.connect(":memory:")
        for table, cols in tables.items():
            db.execute(f"CREATE TABLE {table} ({', '.join(f'{c} {kind}' for c, kind in cols)})")
        db.execute(item.target).fetchall()
        db.close()


def test_sql_uses_several_templates(train_items):
    queries = [i.target for i in train_items if i.kind == "sql"]
    for keyword in ("WHERE", "GROUP BY", "ORDER BY", "LIMIT", "JOIN", "count(*)"):
        assert any(keyword in q for q in queries), keyword


def _is_solution(grid: str) -> bool:
    rows = [grid[r * 9 : r * 9 + 9] for r in range(9)]
    cols = ["".join(row[c] for row in rows) for c in range(9)]
    corners = [(br, bc) for br in (0, 3, 6) for bc in (0, 3, 6)]
    boxes = ["".join(rows[r][c] for r in range(br, br + 3) for c in range(bc, bc + 3)) for br, bc in corners]
    return all(sorted(unit) == list("123456789") for unit in rows + cols + boxes)


def test_sudoku_targets_solve_their_puzzles(train_items):
    items = [i for i in train_items if i.kind == "sudoku"]
    assert len(items) > 50
    for item in items:
        puzzle = item.meta["puzzle"]
        assert len(item.target) == 81 and _is_solution(item.target)
        assert all(p in (".", s) for p, s in zip(puzzle, item.target))
        assert item.prompt == sudoku_prompt(puzzle)


def test_solution_check_rejects_a_broken_grid():
    grid = corpus.solved_grid(__import__("random").Random(3))
    assert _is_solution(grid)
    assert not _is_solution(grid[1] + grid[0] + grid[2:])  # two different digits of a row swapped


def test_sudoku_prompt_uses_one_digit_per_cell_and_refuses_bad_puzzles():
    puzzle = "." * 40 + "5" + "." * 40
    prompt = sudoku_prompt(puzzle)
    assert "0" * 40 + "5" + "0" * 40 in prompt
    for bad in ("1" * 80, "x" * 81, "1" * 82):
        with pytest.raises(PuzzleError):
            sudoku_prompt(bad)


def test_compact_json_schema_sketches_types_order_and_optionality():
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "email": {"type": "string", "format": "email"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "status": {"enum": ["on", "off"]},
        },
        "required": ["name", "email"],
    }
    assert compact_json_schema(schema) == (
        '{name: string, age?: integer, email: string<email>, tags?: [string], status?: "on"|"off"}'
    )
    assert compact_json_schema({"anyOf": [{"type": "string"}, {"type": "null"}]}) == "string|null"
    assert compact_json_schema(True) == "any"


def test_sql_prompt_shape():
    text = compact_sql_schema({"singer": ["singer_id", "name"], "concert": ["concert_id", "year"]})
    assert text == "singer(singer_id, name); concert(concert_id, year)"
    assert sql_prompt(text, "How many singers?") == f"Tables: {text}\nQuestion: How many singers?\nSQL:"
