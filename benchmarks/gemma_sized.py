"""A Gemma-sized SentencePiece vocabulary (262,144 pieces), built locally with the ``tokenizers`` library.

DiffusionGemma uses Gemma's vocabulary, which is not available offline. This stands in for it at its size and
in its form: a SentencePiece-style model with byte fallback (256 ``<0xNN>`` pieces), spaces written ``▁``, no
dummy prefix, and Gemma's decoder (``▁`` to space, byte fallback, fuse). Its pieces are the texts of the real
vocabularies in ``../shared/data/tokenizers`` (so they straddle JSON syntax as real pieces do), each also with a
leading ``▁``, and pairs of them up to the size. The model is a Unigram over those pieces that prefers the fewest
pieces, which is enough for a canonical encoding to exist; it makes no claim to Gemma's segmentation.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path

SIZE = 262_144
SPECIALS = ("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>")
SOURCES = ("deepseek-llm", "gpt-2", "deepseek-coder", "llama-spm")
_SPACE = "\u2581"


def _source_texts(tokenizers_dir: Path) -> list[str]:
    """The text each real vocabulary's pieces spell (valid UTF-8 only), in id order, sources in turn."""
    from tokenizers import Tokenizer

    from constrained.vocabulary import as_vocabulary

    texts = []
    for name in SOURCES:
        path = tokenizers_dir / name / "tokenizer.json"
        if not path.is_file():
            continue
        vocabulary = as_vocabulary(Tokenizer.from_file(str(path)), eos_token_id=0)
        for piece in vocabulary.token_bytes:
            try:
                texts.append(piece.decode("utf-8")) if piece else None
            except UnicodeDecodeError:
                continue
    return texts


def pieces(tokenizers_dir: Path, size: int = SIZE) -> list[str]:
    """``size`` distinct pieces: the specials, the 256 byte pieces, then real pieces, their ``▁`` forms, pairs.

    Raises:
        FileNotFoundError: none of the source tokenizers is present.
    """
    texts = _source_texts(tokenizers_dir)
    if not texts:
        raise FileNotFoundError(f"no source tokenizer under {tokenizers_dir}")
    chosen = dict.fromkeys([*SPECIALS, *(f"<0x{byte:02X}>" for byte in range(256))])
    words = list(dict.fromkeys(text.replace(" ", _SPACE) for text in texts))
    chosen.update(dict.fromkeys(islice(words, size - len(chosen))))
    spaced = (_SPACE + word for word in words if not word.startswith(_SPACE))
    chosen.update(dict.fromkeys(islice(spaced, max(0, size - len(chosen)))))
    pairs = (first + second for first in words[:2000] for second in words[:2000])
    while len(chosen) < size:
        chosen.update(dict.fromkeys(islice(pairs, size - len(chosen))))
    return list(chosen)[:size]


def tokenizer(tokenizers_dir: Path, size: int = SIZE):
    """The tokenizer, as a ``transformers`` fast tokenizer (EOS ``<eos>``)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers
    from transformers import PreTrainedTokenizerFast

    vocab = [(piece, -20.0 if piece.startswith("<0x") else -1.0) for piece in pieces(tokenizers_dir, size)]
    backend = Tokenizer(models.Unigram(vocab, unk_id=SPECIALS.index("<unk>"), byte_fallback=True))
    backend.normalizer = normalizers.Replace(" ", _SPACE)
    backend.decoder = decoders.Sequence([decoders.Replace(_SPACE, " "), decoders.ByteFallback(), decoders.Fuse()])
    backend.add_special_tokens([AddedToken(name, special=True) for name in SPECIALS])
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>",
                                   bos_token="<bos>", unk_token="<unk>")
