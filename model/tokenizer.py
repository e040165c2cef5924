"""Train the built-in denoiser's byte-level BPE tokenizer on the synthetic corpus.

Why these choices:

* byte-level, so every string (any Unicode in a JSON value) is spelled exactly and ``decode(encode(x)) == x``;
* digits always split one per token, so a Sudoku cell is one canvas position and a number is spelled digit by
  digit, which the constraint masks and the tiny model both handle far better than arbitrary digit chunks;
* merges learned from the corpus, so JSON punctuation (``{"``, ``": ``, ``", "``), SQL keywords and the schema
  identifiers become single tokens and the canvas stays short;
* special tokens at fixed ids that the model config repeats: ``<pad>`` 0, ``<eos>`` 1, ``<bos>`` 2, ``<mask>`` 3;
* optionally (:func:`isolate_spaces`) a space before a letter is a token of its own, so that a word is spelled the
  same in running text (``lives in Tokyo``) and as a JSON string's first word (``"city": "Tokyo"``): the model then
  copies a value token for token instead of learning a second spelling of every word.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

PAD, EOS, BOS, MASK = "<pad>", "<eos>", "<bos>", "<mask>"
SPECIAL_TOKENS = (PAD, EOS, BOS, MASK)  # ids 0, 1, 2, 3 in this order
DEFAULT_VOCAB_SIZE = 4096


def train_tokenizer(texts: Iterable[str], vocab_size: int = DEFAULT_VOCAB_SIZE,
                    split_spaces: bool = False) -> PreTrainedTokenizerFast:
    """A byte-level BPE of ``vocab_size`` entries (special tokens included) learned from ``texts``.

    ``split_spaces`` pre-tokenizes as :func:`isolate_spaces` does while the merges are learned, so that bare words
    get the merges (rather than space-prefixed entries that the isolated spaces would leave unused).
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = _pre_tokenizer(split_spaces=split_spaces)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return wrap(tokenizer)


def isolate_spaces(tokenizer: PreTrainedTokenizerFast) -> PreTrainedTokenizerFast:
    """``tokenizer`` with the same vocabulary and merges, but a space before a letter pre-tokenized on its own.

    Words that only ever occurred after a space keep no merges of their own and are spelled in smaller pieces;
    the space-prefixed entries of the vocabulary fall out of use.
    """
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.pre_tokenizer = _pre_tokenizer(split_spaces=True)
    return wrap(backend)


def _pre_tokenizer(split_spaces: bool) -> pre_tokenizers.PreTokenizer:
    steps = [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    if split_spaces:
        steps.insert(0, pre_tokenizers.Split(Regex(r" (?=\p{L})"), behavior="isolated"))
    return pre_tokenizers.Sequence(steps)


def wrap(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    """The ``transformers`` view of a trained tokenizer, with its special tokens named."""
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD,
        eos_token=EOS,
        bos_token=BOS,
        mask_token=MASK,
        clean_up_tokenization_spaces=False,
        model_max_length=2048,
    )


def save(tokenizer: PreTrainedTokenizerFast, out_dir: Path) -> None:
    """Write ``tokenizer.json`` and ``tokenizer_config.json`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(out_dir))
