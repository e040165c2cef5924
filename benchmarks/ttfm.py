"""Time to first mask (TTFM): a new schema, as a server meets it, up to the first canvas's masks.

For each tokenizer and each sampled MaskBench schema, ours is ``json_schema(schema)`` + ``bind`` + the first
canvas's masks (``canvas(N).packed_masks()``) with an empty automaton cache (a fresh ``CONSTRAINED_CACHE`` folder
per schema, and every schema a new one), so every schema is met cold. The schemas are met one after another in
one forked child per tokenizer, a server's process: it holds the tokenizer, has started its build helper
(:mod:`constrained.build_helper`) and has bound one small constraint to the vocabulary before the first schema
(timed apart, ``server_warmup_ms``), as a server that has run a while has. Reading the tokenizer into a vocabulary
happens once per tokenizer, not per schema: it is timed apart too. The peers, in the same run and on the same
tokenizer: llguidance (``grammar_from_json_schema`` + ``LLMatcher`` + the first mask) and XGrammar
(``compile_json_schema`` with its cache off + ``GrammarMatcher`` + the first bitmask), each set up once per
tokenizer from the Hugging Face tokenizer.

Tokenizers: the real ones of ``../shared/data/tokenizers`` by name (``deepseek-coder`` 32K, ``llama-spm`` 32K,
``deepseek-llm`` 102K, ``gpt-2``) and ``gemma-sized``, the 262,144-piece SentencePiece vocabulary built locally
(``gemma_sized.py``). Also, with ``--memory``, the resident size a bound constraint adds on the largest
vocabulary, and with ``--profile``, where one bind's time goes (cProfile of the build, run in process).

Usage::

    python -m benchmarks.ttfm --per-split 3 --json
    python -m benchmarks.ttfm --tokenizers deepseek-llm --per-split 10 --profile
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import gzip
import io
import json
import multiprocessing
import os
import pstats
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import constrained
from benchmarks import gemma_sized
from benchmarks.maskbench_data import quantiles
from constrained.vocabulary import TokenVocabulary, as_vocabulary

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data"
SPLITS = ("Github_easy", "Github_medium", "Glaiveai2K", "Snowplow", "JME", "BFCL")
TARGETS = {"deepseek-llm": {"p50": 100.0, "p99": 2000.0}, "gemma-sized": {"p50": 300.0}}


def load_tokenizer(name: str, data: Path) -> Any:
    """A real tokenizer by folder name, or the Gemma-sized one."""
    if name == "gemma-sized":
        return gemma_sized.tokenizer(data / "tokenizers")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(data / "tokenizers" / name))


def sample_schemas(data: Path, splits: Sequence[str], per_split: int, seed: int) -> list[tuple[str, dict]]:
    """``per_split`` seeded random schemas of each split present."""
    chosen = []
    for split in splits:
        path = data / "maskbench" / f"{split}.jsonl.gz"
        if not path.is_file():
            continue
        with gzip.open(path, "rt") as lines:
            items = [json.loads(line) for line in lines]
        for item in random.Random(f"{seed}:{split}").sample(items, min(per_split, len(items))):
            chosen.append((item["id"], item["schema"]))
    return chosen


# ------------------------------------------------------------------------------------------------ ours


def _ours_cold(schema: dict, vocabulary: TokenVocabulary, canvas: int, timeout_s: float) -> dict:
    """compile + bind + first canvas masks of a schema not met before, timed by phase (an empty disk cache)."""
    os.environ["CONSTRAINED_CACHE"] = tempfile.mkdtemp(prefix="ttfm-")
    started = time.perf_counter()
    constraint = dataclasses.replace(constrained.json_schema(schema), compile_timeout_s=timeout_s)
    compiled = time.perf_counter()
    bound = constraint.bind(vocabulary)
    bound_at = time.perf_counter()
    bound.canvas(canvas).packed_masks()
    done = time.perf_counter()
    return {"ms": (done - started) * 1e3, "schema_ms": (compiled - started) * 1e3,
            "bind_ms": (bound_at - compiled) * 1e3, "masks_ms": (done - bound_at) * 1e3,
            "states": bound.dfa.n_states, "classes": bound.dfa.n_classes}


def _ours_server(schemas: list[tuple[str, dict]], vocabulary: TokenVocabulary, canvas: int,
                 timeout_s: float) -> dict:
    """Every schema met cold, one after another, in one process that has bound a constraint before, as a server
    meets them (runs in the forked child; see the module's docstring)."""
    started = time.perf_counter()
    try:
        from constrained.build_helper import warm_build_helper
    except ImportError:  # a build before the helper: nothing to start
        helper_ready = None
    else:
        helper_ready = warm_build_helper(60.0)
    os.environ["CONSTRAINED_CACHE"] = tempfile.mkdtemp(prefix="ttfm-")
    constrained.regex("[0-9]{1,3}").bind(vocabulary)  # a constraint bound before: the vocabulary is known
    warmup_ms = (time.perf_counter() - started) * 1e3
    rows = {}
    for schema_id, schema in schemas:
        try:
            rows[schema_id] = _ours_cold(schema, vocabulary, canvas, timeout_s)
        except Exception as error:  # reported as this schema's failure, with its type
            rows[schema_id] = {"error": f"{type(error).__name__}: {str(error)[:120]}"}
    return {"warmup_ms": warmup_ms, "helper_ready": helper_ready, "rows": rows}


def _child(job: Callable[[], dict], conn) -> None:
    try:
        conn.send(job())
    except Exception as error:  # reported as this schema's failure, with its type
        conn.send({"error": f"{type(error).__name__}: {str(error)[:120]}"})
    finally:
        conn.close()


def in_child(job: Callable[[], dict], timeout_s: float) -> dict:
    """``job()`` in a forked child: nothing it caches reaches the next measurement."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(job, sender))  # not daemonic: a bind forks its own child
    process.start()
    sender.close()
    try:
        return receiver.recv() if receiver.poll(timeout_s) else {"error": f"no result within {timeout_s:g} s"}
    except EOFError:
        return {"error": "the child died (memory?)"}
    finally:
        process.kill()
        process.join()
        receiver.close()


# ------------------------------------------------------------------------------------------------ peers


class Peers:
    """llguidance and XGrammar, set up once for a Hugging Face tokenizer; each times compile-to-first-mask."""

    def __init__(self, tokenizer: Any, vocabulary: TokenVocabulary) -> None:
        self.available: dict[str, Callable[[dict], float]] = {}
        self.setup_ms: dict[str, float] = {}
        self.vocab_size = vocabulary.size
        try:
            import llguidance
            import llguidance.hf

            started = time.perf_counter()
            self.lltokenizer = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocabulary.size,
                                                            eos_token=vocabulary.end_token_ids[0])
            self.setup_ms["llguidance"] = (time.perf_counter() - started) * 1e3
            self.available["llguidance"] = self._llguidance
        except ImportError:
            pass
        try:
            import xgrammar

            started = time.perf_counter()
            info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocabulary.size,
                                                           stop_token_ids=list(vocabulary.end_token_ids))
            self.xgrammar_info = info
            self.setup_ms["xgrammar"] = (time.perf_counter() - started) * 1e3
            self.available["xgrammar"] = self._xgrammar
        except ImportError:
            pass

    def _llguidance(self, schema: dict) -> float:
        import llguidance

        started = time.perf_counter()
        grammar = llguidance.LLMatcher.grammar_from_json_schema(schema)
        matcher = llguidance.LLMatcher(self.lltokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise RuntimeError(matcher.get_error()[:120])
        bitmask = np.zeros((self.vocab_size + 31) // 32, dtype=np.int32)
        matcher.unsafe_compute_mask_ptr(bitmask.ctypes.data, bitmask.nbytes)
        if matcher.is_error():
            raise RuntimeError(matcher.get_error()[:120])
        return (time.perf_counter() - started) * 1e3

    def _xgrammar(self, schema: dict) -> float:
        import xgrammar

        started = time.perf_counter()
        compiler = xgrammar.GrammarCompiler(self.xgrammar_info, cache_enabled=False)
        compiled = compiler.compile_json_schema(json.dumps(schema), any_whitespace=True, strict_mode=False)
        matcher = xgrammar.GrammarMatcher(compiled)
        bitmask = xgrammar.allocate_token_bitmask(1, self.vocab_size)
        matcher.fill_next_token_bitmask(bitmask)
        return (time.perf_counter() - started) * 1e3


# ------------------------------------------------------------------------------------------------ extras


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def resident_size(schema: dict, vocabulary: TokenVocabulary, canvas: int) -> dict:
    """What a bound constraint (automaton, state sets, one canvas's masks) adds to the process (runs in a child)."""
    os.environ["CONSTRAINED_CACHE"] = tempfile.mkdtemp(prefix="ttfm-")
    constraint = constrained.json_schema(schema)
    constraint.compile()
    before = _resident_bytes()
    bound = constraint.bind(vocabulary)
    bound_bytes = _resident_bytes() - before
    bound.canvas(canvas).packed_masks()
    return {"bound_mib": bound_bytes / 2**20, "with_canvas_mib": (_resident_bytes() - before) / 2**20,
            "transitions_mib": (bound.dfa.nbytes - bound.dfa.token_class.nbytes) / 2**20,
            "token_class_mib": bound.dfa.token_class.nbytes / 2**20,
            "states": bound.dfa.n_states, "classes": bound.dfa.n_classes}


def profile_bind(schema: dict, vocabulary: TokenVocabulary, canvas: int, top: int = 14) -> dict:
    """Where one cold bind's time goes: the automaton build run in process under cProfile (it otherwise runs in
    a bounded child the profiler cannot see), then the state sets and first masks (runs in a child)."""
    import outlines_core

    from constrained.lattice import StateSets
    from constrained.pattern_automaton import patterns_dfa

    class OutlinesIndex:
        """outlines-core's ``Index`` behind a Python call, so the profile shows its construction apart."""

        def __call__(self, *arguments: Any) -> Any:
            return index_class(*arguments)

        def __getattr__(self, name: str) -> Any:  # ``from_binary``, which its pickling looks up by name
            return getattr(index_class, name)

    index_class = outlines_core.Index
    outlines_core.Index = OutlinesIndex()
    os.environ["CONSTRAINED_CACHE"] = tempfile.mkdtemp(prefix="ttfm-")
    constraint = constrained.json_schema(schema)
    profiler = cProfile.Profile()
    phases = {}
    profiler.enable()
    started = time.perf_counter()
    dfa = patterns_dfa(constraint.patterns, vocabulary)
    phases["automaton_ms"] = (time.perf_counter() - started) * 1e3
    started = time.perf_counter()
    sets = StateSets(dfa)
    sets.precompute_open_canvases()
    phases["state_sets_ms"] = (time.perf_counter() - started) * 1e3
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
    lines = [line for line in text.getvalue().splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
    return {**phases, "states": dfa.n_states, "classes": dfa.n_classes, "top_by_own_time": lines[start:]}


# ------------------------------------------------------------------------------------------------ run


def measure_tokenizer(name: str, schemas: list[tuple[str, dict]], args: argparse.Namespace) -> dict:
    tokenizer = load_tokenizer(name, args.data)
    started = time.perf_counter()
    vocabulary = as_vocabulary(tokenizer)
    vocabulary.packed_spellings  # noqa: B018 - once per vocabulary, as a server binding many schemas pays it
    read_ms = (time.perf_counter() - started) * 1e3
    peers = Peers(tokenizer, vocabulary) if args.peers else None
    server = in_child(lambda: _ours_server(schemas, vocabulary, args.canvas, args.timeout),
                      args.timeout * 2 * len(schemas) + 120)
    rows = []
    for schema_id, schema in schemas:
        row = {"id": schema_id, "ours": server.get("rows", {}).get(schema_id, {"error": server.get("error")})}
        for peer, run in (peers.available.items() if peers else []):
            try:
                row[peer] = {"ms": run(schema)}
            except Exception as error:  # the peer cannot compile it: its failure, counted
                row[peer] = {"error": f"{type(error).__name__}: {str(error)[:120]}"}
        rows.append(row)
        _progress(f"{name} {schema_id}: " + ", ".join(
            f"{engine} {cell['ms']:.0f} ms" if "ms" in cell else f"{engine} failed"
            for engine, cell in row.items() if engine != "id"))
    summary: dict[str, Any] = {"vocabulary_size": vocabulary.size, "vocabulary_read_ms": read_ms,
                               "server_warmup_ms": server.get("warmup_ms"), "helper_ready": server.get("helper_ready"),
                               "peer_setup_ms": peers.setup_ms if peers else {}}
    engines = ["ours", *(peers.available if peers else [])]
    for engine in engines:
        times = [row[engine]["ms"] for row in rows if "ms" in row[engine]]
        summary[engine] = {**quantiles(times), "failed": sum("error" in row[engine] for row in rows)}
    ours_ok = [row["ours"] for row in rows if "ms" in row["ours"]]
    for phase in ("schema_ms", "bind_ms", "masks_ms"):
        summary["ours"][phase + "_p50"] = quantiles([cell[phase] for cell in ours_ok])["p50"]
    both = {engine: [(row["ours"]["ms"], row[engine]["ms"]) for row in rows
                     if "ms" in row["ours"] and "ms" in row.get(engine, {})] for engine in engines[1:]}
    summary["p50_ratio_ours_over"] = {engine: quantiles([a / b for a, b in pairs])["p50"]
                                      for engine, pairs in both.items() if pairs}
    if name in TARGETS:
        summary["targets"] = {f"{key} <= {limit:g} ms": summary["ours"][key] is not None
                              and summary["ours"][key] <= limit for key, limit in TARGETS[name].items()}
    summary["rows"] = rows
    if args.memory and name == args.memory_on:
        summary["resident"] = in_child(lambda: resident_size(schemas[0][1], vocabulary, args.canvas), 600)
    if args.profile and name == args.profile_on:
        summary["profile"] = in_child(lambda: profile_bind(schemas[0][1], vocabulary, args.canvas), 600)
    return summary


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder (maskbench/, tokenizers/)")
    parser.add_argument("--tokenizers", default="deepseek-coder,deepseek-llm,gemma-sized")
    parser.add_argument("--splits", default=",".join(SPLITS))
    parser.add_argument("--per-split", type=int, default=2, help="seeded random schemas per split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--canvas", type=int, default=64, help="positions of the first canvas")
    parser.add_argument("--timeout", type=float, default=60.0, help="compile bound per schema, seconds")
    parser.add_argument("--no-peers", dest="peers", action="store_false")
    parser.add_argument("--memory", action="store_true", help="resident size of a bound constraint")
    parser.add_argument("--memory-on", default="gemma-sized")
    parser.add_argument("--profile", action="store_true", help="profile one bind")
    parser.add_argument("--profile-on", default="deepseek-llm")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON line at the end")
    return parser.parse_args(argv)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def render(summary: dict) -> None:
    print(f"TTFM, cold, {summary['schemas']} MaskBench schemas, canvas {summary['canvas']}; "
          f"{summary['cpus']} CPUs, load {summary['load']:.1f}")
    for name, figures in summary["tokenizers"].items():
        print(f"\n{name} ({figures['vocabulary_size']:,} tokens; vocabulary read once: "
              f"{figures['vocabulary_read_ms']:.0f} ms)")
        for engine in ("ours", "llguidance", "xgrammar"):
            if engine in figures:
                cell = figures[engine]
                p50, p99 = cell["p50"], cell["p99"]
                print(f"  {engine:<11} p50 {p50 if p50 is None else round(p50, 1)} ms  p99 "
                      f"{p99 if p99 is None else round(p99, 1)} ms  (n {cell['n']}, failed {cell['failed']})")
        ours = figures["ours"]
        print(f"  ours by phase (p50): schema {ours['schema_ms_p50']} ms, bind {ours['bind_ms_p50']} ms, "
              f"masks {ours['masks_ms_p50']} ms")
        for engine, ratio in figures["p50_ratio_ours_over"].items():
            print(f"  ours / {engine}: {ratio:.1f}x (median of per-schema ratios)")
        for target, met in figures.get("targets", {}).items():
            print(f"  target {target}: {'met' if met else 'NOT met'}")
        if "resident" in figures:
            print(f"  resident size of a bound constraint: {figures['resident']}")
        if "profile" in figures:
            profile = figures["profile"]
            print(f"  profile of one bind: automaton {profile.get('automaton_ms', 0):.0f} ms, state sets "
                  f"{profile.get('state_sets_ms', 0):.0f} ms")
            for line in profile.get("top_by_own_time", []):
                print("    " + line)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    schemas = sample_schemas(args.data, args.splits.split(","), args.per_split, args.seed)
    if not schemas:
        raise SystemExit(f"no MaskBench schemas under {args.data / 'maskbench'}")
    # the library's modules imported and warmed in the parent, so no child pays for them
    constrained.regex("warm").bind(constrained.vocabulary.byte_vocabulary()).canvas(2).packed_masks()
    summary = {"schemas": len(schemas), "canvas": args.canvas, "cpus": os.cpu_count(), "load": os.getloadavg()[0],
               "tokenizers": {name: measure_tokenizer(name, schemas, args) for name in args.tokenizers.split(",")}}
    render(summary)
    if args.json:
        print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
