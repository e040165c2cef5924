"""The solve loop: a cell scorer proposes, propagation disposes, and contradictions remask the least confident
choices.

A *cell scorer* (:data:`CellScorer`) is what guides the solve: given the cells' tokens (``None`` where open) it
returns log-probabilities for every cell. A diffusion model's forward pass is one (``model_scorer.ModelScorer``,
over a :class:`constrained.denoisers.Denoiser`); :class:`UniformScorer` is the model-free baseline.

What one *pass* is (the unit we count as ``forward_passes`` and try to minimise): one call of the scorer on the
current cells. With that one output in hand the solver then

1. restricts every open cell to its candidates after propagation (the mask),
2. repeatedly takes the open cell whose renormalised top probability is highest (the most confident one),
   commits its most probable candidate that survives propagation (a candidate whose propagation fails is
   refuted and the next most probable is tried), and propagates, so that one pass usually commits many cells
   and the forced cells come for free,
3. stops when the grid is full (solved) or when a cell has no surviving candidate: a conflict.

On a conflict the solver finds which decisions caused it (a short chronological prefix of the decisions, then a
deletion filter; the test is propagation plus a probe of the stuck cell), records that set as a *nogood*
(those cell values cannot hold together in any solution), and remasks the lowest-confidence decision in it.
Then, by default, the pass ends and the scorer is asked again on the cells with that cell open: the model
sees the consequence of its mistake. ``remasks_per_pass > 1`` lets one pass's log-probabilities drive several
backtracks (fewer passes, staler guidance); the benchmark reports which setting produced its figures.
``commit_threshold > 0`` does the opposite: a pass stops committing once the most confident open cell falls
below it (after at least one commit), so a model is asked again before its weaker guesses are taken.

Within a pass there is no search beyond that: each commit is one propagation check of the scorer's own
ranking (a one-step lookahead), and conflict analysis only names culprits, it never picks values. Because
confidence is renormalised over the remaining candidates, a cell with few candidates tends to be confident; under
the uniform baseline this makes the order close to "fewest candidates first", which is why constraints alone
already need few passes.

Everything the scorer is asked to decide is decided from its own ranking; propagation only removes values that
cannot be right, and the nogoods only remove combinations proved impossible. Nogoods are kept for the whole
solve, so the search cannot revisit a refuted combination: with ``max_passes`` and ``max_remasks`` large enough,
every puzzle with a solution is solved, and an unsatisfiable one is proved so (an empty nogood).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from constrained.errors import ConstraintUnsatisfiable, DenoiserError, VocabularyError
from constrained.puzzles.classical import solve_classical
from constrained.puzzles.grid import GridPuzzle
from constrained.puzzles.propagation import Contradiction, Nogood, Propagator, bit, is_single
from constrained.puzzles.symbols import SymbolVocabulary

CellTokens = list[int | None]
"""The token id of each cell's value, row-major, ``None`` where the cell is open."""
CellScorer = Callable[[CellTokens], "torch.Tensor | np.ndarray"]
"""Anything that maps the cells' tokens to log-probabilities ``[n_cells, V]``, one row per cell."""

_FLOOR = -1e30  # stands in for -inf so that a row the scorer masked out entirely renormalises to uniform


@dataclass(frozen=True)
class PuzzleResult:
    """A solved puzzle. ``forward_passes``: calls of the cell scorer (0 when propagation alone solved it)."""

    puzzle: GridPuzzle
    values: tuple[int, ...]
    tokens: tuple[int, ...]
    forward_passes: int
    remasks: int
    unique: bool | None
    """True: no other solution; False: another exists (the returned one is still valid); None: check gave up."""

    @property
    def solution(self) -> str:
        """Row-major symbols, e.g. the 81-character line of a 9x9 Sudoku."""
        return self.puzzle.format(self.values)

    @property
    def grid(self) -> list[list[str]]:
        cols = self.puzzle.cols
        text = self.solution
        return [list(text[r * cols : (r + 1) * cols]) for r in range(self.puzzle.rows)]


class UniformScorer:
    """The model-free baseline: independent uniform-random probabilities for every (cell, token), seeded.

    Under the solver's masks its only influence is a random order of cells and values; the figures it gets show
    how much the constraints alone do.
    """

    def __init__(self, vocab_size: int, seed: int = 0) -> None:
        self.vocab_size = vocab_size
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, cells: CellTokens) -> torch.Tensor:
        weights = torch.rand(len(cells), self.vocab_size, generator=self.generator, dtype=torch.float64) + 1e-12
        return torch.log(weights / weights.sum(dim=-1, keepdim=True))


@dataclass
class _Decision:
    cell: int
    value: int
    confidence: float


@dataclass
class _Search:
    """The solver's mutable state: decisions in order, learned nogoods, and the propagated candidates."""

    prop: Propagator
    base: list[int]
    decisions: list[_Decision] = field(default_factory=list)
    nogoods: list[Nogood] = field(default_factory=list)

    def state(self, decisions: Sequence[_Decision]) -> list[int]:
        """Candidates under ``decisions`` (raises Contradiction)."""
        return self.prop.assign(self.base, {d.cell: d.value for d in decisions}, self.nogoods)

    def fails(self, decisions: Sequence[_Decision], stuck: int | None) -> bool:
        """Whether ``decisions`` already admit no completion: propagation fails, or every value of ``stuck`` does."""
        try:
            cands = self.state(decisions)
        except Contradiction:
            return True
        if stuck is None:
            return False
        for value in range(1, self.prop.puzzle.size + 1):
            if cands[stuck] & bit(value):
                try:
                    self.prop.assign(cands, {stuck: value}, self.nogoods)
                    return False
                except Contradiction:
                    pass
        return True

    def conflict_set(self, stuck: int | None) -> list[_Decision]:
        """A small set of current decisions that together admit no completion (all of them do, by assumption)."""
        decisions = self.decisions
        if not self.fails(decisions, stuck):
            raise RuntimeError("conflict analysis called on decisions that do not fail")
        low, high = 0, len(decisions)  # fails(decisions[:high]) holds; find the shortest failing prefix
        while low < high:
            middle = (low + high) // 2
            if self.fails(decisions[:middle], stuck):
                high = middle
            else:
                low = middle + 1
        kept = list(decisions[:high])
        # Deletion filter: try dropping the most confident first, so the set keeps the doubtful decisions.
        for decision in sorted(kept[:-1], key=lambda d: -d.confidence):
            trial = [d for d in kept if d is not decision]
            if self.fails(trial, stuck):
                kept = trial
        return kept


def _scores(output: torch.Tensor | np.ndarray, n_cells: int, vocabulary: SymbolVocabulary) -> np.ndarray:
    """The scorer's log-probabilities at the symbol tokens, ``[n_cells, size]``, validated."""
    logits = torch.as_tensor(output)
    if logits.ndim != 2 or logits.shape[0] != n_cells or logits.shape[1] <= max(vocabulary.token_ids):
        raise DenoiserError(
            f"the cell scorer must return log-probabilities [{n_cells}, V>={max(vocabulary.token_ids) + 1}], "
            f"got shape {tuple(logits.shape)}"
        )
    picked = logits[:, list(vocabulary.token_ids)].detach().to("cpu", torch.float64).numpy()
    if np.isnan(picked).any() or np.isposinf(picked).any():
        raise DenoiserError("the cell scorer returned NaN or +inf log-probabilities at puzzle symbol tokens")
    return np.maximum(picked, _FLOOR)


def _most_confident(cands: list[int], scores: np.ndarray) -> tuple[int, list[int], float]:
    """The open cell whose renormalised top candidate probability is highest, its candidates best-first, and that
    probability."""
    size = scores.shape[1]
    allowed = ((np.asarray(cands, dtype=np.int64)[:, None] >> np.arange(size)) & 1).astype(bool)
    masked = np.where(allowed, scores, -np.inf)
    weights = np.exp(masked - masked.max(axis=1, keepdims=True))
    probs = weights / weights.sum(axis=1, keepdims=True)
    confidence = probs.max(axis=1)
    confidence[allowed.sum(axis=1) <= 1] = -1.0
    cell = int(np.argmax(confidence))
    ranked = [int(v) + 1 for v in np.argsort(-masked[cell], kind="stable") if allowed[cell, v]]
    return cell, ranked, float(confidence[cell])


def solve(
    puzzle: GridPuzzle,
    scorer: CellScorer,
    vocabulary: SymbolVocabulary | None = None,
    *,
    level: str = "gac",
    max_passes: int = 1000,
    max_remasks: int = 20_000,
    remasks_per_pass: int = 1,
    commit_threshold: float = 0.0,
    check_unique: bool = True,
    unique_node_limit: int = 200_000,
    callback: Callable[[int, str], None] | None = None,
) -> PuzzleResult:
    """Solve ``puzzle`` with ``scorer`` guiding every choice (see the module docstring for what a pass does).

    Parameters:
        puzzle: the grid, its rules and givens.
        scorer: the cell scorer asked once per pass (:class:`UniformScorer` is the model-free baseline).
        vocabulary: which of the scorer's token ids writes each value (default: the symbols as ids
            ``0..size-1``).
        level, max_passes, max_remasks, remasks_per_pass, commit_threshold: propagation strength and the
            loop's bounds and pace, as the module docstring describes them.
        check_unique, unique_node_limit: afterwards, search (bounded) for a second solution.
        callback: ``callback(pass, grid)`` sees the grid after every pass (row-major symbols, ``.`` where still
            open), the way :func:`constrained.generate` shows drafts.

    Returns:
        The solution, with its cost in scorer calls (``forward_passes``) and remasks.

    Raises:
        ConstraintUnsatisfiable: no solution exists, or the pass/remask bounds ran out (``partial`` holds the
            grid reached).
        DenoiserError: the scorer's output has the wrong shape, NaN or +inf.
        VocabularyError: ``vocabulary`` spells other symbols than the puzzle's.
        ValueError: ``remasks_per_pass`` is below 1.
    """
    vocabulary = vocabulary or SymbolVocabulary.plain(puzzle.symbols)
    if vocabulary.symbols != puzzle.symbols:
        raise VocabularyError(f"vocabulary spells {vocabulary.symbols}, the puzzle uses {puzzle.symbols}")
    if remasks_per_pass < 1:
        raise ValueError("remasks_per_pass must be at least 1")
    prop = Propagator(puzzle, level)
    try:
        base = prop.initial()
    except Contradiction as exc:
        raise ConstraintUnsatisfiable(f"puzzle has no solution: {exc.reason}", puzzle.format(puzzle.givens)) from None
    search = _Search(prop, base)
    cands = base
    passes = remasks = 0

    def partial() -> str:
        return puzzle.format([m.bit_length() if is_single(m) else None for m in cands])

    while not all(is_single(m) for m in cands):
        if passes >= max_passes:
            raise ConstraintUnsatisfiable(f"not solved within {max_passes} scorer passes", partial())
        cells: CellTokens = [vocabulary.token_ids[m.bit_length() - 1] if is_single(m) else None for m in cands]
        scores = _scores(scorer(cells), puzzle.n_cells, vocabulary)
        passes += 1
        conflicts = commits = 0
        while conflicts < remasks_per_pass and not all(is_single(m) for m in cands):
            cell, ranked, confidence = _most_confident(cands, scores)
            if commits and confidence < commit_threshold:
                break
            for value in ranked:
                try:
                    cands = prop.assign(cands, {cell: value}, search.nogoods)
                except Contradiction:
                    continue
                search.decisions.append(_Decision(cell, value, confidence))
                commits += 1
                break
            else:
                stuck: int | None = cell
                while True:  # learn, remask, and repeat while the remasked state still fails
                    culprits = search.conflict_set(stuck)
                    if not culprits:
                        raise ConstraintUnsatisfiable("puzzle has no solution (refuted by search)", partial())
                    search.nogoods.append(tuple((d.cell, d.value) for d in culprits))
                    weakest = min(culprits, key=lambda d: d.confidence)
                    search.decisions.remove(weakest)
                    remasks += 1
                    conflicts += 1
                    if remasks > max_remasks:
                        raise ConstraintUnsatisfiable(f"not solved within {max_remasks} remasks", partial())
                    try:
                        cands = search.state(search.decisions)
                        break
                    except Contradiction:
                        stuck = None
        if callback is not None:
            callback(passes, partial())
    values = tuple(m.bit_length() for m in cands)
    problems = puzzle.violations(values)
    if problems:  # propagation is meant to make this impossible; never hand back a broken grid
        raise ConstraintUnsatisfiable("internal error, solution breaks rules: " + "; ".join(problems), partial())
    unique = None
    if check_unique:
        check = solve_classical(puzzle, max_solutions=2, node_limit=unique_node_limit, level=level)
        unique = len(check.solutions) == 1 if check.complete else (False if len(check.solutions) > 1 else None)
    return PuzzleResult(
        puzzle, values, tuple(vocabulary.token_ids[v - 1] for v in values), passes, remasks, unique
    )
