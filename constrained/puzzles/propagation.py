"""Candidates after propagation: what each cell may still hold, given the decided cells.

Candidates are bitmasks (bit ``v - 1`` set when value ``v`` is still possible): small Python ints make the
set operations that propagation repeats thousands of times per puzzle cheap without any array machinery.

Rules, each *monotone* (a tighter input never yields a looser output), which is what makes failure under a
partial assignment a proof that no completion exists and lets the solver learn nogoods from it:

- naked singles: a cell down to one value removes it from every peer (cells sharing an all-different group);
- hidden singles: in a group with as many cells as values, a value that fits in one cell only goes there, and a
  value that fits nowhere is a contradiction;
- arc consistency for all-different (level ``"gac"``): Régin's matching argument removes every value that no
  assignment of distinct values to the whole group can use (naked/hidden pairs, triples, ... all at once);
- cage sums: a value stays only if some assignment of the cage's other cells (distinct when the cage says so)
  reaches the total; exact enumeration for small cages, sum bounds for large ones;
- inequalities: ``a < b`` keeps ``a`` below ``b``'s largest candidate and ``b`` above ``a``'s smallest;
- nogoods: sets of (cell, value) the solver has proved cannot hold together; when all but one hold, the last
  value is removed.

A contradiction raises :class:`Contradiction` (internal; the solvers turn it into backtracking or into
``ConstraintUnsatisfiable``). Propagation is sound (it never removes a value some solution uses) but incomplete:
an open cell may keep values that no solution uses, which is why the solvers still search.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from constrained.puzzles.grid import GridPuzzle

Nogood = tuple[tuple[int, int], ...]
"""(cell, value) pairs that cannot all hold in any solution."""

LEVELS = ("singles", "gac")

_GAC_MEMO_LIMIT = 200_000
"""Group states remembered per Propagator before the memo starts afresh (bounds memory on long searches)."""

_CAGE_ENUMERATION_LIMIT = 4096
"""Cages whose candidate product exceeds this fall back to sum bounds (enumeration would cost more than it saves)."""


class Contradiction(Exception):
    """No completion exists under the current decisions; ``reason`` says which rule found out."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def bit(value: int) -> int:
    return 1 << (value - 1)


def values_of(mask: int) -> list[int]:
    """Values in a candidate mask, ascending."""
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length())
        mask ^= low
    return out


def is_single(mask: int) -> bool:
    return mask != 0 and mask & (mask - 1) == 0


class Propagator:
    """Propagation for one puzzle's rules; builds the lookup tables once and reuses them for every call."""

    def __init__(self, puzzle: GridPuzzle, level: str = "gac") -> None:
        if level not in LEVELS:
            raise ValueError(f"propagation level must be one of {LEVELS}, got {level!r}")
        self.puzzle = puzzle
        self.level = level
        self.n_cells = puzzle.n_cells
        self.full = (1 << puzzle.size) - 1
        self.groups = puzzle.groups
        peers: list[set[int]] = [set() for _ in range(self.n_cells)]
        cell_groups: list[list[int]] = [[] for _ in range(self.n_cells)]
        for index, group in enumerate(self.groups):
            for cell in group:
                peers[cell].update(group)
                cell_groups[cell].append(index)
        self.peers = [tuple(sorted(p - {c})) for c, p in enumerate(peers)]
        self.cell_groups = [tuple(g) for g in cell_groups]
        self.full_group = [len(g) == puzzle.size for g in self.groups]
        self.gac_memo: dict[tuple[int, ...], tuple[int, ...] | None] = {}
        self.cages = puzzle.cages
        self.cell_cages: list[list[int]] = [[] for _ in range(self.n_cells)]
        for index, cage in enumerate(self.cages):
            for cell in cage.cells:
                self.cell_cages[cell].append(index)
        self.inequalities = puzzle.inequalities
        self.cell_inequalities: list[list[int]] = [[] for _ in range(self.n_cells)]
        for index, rule in enumerate(self.inequalities):
            self.cell_inequalities[rule.smaller].append(index)
            self.cell_inequalities[rule.larger].append(index)

    # ------------------------------------------------------------------ entry points
    def initial(self, nogoods: Sequence[Nogood] = ()) -> list[int]:
        """Candidates from the givens alone, propagated. Raises Contradiction if the givens admit no solution."""
        cands = [self.full if g is None else bit(g) for g in self.puzzle.givens]
        return self.propagate(cands, None, nogoods)

    def assign(
        self, cands: Sequence[int], assignment: dict[int, int], nogoods: Sequence[Nogood] = ()
    ) -> list[int]:
        """``cands`` with each ``cell -> value`` of ``assignment`` fixed, propagated."""
        narrowed = list(cands)
        for cell, value in assignment.items():
            if not narrowed[cell] & bit(value):
                raise Contradiction(f"{self.puzzle.cell_name(cell)} cannot hold {value}")
            narrowed[cell] = bit(value)
        return self.propagate(narrowed, assignment.keys(), nogoods)

    def propagate(
        self, cands: Sequence[int], changed: Iterable[int] | None = None, nogoods: Sequence[Nogood] = ()
    ) -> list[int]:
        """Fixpoint of every rule, starting from the cells in ``changed`` (``None``: all cells); returns a new list.

        Every nogood is checked once at the start (the caller may have learned new ones since the last call);
        afterwards only those watching a changed cell are revisited.
        """
        cands = list(cands)
        run = _Run(self, cands, nogoods)
        run.seed(range(self.n_cells) if changed is None else changed)
        run.fixpoint()
        return cands


class _Run:
    """One propagation to fixpoint: work queues plus the narrowing step that feeds them."""

    def __init__(self, prop: Propagator, cands: list[int], nogoods: Sequence[Nogood]) -> None:
        self.p = prop
        self.cands = cands
        self.nogoods = nogoods
        self.singles: list[int] = []
        self.hidden: set[int] = set()
        self.gac: set[int] = set()
        self.cage_queue: set[int] = set()
        self.inequality_queue: set[int] = set()
        self.nogood_queue: set[int] = set(range(len(nogoods)))
        self.nogood_watch: dict[int, list[int]] = {}
        for index, nogood in enumerate(nogoods):
            for cell, _ in nogood:
                self.nogood_watch.setdefault(cell, []).append(index)

    def seed(self, cells: Iterable[int]) -> None:
        for cell in cells:
            mask = self.cands[cell]
            if not mask:
                raise Contradiction(f"{self.p.puzzle.cell_name(cell)} has no candidate")
            self._touch(cell, mask)

    def _touch(self, cell: int, mask: int) -> None:
        p = self.p
        if mask & (mask - 1) == 0:
            self.singles.append(cell)
        for g in p.cell_groups[cell]:
            self.hidden.add(g)
            self.gac.add(g)
        self.cage_queue.update(p.cell_cages[cell])
        self.inequality_queue.update(p.cell_inequalities[cell])
        watching = self.nogood_watch.get(cell)
        if watching:
            self.nogood_queue.update(watching)

    def narrow(self, cell: int, mask: int) -> None:
        """Replace ``cell``'s candidates by the subset ``mask`` and schedule the rules that may now fire."""
        if mask == self.cands[cell]:
            return
        if not mask:
            raise Contradiction(f"{self.p.puzzle.cell_name(cell)} has no candidate left")
        self.cands[cell] = mask
        self._touch(cell, mask)

    def fixpoint(self) -> None:
        # Cheap rules first, expensive ones only once the cheap ones are quiet.
        p, cands = self.p, self.cands
        while True:
            if self.singles:
                cell = self.singles.pop()
                b = cands[cell]
                for peer in p.peers[cell]:
                    if cands[peer] == b:  # two cells left only one value: blame one the puzzle left blank
                        blank, other = (cell, peer) if p.puzzle.givens[peer] is not None else (peer, cell)
                        raise Contradiction(f"{p.puzzle.cell_name(blank)} has no candidate left (its only one, "
                                            f"{values_of(b)[0]}, is {p.puzzle.cell_name(other)}'s)")
                    if cands[peer] & b:
                        self.narrow(peer, cands[peer] & ~b)
            elif self.hidden:
                self._hidden_singles(self.hidden.pop())
            elif self.inequality_queue:
                self._inequality(self.inequality_queue.pop())
            elif self.nogood_queue:
                self._nogood(self.nogood_queue.pop())
            elif self.gac and p.level == "gac":
                self._alldifferent_gac(self.gac.pop())
            elif self.cage_queue:
                self._cage(self.cage_queue.pop())
            else:
                return

    def _hidden_singles(self, g: int) -> None:
        p, cands = self.p, self.cands
        group = p.groups[g]
        once = twice = 0
        for cell in group:
            m = cands[cell]
            twice |= once & m
            once |= m
        if p.full_group[g]:
            if once != p.full:
                missing = values_of(p.full & ~once)
                raise Contradiction(f"value {missing[0]} fits nowhere in group {g}")
            hidden = once & ~twice
            if hidden:
                for cell in group:
                    h = cands[cell] & hidden
                    if h and h != cands[cell]:
                        if h & (h - 1):
                            raise Contradiction(f"{p.puzzle.cell_name(cell)} is the only place for two values")
                        self.narrow(cell, h)
        elif bin(once).count("1") < len(group):
            raise Contradiction(f"group {g} has fewer candidate values than cells")

    def _alldifferent_gac(self, g: int) -> None:
        """Régin's filter, memoised: the same group contents recur constantly during search and conflict analysis."""
        p = self.p
        group = p.groups[g]
        masks = tuple(self.cands[c] for c in group)
        if all(m & (m - 1) == 0 for m in masks):
            return  # all fixed: singles already enforce difference
        if masks in p.gac_memo:
            kept = p.gac_memo[masks]
        else:
            if len(p.gac_memo) >= _GAC_MEMO_LIMIT:
                p.gac_memo.clear()
            kept = p.gac_memo[masks] = _regin(masks, p.puzzle.size)
        if kept is None:
            raise Contradiction(f"group {g} cannot take distinct values")
        for cell, keep in zip(group, kept):
            self.narrow(cell, keep)

    def _inequality(self, index: int) -> None:
        rule = self.p.inequalities[index]
        cands = self.cands
        a, b = rule.smaller, rule.larger
        highest_b = cands[b].bit_length()  # largest value b may take
        self.narrow(a, cands[a] & ((1 << (highest_b - 1)) - 1))
        lowest_a = (cands[a] & -cands[a]).bit_length()  # smallest value a may take
        self.narrow(b, cands[b] & ~((1 << lowest_a) - 1))

    def _nogood(self, index: int) -> None:
        cands = self.cands
        open_literal: tuple[int, int] | None = None
        for cell, value in self.nogoods[index]:
            b = bit(value)
            m = cands[cell]
            if not m & b:
                return  # this literal can no longer hold: the nogood is satisfied
            if m != b:
                if open_literal is not None:
                    return  # two literals still undecided: nothing to infer yet
                open_literal = (cell, b)
        if open_literal is None:
            raise Contradiction("a learned nogood holds in full")
        cell, b = open_literal
        self.narrow(cell, cands[cell] & ~b)

    def _cage(self, index: int) -> None:
        cage = self.p.cages[index]
        cands = self.cands
        masks = [cands[c] for c in cage.cells]
        product = 1
        for m in masks:
            product *= bin(m).count("1")
        supported = (
            _cage_supports(masks, cage.total, cage.distinct)
            if product <= _CAGE_ENUMERATION_LIMIT
            else _cage_bounds(masks, cage.total)
        )
        for cell, mask, keep in zip(cage.cells, masks, supported):
            self.narrow(cell, mask & keep)


def _regin(masks: tuple[int, ...], size: int) -> tuple[int, ...] | None:
    """Régin's filter: keep value ``v`` at cell ``j`` only if some assignment of distinct values to the whole
    group (a matching covering every cell) gives ``j`` the value ``v``.

    Returns the kept masks, or None when no such assignment exists. With a maximum matching in hand, an unmatched
    edge (v, j) is in some other maximum matching iff it closes an alternating cycle or lies on an alternating
    path from a free value. Since the only way into a matched value is from the cell that holds it, both tests
    reduce to reachability between *cells*: ``i -> j`` when ``j`` could take the value matched to ``i``. With at
    most a couple of dozen cells, bitmask transitive closure is cheaper than a general SCC algorithm.
    """
    k = len(masks)
    match_value = [-1] * size  # value index -> cell position in group
    match_cell = [-1] * k

    def augment(i: int, seen: list[bool]) -> bool:
        m = masks[i]
        while m:
            low = m & -m
            v = low.bit_length() - 1
            m ^= low
            if not seen[v]:
                seen[v] = True
                if match_value[v] < 0 or augment(match_value[v], seen):
                    match_value[v] = i
                    match_cell[i] = v
                    return True
        return False

    for i in range(k):
        if not augment(i, [False] * size):
            return None
    reach = [0] * k  # reach[i]: cells reachable from cell i (through the values they are matched to)
    for i in range(k):
        b = 1 << match_cell[i]
        for j in range(k):
            if j != i and masks[j] & b:
                reach[i] |= 1 << j
    for m in range(k):  # Warshall's transitive closure on bitmasks
        bm, rm = 1 << m, reach[m]
        for i in range(k):
            if reach[i] & bm:
                reach[i] |= rm
    free = ((1 << size) - 1) & ~sum(1 << v for v in match_cell)
    from_free = 0  # cells reachable from a free value
    if free:
        for j in range(k):
            if masks[j] & free:
                from_free |= (1 << j) | reach[j]
    kept = []
    for j in range(k):
        keep = (1 << match_cell[j]) | (masks[j] & free)
        m = masks[j] & ~keep
        while m:
            low = m & -m
            m ^= low
            owner = match_value[low.bit_length() - 1]
            if (from_free >> owner) & 1 or (reach[j] >> owner) & 1:
                keep |= low
        kept.append(keep)
    return tuple(kept)


def _cage_supports(masks: list[int], total: int, distinct: bool) -> list[int]:
    """Exact: for each cell, the values that appear in some assignment of the cage reaching ``total``."""
    order = sorted(range(len(masks)), key=lambda i: bin(masks[i]).count("1"))
    lows = [(masks[i] & -masks[i]).bit_length() for i in order]
    highs = [masks[i].bit_length() for i in order]
    rest_low = [sum(lows[j:]) for j in range(len(order) + 1)]
    rest_high = [sum(highs[j:]) for j in range(len(order) + 1)]
    supports = [0] * len(masks)
    chosen = [0] * len(order)

    def search(depth: int, running: int, used: int) -> bool:
        if depth == len(order):
            if running != total:
                return False
            for j, i in enumerate(order):
                supports[i] |= chosen[j]
            return True
        if running + rest_low[depth] > total or running + rest_high[depth] < total:
            return False
        m = masks[order[depth]] & ~used if distinct else masks[order[depth]]
        found = False
        while m:
            low = m & -m
            m ^= low
            chosen[depth] = low
            if search(depth + 1, running + low.bit_length(), used | low):
                found = True
        return found

    search(0, 0, 0)
    return supports


def _cage_bounds(masks: list[int], total: int) -> list[int]:
    """Sound but weaker than enumeration: value v stays if the others' min/max sums can make up ``total - v``."""
    lows = [(m & -m).bit_length() for m in masks]
    highs = [m.bit_length() for m in masks]
    low_sum, high_sum = sum(lows), sum(highs)
    keep = []
    for m, lo, hi in zip(masks, lows, highs):
        need_low = total - (high_sum - hi)  # smallest value this cell may take
        need_high = total - (low_sum - lo)  # largest value this cell may take
        allowed = 0
        for v in values_of(m):
            if need_low <= v <= need_high:
                allowed |= bit(v)
        keep.append(allowed)
    return keep
