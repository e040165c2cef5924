"""Real tokenizers of released models bind, in any process, and judge MaskBench instances exactly.

The tokenizers of ``../shared/data/tokenizers`` (GPT-2, DeepSeek LLM and Coder byte-level BPE, Llama 2's
SentencePiece with byte fallback), mistral-common's Tekken and SentencePiece tokenizers when installed, and a
Gemma-sized (262,144 pieces) SentencePiece vocabulary built locally. For each MaskBench instance whose
canonical encoding (``tokenizer.encode`` without special tokens) decodes back to the instance text, the bound
constraint accepts that encoding, closed by the end token, exactly when the instance is valid. The default run
samples two small schemas; the slow run sweeps twelve.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

import constrained
from constrained import ConstrainedError
from constrained.errors import CompileTimeout, VocabularyError
from constrained.vocabulary import as_vocabulary

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data"
TOKENIZERS = DATA / "tokenizers"
MASKBENCH = DATA / "maskbench"
NAMES = ("gpt-2", "deepseek-llm", "deepseek-coder", "llama-spm")

pytestmark = pytest.mark.skipif(not (TOKENIZERS / "llama-spm").is_dir(), reason="real tokenizers not present")


@dataclass(frozen=True)
class Encoder:
    """A tokenizer with the canonical encoding and the decoding a user sees, whatever its library."""

    tokenizer: object
    encode: Callable[[str], list[int]]
    decode: Callable[[list[int]], str]


def _hugging_face(tokenizer) -> Encoder:
    return Encoder(tokenizer, lambda text: tokenizer.encode(text, add_special_tokens=False), tokenizer.decode)


@cache
def _encoder(name: str) -> Encoder:
    if name == "gemma-sized":
        from benchmarks import gemma_sized

        return _hugging_face(gemma_sized.tokenizer(TOKENIZERS))
    if name.startswith("mistral-"):
        mistral_common = pytest.importorskip("mistral_common")
        from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

        files = {"mistral-tekken": "tekken_240911.json", "mistral-sp": "mistral_instruct_tokenizer_240323.model.v3"}
        path = Path(mistral_common.__file__).parent / "data" / files[name]
        inner = MistralTokenizer.from_file(str(path)).instruct_tokenizer.tokenizer
        return Encoder(inner, lambda text: inner.encode(text, bos=False, eos=False), inner.decode)
    from transformers import AutoTokenizer

    return _hugging_face(AutoTokenizer.from_pretrained(str(TOKENIZERS / name)))


ALL = (*NAMES, "mistral-tekken", "mistral-sp", "gemma-sized")


#: The default run's sample: two small Github_easy schemas (binding a 100K vocabulary costs seconds a schema).
DEFAULT_SAMPLE = ("Github_easy---o10059", "Github_easy---o10086")


@cache
def _schemas(count: int, ids: tuple[str, ...] = ()) -> list[tuple[str, dict, list[tuple[str, bool]]]]:
    """The first ``count`` MaskBench schemas (of ``ids`` when given; else a few splits in turn) that compile and
    whose every instance the text-level constraint judges as MaskBench does (what the compiler gets wrong is
    not this test's subject), with their instances as (text, valid)."""
    chosen = []
    splits = sorted({i.split("---")[0] for i in ids}) if ids else ["Glaiveai2K", "Github_easy", "JME"]
    streams = [gzip.open(MASKBENCH / f"{split}.jsonl.gz", "rt") for split in splits]
    try:
        while len(chosen) < count and streams:
            for stream in list(streams):
                line = stream.readline()
                if not line:
                    streams.remove(stream)
                    continue
                item = json.loads(line)
                cases = [(json.dumps(t["data"], ensure_ascii=False), t["valid"]) for t in item["tests"]]
                if (ids and item["id"] not in ids) or len({valid for _, valid in cases}) < 2:
                    continue  # not asked for, or not both valid and invalid instances
                try:
                    constraint = constrained.json_schema(item["schema"]).compile()
                    if all(constraint.accepts(text) == valid for text, valid in cases):
                        chosen.append((item["id"], item["schema"], cases))
                except ConstrainedError:
                    continue
    finally:
        for stream in streams:
            stream.close()
    return chosen[:count]


def _judge(name: str, schemas: list) -> tuple[int, int]:
    """Asserts the canonical encodings are judged as MaskBench does; returns (judged, skipped) instances (skipped:
    the tokenizer does not give the text back, or the schema's bind ran past its time bound)."""
    encoder = _encoder(name)
    vocabulary = as_vocabulary(encoder.tokenizer)
    end = vocabulary.end_token_ids[0]
    judged = skipped = 0
    for schema_id, schema, cases in schemas:
        try:
            bound = constrained.json_schema(schema).bind(encoder.tokenizer)
        except CompileTimeout:
            skipped += len(cases)  # binding cost (measured by benchmarks/ttfm.py) is not this test's subject
            continue
        for text, valid in cases:
            ids = encoder.encode(text)
            if encoder.decode(ids) != text:
                skipped += 1  # the tokenizer itself does not give this text back (normalization, added tokens)
                continue
            assert bound.accepts_tokens([*ids, end]) == valid, (name, schema_id, text)
            judged += 1
    return judged, skipped


@pytest.fixture(autouse=True)
def _fresh_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CONSTRAINED_CACHE", str(tmp_path_factory.getbasetemp() / "constrained-cache"))


@pytest.mark.skipif(not MASKBENCH.is_dir(), reason="MaskBench data not present")
@pytest.mark.parametrize("name", ALL)
def test_canonical_encoding_is_accepted_exactly_when_valid(name):
    sample = _schemas(len(DEFAULT_SAMPLE), DEFAULT_SAMPLE)
    assert len(sample) == len(DEFAULT_SAMPLE)
    judged, skipped = _judge(name, sample)
    assert judged > skipped


@pytest.mark.slow
@pytest.mark.skipif(not MASKBENCH.is_dir(), reason="MaskBench data not present")
@pytest.mark.parametrize("name", ALL)
def test_canonical_encodings_of_more_schemas(name):
    judged, skipped = _judge(name, _schemas(12))
    assert judged > skipped


def test_llama_opens_json_with_its_dummy_prefix_piece():
    """The issue's case: Llama 2 encodes a JSON text starting with ``▁{``, which must be accepted as is and
    be among the first position's choices."""
    encoder = _encoder("llama-spm")
    text = '{"name": "Ada", "tags": ["x", "y z"]}'
    ids = encoder.encode(text)
    assert encoder.tokenizer.convert_ids_to_tokens(ids)[0].startswith("\u2581{")
    bound = constrained.json_schema({"type": "object"}).bind(encoder.tokenizer)
    assert encoder.decode(ids) == text and bound.accepts_tokens(ids)
    assert bound.canvas(len(ids) + 2).allowed(0)[ids[0]]


def test_tiktoken_encoding_spells_its_ranks():
    """Tekken's table is a tiktoken ``Encoding`` (ranks after Tekken's special ids): read directly, it spells
    the same bytes, and without an end token of its own it asks for one."""
    tekken = _encoder("mistral-tekken").tokenizer
    encoding = tekken._model
    vocabulary = as_vocabulary(encoding, eos_token_id=0)
    specials = tekken.num_special_tokens
    assert vocabulary.size == tekken.n_words - specials
    assert all(vocabulary.token_bytes[i] == tekken.id_to_byte_piece(i + specials) for i in range(1, 5000))
    with pytest.raises(VocabularyError, match="eos_token_id"):
        as_vocabulary(encoding)


def test_markdown_pieces_do_not_make_a_byte_level_vocabulary_wordpiece():
    encoder = _encoder("deepseek-llm")
    vocabulary = as_vocabulary(encoder.tokenizer)
    for piece in ("##", "###"):
        assert vocabulary.token_bytes[encoder.tokenizer.convert_tokens_to_ids(piece)] == piece.encode()
    assert not vocabulary.start_bytes


_FRESH_PROCESS = """
import json, sys
from tokenizers import Tokenizer
import constrained
from constrained.vocabulary import as_vocabulary
schema = {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}
text = '{"id": 7}'
for path in sys.argv[1:]:
    tokenizer = Tokenizer.from_file(path + "/tokenizer.json")
    vocabulary = as_vocabulary(tokenizer)
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    bound = constrained.json_schema(schema).bind(tokenizer)
    print(json.dumps([path, vocabulary.fingerprint, bound.accepts_tokens(ids)]))
"""


def test_binding_is_the_same_in_fresh_processes(tmp_path):
    """The vocabulary and the verdict do not depend on the process (dict order, string hashing). The raw
    ``tokenizers.Tokenizer`` is read as a transformers tokenizer is (same code), without transformers'
    seconds of import per process."""
    outputs = []
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "CONSTRAINED_CACHE": str(tmp_path / "cache")}
        run = subprocess.run([sys.executable, "-c", _FRESH_PROCESS, *(str(TOKENIZERS / n) for n in NAMES)],
                             capture_output=True, text=True, env=env, timeout=600, check=False)
        assert run.returncode == 0, run.stderr[-2000:]
        outputs.append([json.loads(line) for line in run.stdout.splitlines()])
    assert outputs[0] == outputs[1] == outputs[2]
    assert [accepted for _, _, accepted in outputs[0]] == [True] * len(NAMES)


def test_gemma_sized_vocabulary_binds():
    encoder = _encoder("gemma-sized")
    vocabulary = as_vocabulary(encoder.tokenizer)
    assert vocabulary.size == 262_144
    text = '{"city": "Zürich Ω"}'
    ids = encoder.encode(text)
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    bound = constrained.json_schema(schema).bind(encoder.tokenizer)
    assert encoder.decode(ids) == text and bound.accepts_tokens([*ids, vocabulary.end_token_ids[0]])
