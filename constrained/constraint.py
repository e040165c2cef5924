"""Constraints at two levels: text (:class:`Constraint`) and tokens (:class:`BoundConstraint`).

A :class:`Constraint` is a regular language, given as a pattern, plus an optional commit-time ``check`` for
what a finite automaton cannot express (``uniqueItems``, column scoping in SQL, ...). It is compiled once;
:meth:`Constraint.bind` ties it to a tokenizer's vocabulary once; the bound form then opens canvases that are
queried at every denoising step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from .errors import RegexError
from .lattice import Canvas, StateSets
from .regex_screen import screen
from .token_dfa import DEAD, TokenDFA
from .token_dfa_build import DEFAULT_TIMEOUT_S, build_token_dfa
from .vocabulary import TokenVocabulary, as_vocabulary, byte_vocabulary

#: Characters of the pattern that ``repr`` shows.
_PREVIEW = 60
#: The commit-time check: ``None`` when the text is fine, otherwise what it violates.
Check = Callable[[str], "str | None"]


@dataclass(frozen=True, eq=False, repr=False)
class Constraint:
    """A set of accepted texts: the regular ``pattern`` (whole-text match) and, optionally, a ``check``.

    ``post_checked`` names what ``check`` verifies beyond the pattern, so a user sees which parts of the
    constraint the masks enforce while denoising and which are verified when a block is committed.
    ``also_matches`` are further patterns every accepted text matches too: the regular part is the
    intersection (built at byte level, before the vocabulary is walked), for languages that are small as two
    automata but huge as one regex.
    ``ungrounded`` names (by JSON pointer) the values a grounded JSON constraint's documents need but no span of
    its source text fits (they keep their schema's own language). ``cached=False`` keeps a one-off
    constraint's automata out of the caches (memory and disk).

    ``beyond_masks`` names texts the constraint accepts but its patterns leave out, so generation never
    produces them (a grammar's texts nested deeper than the masks' depth bound). With entries, ``check`` is
    exact for the whole language and alone decides :meth:`accepts`.

    Immutable and safe to share between threads (two threads first using it at once may both build its text
    automaton, with the same result).
    """

    pattern: str
    check: Check | None = None
    post_checked: tuple[str, ...] = ()
    kind: str = "regex"
    also_matches: tuple[str, ...] = ()
    ungrounded: tuple[str, ...] = ()
    beyond_masks: tuple[str, ...] = ()
    cached: bool = True
    compile_timeout_s: float = field(default=DEFAULT_TIMEOUT_S, repr=False)

    def __repr__(self) -> str:
        """Kind, size and a short preview: a compiled schema's pattern runs to many thousands of characters."""
        preview = self.pattern if len(self.pattern) <= _PREVIEW else self.pattern[:_PREVIEW] + "..."
        extras = "".join(f", {name}={len(value)}" for name, value in (
            ("also_matches", self.also_matches), ("post_checked", self.post_checked),
            ("ungrounded", self.ungrounded), ("beyond_masks", self.beyond_masks)) if value)
        return f"Constraint(kind={self.kind!r}, pattern of {len(self.pattern):,} characters {preview!r}{extras})"

    @property
    def patterns(self) -> tuple[str, ...]:
        """Every pattern an accepted text matches: ``pattern`` and those of ``also_matches``."""
        return (self.pattern, *self.also_matches)

    @cached_property
    def _text_dfa(self) -> TokenDFA:
        return build_token_dfa(self.pattern, byte_vocabulary(), also=self.also_matches,
                               timeout_s=self.compile_timeout_s, cached=self.cached)

    def compile(self) -> Constraint:
        """Build the text automaton now (it is otherwise built on first use), so a bad pattern fails here.

        Returns:
            This constraint, compiled.

        Raises:
            RegexError: the pattern is malformed or not regular.
            VocabularyError: the pattern accepts no text at all.
            CompileTimeout: the build exceeded ``compile_timeout_s`` or its memory bound.
        """
        _ = self._text_dfa
        return self

    def matches_pattern(self, text: str) -> bool:
        """Membership in the regular part alone, without the commit-time check.

        Parameters:
            text: the whole text to test.

        Returns:
            Whether ``text`` matches ``pattern`` (and every pattern of ``also_matches``).

        Raises:
            RegexError, VocabularyError, CompileTimeout: as for :meth:`compile`, when the automaton is built on
                first use.
        """
        dfa = self._text_dfa
        state = dfa.walk(list(text.encode("utf-8")))
        return state != DEAD and bool(dfa.accepting[state])

    def violation(self, text: str) -> str | None:
        """Why ``text`` is rejected: the pattern first (unless ``beyond_masks`` has entries), then the commit-time
        check.

        Parameters:
            text: the whole text to test.

        Returns:
            ``None`` when ``text`` is accepted, otherwise what it violates, in words.

        Raises:
            RegexError, VocabularyError, CompileTimeout: as for :meth:`compile`, when the automaton is built on
                first use.
        """
        if not self.beyond_masks and not self.matches_pattern(text):
            return f"text does not match the {self.kind} constraint"
        return self.check(text) if self.check is not None else None

    def accepts(self, text: str) -> bool:
        """Exact membership of a whole text: the pattern and the commit-time check.

        Parameters:
            text: the whole text to test.

        Returns:
            Whether the constraint accepts ``text`` (:meth:`violation` says why not).

        Raises:
            RegexError, VocabularyError, CompileTimeout: as for :meth:`compile`, when the automaton is built on
                first use.
        """
        return self.violation(text) is None

    def bind(self, tokenizer: Any, *, eos_token_id: int | None = None) -> BoundConstraint:
        """The token-level constraint for a tokenizer's vocabulary.

        The token automaton is built once per pattern and vocabulary (in a child process bounded by
        ``compile_timeout_s`` and a memory limit) and cached on disk and in memory unless the constraint is
        ``cached=False``.

        Parameters:
            tokenizer: a Hugging Face tokenizer (byte-level BPE or SentencePiece with byte fallback), a
                ``{token: id}`` mapping, or a :class:`~constrained.vocabulary.TokenVocabulary`.
            eos_token_id: the end token, where the tokenizer does not name one.

        Returns:
            The :class:`BoundConstraint` that opens canvases over this vocabulary.

        Raises:
            VocabularyError: the tokenizer cannot be read, has no end token, or its tokens spell no accepted text.
            RegexError: the pattern is malformed or not regular.
            CompileTimeout: the build exceeded its time or memory bound.
        """
        vocabulary = as_vocabulary(tokenizer, eos_token_id)
        dfa = build_token_dfa(self.pattern, vocabulary, also=self.also_matches, timeout_s=self.compile_timeout_s,
                              cached=self.cached)
        return BoundConstraint(self, vocabulary, dfa, tokenizer if hasattr(tokenizer, "encode") else None)


class BoundConstraint:
    """A constraint tied to one vocabulary: opens canvases and checks token sequences.

    Thread-safe: its automaton is read-only and the memos its canvases share are used under a lock
    (:class:`constrained.lattice.StateSets`), so one bound constraint may serve generations in several threads at
    once, each with its own canvases.
    """

    def __init__(self, constraint: Constraint, vocabulary: TokenVocabulary, dfa: TokenDFA, tokenizer: Any) -> None:
        self.constraint = constraint
        self.vocabulary = vocabulary
        self.dfa = dfa
        self.tokenizer = tokenizer
        self._sets = StateSets(dfa)
        self._sets.precompute_open_canvases()

    @property
    def vocab_size(self) -> int:
        return self.vocabulary.size

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        return self.vocabulary.end_token_ids

    @property
    def initial_state(self) -> int:
        return self.dfa.initial

    def canvas(self, length: int, *, final: bool = True, start: int | None = None) -> Canvas:
        """A fresh, all-open canvas.

        Parameters:
            length: number of positions, at least 1.
            final: whether the canvas must end accepted (text, then end tokens as padding); ``False`` for a
                block that others will follow, which may end in any live state.
            start: the automaton state the canvas starts in (:meth:`Canvas.end_state` of the block before);
                the initial state by default.

        Returns:
            A :class:`~constrained.lattice.Canvas` with every position open.

        Raises:
            ValueError: ``length`` is not positive, or ``start`` is not a state of the automaton.
        """
        return Canvas(self._sets, length, final=final, start=start)

    def canvas_from(self, tokens: Sequence[int | None], *, final: bool = True, start: int | None = None) -> Canvas:
        """A canvas with some positions decided.

        Parameters:
            tokens: a token id per position, ``None`` for an open one.
            final, start: as for :meth:`canvas`.

        Returns:
            The canvas, its decided positions already swept.

        Raises:
            ValueError: as for :meth:`canvas`, or a token id outside the vocabulary.
        """
        canvas = self.canvas(len(tokens), final=final, start=start)
        canvas.decide({i: token for i, token in enumerate(tokens) if token is not None})
        return canvas

    def feasible(self, tokens: Sequence[int | None], *, final: bool = True, start: int | None = None) -> bool:
        """Whether the open positions of ``tokens`` can still be filled into an accepted canvas.

        Parameters:
            tokens, final, start: as for :meth:`canvas_from`.

        Returns:
            ``True`` when some filling of the open positions is accepted (commit-time check aside).

        Raises:
            ValueError: as for :meth:`canvas_from`.
        """
        return self.canvas_from(tokens, final=final, start=start).feasible()

    def decode(self, token_ids: Sequence[int]) -> str:
        """The text of a token sequence, up to its first end token.

        Parameters:
            token_ids: ids of this vocabulary.

        Returns:
            The text they spell (bytes that are not UTF-8 replaced).

        Raises:
            VocabularyError: a special token that spells no text comes before the first end token.
        """
        return self.vocabulary.decode(list(token_ids))

    def accepts_tokens(self, token_ids: Sequence[int]) -> bool:
        """Whether the tokens form an accepted text, commit-time check included.

        Parameters:
            token_ids: ids of this vocabulary: the text, then optionally end tokens.

        Returns:
            Whether the token automaton ends accepted and the constraint accepts the text they spell.

        Raises:
            VocabularyError: as for :meth:`decode`.
        """
        state = self.dfa.walk(list(token_ids))
        return state != DEAD and bool(self.dfa.accepting[state]) and self.constraint.accepts(self.decode(token_ids))


def regex(pattern: str) -> Constraint:
    """A constraint from a regular expression, matched against the whole text.

    ``^`` and ``$`` (or ``\\A`` and ``\\z``) around the whole pattern are accepted and change nothing: the match
    is whole-text anyway.

    Parameters:
        pattern: Rust ``regex`` syntax (what outlines-core compiles); no lookaround or backreferences, which no
            finite automaton expresses.

    Returns:
        The :class:`Constraint`, its text automaton already built.

    Raises:
        RegexError: ``pattern`` is not a string, is malformed, uses a construct that is not regular, has an anchor
            in the middle, or unrolls past the size an automaton can be built from in time (judged from its text
            by :func:`constrained.regex_screen.screen` before anything is built).
        VocabularyError: the pattern accepts no text at all.
        CompileTimeout: the automaton build exceeded its time or memory bound.
    """
    if not isinstance(pattern, str):
        raise RegexError(f"a pattern must be a string, got {type(pattern).__name__}")
    return Constraint(screen(pattern)).compile()
