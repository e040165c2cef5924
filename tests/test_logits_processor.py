"""The transformers drop-in: every block DiffusionGemma's own generate commits under the processor is admissible."""

from __future__ import annotations

import pytest
import torch
from transformers import LogitsProcessorList

from constrained import ConstrainedLogitsProcessor, regex
from constrained.errors import ConstraintUnsatisfiable, RequestError
from constrained.json_schema import json_schema
from constrained.testing import byte_tokenizer, diffusion_gemma

torch.set_num_threads(1)
TOKENIZER = byte_tokenizer(300)
EOS, PAD, BLOCK = 1, 0, 8
SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 6}, "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}
LIST = regex(r"\[[0-9]{1,2}(, [0-9]{1,2}){2,5}\]")


def byte_id(char: str) -> int:
    return 4 + ord(char)


def generate(model, prompts: list[list[int]], constraints, max_new_tokens: int, seed: int) -> list[list[int]]:
    """transformers' own generate with the processor; the new tokens of each row."""
    processor = ConstrainedLogitsProcessor(constraints, TOKENIZER, max_new_tokens=max_new_tokens)
    torch.manual_seed(seed)
    out = model.generate(torch.tensor(prompts), max_new_tokens=max_new_tokens, eos_token_id=EOS, pad_token_id=PAD,
                         logits_processor=LogitsProcessorList([processor]), max_denoising_steps=6)
    return out.sequences[:, len(prompts[0]) :].tolist()


def assert_every_block_admissible(constraint, tokens: list[int]) -> None:
    bound = constraint.bind(TOKENIZER)
    text_end = tokens.index(EOS) if EOS in tokens else len(tokens)
    for end in range(BLOCK, text_end + 1, BLOCK):  # each committed prefix can still become an accepted text
        assert bound.feasible(tokens[:end], final=False), bound.decode(tokens[:end])
    assert constraint.accepts(bound.decode(tokens))


@pytest.mark.parametrize("seed", range(3))
def test_a_batch_with_one_constraint_per_row_commits_only_admissible_blocks(seed):
    model = diffusion_gemma(len(TOKENIZER), canvas_length=BLOCK, max_positions=256)
    constraints = [json_schema(SCHEMA), regex("[a-z]{3,9}"), LIST]
    rows = generate(model, [[2, 40, 41], [2, 50, 51], [2, 60, 61]], constraints, 40, seed)
    for constraint, tokens in zip(constraints, rows, strict=True):
        assert_every_block_admissible(constraint, tokens)


@pytest.mark.parametrize("seed", range(2))
def test_batch_of_one_in_bfloat16(seed):
    # the processed scores become the next step's self-conditioning in the embedding dtype: -inf survives the cast
    model = diffusion_gemma(len(TOKENIZER), canvas_length=BLOCK, max_positions=256).to(torch.bfloat16)
    (tokens,) = generate(model, [[2, 40, 41]], LIST, 24, seed)
    assert_every_block_admissible(LIST, tokens)


def test_the_argmax_is_the_constrained_map_block_not_the_per_position_best():
    # "a" is each position's best allowed token alone, but "aa" is not in ab|ba; the MAP block "ab" must win the argmax
    a, b = byte_id("a"), byte_id("b")
    scores = torch.zeros(1, 2, len(TOKENIZER))
    scores[0, 0, a], scores[0, 0, b] = 5.0, 0.0
    scores[0, 1, a], scores[0, 1, b] = 4.0, 3.9
    processor = ConstrainedLogitsProcessor(regex("ab|ba"), TOKENIZER, max_new_tokens=2)
    processed = processor(torch.tensor([[2]]), scores, cur_step=1)
    assert processed[0].argmax(dim=-1).tolist() == [a, b]
    assert processed[0, 0, a] == 5.0  # the MAP token that already leads keeps its score
    assert torch.isinf(processed[0, :, byte_id("c")]).all()  # what no admissible text allows is -inf


def test_wrong_batch_size_and_impossible_budget_are_typed_errors():
    scores = torch.zeros(2, BLOCK, len(TOKENIZER))
    with pytest.raises(RequestError, match="3 constraints for a batch of 2"):
        ConstrainedLogitsProcessor([LIST, LIST, None], TOKENIZER, max_new_tokens=8)(torch.tensor([[2], [2]]), scores)
    with pytest.raises(ConstraintUnsatisfiable):
        ConstrainedLogitsProcessor(regex("[0-9]{40}"), TOKENIZER, max_new_tokens=8)(torch.tensor([[2], [2]]), scores)
    with pytest.raises(RequestError, match="max_new_tokens"):
        ConstrainedLogitsProcessor(LIST, TOKENIZER, max_new_tokens=0)
