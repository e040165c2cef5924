"""The built-in denoiser that ``model=None`` means everywhere in the public API.

A small DiffusionGemma trained by ``python -m model.train`` on synthetic JSON extraction, text-to-SQL and Sudoku
data, shipped inside the package (``model/checkpoint``), so the package works on a machine with no network and no
model hub. The prompt/canvas convention it was trained on is documented in :mod:`model.blocks`: context =
``<bos>`` + prompt (from :mod:`constrained.prompts`), answer = text then ``<eos>`` filling the rest of the canvas,
canvas length ``model.config.canvas_length``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from constrained.errors import DenoiserError

REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json")


def checkpoint_dir() -> Path:
    """Where the shipped checkpoint lives, found from the installed ``model`` package (works without editable install)."""
    import model.checkpoint

    return Path(model.checkpoint.__file__).resolve().parent


@lru_cache(maxsize=1)
def load_default():
    """``(model, tokenizer)`` of the built-in denoiser, on CPU in eval mode; loaded once per process.

    Raises :class:`DenoiserError` when the checkpoint is missing or incomplete (run ``python -m model.train``).
    """
    try:
        directory = checkpoint_dir()
    except ImportError as exc:  # the ``model`` package itself is absent
        raise DenoiserError(f"the built-in denoiser's package 'model' is not installed: {exc}") from exc
    return load(directory)


def load(directory: Path):
    """``(model, tokenizer)`` from a checkpoint directory written by ``python -m model.train``, offline."""
    from transformers import DiffusionGemmaForBlockDiffusion, PreTrainedTokenizerFast
    from transformers.utils import logging as hf_logging

    directory = Path(directory)
    missing = [name for name in REQUIRED_FILES if not (directory / name).is_file()]
    if missing:
        raise DenoiserError(
            f"the built-in denoiser checkpoint in {directory} lacks {', '.join(missing)}; "
            "rebuild it with `python -m model.train`"
        )
    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Loading weights" bar in the CLI's output
    try:
        model = DiffusionGemmaForBlockDiffusion.from_pretrained(str(directory), local_files_only=True)
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
    model.eval()
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(directory), local_files_only=True)
    return model, tokenizer
