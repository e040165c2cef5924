"""A tokenizer's vocabulary as raw bytes per token id.

Constraints speak bytes (a regex's DFA runs over UTF-8), tokenizers speak pieces ("Ġworld", "▁world",
"<0x0A>", "##ing"). This module is the one place that turns a tokenizer into ``token id -> bytes`` so that
everything downstream (the token DFA, the canvas lattice) can ignore how a tokenizer writes its pieces.

What a piece spells is read from what the tokenizer is, never guessed from piece names: a Hugging Face
tokenizer's decoder pipeline (byte-level, byte fallback, ``▁`` replacement, strip, Metaspace, WordPiece) is
replayed piece by piece, a SentencePiece model is asked about its piece types, and Tekken / tiktoken tables
give bytes directly. Some decoders treat the piece that opens a text differently (SentencePiece's dummy
prefix drops the leading space of ``▁{``; WordPiece joins later pieces with a space): those pieces carry a
second spelling, :attr:`TokenVocabulary.start_bytes`, which the token automaton uses at the text start only.
"""

from __future__ import annotations

import hashlib
import json
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

from .errors import VocabularyError

#: Names under which plain vocabularies usually carry their end-of-sequence token.
END_TOKEN_NAMES = ("</s>", "<eos>", "<|endoftext|>", "<|end_of_text|>", "<|eot_id|>", "<end_of_turn>",
                   "<\uff5cend\u2581of\u2581sentence\uff5c>")


@dataclass(frozen=True)
class PackedSpellings:
    """A vocabulary's spellings as one buffer, for native code to walk without a Python object per token.

    Spelling ``i`` is ``data[offsets[i]:offsets[i + 1]]`` where ``present[i]``. The first ``size`` spellings
    are the tokens' own (absent for end tokens and tokens that spell no text); one follows for each token of
    ``opening_ids`` (the tokens spelled otherwise when they open a text, end tokens left out): what it spells
    there, absent where it cannot open a text.

    The distinct spellings are also laid out as a trie (``_token_walk.spelling_trie``): its nodes in preorder,
    each with the byte that leads to it, the first node past its subtree and the distinct spelling that ends
    there (-1: none), and each spelling's distinct spelling (-1 where absent). Made once per vocabulary, so that
    a pattern's walk merges it into the trie of its byte classes instead of sorting the spellings anew.
    """

    data: bytes
    offsets: Any  # int64 [spellings + 1]
    present: Any  # uint8 [spellings]
    opening_ids: Any  # int32 [opening spellings]
    trie_symbol: Any  # uint8 [nodes]
    trie_skip: Any  # int32 [nodes]
    trie_group: Any  # int32 [nodes]
    spelling_group: Any  # int32 [spellings]


@dataclass(frozen=True)
class TokenVocabulary:
    """Bytes spelled by each token id; ``None`` for ids that never appear inside a text (specials, holes).

    ``end_token_ids`` are the tokens that close a text and pad a canvas after it (EOS, pad).
    ``start_bytes`` holds, for the tokens whose decoder spells them differently when they open the text, what
    they spell there (``b""``: nothing, as SentencePiece's ``▁`` alone; ``None``: they cannot open a text).
    """

    token_bytes: tuple[bytes | None, ...]
    end_token_ids: tuple[int, ...]
    start_bytes: Mapping[int, bytes | None] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not self.end_token_ids:
            raise VocabularyError("the vocabulary has no end-of-sequence token; pass eos_token_id=")
        for token_id in (*self.end_token_ids, *self.start_bytes):
            if not 0 <= token_id < len(self.token_bytes):
                raise VocabularyError(f"token id {token_id} is outside the vocabulary (size {self.size})")

    @property
    def size(self) -> int:
        return len(self.token_bytes)

    @cached_property
    def fingerprint(self) -> str:
        """A digest of everything a token automaton depends on (each token's spelling in the middle of a text
        and, where it differs, at its start; the end tokens; the size): the disk cache of compiled automata is
        keyed by it. Read off :attr:`packed_spellings`, whole buffers at a time."""
        packed = self.packed_spellings
        digest = hashlib.sha256(b"spellings")
        for part in (packed.data, packed.offsets.tobytes(), packed.present.tobytes(), packed.opening_ids.tobytes()):
            digest.update(len(part).to_bytes(8, "little") + part)
        digest.update(b"end" + b"".join(i.to_bytes(4, "little") for i in self.end_token_ids))
        return digest.hexdigest()

    @cached_property
    def packed_spellings(self) -> PackedSpellings:
        """Every spelling a token automaton walks, packed for native code: built once per vocabulary and shared
        by every constraint bound to it (see :class:`PackedSpellings`)."""
        import numpy as np

        from ._token_walk import spelling_trie

        end_ids = set(self.end_token_ids)
        opening_ids = sorted(token_id for token_id in self.start_bytes if token_id not in end_ids)
        spellings = [None if token_id in end_ids else piece for token_id, piece in enumerate(self.token_bytes)]
        spellings += [self.start_bytes[token_id] for token_id in opening_ids]
        lengths = np.fromiter((-1 if piece is None else len(piece) for piece in spellings), dtype=np.int64,
                              count=len(spellings))
        offsets = np.zeros(len(spellings) + 1, dtype=np.int64)
        np.cumsum(np.maximum(lengths, 0), out=offsets[1:])
        data, present = b"".join(piece for piece in spellings if piece is not None), (lengths >= 0).astype(np.uint8)
        group, symbol, _parent, skip, node_group, _group_node = spelling_trie(data, offsets, present)
        return PackedSpellings(data, offsets, present, np.array(opening_ids, dtype=np.int32),
                               np.frombuffer(symbol, dtype=np.uint8), np.frombuffer(skip, dtype=np.int32),
                               np.frombuffer(node_group, dtype=np.int32), np.frombuffer(group, dtype=np.int32))

    def spell(self, token_ids: Sequence[int]) -> bytes:
        """The bytes a token sequence spells, up to its first end token, as the tokenizer decodes it.

        Raises:
            VocabularyError: a token spells no text (a special token) or is outside the vocabulary.
        """
        pieces = []
        for position, token_id in enumerate(token_ids):
            if token_id in self.end_token_ids:
                break
            if not 0 <= token_id < self.size:
                raise VocabularyError(f"token {token_id} is outside the vocabulary (size {self.size})")
            opening = position == 0 and token_id in self.start_bytes
            piece = self.start_bytes[token_id] if opening else self.token_bytes[token_id]
            if piece is None:
                where = "cannot open a text" if opening else "is a special token and spells no text"
                raise VocabularyError(f"token {token_id} {where}")
            pieces.append(piece)
        return b"".join(pieces)

    def decode(self, token_ids: Sequence[int]) -> str:
        """The text a token sequence spells, up to its first end token (see :meth:`spell`)."""
        return self.spell(token_ids).decode("utf-8", errors="replace")


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


#: Byte-level characters to the bytes they name (as Latin-1 characters), and any other character below U+0100
#: to U+FFFF, so that encoding a translated piece as Latin-1 fails exactly when the piece leaves the alphabet.
_BYTE_LEVEL_TABLE = {code: 0xFFFF for code in range(256)} | {
    ord(char): byte for char, byte in _gpt2_byte_decoder().items()}

#: A piece on its way through a decoder: text while text steps apply, bytes once a byte step has read it.
_Unit = str | bytes
_Step = Callable[[list[_Unit]], list[_Unit]]


def _byte_level(unit: _Unit) -> _Unit:
    """The ByteLevel decoder: each character names a byte; a piece with a character outside that alphabet
    (an added token such as ``<|fim|>``) is kept as its UTF-8 text, as the tokenizers library does."""
    if isinstance(unit, bytes):
        return unit
    try:
        return unit.translate(_BYTE_LEVEL_TABLE).encode("latin-1")
    except UnicodeEncodeError:
        return unit


def _byte_fallback(unit: _Unit) -> _Unit:
    """The ByteFallback decoder: ``<0xNN>`` is the byte NN."""
    if isinstance(unit, str) and len(unit) == 6 and unit.startswith("<0x") and unit.endswith(">"):
        try:
            return bytes([int(unit[3:5], 16)])
        except ValueError:
            return unit
    return unit


def _replacing(old: str, new: str) -> _Step:
    """A step that replaces ``old`` by ``new`` in every piece still text."""
    return lambda units: [unit.replace(old, new) if unit.__class__ is str else unit for unit in units]


def _each(action: Callable[[_Unit], _Unit]) -> _Step:
    return lambda units: [action(unit) for unit in units]


def _strip(unit: _Unit, content: str, start: int, stop: int) -> _Unit:
    """Up to ``start`` leading and ``stop`` trailing ``content`` characters removed."""
    mark: str | bytes = content if isinstance(unit, str) else content.encode("utf-8")
    for _ in range(start):
        if unit[:len(mark)] == mark:
            unit = unit[len(mark):]
    for _ in range(stop):
        if len(unit) >= len(mark) and unit[len(unit) - len(mark):] == mark:
            unit = unit[:len(unit) - len(mark)]
    return unit


#: The step that stands for a missing decoder: pieces joined with a space.
_SPACE_JOIN = "SpaceJoin"

_WORDPIECE_CLEANUP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                      (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


def _wordpiece(unit: _Unit, prefix: str | None, cleanup: bool, opening: bool) -> _Unit:
    """The WordPiece decoder: a continuation piece loses its prefix, any other piece but the first gains a
    space; ``cleanup`` then glues punctuation and contractions to the word before (per piece). Without a
    prefix (``None``) every piece but the first gains a space."""
    if isinstance(unit, bytes):
        return unit
    if not opening:
        unit = unit[len(prefix):] if prefix is not None and unit.startswith(prefix) else " " + unit
    if cleanup:
        for dirty, clean in _WORDPIECE_CLEANUP:
            unit = unit.replace(dirty, clean)
    return unit


def _decoder_steps(decoder: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    """The steps of a decoder pipeline in order, nested Sequences flattened; without a decoder the tokenizers
    library joins pieces with spaces (step ``SpaceJoin`` here)."""
    if not decoder:
        return [{"type": _SPACE_JOIN}]
    if decoder.get("type") == "Sequence":
        return [step for inner in decoder.get("decoders", []) for step in _decoder_steps(inner)]
    return [decoder]


def _piece_decoder(steps: list[Mapping[str, Any]], opening: bool) -> Callable[[list[_Unit]], list[bytes]]:
    """What the decoder makes of each piece, in the middle of a text or (``opening``) as the first piece.

    Steps act piece by piece, except after a ``Fuse``: the pieces are then one text, so only a ``Strip`` of
    its start can follow (it acts on the opening piece alone); anything that could act across pieces is
    refused rather than approximated.

    Raises:
        VocabularyError: a decoder step whose effect is not a spelling per piece (``BPEDecoder``'s end-of-word
            rule, ``CTC``'s merging of repeats, a regex ``Replace``, a ``Strip`` of the text's end).
    """
    actions: list[_Step] = []
    fused = False
    for step in steps:
        kind = step.get("type")
        if kind == "Fuse":
            fused = True
        elif fused and kind != "Strip":
            raise VocabularyError(f"the tokenizer's decoder applies {kind} after Fuse, across token boundaries, "
                                  "so token bytes do not concatenate into the decoded text")
        elif kind == "ByteLevel":
            actions.append(_each(_byte_level))
        elif kind == "ByteFallback":
            actions.append(_each(_byte_fallback))
        elif kind == "Replace" and "String" in (step.get("pattern") or {}):
            actions.append(_replacing(step["pattern"]["String"], step.get("content", "")))
        elif kind == "Metaspace":
            actions.append(_replacing(step.get("replacement", "\u2581"),
                                      "" if opening and _metaspace_prefixes(step) else " "))
        elif kind == "WordPiece":
            prefix, cleanup = step.get("prefix", "##"), bool(step.get("cleanup", True))
            actions.append(_each(lambda unit, p=prefix, c=cleanup: _wordpiece(unit, p, c, opening)))
        elif kind == _SPACE_JOIN:
            actions.append(_each(lambda unit: _wordpiece(unit, None, False, opening)))
        elif kind == "Strip" and (not fused or (int(step.get("stop", 0)) == 0 and int(step.get("start", 0)) <= 1)):
            content, start, stop = step.get("content", " "), int(step.get("start", 0)), int(step.get("stop", 0))
            if fused:  # the whole text's start: the opening piece's
                start = start if opening else 0
            actions.append(_each(lambda unit, c=content, a=start, b=stop: _strip(unit, c, a, b)))
        else:
            raise VocabularyError(f"the tokenizer's decoder step {kind} ({json.dumps(step)[:120]}) does not spell "
                                  "each token as fixed bytes, so a constraint cannot judge token sequences exactly")

    def decode(units: list[_Unit]) -> list[bytes]:
        for action in actions:
            units = action(units)
        return [unit.encode("utf-8") if isinstance(unit, str) else unit for unit in units]

    return decode


def _metaspace_prefixes(step: Mapping[str, Any]) -> bool:
    """Whether a Metaspace decoder treats the text's first piece as carrying a dummy prefix (in the tokenizers
    library it then drops every ``▁`` of that piece)."""
    default = "always" if step.get("add_prefix_space", True) else "never"
    return step.get("prepend_scheme", default) != "never"


def _opening_differs(steps: list[Mapping[str, Any]]) -> bool:
    """Whether some step treats the text's first piece differently."""
    fused = False
    for step in steps:
        kind = step.get("type")
        fused = fused or kind == "Fuse"
        if kind in ("WordPiece", _SPACE_JOIN) or (kind == "Metaspace" and _metaspace_prefixes(step)):
            return True
        if kind == "Strip" and fused and int(step.get("start", 0)) > 0:
            return True
    return False


def _backend(tokenizer: Any) -> Any:
    """The ``tokenizers.Tokenizer`` behind a Hugging Face tokenizer (or the tokenizer itself when raw)."""
    for candidate in (getattr(tokenizer, "backend_tokenizer", None), getattr(tokenizer, "_tokenizer", None),
                      tokenizer):
        if candidate is not None and hasattr(candidate, "get_added_tokens_decoder") and hasattr(candidate, "model"):
            return candidate
    return None


def _decoder_json(backend: Any) -> dict[str, Any] | None:
    decoder = getattr(backend, "decoder", None)
    return None if decoder is None else json.loads(decoder.__getstate__())


def _end_ids(candidates: Iterable[int | None]) -> tuple[int, ...]:
    return tuple(dict.fromkeys(i for i in candidates if i is not None))


def _named_end_ids(ids_by_name: Mapping[str, int]) -> list[int]:
    return [ids_by_name[name] for name in END_TOKEN_NAMES if name in ids_by_name][:1]


def _spellings(pieces: list[str | None], steps: list[Mapping[str, Any]], hidden: set[int]
               ) -> tuple[list[bytes | None], dict[int, bytes | None]]:
    """Bytes per piece in the middle of a text, and for the pieces that spell otherwise when they open it."""
    ids = [i for i, piece in enumerate(pieces) if piece is not None and i not in hidden]
    units: list[_Unit] = [pieces[i] for i in ids]  # type: ignore[misc]
    token_bytes: list[bytes | None] = [None] * len(pieces)
    for token_id, spelled in zip(ids, _piece_decoder(steps, opening=False)(units)):
        token_bytes[token_id] = spelled or None  # a token that spells nothing never sits inside a text
    start_bytes: dict[int, bytes | None] = {}
    if _opening_differs(steps):
        for token_id, spelled in zip(ids, _piece_decoder(steps, opening=True)(units)):
            if spelled != token_bytes[token_id]:
                start_bytes[token_id] = spelled
    return token_bytes, start_bytes


def from_mapping(vocab: Mapping[str | bytes, int], eos_token_id: int | None = None) -> TokenVocabulary:
    """A plain ``{token: id}`` vocabulary: str keys are literal text (UTF-8), bytes keys raw bytes.

    Raises:
        VocabularyError: the mapping is empty, maps something other than a str or bytes token to a
            non-negative int id, or names no end token and ``eos_token_id`` is not given.
    """
    if not vocab:
        raise VocabularyError("the vocabulary is empty")
    for token, token_id in vocab.items():
        if not isinstance(token, str | bytes) or not isinstance(token_id, int) or token_id < 0:
            raise VocabularyError(f"a vocabulary maps str or bytes tokens to non-negative int ids, not "
                                  f"{token!r}: {token_id!r}")
    size = max(vocab.values()) + 1
    token_bytes: list[bytes | None] = [None] * size
    if eos_token_id is None:
        named = _named_end_ids(vocab)  # type: ignore[arg-type]
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
    """A Hugging Face tokenizer (``transformers`` fast tokenizer or a raw ``tokenizers.Tokenizer``), read through
    its own decoder pipeline: byte-level BPE, SentencePiece-style BPE/Unigram with byte fallback and a dummy
    prefix (``Strip`` or ``Metaspace``), WordPiece, or a plain vocabulary joined by spaces.

    Special tokens and the model's unknown token spell no text; added tokens spell what the decoder makes of
    them, as in ``tokenizer.decode``.

    Parameters:
        tokenizer: the tokenizer.
        eos_token_id: the end token, when the tokenizer does not declare one (or to override it).

    Returns:
        The vocabulary, with ``start_bytes`` for the pieces the decoder spells otherwise at the text start.

    Raises:
        VocabularyError: not a tokenizer backed by the ``tokenizers`` library, a decoder that does not spell each
            token as fixed bytes, or no end token.
    """
    backend = _backend(tokenizer)
    if backend is None:
        raise VocabularyError(f"{type(tokenizer).__name__} is not backed by a tokenizers.Tokenizer; pass a fast "
                              "Hugging Face tokenizer, a tokenizers.Tokenizer, a {token: id} mapping or a "
                              "TokenVocabulary")
    pieces: list[str | None] = [backend.id_to_token(i) for i in range(backend.get_vocab_size(with_added_tokens=True))]
    added = backend.get_added_tokens_decoder()
    hidden = {token_id for token_id, token in added.items() if token.special}
    hidden.update(getattr(tokenizer, "all_special_ids", None) or [])
    unknown = getattr(backend.model, "unk_token", None)
    if unknown is not None and backend.token_to_id(unknown) is not None:
        hidden.add(backend.token_to_id(unknown))
    token_bytes, start_bytes = _spellings(pieces, _decoder_steps(_decoder_json(backend)), hidden)
    specials_by_name = {token.content: token_id for token_id, token in added.items() if token.special}
    declared = [getattr(tokenizer, "eos_token_id", None), getattr(tokenizer, "pad_token_id", None)]
    named = [] if any(i is not None for i in declared) else _named_end_ids(specials_by_name)
    ends = _end_ids([eos_token_id, *declared, *named])
    if not ends:
        raise VocabularyError("the tokenizer declares no EOS or pad token and has none of the usual end tokens "
                              f"({', '.join(END_TOKEN_NAMES)}); pass eos_token_id=")
    for token_id in ends:
        if token_id < len(token_bytes):
            token_bytes[token_id] = None
            start_bytes.pop(token_id, None)
    return TokenVocabulary(tuple(token_bytes), ends, start_bytes)


def _sentencepiece_processor(tokenizer: Any) -> Any:
    """The ``sentencepiece.SentencePieceProcessor`` of a tokenizer, if it is or wraps one."""
    for candidate in (tokenizer, getattr(tokenizer, "sp_model", None), getattr(tokenizer, "_model", None)):
        if candidate is not None and all(hasattr(candidate, name) for name in ("is_byte", "get_piece_size",
                                                                               "id_to_piece")):
            return candidate
    return None


def from_sentencepiece(tokenizer: Any, eos_token_id: int | None = None) -> TokenVocabulary:
    """A SentencePiece model (a ``SentencePieceProcessor``, or a tokenizer holding one: mistral-common's, or
    ``transformers``' SentencePiece backend), spelled as SentencePiece decodes: byte pieces are their byte,
    ``▁`` is a space, and when the model adds a dummy prefix the first piece loses one leading ``▁``. Whether it
    does is asked of the model as loaded, so ``transformers``' ``legacy=False`` (which turns the model's dummy
    prefix off) is followed.

    Raises:
        VocabularyError: no SentencePiece model inside, or no end token.
    """
    processor = _sentencepiece_processor(tokenizer)
    if processor is None:
        raise VocabularyError(f"{type(tokenizer).__name__} holds no SentencePiece model")
    size = processor.get_piece_size()
    token_bytes: list[bytes | None] = [None] * size
    start_bytes: dict[int, bytes | None] = {}
    for token_id in range(size):
        if processor.is_control(token_id) or processor.is_unknown(token_id) or processor.is_unused(token_id):
            continue
        piece = processor.id_to_piece(token_id)
        if processor.is_byte(token_id):
            token_bytes[token_id] = bytes([int(piece[3:5], 16)])
        else:
            token_bytes[token_id] = piece.replace("\u2581", " ").encode("utf-8") or None
            if piece.startswith("\u2581"):
                start_bytes[token_id] = piece[1:].replace("\u2581", " ").encode("utf-8")
    probe = next((token_id for token_id, opening in start_bytes.items() if opening and opening[:1] != b" "), None)
    if probe is None or not _drops_dummy_prefix(processor, probe):
        start_bytes = {}
    declared = processor.eos_id() if eos_token_id is None else eos_token_id
    end = getattr(tokenizer, "eos_token_id", None) if declared is None or declared < 0 else declared
    if end is None or end < 0:
        raise VocabularyError("the SentencePiece model has no end-of-sequence token; pass eos_token_id=")
    token_bytes[end] = None
    start_bytes.pop(end, None)
    return TokenVocabulary(tuple(token_bytes), (end,), start_bytes)


def _drops_dummy_prefix(processor: Any, token_id: int) -> bool:
    """Whether SentencePiece decodes a piece of ``▁`` and a letter that opens the text without its space (the
    model adds a dummy prefix, or removes extra whitespace): asked of the model itself."""
    return not processor.decode([token_id]).startswith(" ")


def from_tiktoken(tokenizer: Any, eos_token_id: int | None = None) -> TokenVocabulary:
    """A Tekken tokenizer (mistral-common's ``Tekkenizer``, special tokens first) or a ``tiktoken.Encoding``:
    each id's bytes are stored as they are.

    Raises:
        VocabularyError: no end token.
    """
    if hasattr(tokenizer, "num_special_tokens") and hasattr(tokenizer, "id_to_byte_piece"):
        size, specials = tokenizer.n_words, tokenizer.num_special_tokens
        token_bytes = [None] * specials + [tokenizer.id_to_byte_piece(i) or None for i in range(specials, size)]
        end = tokenizer.eos_id if eos_token_id is None else eos_token_id
    else:
        special_ids = {tokenizer.encode_single_token(name): name for name in tokenizer.special_tokens_set}
        token_bytes = []
        for token_id in range(tokenizer.n_vocab):
            try:
                token_bytes.append(None if token_id in special_ids else tokenizer.decode_single_token_bytes(token_id))
            except KeyError:
                token_bytes.append(None)  # a hole in the ranks
        end = eos_token_id
        if end is None and "<|endoftext|>" in tokenizer.special_tokens_set:
            end = tokenizer.eot_token
    if end is None:
        raise VocabularyError("the tokenizer has no end-of-sequence token; pass eos_token_id=")
    token_bytes[end] = None
    return TokenVocabulary(tuple(token_bytes), (end,))


#: How many tokenizer objects :func:`as_vocabulary` remembers the vocabulary of (the oldest goes first).
VOCABULARY_CACHE_SIZE = 8
_read_vocabularies: weakref.WeakKeyDictionary[Any, tuple[tuple, TokenVocabulary]] = weakref.WeakKeyDictionary()
_read_vocabularies_lock = threading.Lock()


def _reading_state(tokenizer: Any, eos_token_id: int | None) -> tuple:
    """What a vocabulary read from ``tokenizer`` depends on besides the object: the end token asked for, and what
    adding tokens or setting the EOS or pad token changes (a few microseconds to read, unlike the vocabulary)."""
    return (eos_token_id, len(tokenizer), getattr(tokenizer, "eos_token_id", None),
            getattr(tokenizer, "pad_token_id", None))


def _read_once(tokenizer: Any, eos_token_id: int | None,
               reader: Callable[[Any, int | None], TokenVocabulary]) -> TokenVocabulary:
    """``reader(tokenizer, eos_token_id)``, remembered per tokenizer object while it lives, so that a caller asking
    on every step (decoding drafts, end tokens) pays for reading the whole vocabulary once.

    Tokenizers that cannot be weakly referenced, hashed or measured (``len``) are read every time.
    """
    try:
        state = _reading_state(tokenizer, eos_token_id)
        with _read_vocabularies_lock:
            remembered = _read_vocabularies.get(tokenizer)
    except TypeError:
        return reader(tokenizer, eos_token_id)
    if remembered is not None and remembered[0] == state:
        return remembered[1]
    vocabulary = reader(tokenizer, eos_token_id)  # outside the lock: it takes a while
    with _read_vocabularies_lock:
        held = list(_read_vocabularies)  # strong references: none of them can vanish while it is evicted
        if tokenizer not in _read_vocabularies and len(held) >= VOCABULARY_CACHE_SIZE:
            del _read_vocabularies[held[0]]
        _read_vocabularies[tokenizer] = (state, vocabulary)
    return vocabulary


def as_vocabulary(tokenizer: Any, eos_token_id: int | None = None) -> TokenVocabulary:
    """Read any supported tokenizer form into a :class:`TokenVocabulary`.

    A tokenizer object is read once (and again when its size or end tokens change): the same
    :class:`TokenVocabulary` comes back on every later call.

    Parameters:
        tokenizer: a :class:`TokenVocabulary`; a ``{token: id}`` mapping; a Hugging Face tokenizer (fast, or a
            raw ``tokenizers.Tokenizer``); a SentencePiece model or a tokenizer wrapping one; mistral-common's
            ``MistralTokenizer``, ``Tekkenizer`` or ``SentencePieceTokenizer``; a ``tiktoken.Encoding``.
        eos_token_id: the end token, when the tokenizer does not declare one.

    Returns:
        The vocabulary.

    Raises:
        VocabularyError: an unsupported object, or one of the readers' errors.
    """
    if isinstance(tokenizer, TokenVocabulary):
        return tokenizer
    if isinstance(tokenizer, Mapping):
        return from_mapping(tokenizer, eos_token_id)
    instruct = getattr(tokenizer, "instruct_tokenizer", None)  # mistral-common's MistralTokenizer
    if instruct is not None and hasattr(instruct, "tokenizer"):
        return as_vocabulary(instruct.tokenizer, eos_token_id)
    if _backend(tokenizer) is not None:
        return _read_once(tokenizer, eos_token_id, from_hf_tokenizer)
    if _sentencepiece_processor(tokenizer) is not None:
        return _read_once(tokenizer, eos_token_id, from_sentencepiece)
    if hasattr(tokenizer, "id_to_byte_piece") or hasattr(tokenizer, "decode_single_token_bytes"):
        return _read_once(tokenizer, eos_token_id, from_tiktoken)
    raise VocabularyError(
        f"cannot read a vocabulary from {type(tokenizer).__name__}: pass a Hugging Face tokenizer, a "
        "tokenizers.Tokenizer, a SentencePiece or mistral-common tokenizer, a tiktoken Encoding, "
        "a {token: id} mapping or a TokenVocabulary"
    )
