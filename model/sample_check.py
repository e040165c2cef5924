"""Sanity check of the trained checkpoint with transformers' own, unconstrained ``generate``.

``python -m model.sample_check [--per-kind N] [--steps S]`` samples held-out items (never trained on, see
:func:`model.corpus.split_of`) and prints, per task, how often the raw model output is already right. This is the
model alone, without any constraint: it shows what the denoiser has learned, and is the baseline that the
constrained sampler improves on (the real benchmark is ``benchmarks/quality.py``).

Metrics: JSON: parses, whole-object exact match, field exact match (top-level properties of the target whose
value the output reproduces); SQL: exact string match, parses; Sudoku: fraction of blank cells filled correctly,
fraction of givens copied, whole grids right.

``--copy-probe N`` asks the question under all of JSON extraction: does the model read a value from the text at
all? See :func:`copy_probe`. ``--value-probe N`` asks it of every kind of field at once: see :func:`value_probe`.
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import sqlglot
import torch

from constrained.default_model import checkpoint_dir, load
from constrained.prompts import json_prompt, prompt_ids
from model import blocks, corpus
from model.objective import value_flags
from model.train import value_positions


def generate_answers(model, tokenizer, prompts: list[str], steps: int, seed: int) -> list[str]:
    """Answers from ``model.generate`` on left-padded prompts, cut at the first end token."""
    contexts = [prompt_ids(tokenizer, p) for p in prompts]
    width = max(map(len, contexts))
    ids = torch.full((len(contexts), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, context in enumerate(contexts):
        ids[row, width - len(context) :] = torch.tensor(context)
        mask[row, width - len(context) :] = 1
    torch.manual_seed(seed)
    with torch.no_grad():
        out = model.generate(ids, attention_mask=mask, max_denoising_steps=steps)
    return [blocks.answer_text(tokenizer, row[width:].tolist()) for row in out.sequences]


def json_scores(items: list[corpus.Item], answers: list[str]) -> dict:
    parsed = fields = fields_right = exact = 0
    for item, answer in zip(items, answers):
        target = json.loads(item.target)
        try:
            value = json.loads(answer)
            parsed += 1
        except ValueError:
            value = None
        exact += value == target
        for key, expected in target.items():
            fields += 1
            fields_right += isinstance(value, dict) and value.get(key) == expected
    return {"n": len(items), "parses": parsed / len(items), "exact": exact / len(items),
            "field_exact_match": fields_right / max(1, fields)}


def sql_scores(items: list[corpus.Item], answers: list[str]) -> dict:
    parses = 0
    for answer in answers:
        try:
            sqlglot.parse_one(answer, read="sqlite")
            parses += 1
        except sqlglot.errors.SqlglotError:
            pass
    exact = sum(a.strip() == i.target for i, a in zip(items, answers))
    return {"n": len(items), "parses": parses / len(items), "exact": exact / len(items)}


def sudoku_scores(items: list[corpus.Item], answers: list[str]) -> dict:
    blanks = blanks_right = givens = givens_right = solved = 0
    for item, answer in zip(items, answers):
        puzzle = item.meta["puzzle"]
        solved += answer == item.target
        for i, (p, s) in enumerate(zip(puzzle, item.target)):
            got = answer[i] if i < len(answer) else None
            if p == ".":
                blanks += 1
                blanks_right += got == s
            else:
                givens += 1
                givens_right += got == s
    return {"n": len(items), "blank_cell_accuracy": blanks_right / blanks, "given_copy_accuracy": givens_right / givens,
            "solved": solved / len(items)}


SCORERS = {"json": json_scores, "sql": sql_scores, "sudoku": sudoku_scores}


def _enum_variants(item: corpus.Item, tokenizer) -> Iterator[list[tuple[str, str, str, int]]]:
    """Per top-level enum field the text states once: for each option, the option, the item's prompt and answer
    with that option stated instead, and the answer token where the option starts."""
    schema, target = item.meta["schema"], json.loads(item.target)
    text = item.prompt.split("\nText: ", 1)[1].rsplit("\nJSON:", 1)[0]
    for key, sub in schema["properties"].items():
        options, value = sub.get("enum"), target.get(key)
        if not options or value not in options or text.count(value) != 1:
            continue
        variants = []
        for option in options:
            answer = json.dumps({**target, key: option}, ensure_ascii=False)
            opening = json.dumps(key) + ': "'
            starts = answer.index(opening) + len(opening)
            spans = tokenizer(answer, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
            position = next((i for i, (begin, _) in enumerate(spans) if begin == starts), None)
            if position is not None:
                variants.append((option, json_prompt(schema, text.replace(value, option)), answer, position))
        if len(variants) == len(options):
            yield variants


def copy_probe(model, tokenizer, items: int) -> dict:
    """How often the model's guess for an enum value follows the value the text states.

    For held-out JSON items with an enum field (colours, statuses), each option in turn is written into the
    text and the answer; the answer's canvas is given clean except the option's first token, which is noise,
    and the probe records whether the model's most likely token there is the option stated. A model that
    reads values from the text follows every time. One that ignores the text gives the same guess for every
    option of a field, so it follows at most once per field: ``chance`` (fields over questions asked) is the
    most it can score, and what guessing uniformly among the options scores on average.
    """
    followed = asked = 0
    stream = corpus.items("held_out", mix={"json": 1.0})
    probed = 0
    while probed < items:
        for variants in itertools.islice(_enum_variants(next(stream), tokenizer), items - probed):
            probed += 1
            for _, prompt, answer, position in variants:
                context = torch.tensor([prompt_ids(tokenizer, prompt)])
                canvas = torch.tensor([blocks.answer_blocks(tokenizer, answer, model.config.canvas_length)[0]])
                noisy = canvas.clone()
                noisy[0, position] = tokenizer.mask_token_id
                with torch.no_grad():
                    logits = model(input_ids=context, decoder_input_ids=noisy).logits
                followed += int(logits[0, position].argmax()) == int(canvas[0, position])
                asked += 1
    return {"task": "copy_probe", "fields": probed, "follows_text": followed / asked, "chance": probed / asked}


def value_probe(model, tokenizer, items: int) -> dict:
    """Token accuracy at the value positions of held-out JSON answers when all of them are noise at once.

    Keys and punctuation stay clean (the constraint fixes them at sampling time), every token that spells a value
    (see :func:`model.train.value_positions`) is the mask token, and the model's argmax there is scored against
    the answer: the share of the values it gets from the text in one pass, over names, numbers, dates and enums
    alike. Answers longer than one canvas are skipped.
    """
    right = total = 0
    stream = corpus.items("held_out", mix={"json": 1.0})
    for item in itertools.islice(stream, items):
        canvases = blocks.answer_blocks(tokenizer, item.target, model.config.canvas_length)
        if len(canvases) > 1:
            continue
        canvas = torch.tensor([canvases[0]])
        values = value_flags(value_positions(tokenizer, item.target), canvas.shape[1])
        noisy = canvas.clone()
        noisy[0, values] = tokenizer.mask_token_id
        context = torch.tensor([prompt_ids(tokenizer, item.prompt)])
        with torch.no_grad():
            logits = model(input_ids=context, decoder_input_ids=noisy).logits
        right += int((logits[0].argmax(-1) == canvas[0])[values].sum())
        total += int(values.sum())
    return {"task": "value_probe", "value_tokens": total, "read_right": right / max(1, total)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-kind", type=int, default=20)
    parser.add_argument("--steps", type=int, default=32, help="max denoising steps per canvas")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--show", type=int, default=3, help="print this many samples per task")
    parser.add_argument("--checkpoint", type=Path, default=None, help="checkpoint directory (default: the shipped one)")
    parser.add_argument("--copy-probe", type=int, default=0, metavar="N",
                        help="only probe whether the model reads enum values from the text, on N held-out fields")
    parser.add_argument("--value-probe", type=int, default=0, metavar="N",
                        help="only score the value tokens of N held-out JSON answers, all noised at once")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer = load(args.checkpoint or checkpoint_dir())
    if args.copy_probe or args.value_probe:
        if args.copy_probe:
            print(json.dumps(copy_probe(model, tokenizer, args.copy_probe)))
        if args.value_probe:
            print(json.dumps(value_probe(model, tokenizer, args.value_probe)))
        return
    stream = corpus.items("held_out")
    by_kind: dict[str, list[corpus.Item]] = {k: [] for k in corpus.KINDS}
    while any(len(v) < args.per_kind for v in by_kind.values()):
        item = next(stream)
        if len(by_kind[item.kind]) < args.per_kind:
            by_kind[item.kind].append(item)
    for kind, items in by_kind.items():
        answers = generate_answers(model, tokenizer, [i.prompt for i in items], args.steps, args.seed)
        print(json.dumps({"task": kind, **SCORERS[kind](items, answers)}))
        for item, answer in list(zip(items, answers))[: args.show]:
            print(f"  want {item.target!r}\n  got  {answer!r}")


if __name__ == "__main__":
    main()
