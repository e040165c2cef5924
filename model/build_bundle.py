"""Build the training bundle a GPU machine trains from: ``python -m model.build_bundle [--items N] [--out DIR]``.

Runs here, where the corpus generator and its dependencies are: trains the tokenizer on the corpus, then generates
and tokenizes ``--items`` training items (:func:`model.train.tokenize_item`, the CPU trainer's own convention) and
writes them with the model's configuration as a bundle (:mod:`model.bundle`) under ``model/runs/``, a path git
ignores and the device tool carries. ``model/README.md`` gives the whole GPU recipe.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path

from model import architecture, bundle, corpus
from model import tokenizer as tokenizer_lib
from model.train import TOKENIZER_TEXTS, mix_argument, tokenize_items

DEFAULT_OUT = Path(__file__).resolve().parent / "runs" / "gpu-bundle"
CHUNK = 1000  # items tokenized in one call
REPORT_EVERY = 50_000
DEFAULT_MIX = {"json": 0.75, "sql": 0.15, "sudoku": 0.1}  # the mix of the shipped checkpoint's last runs


def tokenized_items(tok, count: int, seed: int, max_context: int, **corpus_options) -> Iterator[bundle.TokenizedItem]:
    """The first ``count`` training items of the seeded corpus whose first context fits ``max_context``."""
    stream = corpus.items("train", seed=seed, **corpus_options)
    made = 0
    while made < count:
        chunk = [next(stream) for _ in range(CHUNK)]
        for item, (context, answer, values) in zip(chunk, tokenize_items(tok, chunk)):
            if len(context) <= max_context and made < count:
                yield bundle.TokenizedItem(item.kind, context, answer, values)
                made += 1


def _reporting(items: Iterator[bundle.TokenizedItem], started: float) -> Iterator[bundle.TokenizedItem]:
    """``items`` unchanged, with a line every ``REPORT_EVERY`` items: a full build takes a while."""
    for count, item in enumerate(items, 1):
        if count % REPORT_EVERY == 0:
            print(f"{count:,} items tokenized after {(time.monotonic() - started) / 60:.1f} min", flush=True)
        yield item


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--items", type=int, default=600_000, help="training items in the bundle")
    parser.add_argument("--seed", type=int, default=corpus.TRAIN_SEED + 100)
    parser.add_argument("--mix", type=mix_argument, default=DEFAULT_MIX, help="task weights as kind=weight,...")
    parser.add_argument("--invented-words", type=float, default=0.75,
                        help="share of JSON items whose list-drawn words are swapped for invented ones")
    parser.add_argument("--varied", type=float, default=0.5,
                        help="share of JSON items drawn from the varied texts (citations, multilingual records...)")
    parser.add_argument("--max-context", type=int, default=320, help="leave out items with a longer prompt")
    parser.add_argument("--vocab-size", type=int, default=tokenizer_lib.DEFAULT_VOCAB_SIZE)
    parser.add_argument("--tokenizer-texts", type=int, default=TOKENIZER_TEXTS, help="items the tokenizer learns on")
    parser.add_argument("--canvas-length", type=int, default=architecture.CANVAS_LENGTH)
    parser.add_argument("--hidden", type=int, default=architecture.GPU_SIZE["hidden"])
    parser.add_argument("--layers", type=int, default=architecture.GPU_SIZE["layers"])
    parser.add_argument("--heads", type=int, default=architecture.GPU_SIZE["heads"])
    args = parser.parse_args(argv)

    started = time.monotonic()
    options = {"mix": args.mix, "invented_words": args.invented_words, "varied": args.varied}
    texts = corpus.take(args.tokenizer_texts, "train", seed=args.seed, **options)
    tok = tokenizer_lib.train_tokenizer((s for item in texts for s in (item.prompt, item.target)),
                                        vocab_size=args.vocab_size, split_spaces=True)
    config = architecture.tiny_config(len(tok), pad_id=tok.pad_token_id, eos_id=tok.eos_token_id,
                                      bos_id=tok.bos_token_id, canvas_length=args.canvas_length,
                                      hidden=args.hidden, layers=args.layers, heads=args.heads)
    # The items follow the tokenizer's texts in no particular relation: a seed of their own keeps them apart.
    items = _reporting(tokenized_items(tok, args.items, args.seed + 1, args.max_context, **options), started)
    meta = {"seed": args.seed, "max_context": args.max_context, "vocab_size": len(tok), **options}
    meta = bundle.write(args.out, items, corpus.KINDS, tok, config, meta)
    print(f"bundle {args.out}: {meta['items']:,} items ({meta['items_per_kind']}), "
          f"{meta['context_tokens'] + meta['answer_tokens']:,} tokens, {meta['compressed_bytes'] / 2**20:.1f} MiB "
          f"compressed ({meta['raw_bytes'] / 2**20:.1f} MiB raw), built in {(time.monotonic() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
