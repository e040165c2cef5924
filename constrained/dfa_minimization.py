"""Keeping a token automaton minimal: dead states cut, unreachable ones dropped, equivalent ones merged, classes
that became equal merged, and the states numbered breadth-first.

Why minimal: every set operation of the canvas lattice costs in proportion to the states (and their arcs), and
a byte-level determinization leaves many token-level twins (the same string tail reached through different
properties, say). Why breadth-first: numbered so, a state's neighbours get nearby numbers and their bitsets span
few machine words, which is what the lattice's set unions pay for.

Equal rows and columns are found through random linear hashes (:func:`signatures`) rather than by sorting
whole rows or columns: a round costs the live transitions, not the dense table.
"""

from __future__ import annotations

import numpy as np

from ._table_passes import column_signatures, relabel
from .token_dfa import DEAD, TokenDFA, incoming_edges


def trimmed(dfa: TokenDFA) -> TokenDFA:
    """The same automaton with every transition into or out of a state that cannot reach acceptance removed
    (in place), so that a canvas never offers a token after which the text can no longer be completed."""
    trim_table(dfa.table, dfa.accepting)
    return dfa


def trim_table(table: np.ndarray, accepting: np.ndarray) -> None:
    """:func:`trimmed` for a bare transition table (any alphabet), in place."""
    live = _live_states(table, accepting)
    table[~live] = DEAD
    table[np.isin(table, np.flatnonzero(~live))] = DEAD


def _live_states(table: np.ndarray, accepting: np.ndarray) -> np.ndarray:
    """States from which an accepting state is reachable: a backward search from the accepting states over
    the live transitions, each state expanded once (a scan of the whole table per round costs as many
    rounds as the longest path, which on a SQL automaton is hundreds)."""
    sources, _classes, _targets, offsets = incoming_edges(table)
    live = accepting.copy()
    frontier = np.flatnonzero(live)
    while len(frontier):
        starts, lengths = offsets[frontier], offsets[frontier + 1] - offsets[frontier]
        ends = np.cumsum(lengths)
        predecessors = sources[np.arange(ends[-1] if len(ends) else 0) - np.repeat(ends - lengths - starts, lengths)]
        frontier = np.unique(predecessors[~live[predecessors]])
        live[frontier] = True
    return live


def signatures(columns: tuple[np.ndarray, ...], n_states: int, seed: int) -> np.ndarray:
    """Two independent random linear hashes (128 bits) of each column of a transition table given as a list
    (``_table_passes.column_signatures``: per column, the sum over its kept entries of a random odd weight of
    the state times the next state + 1): ``[columns, 2]``. Equal columns get equal signatures and distinct
    ones collide with probability far below ``2**-100``, so sorting signatures stands in for sorting whole
    columns of ``S`` entries, and the dense table is never needed."""
    weights = np.random.default_rng(seed).integers(1, 2**63, size=(2, n_states), dtype=np.uint64) | np.uint64(1)
    signature = column_signatures(*columns, np.ascontiguousarray(weights.T))
    return np.frombuffer(signature, dtype=np.uint64).reshape(-1, 2)


def unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a 2-D integer array, as ``np.unique(rows, axis=0, return_index=True,
    return_inverse=True)`` gives them but for the order of the distinct rows (here: of a hash of them).

    Why not ``np.unique(axis=0)``: it sorts the rows as structured items, several times slower than sorting one
    64-bit key. The key mixes every column, so rows that tie on it are equal unless two hashes collide; when
    some do, a lexicographic sort of the whole rows decides instead.

    Returns:
        ``(first, inverse)``: the index of each distinct row's first occurrence, and each row's distinct row.
    """
    rows = rows.reshape(len(rows), -1)
    mixers = np.random.default_rng(0x50B7).integers(1, 2**63, size=rows.shape[1], dtype=np.uint64) | np.uint64(1)
    key = (rows.astype(np.uint64) * mixers).sum(axis=1, dtype=np.uint64)
    order = np.argsort(key, kind="stable")
    ordered = rows[order]
    differs = (ordered[1:] != ordered[:-1]).any(axis=1)
    if (differs & (key[order][1:] == key[order][:-1])).any():  # a collision: equal rows may not be adjacent
        order = np.lexsort(rows.T[::-1])
        ordered = rows[order]
        differs = (ordered[1:] != ordered[:-1]).any(axis=1)
    starts = np.concatenate([[True], differs]) if len(rows) else np.zeros(0, dtype=bool)
    inverse = np.empty(len(rows), dtype=np.int64)
    inverse[order] = np.cumsum(starts) - 1
    return order[starts], inverse


def _reachable_states(table: np.ndarray, initial: int) -> np.ndarray:
    """States reachable from ``initial`` (forward closure, one frontier at a time)."""
    reached = np.zeros(table.shape[0] + 1, dtype=bool)
    reached[DEAD] = True  # the extra last slot: DEAD never joins a frontier (table[DEAD] is a real row)
    frontier = np.array([initial])
    while len(frontier):
        reached[frontier] = True
        successors = np.unique(table[frontier])
        frontier = successors[~reached[successors]]
    return reached[:-1]


def _equivalent_states(table: np.ndarray, accepting: np.ndarray) -> np.ndarray:
    """Per state, its block of the coarsest partition where equivalent states share a future (Moore).

    Starting from accepting / not accepting, states are split while the blocks their classes lead to
    differ. Each round sums two independent random linear hashes (128 bits) of each row over its live
    transitions only (dead ones add nothing), so a round costs the transitions, not the table, and sorts
    three numbers per state rather than whole rows; a collision (merging two distinct rows) has
    probability far below ``2**-100`` per round.
    """
    n_states, n_classes = table.shape
    sources, classes = np.nonzero(table != DEAD)  # sorted by source
    targets = table[sources, classes]
    weights = np.random.default_rng(0xB10C).integers(1, 2**63, size=(n_classes, 2), dtype=np.uint64) | 1
    edge_weights = weights[classes]
    starts = np.searchsorted(sources, np.arange(n_states))
    with_edges = np.flatnonzero(np.diff(np.append(starts, len(sources))) > 0)
    blocks = accepting.astype(np.int64)
    count = len(np.unique(blocks))
    while True:
        sums = np.zeros((n_states, 2), dtype=np.uint64)
        if len(with_edges):
            terms = edge_weights * (blocks[targets] + 1).astype(np.uint64)[:, None]
            sums[with_edges] = np.add.reduceat(terms, starts[with_edges], axis=0)
        _, refined = unique_rows(np.column_stack([blocks.astype(np.uint64), sums]))
        refined_count = int(refined.max()) + 1
        if refined_count == count:
            return refined
        blocks, count = refined, refined_count


def _dense_column_signatures(table: np.ndarray) -> np.ndarray:
    """The signatures of the columns of a dense ``table``: merging its classes then sorts ``C`` pairs of
    numbers instead of ``C`` whole columns of ``S`` entries."""
    states, classes = (index.astype(np.int32) for index in np.nonzero(table != DEAD))
    n_states, n_classes = table.shape
    every_state, every_class = np.arange(n_states, dtype=np.int32), np.ones(n_classes, dtype=np.uint8)
    return signatures((states, classes, table[states, classes], every_state, every_class), n_states, 0xC01)


def minimal(dfa: TokenDFA) -> TokenDFA:
    """The minimal automaton of the same language: reachable states only, equivalent states merged, and
    classes merged where their columns became equal.

    Why: every set operation of the canvas lattice costs in proportion to the states (and their arcs), and
    the byte-level determinization leaves many token-level twins (the same string tail reached through
    different properties, say).
    """
    table, accepting, class_of_column = minimal_table(dfa.table, dfa.accepting, dfa.initial)
    return TokenDFA(table=table, token_class=class_of_column[dfa.token_class].astype(np.int32), accepting=accepting,
                    initial=0, end_class=int(class_of_column[dfa.end_class]))


def minimal_table(table: np.ndarray, accepting: np.ndarray, initial: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`minimal` for a bare transition table (any alphabet): ``(table, accepting, class_of_column)``, the
    initial state numbered 0, and each old column's column in the new table."""
    kept = np.flatnonzero(_reachable_states(table, initial))
    renumber = np.full(len(table), DEAD, dtype=np.int32)
    renumber[kept] = np.arange(len(kept))
    reached = table[kept]
    relabel(reached, renumber)  # in place: a SQL product's table holds tens of millions of cells
    blocks = _equivalent_states(reached, accepting[kept])
    _, representatives = np.unique(blocks, return_index=True)
    merged = reached[representatives]
    relabel(merged, blocks.astype(np.int32))
    first_column, class_of_column = unique_rows(_dense_column_signatures(merged))
    merged = merged[:, first_column]
    order = _breadth_first(merged, int(blocks[renumber[initial]]))
    merged = merged[order]
    relabel(merged, np.argsort(order).astype(np.int32))  # each old number to its new one
    return merged, accepting[kept][representatives][order], class_of_column


def _breadth_first(table: np.ndarray, initial: int) -> np.ndarray:
    """The states in breadth-first order from ``initial`` (every state must be reachable), a level at a time,
    each level in order of first appearance along its predecessors' rows.

    Why: numbered this way, a state's successors and predecessors lie close to it, so their bitsets span a
    few machine words instead of the whole set, which is what the canvas lattice's set unions pay for.
    """
    seen = np.zeros(table.shape[0] + 1, dtype=bool)
    seen[DEAD] = True  # the extra last slot: DEAD is never visited
    seen[initial] = True
    levels = [np.array([initial])]
    while len(levels[-1]):
        successors = table[levels[-1]].reshape(-1)
        successors = successors[~seen[successors]]
        _, first = np.unique(successors, return_index=True)
        level = successors[np.sort(first)]
        seen[level] = True
        levels.append(level)
    order = np.concatenate(levels)
    if len(order) != table.shape[0]:
        raise ValueError("every state must be reachable from the initial one")
    return order
