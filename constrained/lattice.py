"""The canvas mask lattice: exact per-position token masks over a partly decided canvas.

A canvas has ``L`` positions, some decided (token fixed), the rest open. With the token automaton ``δ``:

* ``F[i]``, the states reachable at position ``i`` from the start over every filling of positions ``< i``
  consistent with the decided tokens (forward sweep);
* ``B[i]``, the states from which positions ``i..L-1`` can be filled, consistent with the decided tokens,
  so that the canvas ends in an admissible state (backward sweep);
* token ``t`` is allowed at open position ``i`` iff some ``q`` in ``F[i]`` has ``δ(q, t)`` in ``B[i + 1]``.

That is exact: every allowed token extends to a whole accepted canvas, and every token of an accepted
canvas is allowed. The work is done on state *sets*, interned as small integers and memoized per automaton
(``post``, ``pre``, the classes an ``(F, B)`` pair allows, and the mask row of those classes), so the sweeps
of a denoising run quickly become hash look-ups: interior positions of a canvas share their sets, and so do
successive steps. A memo miss costs the automaton's arcs between the states involved, not its states ×
classes table. That work runs in a small compiled kernel (``_state_sets.c``); this module keeps the canvas
and the decodes.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ._state_sets import Kernel
from .errors import ConstraintUnsatisfiable
from .token_dfa import TokenDFA

#: Marks an open position in :attr:`Canvas.tokens`.
OPEN = None
_OPEN_ID = -1  # an open position in the kernel's token array
_UNSET = -1  # a sweep entry not computed yet (differs from every interned set)
_NOTHING_WRITTEN = -1  # a row's key and content before the kernel first writes it
_ANY_TOKEN = -1  # the kernel's post / pre by some token of any class
#: The longest all-open canvas :meth:`StateSets.precompute_open_canvases` fills.
_OPEN_CANVAS_LIMIT = 512
#: What one automaton's interned sets, memos and rows may hold before :meth:`StateSets.reclaim` drops them.
MEMORY_LIMIT_BYTES = 512 << 20


class StateSets(Kernel):
    """Interned state sets and the memoized set operations of one token automaton.

    Sets are numbered in order of first appearance; two equal sets always get the same number, so the
    lattice compares and memoizes sets as plain integers. The work is the compiled kernel's
    (``constrained/_state_sets.c``): ``post``/``pre`` of a set by a token class, the canvas sweeps, and the
    mask rows, each memoized; this class adds the numpy view of a set that the decodes read, and bounds the
    memory all that holds.

    Why a bound: every new set a canvas meets is kept (canvases and memos hold its number), so a process
    that serves generation after generation on one automaton would grow without end, fastest on the large
    automata of SQL. Past ``memory_limit`` bytes the kernel forgets everything at the next decision on any
    canvas (a new :attr:`epoch`), and each canvas sweeps again on its next call.

    Thread-safe: every canvas method holds :attr:`lock` (re-entrant) while it uses the kernel, so canvases of
    one automaton may be used from several threads at once (a forget between two kernel calls of another
    thread's canvas would void the set numbers it holds).
    """

    def __init__(self, dfa: TokenDFA, *, memory_limit: int = MEMORY_LIMIT_BYTES) -> None:
        super().__init__(*(np.ascontiguousarray(array, dtype=np.int32) for array in (dfa.offsets, dfa.classes,
                                                                                     dfa.targets)),
                         dfa.n_classes, np.ascontiguousarray(dfa.token_class, dtype=np.int32),
                         np.ascontiguousarray(dfa.accepting, dtype=bool))
        self.dfa = dfa
        self.packed_width = -(-dfa.vocab_size // 32)
        self.memory_limit = memory_limit
        self.lock = threading.RLock()

    def reclaim(self) -> None:
        """Forget every set once the kernel holds more than :attr:`memory_limit` bytes, then fill the memos of
        the all-open canvases again, since every generation starts there."""
        if self.held_bytes > self.memory_limit:
            self.forget()
            self.precompute_open_canvases()

    def precompute_open_canvases(self) -> None:
        """Fill the memos with the sweeps and masks of the all-open canvas, final and not: when bound, and after
        every :meth:`reclaim`.

        Why: every generation starts from an all-open canvas, and its masks do not depend on its length
        beyond the few positions its sweeps take to settle. The forward sets grow from the initial state
        and the backward ones from the accepting (or all live) states until they repeat; the interior pairs
        the two settled sets. Computed here, as XGrammar computes its per-state masks when it compiles a
        grammar, they no longer weigh on the first step of the first generation.
        """
        forward = _steps_to_repeat(self.single(self.dfa.initial), lambda s: self.post(s, _ANY_TOKEN))
        for final, end in ((True, self.accepting), (False, self.live)):
            backward = _steps_to_repeat(end, lambda s: self.pre(s, _ANY_TOKEN))
            Canvas(self, min(forward + backward + 1, _OPEN_CANVAS_LIMIT), final=final).packed_masks(copy=False)

    def members(self, set_id: int) -> np.ndarray:
        """The set as a bool ``[S]`` array."""
        packed = np.frombuffer(super().members(set_id), dtype=np.uint8)
        return np.unpackbits(packed, count=self.dfa.n_states, bitorder="little").view(bool)


def _steps_to_repeat(start: int, step: Callable[[int], int]) -> int:
    """How many steps from set ``start`` until ``step`` gives back a set seen before (at most the limit)."""
    seen: set[int] = set()
    while start not in seen and len(seen) < _OPEN_CANVAS_LIMIT:
        seen.add(start)
        start = step(start)
    return len(seen)


class _RowBuffer:
    """A canvas's masks in one layout: the rows the kernel keeps current, what each row holds (its key and
    content, for the kernel), and one tensor over the rows, so that handing them out costs nothing.

    The rows are written once at allocation, so that the system maps their pages then: a 256-position
    canvas over a 32K vocabulary holds 256 pages in its packed layout, and faulting them in one by one
    would land on the first masks instead.
    """

    def __init__(self, length: int, width: int, dtype: type) -> None:
        self.rows = np.empty((length, width), dtype=dtype)
        self.rows.fill(0)
        self.keys = np.full((length, 3), _NOTHING_WRITTEN, dtype=np.int64)
        self.tensor = torch.from_numpy(self.rows)


def _exclusive(method: Callable) -> Callable:
    """A :class:`Canvas` method run holding its automaton's :attr:`StateSets.lock`."""
    @functools.wraps(method)
    def locked(self: Canvas, *args: Any, **kwargs: Any) -> Any:
        with self._sets.lock:
            return method(self, *args, **kwargs)
    return locked


class Canvas:
    """One canvas under a token automaton: decide positions, then ask for exact masks.

    ``final`` canvases must end accepted (text, then end tokens as padding); others may end in any live
    state, from which :meth:`end_state` lets the next canvas ``start``.

    Not thread-safe by itself: one canvas is one generation's state, used by one thread at a time; distinct
    canvases, even of one automaton, may be used from different threads at once.
    """

    def __init__(self, sets: StateSets, length: int, *, final: bool = True, start: int | None = None) -> None:
        if length <= 0:
            raise ValueError(f"canvas length must be positive, got {length}")
        self._sets = sets
        self._dfa = sets.dfa
        self.length = length
        self.final = final
        self.tokens: list[int | None] = [OPEN] * length
        self._token_ids = np.full(length, _OPEN_ID, dtype=np.int32)  # the kernel's view of ``tokens``
        # the packed layout, what samplers move to a device, is allocated with the canvas; bool rows on demand
        self._layouts = {True: _RowBuffer(length, sets.packed_width, np.int32)}
        self._start_state = self._dfa.initial if start is None else start
        if not 0 <= self._start_state < self._dfa.n_states:
            raise ValueError(f"start state {self._start_state} is not a state of this automaton")
        self._forward = np.empty(length + 1, dtype=np.int32)
        self._backward = np.empty(length + 1, dtype=np.int32)
        self._sweep_all()

    @_exclusive
    def _sweep_all(self) -> None:
        """Both sweeps over the whole canvas, and rows marked unwritten: at creation, and after the kernel
        forgot its sets (every number this canvas held is void then)."""
        sets = self._sets
        self._epoch = sets.epoch
        self._forward.fill(_UNSET)
        self._backward.fill(_UNSET)
        self._forward[0] = sets.single(self._start_state)
        self._backward[self.length] = sets.accepting if self.final else sets.live
        sets.sweep(self._forward, self._token_ids, np.array([0], dtype=np.int32), True)
        sets.sweep(self._backward, self._token_ids, np.array([self.length - 1], dtype=np.int32), False)
        for layout in self._layouts.values():
            layout.keys.fill(_NOTHING_WRITTEN)

    def _current(self) -> None:
        """Sweep again if the kernel forgot its sets since this canvas last used them."""
        if self._epoch != self._sets.epoch:
            self._sweep_all()

    @property
    def vocab_size(self) -> int:
        return self._dfa.vocab_size

    @_exclusive
    def decide(self, changes: Mapping[int, int | None]) -> None:
        """Fix positions to tokens (or reopen them with ``None``) and update the sweeps incrementally.

        Every change is checked before any is applied, so a bad one leaves the canvas as it was. The kernel
        applies them and reruns ``F`` after and ``B`` before the changed positions, skipping the stretches
        that settle. Deciding a token the masks do not allow is not an error: the canvas becomes infeasible.

        Parameters:
            changes: position -> token id, or -> ``None`` to reopen the position.

        Raises:
            IndexError: a position outside the canvas.
            ValueError: a token id outside the vocabulary.
        """
        if changes:
            self._sets.reclaim()
            self._current()
            self._sets.decide(self.tokens, self._token_ids, self._forward, self._backward,
                              changes if type(changes) is dict else dict(changes))

    @_exclusive
    def feasible(self) -> bool:
        """Whether the open positions can still be filled into an admissible canvas.

        Returns:
            ``True`` when some filling of the open positions is accepted by the automaton.
        """
        self._current()
        return self._sets.intersects(int(self._forward[0]), int(self._backward[0]))

    @_exclusive
    def allowed(self, position: int) -> torch.Tensor:
        """The mask of one position: the tokens that keep the canvas completable there.

        Parameters:
            position: an index into the canvas.

        Returns:
            Bool ``[V]``: at an open position its exact allowed tokens; at a decided one just its token
            (``False`` too when the canvas is infeasible).

        Raises:
            IndexError: ``position`` is outside the canvas.
        """
        token = self.tokens[position]
        if token is not OPEN:
            mask = torch.zeros(self.vocab_size, dtype=torch.bool)
            mask[token] = self.feasible()
            return mask
        row = np.empty(self.vocab_size, dtype=bool)
        self._current()
        self._sets.write_row(row, self._forward, self._backward, self._token_ids, position, False)
        return torch.from_numpy(row)

    def masks(self, device: torch.device | str | None = None) -> torch.Tensor:
        """The masks of every position, one bool per token.

        Parameters:
            device: where to put the result (CPU by default).

        Returns:
            Bool ``[L, V]``, a fresh tensor: for open positions the exact allowed tokens, for decided ones just
            their token. An infeasible canvas allows nothing anywhere.
        """
        return self._masks_tensor(packed=False, device=device, copy=True)

    def packed_masks(self, device: torch.device | str | None = None, *, copy: bool = True) -> torch.Tensor:
        """The masks as a bitmask, int32 ``[L, ceil(V / 32)]``, bit ``t % 32`` of word ``t // 32`` for token ``t``.

        The layout llguidance and XGrammar fill per token; a 32nd of the bool masks' bytes to move.

        Parameters:
            device: where to put the result (CPU by default).
            copy: ``False`` returns the canvas's own buffer on the CPU, with no copy: it holds the masks until
                the next :meth:`decide` and the next call rewrites it in place (only the rows that changed), so
                read it, or move it to a device, before deciding again.

        Returns:
            Int32 ``[L, ceil(V / 32)]``, the masks of :meth:`masks` packed 32 tokens to a word (all zero when
            the canvas is infeasible); :func:`unpack_masks` turns it back into bools.
        """
        return self._masks_tensor(packed=True, device=device, copy=copy)

    @_exclusive
    def _masks_tensor(self, packed: bool, device: torch.device | str | None, copy: bool) -> torch.Tensor:
        if self.feasible():
            rows = self._rows(packed)
            # numpy's copy: torch's clone of a CPU tensor this size hands the copy to its thread pool, whose
            # wake-up on a busy machine costs far more than the copy
            result = torch.from_numpy(rows.numpy().copy()) if copy else rows
        else:
            width = self._sets.packed_width if packed else self.vocab_size
            result = torch.zeros(self.length, width, dtype=torch.int32 if packed else torch.bool)
        return result.to(device) if device is not None else result

    def _rows(self, packed: bool) -> torch.Tensor:
        """The masks of a feasible canvas in one layout, owned by the canvas (the same tensor every call).

        Kept between calls: the kernel looks again only at rows whose ``(F[i], B[i + 1])`` pair (or decided
        token) changed since the last call, typically a small share of them per denoising step, and rewrites
        only those whose allowed classes changed too.
        """
        layout = self._layouts.get(packed)
        if layout is None:
            width, dtype = (self._sets.packed_width, np.int32) if packed else (self.vocab_size, bool)
            layout = self._layouts[packed] = _RowBuffer(self.length, width, dtype)
        self._sets.fill_rows(layout.rows, layout.keys, self._forward, self._backward, self._token_ids, packed)
        return layout.tensor

    @_exclusive
    def end_state(self) -> int:
        """The automaton state after a fully decided, feasible canvas: where the next canvas starts.

        Returns:
            The state, for the next canvas's ``start``.

        Raises:
            ValueError: the canvas still has open positions.
            ConstraintUnsatisfiable: the canvas violates its constraint.
        """
        if OPEN in self.tokens:
            raise ValueError("the canvas still has open positions")
        if not self.feasible():
            raise ConstraintUnsatisfiable("the canvas violates its constraint")
        return int(np.flatnonzero(self._sets.members(int(self._forward[self.length])))[0])

    def complete(self) -> bool:
        """Whether every position is decided and the canvas admissible.

        Returns:
            ``True`` for a finished canvas the automaton accepts (commit-time check aside).
        """
        return OPEN not in self.tokens and self.feasible()

    @_exclusive
    def map_decode(self, logprobs: torch.Tensor) -> list[int]:
        """The most probable admissible canvas consistent with the decided tokens (Viterbi over states).

        Parameters:
            logprobs: ``[L, V]`` log-probabilities (logits do as well: a constant per row ranks every canvas
                alike); decided positions keep their tokens.

        Returns:
            A token id per position, every one allowed: an accepted canvas.

        Raises:
            ValueError: ``logprobs`` is not ``[L, V]``.
            ConstraintUnsatisfiable: no admissible canvas exists, or none has finite probability.
        """
        self._check_decodable(logprobs)
        return viterbi(self._dfa, self._sets, int(self._forward[0]), self._backward, self.tokens, logprobs)

    def sample_decode(self, logprobs: torch.Tensor, generator: torch.Generator | None = None) -> list[int]:
        """An admissible canvas drawn with probability proportional to the product of its tokens' probabilities.

        Why beside :meth:`map_decode`: a constraint whose commit-time check the MAP canvas fails (a SQL column
        outside the tables in scope) needs other admissible candidates, in the model's order of preference.

        Parameters:
            logprobs: as for :meth:`map_decode`.
            generator: seeds the draw.

        Returns:
            A token id per position: an accepted canvas.

        Raises:
            ValueError, ConstraintUnsatisfiable: as for :meth:`map_decode`.
        """
        return next(self.sample_decodes(logprobs, generator))

    @_exclusive
    def sample_decodes(self, logprobs: torch.Tensor, generator: torch.Generator | None = None
                       ) -> Iterator[list[int]]:
        """Independent draws as :meth:`sample_decode` makes them, endlessly, for the price of one forward pass
        (each further draw costs a walk back over the positions). The canvas must not change meanwhile.

        Parameters:
            logprobs, generator: as for :meth:`sample_decode`.

        Returns:
            An endless iterator of accepted canvases (token ids per position).

        Raises:
            ValueError, ConstraintUnsatisfiable: as for :meth:`map_decode`: a wrong shape or an infeasible
                canvas when called, no canvas of finite probability at the first draw.
        """
        self._check_decodable(logprobs)
        return sample_paths(self._dfa, self._sets, int(self._forward[0]), self._backward, self.tokens, logprobs,
                            generator)

    def _check_decodable(self, logprobs: torch.Tensor) -> None:
        """What both decodes need: ``[L, V]`` log-probabilities and a canvas that admits some completion."""
        check_logprobs_shape(logprobs, self.length, self.vocab_size)
        if not self.feasible():
            raise ConstraintUnsatisfiable("no admissible canvas is consistent with the decided tokens")


def check_logprobs_shape(logprobs: torch.Tensor, length: int, vocab_size: int) -> None:
    """The check every decode of a canvas (this module's, and a puzzle's) makes first: one row of log-probabilities
    per position, one column per token.

    Raises:
        ValueError: ``logprobs`` is not ``[length, vocab_size]``.
    """
    if tuple(logprobs.shape) != (length, vocab_size):
        raise ValueError(f"logprobs must be [{length}, {vocab_size}], got {list(logprobs.shape)}")


def unpack_masks(packed: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Bool ``[L, vocab_size]`` from the layout of :meth:`Canvas.packed_masks`, on the packed tensor's device.

    Why: on an accelerator, moving the packed masks and unpacking them there moves a 32nd of the bytes
    (a 256-position canvas over a 262K vocabulary: 2 MB instead of 67 MB per step).
    """
    shifts = torch.arange(32, dtype=torch.int32, device=packed.device)
    bits = (packed.unsqueeze(-1) >> shifts) & 1
    return bits.reshape(packed.shape[0], -1)[:, :vocab_size].bool()


def _draw(log_weights: torch.Tensor, generator: torch.Generator | None) -> int:
    """An index drawn with probability proportional to ``exp(log_weights)`` (some entry finite)."""
    weights = torch.exp(log_weights - log_weights.max()).nan_to_num(nan=0.0)
    return int(torch.multinomial(weights, 1, generator=generator))


def _reduce(values: torch.Tensor, index: torch.Tensor, size: int, total: bool) -> torch.Tensor:
    """Per target ``index``, the maximum of ``values`` (``total=False``) or their log-sum-exp (``total=True``)."""
    peak = torch.full((size,), -torch.inf, dtype=values.dtype).scatter_reduce(0, index, values, "amax")
    if not total:
        return peak
    shift = torch.where(torch.isfinite(peak), peak, 0.0)
    mass = torch.zeros(size, dtype=values.dtype).scatter_add(0, index, torch.exp(values - shift[index]))
    return torch.log(mass) + shift


class _PathScores:
    """The dynamic programme behind :func:`viterbi` and :func:`sample_paths`: forward scores, then paths.

    Forward, per position, the score of every state over admissible prefixes: the best prefix (max) or all of
    them (log-sum-exp, ``total=True``), restricted to states from which the rest can still be completed; it
    runs over the automaton's live edges. :meth:`trace` then walks back: the end state,
    at each position an incoming edge (previous state, token class) of the current state, then a token of that
    class, each the best or drawn in proportion to its mass. The forward pass is the expensive half, so many
    paths can be traced from one.
    """

    def __init__(self, dfa: TokenDFA, sets: StateSets, start: int, backward: Sequence[int],
                 tokens: Sequence[int | None], logprobs: torch.Tensor, total: bool) -> None:
        self.tokens = list(tokens)
        self.logprobs = logprobs.detach().to(torch.float64).cpu()
        self.token_class = torch.from_numpy(dfa.token_class).long()
        self.sources, self.classes_of, targets, self.offsets = (torch.from_numpy(a).long() for a in dfa.edges)
        n_states, n_classes = dfa.n_states, dfa.n_classes
        score = torch.full((n_states,), -torch.inf, dtype=torch.float64)
        score[torch.from_numpy(sets.members(start))] = 0.0
        # per position: the state scores before it and its class scores, in two tensors made once: kept as a
        # pair of small tensors per position, between the edge-sized temporaries each position makes and frees,
        # they fragment the heap to many times their size
        self.state_scores = torch.empty(len(self.tokens), n_states, dtype=torch.float64)
        self.class_scores = torch.empty(len(self.tokens), n_classes, dtype=torch.float64)
        for i, token in enumerate(self.tokens):
            if token is OPEN:
                classes = _reduce(self.logprobs[i].nan_to_num(nan=-torch.inf), self.token_class, n_classes, total)
            else:  # a decided token is certain
                classes = torch.full((n_classes,), -torch.inf, dtype=torch.float64)
                classes[self.token_class[token]] = 0.0
            reachable = torch.from_numpy(sets.members(backward[i + 1]))
            candidate = torch.where(reachable[targets], score[self.sources] + classes[self.classes_of], -torch.inf)
            self.state_scores[i] = score
            self.class_scores[i] = classes
            score = _reduce(candidate, targets, n_states, total)
        if not torch.isfinite(score).any():
            raise ConstraintUnsatisfiable("no admissible canvas has finite probability under the logits")
        self.final = score

    def trace(self, pick: Callable[[torch.Tensor], int]) -> list[int]:
        """One path, choosing with ``pick`` (argmax or a draw) among log-weights at every step back."""
        state = pick(self.final)
        path: list[int] = []
        for i in range(len(self.tokens) - 1, -1, -1):
            before, classes = self.state_scores[i], self.class_scores[i]
            incoming = slice(int(self.offsets[state]), int(self.offsets[state + 1]))
            edge = incoming.start + pick(before[self.sources[incoming]] + classes[self.classes_of[incoming]])
            chosen_class = int(self.classes_of[edge])
            token = self.tokens[i]
            if token is OPEN:
                in_class = self.token_class == chosen_class
                within = torch.where(in_class, self.logprobs[i].nan_to_num(nan=-torch.inf), -torch.inf)
                if not torch.isfinite(within).any():  # every token of the class had -inf: any member will do
                    within = torch.where(in_class, 0.0, -torch.inf).to(torch.float64)
                token = pick(within)
            path.append(int(token))
            state = int(self.sources[edge])
        path.reverse()
        return path


def sample_paths(
    dfa: TokenDFA, sets: StateSets, start: int, backward: Sequence[int], tokens: Sequence[int | None],
    logprobs: torch.Tensor, generator: torch.Generator | None = None,
) -> Iterator[list[int]]:
    """Admissible paths drawn independently in proportion to their probability (forward filtering once,
    backward sampling per path)."""
    scores = _PathScores(dfa, sets, start, backward, tokens, logprobs, total=True)  # now: it reads the kernel
    return _draws(scores, generator)


def _draws(scores: _PathScores, generator: torch.Generator | None) -> Iterator[list[int]]:
    while True:
        yield scores.trace(lambda log_weights: _draw(log_weights, generator))


def viterbi(
    dfa: TokenDFA, sets: StateSets, start: int, backward: Sequence[int], tokens: Sequence[int | None],
    logprobs: torch.Tensor,
) -> list[int]:
    """Best-scoring path through ``states × positions``, restricted to states that can still finish."""
    scores = _PathScores(dfa, sets, start, backward, tokens, logprobs, total=False)
    return scores.trace(lambda log_weights: int(torch.argmax(log_weights)))


def batch_masks(canvases: Iterable[Canvas], device: torch.device | str | None = None) -> torch.Tensor:
    """Masks of several canvases of equal length, bool ``[B, L, V]``."""
    stacked = torch.stack([canvas.masks() for canvas in canvases])
    return stacked.to(device) if device is not None else stacked
