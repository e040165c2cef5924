"""Generation benchmark: validity and speed of constrained vs unconstrained diffusion decoding.

Two questions, on random-init models (no hub; a random model is the hardest case for validity, and its step
cost is that of a trained model of the same shape):

1. **Valid rate**: on MaskBench schemas, how many outputs validate with jsonschema, unconstrained (the model's
   own sampler, same prompt) vs constrained (``generate_json``)?
2. **Step cost**: tokens/s and milliseconds per denoising step, constrained vs unconstrained, and the share of a
   constrained step spent in the constraint (lattice masks, joint-feasibility checks, block commit), on a tiny
   DiffusionGemma and on a mid-size one with a 32K vocabulary. Early stopping is disabled so both runs take the
   same number of steps.

Usage: ``python -m benchmarks.generation [--seeds 5] [--schemas 5] [--mid-hidden 512]``
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from collections import defaultdict
from pathlib import Path

import jsonschema
import torch

from constrained.denoisers import diffusion_gemma as gemma_module
from constrained.errors import ConstrainedError
from constrained.generation import generate, generate_json, open_session
from constrained.json_schema import json_schema
from constrained.prompts import json_prompt
from constrained.sampler import ConstrainedSampler
from constrained.testing import byte_tokenizer, diffusion_gemma, masked_lm

MASKBENCH = Path(__file__).parents[1] / ".." / "shared" / "data" / "maskbench"
SCHEMAS = ["o12503", "o15726", "o17460", "o17663", "o10059", "o13671", "o17424", "o17692", "o10008", "o12182"]
CONSTRAINT_PARTS = ("_block_masks", "_accept", "_clashes", "_map_fallback", "_budget_canvas")


def load_schemas(names: list[str]) -> dict[str, dict]:
    wanted = {f"Github_easy---{name}" for name in names}
    found = {}
    with gzip.open(MASKBENCH / "Github_easy.jsonl.gz", "rt") as lines:
        for line in lines:
            row = json.loads(line)
            if row["id"] in wanted:
                found[row["id"].split("---")[1]] = row["schema"]
    return {name: found[name] for name in names if name in found}


def is_valid(schema: dict, text: str) -> bool:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return False
    validator = jsonschema.validators.validator_for(schema)(schema, format_checker=jsonschema.FormatChecker())
    return not any(True for _ in validator.iter_errors(value))


def valid_rates(schemas: dict[str, dict], seeds: int) -> None:
    tokenizer = byte_tokenizer(320)
    models = {
        "DiffusionGemma tiny": (diffusion_gemma(len(tokenizer), canvas_length=16), {"steps": 8}),
        "BERT masked LM tiny": (masked_lm(len(tokenizer)), {"steps": 8, "canvas_length": 16, "temperature": 1.0}),
    }
    print(f"\n## Valid rate ({len(schemas)} MaskBench Github_easy schemas x {seeds} seeds, max_new_tokens=64)\n")
    print("| model | unconstrained valid | constrained valid | constrained raised |")
    print("|---|---|---|---|")
    for label, (model, options) in models.items():
        counts = defaultdict(int)
        for _name, schema in schemas.items():
            for seed in range(seeds):
                free = generate(None, json_prompt(schema, "fill in"), model=model, tokenizer=tokenizer,
                                max_new_tokens=64, seed=seed, **options)
                counts["free"] += is_valid(schema, free.text)
                try:
                    bound = generate_json(schema, "fill in", model=model, tokenizer=tokenizer, max_new_tokens=64,
                                          seed=seed, **options)
                    counts["constrained"] += is_valid(schema, bound.text)
                except ConstrainedError:
                    counts["raised"] += 1
                counts["runs"] += 1
        runs = counts["runs"]
        print(f"| {label} | {counts['free']}/{runs} | {counts['constrained']}/{runs} | {counts['raised']}/{runs} |")


class Stopwatch:
    """Accumulates the time spent in the constraint's side of each step, wherever that code lives."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, function, only_constrained: bool = False):
        def timed(*args, **kwargs):
            if only_constrained and args[1] is None:  # mask_logits(logits, None): no constraint, no cost
                return function(*args, **kwargs)
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        return timed


def instrument(stopwatch: Stopwatch) -> None:
    """Time the lattice work in the sampler and the mask application and noise draws in the denoiser."""
    for name in CONSTRAINT_PARTS:
        setattr(ConstrainedSampler, name, stopwatch.wrap(getattr(ConstrainedSampler, name)))
    gemma_module.mask_logits = stopwatch.wrap(gemma_module.mask_logits, only_constrained=True)
    gemma_module.uniform_from_allowed = stopwatch.wrap(gemma_module.uniform_from_allowed)


def step_cost(label, model, tokenizer, schema, steps, max_new_tokens, repeats, stopwatch) -> None:
    """Per-step time of both modes, interleaved and taking the fastest repeat (the machine is shared)."""
    constraint = json_schema(schema)
    start = time.perf_counter()
    constraint.bind(tokenizer)
    bind_seconds = time.perf_counter() - start
    best: dict[str, tuple] = {}
    for seed in range(repeats):
        for mode in ("unconstrained", "constrained"):
            session = open_session(
                constraint if mode == "constrained" else None, model, tokenizer, steps, seed,
                {"confidence_threshold": 1e-12},  # never stop early: both modes run every step
            )
            sampler = ConstrainedSampler(session.denoiser, session.bound, session.generator,
                                         end_token_ids=session.end_token_ids())
            prompt = session.prompt_ids(json_prompt(schema, "fill in"))
            stopwatch.seconds = 0.0
            start = time.perf_counter()
            sample = sampler.generate(prompt, max_new_tokens)
            wall = time.perf_counter() - start
            per_step = wall / sample.forward_passes
            if mode not in best or per_step < best[mode][0]:
                best[mode] = (per_step, stopwatch.seconds / wall, len(sample.token_ids) / wall)
    free, bound = best["unconstrained"], best["constrained"]
    print(
        f"| {label} | {len(tokenizer)} | {free[0] * 1e3:.1f} | {bound[0] * 1e3:.1f} "
        f"| {100 * (bound[0] / free[0] - 1):+.1f}% | {bound[0] * bound[1] * 1e3:.1f} | {100 * bound[1]:.1f}% "
        f"| {free[2]:.1f} | {bound[2]:.1f} "
        f"| {bind_seconds:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--schemas", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mid-hidden", type=int, default=512)
    parser.add_argument("--mid-layers", type=int, default=6)
    parser.add_argument("--skip-valid", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    schemas = load_schemas(SCHEMAS[: args.schemas])
    if not args.skip_valid:
        valid_rates(schemas, args.seeds)

    schema = schemas[SCHEMAS[0]]
    print("\n## Step cost (1 CPU thread, fastest of --repeats interleaved runs; constraint share = lattice masks, "
          "joint-feasibility checks, commit, mask application and noise from allowed sets, timed inside)\n")
    print("| model | vocab | ms/step unconstrained | ms/step constrained | wall overhead | constraint ms/step "
          "| constraint share | tok/s unconstrained | tok/s constrained | bind s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    tiny_tok = byte_tokenizer(320)
    stopwatch = Stopwatch()
    instrument(stopwatch)
    step_cost("DiffusionGemma tiny (h=32, 2 layers, canvas 16)", diffusion_gemma(len(tiny_tok), canvas_length=16),
              tiny_tok, schema, 16, 64, args.repeats, stopwatch)
    mid_tok = byte_tokenizer(32768)
    mid = diffusion_gemma(len(mid_tok), canvas_length=32, hidden_size=args.mid_hidden, layers=args.mid_layers,
                          heads=8, experts=4)
    params = sum(p.numel() for p in mid.parameters()) / 1e6
    step_cost(f"DiffusionGemma mid ({params:.0f}M params, h={args.mid_hidden}, {args.mid_layers} layers, canvas 32)",
              mid, mid_tok, schema, 16, 64, args.repeats, stopwatch)


if __name__ == "__main__":
    main()
