"""Text-level constraints, binding to vocabularies, and the errors on bad input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import constrained
from constrained import CompileTimeout, Constraint, RegexError, VocabularyError
from constrained.vocabulary import as_vocabulary, from_hf_tokenizer

EXACT_PATTERNS = ["-?(0|1[01]*)(ab)*", "(ab)+", "[0-1]+(-[0-1]+)?", "(a|ab)(b|-)*", "1?0?a?b?"]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(EXACT_PATTERNS), st.text(alphabet="ab01-", max_size=10))
def test_accepts_is_exact_membership(pattern, text):
    """Including continuations out of accepting states, which outlines-core alone would drop."""
    import re

    assert constrained.regex(pattern).accepts(text) == bool(re.fullmatch(pattern, text))


def test_unicode_text_is_matched_as_utf8():
    constraint = constrained.regex("[^a]{2}")
    assert constraint.accepts("éü")
    assert not constraint.accepts("é")


def test_check_runs_after_the_pattern():
    constraint = Constraint("[0-9]+", check=lambda text: None if int(text) % 2 == 0 else "odd", post_checked=("even",))
    assert constraint.accepts("42")
    assert constraint.violation("43") == "odd"
    assert constraint.violation("x") is not None


@pytest.mark.parametrize(
    "pattern, what",
    [("a(?=b)", "lookahead"), ("(?<!a)b", "lookbehind"), ("(a)\\1", "backreference"), ("a(b", "never closed"),
     ("a)", "unbalanced")],
)
def test_unsupported_regex_syntax_is_a_clear_error(pattern, what):
    with pytest.raises(RegexError, match=what):
        constrained.regex(pattern)


def test_vocabulary_that_cannot_spell_the_language():
    with pytest.raises(VocabularyError, match="cannot spell"):
        constrained.regex("xyz").bind({"a": 0, "b": 1, "</s>": 2})


def test_vocabulary_without_end_token():
    with pytest.raises(VocabularyError, match="end-of-sequence"):
        constrained.regex("a").bind({"a": 0})
    assert constrained.regex("a").bind({"a": 0, "<end>": 1}, eos_token_id=1).eos_token_ids == (1,)


def test_non_tokenizer_is_rejected():
    with pytest.raises(VocabularyError, match="cannot read a vocabulary"):
        as_vocabulary(42)


def test_a_tokenizer_is_read_once_and_each_tokenizer_gets_its_own_vocabulary():
    from constrained.testing import byte_tokenizer

    first, other = byte_tokenizer(), byte_tokenizer(300)
    vocabulary = as_vocabulary(first)
    assert as_vocabulary(first) is vocabulary
    assert as_vocabulary(first, eos_token_id=0).end_token_ids[0] == 0  # another end token is another reading
    assert as_vocabulary(other) is not vocabulary and as_vocabulary(other).size == 300
    assert as_vocabulary(other) is as_vocabulary(other)
    first.add_tokens(["<new>"])  # a tokenizer that changed is read again
    assert as_vocabulary(first).size == 321 and as_vocabulary(first) == from_hf_tokenizer(first)


def test_remembered_vocabularies_are_bounded_and_die_with_their_tokenizer():
    import gc
    import weakref

    from constrained import vocabulary as module
    from constrained.testing import byte_tokenizer

    tokenizers = [byte_tokenizer() for _ in range(module.VOCABULARY_CACHE_SIZE + 2)]
    readings = [as_vocabulary(tokenizer) for tokenizer in tokenizers]
    assert len(module._read_vocabularies) == module.VOCABULARY_CACHE_SIZE
    assert as_vocabulary(tokenizers[-1]) is readings[-1]  # the newest stay, the oldest went
    assert as_vocabulary(tokenizers[0]) is not readings[0] and as_vocabulary(tokenizers[0]) == readings[0]
    remembered = [weakref.ref(reading) for reading in readings]
    del tokenizers, readings
    gc.collect()
    assert all(reading() is None for reading in remembered)


def test_reading_from_many_threads_gives_one_answer():
    from concurrent.futures import ThreadPoolExecutor

    from constrained.testing import byte_tokenizer

    tokenizer = byte_tokenizer()
    with ThreadPoolExecutor(4) as pool:
        readings = list(pool.map(lambda _: as_vocabulary(tokenizer), range(16)))
    assert all(reading == readings[0] for reading in readings)
    assert as_vocabulary(tokenizer) is as_vocabulary(tokenizer)


def test_compile_is_bounded_in_time():
    huge = "[ab]*a[ab]{24}"  # its minimal DFA has 2**25 states: "was there an a 25 letters back?"
    with pytest.raises(CompileTimeout):
        Constraint(huge, compile_timeout_s=0.5).compile()


def _byte_level_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"a": 0, "b": 1, "Ġ": 2, "Ġa": 3, "Ċ": 4, "<eos>": 5, "Ã©": 6}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[("Ġ", "a")]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>")


def _sentencepiece_style_tokenizer():
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "</s>": 1, "a": 2, "\u2581a": 3, "<0x0A>": 4, "b": 5}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>", byte_fallback=True))
    backend.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>", unk_token="<unk>")


def test_byte_level_bpe_pieces_become_bytes():
    vocabulary = from_hf_tokenizer(_byte_level_tokenizer())
    assert vocabulary.token_bytes[3] == b" a"
    assert vocabulary.token_bytes[4] == b"\n"
    assert vocabulary.token_bytes[6] == "é".encode()
    assert vocabulary.token_bytes[5] is None and vocabulary.end_token_ids == (5,)


def test_sentencepiece_pieces_become_bytes():
    vocabulary = from_hf_tokenizer(_sentencepiece_style_tokenizer())
    assert vocabulary.token_bytes[3] == b" a"
    assert vocabulary.token_bytes[4] == b"\n"
    assert vocabulary.token_bytes[0] is None  # <unk> is special
    assert vocabulary.end_token_ids == (1,)


def test_bound_constraint_over_hf_tokenizer():
    bound = constrained.regex("a( a)*\n").bind(_byte_level_tokenizer())
    canvas = bound.canvas(4)
    allowed_first = set(canvas.allowed(0).nonzero().flatten().tolist())
    assert allowed_first == {0}
    assert bound.accepts_tokens([0, 3, 4, 5])
    assert not bound.accepts_tokens([0, 4, 3])
