"""What the two MaskBench benchmarks share: the splits on disk, an instance's text, our compile under the
benchmark's bound, the summaries' quantiles, and the command's common options and driver.

The benchmarks themselves: :mod:`benchmarks.maskbench_passing` (text-level passing of every chosen schema) and
:mod:`benchmarks.maskbench_mask_cost` (canvas mask cost beside the peers, on a sample).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gzip
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

import constrained
from constrained.json_schema import json_schema

SPLITS = ("Glaiveai2K", "Github_easy", "Github_medium", "Snowplow", "Handwritten", "Synthesized", "JME", "BFCL")


def read_split(directory: Path, split: str, limit: int | None = None,
               select: frozenset[int] | None = None) -> Iterator[dict]:
    """The split's schemas in file order: the first ``limit``, or those whose line numbers are in ``select``."""
    with gzip.open(directory / f"{split}.jsonl.gz", "rt", encoding="utf-8") as lines:
        for n, line in enumerate(lines):
            if limit is not None and n >= limit:
                return
            if select is None or n in select:
                yield json.loads(line)


def split_size(directory: Path, split: str) -> int:
    with gzip.open(directory / f"{split}.jsonl.gz", "rt", encoding="utf-8") as lines:
        return sum(1 for _ in lines)


def chosen_splits(args: argparse.Namespace) -> list[str]:
    """``--splits``, or every split with a file in the folder; exits naming a chosen split that has none."""
    splits = args.splits or [s for s in SPLITS if (args.directory / f"{s}.jsonl.gz").exists()]
    missing = [s for s in splits if not (args.directory / f"{s}.jsonl.gz").exists()]
    if missing:
        raise SystemExit(f"no split file for {', '.join(missing)} in {args.directory}")
    return splits


def instance_text(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False)


def quantiles(values: Sequence[float]) -> dict[str, float | int | None]:
    """mean, p50, p99 (nearest rank) and n; ``None`` when there is nothing to summarise."""
    if not values:
        return {"mean": None, "p50": None, "p99": None, "n": 0}
    ordered = sorted(values)
    rank = lambda q: ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered))) - 1))]
    return {"mean": statistics.fmean(ordered), "p50": rank(0.50), "p99": rank(0.99), "n": len(ordered)}


def compile_ours(schema: Any, timeout_s: float) -> constrained.Constraint:
    """``json_schema`` then ``compile`` under the benchmark's compile bound."""
    constraint = dataclasses.replace(json_schema(schema), compile_timeout_s=timeout_s)
    return constraint.compile()


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    """What the figures were measured on: CPUs seen and the load average."""
    return {"load_average": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}


def parser_with_common_options(description: str) -> argparse.ArgumentParser:
    """The options both benchmarks take: the data folder, splits, compile bound, seed, cache and output."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("directory", type=Path, nargs="?",
                        help="folder of <split>.jsonl.gz files (../shared/data/maskbench)")
    parser.add_argument("--splits", nargs="+", default=None, help="splits to run (default: all present)")
    parser.add_argument("--compile-timeout", type=float, default=10.0, help="bound per compile (s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=None,
                        help="automaton cache folder (default: a fresh one, so compile times are cold)")
    parser.add_argument("--json", action="store_true", help="print one machine-readable summary line last")
    parser.add_argument("--dump", type=Path, help="write the per-split results (raw timings included) to this file")
    parser.add_argument("--merge", type=Path, nargs="+",
                        help="summarise earlier --dump files (e.g. one run per split) instead of running")
    return parser


def parsed(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if args.directory is None and not args.merge:
        parser.error("DIR is required unless --merge is given")
    return args


@contextlib.contextmanager
def automaton_cache(folder: Path | None) -> Iterator[None]:
    """Our automata cached in ``folder``, or in a fresh temporary one (cold compile times) when it is None."""
    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="maskbench-cache-")))
        previous = os.environ.get("CONSTRAINED_CACHE")
        os.environ["CONSTRAINED_CACHE"] = str(folder)
        try:
            yield
        finally:
            if previous is None:
                del os.environ["CONSTRAINED_CACHE"]
            else:
                os.environ["CONSTRAINED_CACHE"] = previous


def main_of(args: argparse.Namespace, run: Callable[[argparse.Namespace, list[str]], dict[str, dict]],
            summarise: Callable[[dict[str, dict], argparse.Namespace], dict],
            render: Callable[[dict], None]) -> dict:
    """A benchmark's command: per split results from a run (one thread, a cache folder) or from ``--merge``d
    dumps, then ``--dump``, the summary, its tables, and with ``--json`` the summary as the last line."""
    if args.merge:
        per_split: dict[str, dict] = {}
        for path in args.merge:
            for split, parts in json.loads(path.read_text()).items():
                per_split.setdefault(split, {}).update(parts)
    else:
        torch.set_num_threads(1)
        with automaton_cache(args.cache):
            per_split = run(args, chosen_splits(args))
    if args.dump:
        args.dump.write_text(json.dumps(per_split))
    summary = summarise(per_split, args)
    render(summary)
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    return summary
