"""Grounded extraction: string and number values restricted to what a source text states.

Why: extraction asks for values that are *in* the text (a name, an email, an order number), and a denoiser
that misspells one (``"Adavelavesorg"`` for ``"Ada Lovelace"``) still writes valid JSON, so the schema alone
cannot catch it. Grounded, every free string value is a span of the text and every number one the text
writes, so a value can be wrong only by being the wrong span, never by being invented.

The spans: the text is cut into clauses at ``,``, ``;``, line breaks and sentence ends (a ``.``, ``!`` or
``?`` followed by a space), each clause into words at whitespace; a candidate string is a run of up to
:data:`MAX_SPAN_WORDS` consecutive words of one clause joined by single spaces, as written and also with the
punctuation around it stripped (``"(Paris)."`` gives ``Paris``). A candidate number is a word that reads as a
JSON number once stripped (and once a leading currency sign is dropped).

The schema compiler (:class:`~constrained.schema.compiler.SchemaCompiler`) keeps, per value, the candidates
that its subschema validates, so a grounded value is exact for its subschema (patterns, formats and bounds
included). Where no candidate fits (the text states no phone number, or writes a date as ``March 3``), an
optional member or array item is left out: the text does not state it. A value the document cannot do without
(a required member, the first ``minItems`` items) keeps its ungrounded language instead, and the compiled
constraint lists its pointer in ``ungrounded``. Keys of members the schema does not list (additional and
pattern properties, and inside unconstrained values) are spans too, so no member is invented whole. Enums,
consts, booleans, null and the schema's listed keys are never grounded.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

#: The longest span of words a grounded string may be.
MAX_SPAN_WORDS = 8

_CLAUSE_BREAK = re.compile(r"[,;\n]|[.!?](?=\s)")
_OUTER_PUNCTUATION = "\"'()[]{}<>.,;:!?"
_CURRENCY = "$€£¥"
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")


@dataclass(frozen=True)
class Grounding:
    """The values a source text offers: candidate strings and numbers, each once, in order of appearance."""

    strings: tuple[str, ...]
    numbers: tuple[int | float, ...]

    @classmethod
    def from_text(cls, text: str, max_span_words: int = MAX_SPAN_WORDS) -> Grounding:
        strings: dict[str, None] = {}
        numbers: dict[str, int | float] = {}
        for clause in _CLAUSE_BREAK.split(text):
            words = clause.split()
            for start in range(len(words)):
                for end in range(start + 1, min(start + max_span_words, len(words)) + 1):
                    span = " ".join(words[start:end])
                    strings.setdefault(span)
                    stripped = span.strip(_OUTER_PUNCTUATION)
                    if stripped:
                        strings.setdefault(stripped)
            for word in words:
                spelled = word.strip(_OUTER_PUNCTUATION).lstrip(_CURRENCY)
                if _JSON_NUMBER.fullmatch(spelled) and math.isfinite(value := json.loads(spelled)):
                    numbers.setdefault(spelled, value)
        return cls(tuple(strings), tuple(numbers.values()))

    def numbers_of(self, integer: bool) -> tuple[int | float, ...]:
        """The candidate numbers, only the whole ones for an integer."""
        return tuple(n for n in self.numbers if not integer or float(n).is_integer())
