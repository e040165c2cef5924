"""The product of two token automata: the texts both accept, built over reachable state pairs only and kept
minimal, for constraints that are small as two automata but huge as one pattern."""

from __future__ import annotations

import numpy as np

from .dfa_minimization import minimal, trimmed, unique_rows
from .token_dfa import DEAD, TokenDFA

#: Product states expanded per vectorized step of :func:`intersection` (bounds its scratch memory).
_PRODUCT_CHUNK = 256


def intersection(first: TokenDFA, second: TokenDFA) -> TokenDFA:
    """The minimal automaton of the texts both automata accept (both over the same vocabulary).

    Why: some constraints are far smaller as two automata than as one pattern. A SQL query must follow the
    grammar *and* keep word tokens apart; written as one regex, the second rule would copy the rest of the
    query once per kind of previous token. The product is built over reachable state pairs only, one
    frontier at a time, with token classes refined to the pairs of classes that occur together.

    Parameters:
        first, second: automata over the same vocabulary, with the same end tokens.

    Returns:
        The minimal automaton of their intersection (its initial state may have no way out when it is empty).
    """
    both = np.column_stack([first.token_class, second.token_class])
    pair_token, token_class = unique_rows(both)
    token_class = token_class.astype(np.int32)
    first_class, second_class = both[pair_token, 0], both[pair_token, 1]
    width = np.int64(second.n_states)
    known = np.array([first.initial * width + second.initial], dtype=np.int64)  # pair codes, sorted
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
    end_class = int(token_class[np.flatnonzero(first.token_class == first.end_class)[0]])
    return minimal(trimmed(TokenDFA(table, token_class, accepting, 0, end_class)))
