"""Edit a valid text in place: regenerate chosen spans under the constraint, keep every other byte.

This is infilling, the thing a diffusion model does natively and an autoregressive one cannot: the whole text is
one canvas, the tokens outside the spans are decided (the model sees them on *both* sides of a span), the tokens
inside are reopened and denoised with the exact lattice masks, so the result is accepted by the constraint.

How spans become canvas positions:

* a span is a character range ``(start, end)`` or, for JSON, a path such as ``$.address.city`` or
  ``$.items[2].name`` (the value at that path; for a non-empty string its contents, keeping the quotes);
* the text is tokenized *piecewise* at the span boundaries, so no token straddles a boundary: the kept pieces
  are fixed token by token and stay byte-identical by construction;
* each span is regenerated with as many tokens as it had. The original tokens prove that this length admits an
  accepted text, so an edit never fails for lack of room; a replacement may still be longer or shorter in
  characters (tokens spell one or many bytes), and ``extra_tokens`` adds open positions where the constraint
  admits them. (A canvas position cannot be deleted, so a span never shrinks below its token count.)
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from .constraint import BoundConstraint, Constraint
from .errors import ConstrainedError
from .generation import DEFAULT_MAX_RETRIES, GenerationResult, open_session, run_sampler
from .vocabulary import TokenVocabulary

Span = tuple[int, int] | str

_PATH_STEP = re.compile(r"""\.([A-Za-z_$][\w$-]*)|\[(\d+)\]|\[(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\]""")
_DECODER = json.JSONDecoder()
_SPACE = " \t\n\r"


def parse_path(path: str) -> list[str | int]:
    """``$.a.b[0]['c d']`` -> ``["a", "b", 0, "c d"]``."""
    if not path.startswith("$"):
        raise ConstrainedError(f"a JSON path starts with '$': {path!r}")
    steps: list[str | int] = []
    position = 1
    while position < len(path):
        match = _PATH_STEP.match(path, position)
        if match is None:
            raise ConstrainedError(f"cannot read the JSON path {path!r} at character {position}")
        name, index, single, double = match.groups()
        steps.append(int(index) if index is not None else next(s for s in (name, single, double) if s is not None))
        position = match.end()
    return steps


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in _SPACE:
        position += 1
    return position


def _expect(text: str, position: int, char: str, path: str) -> int:
    if position >= len(text) or text[position] != char:
        raise ConstrainedError(f"expected {char!r} at character {position} while following {path}")
    return _skip_space(text, position + 1)


def json_value_span(text: str, path: str) -> tuple[int, int]:
    """Character range of the value at ``path`` in the JSON ``text``."""
    position = _skip_space(text, 0)
    for step in parse_path(path):
        opening = text[position : position + 1]
        if isinstance(step, str) and opening == "{":
            position = _skip_space(text, position + 1)
            while True:
                if text[position : position + 1] == "}":
                    raise ConstrainedError(f"{path}: no key {step!r} in the object")
                key, position = _DECODER.raw_decode(text, position)
                position = _expect(text, _skip_space(text, position), ":", path)
                if key == step:
                    break
                position = _skip_space(text, _DECODER.raw_decode(text, position)[1])
                if text[position : position + 1] == ",":
                    position = _skip_space(text, position + 1)
        elif isinstance(step, int) and opening == "[":
            position = _skip_space(text, position + 1)
            for _ in range(step):
                if text[position : position + 1] == "]":
                    raise ConstrainedError(f"{path}: index {step} is past the end of the array")
                position = _skip_space(text, _DECODER.raw_decode(text, position)[1])
                position = _expect(text, position, ",", path)
            if text[position : position + 1] == "]":
                raise ConstrainedError(f"{path}: index {step} is past the end of the array")
        else:
            raise ConstrainedError(f"{path}: step {step!r} does not apply to the value at character {position}")
    end = _DECODER.raw_decode(text, position)[1]
    return position, end


def resolve_spans(text: str, spans: Sequence[Span]) -> list[tuple[int, int]]:
    """Character ranges, sorted and merged; JSON paths resolved (a string's contents, quotes kept)."""
    ranges = []
    for span in spans:
        if isinstance(span, str):
            try:
                start, end = json_value_span(text, span)
            except json.JSONDecodeError as error:
                raise ConstrainedError(f"the text is not JSON where {span} leads: {error.msg}") from None
            if text[start] == '"' and end - start > 2:
                start, end = start + 1, end - 1
        else:
            start, end = span
        if not 0 <= start < end <= len(text):
            raise ConstrainedError(f"span {span!r} is not a non-empty range inside the text of {len(text)} characters")
        ranges.append((start, end))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def encode_exact(tokenizer: Any, vocabulary: TokenVocabulary, piece: str) -> list[int]:
    """Tokens spelling exactly ``piece``: the tokenizer's own if they do, else greedy longest byte match."""
    target = piece.encode("utf-8")
    if hasattr(tokenizer, "encode"):
        ids = list(tokenizer.encode(piece, add_special_tokens=False))
        if b"".join(vocabulary.token_bytes[i] or b"\0invalid" for i in ids) == target:
            return ids
    by_bytes: dict[bytes, int] = {}
    for token_id, spelled in enumerate(vocabulary.token_bytes):
        if spelled and token_id not in vocabulary.end_token_ids:
            by_bytes.setdefault(spelled, token_id)
    longest = max(map(len, by_bytes))
    ids, position = [], 0
    while position < len(target):
        for size in range(min(longest, len(target) - position), 0, -1):
            token_id = by_bytes.get(target[position : position + size])
            if token_id is not None:
                ids.append(token_id)
                position += size
                break
        else:
            raise ConstrainedError(f"the vocabulary cannot spell byte {target[position]:#04x} of {piece!r}")
    return ids


def edit_canvas(
    text: str, ranges: list[tuple[int, int]], bound: BoundConstraint, extra_tokens: int = 0
) -> list[int | None]:
    """The whole text as canvas tokens: kept pieces fixed, each span open with its original token count.

    With ``extra_tokens``, each span (left to right) gets up to that many more open positions: the most the
    constraint admits given the choices already made. The original count is always admissible (the original
    tokens fill it), so the search never ends without a canvas.
    """
    pieces: list[list[int] | int] = []  # kept token ids, or the size of an open span
    cursor = 0
    for start, end in [*ranges, (len(text), len(text))]:
        if cursor < start:
            pieces.append(encode_exact(bound.tokenizer, bound.vocabulary, text[cursor:start]))
        if start < end:
            pieces.append(len(encode_exact(bound.tokenizer, bound.vocabulary, text[start:end])))
        cursor = end

    def canvas(sizes: list) -> list[int | None]:
        return [t for piece in sizes for t in (piece if isinstance(piece, list) else [None] * piece)]

    for index, piece in enumerate(pieces):
        if isinstance(piece, int):
            for extra in range(extra_tokens, 0, -1):
                trial = [*pieces[:index], piece + extra, *pieces[index + 1:]]
                if bound.feasible(canvas(trial)):
                    pieces = trial
                    break
    return canvas(pieces)


def edit(
    text: str,
    spans: Sequence[Span],
    constraint: Constraint,
    *,
    prompt: str | list[int] = "",
    model: Any = None,
    tokenizer: Any = None,
    steps: int | None = None,
    seed: int | None = None,
    extra_tokens: int = 0,
    callback: Callable[[int, str], None] | None = None,
    streamer: Any = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
    **denoiser_options: Any,
) -> GenerationResult:
    """Regenerate ``spans`` of the accepted ``text`` under ``constraint``; all other bytes stay as they are.

    Parameters:
        text: a text the constraint accepts.
        spans: what to regenerate: character ranges ``(start, end)`` or, for JSON, paths such as
            ``$.address.city`` (the value there; a non-empty string's contents, keeping its quotes).
        constraint: the constraint the edited text must still satisfy.
        prompt: the request the model sees before the text (a string or token ids).
        model, tokenizer: the denoiser and its tokenizer, as for :func:`constrained.generate`; ``model=None``
            means the built-in model.
        steps: denoising steps per block (the model's default when ``None``).
        seed: seeds the sampler (random when ``None``).
        extra_tokens: open positions each span may gain where the constraint admits them, room for a longer
            replacement (a span keeps at least as many tokens as it had, so it never fails for lack of room).
        callback, streamer, max_retries, denoiser_options: as for :func:`constrained.generate`.

    Returns:
        The :class:`~constrained.generation.GenerationResult` with the whole edited text; ``.value`` holds it
        parsed for a JSON constraint.

    Raises:
        ConstrainedError: the constraint rejects ``text``, or a span is not in it (a range outside the text, a
            path that leads nowhere).
        ConstraintUnsatisfiable: the commit-time check cannot be met (with the partial text).
        DenoiserError: the model cannot serve as a denoiser, or a model came without its tokenizer.
    """
    violation = constraint.violation(text)
    if violation is not None:
        raise ConstrainedError(f"the text to edit is not accepted by the constraint: {violation}")
    ranges = resolve_spans(text, spans)
    session = open_session(constraint, model, tokenizer, steps, seed, denoiser_options)
    tokens = edit_canvas(text, ranges, session.bound, extra_tokens)
    prompt_ids = session.prompt_ids(prompt)
    result = run_sampler(
        session, prompt_ids, lambda sampler: sampler.infill(prompt_ids, tokens),
        callback=callback, streamer=streamer, max_retries=max_retries,
    )
    value = json.loads(result.text) if constraint.kind == "json" else None
    return GenerationResult(result.text, result.token_ids, result.forward_passes, value, result.blocks)
