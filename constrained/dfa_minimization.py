"""Keeping a token automaton minimal: dead states cut, unreachable ones dropped, equivalent ones merged, classes
that became equal merged, and the states numbered breadth-first.

Why minimal: every set operation of the canvas lattice costs in proportion to the states (and their arcs), and
a byte-level determinization leaves many token-level twins (the same string tail reached through different
properties, say). Why breadth-first: numbered so, a state's neighbours get nearby numbers and their bitsets span
few machine words, which is what the lattice's set unions pay for.

Equal columns are found through random linear hashes (:func:`signatures`) rather than by sorting whole
columns, and equivalent states by rounds over the live transitions in C: either costs the live transitions,
not the dense table.
"""

from __future__ import annotations

import functools

import numpy as np

from ._table_passes import breadth_first, coarsest_blocks, column_signatures, distinct_rows
from ._table_passes import live_states as _live_states
from .token_dfa import DEAD


def trim_table(table: np.ndarray, accepting: np.ndarray) -> None:
    """Remove every transition into or out of a state that cannot reach acceptance (in place), so that a canvas
    never offers a token after which the text can no longer be completed."""
    sources, classes = np.nonzero(table != DEAD)
    live = live_states(sources, table[sources, classes], accepting)
    if not live.all():
        table[~live] = DEAD
        table[np.isin(table, np.flatnonzero(~live))] = DEAD


def trimmed_transitions(sources: np.ndarray, classes: np.ndarray, targets: np.ndarray, accepting: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`trim_table` for a list of transitions: those between states that can reach acceptance, in their
    order."""
    live = live_states(sources, targets, accepting)
    keep = live[sources] & live[targets]
    return sources[keep], classes[keep], targets[keep]


def live_states(sources: np.ndarray, targets: np.ndarray, accepting: np.ndarray) -> np.ndarray:
    """States from which an accepting state is reachable over the transitions ``sources -> targets``: a backward
    search from the accepting states, each state expanded once (a scan of the whole table per round costs as
    many rounds as the longest path, which on a SQL automaton is hundreds), in C (``_table_passes.live_states``:
    numpy made a dozen calls per backward step)."""
    live = _live_states(sources.astype(np.int32, copy=False), targets.astype(np.int32, copy=False),
                        accepting.astype(np.uint8, copy=False))
    return np.frombuffer(live, dtype=bool).copy()


def signatures(columns: tuple[np.ndarray, ...], n_states: int, seed: int) -> np.ndarray:
    """Two independent random linear hashes (128 bits) of each column of a transition table given as a list
    (``_table_passes.column_signatures``: per column, the sum over its kept entries of a random odd weight of
    the state times the next state + 1): ``[columns, 2]``. Equal columns get equal signatures and distinct
    ones collide with probability far below ``2**-100``, so sorting signatures stands in for sorting whole
    columns of ``S`` entries, and the dense table is never needed."""
    weights = np.random.default_rng(seed).integers(1, 2**63, size=(2, n_states), dtype=np.uint64) | np.uint64(1)
    signature = column_signatures(*columns, np.ascontiguousarray(weights.T))
    return np.frombuffer(signature, dtype=np.uint64).reshape(-1, 2)


@functools.cache
def row_mixers(width: int) -> np.ndarray:
    """The random odd multipliers whose sum over a row's columns keys the order of :func:`unique_rows`."""
    return np.random.default_rng(0x50B7).integers(1, 2**63, size=width, dtype=np.uint64) | np.uint64(1)


def unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a 2-D integer array, as ``np.unique(rows, axis=0, return_index=True,
    return_inverse=True)`` gives them but for the order of the distinct rows (here: of a hash of them).

    Why not ``np.unique(axis=0)``: it sorts the rows as structured items, and even a sort of one 64-bit key per
    row costs several times the one pass with a hash table of the rows (``_table_passes.distinct_rows``, in C, the
    rows compared exactly) that finds them here. Only the distinct rows are then sorted, by a key that mixes every
    column (or, where two distinct rows tie on it, lexicographically): the order the classes and states of an
    automaton are numbered in, kept from the sort of every row that this replaces, so that automata stay the
    same bit for bit.

    Returns:
        ``(first, inverse)``: the index of each distinct row's first occurrence, and each row's distinct row.
    """
    rows = rows[:, None] if rows.ndim == 1 else rows
    found_first, found_inverse = distinct_rows(np.ascontiguousarray(rows, dtype=np.uint64), rows.shape[1])
    first, inverse = np.frombuffer(found_first, dtype=np.int64), np.frombuffer(found_inverse, dtype=np.int64)
    distinct = rows[first]
    key = (distinct.astype(np.uint64) * row_mixers(rows.shape[1])).sum(axis=1, dtype=np.uint64)
    order = np.argsort(key)
    if (key[order][1:] == key[order][:-1]).any():  # distinct rows whose keys collide
        order = np.lexsort(distinct.T[::-1])
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return first[order], rank[inverse]


def minimal_table(table: np.ndarray, accepting: np.ndarray, initial: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The minimal automaton of the same language as a transition table: reachable states only, equivalent states
    merged, and columns merged where they became equal; ``(table, accepting, class_of_column)``, the initial
    state numbered 0, and each old column's column in the new table."""
    sources, classes = np.nonzero(table != DEAD)  # sorted by state, then class: the rows as they read
    minimized = minimal_transitions(sources, classes, table[sources, classes], table.shape[1], accepting, initial)
    sources, classes, targets, accepting, class_of_column = minimized
    merged = np.full((len(accepting), int(class_of_column.max(initial=-1)) + 1), DEAD, dtype=np.int32)
    merged[sources, classes] = targets
    return merged, accepting, class_of_column


def minimal_transitions(sources: np.ndarray, classes: np.ndarray, targets: np.ndarray, n_classes: int,
                        accepting: np.ndarray, initial: int, distinct: np.ndarray | None = None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`minimal_table` for the live transitions of a table of ``len(accepting)`` states and ``n_classes``
    columns, given sorted by state, then class: ``(sources, classes, targets, accepting, class_of_column)`` of
    the minimal one (its transitions in no particular order; its columns those ``class_of_column`` maps to).

    ``distinct``, when given, is a partition of the states (an id per state) that the caller knows no finer than
    the equivalence: states it puts apart are never equivalent, and it keeps accepting states apart from the
    others. The equivalent states are then found from it rather than from accepting / not accepting, in as many
    rounds as it lacks (where it is the equivalence itself, one round confirms it). A partition that put
    equivalent states apart would leave them unmerged: the language would stay, the automaton not be minimal.

    Why over the live transitions: a SQL automaton's table is tens of millions of cells of which a few percent
    are live. Every step (reachable states, merged states, merged columns, the breadth-first order) costs the
    transitions, and a dense table is written only by whoever needs one.
    """
    n_states = len(accepting)
    targets = targets.astype(np.int64)
    reached = np.zeros(n_states, dtype=bool)
    reached[_breadth_first(sources, targets, n_states, initial)] = True
    kept = np.flatnonzero(reached)
    renumber = np.full(n_states, DEAD, dtype=np.int64)
    renumber[kept] = np.arange(len(kept))
    from_kept = reached[sources]
    sources, classes, targets = renumber[sources[from_kept]], classes[from_kept], renumber[targets[from_kept]]
    blocks = _equivalent_states(sources, classes, targets, accepting[kept] if distinct is None else distinct[kept])
    _, representatives = np.unique(blocks, return_index=True)
    from_representative = np.zeros(len(kept), dtype=bool)
    from_representative[representatives] = True
    keep = from_representative[sources]
    sources, classes, targets = blocks[sources[keep]], classes[keep], blocks[targets[keep]]
    n_blocks = len(representatives)
    columns = (sources.astype(np.int32), classes.astype(np.int32), targets.astype(np.int32),
               np.arange(n_blocks, dtype=np.int32), np.ones(n_classes, dtype=np.uint8))
    first_column, class_of_column = unique_rows(signatures(columns, n_blocks, 0xC01))
    columns_kept = np.zeros(n_classes, dtype=bool)
    columns_kept[first_column] = True
    keep = columns_kept[classes]  # a merged column's transitions are its first member's
    sources, classes, targets = sources[keep], class_of_column[classes[keep]], targets[keep]
    row_and_class = sources.astype(np.int64) * len(first_column) + classes
    if not (row_and_class[1:] > row_and_class[:-1]).all():  # merged states or columns may have moved them
        by_row = np.argsort(row_and_class, kind="stable")  # on runs already in order: far faster than lexsort
        sources, classes, targets = sources[by_row], classes[by_row], targets[by_row]
    order = _breadth_first(sources, targets, n_blocks, int(blocks[renumber[initial]]))
    if len(order) != n_blocks:
        raise ValueError("every state must be reachable from the initial one")
    rank = np.empty(n_blocks, dtype=np.int64)
    rank[order] = np.arange(n_blocks)
    return (rank[sources].astype(np.int32), classes.astype(np.int32), rank[targets].astype(np.int32),
            accepting[kept][representatives][order], class_of_column)


def _breadth_first(sources: np.ndarray, targets: np.ndarray, n_states: int, initial: int) -> np.ndarray:
    """The states reachable from ``initial`` in breadth-first order, a level at a time, each level in order of
    first appearance along its predecessors' transitions (given sorted by state, then class): a queue, in C
    (``_table_passes.breadth_first``; numpy made a dozen calls per level).

    Why: numbered this way, a state's successors and predecessors lie close to it, so their bitsets span a
    few machine words instead of the whole set, which is what the canvas lattice's set unions pay for.
    """
    starts = np.searchsorted(sources, np.arange(n_states + 1)).astype(np.int64)
    return np.frombuffer(breadth_first(starts, targets.astype(np.int32, copy=False), initial), dtype=np.int32)


def _equivalent_states(sources: np.ndarray, classes: np.ndarray, targets: np.ndarray, apart: np.ndarray
                       ) -> np.ndarray:
    """Per state, its block of the coarsest partition where equivalent states share a future (Moore), from
    the live transitions (sorted by state, then class).

    Starting from the partition ``apart`` (accepting / not accepting, or a finer one known to keep equivalent
    states together), states are split while the blocks their classes lead to differ.
    In C (``_table_passes.coarsest_blocks``): a SQL automaton needs hundreds of rounds, and each round is one
    pass over the transitions with a hash table of rows compared exactly, where numpy sorted every state's
    hashed row.
    """
    starts = np.searchsorted(sources, np.arange(len(apart) + 1)).astype(np.int64)
    blocks = coarsest_blocks(starts, classes.astype(np.int32), targets.astype(np.int32), apart.astype(np.int32))
    return np.frombuffer(blocks, dtype=np.int32)
