"""The prompt/canvas convention the built-in denoiser was trained on, shared by training and sampling.

DiffusionGemma generates block by block: the encoder reads the context into the KV cache, the decoder denoises
one canvas of ``canvas_length`` tokens against it, and the finished canvas is appended to the context before the
next one. The convention here:

* context of the first canvas = ``<bos>`` + the prompt's tokens, as :func:`constrained.prompts.prompt_ids` builds it
  (no other special token, no separator: the prompt texts of :mod:`constrained.prompts` end with ``JSON:``,
  ``SQL:`` or ``Solution:``);
* the answer is its tokens followed by ``<eos>``, and every position after that ``<eos>`` up to the end of the canvas
  is ``<eos>`` again (so a canvas is "text, then only <eos>");
* an answer longer than one canvas continues in the next canvas; the context of canvas ``k`` is the first context
  plus the ``k`` previous canvases in full. An answer whose text exactly fills its last canvas gets one more canvas
  holding only ``<eos>``.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import PreTrainedTokenizerBase


def answer_blocks(tokenizer: PreTrainedTokenizerBase, answer: str, canvas_length: int) -> list[list[int]]:
    """The canvases that spell ``answer``: its tokens, ``<eos>``, then ``<eos>`` up to a whole number of canvases."""
    return canvases(tokenizer.encode(answer, add_special_tokens=False), tokenizer.eos_token_id, canvas_length)


def canvases(answer_ids: Sequence[int], eos_id: int, canvas_length: int) -> list[list[int]]:
    """The canvases that spell an answer given as token ids: them, ``<eos>``, then ``<eos>`` up to a whole number
    of canvases."""
    ids = [*answer_ids, eos_id]
    padded = ids + [eos_id] * (-len(ids) % canvas_length)
    return [padded[i : i + canvas_length] for i in range(0, len(padded), canvas_length)]


def block_context(first_context: Sequence[int], blocks: Sequence[Sequence[int]], index: int) -> list[int]:
    """Context seen while denoising canvas ``index``: the first context plus all earlier canvases."""
    return [*first_context, *(t for block in blocks[:index] for t in block)]


def answer_text(tokenizer: PreTrainedTokenizerBase, canvas_ids: Sequence[int]) -> str:
    """The answer spelled by generated canvases: everything before the first ``<eos>`` (or ``<pad>``)."""
    ends = {tokenizer.eos_token_id, tokenizer.pad_token_id}
    out: list[int] = []
    for token in canvas_ids:
        if token in ends:
            break
        out.append(token)
    return tokenizer.decode(out, skip_special_tokens=False, clean_up_tokenization_spaces=False)
