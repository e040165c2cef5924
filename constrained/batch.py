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

from collections.abc import Mapping, Sequence
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
    if max_batch_size < 1:
        raise RequestError(f"max_batch_size must be at least 1, got {max_batch_size}")
    denoiser, tokenizer = resolve_denoiser(model, tokenizer, steps, denoiser_options)
    runner = BatchRunner(denoiser, max_rows=max_batch_size, stats=stats if stats is not None else BatchStats())
    results: list[GenerationResult | ConstrainedError | None] = [None] * len(requests)
    for index, request in enumerate(requests):
        try:
            session, program = _start(request, denoiser, tokenizer)
        except ConstrainedError as error:
            results[index] = error
            continue
        runner.add(program, _receiver(results, index, session, request.json))
    while runner.busy:
        runner.step()
    return results  # type: ignore[return-value]  # every slot is filled once the runner is idle


def _start(request: Request, denoiser: Any, tokenizer: Any) -> tuple:
    """Bind the request's constraint, seed its RNG, and make its row program."""
    unknown = set(request.options) - REQUEST_OPTIONS
    if unknown:
        raise RequestError(f"unknown request options {sorted(unknown)} (known: {sorted(REQUEST_OPTIONS)})")
    session = bind_session(denoiser, tokenizer, request.constraint, request.seed)
    sampler = ConstrainedSampler(
        denoiser, session.bound, session.generator, end_token_ids=session.end_token_ids(),
        max_retries=request.options.get("max_retries", DEFAULT_MAX_RETRIES),
        fallback_draws=request.options.get("fallback_draws", DEFAULT_FALLBACK_DRAWS),
    )
    return session, sampler.program(session.prompt_ids(request.prompt), request.max_new_tokens)


def _receiver(results: list, index: int, session: Any, parse_json: bool):
    """The ``done`` callback of request ``index``: its packaged result or its error into its slot."""

    def done(outcome: Any) -> None:
        if isinstance(outcome, ConstrainedError):
            results[index] = outcome
            return
        try:
            result = package(session, outcome)
            results[index] = with_json_value(result) if parse_json else result
        except ConstrainedError as error:
            results[index] = error

    return done
