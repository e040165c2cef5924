"""The training recipe: the noise matches the sampler's, batches keep geometry, and a few steps learn."""

from __future__ import annotations

import json
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from model import architecture, corpus, objective, train
from model import tokenizer as tokenizer_lib

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


def test_corruption_replaces_tokens_uniformly_at_random():
    canvas = torch.zeros((64, 96), dtype=torch.long)
    noisy = objective.corrupt(canvas, 4096, torch.Generator().manual_seed(0))
    changed = (noisy != canvas).float().mean(dim=1)
    # t ~ U(0, 1) per example: some canvases barely touched, some almost fully noised, about half on average.
    assert changed.min() < 0.2 and changed.max() > 0.8 and 0.3 < changed.mean() < 0.7
    assert noisy.max() > 4000  # the whole vocabulary, as the sampler's uniform renoising draws


def test_collate_left_pads_contexts():
    batch = [objective.Example("json", [2, 7, 8], [1] * 4), objective.Example("sql", [2, 9], [1] * 4)]
    ids, mask, canvas = objective.collate(batch, pad_id=0)
    assert ids.tolist() == [[2, 7, 8], [0, 2, 9]]
    assert mask.tolist() == [[1, 1, 1], [0, 1, 1]]
    assert canvas.shape == (2, 4)


def test_learning_rate_warms_up_then_decays():
    lrs = [objective.learning_rate(s, s / 100, 1e-3, 10) for s in range(101)]
    assert lrs[0] < lrs[9] == max(lrs)
    assert abs(lrs[-1] - 1e-4) < 1e-9
    # A run cut short by its time budget (progress 1 at step 40) is fully decayed all the same.
    assert objective.learning_rate(40, 1.0, 1e-3, 10) == lrs[-1]


def test_a_few_steps_lower_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    texts = [s for item in corpus.take(200, "train") for s in (item.prompt, item.target)]
    tok = tokenizer_lib.train_tokenizer(texts, vocab_size=400)
    config = architecture.tiny_config(len(tok), pad_id=0, eos_id=1, bos_id=2, canvas_length=16, hidden=64, layers=2)
    model = architecture.build(config)
    stream = train.examples(tok, 16, seed=5, max_context=120)
    batch = [next(stream) for _ in range(4)]
    context, mask, canvas = objective.collate(batch, tok.pad_token_id)
    noisy = objective.corrupt(canvas, len(tok), torch.Generator().manual_seed(1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for step in range(6):
        loss = objective.denoising_loss(model, context, mask, canvas, noisy, self_condition=step % 2 == 1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0] - 0.5


def _flagged(tok, answer: str) -> str:
    ids = tok.encode(answer, add_special_tokens=False)
    return "".join(tok.decode([i]) for i, flag in zip(ids, train.value_positions(tok, answer)) if flag)


def test_value_positions_flag_values_and_never_keys_or_punctuation(tok):
    answer = json.dumps({"name": "Ada Lovelace", "age": 36, "tags": ["math", "op"], "ok": True,
                         "inner": {"z": -1.5, "n": None}}, ensure_ascii=False)
    flagged = _flagged(tok, answer)
    for value in ("Ada", "Lovelace", "36", "math", "op", "true", "-1.5", "null"):
        assert value in flagged
    for key in ("name", "age", "tags", "inner"):
        assert key not in flagged
    assert not set("{}[]:,") & set(flagged.replace("-1.5", ""))


@given(st.dictionaries(st.text(alphabet="abc_", min_size=1, max_size=6),
                       st.one_of(st.integers(-999, 999), st.text(alphabet="xyz :,{}", max_size=8), st.booleans()),
                       max_size=4))
@settings(max_examples=60, deadline=None)
def test_no_key_token_is_ever_flagged(tok, data):
    """Strings holding ``:``, ``,`` or braces stay values; a key, even one spelled like a value, never is one."""
    answer = json.dumps(data, ensure_ascii=False)
    ids = tok(answer, add_special_tokens=False, return_offsets_mapping=True)
    flags = train.value_positions(tok, answer)
    assert len(flags) == len(ids["input_ids"])
    keys = [(m.start() + 1, m.end() - 2) for m in re.finditer(r'"(?:[^"\\]|\\.)*":', answer)]
    for (begin, end), flag in zip(ids["offset_mapping"], flags):
        inside_a_key = any(k0 <= begin and end <= k1 for k0, k1 in keys)
        assert not (flag and inside_a_key)


def test_value_weight_moves_the_loss_toward_value_positions():
    batch = [objective.Example("json", [2], [5, 6, 7, 1], [False, True, True]),
             objective.Example("sql", [2], [5, 6, 7, 1])]
    weights = objective.position_weights(batch, 4, value_weight=5.0)
    assert weights.tolist() == [[1, 5, 5, 1], [1, 1, 1, 1]]


def test_value_noise_leaves_the_structure_of_the_chosen_json_examples_clean():
    flags = [False, True, True, False, True, False]
    batch = [objective.Example("json", [2], [5, 6, 7, 8, 9, 1], flags),
             objective.Example("sql", [2], [5, 6, 7, 8, 9, 1])]
    rows = objective.value_noise_rows(batch, 6, share=1.0, generator=torch.Generator().manual_seed(0))
    assert rows.tolist() == [flags, [True] * 6]  # an example without values is noised everywhere
    canvas = torch.tensor([e.canvas for e in batch]).repeat(50, 1)
    noisy = objective.corrupt(canvas, 4096, torch.Generator().manual_seed(1), rows.repeat(50, 1))
    changed = noisy != canvas
    assert not changed[0::2][:, [0, 3, 5]].any() and changed[0::2][:, [1, 2, 4]].any()
    assert changed[1::2][:, [0, 3, 5]].any()
    none = objective.value_noise_rows(batch, 6, share=0.0, generator=torch.Generator().manual_seed(0))
    assert none.all()
