"""The product of two byte automata: the texts both accept, built over reachable state pairs only and kept
minimal, for constraints that are small as two automata but huge as one pattern."""

from __future__ import annotations

import numpy as np

from .byte_automaton import ByteAutomaton, minimal_byte_automaton
from .dfa_minimization import unique_rows
from .token_dfa import DEAD

#: Product states expanded per vectorized step of :func:`intersection` (bounds its scratch memory).
_PRODUCT_CHUNK = 256


def intersection(first: ByteAutomaton, second: ByteAutomaton) -> ByteAutomaton:
    """The minimal automaton of the texts both automata accept.

    Why: some constraints are far smaller as two automata than as one pattern. A SQL query must follow the
    grammar *and* keep word tokens apart; written as one regex, the second rule would copy the rest of the
    query once per kind of previous token. The product is built over reachable state pairs only, one
    frontier at a time, with byte classes refined to the pairs of classes that occur together. Why at byte
    level: its table has a column per byte class (tens), where a token automaton's has one per token class
    (hundreds), and the vocabulary is then walked once, through the product.

    Parameters:
        first, second: the two automata.

    Returns:
        The minimal automaton of their intersection (its start state may have no way out when it is empty).
    """
    both = np.column_stack([first.class_of_byte, second.class_of_byte]).astype(np.int64)
    pair_byte, class_of_byte = unique_rows(both)
    first_class, second_class = both[pair_byte, 0], both[pair_byte, 1]
    width = np.int64(len(second.table))
    known = np.array([first.start * width + second.start], dtype=np.int64)  # pair codes, sorted
    known_ids = np.array([0], dtype=np.int64)
    codes = [known[0]]
    rows: list[np.ndarray] = []
    frontier = known.copy()
    while len(frontier):
        targets = []
        for begin in range(0, len(frontier), _PRODUCT_CHUNK):
            chunk = frontier[begin:begin + _PRODUCT_CHUNK]
            a = first.table[chunk // width][:, first_class].astype(np.int64)
            b = second.table[chunk % width][:, second_class].astype(np.int64)
            targets.append(np.where((a == DEAD) | (b == DEAD), DEAD, a * width + b))
        level = np.concatenate(targets)
        reached = np.unique(level[level != DEAD])
        position = np.minimum(np.searchsorted(known, reached), len(known) - 1)
        fresh = reached[known[position] != reached]
        codes.extend(fresh.tolist())
        merged = np.concatenate([known, fresh])
        order = np.argsort(merged, kind="stable")
        known = merged[order]
        known_ids = np.concatenate([known_ids, np.arange(len(codes) - len(fresh), len(codes))])[order]
        live = level != DEAD
        ids = np.full(level.shape, DEAD, dtype=np.int32)
        ids[live] = known_ids[np.searchsorted(known, level[live])]
        rows.append(ids)
        frontier = fresh
    table = np.concatenate(rows)
    states = np.array(codes, dtype=np.int64)
    accepting = first.accepting[states // width] & second.accepting[states % width]
    return minimal_byte_automaton(table, class_of_byte, accepting, 0)
