"""The tiny configuration of the real DiffusionGemma architecture that the package ships.

It is transformers' ``DiffusionGemmaForBlockDiffusion`` unchanged (causal encoder filling a KV cache from the
prompt, bidirectional decoder denoising a canvas against it, shared weights, self-conditioning block, MoE beside the
dense MLP in every layer, logit soft-capping), only small: so every code path the 26B model takes is exercised by
the built-in denoiser. Two deliberate departures from the defaults:

* the full-attention layer's ``global_head_dim`` and KV-head count equal the sliding layers' ones, so the saved
  config reloads to the same shapes (the per-layer override is not written to ``config.json``);
* the vision tower, which the architecture always builds, is one 8-wide layer (a few thousand unused parameters)
  instead of hundreds of millions: this model never sees images.
"""

from __future__ import annotations

from transformers import DiffusionGemmaConfig, DiffusionGemmaForBlockDiffusion

CANVAS_LENGTH = 96  # one canvas holds a whole Sudoku solution (81 digits + <eos>) and most JSON/SQL answers
HIDDEN = 256
HEAD_DIM = 64


def tiny_config(
    vocab_size: int,
    *,
    pad_id: int,
    eos_id: int,
    bos_id: int,
    canvas_length: int = CANVAS_LENGTH,
    hidden: int = HIDDEN,
    layers: int = 4,
) -> DiffusionGemmaConfig:
    """About 4.6 M parameters by default: 4 layers of width 256, 4 query / 2 KV heads of 64, 2 experts (top-1).

    ``hidden`` and ``layers`` shrink it further for fast tests of the recipe; the last layer is always the
    full-attention one, as the architecture requires.
    """
    text = dict(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=HEAD_DIM,
        global_head_dim=HEAD_DIM,
        num_global_key_value_heads=2,
        layer_types=["sliding_attention"] * (layers - 1) + ["full_attention"],
        sliding_window=512,
        max_position_embeddings=2048,
        num_experts=2,
        top_k_experts=1,
        moe_intermediate_size=hidden // 2,
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        bos_token_id=bos_id,
    )
    vision = dict(
        model_type="gemma4_vision",
        hidden_size=8,
        intermediate_size=8,
        num_hidden_layers=1,
        num_attention_heads=1,
        num_key_value_heads=1,
        head_dim=8,
        position_embedding_size=8,
        patch_size=2,
    )
    return DiffusionGemmaConfig(text_config=text, vision_config=vision, canvas_length=canvas_length)


def build(config: DiffusionGemmaConfig) -> DiffusionGemmaForBlockDiffusion:
    """A freshly initialised model (seed torch first for reproducibility)."""
    return DiffusionGemmaForBlockDiffusion(config)
