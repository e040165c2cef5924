"""The token-level automaton of one (pattern, vocabulary) pair, compacted by token classes: the type.

What the canvas lattice needs of a pattern over a vocabulary, in a compact array form:

* the minimal automaton at token level: only states reachable from the start and from which acceptance is
  still reachable (live), equivalent states merged, plus ``DONE``, the state after the first end token
  (merged with any state that, like it, can only be followed by end tokens);
* tokens grouped into *classes* of identical behaviour in every state (all letter-only tokens inside a
  string, say): the table is ``[S, C]`` instead of ``[S, V]``, usually a few hundred columns rather than
  tens of thousands;
* end tokens (EOS, pad) form one class leading from accepting states to ``DONE`` and from ``DONE`` to itself,
  so a canvas can hold the text followed by padding, and nothing after the padding.

How one is made lives beside it, one job a module: :mod:`.byte_automaton` determinizes a pattern at byte level
(in C, or through outlines-core, whose transitions :mod:`.outlines_index` reads), :mod:`.dfa_intersection` combines two,
:mod:`.pattern_automaton` walks the vocabulary through the result, :mod:`.dfa_minimization` keeps each minimal,
:mod:`.bounded_child` bounds the build, and
:mod:`.token_dfa_build` serves it from the caches of :mod:`.token_dfa_cache` or builds it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

#: The target of a transition that breaks the pattern.
DEAD = -1


@dataclass(frozen=True)
class TokenDFA:
    """A deterministic automaton over token classes.

    ``table[q, c]`` is the state after a token of class ``c`` in state ``q`` (``DEAD`` if it breaks the
    pattern); ``token_class[t]`` maps a token id to its class; ``accepting[q]`` says a text may end in ``q``.
    """

    table: np.ndarray  # int32 [S, C]
    token_class: np.ndarray  # int32 [V]
    accepting: np.ndarray  # bool [S]
    initial: int
    end_class: int

    @cached_property
    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The live transitions as ``(source, token class, target)`` arrays sorted by target, and per state
        the offset of its incoming edges (``offsets[q]:offsets[q + 1]``). Tables are sparse (a few percent of
        ``table`` is live on a SQL automaton), so dynamic programmes over edges beat ones over the table."""
        return incoming_edges(self.table)

    @property
    def n_states(self) -> int:
        """States including ``DONE``."""
        return self.table.shape[0]

    @property
    def n_classes(self) -> int:
        return self.table.shape[1]

    @property
    def vocab_size(self) -> int:
        return self.token_class.shape[0]

    @property
    def nbytes(self) -> int:
        """The bytes its arrays hold (what an in-memory cache weighs it by)."""
        return self.table.nbytes + self.token_class.nbytes + self.accepting.nbytes

    def step(self, state: int, token_id: int) -> int:
        """The state after one token, or ``DEAD``."""
        return DEAD if state == DEAD else int(self.table[state, self.token_class[token_id]])

    def walk(self, token_ids: list[int], state: int | None = None) -> int:
        """The state after a token sequence, or ``DEAD`` as soon as it leaves the language."""
        state = self.initial if state is None else state
        for token_id in token_ids:
            state = self.step(state, token_id)
            if state == DEAD:
                break
        return state

    def save(self, path: Path) -> None:
        """Only the live transitions are written: a few percent of a SQL automaton's table."""
        self.live().save(path)

    @classmethod
    def load(cls, path: Path) -> TokenDFA:
        return LiveTokenDFA.load(path).dense()

    def __reduce__(self) -> tuple:
        """Pickled in its live form too: copying a SQL automaton's whole table through a pipe costs more than
        finding its live cells."""
        return LiveTokenDFA.dense, (self.live(),)

    def live(self) -> LiveTokenDFA:
        """The same automaton as its live transitions."""
        states, classes = np.nonzero(self.table != DEAD)
        return LiveTokenDFA(states.astype(np.int32), classes.astype(np.int32), self.table[states, classes],
                            self.token_class, self.accepting, self.initial, self.end_class, *self.table.shape)


@dataclass(frozen=True)
class LiveTokenDFA:
    """A :class:`TokenDFA` as its live transitions: ``table[states[i], classes[i]] == targets[i]`` (in no
    particular order), every other cell ``DEAD``.

    Why a form of its own: a build makes the automaton in a child process and hands it back through a pipe, then
    writes it to disk; a SQL automaton's dense table is hundreds of megabytes of which a few percent is live, so
    the build never makes that table, and only the process that uses the automaton does (:meth:`dense`).
    """

    states: np.ndarray  # int32 [transitions]
    classes: np.ndarray  # int32 [transitions]
    targets: np.ndarray  # int32 [transitions]
    token_class: np.ndarray  # int32 [V]
    accepting: np.ndarray  # bool [S]
    initial: int
    end_class: int
    n_states: int
    n_classes: int

    def dense(self) -> TokenDFA:
        """The automaton with its dense table."""
        table = np.full((self.n_states, self.n_classes), DEAD, dtype=np.int32)
        table[self.states, self.classes] = self.targets
        return TokenDFA(table, self.token_class, self.accepting, self.initial, self.end_class)

    def save(self, path: Path) -> None:
        """Write it to ``path`` (``.npz``), atomically: a reader finds the whole file or none."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        scalars = np.array([self.initial, self.end_class, self.n_states, self.n_classes])
        np.savez(tmp, states=self.states, classes=self.classes, targets=self.targets, token_class=self.token_class,
                 accepting=self.accepting, scalars=scalars)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> LiveTokenDFA:
        with np.load(path) as data:
            initial, end_class, n_states, n_classes = (int(x) for x in data["scalars"])
            return cls(data["states"], data["classes"], data["targets"], data["token_class"], data["accepting"],
                       initial, end_class, n_states, n_classes)


def incoming_edges(table: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The live transitions of ``table`` as ``(source, class, target)`` sorted by target, and per state the
    offset of its incoming ones (``offsets[q]:offsets[q + 1]``)."""
    sources, classes = np.nonzero(table != DEAD)
    targets = table[sources, classes].astype(np.int64)
    order = np.argsort(targets, kind="stable")
    offsets = np.searchsorted(targets[order], np.arange(table.shape[0] + 1))
    return sources[order], classes[order], targets[order], offsets
