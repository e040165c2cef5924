"""The three peers of the mask-cost benchmark (llguidance, XGrammar, outlines-core), set up once for a vocabulary:
per schema each compiles, then computes one autoregressive mask per token, timed with its advance.

The vocabulary is one of mistral-common's (:mod:`benchmarks.mistral_vocab`), handed to every peer as the same
bytes per token id, so every engine reads the same token sequence.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from benchmarks.mistral_vocab import MistralVocab
from constrained.bounded_child import run_bounded

PEERS = ("llguidance", "xgrammar", "outlines_core")


class _PeerTokenizer:
    """What ``llguidance.TokenizerWrapper`` reads: bytes per id, the end token, and a tokenize callable."""

    def __init__(self, vocab: MistralVocab) -> None:
        self.eos_token_id = vocab.eos_id
        self.bos_token_id = None
        self.tokens = vocab.peer_pieces
        self.special_token_ids = vocab.special_ids
        self._vocab = vocab

    def __call__(self, text: str | bytes) -> list[int]:
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        return self._vocab._encode(text)


class Peers:
    """The three peers, each set up once for the vocabulary; per schema they compile, then mask token by token."""

    def __init__(self, vocab: MistralVocab, timeout_s: float) -> None:
        import llguidance
        import outlines_core
        import xgrammar

        self.vocab = vocab
        self.timeout_s = timeout_s
        self.words = (vocab.size + 31) // 32
        self.lltokenizer = llguidance.LLTokenizer(llguidance.TokenizerWrapper(_PeerTokenizer(vocab)))
        info = xgrammar.TokenizerInfo([p or b"" for p in vocab.token_bytes], xgrammar.VocabType.RAW,
                                      vocab_size=vocab.size, stop_token_ids=[vocab.eos_id])
        self.xgrammar_compiler = xgrammar.GrammarCompiler(info, max_threads=1, cache_enabled=False)
        spelled: dict[bytes, list[int]] = {}
        for token_id, piece in enumerate(vocab.token_bytes):
            if piece is not None:
                spelled.setdefault(piece, []).append(token_id)
        self.outlines_vocabulary = outlines_core.Vocabulary(vocab.eos_id, spelled)

    def compile(self, name: str, schema: dict) -> Any:
        """The peer's matcher factory for ``schema``; raises when the peer cannot compile it."""
        if name == "llguidance":
            import llguidance

            grammar = llguidance.LLMatcher.grammar_from_json_schema(schema)
            matcher = llguidance.LLMatcher(self.lltokenizer, grammar, log_level=0)
            if matcher.is_error():
                raise RuntimeError(matcher.get_error()[:200])
            return grammar
        if name == "xgrammar":
            return self.xgrammar_compiler.compile_json_schema(json.dumps(schema), any_whitespace=True,
                                                              strict_mode=False)
        return run_bounded(_outlines_index, json.dumps(schema), self.outlines_vocabulary, timeout_s=self.timeout_s,
                           memory_bytes=None, what="building outlines-core's Index")

    def run(self, name: str, compiled: Any, tokens: list[int]) -> tuple[list[float], bool, int]:
        """Per-token µs (mask + advance) over ``tokens`` then the end token.

        Also whether the peer accepted every token (timing stops at the first it refuses) and how many
        tokens it accepted although its own mask had left them out (llguidance's masks keep to the canonical
        tokenization of forced text, so a valid but non-canonical token can be refused by the mask alone).
        """
        sequence = tokens + [self.vocab.eos_id]
        if name == "llguidance":
            return self._run_llguidance(compiled, sequence)
        if name == "xgrammar":
            return self._run_xgrammar(compiled, sequence)
        return self._run_outlines(compiled, sequence)

    def _run_llguidance(self, grammar: str, sequence: list[int]) -> tuple[list[float], bool, int]:
        import llguidance

        matcher = llguidance.LLMatcher(self.lltokenizer, grammar, log_level=0)
        bitmask = np.zeros(self.words, dtype=np.int32)
        pointer, size = bitmask.ctypes.data, bitmask.nbytes
        timings, outside = [], 0
        for token in sequence:
            start = time.perf_counter_ns()
            matcher.unsafe_compute_mask_ptr(pointer, size)
            accepted = matcher.consume_token(token)
            timings.append((time.perf_counter_ns() - start) / 1e3)
            if not accepted or matcher.is_error():
                return timings, False, outside
            outside += not allows(bitmask, token)
        return timings, True, outside

    def _run_xgrammar(self, compiled: Any, sequence: list[int]) -> tuple[list[float], bool, int]:
        import xgrammar

        matcher = xgrammar.GrammarMatcher(compiled)
        bitmask = xgrammar.allocate_token_bitmask(1, self.vocab.size)
        timings, outside = [], 0
        for token in sequence:
            start = time.perf_counter_ns()
            matcher.fill_next_token_bitmask(bitmask)
            accepted = matcher.accept_token(token)
            timings.append((time.perf_counter_ns() - start) / 1e3)
            if not accepted:
                return timings, False, outside
            outside += not allows(bitmask[0].numpy(), token)
        return timings, True, outside

    def _run_outlines(self, index: Any, sequence: list[int]) -> tuple[list[float], bool, int]:
        import outlines_core

        guide = outlines_core.Guide(index)
        bitmask = np.zeros(self.words, dtype=np.int32)
        pointer = bitmask.ctypes.data
        timings = []
        for token in sequence:
            start = time.perf_counter_ns()
            guide.write_mask_into(pointer, self.words, 4)
            allowed = allows(bitmask, token)
            if allowed and token != self.vocab.eos_id:  # outlines-core has no transition on the end token
                guide.advance(token, return_tokens=False)
            timings.append((time.perf_counter_ns() - start) / 1e3)
            if not allowed:  # its advance follows its mask: a token outside it is refused
                return timings, False, 0
        return timings, True, 0


def allows(bitmask: np.ndarray, token: int) -> bool:
    """Whether a packed bitmask (32 token ids per int32 word, lowest bit first) allows ``token``."""
    return bool((int(bitmask[token // 32]) >> (token % 32)) & 1)


def _outlines_index(schema_json: str, vocabulary: Any) -> Any:
    """outlines-core's Index for a JSON schema (run in a bounded child: its determinization can blow up)."""
    from outlines_core import Index
    from outlines_core.json_schema import build_regex_from_schema

    return Index(build_regex_from_schema(schema_json), vocabulary)
