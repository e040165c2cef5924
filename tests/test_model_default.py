"""The shipped checkpoint: present, small, loads offline through ``load_default()``, and runs on CPU."""

from __future__ import annotations

import json

import pytest
import torch

from constrained import default_model
from constrained.errors import ConstrainedError, DenoiserError
from constrained.prompts import prompt_ids, sudoku_prompt

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py

MAX_BYTES = 30 * 1024 * 1024


def test_checkpoint_files_are_shipped_and_small():
    directory = default_model.checkpoint_dir()
    for name in default_model.REQUIRED_FILES:
        assert (directory / name).is_file(), name
    total = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
    assert total <= MAX_BYTES, f"checkpoint is {total / 2**20:.1f} MiB"


def test_load_default_is_cached_and_in_eval_mode():
    model, tokenizer = default_model.load_default()
    assert default_model.load_default()[0] is model
    assert not model.training
    assert model.config.text_config.vocab_size == len(tokenizer)
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id


def test_config_is_the_tiny_text_model():
    model, _ = default_model.load_default()
    params = sum(p.numel() for p in model.parameters())
    vision = sum(p.numel() for n, p in model.named_parameters() if "vision" in n)
    assert params < 10_000_000
    assert vision < 10_000  # the architecture always builds a vision tower; ours is a stub
    assert model.config.canvas_length == 96


def test_forward_pass_gives_finite_canvas_logits():
    model, tokenizer = default_model.load_default()
    context = torch.tensor([prompt_ids(tokenizer, sudoku_prompt("." * 81))])
    generator = torch.Generator().manual_seed(0)
    canvas = torch.randint(0, len(tokenizer), (1, model.config.canvas_length), generator=generator)
    with torch.no_grad():
        logits = model(input_ids=context, decoder_input_ids=canvas).logits
    assert logits.shape == (1, model.config.canvas_length, len(tokenizer))
    assert torch.isfinite(logits).all()


def test_model_none_means_the_built_in_model_everywhere():
    """One rule for every entry point: ``model=None`` is the built-in model, with its tokenizer unless one is given;
    an explicit model must bring its tokenizer."""
    import constrained
    from constrained.puzzles.sudoku import parse_sudoku, sudoku_scorer
    from constrained.testing import byte_tokenizer

    model, tokenizer = default_model.load_default()
    assert default_model.resolve(None, None) == (model, tokenizer)
    other = byte_tokenizer()
    assert default_model.resolve(None, other) == (model, other)
    assert default_model.resolve(model, other) == (model, other)
    entry_points = [
        lambda: default_model.resolve(model, None),
        lambda: constrained.generate(None, "x", model=model),
        lambda: constrained.generate_sql("how many?", "CREATE TABLE t (a INTEGER);", model=model),
        lambda: constrained.solve_sudoku("." * 81, model=model),
        lambda: sudoku_scorer(parse_sudoku("." * 81), model=model),
    ]
    for call in entry_points:
        with pytest.raises(DenoiserError, match="pass tokenizer= with model="):
            call()


def test_training_record_shows_the_loss_went_down():
    record = json.loads((default_model.checkpoint_dir() / "training.json").read_text())
    last = record["history"][-1]["loss"]
    while record.get("resumed_from"):  # a continued run records the run it started from
        record = record["resumed_from"]
    first = record["history"][0]["loss"]
    assert last < 0.5 * first


def test_missing_checkpoint_raises_a_typed_error(tmp_path, monkeypatch):
    monkeypatch.setattr(default_model, "checkpoint_dir", lambda: tmp_path)
    default_model.forget_default()
    try:
        with pytest.raises(DenoiserError, match="model.train") as info:
            default_model.load_default()
        assert isinstance(info.value, ConstrainedError)
    finally:
        monkeypatch.undo()
        default_model.forget_default()


def test_shipped_generation_config_matches_the_recipe():
    """The checkpoint's sampler settings are the ones the training recipe writes, so retraining keeps them."""
    from model.objective import generation_config

    model, tokenizer = default_model.load_default()
    recipe = generation_config(tokenizer, model.config.canvas_length)
    shipped = model.generation_config
    for name in ("t_min", "t_max", "max_denoising_steps", "stability_threshold", "confidence_threshold",
                 "max_new_tokens", "eos_token_id", "pad_token_id"):
        assert getattr(shipped, name) == getattr(recipe, name), name
    assert shipped.sampler_config.entropy_bound == recipe.sampler_config.entropy_bound
