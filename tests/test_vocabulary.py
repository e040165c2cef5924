"""What a tokenizer's tokens spell, read from what the tokenizer is (its model and decoder), and judged exactly.

Specification: for every kind of tokenizer (byte-level BPE with and without ``##`` pieces, SentencePiece-style
BPE with byte fallback and a dummy prefix removed by ``Strip`` or by ``Metaspace``, no dummy prefix as Gemma,
WordPiece, a plain vocabulary without decoder), the bytes our vocabulary spells for a token sequence are the
bytes ``tokenizer.decode`` gives; a bound constraint accepts a token sequence exactly when the constraint
accepts its decoded text; and the first canvas position offers exactly the tokens some accepted sequence opens
with (a model that opens with ``▁{`` is not forced onto ``{``). Small vocabularies make the checks exhaustive.
"""

from __future__ import annotations

import functools
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

import constrained
from constrained.errors import ConstrainedError, VocabularyError
from constrained.vocabulary import TokenVocabulary, as_vocabulary

SPACE = "\u2581"
BYTE_PIECES = {f"<0x{byte:02X}>": 3 + byte for byte in range(256)}


def _fast(backend: Tokenizer, **specials: str) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(tokenizer_object=backend, **specials)


def _sentencepiece_style(decoder: decoders.Decoder) -> PreTrainedTokenizerFast:
    """Llama-2 style: BPE with byte fallback over ``▁`` pieces, a dummy prefix at encode time."""
    words = ["▁", "a", "▁a", "{", "▁{", "}", "b", "▁▁", "▁b", "a▁", "ab"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **BYTE_PIECES, **{w: 259 + i for i, w in enumerate(words)}}
    merges = [("▁", "a"), ("▁", "{"), ("▁", "▁"), ("▁", "b"), ("a", "▁"), ("a", "b")]
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="first", split=False)
    backend.decoder = decoder
    backend.add_special_tokens([AddedToken(name, special=True) for name in ("<unk>", "<s>", "</s>")])
    return _fast(backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>")


def llama_strip() -> PreTrainedTokenizerFast:
    """The dummy prefix removed by a ``Strip`` of the fused text (Llama 2's tokenizer.json)."""
    return _sentencepiece_style(decoders.Sequence([decoders.Replace(SPACE, " "), decoders.ByteFallback(),
                                                   decoders.Fuse(), decoders.Strip(" ", 1, 0)]))


def metaspace(scheme: str = "first") -> PreTrainedTokenizerFast:
    """The dummy prefix removed by the Metaspace decoder (T5 and older Llama conversions)."""
    return _sentencepiece_style(decoders.Sequence([decoders.ByteFallback(),
                                                   decoders.Metaspace(replacement=SPACE, prepend_scheme=scheme)]))


def gemma_style() -> PreTrainedTokenizerFast:
    """No dummy prefix: ``▁`` is a space wherever it stands (Gemma's decoder)."""
    return _sentencepiece_style(decoders.Sequence([decoders.Replace(SPACE, " "), decoders.ByteFallback(),
                                                   decoders.Fuse()]))


def byte_level(with_hashes: bool = True) -> PreTrainedTokenizerFast:
    """Byte-level BPE; markdown's ``##`` / ``###`` pieces first, where a guess from piece names would look."""
    words = (["##", "###", "Ġ##"] if with_hashes else []) + ["a", "b", "Ġ", "Ġa", "{", "}", "Ċ", "Ã©", "Ġ{"]
    vocab = {w: i for i, w in enumerate(words)}
    vocab["<eos>"] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[("Ġ", "a"), ("Ġ", "{")]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken("<eos>", special=True), AddedToken("<sep>", special=True)])
    backend.add_tokens([AddedToken("<|tool|>", special=False)])
    return _fast(backend, eos_token="<eos>")


def wordpiece() -> PreTrainedTokenizerFast:
    """BERT style: pieces joined by spaces, ``##`` continuations glued, punctuation cleaned up."""
    words = ["[UNK]", "[SEP]", "a", "##a", "b", "##b", ",", "{", "}", "do", "not", "##}"]
    backend = Tokenizer(models.WordPiece(vocab={w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    backend.add_special_tokens([AddedToken(name, special=True) for name in ("[UNK]", "[SEP]")])
    return _fast(backend, unk_token="[UNK]", eos_token="[SEP]")


def word_level() -> Tokenizer:
    """No decoder at all (the tokenizers library then joins pieces with spaces), as a raw Tokenizer."""
    words = ["a", "b", "{", "}", "</s>"]
    backend = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="a"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.add_special_tokens([AddedToken("</s>", special=True)])
    return backend


#: The constraint of the exhaustive checks; a plain vocabulary joins every piece with a space, so its texts do.
PATTERN = r"\{(a|b|,)*\}|a ?b?"
SPACED_PATTERN = r"\{( a| b| ,)* \}|a( b)?"

KINDS = {
    "llama_strip": llama_strip, "metaspace_first": metaspace, "metaspace_always": lambda: metaspace("always"),
    "metaspace_never": lambda: metaspace("never"), "gemma_style": gemma_style, "byte_level_hashes": byte_level,
    "byte_level_plain": lambda: byte_level(False), "wordpiece": wordpiece, "word_level_raw": word_level,
}


def _text_ids(tokenizer, vocabulary: TokenVocabulary) -> list[int]:
    """The tokens that spell text, byte pieces only for the bytes of the tests' texts (an exhaustive check stays
    small)."""
    bytes_used = {f"<0x{byte:02X}>" for byte in b" {}ab,\xc3\xa9"}
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    return [i for i in range(vocabulary.size) if vocabulary.token_bytes[i] is not None
            and (backend.id_to_token(i) not in BYTE_PIECES or backend.id_to_token(i) in bytes_used)]


@functools.cache
def _tokenizer(kind: str):
    return KINDS[kind]()


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_spelling_is_what_the_tokenizer_decodes(kind, data):
    tokenizer = _tokenizer(kind)
    vocabulary = as_vocabulary(tokenizer)
    ids = data.draw(st.lists(st.sampled_from(_text_ids(tokenizer, vocabulary)), min_size=1, max_size=6))
    try:
        spelled = vocabulary.spell(ids).decode("utf-8")
    except (UnicodeDecodeError, VocabularyError):
        return  # bytes that are not UTF-8 text (decode shows U+FFFD), or a token that cannot open a text
    assert spelled == tokenizer.decode(ids)


@pytest.mark.parametrize("kind", KINDS)
def test_bound_constraint_judges_as_the_tokenizer_decodes(kind):
    """Every sequence of up to three text tokens: accepted exactly when its decoded text is."""
    tokenizer = KINDS[kind]()
    vocabulary = as_vocabulary(tokenizer)
    constraint = constrained.regex(SPACED_PATTERN if kind == "word_level_raw" else PATTERN)
    bound = constraint.bind(tokenizer)
    end = vocabulary.end_token_ids[0]
    text_ids = _text_ids(tokenizer, vocabulary)
    openers = set()
    for length in (1, 2, 3):
        for ids in itertools.product(text_ids, repeat=length):
            expected = constraint.accepts(tokenizer.decode(list(ids)))
            assert bound.accepts_tokens([*ids, end]) == expected, (ids, tokenizer.decode(list(ids)))
            if expected:
                openers.add(ids[0])
    allowed = set(bound.canvas(3).allowed(0).nonzero().flatten().tolist())
    assert allowed & set(text_ids) == openers


def _id(tokenizer, piece: str) -> int:
    return tokenizer.convert_tokens_to_ids(piece)


def test_dummy_prefix_opening_pieces():
    tokenizer = llama_strip()
    vocabulary = as_vocabulary(tokenizer)
    assert tokenizer.convert_ids_to_tokens(tokenizer.encode("{}", add_special_tokens=False))[0] == "▁{"
    assert vocabulary.token_bytes[_id(tokenizer, "▁{")] == b" {"
    assert vocabulary.start_bytes[_id(tokenizer, "▁{")] == b"{"
    assert vocabulary.start_bytes[_id(tokenizer, "▁")] == b""  # spells nothing when it opens the text
    assert vocabulary.start_bytes[_id(tokenizer, "<0x20>")] == b""  # the Strip acts on bytes too
    assert _id(tokenizer, "{") not in vocabulary.start_bytes
    bound = constrained.regex(r"\{a*\}").bind(tokenizer)
    for text in ("{}", "{aa}"):
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert tokenizer.decode(ids) == text and bound.accepts_tokens(ids)
    assert not bound.accepts_tokens([_id(tokenizer, "▁"), _id(tokenizer, "▁{"), _id(tokenizer, "}")])  # " {}"


def test_metaspace_drops_every_replacement_of_the_first_piece():
    vocabulary = as_vocabulary(metaspace())
    tokenizer = metaspace()
    assert vocabulary.start_bytes[_id(tokenizer, "a▁")] == b"a"
    assert vocabulary.token_bytes[_id(tokenizer, "a▁")] == b"a "
    assert not as_vocabulary(metaspace("never")).start_bytes


def test_no_dummy_prefix_means_no_opening_pieces():
    assert not as_vocabulary(gemma_style()).start_bytes


def test_byte_level_with_markdown_pieces_is_byte_level():
    tokenizer = byte_level()
    vocabulary = as_vocabulary(tokenizer)
    assert vocabulary.token_bytes[_id(tokenizer, "Ġ##")] == b" ##"
    assert vocabulary.token_bytes[_id(tokenizer, "Ã©")] == "é".encode()
    assert not vocabulary.start_bytes


def test_added_and_special_tokens():
    tokenizer = byte_level()
    vocabulary = as_vocabulary(tokenizer)
    assert vocabulary.token_bytes[_id(tokenizer, "<|tool|>")] == b"<|tool|>"  # decoded as its text
    assert vocabulary.token_bytes[_id(tokenizer, "<eos>")] is None
    assert vocabulary.end_token_ids == (_id(tokenizer, "<eos>"),)
    assert vocabulary.token_bytes[_id(tokenizer, "<sep>")] is None
    with pytest.raises(VocabularyError, match="special token"):
        vocabulary.spell([_id(tokenizer, "a"), _id(tokenizer, "<sep>")])


def test_wordpiece_pieces():
    tokenizer = wordpiece()
    vocabulary = as_vocabulary(tokenizer)
    assert vocabulary.token_bytes[_id(tokenizer, "a")] == b" a"
    assert vocabulary.token_bytes[_id(tokenizer, "##a")] == b"a"
    assert vocabulary.token_bytes[_id(tokenizer, ",")] == b","  # cleanup glues punctuation
    assert vocabulary.start_bytes[_id(tokenizer, "a")] == b"a"
    assert vocabulary.start_bytes[_id(tokenizer, "##a")] == b"##a"  # a continuation cannot glue to nothing


def test_raw_tokenizers_tokenizer_binds():
    backend = byte_level().backend_tokenizer
    vocabulary = as_vocabulary(backend)
    assert vocabulary.token_bytes == as_vocabulary(byte_level()).token_bytes
    assert vocabulary.end_token_ids == (backend.token_to_id("<eos>"),)
    assert constrained.regex("a+").bind(backend).accepts_tokens([backend.token_to_id("a")])


def test_raw_tokenizer_without_end_token_is_a_typed_error():
    backend = Tokenizer(models.WordLevel(vocab={"a": 0, "b": 1}, unk_token="a"))
    with pytest.raises(VocabularyError, match="eos_token_id"):
        as_vocabulary(backend)
    assert as_vocabulary(backend, eos_token_id=1).end_token_ids == (1,)


def test_decoder_that_does_not_spell_per_token_is_refused():
    backend = word_level()
    backend.decoder = decoders.BPEDecoder(suffix="</w>")
    with pytest.raises(VocabularyError, match="BPEDecoder"):
        as_vocabulary(backend)


@pytest.mark.parametrize("thing", [42, object(), "a string", [1, 2]])
def test_anything_else_is_a_typed_error(thing):
    with pytest.raises(ConstrainedError):
        as_vocabulary(thing)


@pytest.mark.parametrize("mapping", [{"a": -1, "</s>": 1}, {"a": "0", "</s>": 1}, {3: 0, "</s>": 1}])
def test_malformed_mapping_is_a_typed_error(mapping):
    with pytest.raises(VocabularyError, match="non-negative int ids"):
        as_vocabulary(mapping)


def test_opening_spelling_outside_the_vocabulary_is_refused():
    with pytest.raises(VocabularyError, match="outside"):
        TokenVocabulary((b"a", None), (1,), {5: b""})


def test_fingerprint_covers_opening_spellings():
    plain = TokenVocabulary((b" a", None), (1,))
    prefixed = TokenVocabulary((b" a", None), (1,), {0: b"a"})
    assert plain.fingerprint != prefixed.fingerprint


def test_fingerprint_tells_apart_what_an_automaton_depends_on():
    """The disk cache is keyed by the fingerprint: equal spellings and end tokens give equal fingerprints, and a
    changed byte, a token moved, a token that spells nothing, another end token or an extra token each change it."""
    base = TokenVocabulary((b"ab", b"c", None), (2,))
    assert TokenVocabulary((b"ab", b"c", None), (2,)).fingerprint == base.fingerprint
    for other in [TokenVocabulary((b"ab", b"d", None), (2,)), TokenVocabulary((b"a", b"bc", None), (2,)),
                  TokenVocabulary((b"c", b"ab", None), (2,)), TokenVocabulary((b"ab", None, None), (2,)),
                  TokenVocabulary((b"ab", b"c", None), (1,)), TokenVocabulary((b"ab", b"c", None, None), (2,))]:
        assert other.fingerprint != base.fingerprint, other
