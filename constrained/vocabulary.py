"""A tokenizer's vocabulary as raw bytes per token id.

Constraints speak bytes (a regex's DFA runs over UTF-8), tokenizers speak pieces ("Ġworld", "▁world",
"<0x0A>"). This module is the one place that turns a tokenizer into ``token id -> bytes`` so that everything
downstream (the token DFA, the canvas lattice) can ignore how a tokenizer writes its pieces.
"""

from __future__ import annotations

import hashlib
import json
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

from .errors import VocabularyError

#: Names under which plain vocabularies usually carry their end-of-sequence token.
END_TOKEN_NAMES = ("</s>", "<eos>", "<|endoftext|>", "<|end_of_text|>", "<|eot_id|>", "<end_of_turn>")


@dataclass(frozen=True)
class TokenVocabulary:
    """Bytes spelled by each token id; ``None`` for ids that never appear inside a text (specials, holes).

    ``end_token_ids`` are the tokens that close a text and pad a canvas after it (EOS, pad).
    """

    token_bytes: tuple[bytes | None, ...]
    end_token_ids: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.end_token_ids:
            raise VocabularyError("the vocabulary has no end-of-sequence token; pass eos_token_id=")
        for token_id in self.end_token_ids:
            if not 0 <= token_id < len(self.token_bytes):
                raise VocabularyError(f"end token id {token_id} is outside the vocabulary (size {self.size})")

    @property
    def size(self) -> int:
        return len(self.token_bytes)

    @cached_property
    def fingerprint(self) -> str:
        """A digest of the whole vocabulary: the disk cache of compiled automata is keyed by it."""
        digest = hashlib.sha256()
        for token_id, piece in enumerate(self.token_bytes):
            if piece is not None:
                digest.update(token_id.to_bytes(4, "little") + len(piece).to_bytes(2, "little") + piece)
        digest.update(b"end" + b"".join(i.to_bytes(4, "little") for i in self.end_token_ids))
        return digest.hexdigest()

    def decode(self, token_ids: list[int]) -> str:
        """The text a token sequence spells, up to its first end token."""
        pieces = []
        for token_id in token_ids:
            if token_id in self.end_token_ids:
                break
            piece = self.token_bytes[token_id]
            if piece is None:
                raise VocabularyError(f"token {token_id} is a special token and spells no text")
            pieces.append(piece)
        return b"".join(pieces).decode("utf-8", errors="replace")


@lru_cache(maxsize=1)
def byte_vocabulary() -> TokenVocabulary:
    """One token per byte value, plus an end token (id 256): the vocabulary of text-level membership."""
    return TokenVocabulary(tuple(bytes([b]) for b in range(256)) + (None,), (256,))


def _gpt2_byte_decoder() -> dict[str, int]:
    """Inverse of the printable-character map byte-level BPE uses to write arbitrary bytes as text."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {chr(code): byte for byte, code in zip(printable, codes)}


_BYTE_DECODER = _gpt2_byte_decoder()


def _byte_level_piece(piece: str) -> bytes | None:
    try:
        return bytes(_BYTE_DECODER[char] for char in piece)
    except KeyError:
        return None


def _sentencepiece_piece(piece: str) -> bytes:
    if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
        return bytes([int(piece[3:5], 16)])
    return piece.replace("\u2581", " ").encode("utf-8")


def _decoder_kinds(tokenizer: Any) -> set[str]:
    """The decoder step types of a fast tokenizer ("ByteLevel", "ByteFallback", "WordPiece", ...)."""
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "_tokenizer", None)
    if backend is None:
        return set()
    decoder = json.loads(backend.to_str()).get("decoder") or {}
    steps = decoder.get("decoders", [decoder]) if decoder.get("type") == "Sequence" else [decoder]
    return {step.get("type", "") for step in steps if step}


def _end_ids(candidates: list[int | None]) -> tuple[int, ...]:
    return tuple(dict.fromkeys(i for i in candidates if i is not None))


def from_mapping(vocab: Mapping[str | bytes, int], eos_token_id: int | None = None) -> TokenVocabulary:
    """A plain ``{token: id}`` vocabulary: str keys are literal text (UTF-8), bytes keys raw bytes."""
    if not vocab:
        raise VocabularyError("the vocabulary is empty")
    size = max(vocab.values()) + 1
    token_bytes: list[bytes | None] = [None] * size
    if eos_token_id is None:
        named = [vocab[name] for name in END_TOKEN_NAMES if name in vocab]
        eos_token_id = named[0] if named else None
    if eos_token_id is None:
        raise VocabularyError(
            f"no end-of-sequence token in the vocabulary (looked for {', '.join(END_TOKEN_NAMES)}); pass eos_token_id="
        )
    for token, token_id in vocab.items():
        if token_id != eos_token_id:
            piece = token if isinstance(token, bytes) else token.encode("utf-8")
            token_bytes[token_id] = piece or None
    return TokenVocabulary(tuple(token_bytes), (eos_token_id,))


def from_hf_tokenizer(tokenizer: Any, eos_token_id: int | None = None) -> TokenVocabulary:
    """A Hugging Face tokenizer: byte-level BPE (GPT-2 style) or SentencePiece with byte fallback."""
    kinds = _decoder_kinds(tokenizer)
    pieces = tokenizer.get_vocab()
    if "WordPiece" in kinds or any(piece.startswith("##") for piece in list(pieces)[:2000]):
        raise VocabularyError(
            "WordPiece tokenizers insert spaces between tokens when decoding, so token bytes do not concatenate "
            "into the text; use a byte-level BPE or SentencePiece tokenizer"
        )
    if "ByteLevel" in kinds:
        to_bytes = _byte_level_piece
    elif "ByteFallback" in kinds or "Metaspace" in kinds or "<0x0A>" in pieces:
        to_bytes = _sentencepiece_piece
    else:
        to_bytes = _byte_level_piece if "Ġ" in "".join(list(pieces)[:5000]) else _sentencepiece_piece
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    size = max(len(tokenizer), max(pieces.values()) + 1)
    token_bytes: list[bytes | None] = [None] * size
    for piece, token_id in pieces.items():
        if token_id not in special:
            token_bytes[token_id] = to_bytes(piece) or None
    ends = _end_ids([eos_token_id, getattr(tokenizer, "eos_token_id", None), getattr(tokenizer, "pad_token_id", None)])
    if not ends:
        raise VocabularyError("the tokenizer has neither an EOS nor a pad token; pass eos_token_id=")
    return TokenVocabulary(tuple(token_bytes), ends)


#: How many tokenizer objects :func:`as_vocabulary` remembers the vocabulary of (the oldest goes first).
VOCABULARY_CACHE_SIZE = 8
_read_vocabularies: weakref.WeakKeyDictionary[Any, tuple[tuple, TokenVocabulary]] = weakref.WeakKeyDictionary()
_read_vocabularies_lock = threading.Lock()


def _reading_state(tokenizer: Any, eos_token_id: int | None) -> tuple:
    """What a vocabulary read from ``tokenizer`` depends on besides the object: the end token asked for, and what
    adding tokens or setting the EOS or pad token changes (a few microseconds to read, unlike the vocabulary)."""
    return (eos_token_id, len(tokenizer), getattr(tokenizer, "eos_token_id", None),
            getattr(tokenizer, "pad_token_id", None))


def _read_once(tokenizer: Any, eos_token_id: int | None) -> TokenVocabulary:
    """:func:`from_hf_tokenizer`, remembered per tokenizer object while it lives, so that a caller asking on every
    step (decoding drafts, end tokens) pays for reading the whole vocabulary once.

    Tokenizers that cannot be weakly referenced or hashed are read every time.
    """
    try:
        state = _reading_state(tokenizer, eos_token_id)
        with _read_vocabularies_lock:
            remembered = _read_vocabularies.get(tokenizer)
    except TypeError:
        return from_hf_tokenizer(tokenizer, eos_token_id)
    if remembered is not None and remembered[0] == state:
        return remembered[1]
    vocabulary = from_hf_tokenizer(tokenizer, eos_token_id)  # outside the lock: it takes a while
    with _read_vocabularies_lock:
        held = list(_read_vocabularies)  # strong references: none of them can vanish while it is evicted
        if tokenizer not in _read_vocabularies and len(held) >= VOCABULARY_CACHE_SIZE:
            del _read_vocabularies[held[0]]
        _read_vocabularies[tokenizer] = (state, vocabulary)
    return vocabulary


def as_vocabulary(tokenizer: Any, eos_token_id: int | None = None) -> TokenVocabulary:
    """Read any supported tokenizer form into a :class:`TokenVocabulary`.

    A Hugging Face tokenizer is read once per object (and again when its size or end tokens change): the same
    :class:`TokenVocabulary` comes back on every later call.

    Parameters:
        tokenizer: a Hugging Face tokenizer, a ``{token: id}`` mapping, or a :class:`TokenVocabulary`.
        eos_token_id: the end-of-sequence token, when the tokenizer does not name one.

    Returns:
        The vocabulary as bytes per token id, with its end tokens.

    Raises:
        VocabularyError: the tokenizer is of no supported form, or has no end-of-sequence token.
    """
    if isinstance(tokenizer, TokenVocabulary):
        return tokenizer
    if isinstance(tokenizer, Mapping):
        return from_mapping(tokenizer, eos_token_id)
    if hasattr(tokenizer, "get_vocab"):
        return _read_once(tokenizer, eos_token_id)
    raise VocabularyError(
        f"cannot read a vocabulary from {type(tokenizer).__name__}: pass a Hugging Face tokenizer, "
        "a {token: id} mapping or a TokenVocabulary"
    )
