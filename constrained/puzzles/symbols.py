"""Which token of a tokenizer spells each puzzle symbol: the bridge between cells and a model's vocabulary."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from constrained.errors import VocabularyError


@dataclass(frozen=True)
class SymbolVocabulary:
    """``token_ids[v - 1]`` is the token that writes value ``v``; ``vocab_size`` is the width of a logit row."""

    symbols: tuple[str, ...]
    token_ids: tuple[int, ...]
    vocab_size: int

    def __post_init__(self) -> None:
        if len(set(self.token_ids)) != len(self.token_ids):
            raise VocabularyError(f"two puzzle symbols share a token: {dict(zip(self.symbols, self.token_ids))}")
        if any(not 0 <= t < self.vocab_size for t in self.token_ids):
            raise VocabularyError(f"token ids {self.token_ids} fall outside a vocabulary of {self.vocab_size}")

    @classmethod
    def plain(cls, symbols: Sequence[str]) -> SymbolVocabulary:
        """A vocabulary of just the symbols, ids ``0..n-1``: for tests and model-free baselines."""
        return cls(tuple(symbols), tuple(range(len(symbols))), len(symbols))

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, symbols: Sequence[str]) -> SymbolVocabulary:
        """Look each symbol up as a single token of ``tokenizer``.

        ``tokenizer``: a Hugging Face tokenizer, or a plain ``{token_string: id}`` dict. A symbol that is not
        one token (absent, or encoded as several) raises VocabularyError naming it: a cell must be one canvas
        position.
        """
        if isinstance(tokenizer, Mapping):
            vocab: Mapping[str, int] = tokenizer
            size = max(vocab.values()) + 1 if vocab else 0
            ids = []
            for symbol in symbols:
                if symbol not in vocab:
                    raise VocabularyError(f"symbol {symbol!r} is not a token of the given vocabulary")
                ids.append(vocab[symbol])
            return cls(tuple(symbols), tuple(ids), size)
        try:
            vocab = tokenizer.get_vocab()
            size = len(tokenizer)
        except AttributeError as exc:
            raise VocabularyError(f"cannot read a vocabulary from {type(tokenizer).__name__}: {exc}") from exc
        ids = []
        for symbol in symbols:
            token_id = vocab.get(symbol)
            if token_id is None:
                encoded = tokenizer.encode(symbol, add_special_tokens=False)
                if len(encoded) != 1 or tokenizer.decode(encoded).strip() != symbol:
                    raise VocabularyError(
                        f"symbol {symbol!r} is not a single token of this tokenizer (encodes as {encoded})"
                    )
                token_id = encoded[0]
            ids.append(int(token_id))
        return cls(tuple(symbols), tuple(ids), max(size, max(ids) + 1))

    def value_of(self, token_id: int) -> int:
        """The value a token writes; VocabularyError for a token that is not a puzzle symbol."""
        try:
            return self.token_ids.index(token_id) + 1
        except ValueError:
            raise VocabularyError(f"token {token_id} does not write any of the symbols {self.symbols}") from None
