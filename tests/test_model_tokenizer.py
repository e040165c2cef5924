"""The built-in denoiser's tokenizer: exact round trips, one token per digit, fixed special ids, compact JSON/SQL."""

from __future__ import annotations

import pytest
from transformers import PreTrainedTokenizerFast

from constrained.prompts import prompt_ids
from model import blocks, corpus
from model import tokenizer as tokenizer_lib


@pytest.fixture(scope="module")
def small_trained() -> PreTrainedTokenizerFast:
    """A tokenizer trained here on a small corpus, so the recipe itself is tested, not just its saved output."""
    texts = [s for item in corpus.take(300, "train") for s in (item.prompt, item.target)]
    return tokenizer_lib.train_tokenizer(texts, vocab_size=600)


@pytest.fixture(scope="module")
def split_trained() -> PreTrainedTokenizerFast:
    """Trained with spaces split off as it learns its merges (the GPU bundle's tokenizer)."""
    texts = [s for item in corpus.take(300, "train") for s in (item.prompt, item.target)]
    return tokenizer_lib.train_tokenizer(texts, vocab_size=600, split_spaces=True)


@pytest.fixture(scope="module", params=["shipped", "small", "small, spaces isolated", "small, trained split"])
def any_tok(request, small_trained) -> PreTrainedTokenizerFast:
    if request.param == "shipped":
        return request.getfixturevalue("tok")
    if request.param == "small, trained split":
        return request.getfixturevalue("split_trained")
    return small_trained if request.param == "small" else tokenizer_lib.isolate_spaces(small_trained)


def test_special_tokens_have_fixed_ids(any_tok):
    assert (any_tok.pad_token_id, any_tok.eos_token_id, any_tok.bos_token_id, any_tok.mask_token_id) == (0, 1, 2, 3)
    assert any_tok.encode("hello", add_special_tokens=False) == any_tok.encode("hello")  # nothing added implicitly


def test_shipped_vocabulary_size(tok):
    assert len(tok) == tokenizer_lib.DEFAULT_VOCAB_SIZE


@pytest.mark.parametrize("text", ["0123456789", "year 2024, price 12.50", "Sudoku: " + "0" * 81, "x=1000000"])
def test_every_digit_is_its_own_token(any_tok, text):
    pieces = any_tok.convert_ids_to_tokens(any_tok.encode(text))
    digit_pieces = [p for p in pieces if any(ch.isdigit() for ch in p)]
    assert all(len(p.lstrip("Ġ")) == 1 for p in digit_pieces), pieces
    assert sum(len(p.lstrip("Ġ")) for p in digit_pieces) == sum(ch.isdigit() for ch in text)


def test_round_trip_is_exact_on_corpus_texts(any_tok):
    for item in corpus.take(150, "held_out"):
        for text in (item.prompt, item.target):
            assert any_tok.decode(any_tok.encode(text), clean_up_tokenization_spaces=False) == text


@pytest.mark.parametrize("text", ['{"name": "Zoë Müller", "city": "Bogotá"}', "naïve — 東京 ✓", " two  spaces\n\ttab "])
def test_round_trip_is_exact_on_any_unicode(tok, text):
    assert tok.decode(tok.encode(text), clean_up_tokenization_spaces=False) == text


def test_json_and_sql_tokenize_compactly(tok):
    """The shipped tokenizer isolates a space before a letter, so ``SELECT count(*) FROM singer`` spends three."""
    assert len(tok.encode("SELECT")) == 1
    assert len(tok.encode('{"name": "Anna"}')) <= 6
    assert len(tok.encode("SELECT count(*) FROM singer")) <= 9


def test_shipped_tokenizer_isolates_spaces(tok):
    assert tok.tokenize("lives in Tokyo")[-2:] == ["Ġ", "Tokyo"]


def test_block_layout_fills_with_eos_and_round_trips(tok):
    length = 8
    for answer in ("abc", "SELECT name FROM singer WHERE age > 30", ""):
        canvases = blocks.answer_blocks(tok, answer, length)
        flat = [t for c in canvases for t in c]
        assert all(len(c) == length for c in canvases)
        assert tok.eos_token_id in canvases[-1]
        text_len = len(tok.encode(answer))
        assert flat[text_len:] == [tok.eos_token_id] * (len(flat) - text_len)
        assert blocks.answer_text(tok, flat) == answer


def test_exactly_full_canvas_gets_an_eos_only_canvas(tok):
    answer = "1234567"  # seven digit tokens + <eos> == one canvas of 8; eight digits need a second canvas
    assert len(blocks.answer_blocks(tok, answer, 8)) == 1
    two = blocks.answer_blocks(tok, answer + "8", 8)
    assert len(two) == 2 and two[1] == [tok.eos_token_id] * 8


def test_context_is_bos_prompt_then_previous_canvases(tok):
    first = prompt_ids(tok, "Q:")
    assert first[0] == tok.bos_token_id and first[1:] == tok.encode("Q:")
    canvases = [[5] * 4, [6] * 4, [7] * 4]
    assert blocks.block_context(first, canvases, 0) == first
    assert blocks.block_context(first, canvases, 2) == first + [5] * 4 + [6] * 4


@pytest.mark.parametrize("word", ["Tokyo", "Ada", "notebook", "Zoë"])
def test_isolated_spaces_spell_a_word_alike_in_text_and_in_a_json_string(small_trained, word):
    isolated = tokenizer_lib.isolate_spaces(small_trained)
    spelled = isolated.tokenize(word)
    assert isolated.tokenize(f"lives in {word}")[-len(spelled):] == spelled
    assert isolated.tokenize(f'{{"city": "{word}"}}')[-len(spelled) - 1:-1] == spelled
    assert isolated.get_vocab() == small_trained.get_vocab()


def test_trained_split_the_merges_go_to_bare_words(small_trained, split_trained):
    """Trained with spaces isolated, the vocabulary holds no space-prefixed word (which isolated spaces never use),
    so the same size spells the corpus in fewer tokens than spaces isolated after training."""
    assert not any(token.startswith("Ġ") and token[1:].isalpha() for token in split_trained.get_vocab())
    isolated = tokenizer_lib.isolate_spaces(small_trained)
    texts = [s for item in corpus.take(100, "held_out") for s in (item.prompt, item.target)]
    assert sum(len(split_trained.tokenize(t)) for t in texts) < sum(len(isolated.tokenize(t)) for t in texts)


def test_isolated_spaces_keep_a_space_before_digits_and_punctuation_merged(small_trained):
    """Only a space before a letter is split off: ``": "`` and `` 2`` pre-tokenize as before."""
    isolated = tokenizer_lib.isolate_spaces(small_trained)
    for text in ('{"qty": 6, "note": "+44 1"}', "x = 2"):
        assert isolated.tokenize(text) == small_trained.tokenize(text)
