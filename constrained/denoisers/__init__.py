"""Diffusion models behind one step-wise interface (:class:`~.base.Denoiser`), one adapter per model family."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import DenoiserError
from .base import Denoiser, Proposal
from .masked_lm import MaskedDiffusionDenoiser

if TYPE_CHECKING:
    from .diffusion_gemma import DiffusionGemmaDenoiser


#: Remote-code masked diffusion LMs (``model(input_ids).logits`` over a masked canvas) by ``config.model_type``,
#: and whether their logits are shifted: Dream keeps its autoregressive parent's "logits[i] predict token i+1".
SHIFTED_LOGITS = {"llada": False, "Dream": True}


def as_denoiser(model: Any, tokenizer: Any = None, **options: Any) -> Denoiser:
    """The adapter for ``model``: a ready :class:`Denoiser`, a DiffusionGemma, LLaDA, Dream, or any masked LM.

    ``options`` go to the adapter (``steps``, and ``canvas_length``/``threshold``/``temperature`` for masked
    models); ``None`` values are dropped so that each adapter keeps its own defaults.
    """
    options = {key: value for key, value in options.items() if value is not None}
    if isinstance(model, Denoiser):
        return model
    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) == "diffusion_gemma":
        from .diffusion_gemma import DiffusionGemmaDenoiser

        allowed = {"steps", "entropy_bound", "t_min", "t_max", "stability_threshold", "confidence_threshold"}
        unknown = set(options) - allowed
        if unknown:
            raise DenoiserError(f"DiffusionGemma does not take {sorted(unknown)}")
        return DiffusionGemmaDenoiser(model, **options)
    model_type = getattr(config, "model_type", None)
    if model_type in SHIFTED_LOGITS:
        options.setdefault("shifted", SHIFTED_LOGITS[model_type])
        return MaskedDiffusionDenoiser.from_masked_lm(model, tokenizer, **options)
    if type(model).__name__.endswith("ForMaskedLM"):
        return MaskedDiffusionDenoiser.from_masked_lm(model, tokenizer, **options)
    raise DenoiserError(
        f"{type(model).__name__} is neither a DiffusionGemmaForBlockDiffusion nor a *ForMaskedLM model; wrap a "
        "model returning [B, L, V] logits for a masked canvas in MaskedDiffusionDenoiser"
    )


def __getattr__(name: str) -> Any:
    """``DiffusionGemmaDenoiser`` on first use: its module imports transformers."""
    if name == "DiffusionGemmaDenoiser":
        from .diffusion_gemma import DiffusionGemmaDenoiser

        return DiffusionGemmaDenoiser
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Denoiser", "DiffusionGemmaDenoiser", "MaskedDiffusionDenoiser", "Proposal", "as_denoiser"]
