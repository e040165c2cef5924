"""Train the built-in denoiser: ``python -m model.train [--steps N] [--max-minutes M] [--out DIR]``.

Objective (what DiffusionGemma's ``EntropyBoundSampler`` expects at sampling time): the sampler starts from a canvas
of uniformly random tokens, keeps the tokens it accepts and re-draws the others uniformly. So training corrupts a
clean canvas by replacing each token, with probability ``t ~ U(0, 1)`` per example, by a uniformly random vocabulary
token, and asks for the clean canvas back (cross-entropy over every canvas position, since the model is not told
which ones were corrupted). Self-conditioning: for half of the batches, a first pass without gradients produces
logits that are fed back as ``self_conditioning_logits``, as the sampler does with the previous step's logits.

Items longer than one canvas are trained block-autoregressively, exactly as :mod:`model.blocks` lays them out for
generation: a random block of the answer is the canvas, the prompt plus the earlier (clean) blocks is the context.

Everything is seeded (corpus, tokenizer, init, noise, batches), so the same arguments give the same checkpoint on
the same software stack when the run finishes its ``--steps``. ``--max-minutes`` caps the run on a slow or busy
machine: the learning-rate schedule follows whichever of step count and elapsed time is further along, so a capped
run still ends with a decayed learning rate (but then depends on the machine's speed). ``--resume DIR`` continues
from a checkpoint with a fresh optimizer and schedule; ``training.json`` then records the run it continued.

The shipped checkpoint: ``--threads 1 --max-minutes 60`` (716 steps of 16 on a CPU shared with other jobs), then
``--resume model/checkpoint --seed 20261 --lr 1e-3 --warmup 50 --steps 3000 --max-minutes 90 --threads 1``
(3,000 more steps in 71 minutes, loss 0.50 -> 0.27), then ``--resume model/checkpoint --seed 20262 --lr 1e-3
--warmup 50 --steps 2500 --max-minutes 65 --threads 1`` (1,420 steps before the time cap on a CPU shared with
benchmarks; held-out loss at full noise: JSON 1.44 -> 1.38, SQL 0.37 -> 0.31, Sudoku 0.73 -> 0.65), then
``--resume model/checkpoint --seed 20263 --lr 1e-3 --warmup 50 --steps 3000 --max-minutes 45 --threads 2
--mix json=0.7,sql=0.2,sudoku=0.1 --value-weight 5`` (2,534 steps before the time cap; the value tokens of JSON
answers weigh five times the rest, since the model had learned keys and punctuation but guessed values from the
field name: ``sample_check --value-probe 100`` read 17.9% of them right before, 47.8% after), then
``--resume model/checkpoint --seed 20264 --lr 1e-3 --steps 1100 --max-minutes 25 --threads 1
--mix json=0.7,sql=0.2,sudoku=0.1 --value-weight 5 --value-noise 0.5`` (908 steps; its warmup was not recorded),
then ``--resume <that run> --isolate-spaces --seed 20265 --lr 1e-3 --warmup 100 --steps 4000 --max-minutes 65
--threads 2 --mix json=0.7,sql=0.2,sudoku=0.1 --value-weight 5 --value-noise 0.5`` (3,682 steps before the time cap,
loss 0.29 -> 0.15: with a word spelled alike in text and JSON the value probe went 47.8% -> 94.7% and the copy
probe 10.8% -> 100%), then ``--resume model/checkpoint --isolate-spaces --seed 20266 --lr 1e-3 --warmup 100
--steps 2700 --max-minutes 72 --threads 1 --mix json=0.75,sql=0.15,sudoku=0.1 --value-weight 3 --value-noise 0.25``
(all 2,700 steps in 67 minutes, loss 0.15; constrained JSON field exact match 43.9% -> 56.1% on quality.py's 30
items), then the same with ``--seed 20267`` (all 2,700 steps in 68 minutes; over 90 held-out JSON items whole objects
right 32.2% -> 41.1%, SQL exact match on 24 items 62.5% -> 83.3%), then the same with ``--seed 20268 --steps 2200
--max-minutes 55 --invented-words 0.5`` (all 2,200 steps in 52 minutes; on 60 held-out items with invented words
field exact match 39.7% -> 47.5%), then the same with ``--seed 20269 --steps 2400 --max-minutes 58
--invented-words 0.75`` (2,339 steps before the time cap; SQL exact match on 24 items 75.0% -> 87.5%), then the
same with ``--seed 20270 --steps 2000 --max-minutes 50`` (all 2,000 steps in 48 minutes; grounded JSON field exact
match over 180 held-out items 73.2% -> 78.4%); ``model/checkpoint/training.json`` records all eleven runs.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from transformers import DiffusionGemmaForBlockDiffusion, PreTrainedTokenizerFast
from transformers.models.diffusion_gemma.generation_diffusion_gemma import (
    DiffusionGemmaGenerationConfig,
    EntropyBoundSamplerConfig,
)

from constrained.prompts import prompt_ids
from model import architecture, blocks, corpus
from model import tokenizer as tokenizer_lib

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "constrained" / "checkpoint"  # the shipped checkpoint
TOKENIZER_TEXTS = 20_000


# JSON lexemes in order; a string is a key when the next lexeme is ``:``, every other string, number or literal
# is a value.
JSON_LEXEME = re.compile(r'"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null|[{}\[\]:,]|\s+')


@dataclass
class Example:
    """One training canvas and the context it is denoised against.

    ``values`` flags the canvas positions that spell a JSON value (empty for the other tasks): the tokens that the
    text, not the schema, decides, which ``--value-weight`` weighs up in the loss.
    """

    kind: str
    context: list[int]
    canvas: list[int]
    values: list[bool] = field(default_factory=list)


def value_positions(tokenizer: PreTrainedTokenizerFast, answer: str) -> list[bool]:
    """Per token of ``answer`` (as :func:`model.blocks.answer_blocks` spells it): does it overlap a JSON value?

    Values are string contents (not their quotes, not keys), numbers and literals. The constraint enforces keys and
    punctuation at sampling time; the values are what extraction is scored on and what the model can only learn by
    reading them from the text.
    """
    lexemes = [m for m in JSON_LEXEME.finditer(answer) if not m.group().isspace()]
    spans = []
    for here, following in zip(lexemes, [*lexemes[1:], None]):
        text = here.group()
        if text.startswith('"'):
            if following is None or following.group() != ":":
                spans.append((here.start() + 1, here.end() - 1))
        elif text not in "{}[]:,":
            spans.append(here.span())
    offsets = tokenizer(answer, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return [any(begin < end_v and start_v < end for start_v, end_v in spans) for begin, end in offsets]


def examples(tok: PreTrainedTokenizerFast, canvas_length: int, seed: int, max_context: int,
             mix: dict[str, float] | None = None, invented_words: float = 0.0, minimal_sudoku: bool = False):
    """Endless seeded stream of :class:`Example`, one random block per corpus item (kinds drawn by ``mix``; see
    :func:`model.corpus.items` for ``invented_words`` and ``minimal_sudoku``)."""
    rng = random.Random(seed)
    for item in corpus.items("train", seed=seed, mix=mix, invented_words=invented_words,
                             minimal_sudoku=minimal_sudoku):
        first = prompt_ids(tok, item.prompt)
        canvases = blocks.answer_blocks(tok, item.target, canvas_length)
        index = rng.randrange(len(canvases))
        context = blocks.block_context(first, canvases, index)
        if len(context) <= max_context:
            values = value_positions(tok, item.target) if item.kind == "json" else []
            flags = values[index * canvas_length : (index + 1) * canvas_length]
            yield Example(item.kind, context, canvases[index], flags)


def collate(batch: list[Example], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-pad contexts (RoPE is relative, so left padding leaves the context-to-canvas geometry intact)."""
    width = max(len(e.context) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, e in enumerate(batch):
        ids[row, width - len(e.context) :] = torch.tensor(e.context)
        mask[row, width - len(e.context) :] = 1
    canvas = torch.tensor([e.canvas for e in batch], dtype=torch.long)
    return ids, mask, canvas


def value_flags(values: list[bool], canvas_length: int) -> torch.Tensor:
    """Per-token value flags as a ``[canvas_length]`` boolean row (positions past the answer are no values)."""
    return torch.tensor(values + [False] * (canvas_length - len(values)), dtype=torch.bool)


def position_weights(batch: list[Example], canvas_length: int, value_weight: float) -> torch.Tensor:
    """``[batch, canvas_length]`` loss weights: ``value_weight`` at value positions, 1 elsewhere."""
    weights = torch.ones(len(batch), canvas_length)
    for row, e in enumerate(batch):
        weights[row, value_flags(e.values, canvas_length)] = value_weight
    return weights


def corrupt(
    canvas: torch.Tensor,
    vocab_size: int,
    generator: torch.Generator,
    only: torch.Tensor | None = None,
) -> torch.Tensor:
    """Replace each token by a uniform random one with probability ``t``, ``t ~ U(0, 1)`` drawn per example.

    ``only`` (``[batch, canvas]`` booleans) confines the noise to the flagged positions; its all-``True`` rows
    (or ``None``) corrupt the whole canvas.
    """
    t = torch.rand(canvas.shape[0], 1, generator=generator)
    hit = torch.rand(canvas.shape, generator=generator) < t
    if only is not None:
        hit &= only
    noise = torch.randint(0, vocab_size, canvas.shape, generator=generator)
    return torch.where(hit, noise, canvas)


def value_noise_rows(
    batch: list[Example], canvas_length: int, share: float, generator: torch.Generator
) -> torch.Tensor:
    """Where :func:`corrupt` may put noise: for a ``share`` of the JSON examples (drawn per example) only their value
    positions, elsewhere everywhere.

    Those examples are the state the constrained sampler reaches once keys and punctuation, the low-entropy
    positions it accepts first, have settled: structure clean, values still noise. The model must then read
    the values from the text, the skill extraction is scored on.
    """
    rows = torch.ones(len(batch), canvas_length, dtype=torch.bool)
    drawn = torch.rand(len(batch), generator=generator) < share
    for row, e in enumerate(batch):
        if drawn[row] and any(e.values):
            rows[row] = value_flags(e.values, canvas_length)
    return rows


def denoising_loss(
    model: DiffusionGemmaForBlockDiffusion,
    context: torch.Tensor,
    context_mask: torch.Tensor,
    canvas: torch.Tensor,
    noisy: torch.Tensor,
    self_condition: bool,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-example cross-entropy of the clean canvas given the noisy one (shape ``[batch]``), averaged over the
    canvas with ``weights`` (``[batch, canvas]``, uniform if ``None``)."""
    encoded = model.model.encoder(input_ids=context, attention_mask=context_mask)
    cache = encoded.cache
    decoder_mask = torch.cat([context_mask, torch.ones_like(canvas)], dim=1)
    sc_logits = None
    if self_condition:
        with torch.no_grad():
            sc_logits = model(cache=cache, decoder_input_ids=noisy, decoder_attention_mask=decoder_mask).logits
    logits = model(
        cache=cache,
        decoder_input_ids=noisy,
        decoder_attention_mask=decoder_mask,
        self_conditioning_logits=sc_logits,
    ).logits
    loss = F.cross_entropy(logits.transpose(1, 2), canvas, reduction="none")
    if weights is None:
        return loss.mean(dim=1)
    return (loss * weights).sum(dim=1) / weights.sum(dim=1)


def learning_rate(step: int, progress: float, peak: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to a tenth of the peak as ``progress`` goes 0 -> 1."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def generation_config(tok: PreTrainedTokenizerFast, canvas_length: int) -> DiffusionGemmaGenerationConfig:
    """Defaults for transformers' own ``generate``: two canvases, 32 steps, EOS/pad ids of this tokenizer.

    The sampling temperature runs from 0.6 down to 0.3 (transformers' defaults: 0.8 to 0.4). Too hot, a small
    model samples wrong values it would not pick by argmax and the sampler keeps them; too cold, it settles on
    its first guess at the answer's layout and cannot move a value that landed at the wrong positions. For the
    checkpoint that reads values right 94.7% of the time once the layout is given, 80 held-out JSON items gave
    field exact match 30.5% at 0.2 -> 0.1 and 43.3% at 0.6 -> 0.3 (25 items: 27.7% at 0.05 -> 0.02, 30.8% at
    0.4 -> 0.2, 35.4% at 0.8 -> 0.4, 36.9% at 1.0 -> 0.5).
    """
    return DiffusionGemmaGenerationConfig(
        max_new_tokens=2 * canvas_length,
        max_denoising_steps=32,
        sampler_config=EntropyBoundSamplerConfig(entropy_bound=0.1),
        t_min=0.3,
        t_max=0.6,
        stability_threshold=1,
        confidence_threshold=0.005,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )


def save_checkpoint(
    model: DiffusionGemmaForBlockDiffusion, tok: PreTrainedTokenizerFast, out: Path, stats: dict
) -> None:
    """Config, weights, generation config, tokenizer and the training record, into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tokenizer_lib.save(tok, out)
    (out / "training.json").write_text(json.dumps(stats, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1800, help="optimizer steps (the LR schedule spans them)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--max-minutes", type=float, default=60.0, help="stop early (and save) after this long")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=corpus.TRAIN_SEED)
    parser.add_argument("--max-context", type=int, default=320, help="skip examples with a longer context")
    parser.add_argument("--mix", type=_mix, default=None,
                        help="task weights as kind=weight,... (default: corpus.DEFAULT_MIX)")
    parser.add_argument("--value-weight", type=float, default=1.0,
                        help="loss weight of the canvas positions that spell a JSON value (1: every position alike)")
    parser.add_argument("--value-noise", type=float, default=0.0,
                        help="share of JSON examples whose noise hits only their value positions (0: none)")
    parser.add_argument("--invented-words", type=float, default=0.0,
                        help="share of JSON items whose list-drawn words are swapped for invented ones (0: none)")
    parser.add_argument("--minimal-sudoku", action="store_true",
                        help="Sudoku items as minimal unique puzzles on searched grids (default: the shuffled pattern)")
    parser.add_argument("--log-every", type=int, default=25)
    parser.add_argument("--save-every", type=int, default=250)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--resume", type=Path, default=None,
                        help="continue from this checkpoint (its tokenizer and weights; fresh optimizer and schedule)")
    parser.add_argument("--isolate-spaces", action="store_true",
                        help="pre-tokenize a space before a letter on its own (tokenizer.isolate_spaces)")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    console = Console(stderr=False)
    started = time.monotonic()

    previous: dict | None = None
    if args.resume is not None:
        model = DiffusionGemmaForBlockDiffusion.from_pretrained(str(args.resume), local_files_only=True)
        tok = PreTrainedTokenizerFast.from_pretrained(str(args.resume), local_files_only=True)
        config = model.config
        record = args.resume / "training.json"
        previous = json.loads(record.read_text()) if record.is_file() else None
    else:
        texts = corpus.take(TOKENIZER_TEXTS, "train", seed=args.seed)
        tok = tokenizer_lib.train_tokenizer(s for item in texts for s in (item.prompt, item.target))
        config = architecture.tiny_config(
            len(tok), pad_id=tok.pad_token_id, eos_id=tok.eos_token_id, bos_id=tok.bos_token_id
        )
        model = architecture.build(config)
    if args.isolate_spaces:
        tok = tokenizer_lib.isolate_spaces(tok)
    model.generation_config = generation_config(tok, config.canvas_length)
    model.train()
    params = sum(p.numel() for p in model.parameters())
    console.print(f"vocab {len(tok)}, canvas {config.canvas_length}, parameters {params:,}")

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)
    generator = torch.Generator().manual_seed(args.seed)
    stream = examples(tok, config.canvas_length, args.seed, args.max_context, args.mix, args.invented_words,
                      args.minimal_sudoku)
    history: list[dict] = []
    running: dict[str, list[float]] = {k: [] for k in corpus.KINDS}
    step = 0
    interactive = sys.stdout.isatty()
    columns = (TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, disable=not interactive) as progress:
        task = progress.add_task("train", total=args.steps, loss="-")
        for step in range(1, args.steps + 1):
            batch = [next(stream) for _ in range(args.batch_size)]
            context, context_mask, canvas = collate(batch, tok.pad_token_id)
            only = None
            if args.value_noise:
                only = value_noise_rows(batch, config.canvas_length, args.value_noise, generator)
            noisy = corrupt(canvas, config.text_config.vocab_size, generator, only)
            self_condition = bool(torch.rand((), generator=generator) < 0.5)
            # Progress is the further of steps and time, so a run stopped by the time budget still ends decayed.
            done = max((step - 1) / args.steps, (time.monotonic() - started) / 60 / args.max_minutes)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step - 1, done, args.lr, args.warmup)
            weights = None
            if args.value_weight != 1:
                weights = position_weights(batch, config.canvas_length, args.value_weight)
            per_example = denoising_loss(model, context, context_mask, canvas, noisy, self_condition, weights)
            loss = per_example.mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            for e, value in zip(batch, per_example.tolist()):
                running[e.kind].append(value)
            progress.update(task, advance=1, loss=f"{loss.item():.3f}")
            if step % args.log_every == 0 or step == args.steps:
                seen = max(1, sum(len(v) for v in running.values()))
                record = {"step": step, "minutes": round((time.monotonic() - started) / 60, 2),
                          "loss": round(sum(sum(v) for v in running.values()) / seen, 4)}
                record.update({f"loss_{k}": round(sum(v) / len(v), 4) for k, v in running.items() if v})
                history.append(record)
                running = {k: [] for k in corpus.KINDS}
                if not interactive:
                    print(json.dumps(record), flush=True)
            elapsed = (time.monotonic() - started) / 60
            if step % args.save_every == 0:
                save_checkpoint(model, tok, args.out, _stats(args, step, elapsed, params, history, previous))
            if elapsed > args.max_minutes:
                console.print(f"time budget reached after {step} steps")
                break
    elapsed = (time.monotonic() - started) / 60
    save_checkpoint(model, tok, args.out, _stats(args, step, elapsed, params, history, previous))
    last = history[-1] if history else "-"
    console.print(f"saved {args.out} after {step} steps, {elapsed:.1f} min, last loss {last}")


def _mix(text: str) -> dict[str, float]:
    """``json=0.7,sql=0.2,sudoku=0.1`` -> weights, checked against the corpus's kinds."""
    weights = {}
    for part in text.split(","):
        kind, _, weight = part.partition("=")
        if kind not in corpus.KINDS:
            raise argparse.ArgumentTypeError(f"unknown task {kind!r}; the tasks are {', '.join(corpus.KINDS)}")
        weights[kind] = float(weight)
    return weights


def _stats(args: argparse.Namespace, step: int, minutes: float, params: int, history: list[dict],
           previous: dict | None) -> dict:
    return {
        "resumed_from": previous,
        "steps_done": step,
        "steps_planned": args.steps,
        "batch_size": args.batch_size,
        "peak_lr": args.lr,
        "warmup": args.warmup,
        "value_weight": args.value_weight,
        "value_noise": args.value_noise,
        "invented_words": args.invented_words,
        "minimal_sudoku": args.minimal_sudoku,
        "isolate_spaces": args.isolate_spaces,
        "seed": args.seed,
        "mix": args.mix or corpus.DEFAULT_MIX,
        "minutes": round(minutes, 2),
        "parameters": params,
        "history": history,
    }


if __name__ == "__main__":
    main()
