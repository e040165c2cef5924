"""The constrained denoising loop: a constraint's canvas between a diffusion model's logits and its choices.

Per step, for the block being denoised:

1. the canvas lattice gives the exact allowed tokens of every position given what is decided so far, and the
   denoiser's logits outside them become ``-inf`` (so sampling, entropies, confidences and self-conditioning all
   see the constrained distribution);
2. the denoiser's own rule proposes positions to accept, most confident first;
3. each proposed token is decided in that order and kept only if the canvas stays feasible: the masks guarantee
   that any one token is completable, but two tokens accepted together may not be (``{"a": 1`` at position 3 and
   ``]`` at position 7), and the less confident one of a clashing pair is the one given up;
4. the rest is remasked (mask models) or renoised from its allowed tokens (uniform-noise models).

A block ends when the denoiser's stopping rule fires or its steps run out. Its output (the denoiser's draft) is
committed only if it satisfies the constraint: jointly feasible, and when the text ends in it, passing the
constraint's commit-time ``check`` too. Otherwise positions are reopened and denoised again, at most
``max_retries`` times: for a draft that clashes, everything from its first clash on (read left to right), for a
failed check the least confident positions. Then the exact
constrained MAP decode of the last logits gives an admissible block. Where even that fails the commit-time check,
admissible blocks are drawn from the same logits (forward filtering, backward sampling on the lattice) until one
passes, at most ``fallback_draws``; after that the run raises :class:`ConstraintUnsatisfiable` with the text so
far, never returning an invalid one.

Longer outputs are generated block by block (block-autoregressive). The lattice canvas of each block spans the
*whole remaining budget*, not only the block: the positions after the block stay open, so a block is only ever
accepted if the text can still be finished within ``max_new_tokens``; the next block starts from the automaton
state the committed one reaches.

Batches: a run is a *row program*, a generator that yields a :class:`Forward` (its block's tokens, the steps
left, its lattice canvas) whenever it needs the model, and receives that row's logits back. A
:class:`BatchRunner` keeps up to ``max_rows`` programs in flight and serves all their pending requests with one
``predict`` per step (one per block length), so each row's logic is exactly the single-request loop while the
forward passes are shared. A finished row leaves at once and a waiting one takes its place at its first block.
Every row draws from its own generator, so its output does not depend on the batch around it.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import torch

from .constraint import BoundConstraint
from .denoisers.base import Denoiser, Proposal
from .errors import ConstrainedError, ConstraintUnsatisfiable, DenoiserError, RequestError
from .lattice import Canvas, unpack_masks

#: Receives ``(step, draft tokens of the current block)`` after every denoiser forward pass.
DraftCallback = Callable[[int, torch.Tensor], None]
#: Receives each block's tokens as it is committed.
CommitCallback = Callable[[list[int]], None]

#: Rounds that redo a block after its first: each reopens the draft from its first clash (or, for a failed
#: commit-time check, its least confident positions). More rounds buy field accuracy on the built-in model's
#: held-out extraction for more forward passes; this is where the gain levels off (benchmarks/README.md).
DEFAULT_MAX_RETRIES = 4
#: Admissible blocks drawn from the last logits when even the MAP block fails the commit-time check.
DEFAULT_FALLBACK_DRAWS = 32
#: The draws' temperatures, in turn: peaked logits would give the MAP block again and again, so later
#: shares flatten them, up to 4x. One forward pass of the lattice per temperature serves its whole share.
FALLBACK_TEMPERATURES = (1.0, 2.0, 3.0, 4.0)


@dataclass(frozen=True)
class Sample:
    """What a run produced: the committed blocks as denoised (end tokens included) and the cost."""

    blocks: tuple[tuple[int, ...], ...]
    forward_passes: int
    end_token_ids: tuple[int, ...]

    @property
    def token_ids(self) -> list[int]:
        """The text's tokens: everything before the first end token."""
        tokens: list[int] = []
        for block in self.blocks:
            for token in block:
                if token in self.end_token_ids:
                    return tokens
                tokens.append(token)
        return tokens


@dataclass
class _Round:
    """The state after one round of denoising steps on a block.

    ``confidence`` ranks the block's positions for what a failed commit-time check reopens: a mask model's
    decided positions keep the confidence they were accepted with (their last prediction is forced, hence
    certain); everything else has the last prediction's.
    """

    logits: torch.Tensor
    draft: torch.Tensor
    confidence: torch.Tensor


@dataclass
class Forward:
    """A row program's request for one forward pass: its block's ``tokens`` ``[L]`` with ``remaining`` steps left,
    under the masks of ``lattice`` (``None``: unconstrained)."""

    context: Any
    tokens: torch.Tensor
    remaining: int
    lattice: Canvas | None


#: A run of one request: yields :class:`Forward` requests, is sent that row's logits ``[L, V]``, returns its Sample.
RowProgram = Generator[Forward, torch.Tensor, "Sample"]


class ConstrainedSampler:
    """Run a :class:`Denoiser` under an optional :class:`BoundConstraint` (``None``: the model's own sampler).

    One sampler is one request; :meth:`generate` and :meth:`infill` run it alone, :meth:`program` gives its run
    as a row program for a :class:`BatchRunner` to share forward passes with others. Not thread-safe: a sampler
    holds one run's state (its denoiser's context, its generator, its mask cache); use one per thread. Samplers in
    different threads may share one :class:`BoundConstraint`.
    """

    def __init__(
        self,
        denoiser: Denoiser,
        bound: BoundConstraint | None,
        generator: torch.Generator,
        *,
        end_token_ids: tuple[int, ...] = (),
        max_retries: int = DEFAULT_MAX_RETRIES,
        fallback_draws: int = DEFAULT_FALLBACK_DRAWS,
        on_draft: DraftCallback | None = None,
        on_commit: CommitCallback | None = None,
    ) -> None:
        self.denoiser = denoiser
        self.bound = bound
        self.generator = generator
        self.end_token_ids = tuple(bound.eos_token_ids) if bound is not None else tuple(end_token_ids)
        self.max_retries = max_retries
        self.fallback_draws = fallback_draws
        self.on_draft = on_draft
        self.on_commit = on_commit
        self.forward_passes = 0
        self._context: Any = None

    # ---------------------------------------------------------------- public entry points

    def generate(self, prompt_ids: list[int], max_new_tokens: int) -> Sample:
        """Up to ``max_new_tokens`` tokens of text after the prompt, block by block.

        Raises :class:`RequestError` for a budget below one token, :class:`ConstraintUnsatisfiable` (with the
        text so far) when no accepted text fits, :class:`DenoiserError` when the model cannot serve.
        """
        return run_alone(self.denoiser, self.program(prompt_ids, max_new_tokens))

    def infill(self, prompt_ids: list[int], tokens: list[int | None]) -> Sample:
        """Regenerate the ``None`` positions of a whole-text canvas, keeping the others exactly."""
        return run_alone(self.denoiser, self.infill_program(prompt_ids, tokens))

    def program(self, prompt_ids: list[int], max_new_tokens: int) -> RowProgram:
        """The run of :meth:`generate` as a row program; its errors are raised when it is first advanced."""
        if max_new_tokens <= 0:
            raise RequestError(f"max_new_tokens must be positive, got {max_new_tokens}")
        length = self.denoiser.canvas_length
        n_blocks = math.ceil(max_new_tokens / length)
        self._context = self.denoiser.begin(prompt_ids, n_blocks * length)
        blocks: list[tuple[int, ...]] = []
        state = None
        for index in range(n_blocks):
            last = index == n_blocks - 1
            canvas = self._budget_canvas(n_blocks * length - index * length, max_new_tokens - index * length, state)
            if canvas is not None and not canvas.feasible():
                raise ConstraintUnsatisfiable(
                    f"no text accepted by the constraint fits in max_new_tokens={max_new_tokens}",
                    partial=self._text(blocks),
                )
            block = yield from self._block(canvas, length, prefix=blocks, last=last)
            blocks.append(tuple(block))
            if self.on_commit is not None:
                self.on_commit(block)
            if last or any(token in self.end_token_ids for token in block):
                break
            if self.bound is not None:
                state = self.bound.canvas_from(block, final=False, start=state).end_state()
            self.denoiser.commit(self._context, block)
        return Sample(tuple(blocks), self.forward_passes, self.end_token_ids)

    def infill_program(self, prompt_ids: list[int], tokens: list[int | None]) -> RowProgram:
        """The run of :meth:`infill` as a row program."""
        if self.bound is None:
            raise RequestError("infill needs a constraint")
        canvas = self.bound.canvas_from(tokens, final=True)
        if not canvas.feasible():
            raise ConstraintUnsatisfiable("no accepted text agrees with the kept tokens", partial=None)
        self._context = self.denoiser.begin(prompt_ids, len(tokens))
        block = yield from self._block(canvas, len(tokens), prefix=[], last=True)
        if self.on_commit is not None:
            self.on_commit(block)
        return Sample((tuple(block),), self.forward_passes, self.end_token_ids)

    # ---------------------------------------------------------------- one block

    def _budget_canvas(self, positions: int, text_budget: int, state: int | None) -> Canvas | None:
        """The lattice canvas of the rest of the run, positions past ``max_new_tokens`` fixed to an end token."""
        if self.bound is None:
            return None
        canvas = self.bound.canvas(positions, final=True, start=state)
        canvas.decide({i: self.end_token_ids[0] for i in range(max(text_budget, 0), positions)})
        return canvas

    def _block(self, cv: Canvas | None, length: int, *, prefix: list, last: bool) -> Generator:
        """Denoise positions ``0..length-1`` of ``cv`` until they form an admissible block; see the module doc."""
        tokens = self.denoiser.new_block(self._context, self.generator, length)
        fixed = torch.zeros(length, dtype=torch.bool)
        user_fixed: set[int] = set()
        if cv is not None:
            given = {i: token for i, token in enumerate(cv.tokens[:length]) if token is not None}
            user_fixed = set(given)
            if given:
                positions = torch.tensor(sorted(given))
                tokens[positions] = torch.tensor([given[i] for i in sorted(given)], device=tokens.device)
                fixed[positions] = True
        accepted_with = torch.full((length,), float("nan"))
        for attempt in range(self.max_retries + 1):
            result = yield from self._denoise(cv, tokens, fixed, accepted_with)
            block = result.draft.tolist()
            if cv is None:
                return block
            reopen = self._decide_draft(cv, result.draft, length)
            if not reopen:
                violation = self._violation(prefix, block, last)
                if violation is None:
                    return block
                reopen = self._least_confident(result.confidence, block, user_fixed, attempt)
            if attempt == self.max_retries:
                return self._map_fallback(cv, result.logits, length, user_fixed, prefix, last)
            cv.decide({i: None for i in reopen})
            accepted_with[reopen] = float("nan")
            fixed = torch.tensor([token is not None for token in cv.tokens[:length]])
            allowed = self._block_masks(cv, length) if self.denoiser.noise == "uniform" else None
            tokens = self.denoiser.renoise(result.draft.clone(), fixed, allowed, self.generator)
        raise AssertionError("unreachable: the last attempt returns")

    def _denoise(
        self, cv: Canvas | None, tokens: torch.Tensor, fixed: torch.Tensor, accepted_with: torch.Tensor
    ) -> Generator:
        """One round of up to ``steps`` denoising steps; ``fixed`` positions are kept throughout.

        ``accepted_with`` records, for a mask model, the confidence each position was accepted with.
        """
        persistent = self.denoiser.noise == "mask"
        fixed = fixed.clone()
        result = None
        for remaining in range(self.denoiser.steps, 0, -1):
            logits = yield Forward(self._context, tokens, remaining, cv)
            self.forward_passes += 1
            proposal = self.denoiser.propose(self._context, logits, tokens, self.generator)
            accepted = self._accept(cv, proposal, fixed)
            if cv is not None and any(accepted.values()) and not cv.feasible():
                raise AssertionError("accepted tokens left the canvas infeasible")
            keep = fixed.clone()
            chosen = [i for i, ok in accepted.items() if ok]
            keep[chosen] = True
            next_tokens = tokens.clone()
            next_tokens[chosen] = proposal.tokens[chosen]
            noise_allowed = None
            if cv is not None and not persistent:
                noise_allowed = self._block_masks(cv, tokens.shape[0])
                cv.decide({i: None for i in chosen if not fixed[i]})
            tokens = self.denoiser.renoise(next_tokens, keep, noise_allowed, self.generator)
            if persistent:
                newly = [i for i in chosen if not fixed[i]]
                accepted_with[newly] = proposal.confidence[newly].float().cpu()
                fixed = keep
            draft = self.denoiser.draft(logits, tokens)
            if self.on_draft is not None:
                self.on_draft(self.forward_passes, draft)
            last = proposal.confidence.float().cpu()
            result = _Round(logits, draft, torch.where(torch.isnan(accepted_with), last, accepted_with))
            if self.denoiser.converged(self._context, logits, draft, tokens):
                break
        if result is None:
            raise DenoiserError("the denoiser is configured with zero steps")
        return result
    def _accept(self, cv: Canvas | None, proposal: Proposal, fixed: torch.Tensor) -> dict[int, bool]:
        """Decide the proposed positions in order while the canvas stays feasible; ``{position: accepted}``."""
        outcome: dict[int, bool] = {}
        for position in proposal.order.tolist():
            if cv is None or fixed[position]:
                outcome[position] = True
                continue
            token = int(proposal.tokens[position])
            cv.decide({position: token})
            outcome[position] = cv.feasible()
            if not outcome[position]:
                cv.decide({position: None})
        return outcome

    def _decide_draft(self, cv: Canvas, draft: torch.Tensor, length: int) -> list[int]:
        """Decide the draft left to right up to its first clash; that position and the open ones after it stay
        open (returned).

        The tokens right of a clash were predicted around a layout that the left part contradicts (a value one
        token longer shifts every later key); kept, they would pin that layout and leave the retry only holes
        to fill, which strings then absorb as junk. Reopening the rest buys field accuracy for more forward
        passes (benchmarks/README.md).
        """
        for position in range(length):
            if cv.tokens[position] is not None:
                continue
            cv.decide({position: int(draft[position])})
            if not cv.feasible():
                cv.decide({position: None})
                return [i for i in range(position, length) if cv.tokens[i] is None]
        return []

    def _least_confident(self, confidence: torch.Tensor, block: list[int], user_fixed: set, attempt: int) -> list[int]:
        """For a failed commit-time check: a growing share of the least confident text positions."""
        text = [i for i, token in enumerate(block) if token not in self.end_token_ids and i not in user_fixed]
        if not text:
            return []
        count = max(1, math.ceil(len(text) * (attempt + 1) / (self.max_retries + 1)))
        return sorted(text, key=lambda i: float(confidence[i]))[:count]

    def _violation(self, prefix: list, block: list[int], last: bool) -> str | None:
        """The commit-time check, once the text ends in this block."""
        if not last and not any(token in self.end_token_ids for token in block):
            return None
        return self.bound.constraint.violation(self._text([*prefix, tuple(block)]))

    def _map_fallback(
        self, cv: Canvas, logits: torch.Tensor, length: int, user_fixed: set, prefix: list, last: bool
    ) -> list[int]:
        """The most probable admissible block under the last logits, or, where it fails the commit-time check,
        the first of ``fallback_draws`` admissible blocks drawn from those logits (in equal shares at the
        temperatures of :data:`FALLBACK_TEMPERATURES`, each share from one forward pass) that passes; the run
        fails when none does."""
        cv.decide({i: None for i in range(length) if i not in user_fixed and cv.tokens[i] is not None})
        logprobs = block_logprobs(cv, logits)
        block = cv.map_decode(logprobs)[:length]
        violation = self._violation(prefix, block, last)
        tried = {tuple(block)}
        share = -(-self.fallback_draws // len(FALLBACK_TEMPERATURES))
        for temperature in FALLBACK_TEMPERATURES if violation is not None and share else ():  # each: one pass
            for drawn in itertools.islice(cv.sample_decodes(logprobs / temperature, self.generator), share):
                drawn = drawn[:length]
                if tuple(drawn) in tried:
                    continue
                tried.add(tuple(drawn))
                if self._violation(prefix, drawn, last) is None:
                    block, violation = drawn, None
                    break
            if violation is None:
                break
        if violation is not None:
            raise ConstraintUnsatisfiable(
                f"the constrained decode still violates the constraint: {violation} "
                f"(and {len(tried) - 1} other admissible draws failed the check too)",
                partial=self._text([*prefix, tuple(block)]),
            )
        cv.decide(dict(enumerate(block)))
        return block

    # ---------------------------------------------------------------- helpers

    def _block_masks(self, cv: Canvas, length: int) -> torch.Tensor:
        """Allowed tokens ``[length, V_model]`` of the block's positions, on the denoiser's device."""
        return fit_vocabulary(lattice_masks(cv, length, _device(self.denoiser)), self.denoiser.vocab_size)

    def _text(self, blocks: list) -> str | None:
        if self.bound is None:
            return None
        return self.bound.decode(Sample(tuple(blocks), 0, self.end_token_ids).token_ids)


def _device(denoiser: Denoiser) -> torch.device:
    return getattr(denoiser, "device", torch.device("cpu"))


def lattice_masks(lattice: Canvas, length: int, device: torch.device) -> torch.Tensor:
    """Bool ``[length, V_tokenizer]`` masks of a lattice canvas's first positions, on ``device``.

    On the CPU the canvas's own bool rows (kept up to date incrementally) are read directly; for an accelerator
    the packed bitmask is moved, a 32nd of the bytes, and unpacked there.
    """
    if device.type == "cpu":
        return lattice.masks()[:length]
    return unpack_masks(lattice.packed_masks(copy=False)[:length].to(device), lattice.vocab_size)


def fit_vocabulary(rows: torch.Tensor, model_vocab_size: int) -> torch.Tensor:
    """Masks ``[..., V_tokenizer]`` as ``[..., model_vocab_size]``.

    The model's output layer may be wider than the tokenizer (padding rows, never allowed) or narrower (then
    every row must still allow one of the model's tokens).
    """
    vocab_size = rows.shape[-1]
    if vocab_size < model_vocab_size:
        padding = torch.zeros(*rows.shape[:-1], model_vocab_size - vocab_size, dtype=torch.bool, device=rows.device)
        rows = torch.cat([rows, padding], dim=-1)
    elif vocab_size > model_vocab_size:
        rows = rows[..., :model_vocab_size]
        if not rows.any(dim=-1).all():
            raise DenoiserError(
                f"the model's vocabulary ({model_vocab_size}) lacks tokens the constraint needs (tokenizer has "
                f"{vocab_size})"
            )
    return rows


def block_logprobs(lattice: Canvas, logits: torch.Tensor) -> torch.Tensor:
    """Log-probabilities ``[positions, V_tokenizer]`` of a lattice canvas for its decodes: the block's rows from
    ``logits`` ``[L, V_model]`` (the model's extra tokens dropped), the positions after the block left flat."""
    length = logits.shape[0]
    logprobs = torch.zeros(len(lattice.tokens), lattice.vocab_size, dtype=torch.float32)
    rows = torch.log_softmax(logits.float(), dim=-1).cpu()
    width = min(rows.shape[1], lattice.vocab_size)
    logprobs[:length] = float("-inf")
    logprobs[:length, :width] = rows[:, :width]
    return logprobs


def run_alone(denoiser: Denoiser, program: RowProgram) -> Sample:
    """Run one row program to its end; its error is raised."""
    runner = BatchRunner(denoiser)
    outcome: list = []
    runner.add(program, outcome.append)
    while runner.busy:
        runner.step()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


@dataclass
class BatchStats:
    """What a :class:`BatchRunner` spent: forward passes (one per step and block length), the rows they served,
    and the wall time of the model's ``predict`` against everything else (the constraint's and the rows' own
    work: masks, acceptance, renoising, checks, decodes)."""

    forward_passes: int = 0
    row_steps: int = 0
    predict_seconds: float = 0.0
    other_seconds: float = 0.0

    @property
    def constraint_share(self) -> float:
        """The share of step time spent outside the model's forward pass."""
        total = self.predict_seconds + self.other_seconds
        return self.other_seconds / total if total else 0.0


@dataclass
class _Live:
    program: RowProgram
    done: Callable[[Any], None]
    request: Forward | None = None


@dataclass
class BatchRunner:
    """Row programs sharing forward passes: at most ``max_rows`` in flight, the rest waiting in order.

    Each :meth:`step` serves every live row's pending :class:`Forward` with one ``predict`` per block length
    (the masks of all constrained rows packed into one tensor, moved to the device once and unpacked there),
    sends each row its logits and lets it run to its next request. A row that returns or raises a
    :class:`ConstrainedError` is handed to its ``done`` callback (the Sample, or the error) and leaves; a waiting
    row takes its slot at once, starting with its first block.
    """

    denoiser: Denoiser
    max_rows: int | None = None
    stats: BatchStats = field(default_factory=BatchStats)
    _live: list[_Live] = field(default_factory=list)
    _waiting: list[_Live] = field(default_factory=list)

    def add(self, program: RowProgram, done: Callable[[Any], None]) -> None:
        """Queue a row program; ``done`` receives its Sample or its ConstrainedError."""
        self._waiting.append(_Live(program, done))

    @property
    def busy(self) -> bool:
        """Whether any row is live or waiting."""
        return bool(self._live or self._waiting)

    def step(self) -> None:
        """Admit waiting rows into free slots, then one forward pass per block length for the live rows."""
        started = time.perf_counter()
        predicting = 0.0
        while self._waiting and (self.max_rows is None or len(self._live) < self.max_rows):
            row = self._waiting.pop(0)
            if self._advance(row, None):
                self._live.append(row)
        by_length: dict[int, list[_Live]] = {}
        for row in self._live:
            by_length.setdefault(row.request.tokens.shape[0], []).append(row)
        for rows in by_length.values():
            tokens = torch.stack([row.request.tokens for row in rows]).to(_device(self.denoiser))
            allowed = self._allowed(rows)
            before = time.perf_counter()
            try:
                logits = self.denoiser.predict(
                    [row.request.context for row in rows], tokens, [row.request.remaining for row in rows], allowed
                )
            except ConstrainedError as error:  # the model failed this pass: every row in it fails with it
                for row in rows:
                    self._finish(row, error)
                continue
            finally:
                predicting += time.perf_counter() - before
            self.stats.forward_passes += 1
            self.stats.row_steps += len(rows)
            for index, row in enumerate(rows):
                self._advance(row, logits[index])
        self.stats.predict_seconds += predicting
        self.stats.other_seconds += time.perf_counter() - started - predicting

    def _allowed(self, rows: list[_Live]) -> torch.Tensor | None:
        """The rows' masks ``[B, L, V_model]`` (``None`` when no row is constrained).

        For an accelerator, one packed tensor for the batch is moved and unpacked there; on the CPU the
        canvases' bool rows are stacked.
        """
        lattices = [row.request.lattice for row in rows]
        constrained = [lattice is not None for lattice in lattices]
        if not any(constrained):
            return None
        length = rows[0].request.tokens.shape[0]
        reference = next(lattice for lattice in lattices if lattice is not None)
        device = _device(self.denoiser)
        if device.type == "cpu":
            masks = torch.ones((len(rows), length, reference.vocab_size), dtype=torch.bool)
            for index, lattice in enumerate(lattices):
                if lattice is not None:
                    masks[index] = lattice_masks(lattice, length, device)
        else:
            words = reference.packed_masks(copy=False).shape[1]
            packed = torch.full((len(rows), length, words), -1, dtype=torch.int32)  # unconstrained rows: all bits
            for index, lattice in enumerate(lattices):
                if lattice is not None:
                    packed[index] = lattice.packed_masks(copy=False)[:length]
            packed = packed.to(device)
            masks = unpack_masks(packed.view(-1, words), reference.vocab_size).view(len(rows), length, -1)
        allowed = fit_vocabulary(masks, self.denoiser.vocab_size)
        if not all(constrained):
            allowed[torch.tensor([not c for c in constrained], device=device)] = True
        return allowed

    def _advance(self, row: _Live, logits: torch.Tensor | None) -> bool:
        """Run the row to its next request; False (and ``done`` called) when it has finished."""
        try:
            row.request = row.program.send(logits) if logits is not None else next(row.program)
            return True
        except StopIteration as stop:
            self._finish(row, stop.value)
        except ConstrainedError as error:
            self._finish(row, error)
        return False

    def _finish(self, row: _Live, outcome: Any) -> None:
        if row in self._live:
            self._live.remove(row)
        row.program.close()
        row.done(outcome)
