"""MaskBench passing over ../shared/data/maskbench: every chosen schema compiled, and its instances checked, at
text level.

Ours is ``constrained.json_schema(schema)`` then ``.compile()``, timed together. A schema is *compiled*,
*unsupported* (``UnsupportedSchema`` or ``SchemaError``) or *failed* (anything else, ``CompileTimeout``
included). It *passes* MaskBench when it compiles, every valid instance is accepted and every invalid one
rejected, an instance being the text ``json.dumps(data, ensure_ascii=False)``. An *invalidation error* is an
invalid instance accepted: the one mistake a constrained generator must never make. Schemas with no tests pass
when they compile.

Text-level runs touch no tokenizer, so the whole benchmark (7,732 schemas) is bounded by the compile bound
``--compile-timeout`` per schema; schemas slower than ``--slow`` seconds are listed. The cost of the masks is
the other benchmark, :mod:`benchmarks.maskbench_mask_cost`.

    python -m benchmarks.maskbench_passing ../shared/data/maskbench --jobs 2          # all splits
    python -m benchmarks.maskbench_passing DIR --splits Handwritten JME --limit 50 --json
    python -m benchmarks.maskbench_passing DIR --sample 150 --jobs 2                 # weighted by split size
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import signal
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.maskbench_data import (
    compile_ours,
    fmt,
    instance_text,
    machine,
    main_of,
    parsed,
    parser_with_common_options,
    progress,
    quantiles,
    read_split,
    split_size,
)
from constrained.errors import SchemaError, UnsupportedSchema

# ------------------------------------------------------------------------------------------- text level


def passing_selection(directory: Path, split: str, args: argparse.Namespace) -> frozenset[int] | None:
    """``--sample N``: N line numbers of the split drawn at random (seeded per split), else everything."""
    if not args.sample:
        return None
    size = split_size(directory, split)
    return frozenset(random.Random(f"{args.seed}:{split}").sample(range(size), min(args.sample, size)))


class Hang(TimeoutError):
    """A schema's whole evaluation outran its watchdog (compiling the text regex is not bounded in itself)."""


def _watchdog(signum, frame) -> None:
    raise Hang("evaluation outran its watchdog")


def evaluate_schema(item: dict, timeout_s: float) -> dict:
    """One schema at text level, under a watchdog of twice the compile bound: status, compile time, instances."""
    previous = signal.signal(signal.SIGALRM, _watchdog)
    signal.setitimer(signal.ITIMER_REAL, 2 * timeout_s + 10)
    try:
        return _evaluate_schema(item, timeout_s)
    except Hang:
        return {"id": item["id"], "tests": len(item["tests"]), "status": "failed", "reason": "Hang",
                "compile_s": 2 * timeout_s + 10}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _evaluate_schema(item: dict, timeout_s: float) -> dict:
    result: dict[str, Any] = {"id": item["id"], "tests": len(item["tests"])}
    start = time.perf_counter()
    try:
        constraint = compile_ours(item["schema"], timeout_s)
    except (UnsupportedSchema, SchemaError) as error:
        result.update(status="unsupported", reason=_reason(error), compile_s=time.perf_counter() - start)
        return result
    except Hang:
        raise
    except Exception as error:  # noqa: BLE001 - the benchmark counts every other failure as such
        result.update(status="failed", reason=_reason(error), compile_s=time.perf_counter() - start)
        return result
    result.update(status="compiled", compile_s=time.perf_counter() - start)
    invalid_accepted = valid_rejected = errors = 0
    for test in item["tests"]:
        try:
            accepted = constraint.accepts(instance_text(test["data"]))
        except Hang:
            raise
        except Exception:  # noqa: BLE001 - a crash on an instance fails the schema
            errors += 1
            continue
        invalid_accepted += accepted and not test["valid"]
        valid_rejected += test["valid"] and not accepted
    result.update(invalid_accepted=invalid_accepted, valid_rejected=valid_rejected, accept_errors=errors,
                  passing=invalid_accepted == valid_rejected == errors == 0)
    return result


def _reason(error: Exception) -> str:
    if isinstance(error, UnsupportedSchema):
        return f"UnsupportedSchema:{error.keyword}"
    return type(error).__name__


def _shard(directory: Path, split: str, limit: int | None, select: frozenset[int] | None, timeout_s: float,
           shard: int, shards: int, queue) -> None:
    """A worker: every ``shards``-th schema of the split from ``shard`` on, results onto ``queue``."""
    for n, item in enumerate(read_split(directory, split, limit, select)):
        if n % shards == shard:
            queue.put((n, evaluate_schema(item, timeout_s)))
    queue.put(None)


def evaluate_split(directory: Path, split: str, args: argparse.Namespace) -> list[dict]:
    """Every schema of the split, in file order, spread over ``--jobs`` worker processes.

    Plain (non-daemonic) processes rather than a pool: each compile forks its own bounded child, which
    daemonic pool workers may not do.
    """
    select = passing_selection(directory, split, args)
    if args.jobs <= 1:
        return [evaluate_schema(item, args.compile_timeout)
                for item in read_split(directory, split, args.limit, select)]
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [context.Process(target=_shard, args=(directory, split, args.limit, select, args.compile_timeout, shard,
                                                      args.jobs, queue)) for shard in range(args.jobs)]
    for worker in workers:
        worker.start()
    results, running = {}, len(workers)
    while running:
        message = queue.get()
        if message is None:
            running -= 1
        else:
            results[message[0]] = message[1]
    for worker in workers:
        worker.join()
    return [results[n] for n in sorted(results)]


def passing_split(directory: Path, split: str, args: argparse.Namespace) -> dict:
    """Text-level figures of one split."""
    results = evaluate_split(directory, split, args)
    statuses = Counter(r["status"] for r in results)
    compiled = [r for r in results if r["status"] == "compiled"]
    passing = sum(r["passing"] for r in compiled)
    compile_ms = [r["compile_s"] * 1e3 for r in compiled]
    return {
        "split_size": split_size(directory, split),
        "schemas": len(results),
        "compiled": statuses["compiled"],
        "unsupported": statuses["unsupported"],
        "failed": statuses["failed"],
        "no_tests": sum(r["tests"] == 0 for r in results),
        "passing": passing,
        "passing_rate": passing / len(results) if results else None,
        "invalidation_errors": sum(r["invalid_accepted"] for r in compiled),
        "invalidation_schemas": [r["id"] for r in compiled if r["invalid_accepted"]],
        "valid_rejected": sum(r["valid_rejected"] for r in compiled),
        "valid_rejected_schemas": [r["id"] for r in compiled if r["valid_rejected"]],
        "accept_errors": sum(r["accept_errors"] for r in compiled),
        "compile_ms": quantiles(compile_ms),
        "reasons": dict(Counter(r["reason"] for r in results if "reason" in r).most_common()),
        "slow": [{"id": r["id"], "s": round(r["compile_s"], 1), "status": r["status"]}
                 for r in results if r["compile_s"] > args.slow],
        "_compile_ms": compile_ms,
    }


# ---------------------------------------------------------------------------------------------- driver


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = parser_with_common_options(__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="first N schemas per split")
    parser.add_argument("--sample", type=int, default=None,
                        help="a seeded random N schemas per split (overall rate weighted by split)")
    parser.add_argument("--slow", type=float, default=5.0, help="list schemas compiling slower than this (s)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    return parsed(parser, argv)


def run(args: argparse.Namespace, splits: list[str]) -> dict[str, dict]:
    """Per split, its passing figures (raw compile times kept for pooling)."""
    per_split = {}
    for split in splits:
        per_split[split] = {"passing": passing_split(args.directory, split, args)}
        progress(f"{split}: passing {per_split[split]['passing']['passing']}/{per_split[split]['passing']['schemas']}")
    return per_split


def summarise(per_split: dict[str, dict], args: argparse.Namespace) -> dict:
    """Overall figures from the per-split ones (compile-time quantiles over the pooled raw times)."""
    summary: dict[str, Any] = {"splits": {}, **machine()}
    passing = [s["passing"] for s in per_split.values() if "passing" in s]
    if passing:
        schemas = sum(p["schemas"] for p in passing)
        summary.update(
            schemas=schemas,
            compiled=sum(p["compiled"] for p in passing),
            unsupported=sum(p["unsupported"] for p in passing),
            failed=sum(p["failed"] for p in passing),
            passing=sum(p["passing"] for p in passing),
            passing_rate=_weighted_rate(passing) if args.sample else
            (sum(p["passing"] for p in passing) / schemas if schemas else None),
            sampled=bool(args.sample),
            compile_ms=quantiles([ms for p in passing for ms in p.get("_compile_ms", [])]),
            invalidation_errors=sum(p["invalidation_errors"] for p in passing),
            valid_rejected=sum(p["valid_rejected"] for p in passing),
        )
    for split, parts in per_split.items():
        if "passing" in parts:
            summary["splits"][split] = {k: v for k, v in parts["passing"].items() if not k.startswith("_")}
    if args.compile_timeout:
        summary["compile_timeout_s"] = args.compile_timeout
    if passing:
        summary["compile_ms_by_split_p50"] = {split: s["passing"]["compile_ms"]["p50"]
                                              for split, s in per_split.items() if "passing" in s}
    return summary


def _weighted_rate(passing: list[dict]) -> float | None:
    """The whole benchmark's rate estimated from per-split samples: each split weighs by its full size."""
    total = sum(p["split_size"] for p in passing if p["schemas"])
    return sum(p["passing_rate"] * p["split_size"] for p in passing if p["schemas"]) / total if total else None


def render(summary: dict) -> None:
    """The passing table, per split and overall."""
    from rich.console import Console
    from rich.table import Table

    if "passing_rate" not in summary:
        return
    console = Console(width=max(Console().width, 140))
    table = Table(title=f"MaskBench passing (text level, compile bound {summary.get('compile_timeout_s')} s)")
    for column in ("split", "schemas", "compiled", "unsupported", "failed", "passing", "rate",
                   "invalid accepted", "valid rejected", "compile p50 ms", "compile p99 ms"):
        table.add_column(column, justify="right")
    for split, entry in summary["splits"].items():
        table.add_row(split, str(entry["schemas"]), str(entry["compiled"]), str(entry["unsupported"]),
                      str(entry["failed"]), str(entry["passing"]), f"{entry['passing_rate']:.1%}",
                      str(entry["invalidation_errors"]), str(entry["valid_rejected"]),
                      fmt(entry["compile_ms"]["p50"]), fmt(entry["compile_ms"]["p99"]))
    table.add_row("all", str(summary["schemas"]), str(summary["compiled"]), str(summary["unsupported"]),
                  str(summary["failed"]), str(summary["passing"]), f"{summary['passing_rate']:.1%}",
                  str(summary["invalidation_errors"]), str(summary["valid_rejected"]), "", "")
    console.print(table)


def main(argv: Sequence[str] | None = None) -> dict:
    return main_of(parse_args(argv), run, summarise, render)


if __name__ == "__main__":
    main()
