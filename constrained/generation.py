"""Public generation API: ``generate`` for any constraint, ``generate_json`` for a JSON Schema.

Both return a :class:`GenerationResult`. ``model=None`` uses the built-in denoiser
(``constrained.default_model.load_default()``); otherwise pass a ``DiffusionGemmaForBlockDiffusion``, any
``*ForMaskedLM`` model, or a ready :class:`~constrained.denoisers.Denoiser`, with its tokenizer.

Progress can be watched per denoising step: ``callback(step, draft_text)`` receives the whole text as it would
read now, and a transformers ``TextDiffusionStreamer``-style ``streamer`` receives what ``generate`` in
transformers sends it (``put`` the prompt ids, ``put_draft(value=...)`` the current block's draft ids after every
step, ``put`` each committed block's text ids, ``end``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .constraint import BoundConstraint, Constraint
from .default_model import resolve
from .denoisers import Denoiser, as_denoiser
from .errors import ConstraintUnsatisfiable
from .json_schema import json_schema
from .prompts import json_prompt, prompt_ids
from .sampler import DEFAULT_FALLBACK_DRAWS, DEFAULT_MAX_RETRIES, ConstrainedSampler, Sample
from .vocabulary import as_vocabulary

DEFAULT_MAX_NEW_TOKENS = 128


@dataclass(frozen=True)
class GenerationResult:
    """The generated ``text`` (and parsed ``value`` for JSON), with its cost in denoiser forward passes."""

    text: str
    token_ids: list[int]
    forward_passes: int
    value: Any = None
    blocks: tuple[tuple[int, ...], ...] = ()

    @property
    def tokens_per_forward(self) -> float:
        """Text tokens per denoiser forward pass, the usual speed figure of diffusion decoding."""
        return len(self.token_ids) / self.forward_passes if self.forward_passes else 0.0


@dataclass
class Session:
    """What one call needs, resolved once: the denoiser, the tokenizer, the bound constraint, the RNG."""

    denoiser: Denoiser
    tokenizer: Any
    bound: BoundConstraint | None
    generator: torch.Generator

    def prompt_ids(self, prompt: str | list[int]) -> list[int]:
        """The first canvas's context (:func:`constrained.prompts.prompt_ids`)."""
        return prompt_ids(self.tokenizer, prompt)

    def end_token_ids(self) -> tuple[int, ...]:
        """The constraint's end tokens; unconstrained, the model's own stop tokens when it declares them."""
        if self.bound is not None:
            return tuple(self.bound.eos_token_ids)
        declared = getattr(self.denoiser, "stop_token_ids", None)
        return tuple(declared) if declared is not None else tuple(as_vocabulary(self.tokenizer).end_token_ids)

    def decode(self, token_ids: list[int]) -> str:
        """Exact bytes under a constraint (what it judged); the tokenizer's own decode otherwise, special tokens
        shown as nothing (a draft of a random model may hold them)."""
        if self.bound is not None:
            return self.bound.decode(token_ids)
        if hasattr(self.tokenizer, "decode"):
            return self.tokenizer.decode(token_ids, skip_special_tokens=True)
        vocabulary = as_vocabulary(self.tokenizer)
        return b"".join(vocabulary.token_bytes[t] or b"" for t in token_ids).decode("utf-8", errors="replace")


def open_session(
    constraint: Constraint | None, model: Any, tokenizer: Any, steps: int | None, seed: int | None, options: dict
) -> Session:
    """Resolve the model (built-in when ``None``), wrap it as a denoiser, bind the constraint, seed the RNG."""
    denoiser, tokenizer = resolve_denoiser(model, tokenizer, steps, options)
    return bind_session(denoiser, tokenizer, constraint, seed)


def resolve_denoiser(model: Any, tokenizer: Any, steps: int | None, options: dict) -> tuple[Denoiser, Any]:
    """The denoiser of ``model`` (the built-in one when ``None``) and the tokenizer its constraints bind to."""
    model, tokenizer = resolve(model, tokenizer)
    return as_denoiser(model, tokenizer, steps=steps, **options), tokenizer


def bind_session(
    denoiser: Denoiser, tokenizer: Any, constraint: Constraint | BoundConstraint | None, seed: int | None
) -> Session:
    """One request's session on a resolved denoiser: its constraint bound (an already bound one, bound to this
    tokenizer, is shared as it is), its own RNG seeded."""
    bound = constraint.bind(tokenizer) if isinstance(constraint, Constraint) else constraint
    generator = torch.Generator(device=getattr(denoiser, "device", torch.device("cpu")))
    generator.manual_seed(int(seed) if seed is not None else int(torch.randint(0, 2**62, (1,))))
    return Session(denoiser, tokenizer, bound, generator)


def package(session: Session, sample: Sample) -> GenerationResult:
    """A finished run as the user sees it: the text (exact bytes under a constraint), its tokens and cost."""
    token_ids = sample.token_ids
    return GenerationResult(session.decode(token_ids), token_ids, sample.forward_passes, blocks=sample.blocks)


def with_json_value(result: GenerationResult) -> GenerationResult:
    """``result`` with its text parsed as JSON into ``.value``; a text that does not parse fails the run."""
    try:
        value = json.loads(result.text)
    except json.JSONDecodeError as error:
        raise ConstraintUnsatisfiable(f"the generated text is not JSON: {error}", partial=result.text) from error
    return GenerationResult(result.text, result.token_ids, result.forward_passes, value, result.blocks)


def run_sampler(
    session: Session,
    prompt_ids: list[int],
    action: Callable[[ConstrainedSampler], Sample],
    *,
    callback: Callable[[int, str], None] | None,
    streamer: Any,
    max_retries: int,
    fallback_draws: int = DEFAULT_FALLBACK_DRAWS,
) -> GenerationResult:
    """Run ``action`` on a sampler wired to the callback and streamer, and package the result."""
    committed: list[int] = []
    ends = session.end_token_ids()

    def text_ids(tokens: list[int]) -> list[int]:
        cut = next((i for i, token in enumerate(tokens) if token in ends), len(tokens))
        return tokens[:cut]

    def on_draft(step: int, draft: torch.Tensor) -> None:
        if streamer is not None and hasattr(streamer, "put_draft"):
            streamer.put_draft(value=draft.unsqueeze(0).cpu())
        if callback is not None:
            callback(step, session.decode(text_ids(committed + draft.tolist())))

    def on_commit(block: list[int]) -> None:
        committed.extend(block)
        if streamer is not None:
            streamer.put(torch.tensor([text_ids(block)], dtype=torch.long))

    sampler = ConstrainedSampler(
        session.denoiser, session.bound, session.generator, end_token_ids=ends, max_retries=max_retries,
        fallback_draws=fallback_draws, on_draft=on_draft, on_commit=on_commit,
    )
    if streamer is not None:
        streamer.put(torch.tensor([prompt_ids], dtype=torch.long))
    try:
        sample = action(sampler)
    finally:
        if streamer is not None:
            streamer.end()
    return package(session, sample)


def generate(
    constraint: Constraint | None,
    prompt: str | list[int],
    *,
    model: Any = None,
    tokenizer: Any = None,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    steps: int | None = None,
    seed: int | None = None,
    callback: Callable[[int, str], None] | None = None,
    streamer: Any = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
    fallback_draws: int = DEFAULT_FALLBACK_DRAWS,
    **denoiser_options: Any,
) -> GenerationResult:
    """Generate up to ``max_new_tokens`` tokens after ``prompt`` that ``constraint`` accepts.

    ``constraint=None`` runs the model's own sampler unchanged (for DiffusionGemma, token for token what
    transformers' ``generate`` produces with the same seed). ``steps`` is the number of denoising steps per block.
    ``max_retries`` and ``fallback_draws`` bound what a block that fails the constraint gets: rounds of denoising
    again, then admissible blocks drawn from the last logits (:class:`~constrained.sampler.ConstrainedSampler`).
    Raises :class:`ConstraintUnsatisfiable` (with the partial text) when no accepted text fits in the budget,
    :class:`DenoiserError` for a model that cannot serve (no mask token, prompt too long, non-finite logits).
    Each call opens its own session (denoiser state, canvases, generator); the model and bound constraints are
    shared read-only.
    """
    session = open_session(constraint, model, tokenizer, steps, seed, denoiser_options)
    prompt_ids = session.prompt_ids(prompt)
    return run_sampler(
        session, prompt_ids, lambda sampler: sampler.generate(prompt_ids, max_new_tokens),
        callback=callback, streamer=streamer, max_retries=max_retries, fallback_draws=fallback_draws,
    )


def generate_json(schema: Any, prompt: str, *, grounded: bool = False, **options: Any) -> GenerationResult:
    """A JSON value valid under ``schema`` for the request ``prompt``; ``.value`` holds it parsed.

    ``options`` are :func:`generate`'s (``model``, ``tokenizer``, ``max_new_tokens``, ``steps``, ``seed``,
    ``callback``, ``streamer``, ``max_retries``, denoiser options). ``grounded=True`` extracts rather than writes:
    free string and number values can only be spans and numbers of ``prompt`` (``json_schema(schema,
    grounded_in=prompt)``), so the model may pick the wrong span but never misspell or invent one.
    """
    constraint = json_schema(schema, grounded_in=prompt if grounded else None)
    result = generate(constraint, json_prompt(schema, prompt), **options)
    return with_json_value(result)
