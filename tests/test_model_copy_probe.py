"""The copy probe of ``model.sample_check``: the question under JSON extraction, whether the model reads a value
from the text at all, asked so that only a model that reads it can score above chance."""

from __future__ import annotations

import json
from types import SimpleNamespace

import torch

from model import blocks, corpus
from model.sample_check import _enum_variants, copy_probe, value_probe


def test_each_variant_states_its_option_in_the_text_and_marks_where_the_answer_spells_it(tok):
    probed = 0
    for item in corpus.take(120, "held_out", mix={"json": 1.0}):
        for variants in _enum_variants(item, tok):
            assert len({option for option, *_ in variants}) == len(variants)
            for option, prompt, answer, position in variants:
                assert option in prompt.split("\nText: ", 1)[1]
                assert option in json.loads(answer).values()
                ids = tok.encode(answer, add_special_tokens=False)
                assert tok.decode(ids[position:], clean_up_tokenization_spaces=False).startswith(option)
            probed += 1
    assert probed >= 10


class _TextBlindModel:
    """Always the same logits, whatever the prompt says: it follows the text at most once per field."""

    config = SimpleNamespace(canvas_length=96)

    def __init__(self, vocab_size: int) -> None:
        self.logits = torch.randn(vocab_size, generator=torch.Generator().manual_seed(0))

    def __call__(self, input_ids: torch.Tensor, decoder_input_ids: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(logits=self.logits.expand(*decoder_input_ids.shape, -1))


def test_a_model_blind_to_the_text_does_not_beat_chance(tok):
    figures = copy_probe(_TextBlindModel(len(tok)), tok, items=12)
    assert figures["fields"] == 12
    assert figures["follows_text"] <= figures["chance"]


class _AnswerKnowingModel:
    """Knows each held-out prompt's answer, so it scores every value token right if the probe lines them up."""

    config = SimpleNamespace(canvas_length=96)

    def __init__(self, tokenizer, items: int) -> None:
        self.tokenizer = tokenizer
        self.answers = {item.prompt: item.target for item in corpus.take(items, "held_out", mix={"json": 1.0})}

    def __call__(self, input_ids: torch.Tensor, decoder_input_ids: torch.Tensor) -> SimpleNamespace:
        prompt = self.tokenizer.decode(input_ids[0, 1:], clean_up_tokenization_spaces=False)
        canvas = blocks.answer_blocks(self.tokenizer, self.answers[prompt], self.config.canvas_length)[0]
        logits = torch.zeros(1, len(canvas), len(self.tokenizer))
        logits[0, torch.arange(len(canvas)), torch.tensor(canvas)] = 1.0
        return SimpleNamespace(logits=logits)


def test_the_value_probe_scores_a_model_that_knows_the_answers_perfectly_and_a_blind_one_poorly(tok):
    knowing = value_probe(_AnswerKnowingModel(tok, 30), tok, items=30)
    assert knowing["value_tokens"] > 100 and knowing["read_right"] == 1.0
    assert value_probe(_TextBlindModel(len(tok)), tok, items=30)["read_right"] < 0.05
