"""``grammar(text)``: a :class:`Constraint` for any Lark grammar.

The masks come from the grammar unrolled to a regular expression (:mod:`constrained.grammar_regex`): exact for
texts that nest at most ``depth`` levels, with a bounded run of ``%ignore`` whitespace between tokens,
intersected with the grammar's lexical language (word tokens never touch). The commit-time check is Lark's own
parser on the whole text, so nothing outside the grammar is ever returned, and :meth:`Constraint.accepts` is
exactly the grammar's membership test, deep texts included: what the masks leave out is listed in the
constraint's ``beyond_masks``.

Grammars shipped with the package (:func:`shipped_grammar`): ``arithmetic``, ``c_like`` (a small C-like statement
language) and ``json``, beside the SQL helper's ``sql``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from importlib.resources import files
from pathlib import Path
from typing import Literal

from lark import Lark
from lark.exceptions import LarkError

from .constraint import Constraint
from .errors import GrammarError
from .grammar_regex import DEFAULT_MAX_REGEX_CHARS, GrammarRegex, names_pieces
from .token_dfa_build import DEFAULT_TIMEOUT_S

GRAMMARS_DIR = Path(str(files("constrained") / "grammars"))
#: Nesting the masks track exactly when none is asked for: enough for ``f(a + b)`` or a loop inside a
#: function; each level multiplies the token automaton's build time (benchmarks/README.md).
DEFAULT_DEPTH = 1
#: Longest whitespace run between tokens the masks allow (the grammar itself allows any length).
DEFAULT_MAX_WHITESPACE = 4


def shipped_grammar(name: str) -> str:
    """The text of a grammar shipped in ``constrained/grammars`` (``arithmetic``, ``c_like``, ``json``, ``sql``).

    Raises :class:`GrammarError` naming the shipped grammars when there is no such grammar.
    """
    path = GRAMMARS_DIR / f"{name}.lark"
    if not name.isidentifier() or not path.is_file():
        known = ", ".join(sorted(p.stem for p in GRAMMARS_DIR.glob("*.lark")))
        raise GrammarError(f"no shipped grammar {name!r} (shipped: {known})")
    return path.read_text(encoding="utf-8")


class ParseCheck:
    """The commit-time check: ``None`` when Lark's parser accepts the whole text, else the parser's first line."""

    def __init__(self, parser: Lark) -> None:
        self.parser = parser

    def __call__(self, text: str) -> str | None:
        try:
            self.parser.parse(text)
        except LarkError as exc:
            message = str(exc).strip()
            return f"not in the grammar: {message.splitlines()[0] if message else type(exc).__name__}"
        return None


def _parser(text: str, start: str, parser: str) -> Lark:
    """Lark's parser for the check: Earley with its dynamic lexer (Lark's default, any context-free grammar), or
    LALR(1) with the contextual lexer, refused with the conflict Lark names when the grammar is not LALR(1)."""
    if parser == "earley":
        return Lark(text, parser="earley", lexer="dynamic", start=start)
    if parser != "lalr":
        raise GrammarError(f"parser must be 'earley' or 'lalr', not {parser!r}")
    try:
        return Lark(text, parser="lalr", lexer="contextual", start=start)
    except LarkError as exc:
        raise GrammarError(f"the grammar is not LALR(1) (use parser='earley'): {exc}") from exc


def grammar(
    text: str | Path,
    *,
    start: str = "start",
    depth: int = DEFAULT_DEPTH,
    parser: Literal["earley", "lalr"] = "earley",
    max_whitespace: int = DEFAULT_MAX_WHITESPACE,
    overrides: Mapping[str, Iterable[str]] | None = None,
    max_regex_chars: int = DEFAULT_MAX_REGEX_CHARS,
    compile_timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Constraint:
    """The constraint whose texts are those of a Lark grammar, generated within a nesting bound.

    Parameters
    ----------
    text:
        The grammar in Lark's syntax (terminals as strings or regexes, ``%import common.*``, ``%ignore`` of
        whitespace and comments), or the path of a ``.lark`` file.
    start:
        The start rule.
    depth:
        How many times a derivation may re-enter a rule it is already inside (an expression in parentheses
        inside an expression, a block inside a block) in the texts the masks generate. Loops (``x*``, ``x+``,
        ``x ~ n..m``) are free. Each level multiplies the regex and the token automaton.
    parser:
        Whose language is the grammar's: ``"earley"`` (Lark's default, any context-free grammar) or ``"lalr"``
        (what an application parsing with ``Lark(..., parser="lalr")`` accepts).
    max_whitespace:
        Longest run of ``%ignore`` whitespace the masks allow between two tokens.
    overrides:
        Rules the masks replace by a finite list of spellings (``{"name": ["width", "height"]}``: the names a
        program may use), as the SQL helper ties its name rules to a database. The check still parses with the
        grammar itself. Also the way past a rule whose terminal has no regular form (a keyword-excluding
        lookahead).
    max_regex_chars, compile_timeout_s:
        Bounds on the regex's size and on the time of each compile step (the unrolling, and the token
        automaton's build in a bounded child process).

    Returns
    -------
    A :class:`Constraint` of kind ``"grammar"``: its masks generate the depth-bounded texts, its check is Lark's
    parse, ``accepts`` is the grammar's exact membership test and ``beyond_masks`` names what generation leaves
    out (deeper nesting, longer whitespace runs, comments, characters beyond ASCII in terminals).

    Raises
    ------
    GrammarError
        The grammar does not load, is not LALR(1) under ``parser="lalr"``, uses what the masks cannot honour
        (a terminal regex with lookaround, a lazy repetition or a backreference; a ``%declare``'d terminal; a
        template), naming the rule or terminal, or exceeds ``max_regex_chars`` at this depth.
    CompileTimeout
        Unrolling the grammar took longer than ``compile_timeout_s``.
    """
    if isinstance(text, Path):
        try:
            text = text.read_text(encoding="utf-8")
        except OSError as exc:
            raise GrammarError(f"cannot read the grammar {text}: {exc.strerror}") from exc
    if not isinstance(text, str):
        raise GrammarError(f"a grammar is Lark text or a path, not {type(text).__name__}")
    loaded = GrammarRegex(text, start)
    check = ParseCheck(loaded.lark if parser == "earley" else _parser(text, start, parser))
    spellings = {name: list(words) for name, words in (overrides or {}).items()}
    pieces = {name: names_pieces(words, ignore_case=False) for name, words in spellings.items()}
    unrolled = loaded.unrolled(depth, pieces, max_whitespace=max_whitespace, max_chars=max_regex_chars,
                               timeout_s=compile_timeout_s)
    also = (loaded.lexical_regex(pieces),) if unrolled.glued_words else ()
    return Constraint(unrolled.regex, check=check, post_checked=(f"the grammar (Lark {parser} parse)",),
                      kind="grammar", also_matches=also,
                      beyond_masks=_beyond_masks(loaded, unrolled.cut, depth, max_whitespace, spellings),
                      compile_timeout_s=compile_timeout_s)


def _beyond_masks(loaded: GrammarRegex, cut: bool, depth: int, max_whitespace: int,
                  spellings: dict[str, list[str]]) -> tuple[str, ...]:
    """What the grammar accepts and the masks never generate, in words."""
    gaps = [f"rule {name} spelled other than its {len(words)} listed spellings" for name, words in spellings.items()]
    if cut:
        gaps.append(f"nesting deeper than depth {depth} (a rule re-entered inside itself more than {depth} times)")
    if loaded.whitespace_class:
        gaps.append(f"whitespace runs longer than {max_whitespace} between tokens")
        gaps.append("tokens the masks keep apart written together (a word token right after another)")
    for name in loaded.unmodelled_ignores:
        gaps.append(f"text of the %ignore terminal {name} (comments are skipped by the parser, never generated)")
    if loaded.clipped:
        gaps.append("characters beyond ASCII (tab, newline, carriage return, printable) in terminals "
                    + ", ".join(sorted(loaded.clipped)))
    return tuple(gaps)
