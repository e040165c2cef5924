"""MaskBench over ../shared/data/maskbench: text-level passing, and canvas mask cost beside three peers.

Two parts, one run:

1. **Passing** (every schema of the chosen splits, text level). Ours is ``constrained.json_schema(schema)``
   then ``.compile()``, timed together. A schema is *compiled*, *unsupported* (``UnsupportedSchema`` or
   ``SchemaError``) or *failed* (anything else, ``CompileTimeout`` included). It *passes* MaskBench when it
   compiles, every valid instance is accepted and every invalid one rejected, an instance being the text
   ``json.dumps(data, ensure_ascii=False)``. An *invalidation error* is an invalid instance accepted: the one
   mistake a constrained generator must never make. Schemas with no tests pass when they compile.

2. **Mask cost** (a sample: the first ``--mask-schemas`` compiled schemas per split, up to
   ``--mask-instances`` valid instances each, on a real vocabulary that mistral-common ships). Each instance is
   tokenized exactly (instances its tokenizer cannot spell byte for byte are skipped and counted). Ours
   simulates a denoising run: a canvas of ``max(256, tokens + padding)`` positions holding the instance then
   end tokens, revealed in random order, ``k`` positions a step with ``k`` drawn from ``L/48 .. L/12``; each
   step times ``canvas.packed_masks(copy=False)`` (every position's mask, in the canvas's own buffer, which
   a sampler reads or moves to its device before the next step) plus the ``decide`` of the revealed tokens.
   µs per generated token is a step's time over the ``k`` tokens it revealed. The peers (llguidance,
   XGrammar, outlines-core) compute autoregressive masks for the same token ids over the same vocabulary, one
   per token (the text's tokens, then the end token), each timed with its advance. Only mask work is timed:
   binding and grammar compilation are reported apart, and so is setting up a run (the peers' matcher and
   bitmask; our canvas, its all-open sweeps and its mask buffer, as ``canvas_setup_us``). Every revealed
   token is checked against the mask it was revealed under (a miss would be a completeness bug, reported
   as ``mask_misses``).

Text-level runs touch no tokenizer, so the whole benchmark (7,732 schemas) is bounded by the compile bound
``--compile-timeout`` per schema; schemas slower than ``--slow`` seconds are listed.

    python benchmarks/maskbench.py ../shared/data/maskbench                       # all splits, sp32k sample
    python benchmarks/maskbench.py DIR --splits Handwritten JME --limit 50 --json
    python benchmarks/maskbench.py DIR --tokenizer tekken131k --mask-schemas 5 --no-passing
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import multiprocessing
import os
import pickle
import random
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from mistral_vocab import MistralVocab, load  # noqa: E402

import constrained  # noqa: E402
from constrained.errors import SchemaError, UnsupportedSchema  # noqa: E402

SPLITS = ("Glaiveai2K", "Github_easy", "Github_medium", "Snowplow", "Handwritten", "Synthesized", "JME", "BFCL")
PEERS = ("llguidance", "xgrammar", "outlines_core")
CANVAS = 256


# ---------------------------------------------------------------------------------------------------- data


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


def passing_selection(directory: Path, split: str, args: argparse.Namespace) -> frozenset[int] | None:
    """``--sample N``: N line numbers of the split drawn at random (seeded per split), else everything."""
    if not args.sample:
        return None
    size = split_size(directory, split)
    return frozenset(random.Random(f"{args.seed}:{split}").sample(range(size), min(args.sample, size)))


def instance_text(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False)


def quantiles(values: Sequence[float]) -> dict[str, float | int | None]:
    """mean, p50, p99 (nearest rank) and n; ``None`` when there is nothing to summarise."""
    if not values:
        return {"mean": None, "p50": None, "p99": None, "n": 0}
    ordered = sorted(values)
    rank = lambda q: ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered))) - 1))]  # noqa: E731
    return {"mean": statistics.fmean(ordered), "p50": rank(0.50), "p99": rank(0.99), "n": len(ordered)}


# ------------------------------------------------------------------------------------------- text level


def compile_ours(schema: Any, timeout_s: float) -> constrained.Constraint:
    """``json_schema`` then ``compile`` under the benchmark's compile bound."""
    constraint = dataclasses.replace(constrained.json_schema(schema), compile_timeout_s=timeout_s)
    return constraint.compile()


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
        "compiled_ids": [r["id"] for r in compiled],
        "_compile_ms": compile_ms,
    }


# ------------------------------------------------------------------------------------------------ peers


class _PeerTokenizer:
    """What ``llguidance.TokenizerWrapper`` reads: bytes per id, the end token, and a tokenize callable."""

    def __init__(self, vocab: MistralVocab) -> None:
        self.eos_token_id = vocab.eos_id
        self.bos_token_id = None
        self.tokens = vocab.peer_pieces
        self.special_token_ids = vocab.special_ids
        self._vocab = vocab

    def __call__(self, text: str | bytes) -> list[int]:
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        return self._vocab._encode(text)


class Peers:
    """The three peers, each set up once for the vocabulary; per schema they compile, then mask token by token."""

    def __init__(self, vocab: MistralVocab, timeout_s: float) -> None:
        import llguidance
        import outlines_core
        import xgrammar

        self.vocab = vocab
        self.timeout_s = timeout_s
        self.words = (vocab.size + 31) // 32
        self.lltokenizer = llguidance.LLTokenizer(llguidance.TokenizerWrapper(_PeerTokenizer(vocab)))
        info = xgrammar.TokenizerInfo([p or b"" for p in vocab.token_bytes], xgrammar.VocabType.RAW,
                                      vocab_size=vocab.size, stop_token_ids=[vocab.eos_id])
        self.xgrammar_compiler = xgrammar.GrammarCompiler(info, max_threads=1, cache_enabled=False)
        spelled: dict[bytes, list[int]] = {}
        for token_id, piece in enumerate(vocab.token_bytes):
            if piece is not None:
                spelled.setdefault(piece, []).append(token_id)
        self.outlines_vocabulary = outlines_core.Vocabulary(vocab.eos_id, spelled)

    def compile(self, name: str, schema: dict) -> Any:
        """The peer's matcher factory for ``schema``; raises when the peer cannot compile it."""
        if name == "llguidance":
            import llguidance

            grammar = llguidance.LLMatcher.grammar_from_json_schema(schema)
            matcher = llguidance.LLMatcher(self.lltokenizer, grammar, log_level=0)
            if matcher.is_error():
                raise RuntimeError(matcher.get_error()[:200])
            return grammar
        if name == "xgrammar":
            return self.xgrammar_compiler.compile_json_schema(json.dumps(schema), any_whitespace=True,
                                                              strict_mode=False)
        return _bounded_outlines_index(json.dumps(schema), self.outlines_vocabulary, self.timeout_s)

    def run(self, name: str, compiled: Any, tokens: list[int]) -> tuple[list[float], bool, int]:
        """Per-token µs (mask + advance) over ``tokens`` then the end token.

        Also whether the peer accepted every token (timing stops at the first it refuses) and how many
        tokens it accepted although its own mask had left them out (llguidance's masks keep to the canonical
        tokenization of forced text, so a valid but non-canonical token can be refused by the mask alone).
        """
        sequence = tokens + [self.vocab.eos_id]
        if name == "llguidance":
            return self._run_llguidance(compiled, sequence)
        if name == "xgrammar":
            return self._run_xgrammar(compiled, sequence)
        return self._run_outlines(compiled, sequence)

    def _run_llguidance(self, grammar: str, sequence: list[int]) -> tuple[list[float], bool, int]:
        import llguidance

        matcher = llguidance.LLMatcher(self.lltokenizer, grammar, log_level=0)
        bitmask = np.zeros(self.words, dtype=np.int32)
        pointer, size = bitmask.ctypes.data, bitmask.nbytes
        timings, outside = [], 0
        for token in sequence:
            start = time.perf_counter_ns()
            matcher.unsafe_compute_mask_ptr(pointer, size)
            accepted = matcher.consume_token(token)
            timings.append((time.perf_counter_ns() - start) / 1e3)
            if not accepted or matcher.is_error():
                return timings, False, outside
            outside += not _bit(bitmask, token)
        return timings, True, outside

    def _run_xgrammar(self, compiled: Any, sequence: list[int]) -> tuple[list[float], bool, int]:
        import xgrammar

        matcher = xgrammar.GrammarMatcher(compiled)
        bitmask = xgrammar.allocate_token_bitmask(1, self.vocab.size)
        timings, outside = [], 0
        for token in sequence:
            start = time.perf_counter_ns()
            matcher.fill_next_token_bitmask(bitmask)
            accepted = matcher.accept_token(token)
            timings.append((time.perf_counter_ns() - start) / 1e3)
            if not accepted:
                return timings, False, outside
            outside += not _bit(bitmask[0].numpy(), token)
        return timings, True, outside

    def _run_outlines(self, index: Any, sequence: list[int]) -> tuple[list[float], bool, int]:
        import outlines_core

        guide = outlines_core.Guide(index)
        bitmask = np.zeros(self.words, dtype=np.int32)
        pointer = bitmask.ctypes.data
        timings = []
        for token in sequence:
            start = time.perf_counter_ns()
            guide.write_mask_into(pointer, self.words, 4)
            allowed = _bit(bitmask, token)
            if allowed and token != self.vocab.eos_id:  # outlines-core has no transition on the end token
                guide.advance(token, return_tokens=False)
            timings.append((time.perf_counter_ns() - start) / 1e3)
            if not allowed:  # its advance follows its mask: a token outside it is refused
                return timings, False, 0
        return timings, True, 0


def _bit(bitmask: np.ndarray, token: int) -> bool:
    return bool((int(bitmask[token // 32]) >> (token % 32)) & 1)


def _outlines_child(regex_schema: str, vocabulary: Any, conn) -> None:
    from outlines_core import Index
    from outlines_core.json_schema import build_regex_from_schema

    try:
        conn.send(("ok", pickle.dumps(Index(build_regex_from_schema(regex_schema), vocabulary))))
    except Exception as error:  # noqa: BLE001 - reported as the peer's compile failure
        conn.send(("error", f"{type(error).__name__}: {str(error)[:200]}"))
    finally:
        conn.close()


def _bounded_outlines_index(schema_json: str, vocabulary: Any, timeout_s: float) -> Any:
    """outlines-core's Index for the schema, built in a child under a time bound (determinization can blow up)."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_outlines_child, args=(schema_json, vocabulary, sender), daemon=True)
    process.start()
    sender.close()
    try:
        if not receiver.poll(timeout_s):
            raise TimeoutError(f"outlines-core Index took longer than {timeout_s:g} s")
        status, payload = receiver.recv()
    except EOFError:
        raise RuntimeError("outlines-core Index build died") from None
    finally:
        process.kill()
        process.join()
        receiver.close()
    if status != "ok":
        raise RuntimeError(payload)
    return pickle.loads(payload)


# ----------------------------------------------------------------------------------------------- ours


@dataclasses.dataclass
class Simulation:
    """One denoising run of ours: per step its µs, tokens revealed, and the share of it spent on the masks;
    and how many open positions' masks changed from the step before (the first step: all of them), which is
    how many masks the run had to produce where an autoregressive engine produces one per token."""

    step_us: list[float]
    revealed: list[int]
    masks_us: list[float]
    length: int
    mask_misses: int
    setup_us: float
    rows_changed: int


def simulate(bound: constrained.BoundConstraint, tokens: list[int], rng: random.Random, padding: int) -> Simulation:
    """Reveal the instance (then end tokens) on a fresh canvas in random order, timing every step."""
    length = max(CANVAS, len(tokens) + padding)
    target = tokens + [bound.eos_token_ids[0]] * (length - len(tokens))
    order = list(range(length))
    rng.shuffle(order)
    low, high = max(1, round(length / 48)), max(1, round(length / 12))
    start = time.perf_counter_ns()
    canvas = bound.canvas(length)  # the sweeps of the all-open canvas, and its mask buffer
    setup_us = (time.perf_counter_ns() - start) / 1e3
    steps, revealed, masks_us, misses, rows_changed = [], [], [], 0, 0
    previous = None
    is_open = np.ones(length, dtype=bool)
    done = 0
    while done < length:
        chunk = order[done: done + rng.randint(low, high)]
        decisions = {i: target[i] for i in chunk}
        start = time.perf_counter_ns()
        masks = canvas.packed_masks(copy=False)  # the bitmask layout the peers fill, every position, in place
        middle = time.perf_counter_ns()
        canvas.decide(decisions)
        end = time.perf_counter_ns()
        words = masks.numpy()
        misses += sum(not _bit(words[i], t) for i, t in decisions.items())
        changed = is_open if previous is None else is_open & (words != previous).any(axis=1)
        rows_changed += int(changed.sum())
        previous = words.copy()
        is_open[chunk] = False
        steps.append((end - start) / 1e3)
        masks_us.append((middle - start) / 1e3)
        revealed.append(len(chunk))
        done += len(chunk)
    return Simulation(steps, revealed, masks_us, length, misses, setup_us, rows_changed)


# ------------------------------------------------------------------------------------------- mask cost


def mask_cost_split(directory: Path, split: str, compiled_ids: set[str] | None, vocab: MistralVocab,
                    peers: Peers | None, args: argparse.Namespace, rng: random.Random) -> dict:
    """Ours and the peers on the first compiled schemas of a split."""
    per_token: dict[str, list[float]] = {"ours": [], **{p: [] for p in PEERS}}
    text_token_us: list[float] = []
    steps: list[float] = []
    canvas_masks: list[float] = []
    canvas_setup: list[float] = []
    bind_ms: list[float] = []
    peer_compile_ms: dict[str, list[float]] = {p: [] for p in PEERS}
    peer_failed: dict[str, list[str]] = {p: [] for p in PEERS}
    peer_rejected: dict[str, int] = dict.fromkeys(PEERS, 0)
    peer_outside: dict[str, int] = dict.fromkeys(PEERS, 0)
    counts = Counter()
    for item in read_split(directory, split, None):
        if counts["schemas"] >= args.mask_schemas:
            break
        if compiled_ids is not None and item["id"] not in compiled_ids:
            continue
        texts = [instance_text(t["data"]) for t in item["tests"] if t["valid"]]
        if not texts:
            continue
        try:
            constraint = compile_ours(item["schema"], args.compile_timeout)
        except Exception:  # noqa: BLE001 - not compiled: not in the sample
            continue
        sequences = []
        for text in texts[: args.mask_instances]:
            tokens = vocab.tokenize(text)
            if tokens is None:
                counts["untokenizable"] += 1
            elif not constraint.accepts(text):
                counts["rejected_by_ours"] += 1
            else:
                sequences.append(tokens)
        if not sequences:
            continue
        start = time.perf_counter()
        try:
            bound = constraint.bind(vocab.vocabulary)
        except Exception as error:  # noqa: BLE001 - counted, the sample moves on
            counts[f"bind_failed:{type(error).__name__}"] += 1
            continue
        bind_ms.append((time.perf_counter() - start) * 1e3)
        counts["schemas"] += 1
        compiled_peers = {}
        for name in PEERS if peers else ():
            start = time.perf_counter()
            try:
                compiled_peers[name] = peers.compile(name, item["schema"])
                peer_compile_ms[name].append((time.perf_counter() - start) * 1e3)
            except Exception as error:  # noqa: BLE001 - the peer cannot compile this schema
                peer_failed[name].append(f"{item['id']}: {type(error).__name__}: {str(error)[:120]}")
        for tokens in sequences:
            counts["instances"] += 1
            counts["text_tokens"] += len(tokens)
            run = simulate(bound, tokens, rng, args.padding)
            counts["mask_misses"] += run.mask_misses
            counts["mask_rows_changed"] += run.rows_changed
            counts["tokens_revealed"] += run.length
            steps += run.step_us
            canvas_setup.append(run.setup_us)
            per_token["ours"] += [us / k for us, k in zip(run.step_us, run.revealed) for _ in range(k)]
            text_token_us.append(sum(run.step_us) / (len(tokens) + 1))
            if run.length == CANVAS:
                canvas_masks += run.masks_us
            for name, compiled in compiled_peers.items():
                timings, accepted, outside = peers.run(name, compiled, tokens)
                per_token[name] += timings
                peer_rejected[name] += not accepted
                peer_outside[name] += outside
    return {
        "counts": dict(counts),
        "us_per_token": {name: quantiles(values) for name, values in per_token.items()},
        "us_per_text_token_ours": quantiles(text_token_us),
        "us_per_step": quantiles(steps),
        "canvas256_masks_us": quantiles(canvas_masks),
        "canvas_setup_us": quantiles(canvas_setup),
        "bind_ms": quantiles(bind_ms),
        "peer_compile_ms": {name: quantiles(values) for name, values in peer_compile_ms.items()},
        "peer_compile_failed": peer_failed,
        "peer_rejected_instances": peer_rejected,
        "peer_tokens_outside_own_mask": peer_outside,
        "_raw": {"per_token": per_token, "steps": steps, "canvas_masks": canvas_masks, "text_token": text_token_us,
                 "bind_ms": bind_ms, "canvas_setup": canvas_setup},
    }


# ---------------------------------------------------------------------------------------------- driver


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path, nargs="?",
                        help="folder of <split>.jsonl.gz files (../shared/data/maskbench)")
    parser.add_argument("--splits", nargs="+", default=None, help="splits to run (default: all present)")
    parser.add_argument("--limit", type=int, default=None, help="first N schemas per split for the passing run")
    parser.add_argument("--sample", type=int, default=None,
                        help="a seeded random N schemas per split for the passing run (overall rate weighted by split)")
    parser.add_argument("--tokenizer", choices=("sp32k", "tekken131k"), default="sp32k")
    parser.add_argument("--mask-schemas", type=int, default=20, help="compiled schemas per split timed (0: none)")
    parser.add_argument("--mask-instances", type=int, default=2, help="valid instances per sampled schema")
    parser.add_argument("--padding", type=int, default=16, help="end tokens after a long instance's tokens")
    parser.add_argument("--no-passing", action="store_true", help="skip the text-level passing run")
    parser.add_argument("--no-peers", action="store_true", help="time ours only")
    parser.add_argument("--compile-timeout", type=float, default=10.0, help="bound per compile (s)")
    parser.add_argument("--slow", type=float, default=5.0, help="list schemas compiling slower than this (s)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes for the passing run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=None,
                        help="automaton cache folder (default: a fresh one, so compile times are cold)")
    parser.add_argument("--json", action="store_true", help="print one machine-readable summary line last")
    parser.add_argument("--dump", type=Path, help="write the per-split results (raw timings included) to this file")
    parser.add_argument("--merge", type=Path, nargs="+",
                        help="summarise earlier --dump files (e.g. one run per split) instead of running")
    args = parser.parse_args(argv)
    if args.directory is None and not args.merge:
        parser.error("DIR is required unless --merge is given")
    return args


def run(args: argparse.Namespace) -> dict[str, dict]:
    """Per split, its passing figures and mask-cost sample (raw timings kept for pooling)."""
    torch.set_num_threads(1)
    if args.cache is None:
        with tempfile.TemporaryDirectory(prefix="maskbench-cache-") as cache:
            return run(argparse.Namespace(**{**vars(args), "cache": Path(cache)}))
    os.environ["CONSTRAINED_CACHE"] = str(args.cache)
    splits = args.splits or [s for s in SPLITS if (args.directory / f"{s}.jsonl.gz").exists()]
    missing = [s for s in splits if not (args.directory / f"{s}.jsonl.gz").exists()]
    if missing:
        raise SystemExit(f"no split file for {', '.join(missing)} in {args.directory}")
    per_split: dict[str, dict] = {split: {} for split in splits}

    if not args.no_passing:
        for split in splits:
            per_split[split]["passing"] = passing_split(args.directory, split, args)
            _progress(f"{split}: passing {per_split[split]['passing']['passing']}"
                      f"/{per_split[split]['passing']['schemas']}")

    if args.mask_schemas > 0:
        vocab = load(args.tokenizer)
        peers = None if args.no_peers else Peers(vocab, args.compile_timeout)
        rng = random.Random(args.seed)
        for split in splits:
            compiled = per_split[split].get("passing", {}).get("compiled_ids")
            per_split[split]["mask"] = mask_cost_split(args.directory, split, set(compiled) if compiled else None,
                                                       vocab, peers, args, rng)
            _progress(f"{split}: mask cost on {per_split[split]['mask']['counts'].get('schemas', 0)} schemas")
    return per_split


def summarise(per_split: dict[str, dict], args: argparse.Namespace) -> dict:
    """Overall figures from the per-split ones (quantiles over the pooled raw timings)."""
    summary: dict[str, Any] = {"tokenizer": args.tokenizer, "splits": {},
                               "load_average": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}
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
    masks = [s["mask"] for s in per_split.values() if "mask" in s]
    if masks:
        pooled = lambda key: [v for m in masks for v in m["_raw"][key]]  # noqa: E731
        summary["us_per_token"] = {
            name: quantiles([v for m in masks for v in m["_raw"]["per_token"][name]]) for name in ("ours", *PEERS)
        }
        summary["us_per_text_token_ours"] = quantiles(pooled("text_token"))
        summary["us_per_step"] = quantiles(pooled("steps"))
        summary["canvas256_masks_us"] = quantiles(pooled("canvas_masks"))
        summary["canvas_setup_us"] = quantiles(pooled("canvas_setup"))
        summary["bind_ms"] = quantiles(pooled("bind_ms"))
        summary["mask_counts"] = counts = dict(sum((Counter(m["counts"]) for m in masks), Counter()))
        if counts.get("mask_rows_changed"):  # what one mask costs each engine, beside how many each must make
            ours_total = sum(v for m in masks for v in m["_raw"]["per_token"]["ours"])
            summary["masks_per_token_ours"] = counts["mask_rows_changed"] / counts["tokens_revealed"]
            summary["us_per_mask"] = {"ours": ours_total / counts["mask_rows_changed"],
                                      **{p: summary["us_per_token"][p]["mean"] for p in PEERS}}
        summary["peer_compile_failed"] = {p: sum(len(m["peer_compile_failed"][p]) for m in masks) for p in PEERS}
        summary["peer_rejected_instances"] = {p: sum(m["peer_rejected_instances"][p] for m in masks) for p in PEERS}
        summary["peer_tokens_outside_own_mask"] = {
            p: sum(m.get("peer_tokens_outside_own_mask", {}).get(p, 0) for m in masks) for p in PEERS
        }
    for split, parts in per_split.items():
        entry = {}
        if "passing" in parts:
            entry.update({k: v for k, v in parts["passing"].items() if k != "compiled_ids" and not k.startswith("_")})
        if "mask" in parts:
            entry["mask"] = {k: v for k, v in parts["mask"].items() if k != "_raw"}
        summary["splits"][split] = entry
    if args.compile_timeout:
        summary["compile_timeout_s"] = args.compile_timeout
    compile_ms = [s["passing"]["compile_ms"] for s in per_split.values() if "passing" in s]
    if compile_ms:
        summary["compile_ms_by_split_p50"] = {split: s["passing"]["compile_ms"]["p50"]
                                              for split, s in per_split.items() if "passing" in s}
    return summary


def _weighted_rate(passing: list[dict]) -> float | None:
    """The whole benchmark's rate estimated from per-split samples: each split weighs by its full size."""
    total = sum(p["split_size"] for p in passing if p["schemas"])
    return sum(p["passing_rate"] * p["split_size"] for p in passing if p["schemas"]) / total if total else None


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------- output


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def render(summary: dict) -> None:
    """Readable tables: passing per split, then mask cost with ours/peer ratios."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 140))
    if "passing_rate" in summary:
        table = Table(title=f"MaskBench passing (text level, compile bound {summary.get('compile_timeout_s')} s)")
        for column in ("split", "schemas", "compiled", "unsupported", "failed", "passing", "rate",
                       "invalid accepted", "valid rejected", "compile p50 ms", "compile p99 ms"):
            table.add_column(column, justify="right")
        for split, entry in summary["splits"].items():
            if "schemas" not in entry:
                continue
            table.add_row(split, str(entry["schemas"]), str(entry["compiled"]), str(entry["unsupported"]),
                          str(entry["failed"]), str(entry["passing"]), f"{entry['passing_rate']:.1%}",
                          str(entry["invalidation_errors"]), str(entry["valid_rejected"]),
                          _fmt(entry["compile_ms"]["p50"]), _fmt(entry["compile_ms"]["p99"]))
        table.add_row("all", str(summary["schemas"]), str(summary["compiled"]), str(summary["unsupported"]),
                      str(summary["failed"]), str(summary["passing"]), f"{summary['passing_rate']:.1%}",
                      str(summary["invalidation_errors"]), str(summary["valid_rejected"]), "", "")
        console.print(table)
    if "us_per_token" in summary:
        ours = summary["us_per_token"]["ours"]
        table = Table(title=f"Mask cost per generated token, µs ({summary['tokenizer']}); ratio = ours / peer")
        for column in ("engine", "tokens", "mean", "p50", "p99", "ours/peer mean", "ours/peer p50",
                       "ours/peer p99"):
            table.add_column(column, justify="right")
        for name, figures in summary["us_per_token"].items():
            ratios = ["" if name == "ours" or not figures["n"] else _fmt(ours[q] / figures[q], 2)
                      for q in ("mean", "p50", "p99")]
            table.add_row(name, str(figures["n"]), _fmt(figures["mean"]), _fmt(figures["p50"]), _fmt(figures["p99"]),
                          *ratios)
        console.print(table)
        step, canvas = summary["us_per_step"], summary["canvas256_masks_us"]
        text = summary["us_per_text_token_ours"]
        console.print(
            f"ours per step: p50 {_fmt(step['p50'])} µs, p99 {_fmt(step['p99'])} µs over {step['n']} steps; "
            f"whole 256-position canvas masks: p50 {_fmt(canvas['p50'])} µs, p99 {_fmt(canvas['p99'])} µs; "
            f"ours per text token (whole run / (text tokens + 1)): mean {_fmt(text['mean'])} µs, "
            f"p50 {_fmt(text['p50'])}, p99 {_fmt(text['p99'])}; bind p50 {_fmt(summary['bind_ms']['p50'])} ms; "
            f"canvas set-up (untimed above, like the peers' matcher creation): p50 "
            f"{_fmt(summary['canvas_setup_us']['p50'])} µs, p99 {_fmt(summary['canvas_setup_us']['p99'])} µs"
        )
        if "us_per_mask" in summary:
            per_mask = ", ".join(f"{name} {_fmt(us, 2)}" for name, us in summary["us_per_mask"].items())
            console.print(f"masks made per generated token: ours {_fmt(summary['masks_per_token_ours'], 2)} "
                          f"(open rows that changed in a step), each peer 1; µs per mask made: {per_mask}")
        console.print(f"sample: {summary['mask_counts']}; peers that could not compile: "
                      f"{summary['peer_compile_failed']}; peers rejecting a valid instance: "
                      f"{summary['peer_rejected_instances']}; tokens a peer accepted outside its own mask: "
                      f"{summary['peer_tokens_outside_own_mask']}")


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.merge:
        per_split = {}
        for path in args.merge:  # a passing dump and a mask dump of the same split combine
            for split, parts in json.loads(path.read_text()).items():
                per_split.setdefault(split, {}).update(parts)
    else:
        per_split = run(args)
    if args.dump:
        args.dump.write_text(json.dumps(per_split))
    summary = summarise(per_split, args)
    render(summary)
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    return summary


if __name__ == "__main__":
    main()
