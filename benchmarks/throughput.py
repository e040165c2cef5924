"""Throughput benchmark: batched generation, constrained vs unconstrained, at several batch sizes.

The mid-size random DiffusionGemma of ``benchmarks/generation.py`` (32K vocabulary) serves requests with
heterogeneous MaskBench schemas (Github_easy), each its own constraint, prompt length and seed, through
:func:`constrained.generate_batch` at batch sizes 1, 4, 16 and 64; then the same requests unconstrained (the
model's own sampler on the same prompts). Early stopping is off so that every block takes its full steps in
both modes; a constrained row can still take more steps (a retry of a clashing block) or fewer blocks (its JSON
ends early), so the comparison is made per step of one row.

Per batch size and mode: text tokens per second, forward passes, row-steps (a forward pass serves one step of
each row in it), milliseconds per step per row, the share of step time outside the model's forward pass, and
for the constrained mode the constraint's own share and ms per step per row (the outside share minus the
unconstrained run's, per row-step). Constrained outputs are validated with jsonschema: an invalid one counts
against the target, a typed error (no admissible text within the budget) is counted apart.

On a shared machine the wall clock follows the neighbours' load; the CPU time per row-step (this process's, all
its threads) is the steadier figure and is reported beside it.

Targets (this machine's CPUs): constrained time per row-step at most 1.15x unconstrained at every batch size;
the constrained batching gain (ms per row-step at batch 1 over batch B) at least the unconstrained one; 0 invalid.

Usage: ``python -m benchmarks.throughput [--requests 8] [--batch-sizes 1 4 16 64] [--json]`` from the repository
root. Requests per batch size: ``max(B, --requests)``, so the batch is full at least once.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from benchmarks import generation
from benchmarks.generation import SCHEMAS, is_valid, load_schemas
from constrained import Request, generate_batch
from constrained.errors import ConstrainedError
from constrained.json_schema import json_schema
from constrained.prompts import json_prompt
from constrained.sampler import BatchStats
from constrained.testing import byte_tokenizer, diffusion_gemma


def requests_for(schemas: list[tuple[dict, object]], count: int, max_new_tokens: int, constrained: bool):
    """``count`` requests cycling over the schemas, seed = index; the same prompts in both modes."""
    return [
        Request(json_prompt(schema, "fill in"), bound if constrained else None, max_new_tokens=max_new_tokens,
                seed=index)
        for index, (schema, bound) in ((i, schemas[i % len(schemas)]) for i in range(count))
    ]


def run(model, tokenizer, schemas, batch_size: int, count: int, args, constrained: bool) -> dict:
    requests = requests_for(schemas, count, args.max_new_tokens, constrained)
    stats = BatchStats()
    started, cpu_started = time.perf_counter(), time.process_time()
    results = generate_batch(requests, model=model, tokenizer=tokenizer, steps=args.steps,
                             max_batch_size=batch_size, stats=stats, confidence_threshold=1e-12)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    done = [r for r in results if not isinstance(r, ConstrainedError)]
    tokens = sum(len(r.token_ids) for r in done)
    step_seconds = stats.predict_seconds + stats.other_seconds
    figures = {
        "requests": count,
        "wall_s": wall,
        "tokens": tokens,
        "tokens_per_s": tokens / wall,
        "forward_passes": stats.forward_passes,
        "row_steps": stats.row_steps,
        "ms_per_forward": 1e3 * stats.predict_seconds / max(1, stats.forward_passes),
        "ms_per_row_step": 1e3 * step_seconds / max(1, stats.row_steps),
        "cpu_ms_per_row_step": 1e3 * cpu / max(1, stats.row_steps),
        "outside_model_ms_per_row_step": 1e3 * stats.other_seconds / max(1, stats.row_steps),
        "outside_model_share": stats.constraint_share,
        "raised": len(results) - len(done),
        "raised_kinds": sorted({type(r).__name__ for r in results if isinstance(r, ConstrainedError)}),
    }
    if constrained:
        schema_of = [schemas[i % len(schemas)][0] for i in range(count)]
        figures["invalid"] = sum(
            not is_valid(schema, r.text) for schema, r in zip(schema_of, results, strict=True)
            if not isinstance(r, ConstrainedError)
        )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--requests", type=int, default=8, help="requests per batch size, at least the batch size")
    parser.add_argument("--schemas", type=int, default=len(SCHEMAS))
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--maskbench", type=Path, default=generation.MASKBENCH, help="the MaskBench folder")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    generation.MASKBENCH = args.maskbench
    torch.set_num_threads(args.threads)
    tokenizer = byte_tokenizer(32768)
    model = diffusion_gemma(len(tokenizer), canvas_length=32, hidden_size=args.hidden, layers=args.layers, heads=8,
                            experts=4)
    bind_started = time.perf_counter()
    schemas = [(schema, json_schema(schema).bind(tokenizer))
               for schema in load_schemas(SCHEMAS[: args.schemas]).values()]
    bind_seconds = time.perf_counter() - bind_started
    generate_batch(requests_for(schemas, 2, 32, True), model=model, tokenizer=tokenizer, steps=2)  # warm-up

    rows = []
    for batch_size in args.batch_sizes:
        count = max(batch_size, args.requests)
        free = run(model, tokenizer, schemas, batch_size, count, args, constrained=False)
        print(f"batch {batch_size}: unconstrained {free['wall_s']:.0f} s", file=sys.stderr, flush=True)
        bound = run(model, tokenizer, schemas, batch_size, count, args, constrained=True)
        print(f"batch {batch_size}: constrained {bound['wall_s']:.0f} s", file=sys.stderr, flush=True)
        constraint_ms = bound["outside_model_ms_per_row_step"] - free["outside_model_ms_per_row_step"]
        rows.append({
            "batch_size": batch_size, "unconstrained": free, "constrained": bound,
            "time_ratio_per_row_step": bound["ms_per_row_step"] / free["ms_per_row_step"],
            "cpu_ratio_per_row_step": bound["cpu_ms_per_row_step"] / free["cpu_ms_per_row_step"],
            "constraint_ms_per_row_step": constraint_ms,
            "constraint_share": constraint_ms / bound["ms_per_row_step"],
        })
    base = rows[0]
    for row in rows:
        row["gain_unconstrained"] = base["unconstrained"]["ms_per_row_step"] / row["unconstrained"]["ms_per_row_step"]
        row["gain_constrained"] = base["constrained"]["ms_per_row_step"] / row["constrained"]["ms_per_row_step"]
    params = sum(p.numel() for p in model.parameters()) / 1e6
    report = {"model": f"DiffusionGemma random init, {params:.0f}M params, h={args.hidden}, {args.layers} layers, "
                       f"block 32, vocab {len(tokenizer)}",
              "schemas": len(schemas), "bind_s": bind_seconds, "threads": args.threads, "steps": args.steps,
              "max_new_tokens": args.max_new_tokens, "rows": rows}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{report['model']}; {len(schemas)} MaskBench schemas bound in {bind_seconds:.1f} s; "
          f"{args.threads} threads\n")
    print("| batch | mode | requests | tok/s | forward passes | row-steps | ms/row-step | CPU ms/row-step "
          "| outside-model share | constraint ms/row-step | constraint share | time ratio (CPU) | batching gain "
          "| invalid | raised |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        for mode in ("unconstrained", "constrained"):
            f = row[mode]
            extra = (f"{row['constraint_ms_per_row_step']:.2f} | {100 * row['constraint_share']:.1f}% "
                     f"| {row['time_ratio_per_row_step']:.3f}x ({row['cpu_ratio_per_row_step']:.3f}x)"
                     if mode == "constrained" else "- | - | -")
            print(f"| {row['batch_size']} | {mode} | {f['requests']} | {f['tokens_per_s']:.1f} | {f['forward_passes']} "
                  f"| {f['row_steps']} | {f['ms_per_row_step']:.2f} | {f['cpu_ms_per_row_step']:.2f} "
                  f"| {100 * f['outside_model_share']:.1f}% | {extra} "
                  f"| {row['gain_' + mode]:.2f}x | {f.get('invalid', '-')} | {f['raised']} |")


if __name__ == "__main__":
    main()
