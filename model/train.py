"""Train the built-in denoiser on a CPU: ``python -m model.train [--steps N] [--max-minutes M] [--out DIR]``.

The objective is :mod:`model.objective`'s. This trainer draws its examples from the corpus as it goes (nothing to
build first, no epoch), which suits a CPU's few examples a second; a GPU machine, which has none of this project's
dependencies, trains from a pre-tokenized bundle instead (:mod:`model.build_bundle`, :mod:`model.train_bundle`).

Items longer than one canvas are trained block-autoregressively, exactly as :mod:`model.blocks` lays them out for
generation: a random block of the answer is the canvas, the prompt plus the earlier (clean) blocks is the context.

Everything is seeded (corpus, tokenizer, init, noise, batches), so the same arguments give the same checkpoint on
the same software stack when the run finishes its ``--steps``. ``--max-minutes`` caps the run on a slow or busy
machine: the learning-rate schedule follows whichever of step count and elapsed time is further along, so a capped
run still ends with a decayed learning rate (but then depends on the machine's speed). ``--resume DIR`` continues
from a checkpoint with a fresh optimizer and schedule; ``training.json`` then records the run it continued, so the
shipped checkpoint's record holds every run that made it (``docs/experiments.md`` tells what each one changed).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from transformers import DiffusionGemmaForBlockDiffusion, PreTrainedTokenizerFast

from model import architecture, blocks, corpus
from model import tokenizer as tokenizer_lib
from model.objective import (
    Example,
    collate,
    corrupt,
    denoising_loss,
    generation_config,
    learning_rate,
    position_weights,
    save_checkpoint,
    value_noise_rows,
)

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "constrained" / "checkpoint"  # the shipped checkpoint
TOKENIZER_TEXTS = 20_000


# JSON lexemes in order; a string is a key when the next lexeme is ``:``, every other string, number or literal
# is a value.
JSON_LEXEME = re.compile(r'"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null|[{}\[\]:,]|\s+')


def value_positions(tokenizer: PreTrainedTokenizerFast, answer: str) -> list[bool]:
    """Per token of ``answer`` (as :func:`model.blocks.answer_blocks` spells it): does it overlap a JSON value?

    Values are string contents (not their quotes, not keys), numbers and literals. The constraint enforces keys and
    punctuation at sampling time; the values are what extraction is scored on and what the model can only learn by
    reading them from the text.
    """
    offsets = tokenizer(answer, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return _overlapping(offsets, _value_spans(answer))


def _value_spans(answer: str) -> list[tuple[int, int]]:
    lexemes = [m for m in JSON_LEXEME.finditer(answer) if not m.group().isspace()]
    spans = []
    for here, following in zip(lexemes, [*lexemes[1:], None]):
        text = here.group()
        if text.startswith('"'):
            if following is None or following.group() != ":":
                spans.append((here.start() + 1, here.end() - 1))
        elif text not in "{}[]:,":
            spans.append(here.span())
    return spans


def _overlapping(offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[bool]:
    return [any(begin < end_v and start_v < end for start_v, end_v in spans) for begin, end in offsets]


def tokenize_items(tok: PreTrainedTokenizerFast, items: list[corpus.Item]) -> list[tuple[list[int], list[int],
                                                                                      list[bool]]]:
    """Per item ``(context, answer, values)``: the first canvas's context (``<bos>`` and the prompt's tokens, as
    :func:`constrained.prompts.prompt_ids` builds it), the answer's tokens (no ``<eos>``), and per answer token
    whether it spells a JSON value (:func:`value_positions`; empty for SQL and Sudoku, which have no values).

    One call of the Rust tokenizer encodes a whole list, which matters when a bundle tokenizes a million items.
    """
    backend = tok.backend_tokenizer
    prompts = backend.encode_batch([item.prompt for item in items], add_special_tokens=False)
    answers = backend.encode_batch([item.target for item in items], add_special_tokens=False)
    return [([tok.bos_token_id, *prompt.ids], answer.ids,
             _overlapping(answer.offsets, _value_spans(item.target)) if item.kind == "json" else [])
            for item, prompt, answer in zip(items, prompts, answers)]


def examples(tok: PreTrainedTokenizerFast, canvas_length: int, seed: int, max_context: int,
             mix: dict[str, float] | None = None, invented_words: float = 0.0, minimal_sudoku: bool = False):
    """Endless seeded stream of :class:`model.objective.Example`, one random block per corpus item (kinds drawn by
    ``mix``; see :func:`model.corpus.items` for ``invented_words`` and ``minimal_sudoku``)."""
    rng = random.Random(seed)
    for item in corpus.items("train", seed=seed, mix=mix, invented_words=invented_words,
                             minimal_sudoku=minimal_sudoku):
        [(first, answer, values)] = tokenize_items(tok, [item])
        canvases = blocks.canvases(answer, tok.eos_token_id, canvas_length)
        index = rng.randrange(len(canvases))
        context = blocks.block_context(first, canvases, index)
        if len(context) <= max_context:
            flags = values[index * canvas_length : (index + 1) * canvas_length]
            yield Example(item.kind, context, canvases[index], flags)


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
    parser.add_argument("--mix", type=mix_argument, default=None,
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


def mix_argument(text: str) -> dict[str, float]:
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
