"""The built-in denoiser's size: a configuration of the real DiffusionGemma architecture, only small.

The architecture itself (transformers' ``DiffusionGemmaForBlockDiffusion`` unchanged: causal encoder filling a KV
cache from the prompt, bidirectional decoder denoising a canvas against it, self-conditioning, MoE beside the dense
MLP, logit soft-capping) is stated once, in :func:`constrained.testing.diffusion_gemma_config`; this module only
chooses its sizes, so every code path the 26B model takes is exercised by the built-in denoiser.
"""

from __future__ import annotations

from transformers import DiffusionGemmaConfig, DiffusionGemmaForBlockDiffusion

from constrained.testing import diffusion_gemma_config

CANVAS_LENGTH = 96  # one canvas holds a whole Sudoku solution (81 digits + <eos>) and most JSON/SQL answers
HIDDEN = 256
HEAD_DIM = 64
# The size a GPU run trains (model.build_bundle --size gpu): about 2.9 times the CPU-trained one, the largest of
# this shape whose half-precision checkpoint stays under the 30 MB the package may ship.
GPU_SIZE = {"hidden": 384, "layers": 6, "heads": 6}


def tiny_config(
    vocab_size: int,
    *,
    pad_id: int,
    eos_id: int,
    bos_id: int,
    canvas_length: int = CANVAS_LENGTH,
    hidden: int = HIDDEN,
    layers: int = 4,
    heads: int = 4,
) -> DiffusionGemmaConfig:
    """About 4.6 M parameters by default: 4 layers of width 256, 4 query / 2 KV heads of 64, 2 experts (top-1).

    ``hidden``, ``layers`` and ``heads`` (query heads; half as many KV heads) grow it (:data:`GPU_SIZE`: about
    13 M parameters with a 4,096-token vocabulary) or shrink it for fast tests of the recipe.
    """
    return diffusion_gemma_config(
        vocab_size, canvas_length=canvas_length, hidden_size=hidden, layers=layers, heads=heads,
        kv_heads=max(1, heads // 2),
        head_dim=HEAD_DIM, moe_size=hidden // 2, sliding_window=512, max_positions=2048,
        special_ids=(pad_id, eos_id, bos_id),
    )


def build(config: DiffusionGemmaConfig) -> DiffusionGemmaForBlockDiffusion:
    """A freshly initialised model (seed torch first for reproducibility)."""
    return DiffusionGemmaForBlockDiffusion(config)
