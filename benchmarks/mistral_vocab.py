"""Real tokenizers with no hub: the vocabularies that the mistral-common package ships in its wheel.

The mask benchmark needs a real vocabulary (tens of thousands of multi-byte tokens that straddle JSON syntax)
without downloading anything. mistral-common bundles two: a 32K SentencePiece model with byte fallback and the
131K Tekken (tiktoken-style byte-level BPE) table. This module reads either one into the three forms the
benchmark needs from the same ids: our :class:`TokenVocabulary`, the raw bytes per id that the peers
(llguidance, XGrammar, outlines-core) take, and an *exact* tokenizer that spells a text with no extra bytes.

Exactness matters because every engine is then fed the same token sequence: SentencePiece prepends a
dummy-prefix space (``"▁{"`` for ``"{"``), so its first piece is rewritten without that space, and a text that
still does not spell back byte for byte (NFKC normalization) is refused rather than silently changed.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from constrained.vocabulary import TokenVocabulary

#: The tokenizer names the benchmark accepts, with the files mistral-common ships for them.
FILES = {
    "sp32k": "mistral_instruct_tokenizer_240323.model.v3",
    "tekken131k": "tekken_240911.json",
}
_SPACE_PIECE = "\u2581"


def data_dir() -> Path:
    """mistral-common's bundled tokenizer folder (raises ImportError when the package is absent)."""
    import mistral_common

    return Path(mistral_common.__file__).resolve().parent / "data"


@dataclass(frozen=True, eq=False)
class MistralVocab:
    """One bundled tokenizer: bytes per id (``None`` for special ids), its end token, and an exact encoder."""

    name: str
    token_bytes: tuple[bytes | None, ...]
    special_names: dict[int, str]
    eos_id: int
    _encode: Callable[[str], list[int]]

    @property
    def size(self) -> int:
        return len(self.token_bytes)

    @cached_property
    def vocabulary(self) -> TokenVocabulary:
        """Ours: the end token closes the text and pads the canvas."""
        return TokenVocabulary(self.token_bytes, (self.eos_id,))

    @cached_property
    def peer_pieces(self) -> list[bytes]:
        """Bytes per id for peers; special ids carry ``0xFF`` + name, a byte no UTF-8 text contains."""
        return [
            piece if piece is not None else b"\xff" + self.special_names.get(i, f"<special_{i}>").encode()
            for i, piece in enumerate(self.token_bytes)
        ]

    @cached_property
    def special_ids(self) -> list[int]:
        return [i for i, piece in enumerate(self.token_bytes) if piece is None]

    def spell(self, token_ids: Sequence[int]) -> bytes:
        return b"".join(self.token_bytes[t] or b"\xff" for t in token_ids)

    def tokenize(self, text: str) -> list[int] | None:
        """The tokenizer's own token ids for ``text``, or ``None`` when they cannot spell it byte for byte."""
        ids = self._encode(text)
        return ids if self.spell(ids) == text.encode("utf-8") else None


def _sentencepiece(path: Path) -> MistralVocab:
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_file=str(path))
    size = processor.get_piece_size()
    token_bytes: list[bytes | None] = []
    names: dict[int, str] = {}
    for i in range(size):
        piece = processor.id_to_piece(i)
        if processor.is_control(i) or processor.is_unknown(i) or processor.is_unused(i):
            token_bytes.append(None)
            names[i] = piece
        elif processor.is_byte(i):
            token_bytes.append(bytes([int(piece[3:5], 16)]))
        else:
            token_bytes.append(piece.replace(_SPACE_PIECE, " ").encode("utf-8"))
    byte_ids = {token_bytes[i][0]: i for i in range(size) if processor.is_byte(i)}

    def encode(text: str) -> list[int]:
        ids = processor.encode(text)
        if not ids or not text or text[0] == " ":
            return ids
        # The dummy prefix: the first piece begins with a space the text does not have. Rewrite it as the
        # same piece without the space, or (when the vocabulary has no such piece) as its bytes.
        first = processor.id_to_piece(ids[0])
        if not first.startswith(_SPACE_PIECE):
            return ids
        rest = first[1:]
        if not rest:
            return ids[1:]
        replacement = processor.piece_to_id(rest)
        if replacement != processor.unk_id() and processor.id_to_piece(replacement) == rest:
            return [replacement] + ids[1:]
        return [byte_ids[b] for b in rest.encode("utf-8")] + ids[1:]

    return MistralVocab("sp32k", tuple(token_bytes), names, processor.eos_id(), encode)


def _tekken(path: Path) -> MistralVocab:
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer

    tekkenizer = Tekkenizer.from_file(str(path))
    n_special = tekkenizer.num_special_tokens
    ranks = json.loads(path.read_text())["vocab"][: tekkenizer.n_words - n_special]
    token_bytes: list[bytes | None] = [None] * n_special
    token_bytes += [base64.b64decode(entry["token_bytes"]) for entry in ranks]
    names = {i: tekkenizer.id_to_piece(i) for i in range(n_special)}

    def encode(text: str) -> list[int]:
        return tekkenizer.encode(text, bos=False, eos=False)

    return MistralVocab("tekken131k", tuple(token_bytes), names, tekkenizer.eos_id, encode)


def load(name: str) -> MistralVocab:
    """``"sp32k"`` or ``"tekken131k"``."""
    if name not in FILES:
        raise ValueError(f"unknown tokenizer {name!r}; choose one of {', '.join(FILES)}")
    path = data_dir() / FILES[name]
    return _sentencepiece(path) if name == "sp32k" else _tekken(path)
