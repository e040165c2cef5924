"""MaskBench mask cost over ../shared/data/maskbench: exact canvas masks beside llguidance, XGrammar and
outlines-core, on a real vocabulary.

A sample: the first ``--mask-schemas`` schemas per split that compile, up to ``--mask-instances`` valid instances
each, on a vocabulary that mistral-common ships. Each instance is tokenized exactly (instances its tokenizer cannot
spell byte for byte are skipped and counted). Ours simulates a denoising run: a canvas of
``max(256, tokens + padding)`` positions holding the instance then end tokens, revealed in random order, ``k``
positions a step with ``k`` drawn from ``L/48 .. L/12``; each step times ``canvas.packed_masks(copy=False)``
(every position's mask, in the canvas's own buffer, which a sampler reads or moves to its device before the next
step) plus the ``decide`` of the revealed tokens. µs per generated token is a step's time over the ``k`` tokens it
revealed. The peers (:mod:`benchmarks.peers`) compute autoregressive masks for the same token ids over the same
vocabulary, one per token (the text's tokens, then the end token), each timed with its advance. Only mask work is
timed: binding and grammar compilation are reported apart, and so is setting up a run (the peers' matcher and
bitmask; our canvas, its all-open sweeps and its mask buffer, as ``canvas_setup_us``). Every revealed token is
checked against the mask it was revealed under (a miss would be a completeness bug, reported as ``mask_misses``).
Which schemas pass MaskBench is the other benchmark, :mod:`benchmarks.maskbench_passing`.

    python -m benchmarks.maskbench_mask_cost ../shared/data/maskbench                    # sp32k, 20 per split
    python -m benchmarks.maskbench_mask_cost DIR --tokenizer tekken131k --mask-schemas 3 --json
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import constrained
from benchmarks import maskbench_data as maskbench
from benchmarks.mistral_vocab import MistralVocab, load
from benchmarks.peers import PEERS, Peers, allows

CANVAS = 256

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
        misses += sum(not allows(words[i], t) for i, t in decisions.items())
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


def mask_cost_split(directory: Path, split: str, vocab: MistralVocab,
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
    for item in maskbench.read_split(directory, split, None):
        if counts["schemas"] >= args.mask_schemas:
            break
        texts = [maskbench.instance_text(t["data"]) for t in item["tests"] if t["valid"]]
        if not texts:
            continue
        try:
            constraint = maskbench.compile_ours(item["schema"], args.compile_timeout)
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
        "us_per_token": {name: maskbench.quantiles(values) for name, values in per_token.items()},
        "us_per_text_token_ours": maskbench.quantiles(text_token_us),
        "us_per_step": maskbench.quantiles(steps),
        "canvas256_masks_us": maskbench.quantiles(canvas_masks),
        "canvas_setup_us": maskbench.quantiles(canvas_setup),
        "bind_ms": maskbench.quantiles(bind_ms),
        "peer_compile_ms": {name: maskbench.quantiles(values) for name, values in peer_compile_ms.items()},
        "peer_compile_failed": peer_failed,
        "peer_rejected_instances": peer_rejected,
        "peer_tokens_outside_own_mask": peer_outside,
        "_raw": {"per_token": per_token, "steps": steps, "canvas_masks": canvas_masks, "text_token": text_token_us,
                 "bind_ms": bind_ms, "canvas_setup": canvas_setup},
    }


# ---------------------------------------------------------------------------------------------- driver


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = maskbench.parser_with_common_options(__doc__.split("\n\n")[0])
    parser.add_argument("--tokenizer", choices=("sp32k", "tekken131k"), default="sp32k")
    parser.add_argument("--mask-schemas", type=int, default=20, help="compiled schemas per split timed")
    parser.add_argument("--mask-instances", type=int, default=2, help="valid instances per sampled schema")
    parser.add_argument("--padding", type=int, default=16, help="end tokens after a long instance's tokens")
    parser.add_argument("--no-peers", action="store_true", help="time ours only")
    return maskbench.parsed(parser, argv)


def run(args: argparse.Namespace, splits: list[str]) -> dict[str, dict]:
    """Per split, its mask-cost sample (raw timings kept for pooling)."""
    vocab = load(args.tokenizer)
    peers = None if args.no_peers else Peers(vocab, args.compile_timeout)
    rng = random.Random(args.seed)
    per_split = {}
    for split in splits:
        per_split[split] = {"mask": mask_cost_split(args.directory, split, vocab, peers, args, rng)}
        maskbench.progress(f"{split}: mask cost on {per_split[split]['mask']['counts'].get('schemas', 0)} schemas")
    return per_split


def summarise(per_split: dict[str, dict], args: argparse.Namespace) -> dict:
    """Overall figures from the per-split ones (quantiles over the pooled raw timings)."""
    summary: dict[str, Any] = {"tokenizer": args.tokenizer, "splits": {}, **maskbench.machine()}
    masks = [s["mask"] for s in per_split.values() if "mask" in s]
    if masks:
        pooled = lambda key: [v for m in masks for v in m["_raw"][key]]
        summary["us_per_token"] = {
            name: maskbench.quantiles([v for m in masks for v in m["_raw"]["per_token"][name]])
            for name in ("ours", *PEERS)
        }
        summary["us_per_text_token_ours"] = maskbench.quantiles(pooled("text_token"))
        summary["us_per_step"] = maskbench.quantiles(pooled("steps"))
        summary["canvas256_masks_us"] = maskbench.quantiles(pooled("canvas_masks"))
        summary["canvas_setup_us"] = maskbench.quantiles(pooled("canvas_setup"))
        summary["bind_ms"] = maskbench.quantiles(pooled("bind_ms"))
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
        if "mask" in parts:
            summary["splits"][split] = {"mask": {k: v for k, v in parts["mask"].items() if k != "_raw"}}
    if args.compile_timeout:
        summary["compile_timeout_s"] = args.compile_timeout
    return summary


def render(summary: dict) -> None:
    """The mask-cost table with ours/peer ratios, then ours per step, per canvas and per mask made."""
    from rich.console import Console
    from rich.table import Table

    if "us_per_token" not in summary:
        return
    console = Console(width=max(Console().width, 140))
    fmt = maskbench.fmt
    ours = summary["us_per_token"]["ours"]
    table = Table(title=f"Mask cost per generated token, µs ({summary['tokenizer']}); ratio = ours / peer")
    for column in ("engine", "tokens", "mean", "p50", "p99", "ours/peer mean", "ours/peer p50",
                   "ours/peer p99"):
        table.add_column(column, justify="right")
    for name, figures in summary["us_per_token"].items():
        ratios = ["" if name == "ours" or not figures["n"] else fmt(ours[q] / figures[q], 2)
                  for q in ("mean", "p50", "p99")]
        table.add_row(name, str(figures["n"]), *(fmt(figures[q]) for q in ("mean", "p50", "p99")), *ratios)
    console.print(table)
    step, canvas = summary["us_per_step"], summary["canvas256_masks_us"]
    text = summary["us_per_text_token_ours"]
    console.print(
        f"ours per step: p50 {fmt(step['p50'])} µs, p99 {fmt(step['p99'])} µs over {step['n']} steps; "
        f"whole 256-position canvas masks: p50 {fmt(canvas['p50'])} µs, p99 {fmt(canvas['p99'])} µs; "
        f"ours per text token (whole run / (text tokens + 1)): mean {fmt(text['mean'])} µs, "
        f"p50 {fmt(text['p50'])}, p99 {fmt(text['p99'])}; bind p50 {fmt(summary['bind_ms']['p50'])} ms; "
        f"canvas set-up (untimed above, like the peers' matcher creation): p50 "
        f"{fmt(summary['canvas_setup_us']['p50'])} µs, p99 {fmt(summary['canvas_setup_us']['p99'])} µs"
    )
    if "us_per_mask" in summary:
        per_mask = ", ".join(f"{name} {fmt(us, 2)}" for name, us in summary["us_per_mask"].items())
        console.print(f"masks made per generated token: ours {fmt(summary['masks_per_token_ours'], 2)} "
                      f"(open rows that changed in a step), each peer 1; µs per mask made: {per_mask}")
    console.print(f"sample: {summary['mask_counts']}; peers that could not compile: "
                  f"{summary['peer_compile_failed']}; peers rejecting a valid instance: "
                  f"{summary['peer_rejected_instances']}; tokens a peer accepted outside its own mask: "
                  f"{summary['peer_tokens_outside_own_mask']}")


def main(argv: Sequence[str] | None = None) -> dict:
    return maskbench.main_of(parse_args(argv), run, summarise, render)


if __name__ == "__main__":
    main()
