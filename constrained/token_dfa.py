"""The token-level automaton of one (pattern, vocabulary) pair, compacted by token classes: the type.

What the canvas lattice needs of a pattern over a vocabulary, in a compact array form:

* the minimal automaton at token level: only states reachable from the start and from which acceptance is
  still reachable (live), equivalent states merged, plus ``DONE``, the state after the first end token
  (merged with any state that, like it, can only be followed by end tokens);
* tokens grouped into *classes* of identical behaviour in every state (all letter-only tokens inside a
  string, say): a state's transitions are by class, usually a few hundred of them rather than tens of
  thousands of tokens;
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
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path

import numpy as np

#: The target of a transition that breaks the pattern.
DEAD = -1


@dataclass(frozen=True)
class TokenDFA:
    """A deterministic automaton over token classes, held as its live transitions.

    ``states[i]`` leads by a token of class ``classes[i]`` to ``targets[i]``; every other (state, class) pair is
    ``DEAD`` (breaks the pattern). The transitions are kept sorted by state, then class (given in any order,
    they are sorted when the automaton is made), so state ``q``'s are ``offsets[q]:offsets[q + 1]``.
    ``token_class[t]`` maps a token id to its class; ``accepting[q]`` says a text may end in ``q``.

    Why not a dense ``[states, classes]`` table: on a SQL automaton (tens of thousands of states, hundreds of
    classes) it is hundreds of megabytes of which a few percent is live, and making it (first touching that
    much fresh memory) and reading it whole cost more than everything else a bind does. Every user works from
    the transitions; :attr:`table` makes the dense form on demand for those that want one (small automata,
    tests).
    """

    states: np.ndarray  # int32 [transitions], ascending
    classes: np.ndarray  # int32 [transitions], ascending within a state
    targets: np.ndarray  # int32 [transitions]
    token_class: np.ndarray  # int32 [V]
    accepting: np.ndarray  # bool [S]
    initial: int
    end_class: int
    n_states: int  # including DONE
    n_classes: int

    def __post_init__(self) -> None:
        key = self.states.astype(np.int64) * self.n_classes + self.classes
        if not (key[1:] > key[:-1]).all():  # a build's order: put in order once, here
            order = np.argsort(key, kind="stable")
            for name in ("states", "classes", "targets"):
                object.__setattr__(self, name, getattr(self, name)[order])

    @cached_property
    def offsets(self) -> np.ndarray:
        """Where each state's transitions start: state ``q``'s are ``offsets[q]:offsets[q + 1]``, int32 ``[S + 1]``."""
        return np.searchsorted(self.states, np.arange(self.n_states + 1, dtype=np.int32)).astype(np.int32)

    @cached_property
    def table(self) -> np.ndarray:
        """The dense table, int32 ``[S, C]``: ``table[q, c]`` is the state after a token of class ``c`` in ``q``
        (``DEAD`` if none). Made on first use and kept: only for small automata and tests (see the class)."""
        table = np.full((self.n_states, self.n_classes), DEAD, dtype=np.int32)
        table[self.states, self.classes] = self.targets
        return table

    @cached_property
    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The live transitions as ``(source, token class, target)`` arrays sorted by target (then source and
        class), and per state the offset of its incoming edges (``offsets[q]:offsets[q + 1]``): what dynamic
        programmes over the automaton walk backwards."""
        order = np.argsort(self.targets, kind="stable")
        targets = self.targets[order].astype(np.int64)
        offsets = np.searchsorted(targets, np.arange(self.n_states + 1))
        return self.states[order].astype(np.int64), self.classes[order].astype(np.int64), targets, offsets

    @property
    def vocab_size(self) -> int:
        return self.token_class.shape[0]

    @property
    def nbytes(self) -> int:
        """The bytes its arrays hold once in use (what an in-memory cache weighs it by): its fields, and the
        :attr:`edges` and :attr:`offsets` that decodes and steps make on first use and keep (the edges alone are
        larger than the fields); not the :attr:`table` that only tests and small automata ask for."""
        fields_bytes = sum(getattr(self, name).nbytes
                           for name in ("states", "classes", "targets", "token_class", "accepting"))
        edges_bytes = 3 * 8 * len(self.targets) + 8 * (self.n_states + 1)
        return fields_bytes + edges_bytes + 4 * (self.n_states + 1)

    def step(self, state: int, token_id: int) -> int:
        """The state after one token, or ``DEAD``: a binary search of the state's transitions."""
        if state == DEAD:
            return DEAD
        first, end = int(self.offsets[state]), int(self.offsets[state + 1])
        token_class = self.token_class[token_id]
        at = first + int(np.searchsorted(self.classes[first:end], token_class))
        return int(self.targets[at]) if at < end and self.classes[at] == token_class else DEAD

    def walk(self, token_ids: list[int], state: int | None = None) -> int:
        """The state after a token sequence, or ``DEAD`` as soon as it leaves the language."""
        state = self.initial if state is None else state
        for token_id in token_ids:
            state = self.step(state, token_id)
            if state == DEAD:
                break
        return state

    def save(self, path: Path) -> None:
        """Write it to ``path`` (``.npz``), atomically: a reader finds the whole file or none."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        scalars = np.array([self.initial, self.end_class, self.n_states, self.n_classes])
        np.savez(tmp, states=self.states, classes=self.classes, targets=self.targets, token_class=self.token_class,
                 accepting=self.accepting, scalars=scalars)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> TokenDFA:
        with np.load(path) as data:
            initial, end_class, n_states, n_classes = (int(x) for x in data["scalars"])
            return cls(data["states"], data["classes"], data["targets"], data["token_class"], data["accepting"],
                       initial, end_class, n_states, n_classes)

    def __reduce__(self) -> tuple:
        """Its fields alone: what :attr:`table`, :attr:`offsets` and :attr:`edges` hold is made again where needed
        (a build's child hands the automaton back through a pipe)."""
        return TokenDFA, tuple(getattr(self, field.name) for field in fields(self))
