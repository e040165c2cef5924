"""The declarative form of a grid puzzle: cells, a value domain, and the rules that tie cells together.

Every kind of puzzle this package solves (Sudoku of any box size, Latin squares, Killer Sudoku, Futoshiki) is a
:class:`GridPuzzle`: a rectangle of cells whose values are the integers ``1..size``, written with one symbol each,
plus a handful of rule families. Keeping the form this small is what lets a new kind be a few lines in
``kinds.py`` while propagation, the solve loop, the lattice and the classical reference solver stay generic.

Cells are numbered row-major (``cell = row * cols + col``); values are ``1..size`` so that cage sums and
inequalities read naturally. Validation here catches only what is wrong *on its face* (a given outside the
domain, two equal givens in one all-different group, givens that already break a cage or an inequality);
contradictions that need reasoning are found by propagation and reported as unsatisfiability by the solvers.
"""

from __future__ import annotations

from dataclasses import dataclass

from constrained.errors import PuzzleError


@dataclass(frozen=True)
class Cage:
    """Cells whose values sum to ``total`` (and, if ``distinct``, take pairwise different values)."""

    cells: tuple[int, ...]
    total: int
    distinct: bool = True


@dataclass(frozen=True)
class Inequality:
    """``value(smaller) < value(larger)``: the Futoshiki sign between two cells."""

    smaller: int
    larger: int


@dataclass(frozen=True)
class GridPuzzle:
    """A puzzle over ``rows * cols`` cells with values ``1..len(symbols)``.

    ``symbols[v - 1]`` is how value ``v`` is written (and which token spells it on a canvas); ``givens[cell]`` is
    the given value or ``None``. ``groups`` are all-different groups (rows, columns, boxes, ...).
    """

    rows: int
    cols: int
    symbols: tuple[str, ...]
    groups: tuple[tuple[int, ...], ...]
    givens: tuple[int | None, ...]
    cages: tuple[Cage, ...] = ()
    inequalities: tuple[Inequality, ...] = ()
    name: str = "grid"

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def n_cells(self) -> int:
        return self.rows * self.cols

    @property
    def size(self) -> int:
        """Number of values in the domain (9 for classic Sudoku)."""
        return len(self.symbols)

    def format(self, values: list[int | None] | tuple[int | None, ...], blank: str = ".") -> str:
        """Values as one string of symbols, row-major, ``blank`` for open cells (an 81-character Sudoku line)."""
        return "".join(blank if v is None else self.symbols[v - 1] for v in values)

    def violations(self, values: list[int | None] | tuple[int | None, ...]) -> list[str]:
        """Every rule a (possibly partial) assignment breaks, in words; empty for a consistent one.

        A full assignment with no violation is a solution. This is the independent check the tests and the
        solvers' final verification use: it does not share code with propagation.
        """
        problems: list[str] = []
        if len(values) != self.n_cells:
            return [f"expected {self.n_cells} values, got {len(values)}"]
        for cell, v in enumerate(values):
            if v is not None and not 1 <= v <= self.size:
                problems.append(f"cell {self.cell_name(cell)} has value {v} outside 1..{self.size}")
            given = self.givens[cell]
            if given is not None and v is not None and v != given:
                problems.append(f"cell {self.cell_name(cell)} is given {self.symbols[given - 1]} but holds {v}")
        for index, group in enumerate(self.groups):
            seen: dict[int, int] = {}
            for cell in group:
                v = values[cell]
                if v is None:
                    continue
                if v in seen:
                    problems.append(
                        f"group {index} repeats {self.symbols[v - 1]} at {self.cell_name(seen[v])} "
                        f"and {self.cell_name(cell)}"
                    )
                seen[v] = cell
        for cage in self.cages:
            filled = [values[c] for c in cage.cells if values[c] is not None]
            if cage.distinct and len(set(filled)) != len(filled):
                problems.append(f"cage at {self.cell_name(cage.cells[0])} repeats a value")
            total = sum(v for v in filled if v is not None)
            if len(filled) == len(cage.cells) and total != cage.total:
                problems.append(f"cage at {self.cell_name(cage.cells[0])} sums to {total}, not {cage.total}")
            elif total > cage.total:
                problems.append(f"cage at {self.cell_name(cage.cells[0])} already exceeds {cage.total}")
        for rule in self.inequalities:
            a, b = values[rule.smaller], values[rule.larger]
            if a is not None and b is not None and not a < b:
                problems.append(
                    f"{self.cell_name(rule.smaller)}={a} is not less than {self.cell_name(rule.larger)}={b}"
                )
        return problems

    def cell_name(self, cell: int) -> str:
        """``r1c1``-style name (1-based), the way puzzle people name cells in error messages."""
        return f"r{cell // self.cols + 1}c{cell % self.cols + 1}"


def _validate(puzzle: GridPuzzle) -> None:
    """Reject a puzzle whose description or givens are wrong on their face (see module docstring)."""
    n = puzzle.rows * puzzle.cols
    if puzzle.rows <= 0 or puzzle.cols <= 0:
        raise PuzzleError(f"a grid needs positive dimensions, got {puzzle.rows}x{puzzle.cols}")
    if not puzzle.symbols or len(set(puzzle.symbols)) != len(puzzle.symbols):
        raise PuzzleError(f"symbols must be distinct and non-empty, got {puzzle.symbols!r}")
    if len(puzzle.givens) != n:
        raise PuzzleError(f"expected {n} givens (one per cell, None for blanks), got {len(puzzle.givens)}")
    for group in puzzle.groups:
        if len(set(group)) != len(group) or any(not 0 <= c < n for c in group):
            raise PuzzleError(f"an all-different group must list distinct cells of the grid, got {group}")
        if len(group) > puzzle.size:
            raise PuzzleError(f"group of {len(group)} cells cannot be all-different over {puzzle.size} values")
    for cage in puzzle.cages:
        if not cage.cells or len(set(cage.cells)) != len(cage.cells) or any(not 0 <= c < n for c in cage.cells):
            raise PuzzleError(f"a cage must list distinct cells of the grid, got {cage.cells}")
    for rule in puzzle.inequalities:
        if not (0 <= rule.smaller < n and 0 <= rule.larger < n) or rule.smaller == rule.larger:
            raise PuzzleError(f"an inequality must relate two different cells, got {rule}")
    problems = puzzle.violations(puzzle.givens)
    if problems:
        raise PuzzleError("contradictory givens: " + "; ".join(problems[:5]))
