"""Sudoku benchmark over ../shared/data/sudoku: the model-guided solve loop beside the classical reference.

Per puzzle set, in one run:

- ``uniform``: the solve loop (``constrained.puzzles.solver.solve``) with the seeded UniformScorer: the
  constraints alone, no model. Figures: solve rate, forward passes (mean, p50, p99, max; 0 means propagation
  alone solved it), remasks, time per puzzle.
- ``--scorer builtin``: the same loop with the built-in model (``constrained.default_model``) through the
  adapter seam ``constrained.puzzles.sudoku.sudoku_scorer``; or ``--scorer module:factory`` where
  ``factory(puzzle)`` returns ``(scorer, vocabulary)``: a cell scorer (``cell tokens -> logprobs[81, V]``) and
  the SymbolVocabulary giving its token id for each digit.
- ``oracle``: the same loop with a scorer that knows a solution (found classically beforehand) and puts all its
  probability there: the fewest passes any model can reach under these constraints, so ``uniform / oracle`` is
  the most a model could cut the passes by (a puzzle that propagation does not finish costs at least one pass).
- ``classical``: plain propagation (naked and hidden singles) and depth-first backtracking: nodes and time.

Every returned grid is checked against the rules and the givens; a wrong grid counts as unsolved.

    python -m benchmarks.sudoku                       # both sets, first 200 puzzles each
    python -m benchmarks.sudoku --sample 1000 puzzles2_17_clue
    python -m benchmarks.sudoku --limit 0 --json out.json puzzles3_magictour_top1465   # all puzzles
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from constrained.errors import ConstraintUnsatisfiable
from constrained.puzzles.classical import solve_classical
from constrained.puzzles.grid import GridPuzzle
from constrained.puzzles.solver import CellScorer, UniformScorer, solve
from constrained.puzzles.sudoku import parse_sudoku
from constrained.puzzles.symbols import SymbolVocabulary

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sudoku"
SETS = ("puzzles2_17_clue", "puzzles3_magictour_top1465")

ScorerFactory = Callable[[GridPuzzle], tuple[CellScorer, SymbolVocabulary]]


def load(name: str) -> list[str]:
    path = DATA / name
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def run_loop(
    lines: list[str], factory: ScorerFactory, options: dict[str, Any]
) -> dict[str, Any]:
    passes: list[int] = []
    remasks: list[int] = []
    seconds: list[float] = []
    failures: list[str] = []
    for line in lines:
        puzzle = parse_sudoku(line)
        scorer, vocabulary = factory(puzzle)
        began = time.perf_counter()
        try:
            result = solve(puzzle, scorer, vocabulary, check_unique=False, **options)
        except ConstraintUnsatisfiable as exc:
            failures.append(f"{line}: {exc}")
            continue
        finally:
            seconds.append(time.perf_counter() - began)
        if puzzle.violations(result.values):
            failures.append(f"{line}: invalid grid returned")
            continue
        passes.append(result.forward_passes)
        remasks.append(result.remasks)
    return {
        "puzzles": len(lines),
        "solved": len(passes),
        "solve_rate": len(passes) / len(lines) if lines else float("nan"),
        "passes_mean": statistics.fmean(passes) if passes else float("nan"),
        "passes_p50": percentile(passes, 50),
        "passes_p99": percentile(passes, 99),
        "passes_max": max(passes, default=0),
        "zero_pass_share": sum(p == 0 for p in passes) / len(passes) if passes else float("nan"),
        "remasks_mean": statistics.fmean(remasks) if remasks else float("nan"),
        "remasks_p99": percentile(remasks, 99),
        "seconds_mean": statistics.fmean(seconds),
        "seconds_p99": percentile(seconds, 99),
        "failures": failures[:10],
    }


def run_classical(lines: list[str], level: str) -> dict[str, Any]:
    nodes: list[int] = []
    seconds: list[float] = []
    solved = 0
    for line in lines:
        puzzle = parse_sudoku(line)
        result = solve_classical(puzzle, level=level)
        nodes.append(result.nodes)
        seconds.append(result.seconds)
        if result.solutions and not puzzle.violations(result.solutions[0]):
            solved += 1
    return {
        "puzzles": len(lines),
        "solved": solved,
        "solve_rate": solved / len(lines) if lines else float("nan"),
        "nodes_mean": statistics.fmean(nodes),
        "nodes_p99": percentile(nodes, 99),
        "nodes_max": max(nodes),
        "seconds_mean": statistics.fmean(seconds),
        "seconds_p99": percentile(seconds, 99),
    }


def uniform_factory(seed: int) -> ScorerFactory:
    """A fresh UniformScorer per puzzle, seeds ``seed, seed + 1, ...`` so every run is reproducible."""
    seeds = itertools.count(seed)

    def make(puzzle: GridPuzzle) -> tuple[CellScorer, SymbolVocabulary]:
        vocabulary = SymbolVocabulary.plain(puzzle.symbols)
        return UniformScorer(vocabulary.vocab_size, next(seeds)), vocabulary

    return make


def builtin_factory(seed: int, *, model: Any = None, tokenizer: Any = None) -> ScorerFactory:
    """A model (the built-in one unless given, loaded once) as the cell scorer of each puzzle, its tokenizer's
    digit tokens as the vocabulary."""
    from constrained.default_model import resolve
    from constrained.puzzles.sudoku import sudoku_scorer

    model, tokenizer = resolve(model, tokenizer)
    seeds = itertools.count(seed)

    def make(puzzle: GridPuzzle) -> tuple[CellScorer, SymbolVocabulary]:
        vocabulary = SymbolVocabulary.from_tokenizer(tokenizer, puzzle.symbols)
        return sudoku_scorer(puzzle, model=model, tokenizer=tokenizer, seed=next(seeds)), vocabulary

    return make


def oracle_factory(puzzle: GridPuzzle) -> tuple[CellScorer, SymbolVocabulary]:
    """A scorer certain of one solution of ``puzzle`` (the first the classical solver finds)."""
    vocabulary = SymbolVocabulary.plain(puzzle.symbols)
    found = solve_classical(puzzle, level="gac")
    if not found.solutions:
        raise ConstraintUnsatisfiable("the oracle found no solution", puzzle.format(puzzle.givens))
    logprobs = torch.full((puzzle.n_cells, vocabulary.vocab_size), -30.0, dtype=torch.float64)
    for cell, value in enumerate(found.solutions[0]):
        logprobs[cell, vocabulary.token_ids[value - 1]] = 0.0
    return (lambda cells: logprobs), vocabulary


def load_factory(spec: str, seed: int) -> ScorerFactory:
    if spec == "builtin":
        return builtin_factory(seed)
    module_name, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sets", nargs="*", default=list(SETS), help=f"files under {DATA} (default: {SETS})")
    parser.add_argument("--limit", type=int, default=200, help="first N puzzles of each set (0: all)")
    parser.add_argument("--sample", type=int, default=0, help="a random sample of N puzzles instead (seeded)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--level", default="gac", choices=["singles", "gac"], help="propagation in the loop")
    parser.add_argument("--remasks-per-pass", type=int, default=1)
    parser.add_argument("--classical-level", default="singles", choices=["singles", "gac"])
    parser.add_argument("--scorer", help="'builtin' or module:factory (see above)")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    options = {"level": args.level, "remasks_per_pass": args.remasks_per_pass}
    report: dict[str, Any] = {"settings": vars(args), "sets": {}}
    for name in args.sets:
        lines = load(name)
        if args.sample:
            lines = random.Random(args.seed).sample(lines, min(args.sample, len(lines)))
        elif args.limit:
            lines = lines[: args.limit]
        figures: dict[str, Any] = {}
        if args.scorer:
            figures["model"] = run_loop(lines, load_factory(args.scorer, args.seed), options)
        figures["uniform"] = run_loop(lines, uniform_factory(args.seed), options)
        figures["oracle"] = run_loop(lines, oracle_factory, options)
        figures["classical"] = run_classical(lines, args.classical_level)
        report["sets"][name] = figures
        print(f"\n{name}: {len(lines)} puzzles")
        for solver, row in figures.items():
            if "passes_mean" in row:
                print(
                    f"  {solver:<9} solved {row['solved']}/{row['puzzles']} ({row['solve_rate']:.1%})  "
                    f"passes mean {row['passes_mean']:.2f} p50 {row['passes_p50']:.0f} "
                    f"p99 {row['passes_p99']:.1f} max {row['passes_max']}  "
                    f"zero-pass {row['zero_pass_share']:.1%}  remasks mean {row['remasks_mean']:.2f}  "
                    f"time mean {row['seconds_mean'] * 1e3:.1f} ms p99 {row['seconds_p99'] * 1e3:.1f} ms"
                )
            else:
                print(
                    f"  {solver:<9} solved {row['solved']}/{row['puzzles']} ({row['solve_rate']:.1%})  "
                    f"nodes mean {row['nodes_mean']:.1f} p99 {row['nodes_p99']:.0f} max {row['nodes_max']}  "
                    f"time mean {row['seconds_mean'] * 1e3:.1f} ms p99 {row['seconds_p99'] * 1e3:.1f} ms"
                )
        uniform = figures["uniform"]["passes_mean"]
        for solver in ("model", "oracle"):
            if solver in figures and figures[solver]["passes_mean"]:
                print(f"  passes, uniform / {solver}: {uniform / figures[solver]['passes_mean']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
