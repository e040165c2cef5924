"""Randomly initialised models and a synthetic byte-level tokenizer: test an integration offline, without a hub.

Import it explicitly (``from constrained import testing``); ``import constrained`` does not load it. The training
recipe builds its models through :func:`diffusion_gemma_config` too, so the architecture is stated once.

A random-init model produces noise, which is exactly what exercises a constrained sampler hardest: nothing but the
constraint makes its output valid. The tokenizer is byte-level BPE (every byte is a token, so any text is
spellable) plus multi-byte pieces, JSON-flavoured ones first and synthetic fillers up to the requested size, so
that the constraint sees realistic token classes (pieces that cross a string's closing quote, ``": "``, digits).
"""

from __future__ import annotations

import itertools
import socket
import string
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    BertConfig,
    BertForMaskedLM,
    DiffusionGemmaConfig,
    DiffusionGemmaForBlockDiffusion,
    DiffusionGemmaTextConfig,
    Gemma4VisionConfig,
    PreTrainedTokenizerFast,
)

from .vocabulary import _gpt2_byte_decoder

SPECIALS = ("<pad>", "<eos>", "<bos>", "<mask>")
JSON_PIECES = (
    '{"', '"}', '": ', '":', '", "', '","', ', "', '",', '"]', '["', '[]', '{}', '""', ', ', 'true', 'false',
    'null', 'name', 'id', 'type', 'value', 'city', 'street', 'address', 'email', 'age', 'tags', 'the', 'ing',
    'er', 'on', 'an', 'es', 'in', 'at', 'com', '.com', '00', '10', '12', '20', '99', '-0', '.5', 'e+', '\\"',
    '\\n', '  ', '\n', '},', '],', '}}', '}]',
)


def _fillers():
    """Synthetic multi-byte pieces in a fixed order: printable pairs, then lowercase triples, then `` ``+triples."""
    printable = string.ascii_letters + string.digits + string.punctuation + " "
    # "##" would make the vocabulary look like WordPiece (continuation pieces), which it is not
    yield from ("".join(pair) for pair in itertools.product(printable, repeat=2) if pair != ("#", "#"))
    yield from ("".join(t) for t in itertools.product(string.ascii_lowercase, repeat=3))
    yield from (" " + "".join(t) for t in itertools.product(string.ascii_lowercase, repeat=3))


def byte_tokenizer(vocab_size: int = 320) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer of exactly ``vocab_size`` tokens (at least 260 and at most ~45K).

    Ids: ``<pad>`` 0, ``<eos>`` 1, ``<bos>`` 2, ``<mask>`` 3, the 256 bytes, then multi-byte pieces. It has no
    merges, so encoding spells text byte by byte while decoding understands every piece.
    """
    to_char = {byte: char for char, byte in _gpt2_byte_decoder().items()}

    def piece(text: str) -> str:
        return "".join(to_char[b] for b in text.encode("utf-8"))

    vocab = {name: i for i, name in enumerate(SPECIALS)}
    for byte in range(256):
        vocab[to_char[byte]] = len(vocab)
    for text in itertools.chain(JSON_PIECES, _fillers()):
        if len(vocab) >= vocab_size:
            break
        vocab.setdefault(piece(text), len(vocab))
    if len(vocab) != vocab_size:
        raise ValueError(f"cannot build a byte tokenizer of {vocab_size} tokens (got {len(vocab)})")
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", mask_token="<mask>"
    )


def diffusion_gemma_config(
    vocab_size: int,
    *,
    canvas_length: int = 8,
    hidden_size: int = 32,
    layers: int = 2,
    heads: int = 2,
    kv_heads: int = 1,
    head_dim: int | None = None,
    experts: int = 2,
    moe_size: int | None = None,
    sliding_window: int = 64,
    max_positions: int = 1024,
    special_ids: tuple[int, int, int] = (0, 1, 2),
) -> DiffusionGemmaConfig:
    """A small configuration of the real DiffusionGemma architecture, every code path of the large one kept.

    Parameters: ``layers`` decoder/encoder layers, the last always full attention (the architecture requires
    it); ``heads`` / ``kv_heads`` of ``head_dim`` (default ``hidden_size // heads``, at least 8); ``experts``
    MoE experts (top-1) of ``moe_size`` (default ``hidden_size``); ``special_ids`` = (pad, eos, bos). Two
    departures from the defaults: the full-attention layer's head size and KV-head count equal the sliding
    layers' (so a saved config reloads to the same shapes), and the vision tower, which the architecture always
    builds, is one 8-wide layer.
    """
    head_dim = head_dim or max(8, hidden_size // heads)
    pad_id, eos_id, bos_id = special_ids
    text = DiffusionGemmaTextConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        global_head_dim=head_dim,
        sliding_window=sliding_window,
        layer_types=["sliding_attention"] * (layers - 1) + ["full_attention"],
        max_position_embeddings=max_positions,
        num_experts=experts,
        top_k_experts=1,
        moe_intermediate_size=moe_size or hidden_size,
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        bos_token_id=bos_id,
    )
    vision = Gemma4VisionConfig(
        hidden_size=8, intermediate_size=8, num_hidden_layers=1, num_attention_heads=1, num_key_value_heads=1,
        head_dim=8, position_embedding_size=8, patch_size=2,
    )
    beyond = vocab_size + 1  # image token ids outside the text vocabulary, whatever its size
    return DiffusionGemmaConfig(
        text_config=text, vision_config=vision, canvas_length=canvas_length,
        boi_token_id=beyond, eoi_token_id=beyond + 1, image_token_id=beyond + 2,
    )


def diffusion_gemma(vocab_size: int, *, seed: int = 0, **config: Any) -> DiffusionGemmaForBlockDiffusion:
    """A randomly initialised DiffusionGemma of :func:`diffusion_gemma_config` (``config`` goes there), in eval mode."""
    torch.manual_seed(seed)
    return DiffusionGemmaForBlockDiffusion(diffusion_gemma_config(vocab_size, **config)).eval()


def masked_lm(vocab_size: int, *, hidden_size: int = 32, layers: int = 2, max_positions: int = 512, seed: int = 0):
    """A BERT masked LM of the given vocabulary, used as a masked-diffusion denoiser."""
    config = BertConfig(
        vocab_size=vocab_size, hidden_size=hidden_size, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=2 * hidden_size, max_position_embeddings=max_positions, pad_token_id=0,
    )
    torch.manual_seed(seed)
    return BertForMaskedLM(config).eval()


def free_local_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now: tests and benchmarks serve only on the loopback."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
