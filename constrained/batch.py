"""Batched generation: many requests, each with its own constraint, prompt, budget and seed, one forward pass per step.

Every request runs exactly the single-request loop of :mod:`constrained.sampler` (masks, joint acceptance,
remasking, retries, commit-time checks, MAP and fallback draws) as a row of a shared batch; only the model's
forward pass is shared. At most ``max_batch_size`` rows are in flight: a row that finishes leaves, and the next
waiting request takes its slot at once, starting its first block (continuous batching), so a long request does
not hold the others back. A request's output depends only on the request (its seed included), not on the batch
around it, up to the floating-point reordering of a batched matrix product.

A request that is malformed (bad prompt, budget below one token, a prompt too long for the model) or whose
constraint cannot be satisfied fails alone: its slot in the returned list holds its typed error, and the other
requests come back.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .constraint import BoundConstraint, Constraint
from .errors import ConstrainedError, RequestError
from .generation import (
    DEFAULT_MAX_NEW_TOKENS,
    GenerationResult,
    bind_session,
    package,
    resolve_denoiser,
    with_json_value,
)
from .json_schema import json_schema
from .prompts import json_prompt
from .sampler import DEFAULT_FALLBACK_DRAWS, DEFAULT_MAX_RETRIES, BatchRunner, BatchStats, ConstrainedSampler

#: Rows in flight at once unless told otherwise.
DEFAULT_MAX_BATCH_SIZE = 64
#: What a request's ``options`` may set: the sampler's own knobs, per request.
REQUEST_OPTIONS = frozenset({"max_retries", "fallback_draws"})


@dataclass(frozen=True)
class Request:
    """One generation in a batch.

    ``prompt`` is text (formatted by the model's prompt convention) or token ids; ``constraint`` ``None`` runs the
    model's own sampler, and one already bound to the batch's tokenizer (:class:`BoundConstraint`) is shared
    without binding it again (a server binds each schema once); ``seed`` ``None`` draws one. ``options`` sets the
    sampler's per-request knobs (``max_retries``, ``fallback_draws``); ``json=True`` parses the text into the
    result's ``.value``.
    """

    prompt: str | list[int]
    constraint: Constraint | BoundConstraint | None = None
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    seed: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    json: bool = False

    @classmethod
    def for_json(cls, schema: Any, prompt: str, *, grounded: bool = False, **fields: Any) -> Request:
        """The request :func:`constrained.generate_json` makes: the schema's constraint and its JSON prompt.

        Raises the schema's typed error (:class:`SchemaError`, :class:`UnsupportedSchema`) at once.
        """
        constraint = json_schema(schema, grounded_in=prompt if grounded else None)
        return cls(json_prompt(schema, prompt), constraint, json=True, **fields)


class Batcher:
    """A continuous batch on one model: :meth:`submit` requests at any time, :meth:`step` runs one forward pass.

    What :func:`generate_batch` runs, for a caller that feeds requests as they arrive (a server's worker thread):
    a submitted request joins at the next step and its ``done`` callback receives its :class:`GenerationResult`
    or its :class:`ConstrainedError`. Not thread-safe: submit and step from one thread.

    Parameters: as :func:`generate_batch`. Raises :class:`RequestError` for a ``max_batch_size`` below one.
    """

    def __init__(
        self,
        *,
        model: Any = None,
        tokenizer: Any = None,
        steps: int | None = None,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        stats: BatchStats | None = None,
        **denoiser_options: Any,
    ) -> None:
        if max_batch_size < 1:
            raise RequestError(f"max_batch_size must be at least 1, got {max_batch_size}")
        self.denoiser, self.tokenizer = resolve_denoiser(model, tokenizer, steps, denoiser_options)
        stats = stats if stats is not None else BatchStats()
        self.runner = BatchRunner(self.denoiser, max_rows=max_batch_size, stats=stats)

    @property
    def stats(self) -> BatchStats:
        """Forward passes, row-steps and the split of step time so far."""
        return self.runner.stats

    @property
    def busy(self) -> bool:
        """Whether any request is running or waiting."""
        return self.runner.busy

    def submit(
        self,
        request: Request,
        done: Callable[[GenerationResult | ConstrainedError], None],
        *,
        on_commit: Callable[[list[int]], None] | None = None,
    ) -> None:
        """Queue ``request``; ``done`` receives its outcome, ``on_commit`` each block's tokens as it commits.

        A request that fails before it runs (a bind error, an unknown option) is handed to ``done`` at once.
        """
        try:
            session, program = _start(request, self.denoiser, self.tokenizer, on_commit)
        except ConstrainedError as error:
            done(error)
            return
        self.runner.add(program, _finisher(session, request.json, done))

    def step(self) -> None:
        """One forward pass for the running requests (after letting waiting ones in)."""
        self.runner.step()


def generate_batch(
    requests: Sequence[Request],
    *,
    model: Any = None,
    tokenizer: Any = None,
    steps: int | None = None,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    stats: BatchStats | None = None,
    **denoiser_options: Any,
) -> list[GenerationResult | ConstrainedError]:
    """Generate for every request, sharing each forward pass among up to ``max_batch_size`` of them.

    Parameters: ``model``/``tokenizer`` as in :func:`constrained.generate` (``None``: the built-in model), shared
    by all requests; ``steps`` and ``denoiser_options`` configure the denoiser for the whole batch; ``stats``, when
    given, accumulates the forward passes and the split of step time between the model and the rest.

    Returns one entry per request, in order: its :class:`GenerationResult`, or the :class:`ConstrainedError` it
    failed with (:class:`ConstraintUnsatisfiable` with its partial text, :class:`RequestError`,
    :class:`DenoiserError`, a constraint's bind error).

    Raises :class:`RequestError` for a ``max_batch_size`` below one, and the model's errors that concern every
    request (no tokenizer for an explicit model, unknown denoiser options).
    """
    batcher = Batcher(model=model, tokenizer=tokenizer, steps=steps, max_batch_size=max_batch_size, stats=stats,
                      **denoiser_options)
    results: list[GenerationResult | ConstrainedError | None] = [None] * len(requests)
    for index, request in enumerate(requests):
        batcher.submit(request, functools.partial(results.__setitem__, index))
    while batcher.busy:
        batcher.step()
    return results  # type: ignore[return-value]  # every slot is filled once the batch is idle


def _start(request: Request, denoiser: Any, tokenizer: Any, on_commit: Callable | None) -> tuple:
    """Bind the request's constraint, seed its RNG, and make its row program."""
    unknown = set(request.options) - REQUEST_OPTIONS
    if unknown:
        raise RequestError(f"unknown request options {sorted(unknown)} (known: {sorted(REQUEST_OPTIONS)})")
    session = bind_session(denoiser, tokenizer, request.constraint, request.seed)
    sampler = ConstrainedSampler(
        denoiser, session.bound, session.generator, end_token_ids=session.end_token_ids(),
        max_retries=request.options.get("max_retries", DEFAULT_MAX_RETRIES),
        fallback_draws=request.options.get("fallback_draws", DEFAULT_FALLBACK_DRAWS), on_commit=on_commit,
    )
    return session, sampler.program(session.prompt_ids(request.prompt), request.max_new_tokens)


def _finisher(session: Any, parse_json: bool, done: Callable) -> Callable[[Any], None]:
    """The runner's callback for one request: its Sample packaged (and parsed) for ``done``, or its error."""

    def finish(outcome: Any) -> None:
        if isinstance(outcome, ConstrainedError):
            done(outcome)
            return
        try:
            result = package(session, outcome)
            result = with_json_value(result) if parse_json else result
        except ConstrainedError as error:
            done(error)
            return
        done(result)

    return finish
