"""The shipped Lark grammars through ``constrained.grammar``, beside llguidance's Lark support.

Per grammar and depth, over one real tokenizer (``../shared/data/tokenizers/<name>``):

* **compile**: ``constrained.grammar`` (the grammar unrolled to a regex) and ``bind`` (the token automaton,
  disk and memory caches off), in seconds; the regex's length and the automaton's states. For llguidance: the
  ``LLMatcher`` construction from ``grammar_from_lark`` (it builds lazily, so its cost moves into the steps).
* **masks per step**: a text is drawn from our masks (a canvas of ``--length`` positions under random
  log-probabilities, seeded), then replayed token by token. Ours: deciding the token and recomputing the
  exact masks of *every* position of the canvas (what a denoiser step needs). llguidance: the next token's
  mask, then consuming the token (one position per step: it is an autoregressive engine). Median and p99 µs.
  ``ll_accepted`` says whether llguidance accepted the whole sequence (its masks keep to canonical tokenizations
  of forced text, so it can refuse a valid non-canonical token).
* ``--compare-json``: the JSON grammar's masks beside ``json_schema({})``'s on open canvases and on canvases with a
  decided prefix (positions whose allowed sets differ, and a few tokens each side allows alone).

Usage: python -m benchmarks.grammar [--tokenizer deepseek-coder] [--tokenizers DIR] [--depths 0,1] [--length 24]
                                 [--samples 3] [--grammars arithmetic,c_like,json] [--compare-json] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import constrained
from constrained.errors import CompileTimeout, GrammarError, VocabularyError
from constrained.grammar import shipped_grammar
from constrained.schema.compiler import Options
from constrained.vocabulary import TokenVocabulary, as_vocabulary

ROOT = Path(__file__).resolve().parents[1]
TOKENIZERS = ROOT / ".." / "shared" / "data" / "tokenizers"
GRAMMARS = ("arithmetic", "c_like", "json")


def quantile(values: list[float], q: float) -> float:
    return float(np.quantile(values, q)) if values else float("nan")


def sample_tokens(bound: constrained.BoundConstraint, length: int, seed: int) -> list[int]:
    """A canvas drawn from the masks under random log-probabilities: the replayed sequence (text tokens only)."""
    generator = torch.Generator().manual_seed(seed)
    logprobs = torch.log_softmax(torch.randn(length, bound.vocab_size, generator=generator) * 4, dim=-1)
    tokens = bound.canvas(length).sample_decode(logprobs, generator)
    ends = set(bound.eos_token_ids)
    return [t for t in tokens if t not in ends]


def our_steps(bound: constrained.BoundConstraint, tokens: list[int], length: int) -> list[float]:
    """µs per step: decide the next token, then the exact masks of the whole canvas."""
    canvas = bound.canvas(length)
    timings = []
    for position, token in enumerate(tokens):
        started = time.perf_counter_ns()
        canvas.decide({position: token})
        canvas.packed_masks()
        timings.append((time.perf_counter_ns() - started) / 1e3)
    return timings


def llguidance_run(lltokenizer: Any, text: str, tokens: list[int], eos: int, words: int) -> dict[str, Any]:
    import llguidance

    grammar = llguidance.LLMatcher.grammar_from_lark(text)
    started = time.perf_counter()
    matcher = llguidance.LLMatcher(lltokenizer, grammar, log_level=0)
    compile_s = time.perf_counter() - started
    if matcher.is_error():
        return {"ll_error": matcher.get_error()[:160]}
    bitmask = np.zeros(words, dtype=np.int32)
    timings, accepted = [], True
    for token in [*tokens, eos]:
        started_ns = time.perf_counter_ns()
        matcher.unsafe_compute_mask_ptr(bitmask.ctypes.data, bitmask.nbytes)
        ok = matcher.consume_token(token)
        timings.append((time.perf_counter_ns() - started_ns) / 1e3)
        if not ok or matcher.is_error():
            accepted = False
            break
    return {"ll_compile_s": round(compile_s, 4), "ll_step_us_p50": round(quantile(timings, 0.5), 1),
            "ll_step_us_p99": round(quantile(timings, 0.99), 1), "ll_accepted": accepted,
            "ll_refused_at": None if accepted else len(timings) - 1}


def vocabulary_of(tokenizer: Any) -> TokenVocabulary:
    """The tokenizer's vocabulary, read once. Retried: ``from_hf_tokenizer`` takes a byte-level BPE holding the
    token ``##`` for WordPiece when that token falls among the first 2,000 of ``get_vocab()``, whose order
    changes from call to call."""
    for _ in range(20):
        try:
            return as_vocabulary(tokenizer)
        except VocabularyError:
            continue
    return as_vocabulary(tokenizer)


def measure(name: str, depth: int, tokenizer: Any, lltokenizer: Any, args: argparse.Namespace) -> dict[str, Any]:
    text = shipped_grammar(name)
    row: dict[str, Any] = {"grammar": name, "depth": depth}
    started = time.perf_counter()
    try:
        constraint = constrained.grammar(text, depth=depth, compile_timeout_s=args.timeout)
        row["regex_s"] = round(time.perf_counter() - started, 3)
        row["regex_chars"] = len(constraint.pattern)
        started = time.perf_counter()
        bound = dataclasses.replace(constraint, cached=False).bind(tokenizer)
    except (GrammarError, CompileTimeout) as error:
        row["error"] = f"{type(error).__name__}: {error}"[:160]
        return row
    row["bind_s"] = round(time.perf_counter() - started, 2)
    row["states"] = bound.dfa.n_states
    ours, peers, sequences = [], [], []
    for seed in range(args.samples):
        tokens = sample_tokens(bound, args.length, seed)
        sequences.append(tokens)
        ours += our_steps(bound, tokens, args.length)
        if lltokenizer is not None:
            words = (bound.vocab_size + 31) // 32
            peers.append(llguidance_run(lltokenizer, text, tokens, bound.eos_token_ids[0], words))
    row["our_step_us_p50"] = round(quantile(ours, 0.5), 1)
    row["our_step_us_p99"] = round(quantile(ours, 0.99), 1)
    if peers and "ll_error" in peers[0]:
        row["ll_error"] = peers[0]["ll_error"]
    elif peers:
        row["ll_compile_s"] = round(statistics.median(p["ll_compile_s"] for p in peers), 4)
        row["ll_step_us_p50"] = round(statistics.median(p["ll_step_us_p50"] for p in peers), 1)
        row["ll_step_us_p99"] = round(max(p["ll_step_us_p99"] for p in peers), 1)
        row["ll_accepted"] = f"{sum(p['ll_accepted'] for p in peers)}/{len(peers)}"
        refused = [(p["ll_refused_at"], tokens) for p, tokens in zip(peers, sequences) if not p["ll_accepted"]]
        if refused:  # the first refused text, with the refused token marked
            at, tokens = refused[0]
            row["ll_refused"] = bound.decode(tokens[:at]) + "⟦" + bound.decode(tokens[at:at + 1]) + "⟧"
    return row


def compare_json(tokenizer: Any, depth: int, length: int, samples: int) -> dict[str, Any]:
    """The JSON grammar at ``depth`` beside ``json_schema({})`` nesting the same number of containers around
    scalars (``any_depth=depth``; the grammar also allows empty containers one level deeper)."""
    by_grammar = constrained.grammar(shipped_grammar("json"), depth=depth).bind(tokenizer)
    by_schema = constrained.json_schema({}, options=Options(any_depth=depth)).bind(tokenizer)
    differing, positions, only_grammar, only_schema = 0, 0, {}, {}
    prefixes = [[]] + [sample_tokens(by_schema, length, seed)[: length // 3] for seed in range(samples)]
    for prefix in prefixes:
        canvases = []
        for bound in (by_grammar, by_schema):
            canvas = bound.canvas(length)
            canvas.decide(dict(enumerate(prefix)))
            canvases.append(canvas)
        if not all(c.feasible() for c in canvases):
            continue
        for position in range(len(prefix), length):
            first, second = (c.allowed(position).numpy().astype(bool) for c in canvases)
            positions += 1
            if (first != second).any():
                differing += 1
                for token in np.flatnonzero(first & ~second)[:3]:
                    only_grammar[by_grammar.decode([int(token)])] = True
                for token in np.flatnonzero(second & ~first)[:3]:
                    only_schema[by_schema.decode([int(token)])] = True
    return {"json_depth": depth, "positions": positions, "differing": differing,
            "only_grammar": list(only_grammar)[:12], "only_schema": list(only_schema)[:12]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokenizer", default="deepseek-coder", help="a folder under --tokenizers")
    parser.add_argument("--tokenizers", type=Path, default=TOKENIZERS)
    parser.add_argument("--depths", default="0,1")
    parser.add_argument("--grammars", default=",".join(GRAMMARS), help="comma-separated; empty for none")
    parser.add_argument("--length", type=int, default=24)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120.0, help="compile bound per step, seconds")
    parser.add_argument("--compare-json", action="store_true")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of lines")
    args = parser.parse_args()
    os.environ.setdefault("CONSTRAINED_CACHE", tempfile.mkdtemp(prefix="grammar-bench-"))

    from transformers import AutoTokenizer

    hf_tokenizer = AutoTokenizer.from_pretrained(str(args.tokenizers / args.tokenizer))
    tokenizer = vocabulary_of(hf_tokenizer)
    try:
        import llguidance.hf

        lltokenizer = llguidance.hf.from_tokenizer(hf_tokenizer)
    except ImportError:
        print("llguidance is not installed (pip install -e '.[bench]'): ours only", file=sys.stderr)
        lltokenizer = None
    rows = []
    for name in filter(None, args.grammars.split(",")):
        for depth in (int(d) for d in args.depths.split(",")):
            rows.append(measure(name, depth, tokenizer, lltokenizer, args))
            if not args.json:
                print(json.dumps(rows[-1]), flush=True)
    comparisons = []
    if args.compare_json:
        for depth in (int(d) for d in args.depths.split(",")):
            comparisons.append(compare_json(tokenizer, depth, args.length, args.samples))
            if not args.json:
                print(json.dumps(comparisons[-1], ensure_ascii=False), flush=True)
    machine = {"cpus": os.cpu_count(), "load": os.getloadavg()[0], "python": platform.python_version(),
               "tokenizer": args.tokenizer, "vocab": tokenizer.size}
    if args.json:
        print(json.dumps({"machine": machine, "rows": rows, "json_vs_schema": comparisons}, ensure_ascii=False))
    else:
        print(json.dumps(machine))


if __name__ == "__main__":
    main()
