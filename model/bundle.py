"""A pre-tokenized training corpus that travels to a GPU machine: token ids, the tokenizer and the model's config.

Why a bundle: the corpus generator needs this project's dependencies (jsonschema, the puzzle generator's compiled
helpers) and a machine's worth of CPU time per million items, and a GPU machine has neither the one nor the time
to spare. So the items are generated and tokenized here (:mod:`model.build_bundle`) and only their token ids
travel; :mod:`model.train_bundle` reads them with nothing but torch and transformers.

Layout of a bundle directory:

* ``examples.pt.xz``: the items as flat ``int16`` token arrays with ``int64`` offsets (contexts, answers), their
  kinds (``uint8``, indices into ``bundle.json``'s ``kinds``) and per answer token a JSON-value flag; saved with
  ``torch.save`` and compressed with LZMA (the synthetic text repeats its templates, so it packs several times);
* ``bundle.json``: how it was built (corpus options, seed, counts), for the training record;
* ``config.json``: the model to train (a DiffusionGemma configuration), ``tokenizer.json`` and
  ``tokenizer_config.json``.

An item stores the context of its first canvas and its answer's tokens without ``<eos>``; the canvases and the
context of a later block are laid out from them as :mod:`model.blocks` does for generation.
"""

from __future__ import annotations

import io
import json
import lzma
import random
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import DiffusionGemmaConfig, PreTrainedTokenizerFast

from model import blocks
from model import tokenizer as tokenizer_lib
from model.objective import Example

EXAMPLES_FILE = "examples.pt.xz"
META_FILE = "bundle.json"
TOKEN_DTYPE = torch.int16  # ids travel in two bytes: the vocabulary must stay under 32,768 tokens


@dataclass(frozen=True)
class TokenizedItem:
    """One corpus item as ids: ``context`` of the first canvas, ``answer`` without ``<eos>``, and per answer token
    whether it spells a JSON value (``values`` empty for the tasks without values)."""

    kind: str
    context: list[int]
    answer: list[int]
    values: list[bool]


@dataclass
class Bundle:
    """A loaded bundle: the items' flat arrays, the tokenizer and the model configuration."""

    meta: dict
    tokenizer: PreTrainedTokenizerFast
    config: DiffusionGemmaConfig
    kinds: torch.Tensor
    contexts: torch.Tensor
    context_offsets: torch.Tensor
    answers: torch.Tensor
    answer_offsets: torch.Tensor
    values: torch.Tensor

    def __len__(self) -> int:
        return len(self.kinds)

    def item(self, index: int) -> TokenizedItem:
        """The ``index``-th item."""
        c0, c1 = self.context_offsets[index : index + 2].tolist()
        a0, a1 = self.answer_offsets[index : index + 2].tolist()
        kind = self.meta["kinds"][int(self.kinds[index])]
        values = self.values[a0:a1].tolist() if kind == "json" else []
        return TokenizedItem(kind, self.contexts[c0:c1].tolist(), self.answers[a0:a1].tolist(), values)

    def example(self, index: int, rng: random.Random, max_context: int) -> Example:
        """A random block of item ``index`` as a training example, drawn among the blocks whose context (the
        prompt plus the earlier canvases) is at most ``max_context`` tokens (the first block always is: longer
        prompts were left out when the bundle was built)."""
        item = self.item(index)
        length = self.config.canvas_length
        canvases = blocks.canvases(item.answer, self.tokenizer.eos_token_id, length)
        fitting = max(1, min(len(canvases), (max_context - len(item.context)) // length + 1))
        block = rng.randrange(fitting)
        flags = item.values[block * length : (block + 1) * length]
        return Example(item.kind, blocks.block_context(item.context, canvases, block), canvases[block], flags)


def write(
    directory: Path,
    items: Iterable[TokenizedItem],
    kinds: tuple[str, ...],
    tokenizer: PreTrainedTokenizerFast,
    config: DiffusionGemmaConfig,
    meta: dict,
) -> dict:
    """Write a bundle of ``items`` into ``directory``; returns ``meta`` completed with the counts and sizes.

    Raises:
        ValueError: the vocabulary does not fit the two-byte ids, or an item's kind is not in ``kinds``.
    """
    if len(tokenizer) > torch.iinfo(TOKEN_DTYPE).max + 1:
        raise ValueError(f"a vocabulary of {len(tokenizer)} tokens does not fit {TOKEN_DTYPE} ids")
    # Typed arrays, two bytes a token: a million items would take gigabytes as lists of Python ints.
    kind_codes, contexts, answers, values = array("B"), array("h"), array("h"), array("B")
    context_offsets, answer_offsets = array("q", [0]), array("q", [0])
    for item in items:
        if item.kind not in kinds:
            raise ValueError(f"item kind {item.kind!r} is not one of {kinds}")
        kind_codes.append(kinds.index(item.kind))
        contexts.extend(item.context)
        answers.extend(item.answer)
        values.extend(item.values or [False] * len(item.answer))
        context_offsets.append(len(contexts))
        answer_offsets.append(len(answers))
    arrays = {
        "kinds": _tensor(kind_codes, torch.uint8),
        "contexts": _tensor(contexts, TOKEN_DTYPE),
        "context_offsets": _tensor(context_offsets, torch.int64),
        "answers": _tensor(answers, TOKEN_DTYPE),
        "answer_offsets": _tensor(answer_offsets, torch.int64),
        "values": _tensor(values, torch.uint8).bool(),
    }
    raw = io.BytesIO()
    torch.save(arrays, raw)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / EXAMPLES_FILE).write_bytes(lzma.compress(raw.getvalue(), preset=6))
    tokenizer_lib.save(tokenizer, directory)
    config.save_pretrained(str(directory))
    counts = {kind: int((arrays["kinds"] == code).sum()) for code, kind in enumerate(kinds)}
    meta = {**meta, "kinds": list(kinds), "items": len(kind_codes), "items_per_kind": counts,
            "context_tokens": len(contexts), "answer_tokens": len(answers), "raw_bytes": raw.tell(),
            "compressed_bytes": (directory / EXAMPLES_FILE).stat().st_size}
    (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _tensor(values: array, dtype: torch.dtype) -> torch.Tensor:
    return torch.frombuffer(bytearray(values.tobytes()), dtype=dtype) if len(values) else torch.empty(0, dtype=dtype)


def load(directory: Path) -> Bundle:
    """The bundle in ``directory``, its arrays on the CPU.

    Raises:
        FileNotFoundError: ``directory`` lacks one of the bundle's files (it is built by ``python -m
            model.build_bundle``).
    """
    for name in (EXAMPLES_FILE, META_FILE, "config.json", "tokenizer.json"):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{directory / name} is missing (python -m model.build_bundle builds a bundle)")
    arrays = torch.load(io.BytesIO(lzma.decompress((directory / EXAMPLES_FILE).read_bytes())), weights_only=True)
    return Bundle(
        meta=json.loads((directory / META_FILE).read_text()),
        tokenizer=PreTrainedTokenizerFast.from_pretrained(str(directory), local_files_only=True),
        config=DiffusionGemmaConfig.from_pretrained(str(directory), local_files_only=True),
        **arrays,
    )
