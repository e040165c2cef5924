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


@pytest.fixture
def one_torch_thread():
    """Tiny tensors on a shared machine: more threads only spin against the other jobs (25x slower seen)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
