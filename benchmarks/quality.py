"""Quality of the built-in model on held-out generated items, without and with constraints.

Items come from ``model.corpus.items("held_out")``: the same generators as training, but only prompts whose hash
puts them in the held-out tenth, which training never sees. Per task, in one run:

- ``json``: the model's own sampler (``constrained.generate`` with no constraint) beside ``generate`` under the
  item's JSON Schema, and under the schema grounded in the item's text (``grounded``: free strings and numbers
  are spans of it, what ``constrained json`` does). ``valid``: the text parses and ``jsonschema`` validates it;
  ``field_exact_match``: share of the target's top-level fields the output reproduces exactly; ``exact``: whole
  objects right.
- ``sql``: unconstrained beside ``constrained.sql`` over the item's tables. ``valid``: sqlglot parses the query
  and SQLite prepares it against the tables (so it names only real tables and columns); ``exact``: the target
  query string.
- ``sudoku``: unconstrained generation of the 81-digit answer (``valid``: a grid keeping the givens and the
  rules); then the constrained solve loop guided by the model beside the same loop guided by a uniform-random
  denoiser, and beside an oracle certain of a solution (the fewest passes any denoiser can reach, so
  ``uniform / oracle`` bounds what a model can cut): solve rate and forward passes (0 when propagation alone
  solves a puzzle). The puzzles are minimal ones with a single solution, on grids found by search
  (``--sudoku minimal``, the default), or the corpus's own held-out items (``--sudoku corpus``: random blanks of
  the shuffled pattern that training shows, often with several solutions); ``--sudoku-level`` sets the loop's
  propagation.

The held-out items draw their names and words from the same lists as training (56 first names, a few dozen
cities...). ``--invented-words 1`` swaps those for invented words, in the text and the answer alike, so that the
JSON figures measure copying from the text rather than recalling the lists.

Failures of a constrained run (``ConstraintUnsatisfiable``) count as not valid and are listed; they never pass
silently. The judges are independent of the constraints (jsonschema, sqlglot, SQLite, the grid's own rules).

    python -m benchmarks.quality --per-kind 50 --sql-items 10
    python -m benchmarks.quality --per-kind 20 --checkpoint model/runs/r2 --json
    python -m benchmarks.quality --per-kind 30 --sql-items 0 --invented-words 1
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any

import jsonschema
import sqlglot
import torch

import constrained
from benchmarks.sudoku import builtin_factory, oracle_factory, run_loop, uniform_factory
from constrained.default_model import checkpoint_dir, load
from constrained.errors import ConstraintUnsatisfiable, PuzzleError
from constrained.puzzles.sudoku import parse_sudoku
from constrained.text_to_sql import Column, Schema, Table
from model import corpus
from model.sample_check import json_scores

JSON_BUDGET = 192  # two canvases: the longest held-out objects need more than one


def held_out(counts: dict[str, int], invented_words: float = 0.0,
             minimal_sudoku: bool = False) -> dict[str, list[corpus.Item]]:
    """The first ``counts[kind]`` held-out items of each task, in the corpus's seeded order (``invented_words``:
    as in :func:`model.corpus.items`). ``minimal_sudoku`` draws the Sudoku items from a stream of their own,
    minimal puzzles on searched grids, so the other tasks keep the items they had."""
    stream = corpus.items("held_out", invented_words=invented_words)
    wanted = dict(counts)
    by_kind: dict[str, list[corpus.Item]] = {kind: [] for kind in corpus.KINDS}
    if minimal_sudoku:
        puzzles = corpus.items("held_out", mix={"sudoku": 1.0}, minimal_sudoku=True)
        by_kind["sudoku"] = [next(puzzles) for _ in range(wanted.pop("sudoku", 0))]
    while any(len(by_kind[kind]) < count for kind, count in wanted.items()):
        item = next(stream)
        if len(by_kind[item.kind]) < wanted.get(item.kind, 0):
            by_kind[item.kind].append(item)
    return by_kind


def generate_all(items: list[corpus.Item], constraint_of, budget: int, model, tokenizer, seed: int) -> dict:
    """Texts (``None`` for a run that raised), failures, forward passes and seconds for every item."""
    texts: list[str | None] = []
    failures: list[str] = []
    passes: list[int] = []
    began = time.perf_counter()
    for index, item in enumerate(items):
        constraint = constraint_of(item) if constraint_of is not None else None
        try:
            result = constrained.generate(constraint, item.prompt, model=model, tokenizer=tokenizer,
                                          max_new_tokens=budget, seed=seed + index)
        except ConstraintUnsatisfiable as error:
            texts.append(None)
            failures.append(f"{item.target[:60]!r}: {str(error)[:160]}")
            continue
        texts.append(result.text.strip())
        passes.append(result.forward_passes)
    return {"texts": texts, "failures": failures, "passes": passes,
            "seconds_per_item": (time.perf_counter() - began) / max(1, len(items))}


def json_valid(item: corpus.Item, text: str | None) -> bool:
    if text is None:
        return False
    try:
        jsonschema.validate(json.loads(text), item.meta["schema"])
    except (ValueError, jsonschema.ValidationError):
        return False
    return True


def tables_ddl(tables: dict[str, list[list[str]]]) -> str:
    """The item's tables as CREATE TABLE statements (through the package's own :meth:`Schema.ddl`)."""
    return Schema(tuple(Table(name, tuple(Column(c, kind.upper()) for c, kind in columns))
                        for name, columns in tables.items())).ddl()


def sql_valid(item: corpus.Item, text: str | None) -> bool:
    if text is None:
        return False
    try:
        sqlglot.parse_one(text, read="sqlite")
    except sqlglot.errors.SqlglotError:
        return False
    connection = sqlite3.connect(":memory:")
    try:
        connection.executescript(tables_ddl(item.meta["tables"]))
        connection.execute(f"EXPLAIN {text}")
    except sqlite3.Error:
        return False
    finally:
        connection.close()
    return True


def sudoku_valid(item: corpus.Item, text: str | None) -> bool:
    puzzle = item.meta["puzzle"]
    if text is None or len(text) != 81 or not text.isdigit() or "0" in text:
        return False
    if any(p != "." and p != s for p, s in zip(puzzle, text)):
        return False
    try:
        grid = parse_sudoku(text)  # the answer's digits as givens: a repeated digit is a PuzzleError
    except PuzzleError:
        return False
    return not grid.violations(grid.givens)


def figures(items: list[corpus.Item], run: dict, valid) -> dict[str, Any]:
    texts = run["texts"]
    return {
        "n": len(items),
        "valid": sum(valid(item, text) for item, text in zip(items, texts)) / len(items),
        "exact": sum(text == item.target for item, text in zip(items, texts)) / len(items),
        "passes_mean": statistics.fmean(run["passes"]) if run["passes"] else float("nan"),
        "seconds_per_item": round(run["seconds_per_item"], 3),
        "failures": len(run["failures"]),
        "failure_examples": run["failures"][:3],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-kind", type=int, default=50, help="held-out JSON and Sudoku items")
    parser.add_argument("--sql-items", type=int, default=10,
                        help="held-out SQL items (each has its own schema, whose automaton takes ~40 s to build)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--invented-words", type=float, default=0.0,
                        help="share of JSON items whose listed words are swapped for invented ones: names the model "
                             "never saw, which it must copy from the text (1: all)")
    parser.add_argument("--sudoku", choices=["minimal", "corpus"], default="minimal",
                        help="held-out Sudoku items: minimal unique puzzles on searched grids, or the corpus's own")
    parser.add_argument("--sudoku-level", choices=["gac", "singles"], default="gac",
                        help="propagation in the Sudoku solve loop")
    parser.add_argument("--checkpoint", type=Path, default=None, help="checkpoint directory (default: the shipped one)")
    parser.add_argument("--json", action="store_true", help="print one machine-readable summary line last")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model, tokenizer = load(args.checkpoint or checkpoint_dir())
    items = held_out({"json": args.per_kind, "sql": args.sql_items, "sudoku": args.per_kind}, args.invented_words,
                     minimal_sudoku=args.sudoku == "minimal")
    report: dict[str, Any] = {"checkpoint": str(args.checkpoint or checkpoint_dir()), "per_kind": args.per_kind,
                              "invented_words": args.invented_words, "sudoku_items": args.sudoku,
                              "sudoku_level": args.sudoku_level,
                              "sql_items": args.sql_items}

    def compare(kind: str, constraints: dict[str, Any], budget: int, valid) -> dict[str, Any]:
        """Figures for one task, unconstrained and under each of ``constraints`` (none when it has no items)."""
        rows = {}
        if not items[kind]:
            return rows
        for name, constraint in {"unconstrained": None, **constraints}.items():
            run = generate_all(items[kind], constraint, budget, model, tokenizer, args.seed)
            rows[name] = figures(items[kind], run, valid)
            if kind == "json":
                rows[name]["field_exact_match"] = json_scores(
                    items[kind], [text if text is not None else "" for text in run["texts"]])["field_exact_match"]
        return rows

    report["json"] = compare("json", {
        "constrained": lambda item: constrained.json_schema(item.meta["schema"]),
        "grounded": lambda item: constrained.json_schema(item.meta["schema"], grounded_in=item.meta["text"]),
    }, JSON_BUDGET, json_valid)
    report["sql"] = compare("sql", {"constrained": lambda item: constrained.sql(tables_ddl(item.meta["tables"]))},
                            model.config.canvas_length, sql_valid)
    for kind in ("json", "sql"):
        for name, row in report[kind].items():
            extra = f"  field exact {row['field_exact_match']:.1%}" if "field_exact_match" in row else ""
            print(f"{kind:<6} {name:<13} valid {row['valid']:.1%}  exact {row['exact']:.1%}{extra}  "
                  f"passes {row['passes_mean']:.1f}  {row['seconds_per_item']:.2f} s/item  failures {row['failures']}")
    if items["sudoku"]:
        report["sudoku"] = sudoku_report(items["sudoku"], model, tokenizer, args.seed, args.sudoku_level)
    if args.json:
        print(json.dumps(report))
    return 0


def sudoku_report(sudoku_items: list[corpus.Item], model, tokenizer, seed: int, level: str = "gac") -> dict[str, Any]:
    """Unconstrained generation, then the solve loop (propagation ``level``) guided by the model beside a
    uniform-random denoiser and an oracle."""
    unconstrained = generate_all(sudoku_items, None, model.config.canvas_length, model, tokenizer, seed)
    puzzles = [item.meta["puzzle"] for item in sudoku_items]
    options = {"level": level}
    report = {
        "unconstrained": figures(sudoku_items, unconstrained, sudoku_valid),
        "model_loop": run_loop(puzzles, builtin_factory(seed, model=model, tokenizer=tokenizer), options),
        "uniform_loop": run_loop(puzzles, uniform_factory(seed), options),
        "oracle_loop": run_loop(puzzles, oracle_factory, options),
    }
    row = report["unconstrained"]
    print(f"sudoku unconstrained  valid {row['valid']:.1%}  exact {row['exact']:.1%}")
    for name in ("model_loop", "uniform_loop", "oracle_loop"):
        row = report[name]
        print(f"sudoku {name:<13} solved {row['solve_rate']:.1%}  passes mean {row['passes_mean']:.2f} "
              f"p99 {row['passes_p99']:.1f}  zero-pass {row['zero_pass_share']:.1%}")
    model_passes, uniform_passes = report["model_loop"]["passes_mean"], report["uniform_loop"]["passes_mean"]
    oracle_passes = report["oracle_loop"]["passes_mean"]
    report["uniform_over_model_passes"] = uniform_passes / model_passes if model_passes else float("inf")
    report["uniform_over_oracle_passes"] = uniform_passes / oracle_passes if oracle_passes else float("inf")
    print(f"sudoku passes, uniform / model: {report['uniform_over_model_passes']:.2f}x "
          f"(uniform / oracle, the most any denoiser could reach: {report['uniform_over_oracle_passes']:.2f}x)")
    return report


if __name__ == "__main__":
    raise SystemExit(main())
