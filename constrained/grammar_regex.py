"""A Lark grammar, approximated by a regular expression that is exact up to a nesting depth.

Token masks need a finite automaton, and a context-free grammar is not one. But real texts nest only a
little, so we unroll the grammar: a rule that re-enters itself (a parenthesised expression inside an
expression, a subquery inside a query) costs one unit of ``depth``; past the budget that alternative is
dropped. Everything up to the budget is kept exactly, so the masks are exact for texts whose nesting stays
within it, and never allow a text the grammar rejects (the approximation is from below, up to the lexical
corners named under *separators*, which the commit-time parse covers).

The walk follows Lark's own grammar definitions (the EBNF rule trees and terminal patterns Lark builds when it
loads a grammar), so it serves any Lark grammar (:func:`constrained.grammar`) as well as the SQL helper:
``x*``, ``x+``, ``x?``, ``[x]`` and ``x ~ n..m`` become regex loops, options and counts, and only real
recursion is unrolled. Recursion of a rule into itself costs one unit of depth, whatever lies
between (parentheses, a unary minus, CASE): after a re-entry the stack of open rules starts afresh. Further
choices that make it practical:

* *overrides*: a rule can be replaced by a finite list of spellings (a schema's table and column names), which
  is how identifiers are tied to a real database while the grammar itself keeps a generic ``NAME``;
* *separators*: Lark skips ``%ignore`` whitespace anywhere; we allow a bounded run of it (``max_whitespace``)
  between tokens, and require at least one character where two tokens would otherwise glue into one (two
  words, ``-`` ``-`` which would open a comment, ``/`` ``*``). When the previous token may or may not glue
  (it follows an optional word, as in ``count(DISTINCT? col``), the space is optional: requiring it would
  reject ``count(col)``. The regex then also has a glued spelling such as ``count(DISTINCTcol)``; a
  constraint removes those by intersecting with :meth:`GrammarRegex.lexical_regex`, where word tokens never
  touch;
* *terminals*: a terminal's regex is what Lark's lexer *matches* with it (Python's ``re.match``), which is its
  set of texts only for greedy, assertion-free patterns. Lazy repetitions, lookaround (other than a trailing
  word boundary) and backreferences are refused with :class:`GrammarError` naming the terminal; Lark's own
  ``common.ESCAPED_STRING``, written with both, is replaced by its regular equivalent. Classes are taken
  within :data:`ALPHABET`; the terminals this narrows are listed in :attr:`GrammarRegex.clipped`;
* *bounds*: the regex is built under a size budget and fails with :class:`GrammarError` instead of growing
  without end, and under a time budget (:class:`CompileTimeout`). Each level of depth copies the nested
  language into every position that can hold it, so the text grows by one to two orders of magnitude per
  level for SQL: depth 0 fits the default budget (``DEFAULT_MAX_REGEX_CHARS``) for a Spider database; depth 1
  does not (loosened, it fits for a small schema, but its token automaton then outgrows the build's memory
  bound).
"""

from __future__ import annotations

import re
import re._constants as sre_constants
import re._parser as sre_parse
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

from lark import Lark, Token, Tree
from lark.grammar import NonTerminal, Terminal
from lark.load_grammar import load_grammar

from .errors import CompileTimeout, GrammarError

#: Kinds of boundary characters. Two tokens need whitespace between them when the last character of the
#: first and the first character of the second form one of the GLUE pairs.
WORD, MINUS, SLASH, STAR, OTHER, START = "w", "-", "/", "*", "p", "^"
GLUE = frozenset({(WORD, WORD), (MINUS, MINUS), (SLASH, STAR)})
_SPECIAL = {ord("-"): MINUS, ord("/"): SLASH, ord("*"): STAR}
_ALL_KINDS = frozenset({WORD, MINUS, SLASH, STAR, OTHER})

DEFAULT_MAX_REGEX_CHARS = 2_000_000
#: A loosened span starts with one of its first tokens where those are at most this many keywords (letters in
#: either case: a subquery's SELECT or WITH, a window's PARTITION or ORDER); otherwise with a character of their
#: kinds.
_FEW_FIRST_TOKENS = 8
_KEYWORD_REGEX = re.compile(r"(?:\[[A-Za-z]{2}\]|[A-Za-z0-9_])+")
DEFAULT_UNROLL_TIMEOUT_S = 60.0


def char_kind(code: int) -> str:
    """The boundary kind of one character (non-ASCII counts as a word character, as in SQLite identifiers)."""
    if code >= 128 or chr(code).isalnum() or code == ord("_"):
        return WORD
    return _SPECIAL.get(code, OTHER)


#: Characters that need a backslash outside a class, and inside one.
_PATTERN_SPECIALS = r"\.+*?()|[]{}^$#&-~"
_CLASS_SPECIALS = r"\[]^-&~"


def _escape(code: int, specials: str = _PATTERN_SPECIALS) -> str:
    """One character as regex text: itself where safe, else a backslash or a hex escape."""
    char = chr(code)
    if code >= 128:
        return f"\\u{code:04x}"
    if char.isalnum() or char == "_" or char == " ":
        return char
    if code < 32 or code == 127:
        return f"\\x{code:02x}"
    return "\\" + char if char in specials else char


#: The characters a class may stand for: tab, newline, carriage return and printable ASCII. Negated classes
#: and ``.`` are taken within it (so a string literal's text is ASCII in the masks). Bounding the alphabet keeps
#: the automaton buildable: every multi-byte character adds states inside every string-literal position, so
#: even Latin-1 alone multiplies the outlines-core build's time on a Spider schema (docs/experiments.md).
ALPHABET = frozenset({9, 10, 13, *range(32, 127)})


def _letter_variants(code: int, ignore_case: bool) -> set[int]:
    char = chr(code)
    if ignore_case and char.isascii() and char.isalpha():
        return {ord(char.lower()), ord(char.upper())}
    return {code}


def _literal_regex(code: int, ignore_case: bool) -> str:
    variants = _letter_variants(code, ignore_case)
    if len(variants) == 1:
        return _escape(code)
    return "[" + "".join(_escape(c, _CLASS_SPECIALS) for c in sorted(variants)) + "]"


def literal_text_regex(text: str, ignore_case: bool) -> str:
    """A regex matching exactly ``text`` (ASCII letters in either case when ``ignore_case``)."""
    return "".join(_literal_regex(ord(c), ignore_case) for c in text)


# ---------------------------------------------------------------------------------------------------------------
# Terminal patterns (Python regex syntax, as Lark keeps them) -> Rust regex syntax


@dataclass(frozen=True)
class Piece:
    """One alternative of a terminal or override: its regex and the kinds of its first and last characters."""

    regex: str
    first: frozenset[str]
    last: frozenset[str]


_CATEGORIES = {
    sre_constants.CATEGORY_DIGIT: [(48, 57)],
    sre_constants.CATEGORY_WORD: [(48, 57), (65, 90), (97, 122), (95, 95)],
    sre_constants.CATEGORY_SPACE: [(9, 13), (32, 32)],
}


class _PatternConverter:
    """Translates one ``sre_parse`` tree into Rust regex syntax and reads off its boundary kinds.

    Classes are spelled out in ASCII (no ``\\d``/``\\w``, which are Unicode-wide in Rust). A trailing negative
    lookahead over word characters, as in ``/select(?![A-Za-z0-9_])/``, is dropped: the separator rule enforces
    the same word boundary between tokens. Any other assertion cannot be made regular and is an error.
    """

    def __init__(self, name: str, pattern: str) -> None:
        self.name = name
        self.pattern = pattern
        self.clipped = False  # some class reaches beyond ALPHABET

    def fail(self, what: Any) -> GrammarError:
        what = _CONSTRUCT_NAMES.get(what, what)
        return GrammarError(f"terminal {self.name} /{self.pattern}/: {what} has no regular equivalent; "
                            "rewrite the terminal without it, or give the rule that uses it an override")

    # ---- emission
    def emit(self, seq: Iterable[tuple[Any, Any]], ci: bool) -> str:
        items = list(seq)
        out = []
        for index, (op, av) in enumerate(items):
            if op is sre_constants.ASSERT_NOT and index == len(items) - 1 and self._word_boundary(av, items, ci):
                continue
            out.append(self.emit_item(op, av, ci))
        return "".join(out)

    def _word_boundary(self, av: Any, items: list, ci: bool) -> bool:
        direction, sub = av
        if direction != 1 or len(sub) != 1:
            return False
        codes = self.codes(sub[0], ci)
        return bool(codes) and all(char_kind(c) == WORD for c in codes) and self.last_kinds(items[:-1], ci) == {WORD}

    def emit_item(self, op: Any, av: Any, ci: bool) -> str:
        if op is sre_constants.LITERAL:
            return _literal_regex(av, ci)
        if op in (sre_constants.NOT_LITERAL, sre_constants.IN, sre_constants.ANY):
            return _class_regex(self.codes((op, av), ci))
        if op is sre_constants.MIN_REPEAT:
            raise self.fail(op)
        if op is sre_constants.MAX_REPEAT:
            low, high, sub = av
            body = self.emit(sub, ci)
            body = body if len(sub) == 1 and sub[0][0] in (sre_constants.LITERAL, sre_constants.IN) else f"(?:{body})"
            if high == sre_constants.MAXREPEAT:
                return body + ("*" if low == 0 else "+" if low == 1 else f"{{{low},}}")
            return body + ("?" if (low, high) == (0, 1) else f"{{{low},{high}}}")
        if op is sre_constants.SUBPATTERN:
            _group, add_flags, del_flags, sub = av
            inner_ci = (ci or bool(add_flags & sre_constants.SRE_FLAG_IGNORECASE)) and not (
                del_flags & sre_constants.SRE_FLAG_IGNORECASE)
            return f"(?:{self.emit(sub, inner_ci)})"
        if op is sre_constants.BRANCH:
            return "(?:" + "|".join(self.emit(alt, ci) for alt in av[1]) + ")"
        raise self.fail(op)

    def codes(self, item: tuple[Any, Any], ci: bool) -> set[int]:
        """The code points (within :data:`ALPHABET`) one single-character item can match."""
        op, av = item
        if op is sre_constants.LITERAL:
            return _letter_variants(av, ci)
        if op is sre_constants.NOT_LITERAL:
            self.clipped = True
            return set(ALPHABET - _letter_variants(av, ci))
        if op is sre_constants.ANY:
            self.clipped = True
            return set(ALPHABET - {10})
        if op is not sre_constants.IN:
            return set()
        found: set[int] = set()
        negate = False
        for sub_op, sub_av in av:
            if sub_op is sre_constants.NEGATE:
                negate = True
            elif sub_op is sre_constants.LITERAL:
                found |= _letter_variants(sub_av, ci)
            elif sub_op is sre_constants.RANGE:
                self.clipped |= sub_av[1] > max(ALPHABET)
                for code in range(sub_av[0], min(sub_av[1], max(ALPHABET)) + 1):
                    found |= _letter_variants(code, ci)
            elif sub_op is sre_constants.CATEGORY and sub_av in _CATEGORIES:
                for low, high in _CATEGORIES[sub_av]:
                    found |= set(range(low, high + 1))
            else:
                raise self.fail(f"class item {sub_op} {sub_av}")
        self.clipped |= negate
        return set(ALPHABET - found) if negate else found & ALPHABET

    # ---- boundary kinds
    def item_codes(self, item: tuple[Any, Any], ci: bool, from_end: bool) -> tuple[set[int], bool]:
        """(the first -- or last -- characters, whether the item can match the empty string)."""
        op, av = item
        if op in (sre_constants.LITERAL, sre_constants.NOT_LITERAL, sre_constants.IN, sre_constants.ANY):
            return self.codes(item, ci), False
        if op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT):
            codes, nullable = self.seq_codes(av[2], ci, from_end)
            return codes, nullable or av[0] == 0
        if op is sre_constants.SUBPATTERN:
            return self.seq_codes(av[3], ci, from_end)
        if op is sre_constants.BRANCH:
            results = [self.seq_codes(alt, ci, from_end) for alt in av[1]]
            return set().union(*(c for c, _ in results)), any(n for _, n in results)
        if op in (sre_constants.ASSERT_NOT, sre_constants.ASSERT):
            return set(), True
        raise self.fail(op)

    def seq_codes(self, seq: Iterable, ci: bool, from_end: bool) -> tuple[set[int], bool]:
        items = list(seq)
        codes: set[int] = set()
        for item in reversed(items) if from_end else items:
            item_codes, nullable = self.item_codes(item, ci, from_end)
            codes |= item_codes
            if not nullable:
                return codes, False
        return codes, True

    def seq_kinds(self, seq: Iterable, ci: bool, from_end: bool) -> tuple[set[str], bool]:
        codes, nullable = self.seq_codes(seq, ci, from_end)
        return {char_kind(c) for c in codes}, nullable

    def last_kinds(self, items: list, ci: bool) -> set[str]:
        return self.seq_kinds(items, ci, from_end=True)[0]

    def pieces(self, flags: Iterable[str]) -> list[Piece]:
        """The pattern split at its top-level alternatives (inside a plain group too, as in
        ``/(?:1[.]5|[.]5)(?![A-Za-z0-9_])/``), so each part gets the separator that fits it and the lexical
        language files it by its own first character."""
        ci = "i" in set(flags)
        try:
            tree = list(sre_parse.parse(self.pattern, sre_constants.SRE_FLAG_IGNORECASE if ci else 0))
        except re.error as exc:
            raise GrammarError(f"terminal {self.name} /{self.pattern}/ is not a valid regex: {exc}") from exc
        alternatives = [tree]
        body, tail = tree, []  # a trailing word boundary applies to each alternative alike
        if len(tree) == 2 and tree[1][0] is sre_constants.ASSERT_NOT and self._word_boundary(tree[1][1], tree, ci):
            body, tail = tree[:1], tree[1:]
        if len(body) == 1 and body[0][0] is sre_constants.SUBPATTERN and not any(body[0][1][1:3]):
            body = list(body[0][1][3])  # (?:a|b): a group that changes no flag is its alternatives
        if len(body) == 1 and body[0][0] is sre_constants.BRANCH:
            alternatives = [list(alt) + tail for alt in body[0][1][1]]
        pieces = []
        for alt in alternatives:
            first, nullable = self.seq_kinds(alt, ci, from_end=False)
            if nullable:
                raise GrammarError(f"terminal {self.name} /{self.pattern}/ matches the empty string")
            pieces.append(Piece(self.emit(alt, ci), frozenset(first), frozenset(self.last_kinds(alt, ci))))
        return pieces


_CONSTRUCT_NAMES = {
    sre_constants.MIN_REPEAT: "a lazy repetition (Lark's lexer takes its shortest match, not its set of texts)",
    sre_constants.ASSERT: "a lookahead or lookbehind",
    sre_constants.ASSERT_NOT: "a negative lookahead or lookbehind (other than a trailing word boundary)",
    sre_constants.GROUPREF: "a backreference",
    sre_constants.GROUPREF_EXISTS: "a conditional group",
    sre_constants.AT: "an anchor",
}


@lru_cache(maxsize=4096)
def first_codes(regex: str) -> frozenset[int]:
    """The characters a text of ``regex`` (a piece's, in the syntax :class:`Piece` holds) can start with."""
    converter = _PatternConverter("piece", regex)
    return frozenset(converter.seq_codes(sre_parse.parse(regex), False, from_end=False)[0])


def _class_regex(codes: Iterable[int]) -> str:
    """A character class for a set of code points, as ranges."""
    ranges: list[tuple[int, int]] = []
    for code in sorted(codes):
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    if not ranges:
        raise GrammarError("a character class matches nothing within the supported alphabet")
    if len(ranges) == 1 and ranges[0][0] == ranges[0][1]:
        return _escape(ranges[0][0])
    def member(a: int, b: int) -> str:
        return _escape(a, _CLASS_SPECIALS) if a == b else f"{_escape(a, _CLASS_SPECIALS)}-{_escape(b, _CLASS_SPECIALS)}"

    return "[" + "".join(member(a, b) for a, b in ranges) + "]"


def names_pieces(spellings: Iterable[str], ignore_case: bool = True) -> list[Piece]:
    """A finite set of spellings as trie-factored regexes, one per (first kind, last kind) group.

    Factoring shared prefixes keeps the regex (and the NFA outlines-core builds from it) small even for
    schemas with hundreds of column names.
    """
    groups: dict[tuple[str, str], set[str]] = {}
    for spelling in spellings:
        if not spelling:
            raise GrammarError("an override spelling is empty")
        key = (char_kind(ord(spelling[0])), char_kind(ord(spelling[-1])))
        groups.setdefault(key, set()).add(spelling.lower() if ignore_case else spelling)
    return [Piece(_trie_regex(sorted(words), ignore_case), frozenset({first}), frozenset({last}))
            for (first, last), words in sorted(groups.items())]


def _trie_regex(words: list[str], ignore_case: bool) -> str:
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def render(node: dict[str, Any]) -> str:
        branches = [literal_text_regex(char, ignore_case) + render(child) for char, child in sorted(node.items())
                    if char]
        optional = "" in node
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if optional:
            return f"(?:{body})?" if len(branches) == 1 else body + "?"
        return body

    return render(trie)


# ---------------------------------------------------------------------------------------------------------------
# Grammar -> regex


@dataclass(frozen=True)
class _Result:
    """A regex for part of a rule (``None``: the empty language) and the kinds the text may end with after it
    (including the kinds before it when it can be empty)."""

    regex: str | None
    after: frozenset[str]
    cut: bool = False  # some nesting was cut off inside (so a bracketed span may be loosened)


@dataclass(frozen=True)
class Unrolled:
    """A grammar's regular approximation; whether the depth bound left out some of the grammar's texts; whether
    a word token may follow a word token with optional whitespace between (the regex then also spells them
    glued, and needs intersecting with :meth:`GrammarRegex.lexical_regex`)."""

    regex: str
    cut: bool
    glued_words: bool


class GrammarRegex:
    """A loaded Lark grammar, ready to be unrolled into regexes for any depth and set of overrides."""

    def __init__(self, grammar_text: str, start: str = "start") -> None:
        try:
            definitions, _ = load_grammar(grammar_text, "<grammar>", [], False)
            self.lark = Lark(grammar_text, parser="earley", lexer="dynamic", start=start)
        except Exception as exc:  # Lark raises several unrelated types for a malformed grammar
            raise GrammarError(f"the grammar does not load: {exc}") from exc
        self.start = start
        self.rules: dict[str, Tree] = {name.lstrip("?"): tree for name, _params, tree, _opts in definitions.rule_defs}
        self.templates = {name for name, params, _tree, _opts in definitions.rule_defs if params}
        self.declared = {name for name, (tree, _priority) in definitions.term_defs if tree is None}
        self.terminals = {t.name: t for t in self.lark.terminals}
        self.ignore = tuple(self.lark.ignore_tokens)
        #: Terminals (by name, ``anonymous`` for a pattern written in a rule) whose classes reach beyond
        #: :data:`ALPHABET`: the regex keeps their texts within it. Filled as terminals are translated.
        self.clipped: set[str] = set()

    @cached_property
    def _ignored(self) -> tuple[str, tuple[str, ...]]:
        """The whitespace class of the ``%ignore`` terminals that are runs of one character class, and the names
        of the other ``%ignore`` terminals (comments), which the regex never produces."""
        classes, others = [], []
        for name in self.ignore:
            pattern = self.terminals[name].pattern
            tree = list(sre_parse.parse(pattern.to_regexp()))
            if len(tree) == 1 and tree[0][0] in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT):
                tree = list(tree[0][1][2])
            if len(tree) != 1 or tree[0][0] not in (sre_constants.IN, sre_constants.LITERAL):
                others.append(name)
                continue
            classes.append(_class_regex(_PatternConverter(name, pattern.value).codes(tree[0], False)))
        whitespace = "" if not classes else classes[0] if len(classes) == 1 else "(?:" + "|".join(classes) + ")"
        return whitespace, tuple(others)

    @property
    def whitespace_class(self) -> str:
        """The character class of the ``%ignore`` terminal (``[ \\t\\n\\r]+`` gives ``[\\t\\n\\r ]``)."""
        return self._ignored[0]

    @property
    def unmodelled_ignores(self) -> tuple[str, ...]:
        """``%ignore`` terminals other than whitespace runs (comments): Lark skips them, the regex never writes them."""
        return self._ignored[1]

    def regex(self, depth: int = 2, overrides: Mapping[str, list[Piece]] | None = None, max_whitespace: int = 2,
              max_chars: int = DEFAULT_MAX_REGEX_CHARS, loose_depth: int = 0,
              brackets: tuple[str, str] = ("(", ")")) -> str:
        """The regular approximation of the grammar: exact for texts nesting at most ``depth`` times.

        With ``loose_depth > 0``, what nests deeper is not dropped but replaced by bracket-balanced free text
        (up to ``loose_depth`` bracket levels): the masks then only keep brackets balanced there, and the
        commit-time check has the last word. This trades exactness deep inside for an automaton that does
        not multiply with every level.
        """
        return self.unrolled(depth, overrides, max_whitespace=max_whitespace, max_chars=max_chars,
                             loose_depth=loose_depth, brackets=brackets).regex

    def unrolled(self, depth: int = 2, overrides: Mapping[str, list[Piece]] | None = None, *,
                 max_whitespace: int = 2, max_chars: int = DEFAULT_MAX_REGEX_CHARS, loose_depth: int = 0,
                 brackets: tuple[str, str] = ("(", ")"), timeout_s: float = DEFAULT_UNROLL_TIMEOUT_S) -> Unrolled:
        """:meth:`regex`, with whether the depth bound cut anything off.

        Raises :class:`GrammarError` for a construct the regex cannot honour (naming the rule or terminal), a
        regex over ``max_chars`` or an empty language; :class:`CompileTimeout` past ``timeout_s``.
        """
        if depth < 0 or loose_depth < 0 or max_whitespace < 1:
            raise GrammarError("depth and loose_depth must be >= 0, max_whitespace >= 1")
        builder = _Builder(self, dict(overrides or {}), max_whitespace, max_chars, loose_depth, brackets,
                           time.monotonic() + timeout_s)
        result = builder.rule(self.start, frozenset({START}), depth, frozenset())
        if result.regex is None:
            raise GrammarError(f"the grammar generates nothing within depth {depth}")
        return Unrolled(result.regex, builder.cut, builder.glued_words)

    def lexical_regex(self, overrides: Mapping[str, list[Piece]] | None = None) -> str:
        """The lexical language: any sequence of the grammar's tokens and whitespace in which a token ending
        in a word character is never directly followed by one starting with a word character.

        Why: :meth:`regex` threads the kinds of the previous token, but where that token may or may not end
        in a word character (``count(DISTINCT? col``) the separator has to stay optional, and the regex alone
        also lets ``count(DISTINCTcol)`` or ``GROUP BYage`` through. Intersecting with this language (as byte
        automata, see :func:`constrained.dfa_intersection.intersection`) removes those glued spellings without
        duplicating the rest of the query for each kind. What remains: two glued tokens that happen to spell a
        third word token of the grammar (columns ``a`` and ``ab``, say), which the commit check still catches.

        As an automaton over tokens it has two states, *free* (start, or after a token ending in a non-word
        character) and *word*; tokens are grouped by whether their first and last characters are word
        characters, and the state elimination below is that automaton written as a regex.
        """
        groups: dict[tuple[bool, bool], list[str]] = {}
        for piece in self.token_pieces(overrides or {}):
            for first in piece.first:
                for last in piece.last:
                    groups.setdefault((first == WORD, last == WORD), []).append(piece.regex)
        if self.whitespace_class:
            groups.setdefault((False, False), []).append(self.whitespace_class)

        def union(*keys: tuple[bool, bool]) -> str:
            parts = list(dict.fromkeys(regex for key in keys for regex in groups.get(key, [])))
            return "(?:" + "|".join(parts) + ")" if parts else ""

        # free --(W..p | p..p)--> free, free --(W..W | p..W)--> word, word --p..W--> word, word --p..p--> free
        to_free, to_word = union((True, False), (False, False)), union((True, True), (False, True))
        word_stay, word_leave = union((False, True)), union((False, False))
        stay = f"{word_stay}*" if word_stay else ""
        loop = "|".join(part for part in (to_free, f"{to_word}{stay}{word_leave}" if to_word and word_leave else "")
                        if part)
        tail = f"(?:{to_word}{stay})?" if to_word else ""
        return f"(?:{loop})*{tail}" if loop else tail

    def token_pieces(self, overrides: Mapping[str, list[Piece]]) -> list[Piece]:
        """Every token the grammar can produce from its start rule: terminals, anonymous literals and the
        spellings of overridden rules (whose own definitions are then not visited)."""
        pieces: list[Piece] = []
        seen: set[str] = set()
        stack: list[Any] = [NonTerminal(self.start)]
        while stack:
            node = stack.pop()
            if isinstance(node, Tree):
                if node.data == "literal":
                    pieces += self.literal_pieces(node.children[0])
                elif node.data == "range":
                    pieces += self.range_pieces(node)
                elif node.data == "template_usage":
                    raise _template_error(node)
                else:
                    stack.extend(node.children)
            elif isinstance(node, (NonTerminal, Terminal)) and node.name not in seen:
                seen.add(node.name)
                if isinstance(node, Terminal):
                    pieces += self.terminal_pieces(node.name)
                elif node.name in overrides:
                    pieces += overrides[node.name]
                else:
                    stack.append(self.rules[node.name])
        return pieces

    def terminal_pieces(self, name: str) -> list[Piece]:
        definition = self.terminals.get(name)
        if definition is None:
            if name in self.declared:
                raise GrammarError(f"terminal {name} is %declare'd: a postlexer (indentation, say) produces it, "
                                   "and the masks cannot")
            raise GrammarError(f"unknown terminal {name}")
        pattern = definition.pattern
        if pattern.type == "str":
            return _string_pieces(pattern.value, "i" in pattern.flags)
        return self.pattern_pieces(name, regular_equivalents().get(pattern.value, pattern.value), pattern.flags)

    def pattern_pieces(self, name: str, pattern: str, flags: Iterable[str]) -> list[Piece]:
        """A terminal's regex as pieces, noting in :attr:`clipped` a terminal the alphabet narrows."""
        converter = _PatternConverter(name, pattern)
        pieces = converter.pieces(flags)
        if converter.clipped:
            self.clipped.add(name)
        return pieces

    def literal_pieces(self, token: Token) -> list[Piece]:
        """The pieces of an anonymous literal in a rule: ``"("``, ``"select"i`` or ``/[0-9]+/``."""
        text = str(token)
        if token.type == "STRING":
            flags = text[text.rindex('"') + 1:]
            value = eval(text[: text.rindex('"') + 1], {"__builtins__": {}})  # a Lark string literal is Python's
            return _string_pieces(value, "i" in flags)
        flags = text[text.rindex("/") + 1:]
        return self.pattern_pieces("anonymous", text[1: text.rindex("/")], flags)

    def range_pieces(self, node: Tree) -> list[Piece]:
        """An anonymous character range in a rule (``"a".."z"``)."""
        low, high = (eval(str(token), {"__builtins__": {}}) for token in node.children)
        return self.pattern_pieces("anonymous", f"[{re.escape(low)}-{re.escape(high)}]", "")


@lru_cache(maxsize=1)
def regular_equivalents() -> dict[str, str]:
    """Lark's own terminals written with constructs the regex cannot take, by their pattern, and their regular
    equivalents: ``common.ESCAPED_STRING`` (a lazy ``.*?`` up to a quote not preceded by an odd run of
    backslashes) matches exactly a quote, then characters other than quote, backslash and newline or a
    backslash and any character but newline, then a quote."""
    escaped = Lark("start: ESCAPED_STRING\n%import common.ESCAPED_STRING").get_terminal("ESCAPED_STRING")
    return {escaped.pattern.value: r'"(?:[^"\\\n]|\\.)*"'}


def _template_error(node: Tree) -> GrammarError:
    name = node.children[0].name
    return GrammarError(f"rule {name} is a template ({name}{{...}}): templates are not supported by the regular "
                        "approximation; write the rule out for each use")


def _literal_text(node: Any) -> str | None:
    """The text of an anonymous string literal in a rule tree (``"("``), else ``None``."""
    if isinstance(node, Tree) and node.data == "value" and isinstance(node.children[0], Tree):
        literal = node.children[0]
        if literal.data == "literal" and literal.children[0].type == "STRING":
            text = str(literal.children[0])
            if text.endswith('"'):
                return text[1:-1]
    return None


def balanced_text(open_: str, close: str, levels: int, starts: Iterable[str] | None = None,
                  nested_start: bool = False, blank: str = "") -> str | None:
    """Any text whose ``open_``/``close`` brackets balance, nested at most ``levels - 1`` deep inside.

    With ``starts`` (regexes of bracket-free texts), only texts that open, after a run of ``blank``, with one
    of them or (``nested_start``) with a nested bracketed span: a loosened span of the grammar that cannot be
    empty, nor start with just anything (``lower()``, ``lower(*)``, ``FROM (WHERE``), is not written so by the
    masks either. ``None`` when no such text exists.
    """
    if len(open_) != 1 or len(close) != 1:
        raise GrammarError("brackets must be single characters")
    other = _class_regex(ALPHABET - {ord(open_), ord(close)})
    texts = [f"{other}*"]  # texts[k]: nested at most k deep
    for _ in range(levels - 1):
        texts.append(f"(?:{other}|{_escape(ord(open_))}{texts[-1]}{_escape(ord(close))})*")
    if starts is None:
        return texts[-1]
    options = list(starts)
    if nested_start and levels > 1:
        options.append(f"{_escape(ord(open_))}{texts[-2]}{_escape(ord(close))}")
    if not options:
        return None
    leading = f"{blank}*" if blank else ""
    return f"{leading}(?:{'|'.join(options)}){texts[-1]}"


def _string_pieces(text: str, ignore_case: bool) -> list[Piece]:
    if not text:
        raise GrammarError("an empty string literal in the grammar")
    return [Piece(literal_text_regex(text, ignore_case), frozenset({char_kind(ord(text[0]))}),
                  frozenset({char_kind(ord(text[-1]))}))]


class _Builder:
    """One unrolling: walks rule trees threading the kinds of the previous token, so separators fit."""

    def __init__(self, grammar: GrammarRegex, overrides: dict[str, list[Piece]], max_ws: int, max_chars: int,
                 loose_depth: int, brackets: tuple[str, str], deadline: float):
        self.g = grammar
        self.deadline = deadline
        self.cut = False  # some nesting was dropped at the depth bound
        self.glued_words = False  # some separator between two word tokens is optional
        self.loose_depth = loose_depth
        self.brackets = brackets
        self.overrides = overrides
        self.ws = grammar.whitespace_class
        self.max_ws = max_ws
        self.max_chars = max_chars
        self.memo: dict[tuple, _Result] = {}
        self.piece_cache: dict[str, list[Piece]] = {}

    def separator(self, before: frozenset[str], first: frozenset[str]) -> str:
        """Whitespace allowed before a token whose first character has kinds ``first``."""
        if before == {START} or not self.ws:
            return ""
        rest = before - {START}
        glued = bool(rest) and all((a, b) in GLUE for a in rest for b in first)
        self.glued_words |= WORD in rest and WORD in first and (not glued or START in before)
        sep = f"{self.ws}{{{1 if glued else 0},{self.max_ws}}}"
        return f"(?:{sep})?" if START in before else sep

    def pieces_regex(self, pieces: list[Piece], before: frozenset[str]) -> _Result:
        if not pieces:  # an override with no spellings: the rule generates nothing
            return _Result(None, frozenset())
        parts = [self.separator(before, p.first) + p.regex for p in pieces]
        regex = parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"
        return _Result(regex, frozenset().union(*(p.last for p in pieces)))

    def rule(self, name: str, before: frozenset[str], budget: int, stack: frozenset[str]) -> _Result:
        if name in self.overrides:
            return self.pieces_regex(self.overrides[name], before)
        if name not in self.g.rules:
            raise GrammarError(f"unknown rule {name}")
        if time.monotonic() > self.deadline:
            raise CompileTimeout("unrolling the grammar into a regex ran out of time; lower the depth")
        if name in stack:  # re-entry: one level of nesting
            if budget == 0:
                self.cut = True
                return _Result(None, frozenset(), cut=True)
            budget, stack = budget - 1, frozenset()
        key = (name, before, budget, stack)
        if key not in self.memo:
            self.memo[key] = self.node(self.g.rules[name], before, budget, stack | {name})
        return self.memo[key]

    def node(self, node: Any, before: frozenset[str], budget: int, stack: frozenset[str]) -> _Result:
        if isinstance(node, Tree):
            handler = getattr(self, f"node_{node.data}", None)
            if handler is None:
                raise GrammarError(f"grammar construct {node.data!r} is not supported by the regular approximation")
            return handler(node, before, budget, stack)
        if isinstance(node, NonTerminal):
            return self.rule(node.name, before, budget, stack)
        if isinstance(node, Terminal):
            if node.name not in self.piece_cache:
                self.piece_cache[node.name] = self.g.terminal_pieces(node.name)
            return self.pieces_regex(self.piece_cache[node.name], before)
        raise GrammarError(f"unexpected grammar element {node!r}")

    def node_expansions(self, node: Tree, before, budget, stack) -> _Result:
        results = [self.node(child, before, budget, stack) for child in node.children]
        kept = [r for r in results if r.regex is not None]
        cut = any(r.cut for r in results)
        if not kept:
            return _Result(None, frozenset(), cut)
        regexes = list(dict.fromkeys(r.regex for r in kept))
        regex = regexes[0] if len(regexes) == 1 else "(?:" + "|".join(regexes) + ")"
        return self.sized(_Result(regex, frozenset().union(*(r.after for r in kept)), cut))

    def node_expansion(self, node: Tree, before, budget, stack) -> _Result:
        parts = []
        children = list(node.children)
        index, cut = 0, False
        while index < len(children):
            result = self.node(children[index], before, budget, stack)
            if result.regex is None:
                return _Result(None, frozenset(), result.cut)
            parts.append(result.regex)
            before, cut = result.after, cut or result.cut
            close = self.matching_close(children, index)
            if close is not None:
                span = self.node_expansion(Tree("expansion", children[index + 1:close]), before, budget, stack)
                if span.cut:  # nesting was cut off between the brackets: keep them, loosen what is inside
                    span = _Result(self.loosened(children[index + 1:close]), _ALL_KINDS)
                if span.regex is None:
                    return span
                parts.append(span.regex)
                before, index = span.after, close
                continue
            index += 1
        return self.sized(_Result("".join(parts), before, cut))

    def loosened(self, children: list) -> str | None:
        """Balanced text for a bracketed span whose nesting was cut: what the span's own texts can be, as far as
        their opening says. Empty only where the grammar lets the span be empty; otherwise it starts with one of
        the span's first tokens where those are a few keywords (``SELECT`` or ``WITH`` for a subquery), else with
        a character one of them starts with (a name, a literal, a bracket or a sign, never ``=`` or ``*``)."""
        may_be_empty, firsts = self.opening(Tree("expansion", children))
        if may_be_empty:
            return balanced_text(*self.brackets, self.loose_depth)
        open_ = _escape(ord(self.brackets[0]))
        regexes = sorted({piece.regex for piece in firsts} - {open_})
        if len(regexes) <= _FEW_FIRST_TOKENS and all(_KEYWORD_REGEX.fullmatch(regex) for regex in regexes):
            return balanced_text(*self.brackets, self.loose_depth, regexes, open_ in {p.regex for p in firsts},
                                 self.ws)
        codes = frozenset().union(*(first_codes(piece.regex) for piece in firsts))
        opening = codes - {ord(c) for c in self.brackets}
        return balanced_text(*self.brackets, self.loose_depth, [_class_regex(opening)] if opening else [],
                             ord(self.brackets[0]) in codes, self.ws)

    def opening(self, node: Any) -> tuple[bool, frozenset[Piece]]:
        """Whether the grammar's texts of ``node`` (at any depth) may be empty, and the tokens those that are
        not may start with."""
        if isinstance(node, NonTerminal):
            return self.rule_openings[node.name]
        if isinstance(node, Terminal):
            if node.name not in self.piece_cache:
                self.piece_cache[node.name] = self.g.terminal_pieces(node.name)
            return False, frozenset(self.piece_cache[node.name])
        if node.data in ("literal", "range"):
            pieces = self.g.literal_pieces(node.children[0]) if node.data == "literal" else self.g.range_pieces(node)
            return False, frozenset(pieces)
        if node.data == "template_usage":
            raise _template_error(node)
        if node.data in ("alias", "value"):
            return self.opening(node.children[0])
        if node.data == "expansions":
            options = [self.opening(child) for child in node.children]
            return any(empty for empty, _ in options), frozenset().union(*(firsts for _, firsts in options))
        if node.data == "expansion":
            firsts: frozenset[Piece] = frozenset()
            for child in node.children:
                empty, more = self.opening(child)
                firsts |= more
                if not empty:
                    return False, firsts
            return True, firsts
        if node.data == "maybe":
            return True, self.opening(node.children[0])[1]
        if node.data == "expr":
            item, *ops = node.children
            empty, firsts = self.opening(item)
            op = str(ops[0])
            return (op in "?*" or (op == "~" and int(ops[1]) == 0) or empty), firsts
        raise GrammarError(f"grammar construct {node.data!r} is not supported by the regular approximation")

    @cached_property
    def rule_openings(self) -> dict[str, tuple[bool, frozenset[Piece]]]:
        """:meth:`opening` of every rule (overridden ones by their spellings), to a fixpoint over recursion."""
        table: dict[str, tuple[bool, frozenset[Piece]]] = {
            name: (False, frozenset(pieces)) for name, pieces in self.overrides.items()}
        pending = {name: tree for name, tree in self.g.rules.items() if name not in self.overrides}
        table.update({name: (False, frozenset()) for name in pending})
        self.rule_openings = table  # read while the fixpoint runs
        changed = True
        while changed:
            changed = False
            for name, tree in pending.items():
                found = self.opening(tree)
                if found != table[name]:
                    table[name], changed = found, True
        return table

    def matching_close(self, children: list, index: int) -> int | None:
        """With loosening on: the index of the closing bracket that ends a span opened at ``index``."""
        if not self.loose_depth or _literal_text(children[index]) != self.brackets[0]:
            return None
        return next((j for j in range(index + 1, len(children)) if _literal_text(children[j]) == self.brackets[1]),
                    None)

    def node_alias(self, node: Tree, before, budget, stack) -> _Result:
        return self.node(node.children[0], before, budget, stack)

    def node_value(self, node: Tree, before, budget, stack) -> _Result:
        return self.node(node.children[0], before, budget, stack)

    def node_literal(self, node: Tree, before, budget, stack) -> _Result:
        return self.pieces_regex(self.g.literal_pieces(node.children[0]), before)

    def node_range(self, node: Tree, before, budget, stack) -> _Result:
        return self.pieces_regex(self.g.range_pieces(node), before)

    def node_template_usage(self, node: Tree, before, budget, stack) -> _Result:
        raise _template_error(node)

    def node_maybe(self, node: Tree, before, budget, stack) -> _Result:
        return self.optional(self.node(node.children[0], before, budget, stack), before)

    def optional(self, result: _Result, before: frozenset[str]) -> _Result:
        if result.regex is None or result.regex == "":
            return _Result("", before)
        return _Result(f"(?:{result.regex})?", result.after | before)

    def node_expr(self, node: Tree, before, budget, stack) -> _Result:
        item, *ops = node.children
        op = str(ops[0])
        if op == "?":
            return self.optional(self.node(item, before, budget, stack), before)
        if op == "~":  # x ~ n or x ~ n..m
            low, high = int(ops[1]), int(ops[-1])
            op = f"{{{low}}}" if low == high else f"{{{low},{high}}}"
        else:
            low = 1 if op == "+" else 0
        # Separators inside the loop depend on what the previous iteration ended with: widen to a fixpoint.
        seen = before
        while True:
            result = self.node(item, seen, budget, stack)
            if result.regex is None:
                return _Result(None, frozenset()) if low > 0 else _Result("", before)
            widened = seen | result.after
            if widened == seen:
                break
            seen = widened
        return self.sized(_Result(f"(?:{result.regex}){op}", result.after | (before if low == 0 else frozenset())))

    def sized(self, result: _Result) -> _Result:
        if result.regex is not None and len(result.regex) > self.max_chars:
            raise GrammarError(f"the regular approximation exceeds {self.max_chars} characters; "
                               "lower the depth or the number of names")
        return result

