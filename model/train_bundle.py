"""Train the built-in denoiser from a bundle on a GPU: ``python -m model.train_bundle --bundle DIR [--out DIR]``.

Runs on a machine that has torch and transformers and nothing of this project installed: it imports only those,
the standard library and the pure-Python :mod:`model.objective`, :mod:`model.bundle`, :mod:`model.blocks` and
:mod:`model.tokenizer`. The objective is the CPU trainer's (:mod:`model.objective`); what differs is the scale:
large batches of pre-tokenized items drawn at random from the bundle (with new noise and a new block each time an
item comes back), bfloat16 autocast on a GPU, and a wall-clock budget.

``--max-minutes`` counts from the start of the process and bounds the whole run, loading included; the
learning-rate schedule follows whichever of ``--steps`` and elapsed time is further along, so a run stopped by
the budget ends decayed. The checkpoint is saved at the first log step (so that a broken save shows at once),
then every ``--save-minutes`` and at the end, weights in float16
(``--save-dtype``), into ``OUT/checkpoint`` (the layout of ``constrained/checkpoint``), and every log record is
appended to ``OUT/training.log`` as it is made, so a run cut off by its command's limit still returns its last
save and its log. ``OUT`` is ``--out``, else the ``OUT`` environment variable the device tool sets, else
``model/runs/gpu-out``. On a machine without a GPU it runs the same loop on the CPU in float32 (the tests do).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path
from typing import NamedTuple

import torch
import transformers
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from transformers import DiffusionGemmaForBlockDiffusion

from model import bundle as bundle_lib
from model import objective

DEFAULT_OUT = Path(__file__).resolve().parent / "runs" / "gpu-out"
BUCKETS = 8  # batches drawn at once and cut by context length, so that a batch pads its contexts little


def batches(data: bundle_lib.Bundle, batch_size: int, max_context: int, rng: random.Random):
    """Endless batches of examples from random items; each draw of ``BUCKETS`` batches is sorted by context
    length before it is cut, and the batches leave in random order."""
    while True:
        drawn = [data.example(rng.randrange(len(data)), rng, max_context) for _ in range(BUCKETS * batch_size)]
        drawn.sort(key=lambda e: len(e.context))
        group = [drawn[i : i + batch_size] for i in range(0, len(drawn), batch_size)]
        rng.shuffle(group)
        yield from group


class Batch(NamedTuple):
    """One step's tensors, made on the CPU (by a loader worker on a GPU machine) and moved to the device."""

    context: torch.Tensor
    context_mask: torch.Tensor
    canvas: torch.Tensor
    weights: torch.Tensor
    noise_allowed: torch.Tensor
    kinds: torch.Tensor
    tokens: torch.Tensor


class Batches(IterableDataset):
    """:func:`batches` as tensors, seeded per loader worker, so that the Python work of drawing and padding
    examples runs beside the training step instead of before it."""

    def __init__(self, data: bundle_lib.Bundle, batch_size: int, seed: int, value_weight: float,
                 value_noise: float) -> None:
        self.data, self.batch_size, self.seed = data, batch_size, seed
        self.value_weight, self.value_noise = value_weight, value_noise

    def __iter__(self):
        worker = get_worker_info()
        seed = self.seed + 1000 * (worker.id + 1 if worker else 0)
        rng, coins = random.Random(seed), torch.Generator().manual_seed(seed)
        length, kinds = self.data.config.canvas_length, self.data.meta["kinds"]
        for batch in batches(self.data, self.batch_size, self.data.meta["max_context"], rng):
            context, context_mask, canvas = objective.collate(batch, self.data.tokenizer.pad_token_id)
            yield Batch(context, context_mask, canvas, objective.position_weights(batch, length, self.value_weight),
                        objective.value_noise_rows(batch, length, self.value_noise, coins),
                        torch.tensor([kinds.index(e.kind) for e in batch]),
                        torch.tensor(sum(len(e.context) + length for e in batch)))


def main(argv: list[str] | None = None) -> None:
    started = time.monotonic()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, required=True, help="a bundle from python -m model.build_bundle")
    parser.add_argument("--out", type=Path, default=None, help="default: $OUT, else model/runs/gpu-out")
    parser.add_argument("--max-minutes", type=float, default=8.5, help="wall-clock budget of the whole run")
    parser.add_argument("--save-minutes", type=float, default=2.0, help="save the checkpoint this often")
    parser.add_argument("--steps", type=int, default=100_000, help="steps planned (the schedule spans them)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1.5e-3)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--value-weight", type=float, default=3.0,
                        help="loss weight of the canvas positions that spell a JSON value")
    parser.add_argument("--value-noise", type=float, default=0.25,
                        help="share of JSON examples whose noise hits only their value positions")
    parser.add_argument("--seed", type=int, default=20300)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--save-dtype", choices=["float16", "bfloat16", "float32"], default="float16")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workers", type=int, default=6 if torch.cuda.is_available() else 0,
                        help="loader processes preparing batches (0: the training process itself)")
    args = parser.parse_args(argv)
    out = args.out or Path(os.environ.get("OUT") or DEFAULT_OUT)
    checkpoint_dir, log_path = out / "checkpoint", out / "training.log"
    out.mkdir(parents=True, exist_ok=True)
    log = log_path.open("a", encoding="utf-8")

    def note(record: dict) -> None:
        line = json.dumps(record)
        print(line, flush=True)
        log.write(line + "\n")
        log.flush()

    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    if on_gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    data = bundle_lib.load(args.bundle)
    tok, config = data.tokenizer, data.config
    length = config.canvas_length
    model = DiffusionGemmaForBlockDiffusion(config).to(device)
    model.generation_config = objective.generation_config(tok, length)
    model.train()
    params = sum(p.numel() for p in model.parameters())
    environment = {"device": torch.cuda.get_device_name(device) if on_gpu else "cpu", "torch": torch.__version__,
                   "transformers": transformers.__version__}
    note({"event": "start", "items": len(data), "parameters": params, "loaded_minutes":
          round((time.monotonic() - started) / 60, 3), **environment})

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01,
                                  fused=on_gpu)
    noise = torch.Generator(device=device).manual_seed(args.seed)
    coins = torch.Generator().manual_seed(args.seed)
    loader = DataLoader(Batches(data, args.batch_size, args.seed, args.value_weight, args.value_noise),
                        batch_size=None, num_workers=args.workers, pin_memory=on_gpu,
                        prefetch_factor=4 if args.workers else None, persistent_workers=bool(args.workers))
    stream = iter(loader)
    kinds = data.meta["kinds"]
    loss_sums = torch.zeros(len(kinds), device=device)
    loss_counts = torch.zeros(len(kinds), device=device)
    history: list[dict] = []
    token_count = torch.zeros((), dtype=torch.long, device=device)
    examples_seen = step = 0
    training_from = time.monotonic()
    saved_at: float | None = None  # the first log step saves at once, so a broken save shows in the first minute

    def stats(minutes: float) -> dict:
        return {"recipe": "model.train_bundle", "bundle": data.meta, **environment, "steps_done": step,
                "steps_planned": args.steps, "batch_size": args.batch_size, "peak_lr": args.lr,
                "warmup": args.warmup, "value_weight": args.value_weight, "value_noise": args.value_noise,
                "seed": args.seed, "max_minutes": args.max_minutes, "minutes": round(minutes, 2),
                "examples_seen": examples_seen, "tokens_seen": int(token_count), "parameters": params,
                "history": history}

    def save(minutes: float) -> None:
        objective.save_checkpoint(model, tok, checkpoint_dir, stats(minutes), getattr(torch, args.save_dtype))
        note({"event": "saved", "step": step, "minutes": round(minutes, 2)})

    while True:
        elapsed = (time.monotonic() - started) / 60
        if step >= args.steps or elapsed >= args.max_minutes:
            break
        step += 1
        batch = Batch(*(t.to(device, non_blocking=True) for t in next(stream)))
        noisy = objective.corrupt(batch.canvas, config.text_config.vocab_size, noise, batch.noise_allowed)
        self_condition = bool(torch.rand((), generator=coins) < 0.5)
        progress = max((step - 1) / args.steps, elapsed / args.max_minutes)
        for group in optimizer.param_groups:
            group["lr"] = objective.learning_rate(step - 1, progress, args.lr, args.warmup)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=on_gpu):
            per_example = objective.denoising_loss(model, batch.context, batch.context_mask, batch.canvas, noisy,
                                         self_condition, batch.weights)
        loss = per_example.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        loss_sums.index_add_(0, batch.kinds, per_example.detach().float())
        loss_counts.index_add_(0, batch.kinds, torch.ones_like(per_example, dtype=torch.float))
        token_count += batch.tokens
        examples_seen += len(per_example)
        if step % args.log_every == 0:
            sums, counts = loss_sums.tolist(), loss_counts.tolist()
            minutes = (time.monotonic() - started) / 60
            record = {"step": step, "minutes": round(minutes, 2), "loss": round(sum(sums) / max(1, sum(counts)), 4),
                      **{f"loss_{k}": round(s / c, 4) for k, s, c in zip(kinds, sums, counts) if c},
                      "lr": round(optimizer.param_groups[0]["lr"], 6),
                      "examples_per_second": round(examples_seen / (time.monotonic() - training_from), 1)}
            history.append(record)
            note(record)
            loss_sums.zero_()
            loss_counts.zero_()
            if saved_at is None or (time.monotonic() - saved_at) / 60 >= args.save_minutes:
                save(minutes)
                saved_at = time.monotonic()
    minutes = (time.monotonic() - started) / 60
    save(minutes)
    seconds = time.monotonic() - training_from
    note({"event": "done", "steps": step, "examples": examples_seen, "tokens": int(token_count),
          "minutes": round(minutes, 2), "tokens_per_second": round(int(token_count) / seconds)})
    log.close()


if __name__ == "__main__":
    main()
