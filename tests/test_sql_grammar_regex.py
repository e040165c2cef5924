"""Lark grammar -> regex: loops stay loops, nesting is cut exactly at the depth, tokens never glue."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constrained.errors import GrammarError
from constrained.grammar_regex import GrammarRegex, names_pieces

ARITH = r"""
start: expr
expr: (term OP)* term
term: NUMBER | VAR | "(" expr ")" | "-" term
OP: "+" | "-" | "*"
VAR: /[a-z]+(?![A-Za-z0-9_])/
NUMBER: /[0-9]+(?![A-Za-z0-9_])/
%ignore /[ ]+/
"""


@pytest.fixture(scope="module")
def arith():
    return GrammarRegex(ARITH)


def nested(depth: int) -> str:
    return "(" * depth + "x" + ")" * depth


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_depth_is_exact(arith, depth):
    pattern = re.compile(arith.regex(depth))
    for level in range(depth + 1):
        assert pattern.fullmatch(nested(level)), level
    assert not pattern.fullmatch(nested(depth + 1))


def test_repetition_is_not_nesting(arith):
    pattern = re.compile(arith.regex(0))
    assert pattern.fullmatch("1 + 2 * x - 40" + " + 1" * 30)
    assert not pattern.fullmatch("- 3")  # `"-" term` is self-recursion, not a loop: each level costs depth
    two = re.compile(arith.regex(2))
    assert two.fullmatch("- - 3") and not two.fullmatch("- - - 3")


def test_words_need_whitespace_and_runs_are_bounded(arith):
    pattern = re.compile(arith.regex(1, max_whitespace=2))
    assert pattern.fullmatch("x+1") and pattern.fullmatch("x  +  1")
    assert not pattern.fullmatch("x   + 1")  # three spaces: over the bound
    assert not pattern.fullmatch("x 1")  # two operands without an operator


def test_overrides_replace_rules():
    grammar = GrammarRegex('start: "SELECT"i name\nname: /[a-z]+/\n%ignore " "')
    pattern = re.compile(grammar.regex(0, {"name": names_pieces(["alpha", "Beta"])}))
    assert pattern.fullmatch("select ALPHA") and pattern.fullmatch("SELECT beta")
    assert not pattern.fullmatch("SELECT gamma")
    assert not pattern.fullmatch("SELECTalpha")


def test_non_regular_constructs_are_errors():
    with pytest.raises(GrammarError, match="has no regular equivalent"):
        GrammarRegex('start: WORD\nWORD: /(?=a)[a-z]+/').regex(0)
    with pytest.raises(GrammarError, match="does not load"):
        GrammarRegex("start: (")
    with pytest.raises(GrammarError, match="characters"):
        GrammarRegex(ARITH).regex(12, max_chars=5_000)


@settings(max_examples=40, deadline=None)
@given(st.recursive(st.sampled_from(["x", "12", "abc"]),
                    lambda inner: st.one_of(st.tuples(inner, st.sampled_from("+-*"), inner).map(" ".join),
                                            inner.map(lambda e: f"({e})")), max_leaves=6))
def test_generated_expressions_within_depth(arith, text):
    depth = max((text[:i].count("(") - text[:i].count(")") for i in range(len(text) + 1)), default=0)
    assert bool(re.fullmatch(arith.regex(2), text)) == (depth <= 2)


CALL = r"""
start: "f" "(" DISTINCT? name ")" (AS name)?
name: /[a-z]+/
DISTINCT: /distinct(?![a-z])/i
AS: /as(?![a-z])/i
%ignore /[ ]+/
"""


def test_the_lexical_language_keeps_words_apart_where_the_regex_cannot():
    """After ``(`` or ``DISTINCT`` a name may or may not need a space, so the regex leaves it optional; the
    lexical language, which a constraint intersects with it, never lets two word tokens touch."""
    grammar = GrammarRegex(CALL)
    overrides = {"name": names_pieces(["x", "y", "distinctive"])}
    pattern = re.compile(grammar.regex(0, overrides))
    lexical = re.compile(grammar.lexical_regex(overrides))
    for text in ["f(x)", "f( distinct x ) as y", "f(DISTINCT  x)as y", "f(distinctive)"]:
        assert pattern.fullmatch(text) and lexical.fullmatch(text), text
    assert pattern.fullmatch("f(distinctx)")  # the gap of the regex alone ...
    assert not lexical.fullmatch("f(distinctx)")  # ... closed by the lexical language
    assert not lexical.fullmatch("f(x) asy")  # glued anywhere, not only where the regex left the gap
    assert not lexical.fullmatch("f(z)")  # a word run must be one of the grammar's word tokens



def test_a_terminal_whose_alternatives_start_differently_is_filed_by_each():
    """``/(?:1.5|.5)(?![...])/`` starts with a digit or a dot: split into its alternatives, the word-first one
    needs a space after a word and the lexical language keeps it apart from one (``SELECT2.2`` is no text)."""
    grammar = GrammarRegex('start: "select"i NUMBER\nNUMBER: /(?:[0-9]+\\.[0-9]+|\\.[0-9]+)(?![A-Za-z0-9_])/\n'
                           '%ignore " "')
    assert [sorted(piece.first) for piece in grammar.terminal_pieces("NUMBER")] == [["w"], ["p"]]
    both = [re.compile(grammar.regex(0)), re.compile(grammar.lexical_regex())]
    for text in ("select 2.2", "select.5", "select .5"):
        assert all(p.fullmatch(text) for p in both), text
    assert not all(p.fullmatch("select2.2") for p in both)

CALLS = r"""
start: expr
expr: NUMBER | "(" expr ")" | "f" "(" expr ("," expr)* ")" | "g" "(" (expr |) ")" | "-" expr
NUMBER: /[0-9]+(?![A-Za-z0-9_])/
%ignore /[ ]+/
"""


def test_a_loosened_span_opens_as_the_grammars_span_does():
    """Past the depth a bracketed span is free balanced text, but no freer than its own opening: empty only where
    the grammar lets it be, and its first character one its first tokens start with (here a digit, ``f``, ``g``,
    ``-`` or a bracket, never ``,`` or ``*``)."""
    pattern = re.compile(GrammarRegex(CALLS).regex(0, loose_depth=2))
    for text in ("f(1)", "f( -1, 2)", "f((3))", "g()", "g( )", "g(1)", "f(f(1))"):
        assert pattern.fullmatch(text), text
    for text in ("f()", "f( )", "f(*)", "f( *1)", "f(,1)", "f(x)", "f(1"):
        assert not pattern.fullmatch(text), text
