"""Fixtures shared by several test modules."""

from __future__ import annotations

import pytest
from transformers import PreTrainedTokenizerFast

from constrained.default_model import checkpoint_dir


@pytest.fixture(scope="session")
def tok() -> PreTrainedTokenizerFast:
    """The shipped checkpoint's tokenizer (the tests that need it skip before the first training run)."""
    path = checkpoint_dir() / "tokenizer.json"
    if not path.is_file():
        pytest.skip("no shipped checkpoint yet (python -m model.train)")
    return PreTrainedTokenizerFast.from_pretrained(str(checkpoint_dir()))
