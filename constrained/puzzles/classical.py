"""The classical reference: propagation plus depth-first backtracking, no model anywhere.

It is the yardstick the model-guided solver is benchmarked against (its node count and time), the
uniqueness check after a solve (search for a second solution, bounded), and the search behind the grid lattice's
exact feasibility test and its MAP decoding. Branching picks the open cell with the fewest candidates (MRV) and
tries values in ascending order (or an order the caller gives, or by score for MAP decoding).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from constrained.puzzles.grid import GridPuzzle
from constrained.puzzles.propagation import Contradiction, Propagator, bit, values_of


@dataclass(frozen=True)
class ClassicalResult:
    """Solutions found (values per cell), branching nodes visited, and whether the search ran to its end.

    ``complete`` is False when ``node_limit`` stopped the search early: then fewer than ``max_solutions``
    solutions proves nothing.
    """

    solutions: list[list[int]]
    nodes: int
    complete: bool
    seconds: float


class _NodeLimit(Exception):
    pass


@dataclass
class _Nodes:
    """Branching nodes visited by one search, and how many it may visit."""

    limit: int
    visited: int = 0


def _branches(prop: Propagator, cands: Sequence[int], cell: int, values: Iterable[int], nodes: _Nodes
              ) -> Iterator[list[int]]:
    """The candidates after setting ``cell`` to each of ``values`` in turn and propagating, skipping the values
    that contradict; every value tried is a node (``_NodeLimit`` past ``nodes.limit``)."""
    for value in values:
        if nodes.visited >= nodes.limit:
            raise _NodeLimit
        nodes.visited += 1
        trial = list(cands)
        trial[cell] = bit(value)
        try:
            child = prop.propagate(trial, (cell,))
        except Contradiction:
            continue
        yield child


def _pick_cell(cands: Sequence[int]) -> int:
    """Open cell with the fewest candidates; -1 when every cell is decided."""
    best, best_count = -1, 1 << 30
    for cell, mask in enumerate(cands):
        if mask & (mask - 1):
            count = bin(mask).count("1")
            if count < best_count:
                best, best_count = cell, count
                if count == 2:
                    break
    return best


def solve_classical(
    puzzle: GridPuzzle,
    *,
    max_solutions: int = 1,
    node_limit: int = 1_000_000,
    level: str = "singles",
    start: Sequence[int] | None = None,
    propagator: Propagator | None = None,
    value_order: Callable[[list[int]], list[int]] | None = None,
) -> ClassicalResult:
    """Find up to ``max_solutions`` solutions by propagation and backtracking.

    ``start``: candidate masks to search from (default: the givens, propagated), e.g. a grid lattice's current state.
    ``value_order``: the order a branching cell's candidate values are tried in (default: ascending), e.g. a
    random one to draw a solution rather than find the first.
    """
    began = time.perf_counter()
    prop = propagator or Propagator(puzzle, level)
    solutions: list[list[int]] = []
    nodes = _Nodes(node_limit)

    def search(cands: list[int]) -> None:
        cell = _pick_cell(cands)
        if cell < 0:
            solutions.append([m.bit_length() for m in cands])
            return
        values = values_of(cands[cell])
        for child in _branches(prop, cands, cell, value_order(values) if value_order else values, nodes):
            search(child)
            if len(solutions) >= max_solutions:
                return

    complete = True
    try:
        root = prop.initial() if start is None else prop.propagate(start)
        search(root)
    except Contradiction:
        pass
    except _NodeLimit:
        complete = False
    return ClassicalResult(solutions, nodes.visited, complete, time.perf_counter() - began)


def best_completion(
    prop: Propagator, start: Sequence[int], scores: Sequence[Sequence[float]], node_limit: int = 20_000
) -> list[int] | None:
    """Branch and bound for the completion of ``start`` with the largest total score (sum over cells).

    ``scores[cell][value - 1]`` is a log-probability. The bound is the sum of each open cell's best remaining
    score, so the first solutions found (values tried best-first) usually prune the rest quickly. Exact when
    the search ends within ``node_limit`` branching nodes; otherwise the best solution found so far. ``None``
    when no completion exists (or none was found within the limit).
    """
    best: list[int] | None = None
    best_score = float("-inf")
    nodes = _Nodes(node_limit)

    def bound(cands: Sequence[int]) -> float:
        return sum(max(scores[c][v - 1] for v in values_of(m)) for c, m in enumerate(cands))

    def search(cands: list[int]) -> None:
        nonlocal best, best_score
        if bound(cands) <= best_score:
            return
        cell = _pick_cell(cands)
        if cell < 0:
            best, best_score = [m.bit_length() for m in cands], bound(cands)
            return
        best_first = sorted(values_of(cands[cell]), key=lambda v: -scores[cell][v - 1])
        for child in _branches(prop, cands, cell, best_first, nodes):
            search(child)

    try:
        search(prop.propagate(start))
    except (Contradiction, _NodeLimit):
        pass
    return best
