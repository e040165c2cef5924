"""The GPU recipe at toy scale: a bundle built here trains on the CPU through the GPU entry point, and its
checkpoint loads through the library and generates valid JSON."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import torch
from safetensors import safe_open

import constrained
from constrained import default_model
from model import blocks, build_bundle, corpus, train, train_bundle
from model import bundle as bundle_lib

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py

ROOT = Path(__file__).resolve().parents[1]
TOY = ["--items", "120", "--tokenizer-texts", "200", "--vocab-size", "400", "--hidden", "32", "--layers", "2",
       "--heads", "2", "--canvas-length", "32", "--max-context", "200"]
# What a GPU machine lacks: this project's own package (compiled extensions) and the dependencies that only the
# corpus, the constraints or the CPU trainer's console need.
ABSENT_ON_THE_GPU_MACHINE = ("constrained", "jsonschema", "sqlglot", "lark", "outlines_core", "rich", "hypothesis",
                             "model.corpus", "model.train", "model.records")


@pytest.fixture(scope="module")
def toy_bundle(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundle")
    build_bundle.main([*TOY, "--out", str(out)])
    return out


def test_bundle_holds_the_corpus_items_as_the_cpu_trainer_tokenizes_them(toy_bundle):
    data = bundle_lib.load(toy_bundle)
    meta = json.loads((toy_bundle / bundle_lib.META_FILE).read_text())
    assert len(data) == meta["items"] == 120
    assert sum(meta["items_per_kind"].values()) == 120
    options = {key: meta[key] for key in ("mix", "invented_words", "varied")}
    stream = corpus.items("train", seed=meta["seed"] + 1, **options)
    expected = []
    while len(expected) < 120:
        item = next(stream)
        [tokenized] = train.tokenize_items(data.tokenizer, [item])
        if len(tokenized[0]) <= meta["max_context"]:
            expected.append((item.kind, *tokenized))
    for index, (kind, context, answer, values) in enumerate(expected):
        stored = data.item(index)
        assert (stored.kind, stored.context, stored.answer, stored.values) == (kind, context, answer, values)
    assert data.config.canvas_length == 32 and data.config.text_config.vocab_size == len(data.tokenizer)


def test_examples_are_blocks_laid_out_as_generation_reads_them(toy_bundle):
    data = bundle_lib.load(toy_bundle)
    rng = random.Random(0)
    length = data.config.canvas_length
    longest = max(range(len(data)), key=lambda i: len(data.item(i).answer))
    item = data.item(longest)
    canvases = blocks.canvases(item.answer, data.tokenizer.eos_token_id, length)
    assert len(canvases) > 1, "the toy bundle should hold an answer longer than one canvas"
    seen = set()
    for _ in range(60):
        example = data.example(longest, rng, max_context=10_000)
        block = canvases.index(example.canvas)
        seen.add(block)
        assert example.context == blocks.block_context(item.context, canvases, block)
        assert example.values == item.values[block * length : (block + 1) * length]
    assert seen == set(range(len(canvases)))
    # A context budget that only the first block fits keeps every draw on the first block.
    assert all(data.example(longest, rng, max_context=len(item.context)).canvas == canvases[0] for _ in range(20))


def test_the_gpu_trainer_imports_nothing_a_gpu_machine_lacks():
    probe = ("import sys, model.train_bundle; "
             "print(' '.join(sorted(name for name in sys.modules)))")
    loaded = set(subprocess.run([sys.executable, "-c", probe], cwd=ROOT, check=True, capture_output=True,
                                text=True, timeout=300).stdout.split())
    assert "torch" in loaded and "transformers" in loaded
    assert not {name for name in loaded if name.split(".")[0] in ABSENT_ON_THE_GPU_MACHINE
                or name in ABSENT_ON_THE_GPU_MACHINE}


def test_gpu_entry_point_trains_saves_half_precision_and_the_library_generates_with_it(toy_bundle, tmp_path,
                                                                                       monkeypatch):
    monkeypatch.setenv("OUT", str(tmp_path))
    train_bundle.main(["--bundle", str(toy_bundle), "--steps", "40", "--batch-size", "8", "--log-every", "10",
                       "--lr", "3e-3", "--warmup", "5", "--max-minutes", "2", "--save-minutes", "0"])
    checkpoint = tmp_path / "checkpoint"
    assert sorted(p.name for p in checkpoint.iterdir()) == sorted(
        ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
         "training.json"])
    with safe_open(str(checkpoint / "model.safetensors"), "pt") as weights:
        assert {weights.get_tensor(name).dtype for name in weights.keys()} == {torch.float16}

    records = [json.loads(line) for line in (tmp_path / "training.log").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert records[-1]["event"] == "done" and records[-1]["steps"] == 40
    assert sum(r.get("event") == "saved" for r in records) >= 2  # periodic saves, then the last one
    training = json.loads((checkpoint / "training.json").read_text())
    assert training["steps_done"] == 40 and training["bundle"]["items"] == 120

    model, tokenizer = default_model.load(checkpoint)
    assert {p.dtype for p in model.parameters()} == {torch.float32}  # widened for the CPU
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "year": {"type": "integer"}},
              "required": ["city", "year"]}
    result = constrained.generate_json(schema, "Ada moved to Paris in 1843.", model=model, tokenizer=tokenizer,
                                       max_new_tokens=64, seed=0, grounded=True)
    jsonschema.validate(result.value, schema)


def test_a_missing_bundle_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.build_bundle"):
        bundle_lib.load(tmp_path)
