"""The built-in denoiser that ``model=None`` means everywhere in the public API.

A small DiffusionGemma trained by the repository's training recipe (``python -m model.train``, a development tool
that is not installed) on synthetic JSON extraction, text-to-SQL and Sudoku data, shipped inside this package
(``constrained/checkpoint``), so the package works on a machine with no network and no model hub. The convention
it was trained on: context = :func:`constrained.prompts.prompt_ids` of a prompt from :mod:`constrained.prompts`,
answer = text then ``<eos>`` filling the rest of the canvas, canvas length ``model.config.canvas_length``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from .errors import DenoiserError

REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json")
#: Held while any checkpoint loads. Neither transformers' lazy import of a model class nor its ``from_pretrained`` is
#: thread-safe (the latter patches torch's module constructors to build on the meta device and restores them
#: after, so two loads at once can restore each other's patch and leave later models on the meta device).
_LOAD_LOCK = threading.RLock()
_default: tuple[Any, Any] | None = None


def checkpoint_dir() -> Path:
    """Where the shipped checkpoint lives: ``checkpoint/`` beside this module, in a checkout or site-packages."""
    return Path(__file__).resolve().parent / "checkpoint"


def load_default() -> tuple[Any, Any]:
    """``(model, tokenizer)`` of the built-in denoiser, on CPU in eval mode; loaded once per process.

    Safe from any number of threads: the first caller loads while the others wait for its result. A failed load
    is not remembered, so the next call tries again.

    Raises:
        DenoiserError: the checkpoint is missing or incomplete.
    """
    global _default
    loaded = _default
    if loaded is None:
        with _LOAD_LOCK:
            if _default is None:
                _default = load(checkpoint_dir())
            loaded = _default
    return loaded


def forget_default() -> None:
    """Drop the loaded built-in denoiser, so that the next :func:`load_default` loads it again."""
    global _default
    with _LOAD_LOCK:
        _default = None


def resolve(model: Any, tokenizer: Any) -> tuple[Any, Any]:
    """The ``(model, tokenizer)`` a call runs with: what ``model=None`` means, in the one place it is decided.

    Parameters:
        model: the caller's model, or ``None`` for the built-in one (:func:`load_default`).
        tokenizer: the model's tokenizer; with ``model=None`` it may be ``None`` (the built-in model's own).

    Returns:
        ``(model, tokenizer)``, neither of them ``None``.

    Raises:
        DenoiserError: an explicit model came without its tokenizer (constraints and prompts are spelled in
            its vocabulary, so it cannot be guessed), or the built-in checkpoint is missing.
    """
    if model is None:
        model, default_tokenizer = load_default()
        return model, tokenizer if tokenizer is not None else default_tokenizer
    if tokenizer is None:
        raise DenoiserError("a model needs its tokenizer: pass tokenizer= with model=")
    return model, tokenizer


def load(directory: Path | str) -> tuple[Any, Any]:
    """``(model, tokenizer)`` from a DiffusionGemma checkpoint directory (the built-in one's layout), offline.

    The model is in float32 whatever the checkpoint stores: half-precision weights (which keep a larger model's
    file small) are widened as they load, since half-precision arithmetic on a CPU is slow or missing.

    Loads run one at a time, whatever the thread (:data:`_LOAD_LOCK`).

    Raises:
        DenoiserError: a file the checkpoint needs is missing.
    """
    directory = Path(directory)
    missing = [name for name in REQUIRED_FILES if not (directory / name).is_file()]
    if missing:
        raise DenoiserError(
            f"the DiffusionGemma checkpoint in {directory} lacks {', '.join(missing)} "
            "(the built-in one is rebuilt by the repository's `python -m model.train`)"
        )
    with _LOAD_LOCK:  # the first import too: transformers' lazy module fails on names imported from two threads
        import torch
        from transformers import DiffusionGemmaForBlockDiffusion, PreTrainedTokenizerFast
        from transformers.utils import logging as hf_logging

        bars_were_on = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # no "Loading weights" bar in the CLI's output
        try:
            model = DiffusionGemmaForBlockDiffusion.from_pretrained(
                str(directory), local_files_only=True, dtype=torch.float32
            )
        finally:
            if bars_were_on:
                hf_logging.enable_progress_bar()
        model.eval()
        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(directory), local_files_only=True)
    return model, tokenizer
