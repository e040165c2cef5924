"""Spider dev benchmark for the SQL constraint: grammar completeness and automaton cost per database.

Completeness: the share of the 1,034 dev gold queries that the constraint of their database accepts --
the regular pattern (tested here with Python's ``re``, which reads the same syntax, so the measurement does not
wait on automaton builds) and the commit check. Failures are grouped by cause.

Analytical completeness: the same over ``benchmarks/data/analytical_sqlite.json``, queries written in the style of
BIRD and business reporting (CTEs, windows, CAST/IIF/CASE, date and string functions, quoted names) over the
same dev databases, not taken from Spider; each runs in SQLite on its database.

Cost (``--index``): pattern length, and the token automaton's build time (what ``bind`` pays on first use, disk
cache off) and states per database, over a byte vocabulary, the built-in model's vocabulary and mistral-common's
32K SentencePiece one.

Soundness (``--walk N``): N uniform random walks over each database's byte automaton (the constraint bound to
single bytes: at every step a uniformly chosen allowed byte; stop with probability 1/4 where the text may
end). Each walk's text is then checked: sqlglot parses it, the commit check passes (names exist and are in
scope), and it executes read-only on the real database. Walks longer than 400 bytes are counted separately.

Generation (``--generate N``): N dev questions (a seeded sample across databases) through ``generate_sql``,
once with the built-in model and once with a uniform-random denoiser (a DiffusionGemma whose logits are all
zero, so every allowed token is equally likely). Per denoiser: how many runs returned a query and how many
raised ``ConstraintUnsatisfiable``; the run rate (returned queries that execute read-only on the real database,
over all questions) and the median seconds per question; of the returned ones, how many parse with sqlglot,
pass the commit check and execute (soundness: all of them), with every unsound and every raised run listed;
and execution accuracy against the gold query's rows (ordered when the gold query has ORDER BY, else as
multisets). The 20 dev databases in ../shared/data/spider hold schemas but no rows, so accuracy is measured on
populated in-memory copies (``populated_db.py``): a query is right when its rows equal the gold query's on all
three copies, counted where the gold result has rows on at least one.

Usage: python -m benchmarks.spider [--depth 0] [--loose-depth 3] [--generate 60 [--skip N]] [--index] [--walk 50]
                                   [--dbs a,b] [--data ../shared/data/spider] [--analytical PATH]
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import os
import re
import statistics
import time
from pathlib import Path

from benchmarks.populated_db import gold_literals, populated_copy, spider_keys
from constrained.text_to_sql import sql
from constrained.text_to_sql.compiler import DEFAULT_LOOSE_DEPTH, DEFAULT_MAX_WHITESPACE
from constrained.text_to_sql.execute import execute_readonly
from constrained.token_dfa import DEAD
from constrained.token_dfa_build import build_token_dfa
from constrained.token_dfa_cache import cache_dir
from constrained.vocabulary import byte_vocabulary

#: The analytical query set (written for this project, not Spider's).
ANALYTICAL = Path(__file__).resolve().parent / "data" / "analytical_sqlite.json"
#: Populated copies per database that a generated query must match the gold query's rows on.
POPULATED_COPIES = 3


def cause(pattern_ok: bool, problem: str | None, query: str) -> str:
    """A short failure category for the report."""
    if pattern_ok:
        return "check: " + (problem or "").split(":")[0]
    depth = max_paren_depth(query)
    if depth >= 1 and re.search(r"\(\s*select", query, re.I):
        return "pattern: nested subquery beyond depth"
    if re.search(r"\s{3,}", query):
        return "pattern: whitespace run longer than the bound"
    return "pattern: other"


def refusal(patterns: list[re.Pattern], constraint, query: str) -> str | None:
    """``None`` when the constraint accepts ``query``, else which part refuses it: the lexical pattern (a word that
    is neither a keyword nor a name the constraint offers), the grammar's pattern, or the commit check, in its
    words. A name outside the offered lists fails both patterns; the lexical one is asked first to tell."""
    if not all(p.fullmatch(query) for p in patterns[1:]):
        return "pattern (lexical: a word that is no keyword nor offered name)"
    if not patterns[0].fullmatch(query):
        return "pattern (grammar)"
    problem = constraint.check(query)
    return None if problem is None else f"check: {problem}"


def max_paren_depth(text: str) -> int:
    depth = deepest = 0
    for char in text:
        depth += (char == "(") - (char == ")")
        deepest = max(deepest, depth)
    return deepest


def random_walks(constraint, path: Path, count: int, totals: collections.Counter, seed: int = 0) -> dict:
    """Uniform random walks over the pattern's byte automaton; each text is judged as described above."""
    import random

    import sqlglot

    dfa = constraint.bind(byte_vocabulary()).dfa
    rng = random.Random(seed)
    counts: collections.Counter[str] = collections.Counter()
    for _ in range(count):
        state, text = dfa.initial, bytearray()
        while len(text) <= 400:
            moves = {b: int(dfa.table[state, dfa.token_class[b]]) for b in range(256)}
            moves = {b: q for b, q in moves.items() if q != DEAD}
            if dfa.accepting[state] and (not moves or rng.random() < 0.25):
                break
            if not moves:
                break
            byte = rng.choice(sorted(moves))
            text.append(byte)
            state = moves[byte]
        query = text.decode("utf-8", errors="replace")
        if len(text) > 400 or not dfa.accepting[state]:
            counts["unfinished (too long or stuck)"] += 1
            continue
        try:
            sqlglot.parse_one(query, read="sqlite")
        except Exception:  # noqa: BLE001 - a category of the report
            counts["sqlglot cannot parse"] += 1
            continue
        problem = constraint.check(query)
        if problem is not None:
            counts["commit check: " + problem.split(":")[0].split("'")[0].strip()] += 1
            continue
        try:
            execute_readonly(path, query, timeout_s=2, max_rows=10)
            counts["ok (parses, names in scope, executes)"] += 1
        except Exception:  # noqa: BLE001 - a category of the report
            counts["does not execute"] += 1
    totals.update(counts)
    return dict(counts)


def zero_logit_model(vocab_size: int, canvas_length: int):
    """The uniform-random denoiser: a tiny DiffusionGemma with all-zero output embeddings (tied, so its logits are
    exactly zero and every allowed token is equally likely)."""
    import torch

    from constrained.testing import diffusion_gemma

    model = diffusion_gemma(vocab_size, canvas_length=canvas_length)
    with torch.no_grad():
        model.get_output_embeddings().weight.zero_()
    return model


def same_rows(got: list[tuple], gold: list[tuple], ordered: bool) -> bool:
    return got == gold if ordered else collections.Counter(got) == collections.Counter(gold)


def generation_pass(examples: list[dict], data: Path, model, tokenizer, populated, seed: int = 0,
                    progress: bool = False) -> dict:
    """``generate_sql`` over ``examples``; soundness and execution accuracy as the module docstring says.

    ``populated(db_id)`` gives the populated copies of a database that execution accuracy is measured on."""
    import sqlglot

    from constrained.errors import ConstraintUnsatisfiable, DatabaseError
    from constrained.text_to_sql import generate_sql

    judge = functools.lru_cache(maxsize=None)(sql)  # one constraint per database, not one per question
    counts: collections.Counter[str] = collections.Counter()
    unsound: list[str] = []
    raised: list[str] = []  # why: the last violation the commit check found
    seconds: list[float] = []
    for index, example in enumerate(examples):
        path = data / "database" / example["db_id"] / f"{example['db_id']}.sqlite"
        began = time.perf_counter()
        outcome = "runs"
        try:
            result = generate_sql(example["question"], path, model=model, tokenizer=tokenizer, execute=True,
                                  max_new_tokens=192, seed=seed + index)
        except ConstraintUnsatisfiable as error:
            outcome = "raised"
            counts["raised"] += 1
            raised.append(f"{error}  [text: {error.partial!r}]")
            continue
        except DatabaseError as error:  # returned, but SQLite refused to run it
            outcome = "does not run"
            counts["returned"] += 1
            unsound.append(f"does not run: {error}")
            continue
        finally:
            seconds.append(time.perf_counter() - began)
            if progress:  # a line per question as it ends: a run stopped early still tells what it saw
                print(f"  [{index + 1}/{len(examples)}] {example['db_id']}: {outcome} in {seconds[-1]:.1f} s",
                      flush=True)
        counts["returned"] += 1
        counts["runs"] += 1
        try:
            sqlglot.parse_one(result.text, read="sqlite")
            problem = judge(path).check(result.text)
        except sqlglot.errors.SqlglotError as error:
            problem = f"sqlglot: {error}"
        if problem is not None:
            unsound.append(f"{result.text}  [{problem}]")
            continue
        counts["sound"] += 1
        copies = populated(example["db_id"])
        ordered = "order by" in example["query"].lower()
        gold = [execute_readonly(copy, example["query"], timeout_s=10, max_rows=10_000) for copy in copies]
        if any(gold):  # where the gold result is empty on every copy, any query that runs matches: no evidence
            counts["execution_comparable"] += 1
            try:
                got = [execute_readonly(copy, result.text, timeout_s=10, max_rows=10_000) for copy in copies]
            except DatabaseError:
                continue
            counts["execution_match"] += all(same_rows(g, w, ordered) for g, w in zip(got, gold))
    return {"n": len(examples), **counts, "unsound_examples": unsound, "raised_examples": raised,
            "median_seconds": round(statistics.median(seconds), 2) if seconds else 0.0,
            "mean_seconds": round(statistics.fmean(seconds), 2) if seconds else 0.0}


def generation_report(dev: list[dict], data: Path, count: int, which: str = "both", progress: bool = False,
                      skip: int = 0) -> None:
    import random

    import torch

    from constrained.default_model import load_default

    torch.set_num_threads(1)  # the machine's cores are shared: more threads only add contention to the figures

    examples = random.Random(0).sample(dev, min(count, len(dev)))[skip:]
    model, tokenizer = load_default()

    entries = {entry["db_id"]: entry for entry in json.loads((data / "tables.json").read_text())}

    @functools.cache
    def populated(db_id: str) -> list:
        literals = gold_literals(e["query"] for e in dev if e["db_id"] == db_id)
        path = data / "database" / db_id / f"{db_id}.sqlite"
        keys = spider_keys(entries[db_id])
        return [populated_copy(path, literals, seed, keys=keys) for seed in range(POPULATED_COPIES)]

    denoisers = {"built-in model": model,
                 "uniform random": zero_logit_model(len(tokenizer), model.config.canvas_length)}
    denoisers = {name: denoiser for name, denoiser in denoisers.items()
                 if which == "both" or name.startswith({"model": "built-in", "uniform": "uniform"}[which])}
    cached = sum(1 for _ in (cache_dir() / "token_dfa").glob("*")) if (cache_dir() / "token_dfa").is_dir() else 0
    print(f"generate_sql over {len(examples)} questions of {len({e['db_id'] for e in examples})} databases; "
          f"automaton cache {cache_dir()} holding {cached} entries at the start "
          f"({'cold' if not cached else 'warm or partly warm'})")
    for name, denoiser in denoisers.items():
        load = os.getloadavg()[0]
        row = generation_pass(examples, data, denoiser, tokenizer, populated, seed=skip, progress=progress)
        returned = row.get("returned", 0)
        print(f"generate_sql, {name}: {returned}/{row['n']} returned ({row.get('raised', 0)} raised), "
              f"run rate {row.get('runs', 0)}/{row['n']} = {100 * row.get('runs', 0) / max(1, row['n']):.1f}%, "
              f"sound {row.get('sound', 0)}/{returned}, execution accuracy {row.get('execution_match', 0)} of "
              f"{row.get('execution_comparable', 0)} sound queries whose gold result has rows on the populated copies, "
              f"median {row['median_seconds']} s/question (mean {row['mean_seconds']}), "
              f"load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
        for example in row["unsound_examples"]:
            print(f"    unsound: {example[:300]}")
        for example in row["raised_examples"]:
            print(f"    raised: {example[:300]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "spider"))
    parser.add_argument("--depth", type=int, default=0)
    parser.add_argument("--loose-depth", type=int, default=DEFAULT_LOOSE_DEPTH,
                        help="bracket levels past --depth kept as balanced free text in the masks")
    parser.add_argument("--max-whitespace", type=int, default=DEFAULT_MAX_WHITESPACE)
    parser.add_argument("--index", action="store_true", help="also time outlines-core Index builds")
    parser.add_argument("--dbs", default="", help="comma-separated db_ids (default: all dev databases)")
    parser.add_argument("--execute", action="store_true", help="also run accepted gold queries read-only")
    parser.add_argument("--walk", type=int, default=0, help="random walks per database (soundness)")
    parser.add_argument("--analytical", default=str(ANALYTICAL),
                        help="the analytical query set (JSON list of db_id, question, query); '' to skip")
    parser.add_argument("--generate", type=int, default=0,
                        help="dev questions through generate_sql, built-in model and uniform denoiser")
    parser.add_argument("--progress", action="store_true", help="with --generate: a line per question as it ends")
    parser.add_argument("--skip", type=int, default=0,
                        help="with --generate: leave out the sample's first N questions (going on with a stopped run, "
                             "each question keeping its seed)")
    parser.add_argument("--denoisers", choices=("both", "model", "uniform"), default="both",
                        help="which denoisers --generate runs")
    args = parser.parse_args()

    data = Path(args.data)
    dev = json.loads((data / "dev.json").read_text())
    wanted = set(filter(None, args.dbs.split(","))) or {x["db_id"] for x in dev}
    by_db: dict[str, list[str]] = collections.defaultdict(list)
    for example in dev:
        if example["db_id"] in wanted:
            by_db[example["db_id"]].append(example["query"])
    analytical: dict[str, list[str]] = collections.defaultdict(list)
    for example in json.loads(Path(args.analytical).read_text()) if args.analytical else []:
        if example["db_id"] in wanted:
            analytical[example["db_id"]].append(example["query"])

    vocabularies = {}
    if args.index:
        from benchmarks.mistral_vocab import load
        from constrained.default_model import load_default
        from constrained.vocabulary import as_vocabulary

        vocabularies = {"bytes": byte_vocabulary(), "builtin": as_vocabulary(load_default()[1]),
                        "sp32k": load("sp32k").vocabulary}

    soundness: collections.Counter[str] = collections.Counter()
    accepted = total = 0
    causes: collections.Counter[str] = collections.Counter()
    examples: dict[str, str] = {}
    exec_failures = 0
    analytical_accepted, analytical_refused = 0, []
    for db_id in sorted(by_db):
        path = data / "database" / db_id / f"{db_id}.sqlite"
        started = time.perf_counter()
        constraint = sql(path, depth=args.depth, max_whitespace=args.max_whitespace, loose_depth=args.loose_depth)
        compile_s = time.perf_counter() - started
        patterns = [re.compile(p) for p in constraint.patterns]
        row = {"db": db_id, "pattern_chars": len(constraint.pattern), "regex_s": round(compile_s, 2)}
        for name, vocabulary in vocabularies.items():
            started = time.perf_counter()
            dfa = build_token_dfa(constraint.pattern, vocabulary, also=constraint.also_matches, timeout_s=600,
                                  cached=False)
            row[f"bind_{name}_s"] = round(time.perf_counter() - started, 2)
            row[f"states_{name}"] = dfa.n_states
        db_ok = 0
        for query in by_db[db_id]:
            pattern_ok = all(p.fullmatch(query) for p in patterns)
            problem = constraint.check(query) if pattern_ok else None
            total += 1
            if pattern_ok and problem is None:
                accepted += 1
                db_ok += 1
                if args.execute:
                    try:
                        execute_readonly(path, query, timeout_s=10)
                    except Exception:  # noqa: BLE001 - counted and reported
                        exec_failures += 1
            else:
                key = cause(pattern_ok, problem, query)
                causes[key] += 1
                examples.setdefault(key, f"{query}  [{problem}]" if problem else query)
        row["accepted"] = f"{db_ok}/{len(by_db[db_id])}"
        if analytical[db_id]:
            why = [(refusal(patterns, constraint, query), query) for query in analytical[db_id]]
            refused = [(reason, query) for reason, query in why if reason is not None]
            analytical_accepted += len(why) - len(refused)
            analytical_refused += refused
            row["analytical"] = f"{len(why) - len(refused)}/{len(why)}"
        if args.walk:
            walk_counts = random_walks(constraint, path, args.walk, soundness)
            row["walks"] = walk_counts
        print(json.dumps(row), flush=True)

    print(f"\ncompleteness at depth {args.depth}: {accepted}/{total} = {100 * accepted / max(total, 1):.1f}%")
    for key, count in causes.most_common():
        print(f"  {count:4d}  {key}\n        e.g. {examples[key][:220]}")
    count = sum(len(queries) for queries in analytical.values())
    if count:  # the dictionary gets a key per database looked up, so its size says nothing
        print(f"analytical set: {analytical_accepted}/{count} = {100 * analytical_accepted / count:.1f}% accepted")
        for reason, query in sorted(analytical_refused):
            print(f"    refused by the {reason[:100]}: {query[:200]}")
    if args.execute:
        print(f"accepted gold queries failing to execute: {exec_failures}")
    if args.walk:
        print(f"random walks: {dict(soundness)}")
    if args.generate:
        generation_report([x for x in dev if x["db_id"] in wanted], data, args.generate, args.denoisers,
                          progress=args.progress, skip=args.skip)


if __name__ == "__main__":
    main()
